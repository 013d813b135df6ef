//! The global admission rate of a sale, held across all edges and made cheap by leasing: Redis
//! keeps one token bucket per sale (`lua/global_lease.lua`, one second of budget, refilled at
//! `per_second` on Redis `TIME`), and each edge leases `lease` admissions at a time and spends
//! them from a local atomic counter, so the hot path neither awaits nor touches Redis while its
//! slice lasts: one Redis call per slice, not per request.
//!
//! Single flight: when a slice is empty, ONE request fetches the next lease while the others
//! of that sale wait for it (at most the Redis timeout) and then spend from it; waiting costs one
//! round trip of latency, where refusing them would refuse requests at every slice boundary.
//! When a lease leaves the bucket without a whole lease more (a short grant, or a full one that
//! drained it), the edge, once its slice is spent, refuses locally without asking Redis until a
//! whole lease is due. So below the rate an edge makes one call per `lease` admissions; at the
//! rate, each of N edges asks about once per `lease / per_second`, N calls per lease admitted,
//! while the requests refused meanwhile cost nothing. After a failed fetch the edge answers
//! [`LimitError::Backoff`] for [`FAILED_LEASE_BACKOFF`] instead of queueing every request on a
//! dead Redis.
//!
//! An admission whose request is refused further on (the per-UID limit, a replayed pass token,
//! a purchase this edge already knows) is given back to the slice ([`GlobalLimiter::give_back`]):
//! only requests that go on to the origin spend the global budget, so a pass token replayed from
//! many addresses cannot drain it.
//!
//! Slack: admissions an edge leased but never spends are lost, never returned to Redis (so is a
//! lease whose fetching request was dropped mid-call, e.g. by a client gone). The bucket starts
//! full, so the first second of a sale may admit up to `per_second` at once; under sustained
//! demand the bucket stays near empty, and over any interval `T` the sale admits at most
//! `per_second * T` plus what the edges held when it began: one lease slice per edge.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, LazyLock, PoisonError, RwLock,
    },
    time::Duration,
};

use prometheus_client::metrics::counter::Counter;
use redis::{Script, Value};
use redis_layer::Redis;
use tokio::time::Instant;

use super::{count, millis, run_script, Decision, LimitError, Quota};
use crate::config::GlobalConfig;

static LEASE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../../../lua/global_lease.lua")));

/// How long after a failed lease fetch the edge answers [`LimitError::Backoff`] for that sale
/// instead of asking Redis again.
pub const FAILED_LEASE_BACKOFF: Duration = Duration::from_secs(1);

/// `RateLimit-Reset` of the global limit: the bucket holds one second of budget, so it is full
/// again at most a second after admissions stop.
const RESET: Duration = Duration::from_secs(1);

/// The token bucket of a sale; the `{s:<sale>}` hash tag puts it in the sale's slot.
pub fn admit_key(sale: i64) -> String {
    format!("{{s:{sale}}}:admit")
}

/// What `global_lease.lua` answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    /// Admissions taken from the bucket for this edge.
    pub granted: u64,
    /// Time until the next whole token is in the bucket.
    pub next: Duration,
    /// Time until a whole lease is in the bucket: when this edge asks again.
    pub full: Duration,
}

/// One sale's slice on this edge.
#[derive(Debug, Default)]
struct Slice {
    /// Leased admissions not spent yet.
    tokens: AtomicU64,
    /// Until when (µs since the limiter's epoch) this edge refuses without asking Redis.
    empty_until: AtomicU64,
    /// Single flight of lease fetches; holds until when a failed fetch is not retried.
    fetch: tokio::sync::Mutex<Option<Instant>>,
}

impl Slice {
    /// Decides from local state alone: a leased admission, or a refusal while the bucket has no
    /// whole lease for us. `None`: a lease must be fetched.
    fn local(&self, now_us: u64, limit: u64) -> Option<Decision> {
        let taken = self
            .tokens
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
        if let Ok(before) = taken {
            return Some(allow(limit, before - 1));
        }
        let until = self.empty_until.load(Ordering::Acquire);
        (now_us < until).then(|| deny(limit, Duration::from_micros(until - now_us)))
    }

    /// Takes a fetched lease: one admission for the fetching request, the rest for the others.
    /// When the bucket is left without a whole lease, this edge refuses locally (once its slice
    /// is spent) until one is due, and at least until the next token.
    fn store(&self, lease: Lease, now_us: u64, limit: u64) -> Decision {
        if !lease.full.is_zero() || lease.granted == 0 {
            let wait = lease.full.max(lease.next).max(Duration::from_millis(1));
            let until = now_us.saturating_add(micros(wait));
            self.empty_until.store(until, Ordering::Release);
        }
        if lease.granted == 0 {
            return deny(limit, lease.full.max(lease.next));
        }
        let left = lease.granted - 1;
        let before = self.tokens.fetch_add(left, Ordering::AcqRel);
        allow(limit, before + left)
    }
}

fn allow(limit: u64, remaining: u64) -> Decision {
    Decision::Allow(Quota {
        limit,
        remaining,
        reset: RESET,
    })
}

fn deny(limit: u64, retry_after: Duration) -> Decision {
    Decision::Deny {
        retry_after,
        quota: Quota {
            limit,
            remaining: 0,
            reset: RESET.max(retry_after),
        },
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// The global limit on one edge: a slice per sale, leased from Redis.
pub struct GlobalLimiter {
    redis: Redis,
    epoch: Instant,
    /// Slices by sale; one entry per sale this edge has seen (a few dozen bytes each).
    sales: RwLock<HashMap<i64, Arc<Slice>>>,
    /// Lease scripts sent; may be a metric's counter (see [`GlobalLimiter::counting_calls_in`]).
    redis_calls: Counter,
}

impl GlobalLimiter {
    pub fn new(redis: Redis) -> Self {
        Self {
            redis,
            epoch: Instant::now(),
            sales: RwLock::default(),
            redis_calls: Counter::default(),
        }
    }

    /// Counts the lease scripts sent in `calls` (a metric) instead of a private counter.
    pub fn counting_calls_in(mut self, calls: Counter) -> Self {
        self.redis_calls = calls;
        self
    }

    /// Loads `global_lease.lua` into Redis, so that no request pays for a NOSCRIPT retry.
    pub async fn preload(&self) -> Result<(), LimitError> {
        Ok(self.redis.load(&[&LEASE]).await?)
    }

    /// Counts one admission to `sale`. Does not await while this edge's slice has budget; the dry
    /// run is the caller's (`cfg.dry_run` is not read here).
    pub async fn acquire(&self, sale: i64, cfg: &GlobalConfig) -> Result<Decision, LimitError> {
        let limit = u64::from(cfg.per_second);
        let slice = self.slice(sale);
        if let Some(decision) = slice.local(self.now_us(), limit) {
            return Ok(decision);
        }
        let mut failed_until = slice.fetch.lock().await;
        // The fetch this request may have waited for answers it: with its lease or its refusal.
        if let Some(decision) = slice.local(self.now_us(), limit) {
            return Ok(decision);
        }
        let now = Instant::now();
        if let Some(until) = failed_until.filter(|until| now < *until) {
            return Err(LimitError::Backoff {
                what: "global lease",
                retry_after: until - now,
            });
        }
        let wanted = u64::from(cfg.lease.clamp(1, cfg.per_second.max(1)));
        match self.lease(sale, cfg.per_second, wanted).await {
            Ok(lease) => {
                *failed_until = None;
                tracing::debug!(sale, granted = lease.granted, wanted, "global lease");
                Ok(slice.store(lease, self.now_us(), limit))
            }
            Err(error) => {
                *failed_until = Some(now + FAILED_LEASE_BACKOFF);
                tracing::warn!(sale, %error, "global lease failed");
                Err(error)
            }
        }
    }

    /// Gives back an admission of `sale` that [`GlobalLimiter::acquire`] allowed and the request
    /// did not use (it was refused further on): the next request of this edge spends it.
    pub fn give_back(&self, sale: i64) {
        self.slice(sale).tokens.fetch_add(1, Ordering::AcqRel);
    }

    /// Lease scripts sent to Redis since this limiter was built (or by its counter).
    pub fn redis_calls(&self) -> u64 {
        self.redis_calls.get()
    }

    /// Admissions of `sale` leased by this edge and not spent yet.
    pub fn leased(&self, sale: i64) -> u64 {
        self.sales
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&sale)
            .map_or(0, |slice| slice.tokens.load(Ordering::Relaxed))
    }

    async fn lease(&self, sale: i64, per_second: u32, wanted: u64) -> Result<Lease, LimitError> {
        if per_second == 0 {
            return Err(LimitError::Quota {
                field: "global.per_second",
                problem: "must be above 0",
            });
        }
        let mut inv = LEASE.prepare_invoke();
        inv.key(admit_key(sale)).arg(per_second).arg(wanted);
        self.redis_calls.inc();
        let reply: Vec<Value> = run_script(&self.redis, "lease", &inv).await?;
        parse_lease(&reply).ok_or(LimitError::Protocol("global_lease.lua reply"))
    }

    fn slice(&self, sale: i64) -> Arc<Slice> {
        let known = self
            .sales
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&sale)
            .cloned();
        known.unwrap_or_else(|| {
            let mut sales = self.sales.write().unwrap_or_else(PoisonError::into_inner);
            Arc::clone(sales.entry(sale).or_default())
        })
    }

    fn now_us(&self) -> u64 {
        micros(self.epoch.elapsed())
    }
}

fn parse_lease(reply: &[Value]) -> Option<Lease> {
    Some(Lease {
        granted: count(reply.first())?,
        next: millis(reply.get(1))?,
        full: millis(reply.get(2))?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: u64 = 200;

    fn lease(granted: u64, next_ms: u64, full_ms: u64) -> Lease {
        Lease {
            granted,
            next: Duration::from_millis(next_ms),
            full: Duration::from_millis(full_ms),
        }
    }

    /// A decision as `Ok(remaining)` or `Err(retry_after ms)`.
    fn short(decision: Option<Decision>) -> Option<Result<u64, u128>> {
        decision.map(|d| match d {
            Decision::Allow(q) => Ok(q.remaining),
            Decision::Deny { retry_after, .. } => Err(retry_after.as_millis()),
        })
    }

    /// `lease` stored at 1 ms, then local decisions at the given µs.
    fn check(lease: Lease, first: Result<u64, u128>, later: &[(u64, Option<Result<u64, u128>>)]) {
        let slice = Slice::default();
        assert_eq!(
            short(Some(slice.store(lease, 1_000, LIMIT))),
            Some(first),
            "{lease:?}"
        );
        for (now_us, expected) in later {
            let got = short(slice.local(*now_us, LIMIT));
            assert_eq!(got, *expected, "{lease:?} at {now_us} us");
        }
    }

    #[test]
    fn a_drained_bucket_is_not_asked_again_until_a_whole_lease_is_due() {
        assert_eq!(
            short(Slice::default().local(0, LIMIT)),
            None,
            "nothing leased: fetch"
        );
        // Nothing granted: refused, then refused locally for 100 ms.
        let expected = [
            (1_000, Some(Err(100))),
            (51_000, Some(Err(50))),
            (101_000, None),
        ];
        check(lease(0, 5, 100), Err(100), &expected);
        // Two granted: spent, then refused until a whole lease is due.
        let expected = [(2_000, Some(Ok(0))), (3_000, Some(Err(88))), (91_000, None)];
        check(lease(2, 0, 90), Ok(1), &expected);
        // A full lease that drained the bucket: the same once the slice is spent.
        let expected = [(2_000, Some(Ok(0))), (3_000, Some(Err(48))), (51_000, None)];
        check(lease(2, 0, 50), Ok(1), &expected);
        // A full lease from a bucket holding more: no refusal.
        check(
            lease(3, 0, 0),
            Ok(2),
            &[(2_000, Some(Ok(1))), (2_000, Some(Ok(0))), (2_000, None)],
        );
    }

    #[test]
    fn an_admission_given_back_is_spent_by_the_next_request() {
        let slice = Slice::default();
        assert_eq!(
            short(Some(slice.store(lease(1, 0, 90), 1_000, LIMIT))),
            Some(Ok(0))
        );
        assert_eq!(short(slice.local(2_000, LIMIT)), Some(Err(89)), "drained");
        slice.tokens.fetch_add(1, Ordering::AcqRel);
        assert_eq!(short(slice.local(3_000, LIMIT)), Some(Ok(0)), "given back");
        assert_eq!(short(slice.local(4_000, LIMIT)), Some(Err(87)));
    }

    #[test]
    fn replies_parse_into_leases() {
        let check = |reply: Vec<Value>, expected: Option<Lease>| {
            assert_eq!(parse_lease(&reply), expected, "{reply:?}");
        };
        check(
            vec![Value::Int(20), Value::Int(0), Value::Int(0)],
            Some(lease(20, 0, 0)),
        );
        check(
            vec![Value::Int(0), Value::Int(5), Value::Int(100)],
            Some(lease(0, 5, 100)),
        );
        check(vec![Value::Int(1), Value::Int(5)], None);
        check(vec![Value::Int(-1), Value::Int(0), Value::Int(0)], None);
    }

    #[test]
    fn the_bucket_key_is_in_the_sale_slot() {
        assert_eq!(admit_key(7), "{s:7}:admit");
    }
}
