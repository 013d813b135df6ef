//! The per-IP limit, in this edge's memory: governor's keyed GCRA (a `DashMap` of one 8-byte
//! state per key) over `tokio::time`. IPv4 addresses are keyed as they are (an IPv4-mapped
//! IPv6 address counts as its IPv4 address); IPv6 addresses by their /64, the block one host is
//! usually given, so that a host cannot walk its own /64 to get a fresh bucket per request. The
//! same limiter counts by user ([`UserKey`]) for the captcha endpoints' per-user limit.
//!
//! Memory stays bounded: a key's state is dropped by [`KeyedLimiter::housekeeping`] once it is
//! indistinguishable from a fresh one (governor keeps it one interval longer: at most
//! `(burst + 1) / per_second` after its last request), so the map holds at most the keys seen
//! in that window plus one housekeeping period: memory follows the rate of new addresses (or
//! users), not their total.

use std::{
    hash::{BuildHasher, Hash},
    net::{IpAddr, Ipv6Addr},
    num::NonZeroU32,
    ops::Add,
    sync::{Arc, Weak},
    time::Duration,
};

use governor::{
    clock::{Clock, Reference},
    middleware::StateInformationMiddleware,
    nanos::Nanos,
    state::keyed::DashMapStateStore,
    RateLimiter,
};
use tokio::task::JoinHandle;

use super::{Decision, LimitError, Quota};
use crate::config::RateConfig;

/// Governor's clock on `tokio::time`, so the limiter keeps the services' one time source.
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioClock;

/// A `tokio::time::Instant` as governor measures it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct TokioInstant(tokio::time::Instant);

impl Add<Nanos> for TokioInstant {
    type Output = Self;

    fn add(self, other: Nanos) -> Self {
        Self(self.0 + Duration::from(other))
    }
}

impl Reference for TokioInstant {
    fn duration_since(&self, earlier: Self) -> Nanos {
        self.0.saturating_duration_since(earlier.0).into()
    }

    fn saturating_sub(&self, duration: Nanos) -> Self {
        self.0
            .checked_sub(duration.into())
            .map_or(*self, TokioInstant)
    }
}

impl Clock for TokioClock {
    type Instant = TokioInstant;

    fn now(&self) -> TokioInstant {
        TokioInstant(tokio::time::Instant::now())
    }
}

type Keyed<K, C> = RateLimiter<K, DashMapStateStore<K>, C, StateInformationMiddleware>;

/// What a limiter counts by: an address (IPv6 by its /64), or a user ([`UserKey`]).
pub trait Bucket: Clone + Hash + Eq {
    /// The bucket this key counts in.
    fn bucket(&self) -> Self;
}

impl Bucket for IpAddr {
    fn bucket(&self) -> Self {
        key(*self)
    }
}

/// A user as a limiter counts them: a hash of the uid keyed at random per process (8 bytes of
/// state whatever the uid's length; nobody outside can aim two uids at one bucket).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UserKey(u64);

impl UserKey {
    pub fn of(uid: &str) -> Self {
        static HASHER: std::sync::OnceLock<std::collections::hash_map::RandomState> =
            std::sync::OnceLock::new();
        Self(HASHER.get_or_init(Default::default).hash_one(uid))
    }
}

impl Bucket for UserKey {
    fn bucket(&self) -> Self {
        *self
    }
}

/// The per-IP limit (`KeyedLimiter` counted by address).
pub type IpLimiter<C = TokioClock> = KeyedLimiter<IpAddr, C>;
/// A per-user limit in this edge's memory.
pub type UserLimiter = KeyedLimiter<UserKey, TokioClock>;

/// A limit per key: `burst` requests at once, then one per `1 / per_second` seconds.
pub struct KeyedLimiter<K: Bucket, C: Clock = TokioClock> {
    config: RateConfig,
    /// Replenish interval, for `reset`.
    interval: Duration,
    burst: u32,
    clock: C,
    limiter: Keyed<K, C>,
}

impl<K: Bucket> KeyedLimiter<K, TokioClock> {
    pub fn new(config: &RateConfig) -> Result<Self, LimitError> {
        Self::with_clock(config, TokioClock)
    }
}

impl<K: Bucket, C: Clock + Clone> KeyedLimiter<K, C> {
    /// A limiter on another clock (tests use governor's `FakeRelativeClock`).
    pub fn with_clock(config: &RateConfig, clock: C) -> Result<Self, LimitError> {
        let interval = interval(config.per_second)?;
        let burst = NonZeroU32::new(config.burst).ok_or(LimitError::Quota {
            field: "burst",
            problem: "must be at least 1",
        })?;
        // Governor counts time in u64 nanoseconds, a full bucket's refill included.
        let refill = interval.as_nanos().saturating_mul(u128::from(burst.get()));
        if refill > u128::from(u64::MAX) {
            return Err(LimitError::Quota {
                field: "per_second",
                problem: "is too low for the burst: a full refill must take under 584 years",
            });
        }
        let quota = governor::Quota::with_period(interval)
            .ok_or(LimitError::Quota {
                field: "per_second",
                problem: "is too high",
            })?
            .allow_burst(burst);
        let limiter: Keyed<K, C> =
            RateLimiter::new(quota, DashMapStateStore::default(), clock.clone());
        Ok(Self {
            config: config.clone(),
            interval,
            burst: burst.get(),
            clock,
            limiter,
        })
    }

    /// The config this limiter was built from. A reload keeps the limiter (and its state) when
    /// [`KeyedLimiter::same_quota`] holds for the new config, and builds a new one otherwise.
    pub fn config(&self) -> &RateConfig {
        &self.config
    }

    /// Whether `other` asks for the same rate and burst (`dry_run` is the caller's business).
    pub fn same_quota(&self, other: &RateConfig) -> bool {
        self.config.per_second == other.per_second && self.config.burst == other.burst
    }

    /// Counts one request of `key` (an IP: from that address or its /64). On allow, `remaining` is governor's remaining burst
    /// capacity (exact) and `reset` is `(burst - remaining)` intervals: the time until the bucket
    /// is full again, rounded up to a whole interval. On deny, `retry_after` is exact and `reset`
    /// adds the `burst - 1` intervals that follow.
    pub fn check(&self, key: K) -> Decision {
        let limit = u64::from(self.burst);
        match self.limiter.check_key(&key.bucket()) {
            Ok(state) => {
                let remaining = state.remaining_burst_capacity();
                Decision::Allow(Quota {
                    limit,
                    remaining: u64::from(remaining),
                    reset: self.intervals(self.burst.saturating_sub(remaining)),
                })
            }
            Err(not_until) => {
                let retry_after = not_until.wait_time_from(self.clock.now());
                Decision::Deny {
                    retry_after,
                    quota: Quota {
                        limit,
                        remaining: 0,
                        reset: retry_after.saturating_add(self.intervals(self.burst - 1)),
                    },
                }
            }
        }
    }

    fn intervals(&self, n: u32) -> Duration {
        self.interval.checked_mul(n).unwrap_or(Duration::MAX)
    }

    /// Drops the addresses whose state is as good as fresh and gives the freed memory back.
    pub fn housekeeping(&self) {
        let before = self.limiter.len();
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
        let kept = self.limiter.len();
        tracing::debug!(before, kept, "ip limiter housekeeping");
    }

    /// Addresses (IPv6: /64 blocks) currently holding state.
    pub fn len(&self) -> usize {
        self.limiter.len()
    }

    pub fn is_empty(&self) -> bool {
        self.limiter.is_empty()
    }
}

impl<K: Bucket + Send + Sync + 'static, C: Clock + Clone + Send + Sync + 'static>
    KeyedLimiter<K, C>
{
    /// Runs [`KeyedLimiter::housekeeping`] every `every` until the limiter is dropped (a reload
    /// that changed the quota drops the old one, and its task ends with it).
    pub fn spawn_housekeeping(self: &Arc<Self>, every: Duration) -> JoinHandle<()> {
        let limiter: Weak<Self> = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticks.tick().await;
            loop {
                ticks.tick().await;
                let Some(limiter) = limiter.upgrade() else {
                    return;
                };
                limiter.housekeeping();
            }
        })
    }
}

/// The replenish interval of `per_second`, which may be fractional (0.5 = one every 2 s).
fn interval(per_second: f64) -> Result<Duration, LimitError> {
    let bad = |problem| LimitError::Quota {
        field: "per_second",
        problem,
    };
    if per_second.is_nan() || per_second <= 0.0 {
        return Err(bad("must be above 0"));
    }
    match Duration::try_from_secs_f64(1.0 / per_second) {
        Ok(interval) if interval.is_zero() => Err(bad("is too high")),
        Ok(interval) => Ok(interval),
        Err(_) => Err(bad("is too low")),
    }
}

/// The key of an address: IPv4 as is, IPv6 by its /64.
fn key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(Ipv6Addr::from(prefix))
        }
        v4 => v4,
    }
}

#[cfg(test)]
mod tests;
