//! The stack beside dtm's own flash-sale bench, in one run. dtm v1.19.0's bench server
//! ([`DtmBench`], on a Redis of its own, its stock 0) answers `benchFlashSales` with one two-phase
//! message per request: a prepare at its dtm, a stock deduction in Redis that fails, an abort. Its
//! article's figure was measured that way. Beside it, with the same closed-loop client, connections
//! and seconds, rounds alternated: the stack's sold-out path through nginx; the origin's reserve
//! on a sold-out sale (a refusal read in Redis); and winners at an origin whose coordinator is a
//! real dtm server (`kind = "dtm"`, dtm's store in a Redis of its own) beside winners at the
//! world's origin on the embedded coordinator. CPU per attempt of every process: the stack's,
//! the second origin, dtm and its store, the bench server and its Redis.
//!
//! Then recovery under dtm, with dtm's default `timeout_to_fail` (35 s) and with the origin's
//! (3 s, its `recovery.timeout`). First the back-check delay: an origin killed by its crash point
//! after a reservation, before the submit, started again at once; the seconds from the crash to
//! dtm's back-check and to the buyer's order. Then a crowd: the dtm origin killed (SIGKILL) while
//! buyers press, restarted at once; the time from the restart to dtm's first back-check (when the
//! kill caught a message before its submit), to nothing in flight in the stack's books, and to
//! dtm having finished every message.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use anyhow::{ensure, Context};
use redis::AsyncCommands;
use serde_json::{json, Map, Value};
use tokio::{sync::Mutex, time::Instant};

use super::{
    cpu::{self, Meter, Process, Spent},
    parts::closed,
    phases::{self, latency, CONCURRENCY},
    report::{self, CpuColumn},
    system::median,
    world::{origin_options, World},
};
use crate::{
    dtm_server::{DtmBench, DtmServer, DtmSettings},
    load::closed_loop::{self, ClosedLoop, LoopReport},
    metrics,
    origin_process::{DtmCoordinator, OriginOptions, OriginProcess},
    redis_server::RedisServer,
    redis_under_test::RedisUnderTest,
    wait,
};

/// Stock of each winners' sale: more than any run reserves, so every request is a winner.
const WINNERS_STOCK: i64 = 5_000_000;
/// The origin's shipped `coordinator.timeout_to_fail_seconds` (its `recovery.timeout`).
const SHIPPED_TIMEOUT_TO_FAIL: u32 = 3;
/// dtm's own sweep interval (`TRANS_CRON_INTERVAL`), as a dtm deployment runs it.
const DTM_CRON_SECONDS: u32 = 3;
/// Buyers of each recovery round, and how many press at once.
const RECOVERY_BUYERS: usize = 600;
const RECOVERY_CONCURRENCY: usize = 16;
/// dtm back-checks after `timeout_to_fail` (up to 35 s) plus its sweep and retry interval.
const RECOVERY_DEADLINE: Duration = Duration::from_secs(120);

/// The peers' processes beside the world: dtm's bench server, a dtm server with its store, and an
/// origin on the world's Redis and PostgreSQL whose coordinator is that dtm.
pub struct Peers {
    bench: DtmBench,
    dtm: DtmServer,
    store: RedisServer,
    origin: OriginProcess,
}

/// The origin's settings under `dtm`, with `timeout_to_fail_seconds` (0: dtm's default, 35 s)
/// and dtm's default retry interval, as deploy/origin.toml ships them.
fn under_dtm(dtm: &DtmServer, timeout_to_fail_seconds: u32) -> OriginOptions {
    OriginOptions {
        dtm: Some(DtmCoordinator {
            dtm_url: dtm.url(),
            timeout_to_fail_seconds,
            retry_interval_seconds: 0,
        }),
        ..origin_options()
    }
}

impl Peers {
    pub async fn start<R: RedisUnderTest>(world: &World<R>) -> anyhow::Result<Self> {
        let bench = DtmBench::start().await?;
        bench.reset().await?;
        let store = RedisServer::start().await?;
        let dtm = DtmServer::start(DtmSettings {
            cron_interval_secs: DTM_CRON_SECONDS,
            ..DtmSettings::new(store.port(), "{dtm}")
        })
        .await?;
        let origin = OriginProcess::start(
            &world.bin_dir.join("origin"),
            &world.stack.redis.target(),
            &world.stack.postgres.url(),
            &under_dtm(&dtm, SHIPPED_TIMEOUT_TO_FAIL),
            None,
        )
        .await?;
        Ok(Self {
            bench,
            dtm,
            store,
            origin,
        })
    }

    /// Every process of the run: the stack's and the peers'.
    fn processes<R: RedisUnderTest>(&self, world: &World<R>) -> Vec<Process> {
        let mut out = cpu::stack_processes(world);
        let peers = [
            ("origin_dtm", self.origin.pid()),
            ("dtm", self.dtm.pid()),
            ("dtm_store", self.store.pid()),
            ("dtm_bench", self.bench.pid()),
            ("dtm_bench_redis", self.bench.redis().pid()),
        ];
        out.extend(
            peers
                .into_iter()
                .filter_map(|(name, pid)| pid.map(|p| Process::tree(name, p))),
        );
        out
    }
}

/// Rows of the peer phase's CPU table.
const CPU_ROWS: [&str; 14] = [
    "nginx",
    "edge_1",
    "edge_2",
    "origin",
    "origin_dtm",
    "redis",
    "postgres",
    "dtm",
    "dtm_store",
    "dtm_bench",
    "dtm_bench_redis",
    "client",
    "total",
    "machine_busy",
];

/// One measured loop of the phase, over its rounds.
struct Column {
    key: &'static str,
    spec: ClosedLoop,
    /// The only status its every answer must have (a refusal's, or a winner's 200).
    status: u16,
    /// The winners' sale to wait on before the CPU reading ends: its branches finish after the
    /// answers (under dtm, dtm calls them after the submit).
    settles: Option<i64>,
    rps: Vec<f64>,
    spent: Spent,
    attempts: u64,
    last: Option<LoopReport>,
}

/// The peer phase (see the module's doc).
pub async fn peer<R: RedisUnderTest>(
    world: &World<R>,
    peers: &Peers,
    rounds: usize,
    seconds: f64,
) -> anyhow::Result<Value> {
    let sold = world.create_sale(1).await?;
    // A phase before may have restarted the world's Redis: the edges' limits connections come
    // back by themselves, within seconds; until then a pass is refused (503).
    let earned = std::sync::Mutex::new(None);
    wait::until("a pass from the edges", Duration::from_secs(30), || async {
        let buyers = world.buyers(sold, "peer-last", 1, 1).await?;
        *earned.lock().map_err(|_| anyhow::anyhow!("poisoned"))? = Some(buyers);
        Ok(true)
    })
    .await?;
    let last = earned
        .into_inner()
        .ok()
        .flatten()
        .context("the buyer's pass")?;
    super::measure::buy_all(&world.nginx.url(), sold, last, 1).await?;
    phases::wait_edges(world, sold, true).await?;
    let (embedded_sale, dtm_sale) = (
        world.create_sale(WINNERS_STOCK).await?,
        world.create_sale(WINNERS_STOCK).await?,
    );
    let reserve = |origin: &str, sale: i64, prefix: &str| {
        closed(
            format!("{origin}/v1/sales/{sale}/reserve"),
            "POST",
            &format!("{{\"uid\":\"{prefix}-{{n}}\"}}"),
            &[],
            seconds,
        )
    };
    let column = |key, spec, status, settles| Column {
        key,
        spec,
        status,
        settles,
        rps: Vec::new(),
        spent: Spent::default(),
        attempts: 0,
        last: None,
    };
    let origin = world.stack.origin.url();
    let mut columns = [
        column(
            "dtm_flash_sales",
            closed(peers.bench.flash_sales_url(), "GET", "", &[], seconds),
            409,
            None,
        ),
        column(
            "stack_sold_out",
            closed(
                format!("{}/api/sales/{sold}/buy", world.nginx.url()),
                "POST",
                "{\"pass_token\":\"x\"}",
                &[("x-forwarded-for", "{ip}")],
                seconds,
            ),
            410,
            None,
        ),
        column(
            "origin_sold_out",
            reserve(&origin, sold, "peer-sold"),
            410,
            None,
        ),
        column(
            "embedded_winners",
            reserve(&origin, embedded_sale, "peer-e"),
            200,
            Some(embedded_sale),
        ),
        column(
            "dtm_winners",
            reserve(&peers.origin.url(), dtm_sale, "peer-d"),
            200,
            Some(dtm_sale),
        ),
    ];
    let meter = Meter::new(peers.processes(world));
    let dtm_calls_before = dtm_calls(world, peers).await?;
    for round in 0..rounds {
        for c in &mut columns {
            // `{n}` is unique within a loop; the round makes it unique across loops.
            let mut spec = c.spec.clone();
            spec.body = spec.body.replace("{n}", &format!("{round}-{{n}}"));
            let settles = c.settles;
            let (report, spent) = meter
                .measure(async {
                    let report = closed_loop::run(&spec).await?;
                    if let Some(sale) = settles {
                        world
                            .stack
                            .wait_quiet(sale, Duration::from_secs(60))
                            .await?;
                    }
                    Ok(report)
                })
                .await?;
            ensure!(
                report.statuses.keys().all(|s| *s == c.status),
                "{}: answers other than {}: {:?}",
                c.key,
                c.status,
                report.statuses
            );
            c.rps.push(report.rps);
            c.spent.add(&spent);
            c.attempts += report.requests;
            c.last = Some(report);
        }
    }
    let dtm_calls = dtm_calls(world, peers).await? - dtm_calls_before;
    let books_embedded = world
        .stack
        .wait_balanced(embedded_sale, Duration::from_secs(60))
        .await?;
    let books_dtm = world
        .stack
        .wait_balanced(dtm_sale, Duration::from_secs(60))
        .await?;

    let dtm_rps = median(&mut columns[0].rps.clone());
    let dtm_cpu = columns[0].spent.total() * 1e6 / columns[0].attempts.max(1) as f64;
    let mut out = Map::new();
    out.insert("phase".into(), json!("dtm_peer"));
    out.insert("rounds".into(), json!(rounds));
    out.insert("connections".into(), json!(CONCURRENCY));
    for c in &mut columns {
        let rps = median(&mut c.rps);
        let cpu_us = c.spent.total() * 1e6 / c.attempts.max(1) as f64;
        let last = c.last.as_ref().context("no round")?;
        out.insert(
            c.key.into(),
            json!({
                "rps": rps,
                "rounds_rps": c.rps,
                "attempts": c.attempts,
                "statuses": last.statuses,
                "latency": latency(last),
                "cpu_us_per_attempt_total": cpu_us,
                "cpu_us_per_attempt": c.spent.per_attempt(c.attempts),
                "cpu_bound_rps": c.spent.cpu_bound_rps(c.attempts),
                "rps_ratio_vs_dtm": rps / dtm_rps,
                "cpu_ratio_vs_dtm": cpu_us / dtm_cpu,
            }),
        );
    }
    let (embedded, under_dtm) = (&out["embedded_winners"], &out["dtm_winners"]);
    let cpu = |v: &Value| v["cpu_us_per_attempt_total"].as_f64().unwrap_or(f64::NAN);
    let winner_cost = json!({
        "embedded_cpu_us": cpu(embedded),
        "dtm_cpu_us": cpu(under_dtm),
        "dtm_extra_cpu_us": cpu(under_dtm) - cpu(embedded),
        "dtm_cpu_ratio": cpu(under_dtm) / cpu(embedded),
        "dtm_rps_ratio": under_dtm["rps"].as_f64().unwrap_or(f64::NAN)
            / embedded["rps"].as_f64().unwrap_or(f64::NAN),
        "dtm_calls_per_winner": dtm_calls / columns[4].attempts.max(1) as f64,
    });
    out.insert("winner_cost".into(), winner_cost);
    out.insert(
        "books".into(),
        json!({
            "embedded_live": books_embedded.live(),
            "dtm_live": books_dtm.live(),
            "embedded_winners": columns[3].attempts,
            "dtm_winners": columns[4].attempts,
        }),
    );
    ensure!(
        books_embedded.live() == i64::try_from(columns[3].attempts)?
            && books_dtm.live() == i64::try_from(columns[4].attempts)?,
        "every winner has an order: {}",
        out["books"]
    );
    Ok(Value::Object(out))
}

/// Calls the dtm origin made to its dtm (prepare, submit, abort) and got from it (branch, query).
async fn dtm_calls<R: RedisUnderTest>(world: &World<R>, peers: &Peers) -> anyhow::Result<f64> {
    origin_dtm_calls(&world.stack.http, &peers.origin.url(), &[]).await
}

/// `origin_dtm_calls_total` of the origin at `origin`, summed over the samples with `labels`
/// (`call = "query"`: dtm's back-checks).
async fn origin_dtm_calls(
    http: &reqwest::Client,
    origin: &str,
    labels: &[(&str, &str)],
) -> anyhow::Result<f64> {
    let text = metrics::scrape(http, &format!("{origin}/metrics")).await?;
    Ok(metrics::sample_sum(&text, "origin_dtm_calls_total", labels))
}

/// Checks reconcile's drift of `sale` is 0, `after` naming what the books went through.
async fn no_drift<R: RedisUnderTest>(
    world: &World<R>,
    sale: i64,
    after: &str,
) -> anyhow::Result<Value> {
    let (ok, reconcile) = world.stack.reconcile(sale, false).await?;
    ensure!(
        ok && reconcile["drift"] == 0,
        "the books after {after}: {reconcile}"
    );
    Ok(reconcile)
}

/// The peer table for people: req/s and CPU µs per attempt of each loop, and its ratios to dtm's.
pub fn table(peer: &Value) -> String {
    let titles = [
        ("dtm_flash_sales", "dtm bench"),
        ("stack_sold_out", "sold out"),
        ("origin_sold_out", "origin sold"),
        ("embedded_winners", "win embed"),
        ("dtm_winners", "win dtm"),
    ];
    let columns: Vec<CpuColumn> = titles
        .iter()
        .map(|(key, title)| CpuColumn {
            title,
            phase: &peer[*key],
            per_attempt: "cpu_us_per_attempt",
            cpu_bound_rps: "cpu_bound_rps",
            measured_rps: "rps",
        })
        .collect();
    let mut out = report::cpu_table_of(&CPU_ROWS, &columns);
    for (label, key) in [
        ("rps / dtm bench rps", "rps_ratio_vs_dtm"),
        ("CPU per attempt / dtm bench's", "cpu_ratio_vs_dtm"),
    ] {
        out += &format!("{label:<30}");
        for (k, _) in &titles {
            out += &format!(" {:>11.2}", peer[*k][key].as_f64().unwrap_or(f64::NAN));
        }
        out += "\n";
    }
    out
}

/// The recovery figures for people: per setting of `timeout_to_fail`, the medians in seconds.
pub fn recovery_table(recovery: &Value) -> String {
    let rows = [
        (
            "crash: back-check after the crash",
            "crash_after_reserve",
            "back_check_seconds",
        ),
        (
            "crash: order after the crash",
            "crash_after_reserve",
            "ordered_seconds",
        ),
        (
            "crowd kill: back-check, if one came",
            "",
            "first_back_check_seconds",
        ),
        ("crowd kill: nothing in flight", "", "quiet_seconds"),
        ("crowd kill: dtm done", "", "dtm_done_seconds"),
    ];
    let settings = [
        ("dtm_default_35s", "dtm's 35 s"),
        ("recovery_timeout_3s", "3 s"),
    ];
    let mut out = format!("{:<36}", "recovery under dtm, s (medians)");
    for (_, title) in settings {
        out += &format!(" {title:>11}");
    }
    out += "\n";
    for (label, group, key) in rows {
        out += &format!("{label:<36}");
        for (setting, _) in settings {
            let at = if group.is_empty() {
                &recovery[setting]
            } else {
                &recovery[setting][group]
            };
            let value = at[key].as_f64().map_or("-".into(), |v| format!("{v:.1}"));
            out += &format!(" {value:>11}");
        }
        out += "\n";
    }
    out
}

/// Recovery under dtm (see the module's doc): per setting of `timeout_to_fail`, `rounds` kills.
pub async fn recovery<R: RedisUnderTest>(
    world: &World<R>,
    peers: &mut Peers,
    rounds: usize,
) -> anyhow::Result<Value> {
    let mut out = Map::new();
    out.insert("phase".into(), json!("dtm_recovery"));
    out.insert("dtm_cron_seconds".into(), json!(DTM_CRON_SECONDS));
    for (key, timeout_to_fail) in [
        ("dtm_default_35s", 0),
        ("recovery_timeout_3s", SHIPPED_TIMEOUT_TO_FAIL),
    ] {
        let options = under_dtm(&peers.dtm, timeout_to_fail);
        let crashes = crash_and_back_check(world, &options, rounds).await?;
        peers.origin.restart_with(&options).await?;
        let (mut first, mut quiet, mut done, mut runs) = (vec![], vec![], vec![], vec![]);
        for round in 0..rounds {
            let run = kill_and_recover(world, peers, &options, &format!("{key}-{round}")).await?;
            first.extend(run["first_back_check_seconds"].as_f64());
            quiet.extend(run["quiet_seconds"].as_f64());
            done.push(run["dtm_done_seconds"].as_f64().unwrap_or(f64::NAN));
            runs.push(run);
        }
        out.insert(
            key.into(),
            json!({
                "timeout_to_fail_seconds": timeout_to_fail,
                // Of the rounds where a message was back-checked.
                "first_back_check_seconds": (!first.is_empty()).then(|| median(&mut first)),
                "rounds_back_checked": first.len(),
                "quiet_seconds": median(&mut quiet),
                "dtm_done_seconds": median(&mut done),
                "runs": runs,
                "crash_after_reserve": crashes,
            }),
        );
    }
    // Back on the shipped setting.
    let options = under_dtm(&peers.dtm, SHIPPED_TIMEOUT_TO_FAIL);
    peers.origin.restart_with(&options).await?;
    Ok(Value::Object(out))
}

/// The origin's debug build with its crash points, beside the release binaries in `bin_dir`
/// (deploy/bench builds it): crash points are armed in debug builds only.
fn crashable_origin(bin_dir: &Path) -> anyhow::Result<PathBuf> {
    let path = bin_dir
        .parent()
        .context("the release directory has a parent")?
        .join("debug/origin-crashable");
    ensure!(
        path.is_file(),
        "{} is missing: cargo build -p flash-tests --bin origin-crashable",
        path.display()
    );
    Ok(path)
}

/// The back-check delay after an origin crash, `rounds` times: an origin with `options` killed by
/// its crash point after the reservation, before the submit (dtm holds a prepared message, Redis
/// a reservation, the buyer no answer), started again at once; the seconds from the crash to
/// dtm's back-check and to the buyer's order. The crowd kill of [`kill_and_recover`] catches a
/// message in that window only by chance; this one catches one every time.
async fn crash_and_back_check<R: RedisUnderTest>(
    world: &World<R>,
    options: &OriginOptions,
    rounds: usize,
) -> anyhow::Result<Value> {
    let binary = crashable_origin(&world.bin_dir)?;
    let redis = world.stack.redis.target();
    let postgres = world.stack.postgres.url();
    let mut origin = OriginProcess::start(&binary, &redis, &postgres, options, None).await?;
    let sale = world.create_sale(i64::try_from(rounds)?).await?;
    let http = &world.stack.http;
    let (mut back_check, mut ordered) = (vec![], vec![]);
    for round in 0..rounds {
        origin.restart(Some("after_reserve")).await?;
        let url = format!("{}/v1/sales/{sale}/reserve", origin.url());
        let answer = http
            .post(&url)
            .json(&json!({"uid": format!("crash-{round}")}))
            .send()
            .await;
        ensure!(answer.is_err(), "the crash cuts the answer off: {answer:?}");
        let status = origin.wait_exit(Duration::from_secs(30)).await?;
        ensure!(!status.success(), "the crash point kills the origin");
        let crashed = Instant::now();
        origin.restart(None).await?;
        let url = origin.url();
        let url = &url;
        wait::until("dtm's back-check", RECOVERY_DEADLINE, || async move {
            Ok(origin_dtm_calls(http, url, &[("call", "query")]).await? >= 1.0)
        })
        .await
        .with_context(|| format!("origin log:\n{}", origin.log_tail()))?;
        back_check.push(crashed.elapsed().as_secs_f64());
        let books = world.stack.wait_balanced(sale, RECOVERY_DEADLINE).await?;
        ensure!(
            books.live() == i64::try_from(round + 1)?,
            "the reserved unit is ordered: {books:?}"
        );
        ordered.push(crashed.elapsed().as_secs_f64());
    }
    origin.kill().await?;
    no_drift(world, sale, "the crashes").await?;
    Ok(json!({
        "crashes": rounds,
        "back_check_seconds": median(&mut back_check.clone()),
        "ordered_seconds": median(&mut ordered.clone()),
        "back_check_runs": back_check,
        "ordered_runs": ordered,
    }))
}

/// One kill: buyers press at the dtm origin, it is killed once a third of the units are sold and
/// restarted at once; the seconds from the restart to dtm's first back-check and to nothing in
/// flight, and the books after.
async fn kill_and_recover<R: RedisUnderTest>(
    world: &World<R>,
    peers: &mut Peers,
    options: &OriginOptions,
    prefix: &str,
) -> anyhow::Result<Value> {
    let sale = world.create_sale(i64::try_from(RECOVERY_BUYERS)?).await?;
    let url = format!("{}/v1/sales/{sale}/reserve", peers.origin.url());
    let uids: Vec<String> = (0..RECOVERY_BUYERS)
        .map(|i| format!("{prefix}-{i}"))
        .collect();
    let pressing = tokio::spawn(press_all(world.stack.http.clone(), url, uids));
    let third = i64::try_from(RECOVERY_BUYERS / 3)?;
    world
        .stack
        .wait_orders(sale, third, Duration::from_secs(60))
        .await?;
    peers.origin.kill().await?;
    let in_flight_at_kill = world.stack.books_redis_in_flight(sale).await?;
    let restarted = Instant::now();
    peers.origin.restart_with(options).await?;
    let origin_url = peers.origin.url();
    let http = &world.stack.http;
    let back_checks = || origin_dtm_calls(http, &origin_url, &[("call", "query")]);
    // One wait until nothing is in flight in the stack and dtm has finished every message,
    // noting on the way when dtm's first back-check came and when the stack was quiet. A message
    // prepared before the kill and never reserved leaves nothing in the stack's books: only dtm's
    // back-check, `timeout_to_fail` after its prepare, finishes it.
    let store = peers.store.connection().await?;
    let unfinished = format!("{}_u", peers.dtm.settings().redis_prefix);
    let seen = std::sync::Mutex::new((None::<f64>, None::<f64>));
    let seen = &seen;
    wait::until(
        "the stack and dtm done after the kill",
        RECOVERY_DEADLINE,
        || {
            let (mut store, unfinished) = (store.clone(), unfinished.clone());
            async move {
                let checked = back_checks().await? >= 1.0;
                let quiet = world.stack.books_redis_in_flight(sale).await? == 0;
                let at_dtm: i64 = store.zcard(&unfinished).await?;
                let now = restarted.elapsed().as_secs_f64();
                if let Ok(mut seen) = seen.lock() {
                    if checked && seen.0.is_none() {
                        seen.0 = Some(now);
                    }
                    if quiet && seen.1.is_none() {
                        seen.1 = Some(now);
                    }
                }
                Ok(quiet && at_dtm == 0)
            }
        },
    )
    .await?;
    let done_seconds = restarted.elapsed().as_secs_f64();
    let (first, quiet_seconds) = seen.lock().map(|s| *s).unwrap_or_default();
    let answers = pressing.await??;
    let books = world.stack.wait_balanced(sale, RECOVERY_DEADLINE).await?;
    let reconcile = no_drift(world, sale, "a kill under dtm").await?;
    Ok(json!({
        "in_flight_at_kill": in_flight_at_kill,
        "first_back_check_seconds": first,
        "back_checks": back_checks().await? + 0.0,
        "quiet_seconds": quiet_seconds,
        "dtm_done_seconds": done_seconds,
        "answers": answers,
        "units": books.live(),
        "drift": reconcile["drift"],
    }))
}

/// Every uid of `uids` presses once at `url`, [`RECOVERY_CONCURRENCY`] at a time: the answers by
/// status, `error` for one cut off (the origin killed under it).
async fn press_all(
    http: reqwest::Client,
    url: String,
    uids: Vec<String>,
) -> anyhow::Result<BTreeMap<String, u64>> {
    let queue = Arc::new(Mutex::new(uids));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..RECOVERY_CONCURRENCY {
        let (http, url, queue) = (http.clone(), url.clone(), queue.clone());
        workers.spawn(async move {
            let mut answers = BTreeMap::<String, u64>::new();
            while let Some(uid) = queue.lock().await.pop() {
                let answer = http.post(&url).json(&json!({"uid": uid})).send().await;
                let key =
                    answer.map_or_else(|_| "error".into(), |a| a.status().as_u16().to_string());
                *answers.entry(key).or_default() += 1;
            }
            answers
        });
    }
    let mut total = BTreeMap::new();
    for answers in workers.join_all().await {
        for (k, n) in answers {
            *total.entry(k).or_default() += n;
        }
    }
    Ok(total)
}
