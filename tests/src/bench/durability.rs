//! The cost of `redis.wait_replicas = 1` on the cluster: the winners' loop with the origin set to
//! 0 (answer once the primary has the reservation) and to 1 (`WAIT 1 <wait_timeout_ms>` first,
//! so an acknowledged reservation is on a replica too), alternated for `rounds` rounds, each on
//! a new sale; winners/s, winner p99, the Redis round trips per winner, and the origin's WAITs by
//! outcome (`acked`, or `short`: no replica within the timeout). Medians.

use serde_json::{json, Value};

use super::{
    counts::{poller_claims, round_trip_count},
    measure,
    phases::CONCURRENCY,
    system::median,
    world::{origin_options, World},
};
use crate::{metrics::sample_sum, origin_process::OriginOptions, redis_cluster::RedisCluster};

/// The origin's WAITs so far, by outcome.
async fn replica_waits(world: &World<RedisCluster>) -> anyhow::Result<(f64, f64, f64)> {
    let text = world.origin_metrics().await?;
    let count = |outcome| sample_sum(&text, "origin_replica_waits_total", &[("outcome", outcome)]);
    Ok((count("acked"), count("short"), count("error")))
}

/// One winners' loop of `winners` buyers with the origin on `wait_replicas`.
async fn one_loop(
    world: &mut World<RedisCluster>,
    wait_replicas: u32,
    winners: usize,
    round: usize,
) -> anyhow::Result<Value> {
    world
        .stack
        .origin
        .restart_with(&OriginOptions {
            wait_replicas,
            ..origin_options()
        })
        .await?;
    let sale = world.create_sale(i64::try_from(winners)?).await?;
    let prefix = format!("wait{wait_replicas}-{round}");
    let buyers = world.buyers(sale, &prefix, winners, CONCURRENCY).await?;
    let waits_before = replica_waits(world).await?;
    world.stack.redis.reset_stats().await?;
    let claims = poller_claims(world).await?;
    let won = measure::buy_all(&world.nginx.url(), sale, buyers, CONCURRENCY).await?;
    let round_trips = round_trip_count(world, claims).await?;
    let waits = replica_waits(world).await?;
    let books = world
        .stack
        .wait_balanced(sale, std::time::Duration::from_secs(60))
        .await?;
    Ok(json!({
        "wait_replicas": wait_replicas,
        "winners": won.statuses.get(&200).copied().unwrap_or(0),
        "winners_per_second": won.attempts as f64 / won.seconds,
        "p50_us": won.p50_us,
        "p99_us": won.p99_us,
        "redis_round_trips_per_winner": round_trips as f64 / won.attempts.max(1) as f64,
        "waits_acked": waits.0 - waits_before.0,
        "waits_short": waits.1 - waits_before.1,
        "waits_error": waits.2 - waits_before.2,
        "statuses": won.statuses,
        "units": books.live(),
    }))
}

/// Median of `key` over the loops with `wait_replicas`.
fn median_of(loops: &[Value], wait_replicas: u32, key: &str) -> f64 {
    let mut values: Vec<f64> = loops
        .iter()
        .filter(|l| l["wait_replicas"] == wait_replicas)
        .filter_map(|l| l[key].as_f64())
        .collect();
    median(&mut values)
}

/// `rounds` rounds of a loop at 0 then at 1; the origin is left at 0, as it started.
pub async fn wait_replicas(
    world: &mut World<RedisCluster>,
    winners: usize,
    rounds: usize,
) -> anyhow::Result<Value> {
    let mut loops = Vec::new();
    for round in 0..rounds {
        for wait in [0, 1] {
            loops.push(one_loop(world, wait, winners, round).await?);
        }
    }
    world.stack.origin.restart_with(&origin_options()).await?;
    let figures = |wait| {
        json!({
            "winners_per_second": median_of(&loops, wait, "winners_per_second"),
            "p99_us": median_of(&loops, wait, "p99_us"),
            "redis_round_trips_per_winner": median_of(&loops, wait, "redis_round_trips_per_winner"),
        })
    };
    let total = |key: &str| -> f64 { loops.iter().filter_map(|l| l[key].as_f64()).sum() };
    let (off, on) = (figures(0), figures(1));
    Ok(json!({
        "phase": "wait_replicas",
        "rounds": rounds,
        "wait_0": off,
        "wait_1": on,
        "winners_ratio_1_vs_0": on["winners_per_second"].as_f64().unwrap_or(f64::NAN)
            / off["winners_per_second"].as_f64().unwrap_or(f64::NAN),
        "waits_acked": total("waits_acked"),
        "waits_short": total("waits_short"),
        "waits_error": total("waits_error"),
        "loops": loops,
    }))
}
