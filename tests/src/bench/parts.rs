//! Phases that measure one part of the stack on its own, each beside its baseline in the same
//! run: the origin's reservations against `redis-benchmark` of its reserve script; the status
//! JSON from nginx's micro-cache against the edge alone; and a lapsed hold's unit, from the
//! hold's expiry to a second buyer getting it.

use std::time::Duration;

use anyhow::{ensure, Context};
use serde_json::{json, Value};
use tokio::time::Instant;

use super::{
    baselines, measure,
    phases::{self, latency, CONCURRENCY},
    system::median,
    world::World,
};
use crate::{
    load::closed_loop::{self, ClosedLoop},
    redis_under_test::RedisUnderTest,
    wait,
};

/// Stock of the origin phase's sale: more than any run reserves, so every request is a winner.
const ORIGIN_SALE_STOCK: i64 = 5_000_000;

/// A closed loop at the phases' concurrency for `s` seconds.
pub(super) fn closed(
    url: String,
    method: &str,
    body: &str,
    headers: &[(&str, &str)],
    s: f64,
) -> ClosedLoop {
    ClosedLoop {
        url,
        method: method.into(),
        body: body.into(),
        headers: headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        concurrency: CONCURRENCY,
        duration: Duration::from_secs_f64(s),
    }
}

/// The origin alone: a closed-loop client reserving straight at the origin
/// (`POST /v1/sales/{id}/reserve`, a new uid each time, so every request is a winner: the
/// reservation script, the branch into PostgreSQL and the completion), rounds alternated with
/// `redis-benchmark` EVALSHA of `reserve.lua` at the same concurrency; medians.
pub async fn origin_alone<R: RedisUnderTest>(
    world: &World<R>,
    rounds: usize,
    seconds: f64,
) -> anyhow::Result<Value> {
    let sale = world.create_sale(ORIGIN_SALE_STOCK).await?;
    let url = format!("{}/v1/sales/{sale}/reserve", world.stack.origin.url());
    let redis_meter = phases::redis_meter(world)?;
    let (mut origin, mut redis, mut last) = (Vec::new(), Vec::new(), None);
    for round in 0..rounds {
        // `{n}` is unique within a loop; the round makes it unique across loops.
        let o = closed_loop::run(&closed(
            url.clone(),
            "POST",
            &format!("{{\"uid\":\"origin-{round}-{{n}}\"}}"),
            &[],
            seconds,
        ))
        .await?;
        ensure!(
            o.statuses.keys().all(|s| *s == 200),
            "the origin answered other than 200: {:?}",
            o.statuses
        );
        let (rps, _) = baselines::redis_reserve_run(world, &redis_meter).await?;
        origin.push(o.rps);
        redis.push(rps);
        last = Some(o);
    }
    let last = last.context("no round")?;
    let books = world
        .stack
        .wait_balanced(sale, Duration::from_secs(60))
        .await?;
    let (origin_rps, redis_rps) = (median(&mut origin.clone()), median(&mut redis.clone()));
    Ok(json!({
        "phase": "origin_alone",
        "rounds": rounds,
        "origin_reserve_rps": origin_rps,
        "redis_benchmark_evalsha_reserve_rps": redis_rps,
        "ratio_vs_redis": origin_rps / redis_rps,
        "origin_rounds_rps": origin,
        "redis_rounds_rps": redis,
        "latency": latency(&last),
        "live_orders": books.live(),
        "redis_remaining": books.redis_remaining,
    }))
}

/// The status JSON polled through nginx (its 1 s micro-cache, a new client address per request
/// as a crowd of browsers behind the CDN), rounds alternated with the same poll at the edge
/// alone; medians, and how many of nginx's requests reached the edges.
pub async fn status_cache<R: RedisUnderTest>(
    world: &World<R>,
    rounds: usize,
    seconds: f64,
) -> anyhow::Result<Value> {
    let sale = world.create_sale(100).await?;
    let path = format!("/api/sales/{sale}/status");
    let xff = [("x-forwarded-for", "{ip}")];
    let (mut cached, mut alone) = (Vec::new(), Vec::new());
    let (mut nginx_requests, mut edge_requests) = (0u64, 0u64);
    let mut last = None;
    for _ in 0..rounds {
        let before = edge_status_requests(world).await?;
        let n = closed_loop::run(&closed(
            format!("{}{path}", world.nginx.url()),
            "GET",
            "",
            &xff,
            seconds,
        ))
        .await?;
        edge_requests += edge_status_requests(world).await? - before;
        nginx_requests += n.requests;
        ensure!(
            n.statuses.keys().all(|s| *s == 200),
            "nginx answered the status other than 200: {:?}",
            n.statuses
        );
        let e = closed_loop::run(&closed(
            format!("{}{path}", world.edges[0].url()),
            "GET",
            "",
            &[],
            seconds,
        ))
        .await?;
        cached.push(n.rps);
        alone.push(e.rps);
        last = Some((n, e));
    }
    let (n, e) = last.context("no round")?;
    let (cached_rps, alone_rps) = (median(&mut cached.clone()), median(&mut alone.clone()));
    Ok(json!({
        "phase": "status_cache",
        "rounds": rounds,
        "nginx_cached_rps": cached_rps,
        "edge_alone_rps": alone_rps,
        "ratio_cached_vs_edge": cached_rps / alone_rps,
        "nginx_requests": nginx_requests,
        "edge_requests_behind_nginx": edge_requests,
        "edge_requests_per_second_behind_nginx": edge_requests as f64 / (rounds as f64 * seconds),
        "latency_nginx": latency(&n),
        "latency_edge_alone": latency(&e),
    }))
}

async fn edge_status_requests<R: RedisUnderTest>(world: &World<R>) -> anyhow::Result<u64> {
    let mut total = 0;
    for edge in &world.edges {
        total += edge.requests(&world.stack.http, "status").await?;
    }
    Ok(total)
}

/// A lapsed hold, `runs` times: a one-unit sale with a 1 s hold is bought through nginx and left
/// unpaid; from the hold's `expires_at`, how long until every edge takes buys again (the origin's
/// sweeper cancels the hold, returns the unit to Redis, `restocked` reaches the edges) and until a
/// second buyer's buy through nginx gets the unit (nginx's cached 410 lasts up to 1 s more).
pub async fn hold_return<R: RedisUnderTest>(
    world: &World<R>,
    runs: usize,
) -> anyhow::Result<Value> {
    let (mut edges_ms, mut bought_ms) = (Vec::new(), Vec::new());
    for run in 0..runs {
        let (status, body) = world
            .stack
            .post(
                "/v1/sales",
                &json!({"name": "Hold bench", "stock": 1, "hold_seconds": 1}),
            )
            .await?;
        ensure!(status == 201, "create sale: {status} {body}");
        let sale = body["id"].as_i64().context("sale id")?;
        let first = world.buyers(sale, &format!("hold-a{run}"), 1, 1).await?;
        let second = world
            .buyers(sale, &format!("hold-b{run}"), 1, 1)
            .await?
            .pop()
            .context("second buyer")?;
        let sold = measure::buy_all(&world.nginx.url(), sale, first, 1).await?;
        ensure!(
            sold.statuses.get(&200) == Some(&1),
            "the unit was not sold: {:?}",
            sold.statuses
        );
        let expires_at = hold_expiry(world, sale).await?;
        let edges_at = wait_edges_open(world, sale).await?;
        let bought_at = buy_when_open(world, sale, &second).await?;
        edges_ms.push((edges_at - expires_at) * 1000.0);
        bought_ms.push((bought_at - expires_at) * 1000.0);
    }
    Ok(json!({
        "phase": "hold_return",
        "runs": runs,
        "expiry_to_edges_open_ms": median(&mut edges_ms.clone()),
        "expiry_to_bought_through_nginx_ms": median(&mut bought_ms.clone()),
        "runs_edges_ms": edges_ms,
        "runs_bought_ms": bought_ms,
    }))
}

/// The sale's one hold's `expires_at`, as Unix seconds.
async fn hold_expiry<R: RedisUnderTest>(world: &World<R>, sale: i64) -> anyhow::Result<f64> {
    let db = world.stack.postgres.client().await?;
    let row = db
        .query_one(
            "SELECT extract(epoch FROM expires_at)::float8 FROM orders \
             WHERE sale_id = $1 AND status = 'pending'",
            &[&sale],
        )
        .await?;
    Ok(row.get(0))
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Waits until no edge answers the sale's buys with 410; the Unix time it saw that.
async fn wait_edges_open<R: RedisUnderTest>(world: &World<R>, sale: i64) -> anyhow::Result<f64> {
    phases::wait_edges(world, sale, false).await?;
    Ok(unix_now())
}

/// Buys through nginx with `buyer` until the answer is not 410 (a 410, from nginx's cache or an
/// edge's memory, does not spend the pass token); that answer must be the unit. Each attempt
/// comes from another client address, as the crowd's would, so nginx's per-IP limit does not
/// answer them. The Unix time of the 200.
async fn buy_when_open<R: RedisUnderTest>(
    world: &World<R>,
    sale: i64,
    buyer: &super::world::Buyer,
) -> anyhow::Result<f64> {
    let url = format!("{}/api/sales/{sale}/buy", world.nginx.url());
    let started = Instant::now();
    for attempt in 0u32.. {
        let ip = format!("192.168.{}.{}", (attempt >> 8) & 0xff, attempt & 0xff);
        let resp = world
            .stack
            .http
            .post(&url)
            .bearer_auth(&buyer.jwt)
            .header("x-forwarded-for", ip)
            .json(&json!({"pass_token": buyer.pass}))
            .send()
            .await?;
        let status = resp.status();
        if status == 200 {
            return Ok(unix_now());
        }
        ensure!(
            status == 410,
            "the second buyer got {status}: {}",
            resp.text().await.unwrap_or_default()
        );
        ensure!(
            started.elapsed() < Duration::from_secs(30),
            "the returned unit was not buyable through nginx within 30 s"
        );
        tokio::time::sleep(wait::POLL_INTERVAL).await;
    }
    anyhow::bail!("the second buyer ran out of attempts")
}
