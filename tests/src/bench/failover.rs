//! Failover on the cluster, through nginx and the edges: buyers with pass tokens buy two sales,
//! one on the primary about to be killed (`kill -9` once a third of its stock is sold) and one on
//! another primary; a buyer answered 503 (or not answered) asks again with the same pass token
//! after a short pause (faster than the page, which waits the answer's `Retry-After`, so that the
//! failing seconds are measured finely), and one answered 429 (nginx's per-address burst, spent
//! by those quick retries) after the 429's `Retry-After`. Per run: how long the victim's buys
//! failed and the failover took, the units lost by the promotion (reserved answers without an
//! order) and the heals, the drift once the books balance, and the failed answers of the sale on
//! the other primary. The killed node is started
//! again (it rejoins as a replica) and the cluster awaited before the next run. Medians of `runs`.

use std::{
    collections::{BTreeMap, HashSet},
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::{ensure, Context};
use serde_json::{json, Value};
use tokio::time::Instant;

use super::{
    phases::CONCURRENCY,
    system::median,
    world::{origin_options, Buyer, World},
};
use crate::{
    metrics::sample_sum, origin_process::OriginOptions, redis_cluster::RedisCluster,
    redis_under_test::RedisUnderTest, wait,
};

/// Units of each sale in a run.
const STOCK: usize = 600;
/// Buyers of each sale: half as many again as units, so that the sale sells out.
const BUYERS: usize = STOCK * 3 / 2;
/// Buyers asking at once, per sale.
const WORKERS: usize = 16;
/// How long one buyer keeps asking again after failures.
const BUYER_DEADLINE: Duration = Duration::from_secs(60);
/// The pause before a failed attempt is asked again.
const RETRY_PAUSE: Duration = Duration::from_millis(50);

/// One answer a buyer got: when it was asked and when answered (seconds since the run started).
#[derive(Debug, Clone)]
struct Answer {
    uid: String,
    status: u16,
    sent: f64,
    at: f64,
}

impl Answer {
    /// The stack turned the buyer away for a failure of its own (a 5xx, or no answer).
    fn failed(&self) -> bool {
        self.status == 0 || self.status >= 500
    }

    /// The stack answered the buy itself: the unit, or a definite no (sold out, bought already).
    fn answered(&self) -> bool {
        matches!(self.status, 200 | 409 | 410)
    }
}

/// How long buying was stopped: from the first failed answer until a buy asked after it was
/// answered (0 when none failed; to the last answer when none was).
fn failing_seconds(answers: &[Answer]) -> f64 {
    let Some(first) = answers
        .iter()
        .filter(|a| a.failed())
        .map(|a| a.at)
        .min_by(f64::total_cmp)
    else {
        return 0.0;
    };
    let back = answers
        .iter()
        .filter(|a| a.answered() && a.sent > first)
        .map(|a| a.at)
        .min_by(f64::total_cmp)
        .or_else(|| answers.iter().map(|a| a.at).max_by(f64::total_cmp))
        .unwrap_or(first);
    back - first
}

/// The answers of one crowd so far, shared with whoever watches it.
type Answers = Arc<Mutex<Vec<Answer>>>;

/// Every buyer of `buyers` buys `sale` through `base`, asking again after each failure; each
/// answer goes into `answers` as it arrives. Buyer `i` comes from its own address in
/// `10.<net>.0.0/16` (nginx's per-address limit is not what this measures).
async fn buy_retrying(
    http: reqwest::Client,
    base: String,
    sale: i64,
    net: u8,
    buyers: Vec<Buyer>,
    started: Instant,
    answers: Answers,
) {
    let queue = Arc::new(Mutex::new(
        buyers.into_iter().enumerate().collect::<Vec<_>>(),
    ));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..WORKERS {
        let (http, queue, answers) = (http.clone(), queue.clone(), answers.clone());
        let url = format!("{base}/api/sales/{sale}/buy");
        workers.spawn(async move {
            loop {
                let next = queue.lock().ok().and_then(|mut q| q.pop());
                let Some((i, buyer)) = next else { break };
                let ip = format!("10.{net}.{}.{}", (i >> 8) & 0xff, i & 0xff);
                let first = Instant::now();
                loop {
                    let asked = started.elapsed().as_secs_f64();
                    let sent = http
                        .post(&url)
                        .bearer_auth(&buyer.jwt)
                        .header("x-forwarded-for", &ip)
                        .json(&json!({"pass_token": buyer.pass}))
                        .send()
                        .await;
                    let (status, retry_after) = sent.map_or((0, None), |resp| {
                        let retry_after = resp
                            .headers()
                            .get("retry-after")
                            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
                        (resp.status().as_u16(), retry_after)
                    });
                    let answer = Answer {
                        uid: buyer.uid.clone(),
                        status,
                        sent: asked,
                        at: started.elapsed().as_secs_f64(),
                    };
                    if let Ok(mut answers) = answers.lock() {
                        answers.push(answer);
                    }
                    let pause = match status {
                        0 | 503 => RETRY_PAUSE,
                        429 => Duration::from_secs(retry_after.unwrap_or(1)),
                        _ => break,
                    };
                    if first.elapsed() >= BUYER_DEADLINE {
                        break;
                    }
                    tokio::time::sleep(pause).await;
                }
            }
        });
    }
    workers.join_all().await;
}

/// What `answers` holds now.
fn taken(answers: &Answers) -> Vec<Answer> {
    answers.lock().map(|a| a.clone()).unwrap_or_default()
}

/// A sale on a primary other than `port`'s.
async fn sale_elsewhere(world: &World<RedisCluster>, port: u16) -> anyhow::Result<i64> {
    for _ in 0..64 {
        let sale = world.create_sale(i64::try_from(STOCK)?).await?;
        if world.stack.redis.port_of(&stock_key(sale)).await? != port {
            return Ok(sale);
        }
    }
    anyhow::bail!("64 sales in a row on the primary on port {port}")
}

fn stock_key(sale: i64) -> String {
    format!("{{s:{sale}}}:stock")
}

async fn origin_counter(world: &World<RedisCluster>, name: &str) -> anyhow::Result<f64> {
    Ok(sample_sum(&world.origin_metrics().await?, name, &[]))
}

/// Statuses of `answers`, counted.
fn statuses(answers: &[Answer]) -> BTreeMap<u16, u64> {
    let mut out = BTreeMap::new();
    for answer in answers {
        *out.entry(answer.status).or_default() += 1;
    }
    out
}

/// One run: the books of both sales are checked (every invariant, drift 0) before it reports.
async fn one_failover(world: &mut World<RedisCluster>, run: usize) -> anyhow::Result<Value> {
    let victim = world.create_sale(i64::try_from(STOCK)?).await?;
    let primary = world.stack.redis.port_of(&stock_key(victim)).await?;
    let other = sale_elsewhere(world, primary).await?;
    let victim_buyers = world
        .buyers(victim, &format!("fo{run}v"), BUYERS, CONCURRENCY)
        .await?;
    let other_buyers = world
        .buyers(other, &format!("fo{run}o"), BUYERS, CONCURRENCY)
        .await?;
    let (heals, losses) = (
        origin_counter(world, "origin_heals_total").await?,
        origin_counter(world, "origin_redis_losses_total").await?,
    );

    let started = Instant::now();
    let base = world.nginx.url();
    let http = world.stack.http.clone();
    let (victim_seen, other_seen) = (Answers::default(), Answers::default());
    let victim_crowd = tokio::spawn(buy_retrying(
        http.clone(),
        base.clone(),
        victim,
        1,
        victim_buyers,
        started,
        victim_seen.clone(),
    ));
    let other_crowd = tokio::spawn(buy_retrying(
        http,
        base,
        other,
        2,
        other_buyers,
        started,
        other_seen.clone(),
    ));
    let third = STOCK / 3;
    let seen = &victim_seen;
    wait::until(
        "a third of the victim's units sold",
        BUYER_DEADLINE,
        || async move { Ok(taken(seen).iter().filter(|a| a.status == 200).count() >= third) },
    )
    .await
    .with_context(|| format!("the victim's answers: {:?}", statuses(&taken(seen))))?;
    let killed_at = started.elapsed().as_secs_f64();
    world.stack.redis.kill(primary)?;
    let promoted = world
        .stack
        .redis
        .wait_failover(&stock_key(victim), primary)
        .await?;
    victim_crowd.await.context("the victim's crowd")?;
    other_crowd.await.context("the other sale's crowd")?;
    let (victim_answers, other_answers) = (taken(&victim_seen), taken(&other_seen));

    let mut drift = 0;
    let mut lost = 0;
    for (sale, answers) in [(victim, &victim_answers), (other, &other_answers)] {
        let books = world
            .stack
            .wait_balanced(sale, Duration::from_secs(60))
            .await?;
        ensure!(
            books.live() == i64::try_from(STOCK)?,
            "sale {sale} not sold out: {books:?}"
        );
        let (_, reconcile) = world.stack.reconcile(sale, false).await?;
        drift += reconcile["drift"].as_i64().unwrap_or(i64::MAX).abs();
        let live = world.stack.live_buyers(sale).await?;
        let told: HashSet<&str> = answers
            .iter()
            .filter(|a| a.status == 200)
            .map(|a| a.uid.as_str())
            .collect();
        lost += told.iter().filter(|uid| !live.contains(**uid)).count();
    }
    let heals = origin_counter(world, "origin_heals_total").await? - heals;
    let losses = origin_counter(world, "origin_redis_losses_total").await? - losses;
    world.stack.redis.restart(primary).await?;
    world.stack.redis.wait_healthy().await?;
    Ok(json!({
        "killed_at_s": killed_at,
        "failover_s": promoted.as_secs_f64(),
        "victim_failing_s": failing_seconds(&victim_answers),
        "victim_failed_answers": victim_answers.iter().filter(|a| a.failed()).count(),
        "victim_statuses": statuses(&victim_answers),
        "other_failed_answers": other_answers.iter().filter(|a| a.failed()).count(),
        "other_statuses": statuses(&other_answers),
        "reserved_without_order": lost,
        "losses_noticed": losses,
        "heals": heals,
        "drift": drift,
    }))
}

/// `runs` failovers, with the origin on the shipped Redis command timeout (1 s: a dead primary
/// is answered 503 within it); the origin is put back as it was after.
pub async fn failovers(world: &mut World<RedisCluster>, runs: usize) -> anyhow::Result<Value> {
    world
        .stack
        .origin
        .restart_with(&OriginOptions {
            redis_timeout_ms: 1000,
            ..origin_options()
        })
        .await?;
    let mut done = Vec::new();
    for run in 0..runs {
        eprintln!("bench: failover {} of {runs} ...", run + 1);
        done.push(one_failover(world, run).await?);
    }
    world.stack.origin.restart_with(&origin_options()).await?;
    let med = |key: &str| {
        let mut values: Vec<f64> = done.iter().filter_map(|r| r[key].as_f64()).collect();
        median(&mut values)
    };
    let most = |key: &str| {
        done.iter()
            .filter_map(|r| r[key].as_f64())
            .fold(0.0, f64::max)
    };
    Ok(json!({
        "phase": "failover",
        "runs": runs,
        "victim_failing_s": med("victim_failing_s"),
        "failover_s": med("failover_s"),
        "reserved_without_order_max": most("reserved_without_order"),
        "heals_max": most("heals"),
        "losses_noticed_max": most("losses_noticed"),
        "drift_max": most("drift"),
        "other_failed_answers_max": most("other_failed_answers"),
        "each": done,
    }))
}
