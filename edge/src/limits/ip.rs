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
mod tests {
    use governor::clock::FakeRelativeClock;

    use super::*;

    fn limiter(per_second: f64, burst: u32) -> (IpLimiter<FakeRelativeClock>, FakeRelativeClock) {
        let clock = FakeRelativeClock::default();
        let config = RateConfig {
            per_second,
            burst,
            dry_run: false,
        };
        (
            IpLimiter::with_clock(&config, clock.clone()).unwrap(),
            clock,
        )
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn allowed(remaining: u64, reset_ms: u64) -> Option<(u64, u64)> {
        Some((remaining, reset_ms))
    }

    /// Decisions as `Some((remaining, reset ms))` for allow, `None` for deny.
    fn run(
        limiter: &IpLimiter<FakeRelativeClock>,
        from: &str,
        n: usize,
    ) -> Vec<Option<(u64, u64)>> {
        (0..n)
            .map(|_| match limiter.check(ip(from)) {
                Decision::Allow(q) => Some((q.remaining, q.reset.as_millis() as u64)),
                Decision::Deny { .. } => None,
            })
            .collect()
    }

    #[test]
    fn burst_then_deny_and_another_ip_is_unaffected() {
        let (limiter, _) = limiter(2.0, 3);
        assert_eq!(
            run(&limiter, "10.0.0.1", 4),
            [allowed(2, 500), allowed(1, 1000), allowed(0, 1500), None]
        );
        assert_eq!(run(&limiter, "10.0.0.2", 1), [allowed(2, 500)]);
        assert_eq!(limiter.len(), 2);
    }

    #[test]
    fn retry_after_is_the_time_to_the_next_slot() {
        let (limiter, clock) = limiter(0.5, 2);
        run(&limiter, "10.0.0.1", 2);
        clock.advance(Duration::from_millis(500));
        let Decision::Deny { retry_after, quota } = limiter.check(ip("10.0.0.1")) else {
            panic!("the third request within 2 s should be denied");
        };
        assert_eq!(retry_after, Duration::from_millis(1500));
        assert_eq!((quota.limit, quota.remaining), (2, 0));
        assert_eq!(quota.reset, Duration::from_millis(3500));
        clock.advance(retry_after);
        assert_eq!(run(&limiter, "10.0.0.1", 2), [allowed(0, 4000), None]);
    }

    #[test]
    fn ipv6_is_keyed_by_its_64_and_mapped_ipv4_by_its_ipv4() {
        let check = |a: &str, b: &str, same: bool| {
            assert_eq!(key(ip(a)) == key(ip(b)), same, "{a} vs {b}");
        };
        check("2001:db8:1:2::1", "2001:db8:1:2:ffff::9", true);
        check("2001:db8:1:2::1", "2001:db8:1:3::1", false);
        check("::ffff:10.0.0.1", "10.0.0.1", true);
        check("10.0.0.1", "10.0.0.2", false);

        let (limiter, _) = limiter(1.0, 1);
        assert_eq!(run(&limiter, "2001:db8::1", 1), [allowed(0, 1000)]);
        assert_eq!(run(&limiter, "2001:db8::2", 1), [None]);
    }

    #[test]
    fn housekeeping_drops_addresses_once_their_state_is_fresh_again() {
        let (limiter, clock) = limiter(10.0, 5);
        for n in 0..10_000u32 {
            limiter.check(IpAddr::from(n.to_be_bytes()));
        }
        limiter.check(ip("192.168.0.1"));
        limiter.check(ip("192.168.0.1"));
        assert_eq!(limiter.len(), 10_001);
        limiter.housekeeping();
        assert_eq!(limiter.len(), 10_001, "nothing has aged out yet");
        clock.advance(Duration::from_millis(250));
        limiter.housekeeping();
        assert_eq!(
            limiter.len(),
            1,
            "only the address used twice is still remembered"
        );
        clock.advance(Duration::from_millis(100));
        limiter.housekeeping();
        assert!(limiter.is_empty());
    }

    #[tokio::test]
    async fn housekeeping_task_runs_and_ends_with_the_limiter() {
        let (limiter, clock) = limiter(10.0, 1);
        let limiter = Arc::new(limiter);
        limiter.check(ip("10.0.0.1"));
        clock.advance(Duration::from_secs(1));
        let task = limiter.spawn_housekeeping(Duration::from_millis(1));
        let emptied = async {
            while !limiter.is_empty() {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(10), emptied)
            .await
            .expect("housekeeping should drop the aged-out address");
        drop(limiter);
        tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("the task should end once the limiter is dropped")
            .unwrap();
    }

    #[test]
    fn quotas_are_compared_without_dry_run_and_bad_ones_are_refused() {
        let (limiter, _) = limiter(2.0, 5);
        let check = |per_second, burst, dry_run, same| {
            let other = RateConfig {
                per_second,
                burst,
                dry_run,
            };
            assert_eq!(limiter.same_quota(&other), same, "{other:?}");
        };
        check(2.0, 5, true, true);
        check(2.5, 5, false, false);
        check(2.0, 6, false, false);
        let bad = [
            (0.0, 1),
            (-1.0, 1),
            (f64::NAN, 1),
            (1e-300, 1),
            (1e-11, 1),
            (1e-6, 1_000_000),
            (1.0, 0),
        ];
        for (per_second, burst) in bad {
            let config = RateConfig {
                per_second,
                burst,
                dry_run: false,
            };
            assert!(IpLimiter::new(&config).is_err(), "{config:?}");
        }
    }
}
