//! What the bench counts around a measured loop: the Redis round trips the attempts cost (the
//! recovery poller's own calls left out), and the origin's reservations by outcome, read from its
//! metrics.

use super::{
    system::{self, round_trips},
    world::World,
};
use crate::{metrics::sample_sum, redis_under_test::RedisUnderTest};

/// Redis round trips since the last `reset_stats`, less the recovery poller's scripts (its index
/// read every poll and its claims, whatever the load) and the sales' activity marks (one per sale
/// every 5 s, however many attempts): not a cost of any attempt; `claims_before` is their count
/// at the reset.
pub(super) async fn round_trip_count<R: RedisUnderTest>(
    world: &World<R>,
    claims_before: f64,
) -> anyhow::Result<u64> {
    let stats = world.stack.redis.command_stats().await?;
    let all = round_trips(&stats, &system::commands_inside_scripts(&world.lua_dir()));
    let claims = poller_claims(world).await? - claims_before;
    Ok(all.saturating_sub(claims.max(0.0) as u64))
}

pub(super) async fn poller_claims<R: RedisUnderTest>(world: &World<R>) -> anyhow::Result<f64> {
    let text = world.origin_metrics().await?;
    Ok([
        "origin_recovery_claims_total",
        "origin_recovery_index_reads_total",
        "origin_activity_marks_total",
    ]
    .into_iter()
    .map(|name| sample_sum(&text, name, &[]))
    .sum())
}

/// The origin's reservations by outcome (every outcome the origin counts).
pub(super) async fn origin_outcomes<R: RedisUnderTest>(
    world: &World<R>,
) -> anyhow::Result<Vec<(&'static str, f64)>> {
    let text = world.origin_metrics().await?;
    Ok([
        "reserved",
        "duplicate",
        "sold_out",
        "unknown_sale",
        "not_started",
        "ended",
        "stock_unavailable",
        "error",
    ]
    .into_iter()
    .map(|outcome| {
        let n = sample_sum(&text, "origin_reservations_total", &[("outcome", outcome)]);
        (outcome, n)
    })
    .collect())
}

pub(super) async fn origin_reservations<R: RedisUnderTest>(
    world: &World<R>,
) -> anyhow::Result<f64> {
    Ok(sample_sum(
        &world.origin_metrics().await?,
        "origin_reservations_total",
        &[],
    ))
}
