//! The bench's Redis-loss phase: how fast a sale heals after Redis loses data, how many attempts
//! reach PostgreSQL per unit lost meanwhile, and how long buyers get `503` after a Redis outage
//! beyond the outage itself. Buyers go to the origin directly (the edges' captcha and limits are
//! not what is measured here), each asking again after a `503` as the page does.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::ensure;
use serde_json::{json, Value};

use super::{system::median, world::World};
use crate::{metrics, stack::Stack, wait};

/// Units of each run's sale; bought before the loss; of those, the last ones Redis forgets.
const STOCK: i64 = 200;
const BOUGHT: usize = 150;
const FORGOTTEN: usize = 50;
/// Newcomers buying after the loss.
const NEWCOMERS: usize = 300;
/// Buyers at once.
const CONCURRENCY: usize = 32;
/// How long Redis is away in the outage runs.
const OUTAGE: Duration = Duration::from_secs(3);
/// A buyer's pause before asking again after a `503`.
const RETRY_PAUSE: Duration = Duration::from_millis(50);
const DEADLINE: Duration = Duration::from_secs(60);

/// How Redis loses the sale's data in a run.
#[derive(Debug, Clone, Copy)]
enum Loss {
    /// Started again from a copy of its AOF taken before the last reservations.
    LostTail,
    /// Started again with no data.
    Empty,
}

/// `runs` runs of each loss, then `runs` outages; medians.
pub async fn redis_loss(world: &mut World, runs: usize) -> anyhow::Result<Value> {
    let mut tail = Vec::new();
    let mut empty = Vec::new();
    for _ in 0..runs {
        tail.push(one_loss(world, Loss::LostTail).await?);
        empty.push(one_loss(world, Loss::Empty).await?);
    }
    let mut outages = Vec::new();
    for _ in 0..runs {
        outages.push(one_outage(world).await?);
    }
    let pick = |runs: &[Value], key: &str| {
        let mut values: Vec<f64> = runs.iter().filter_map(|r| r[key].as_f64()).collect();
        median(&mut values)
    };
    Ok(json!({
        "phase": "redis_loss",
        "runs": runs,
        "lost_tail_restart_to_healed_ms": pick(&tail, "restart_to_healed_ms"),
        "lost_tail_notice_to_healed_ms": pick(&tail, "notice_to_healed_ms"),
        "lost_tail_attempts_per_unit_lost": pick(&tail, "attempts_per_unit_lost"),
        "empty_restart_to_healed_ms": pick(&empty, "restart_to_healed_ms"),
        "empty_notice_to_healed_ms": pick(&empty, "notice_to_healed_ms"),
        "outage_ms": u64::try_from(OUTAGE.as_millis()).unwrap_or(u64::MAX),
        "outage_503_beyond_ms": pick(&outages, "unavailable_beyond_ms"),
        "runs_lost_tail": tail,
        "runs_empty": empty,
        "runs_outage": outages,
    }))
}

async fn origin_metric(stack: &Stack, name: &str) -> anyhow::Result<f64> {
    let text = metrics::scrape(&stack.http, &format!("{}/metrics", stack.origin.url())).await?;
    Ok(metrics::sample_sum(&text, name, &[]))
}

/// The origin's reserve endpoint, owned (a task can hold it while the stack's Redis restarts).
#[derive(Clone)]
struct Reserve {
    http: reqwest::Client,
    origin: String,
}

impl Reserve {
    fn of(stack: &Stack) -> Self {
        Self {
            http: stack.http.clone(),
            origin: stack.origin.url(),
        }
    }

    async fn status(&self, sale: i64, uid: &str) -> anyhow::Result<u16> {
        let answer = self
            .http
            .post(format!("{}/v1/sales/{sale}/reserve", self.origin))
            .json(&json!({"uid": uid}))
            .send()
            .await?;
        Ok(answer.status().as_u16())
    }

    /// `uids` reserve, `CONCURRENCY` at a time, each asking again after a `503`.
    async fn all(&self, sale: i64, uids: Vec<String>) -> anyhow::Result<()> {
        let queue = Arc::new(tokio::sync::Mutex::new(uids));
        let mut workers = tokio::task::JoinSet::new();
        for _ in 0..CONCURRENCY {
            let (reserve, queue) = (self.clone(), queue.clone());
            workers.spawn(async move {
                loop {
                    let Some(uid) = queue.lock().await.pop() else {
                        return anyhow::Ok(());
                    };
                    let started = Instant::now();
                    while reserve.status(sale, &uid).await? == 503 && started.elapsed() < DEADLINE {
                        tokio::time::sleep(RETRY_PAUSE).await;
                    }
                }
            });
        }
        while let Some(done) = workers.join_next().await {
            done??;
        }
        Ok(())
    }
}

fn uids(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i}")).collect()
}

/// One loss: `BOUGHT` units sold, Redis loses the last `FORGOTTEN` (or everything), newcomers
/// and the forgotten buyers buy; from the restart, how long until the books balance.
async fn one_loss(world: &mut World, loss: Loss) -> anyhow::Result<Value> {
    let reserve = Reserve::of(&world.stack);
    let sale = world.stack.create_sale(STOCK).await?;
    reserve
        .all(sale, uids(&format!("pre{sale}"), BOUGHT - FORGOTTEN))
        .await?;
    world.stack.wait_quiet(sale, DEADLINE).await?;
    let copy = world.stack.redis.copy_aof()?;
    reserve
        .all(sale, uids(&format!("late{sale}"), FORGOTTEN))
        .await?;
    world.stack.wait_quiet(sale, DEADLINE).await?;
    match loss {
        Loss::LostTail => world.stack.redis.restart_from(&copy).await?,
        Loss::Empty => world.stack.redis.restart_empty().await?,
    }
    let restarted = Instant::now();
    let stack = &world.stack;
    let attempts = origin_metric(stack, "origin_branches_total").await?;
    let heal_sum = origin_metric(stack, "origin_heal_seconds_sum").await?;
    let mut crowd = uids(&format!("new{sale}"), NEWCOMERS);
    crowd.extend(uids(&format!("late{sale}"), FORGOTTEN));
    let balanced = async {
        wait::until("drift 0 after the loss", DEADLINE, || async {
            let run = stack.reconcile_run(sale, false).await?;
            Ok(run.code == 0)
        })
        .await
        .map(|_| Instant::now())
    };
    let (bought, balanced) = tokio::join!(reserve.all(sale, crowd), balanced);
    bought?;
    let healed_ms = balanced?.duration_since(restarted).as_secs_f64() * 1000.0;
    let books = stack.wait_balanced(sale, DEADLINE).await?;
    ensure!(
        books.live() == STOCK,
        "the sale did not sell out: {books:?}"
    );
    let reached = origin_metric(stack, "origin_branches_total").await? - attempts;
    let notice_ms = (origin_metric(stack, "origin_heal_seconds_sum").await? - heal_sum) * 1000.0;
    let units_left = (STOCK - i64::try_from(BOUGHT)?) as f64;
    let lost = match loss {
        Loss::LostTail => FORGOTTEN as f64,
        Loss::Empty => BOUGHT as f64,
    };
    Ok(json!({
        "loss": format!("{loss:?}"),
        "restart_to_healed_ms": healed_ms,
        "notice_to_healed_ms": notice_ms,
        "attempts_after_the_loss": reached,
        "units_left": units_left,
        "units_lost": lost,
        "attempts_per_unit_lost": (reached - units_left).max(0.0) / lost,
    }))
}

/// Redis away for `OUTAGE` while a buyer keeps asking: from its restart, how long until a
/// reservation succeeds again.
async fn one_outage(world: &mut World) -> anyhow::Result<Value> {
    let reserve = Reserve::of(&world.stack);
    let sale = world.stack.create_sale(1_000_000).await?;
    world.stack.redis.kill();
    let asking = tokio::spawn(async move {
        let mut n = 0u64;
        loop {
            n += 1;
            if reserve.status(sale, &format!("o{sale}-{n}")).await? == 200 {
                return anyhow::Ok(Instant::now());
            }
            tokio::time::sleep(RETRY_PAUSE).await;
        }
    });
    tokio::time::sleep(OUTAGE).await;
    world.stack.redis.restart().await?;
    let restarted = Instant::now();
    let served = asking.await??;
    Ok(json!({
        "unavailable_beyond_ms": served.saturating_duration_since(restarted).as_secs_f64() * 1000.0,
    }))
}
