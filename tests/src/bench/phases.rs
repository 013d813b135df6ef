//! The benchmark's phases, each measured in the same run as its baseline: the sold-out path
//! against nginx `return 200`; the live path against `redis-benchmark` of the reserve script,
//! with the Redis round trips of winners, losers and sold-out attempts; sold-out propagation to
//! every edge; a crowd of users and bots; recovery after the origin is killed mid-crowd. Each
//! runs on one Redis server or on a cluster (`--redis cluster`).

use std::time::Duration;

use anyhow::Context;
use serde_json::{json, Value};
use tokio::time::Instant;

use super::{
    baselines,
    counts::{origin_outcomes, origin_reservations, poller_claims, round_trip_count},
    cpu::{self, Meter, Process, Spent},
    measure, profile,
    system::median,
    world::World,
};
use crate::{
    crowd::{self, CrowdConfig},
    edge_process::USER_JWT_SECRET,
    load::closed_loop::{self, ClosedLoop, LoopReport},
    redis_under_test::RedisUnderTest,
    wait,
};

/// Concurrency of the closed loops (connections).
pub const CONCURRENCY: usize = 64;

/// Runs of `redis-benchmark` in the live phase (the median is reported), and requests in each.
const REDIS_BENCHMARK_RUNS: usize = 3;
pub(super) const REDIS_BENCHMARK_REQUESTS: u64 = 200_000;

fn spec(url: String, body: &str, headers: Vec<(String, String)>, seconds: f64) -> ClosedLoop {
    ClosedLoop {
        url,
        method: "POST".into(),
        body: body.into(),
        headers,
        concurrency: CONCURRENCY,
        duration: Duration::from_secs_f64(seconds),
    }
}

pub(super) fn latency(report: &LoopReport) -> Value {
    json!({"p50_us": report.p50_us, "p99_us": report.p99_us, "p999_us": report.p999_us})
}

/// Sold out: buy attempts through nginx after sell-out, against nginx `return 200` and, for the
/// edge's own overhead, the edge alone against a bare hyper server; medians of `rounds`. CPU per
/// attempt of every stack process over the stack's rounds, and of the bare nginx over its own.
pub async fn sold_out<R: RedisUnderTest>(
    world: &World<R>,
    rounds: usize,
    seconds: f64,
) -> anyhow::Result<Value> {
    let nginx_200 = baselines::nginx_return_200().await?;
    let hello = baselines::hello(&world.bin_dir).await?;
    let sale = world.create_sale(1).await?;
    let buyers = world.buyers(sale, "last", 1, 1).await?;
    measure::buy_all(&world.nginx.url(), sale, buyers, 1).await?;
    wait_sold_out_everywhere(world, sale).await?;

    let buy = format!("/api/sales/{sale}/buy");
    let body = "{\"pass_token\":\"x\"}";
    let xff = vec![("x-forwarded-for".to_string(), "{ip}".to_string())];
    world.stack.redis.reset_stats().await?;
    let claims = poller_claims(world).await?;
    let before_origin = origin_reservations(world).await?;
    let (mut stack, mut bare, mut edge, mut hyper) = (vec![], vec![], vec![], vec![]);
    let mut last = None;
    let mut attempts = 0;
    let stack_meter = Meter::new(cpu::stack_processes(world));
    let bare_meter = Meter::new(vec![
        Process::tree("nginx", nginx_200.pid().context("bare nginx pid")?),
        Process::client(),
    ]);
    let (mut stack_cpu, mut bare_cpu) = (Spent::default(), Spent::default());
    let (mut stack_attempts, mut bare_requests) = (0, 0);
    for round in 0..rounds {
        let recording = match round {
            0 => profile::start(world, "sold_out").await?,
            _ => None,
        };
        let (s, spent) = stack_meter
            .measure(closed_loop::run(&spec(
                format!("{}{buy}", world.nginx.url()),
                body,
                xff.clone(),
                seconds,
            )))
            .await?;
        profile::stop(recording).await?;
        stack_cpu.add(&spent);
        stack_attempts += s.requests;
        let (n, spent) = bare_meter
            .measure(closed_loop::run(&spec(
                nginx_200.url.clone(),
                body,
                xff.clone(),
                seconds,
            )))
            .await?;
        bare_cpu.add(&spent);
        bare_requests += n.requests;
        let e = closed_loop::run(&spec(
            format!("{}{buy}", world.edges[0].url()),
            body,
            xff.clone(),
            seconds,
        ))
        .await?;
        let h = closed_loop::run(&spec(hello.url.clone(), body, vec![], seconds)).await?;
        attempts += s.requests + e.requests;
        stack.push(s.rps);
        bare.push(n.rps);
        edge.push(e.rps);
        hyper.push(h.rps);
        last = Some((s, n, e, h));
    }
    let redis_cmds = round_trip_count(world, claims).await?;
    let origin_requests = origin_reservations(world).await? - before_origin;
    let (s, n, e, h) = last.context("no round")?;
    let (stack_rps, bare_rps) = (median(&mut stack), median(&mut bare));
    let (edge_rps, hyper_rps) = (median(&mut edge), median(&mut hyper));
    Ok(json!({
        "phase": "sold_out",
        "rounds": rounds,
        "stack_rps": stack_rps,
        "nginx_return_200_rps": bare_rps,
        "ratio_vs_nginx": stack_rps / bare_rps,
        "edge_alone_rps": edge_rps,
        "hyper_hello_rps": hyper_rps,
        "edge_ratio_vs_hyper": edge_rps / hyper_rps,
        "statuses": s.statuses,
        "attempts": attempts,
        "redis_commands": redis_cmds,
        "origin_requests": origin_requests,
        "latency_stack": latency(&s),
        "latency_nginx_200": latency(&n),
        "latency_edge_alone": latency(&e),
        "latency_hyper": latency(&h),
        "cpu_us_per_attempt": stack_cpu.per_attempt(stack_attempts),
        "cpu_bound_rps": stack_cpu.cpu_bound_rps(stack_attempts),
        "nginx_return_200_cpu_us_per_request": bare_cpu.per_attempt(bare_requests),
        "nginx_return_200_cpu_bound_rps": bare_cpu.cpu_bound_rps(bare_requests),
    }))
}

async fn wait_sold_out_everywhere<R: RedisUnderTest>(
    world: &World<R>,
    sale: i64,
) -> anyhow::Result<Duration> {
    wait_edges(world, sale, true).await
}

/// Waits until every edge answers the sale's buys with 410 (`sold_out`), or none does (a bad
/// pass token gets 403 once the sale is open); how long that took.
pub async fn wait_edges<R: RedisUnderTest>(
    world: &World<R>,
    sale: i64,
    sold_out: bool,
) -> anyhow::Result<Duration> {
    let http = &world.stack.http;
    let urls: Vec<String> = world
        .edges
        .iter()
        .map(|e| format!("{}/api/sales/{sale}/buy", e.url()))
        .collect();
    let urls = &urls;
    let what = if sold_out {
        "every edge answers sold out"
    } else {
        "every edge takes buys again"
    };
    wait::until(what, Duration::from_secs(30), || async move {
        for url in urls {
            let status = http
                .post(url)
                .json(&json!({"pass_token": "x"}))
                .send()
                .await?
                .status();
            if (status == 410) != sold_out {
                return Ok(false);
            }
        }
        Ok(true)
    })
    .await
}

/// Live: buyers with pass tokens buy through nginx while stock lasts; then duplicates (losing
/// attempts) on the still-open sale. Redis round trips per winner and per loser; the reserve
/// script under `redis-benchmark` at the same concurrency. CPU per attempt of every stack
/// process over the winners' loop and over the losers'; of redis-server and `redis-benchmark`
/// per request of the baseline.
pub async fn live<R: RedisUnderTest>(world: &World<R>, winners: usize) -> anyhow::Result<Value> {
    let sale = world.create_sale(i64::try_from(winners * 2)?).await?;
    let buyers = world.buyers(sale, "win", winners, CONCURRENCY).await?;
    let meter = Meter::new(cpu::stack_processes(world));
    world.stack.redis.reset_stats().await?;
    let claims = poller_claims(world).await?;
    let recording = profile::start(world, "live_winners").await?;
    let (won, won_cpu) = meter
        .measure(measure::buy_all(
            &world.nginx.url(),
            sale,
            buyers,
            CONCURRENCY,
        ))
        .await?;
    profile::stop(recording).await?;
    let winner_cmds = round_trip_count(world, claims).await?;
    let losers = world.buyers(sale, "win", winners / 2, CONCURRENCY).await?;
    world.stack.redis.reset_stats().await?;
    let claims = poller_claims(world).await?;
    let (lost, lost_cpu) = meter
        .measure(measure::buy_all(
            &world.nginx.url(),
            sale,
            losers,
            CONCURRENCY,
        ))
        .await?;
    let loser_cmds = round_trip_count(world, claims).await?;

    let redis_meter = redis_meter(world)?;
    let (mut redis, mut redis_cpu, mut redis_requests) = (Vec::new(), Spent::default(), 0);
    for _ in 0..REDIS_BENCHMARK_RUNS {
        let (rps, spent) = baselines::redis_reserve_run(world, &redis_meter).await?;
        redis.push(rps);
        redis_cpu.add(&spent);
        redis_requests += REDIS_BENCHMARK_REQUESTS;
    }
    let redis_rps = median(&mut redis);
    let live_rps = won.attempts as f64 / won.seconds;
    Ok(json!({
        "phase": "live",
        "winners": won.statuses.get(&200).copied().unwrap_or(0),
        "attempts": won.attempts,
        "live_rps": live_rps,
        "redis_benchmark_evalsha_reserve_rps": redis_rps,
        "ratio_vs_redis": live_rps / redis_rps,
        "statuses": won.statuses,
        "latency": {"p50_us": won.p50_us, "p99_us": won.p99_us, "p999_us": won.p999_us},
        "redis_cmds_per_winner": winner_cmds as f64 / won.attempts.max(1) as f64,
        "loser_attempts": lost.attempts,
        "loser_statuses": lost.statuses,
        "redis_cmds_per_loser": loser_cmds as f64 / lost.attempts.max(1) as f64,
        "loser_rps": lost.attempts as f64 / lost.seconds,
        "loser_latency": {"p50_us": lost.p50_us, "p99_us": lost.p99_us, "p999_us": lost.p999_us},
        "cpu_us_per_attempt": won_cpu.per_attempt(won.attempts),
        "cpu_bound_rps": won_cpu.cpu_bound_rps(won.attempts),
        "loser_cpu_us_per_attempt": lost_cpu.per_attempt(lost.attempts),
        "loser_cpu_bound_rps": lost_cpu.cpu_bound_rps(lost.attempts),
        "redis_benchmark_cpu_us_per_request": redis_cpu.per_attempt(redis_requests),
        "redis_benchmark_cpu_bound_rps": redis_cpu.cpu_bound_rps(redis_requests),
    }))
}

/// The CPU meter of the `redis-benchmark` baseline: redis-server (every node of a cluster) and
/// the tool itself.
pub(super) fn redis_meter<R: RedisUnderTest>(world: &World<R>) -> anyhow::Result<Meter> {
    let pids = world.stack.redis.pids();
    anyhow::ensure!(!pids.is_empty(), "no redis-server runs");
    let mut processes: Vec<Process> = pids
        .into_iter()
        .map(|pid| Process::tree("redis", pid))
        .collect();
    processes.push(Process::reaped_tools("redis_benchmark"));
    Ok(Meter::new(processes))
}

/// Time from the last unit's `200` to every edge answering 410 from memory.
pub async fn propagation<R: RedisUnderTest>(world: &World<R>) -> anyhow::Result<Value> {
    let mut delays = Vec::new();
    for _ in 0..5 {
        let sale = world.create_sale(1).await?;
        let buyers = world.buyers(sale, "prop", 1, 1).await?;
        let bought = measure::buy_all(&world.nginx.url(), sale, buyers, 1).await?;
        anyhow::ensure!(
            bought.statuses.get(&200) == Some(&1),
            "the unit was not sold: {:?}",
            bought.statuses
        );
        let started = Instant::now();
        wait_sold_out_everywhere(world, sale).await?;
        delays.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    Ok(json!({"phase": "propagation", "median_ms": median(&mut delays.clone()), "runs_ms": delays}))
}

/// A crowd of `users` (20% bots of every kind) for 100 units, through nginx: origin requests per
/// unit, bot units, conservation.
pub async fn crowd<R: RedisUnderTest>(
    world: &World<R>,
    users: usize,
) -> anyhow::Result<(Value, crowd::Report)> {
    let sale = world.create_sale(100).await?;
    let before = origin_reservations(world).await?;
    let mut config = CrowdConfig::new(world.nginx.url(), sale, Some(USER_JWT_SECRET.to_string()));
    config.users = users;
    config.concurrency = 256;
    config.spread_ips = true;
    let outcomes_before = origin_outcomes(world).await?;
    let report = crowd::run(config).await?;
    let origin_requests = origin_reservations(world).await? - before;
    let outcomes: serde_json::Map<String, Value> = origin_outcomes(world)
        .await?
        .into_iter()
        .zip(outcomes_before)
        .filter(|((_, after), (_, before))| after > before)
        .map(|((name, after), (_, before))| (name.to_string(), json!(after - before)))
        .collect();
    let books = world
        .stack
        .wait_balanced(sale, Duration::from_secs(60))
        .await?;
    let (ok, reconcile) = world.stack.reconcile(sale, false).await?;
    Ok((
        json!({
            "phase": "crowd",
            "users": users,
            "units": books.live(),
            "origin_requests": origin_requests,
            "origin_requests_per_unit": origin_requests / books.live().max(1) as f64,
            "origin_outcomes": outcomes,
            "bot_units": report.summary.bot_units,
            "crowd_rps": report.summary.rps,
            "elapsed_s": report.summary.elapsed_s,
            "drift": reconcile["drift"],
            "reconcile_ok": ok,
        }),
        report,
    ))
}

/// The origin killed (SIGKILL) while a crowd buys, restarted at once: time from the restart
/// until every orphan is completed, and the books after.
pub async fn recovery<R: RedisUnderTest>(
    world: &mut World<R>,
    buyers: usize,
) -> anyhow::Result<Value> {
    let sale = world.create_sale(i64::try_from(buyers)?).await?;
    let prepared = world.buyers(sale, "rec", buyers, CONCURRENCY).await?;
    let base = world.nginx.url();
    let buying = tokio::spawn(async move { measure::buy_all(&base, sale, prepared, 16).await });
    let third = i64::try_from(buyers / 3)?;
    world
        .stack
        .wait_orders(sale, third, Duration::from_secs(60))
        .await?;
    world.stack.origin.kill().await?;
    let orphans = world.stack.books_redis_in_flight(sale).await?;
    let restarted = Instant::now();
    world.stack.origin.restart(None).await?;
    world
        .stack
        .wait_quiet(sale, Duration::from_secs(60))
        .await?;
    let recovery_seconds = restarted.elapsed().as_secs_f64();
    let bought = buying.await??;
    let books = world
        .stack
        .wait_balanced(sale, Duration::from_secs(60))
        .await?;
    let (ok, reconcile) = world.stack.reconcile(sale, false).await?;
    Ok(json!({
        "phase": "recovery",
        "orphans_at_kill": orphans,
        "recovery_seconds": recovery_seconds,
        "buy_statuses": bought.statuses,
        "units": books.live(),
        "drift": reconcile["drift"],
        "reconcile_ok": ok,
    }))
}
