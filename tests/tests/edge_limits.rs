//! The edge's Redis-backed limits against a real Redis shared by two "edges" (two limiters on two
//! connections): the per-UID GCRA and its pass-token spending in one EVALSHA, and the global
//! admission rate per sale leased in slices, whose bound and Redis cost are measured here.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "integration tests: a failed unwrap is a failed test, with its message"
)]

use std::{sync::Arc, time::Duration};

use edge::{
    config::{GlobalConfig, RateConfig},
    limits::{
        global::GlobalLimiter,
        uid::{Admission, UidLimiter},
        Decision, LimitError,
    },
};
use flash_tests::redis_server::RedisServer;
use redis::{
    aio::{ConnectionManager, ConnectionManagerConfig},
    AsyncCommands,
};
use tokio::time::Instant;

/// Command timeout of the limiters: generous, so a slow machine does not fail a test.
const TIMEOUT: Duration = Duration::from_secs(5);
const PASS_TTL: u64 = 60;

/// A connection as an edge opens it: one per edge.
async fn edge_connection(redis: &RedisServer, timeout: Duration) -> ConnectionManager {
    let client = redis::Client::open(redis.url()).unwrap();
    let config = ConnectionManagerConfig::new()
        .set_response_timeout(Some(timeout))
        .set_connection_timeout(Some(timeout))
        .set_number_of_retries(1);
    ConnectionManager::new_with_config(client, config)
        .await
        .unwrap()
}

async fn uid_limiter(redis: &RedisServer) -> UidLimiter {
    let limiter = UidLimiter::new(edge_connection(redis, TIMEOUT).await, TIMEOUT);
    limiter.preload().await.unwrap();
    limiter
}

fn rate(per_second: f64, burst: u32, dry_run: bool) -> RateConfig {
    RateConfig {
        per_second,
        burst,
        dry_run,
    }
}

/// `Ok(remaining)` for an admission, the admission itself otherwise.
fn remaining(admission: Admission) -> Result<u64, Admission> {
    match admission {
        Admission::Admitted(quota) => Ok(quota.remaining),
        other => Err(other),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn uid_burst_is_admitted_then_limited_by_the_same_limit_on_two_edges() {
    let redis = RedisServer::start().await.unwrap();
    let edges = [uid_limiter(&redis).await, uid_limiter(&redis).await];
    // One request per 10 s, five at once: the test's own pace cannot refill it.
    let rate = rate(0.1, 5, false);

    let mut seen = Vec::new();
    for n in 0..5 {
        let edge = &edges[n % 2];
        let admission = edge.admit("alice", &format!("a{n}"), &rate, PASS_TTL).await;
        seen.push(remaining(admission.unwrap()));
    }
    assert_eq!(
        seen,
        [Ok(4), Ok(3), Ok(2), Ok(1), Ok(0)],
        "burst over two edges"
    );

    for (n, edge) in edges.iter().enumerate() {
        let jti = format!("over{n}");
        let admission = edge.admit("alice", &jti, &rate, PASS_TTL).await.unwrap();
        let Admission::Limited { retry_after, quota } = admission else {
            panic!("the 6th request of the burst must be limited on edge {n}");
        };
        assert!(
            retry_after > Duration::from_secs(8) && retry_after <= Duration::from_secs(10),
            "retry_after {retry_after:?} should be about one interval (10 s)"
        );
        assert_eq!((quota.limit, quota.remaining), (5, 0));
        assert!(quota.reset >= Duration::from_secs(40), "{quota:?}");
    }

    let other = edges[1].admit("bob", "b0", &rate, PASS_TTL).await.unwrap();
    assert_eq!(remaining(other), Ok(4), "another uid is unaffected");
}

#[tokio::test(flavor = "multi_thread")]
async fn uid_limited_attempt_keeps_its_token_and_a_replay_is_refused() {
    let redis = RedisServer::start().await.unwrap();
    let edge = uid_limiter(&redis).await;
    let strict = rate(0.1, 1, false);
    let mut conn = redis.connection().await.unwrap();

    let first = edge.admit("carol", "t1", &strict, PASS_TTL).await.unwrap();
    assert_eq!(remaining(first), Ok(0));
    let ttl: i64 = conn.ttl("{u:carol}:jti:t1").await.unwrap();
    assert!(
        ttl > 0 && ttl <= 60,
        "spent token remembered for the pass TTL, got {ttl}"
    );

    let replay = edge.admit("carol", "t1", &strict, PASS_TTL).await.unwrap();
    assert_eq!(replay, Admission::Replayed, "a spent token is a replay");

    let limited = edge.admit("carol", "t2", &strict, PASS_TTL).await.unwrap();
    assert!(matches!(limited, Admission::Limited { .. }), "{limited:?}");
    let spent: bool = conn.exists("{u:carol}:jti:t2").await.unwrap();
    assert!(!spent, "a limited attempt must not spend its token");

    // The same token passes once the limit allows it (here: a looser limit).
    let looser = rate(0.1, 3, false);
    let later = edge.admit("carol", "t2", &looser, PASS_TTL).await.unwrap();
    assert_eq!(remaining(later), Ok(1));
}

#[tokio::test(flavor = "multi_thread")]
async fn uid_dry_run_admits_and_spends_but_does_not_advance_the_limit() {
    let redis = RedisServer::start().await.unwrap();
    let edge = uid_limiter(&redis).await;
    let mut conn = redis.connection().await.unwrap();
    let dry = rate(0.1, 1, true);

    assert_eq!(
        remaining(edge.admit("dave", "d1", &dry, PASS_TTL).await.unwrap()),
        Ok(0)
    );
    for jti in ["d2", "d3", "d4"] {
        let would = edge.admit("dave", jti, &dry, PASS_TTL).await.unwrap();
        assert!(matches!(would, Admission::WouldLimit { .. }), "{would:?}");
        assert!(would.passes());
        let spent: bool = conn.exists(format!("{{u:dave}}:jti:{jti}")).await.unwrap();
        assert!(spent, "a dry run spends the token of what it lets through");
    }
    let enforced = rate(0.1, 1, false);
    let admission = edge.admit("dave", "d5", &enforced, PASS_TTL).await.unwrap();
    let Admission::Limited { retry_after, .. } = admission else {
        panic!("over the limit once enforced");
    };
    assert!(
        retry_after <= Duration::from_secs(10),
        "dry-run refusals must not push the limit further ({retry_after:?})"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn uid_admit_costs_one_evalsha() {
    let redis = RedisServer::start().await.unwrap();
    let edge = uid_limiter(&redis).await;
    redis.reset_stats().await.unwrap();

    let rate = rate(0.1, 3, false);
    let mut outcomes = Vec::new();
    for n in 0..10 {
        // Admitted, admitted, admitted, then limited; every other one a replay of the first.
        let jti = if n % 2 == 1 {
            "e0".to_string()
        } else {
            format!("e{n}")
        };
        outcomes.push(edge.admit("erin", &jti, &rate, PASS_TTL).await.unwrap());
    }
    assert!(outcomes.contains(&Admission::Replayed));
    assert!(outcomes
        .iter()
        .any(|o| matches!(o, Admission::Limited { .. })));

    let stats = redis.command_stats().await.unwrap();
    assert_eq!(
        stats.get("evalsha"),
        Some(&10),
        "one EVALSHA per admit: {stats:?}"
    );
    for absent in ["eval", "script|load"] {
        assert!(
            !stats.contains_key(absent),
            "{absent} after preload: {stats:?}"
        );
    }
}

async fn global_limiter(redis: &RedisServer, timeout: Duration) -> Arc<GlobalLimiter> {
    let limiter = GlobalLimiter::new(edge_connection(redis, timeout).await, timeout);
    limiter.preload().await.unwrap();
    Arc::new(limiter)
}

#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    admitted: u64,
    denied: u64,
}

/// Requests `sale` on `limiter` as fast as it answers until `deadline`.
async fn hammer(
    limiter: Arc<GlobalLimiter>,
    sale: i64,
    cfg: GlobalConfig,
    deadline: Instant,
) -> Tally {
    let mut tally = Tally::default();
    while Instant::now() < deadline {
        match limiter.acquire(sale, &cfg).await.unwrap() {
            Decision::Allow(_) => tally.admitted += 1,
            Decision::Deny { retry_after, .. } => {
                assert!(retry_after <= Duration::from_secs(1), "{retry_after:?}");
                tally.denied += 1;
            }
        }
        // Local admissions complete at once: let the other tasks (and the connection) run.
        tokio::task::yield_now().await;
    }
    tally
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn global_rate_holds_across_two_edges_within_one_lease_per_edge() {
    let redis = RedisServer::start().await.unwrap();
    let edges = [
        global_limiter(&redis, TIMEOUT).await,
        global_limiter(&redis, TIMEOUT).await,
    ];
    redis.reset_stats().await.unwrap();
    let cfg = GlobalConfig {
        per_second: 200,
        lease: 20,
        dry_run: false,
    };
    let sale = 42;

    let start = Instant::now();
    let deadline = start + Duration::from_secs(2);
    let mut tasks = tokio::task::JoinSet::new();
    for edge in &edges {
        for _ in 0..3 {
            tasks.spawn(hammer(edge.clone(), sale, cfg.clone(), deadline));
        }
    }
    let tallies = tasks.join_all().await;
    let elapsed = start.elapsed().as_secs_f64();

    let admitted: u64 = tallies.iter().map(|t| t.admitted).sum();
    let denied: u64 = tallies.iter().map(|t| t.denied).sum();
    let calls: u64 = edges.iter().map(|e| e.redis_calls()).sum();
    let rate = f64::from(cfg.per_second);
    let bound = rate * elapsed + rate + 2.0 * f64::from(cfg.lease);
    println!(
        "global: {admitted} admitted, {denied} denied in {elapsed:.3} s; {calls} Redis calls: \
         {:.4} per admission, {:.6} per request (1/lease = {:.4})",
        calls as f64 / admitted as f64,
        calls as f64 / (admitted + denied) as f64,
        1.0 / f64::from(cfg.lease),
    );
    assert!(
        admitted as f64 <= bound,
        "admitted {admitted} > per_second x elapsed + capacity + 2 x lease = \
         {rate} x {elapsed:.3} + {rate} + 2 x {} = {bound:.0}",
        cfg.lease
    );
    assert!(
        admitted as f64 >= 0.5 * rate * elapsed,
        "admitted {admitted} < 50% of {rate}/s over {elapsed:.3} s: leasing starves the edges"
    );
    assert!(
        tallies.iter().all(|t| t.admitted > 0),
        "every task gets admissions: {tallies:?}"
    );
    assert!(
        calls as f64 <= 3.0 * admitted as f64 / f64::from(cfg.lease) + 4.0,
        "{calls} Redis calls for {admitted} admissions: not about one per lease"
    );
    let stats = redis.command_stats().await.unwrap();
    assert_eq!(stats.get("evalsha"), Some(&calls), "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn global_below_the_rate_costs_one_redis_call_per_lease() {
    let redis = RedisServer::start().await.unwrap();
    let edges = [
        global_limiter(&redis, TIMEOUT).await,
        global_limiter(&redis, TIMEOUT).await,
    ];
    // Far more budget than the test can ask for: every lease is granted whole.
    let cfg = GlobalConfig {
        per_second: 10_000_000,
        lease: 100,
        dry_run: false,
    };
    let deadline = Instant::now() + Duration::from_millis(500);
    let mut tasks = tokio::task::JoinSet::new();
    for (n, edge) in edges.iter().enumerate() {
        for _ in 0..3 {
            let tally = hammer(edge.clone(), 5, cfg.clone(), deadline);
            tasks.spawn(async move { (n, tally.await) });
        }
    }
    let tallies = tasks.join_all().await;
    for (n, edge) in edges.iter().enumerate() {
        let mine = tallies.iter().filter(|(e, _)| *e == n).map(|(_, t)| *t);
        let (admitted, denied) = mine.fold((0, 0), |(a, d), t| (a + t.admitted, d + t.denied));
        println!(
            "edge {n} below the rate: {admitted} admitted, {} Redis calls ({:.4} per request)",
            edge.redis_calls(),
            edge.redis_calls() as f64 / admitted as f64
        );
        assert_eq!(denied, 0);
        assert_eq!(
            edge.redis_calls(),
            admitted.div_ceil(u64::from(cfg.lease)),
            "one call per lease of {}: {admitted} admitted",
            cfg.lease
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn global_concurrent_requests_share_one_lease_fetch() {
    let redis = RedisServer::start().await.unwrap();
    let edge = global_limiter(&redis, TIMEOUT).await;
    let cfg = GlobalConfig {
        per_second: 1000,
        lease: 100,
        dry_run: false,
    };
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..50 {
        let edge = edge.clone();
        let cfg = cfg.clone();
        tasks.spawn(async move { edge.acquire(7, &cfg).await.unwrap() });
    }
    let decisions = tasks.join_all().await;
    assert!(decisions.iter().all(Decision::is_allowed), "{decisions:?}");
    assert_eq!(
        edge.redis_calls(),
        1,
        "single flight: one fetch for 50 requests"
    );
    assert_eq!(
        edge.leased(7),
        50,
        "the rest of the lease stays on this edge"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn global_empty_bucket_denies_locally_with_retry_after() {
    let redis = RedisServer::start().await.unwrap();
    let edge = global_limiter(&redis, TIMEOUT).await;
    // Two per second, leased two at a time: the bucket starts with one lease.
    let cfg = GlobalConfig {
        per_second: 2,
        lease: 2,
        dry_run: false,
    };
    let mut decisions = Vec::new();
    for _ in 0..50 {
        decisions.push(edge.acquire(9, &cfg).await.unwrap());
    }
    let admitted = decisions.iter().filter(|d| d.is_allowed()).count();
    assert_eq!(admitted, 2, "one second of budget: {decisions:?}");
    let Some(Decision::Deny { retry_after, quota }) = decisions.last() else {
        panic!("the 50th request must be denied");
    };
    assert!(
        *retry_after > Duration::ZERO && *retry_after <= Duration::from_secs(1),
        "{retry_after:?}"
    );
    assert_eq!((quota.limit, quota.remaining), (2, 0));
    assert!(
        edge.redis_calls() <= 3,
        "refusals are local until a lease is due, {} calls",
        edge.redis_calls()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn global_failed_lease_is_not_retried_by_every_request() {
    let mut redis = RedisServer::start().await.unwrap();
    let timeout = Duration::from_millis(300);
    let edge = global_limiter(&redis, timeout).await;
    let cfg = GlobalConfig::default();
    redis.kill();

    let first = edge.acquire(3, &cfg).await.unwrap_err();
    assert!(first.is_upstream(), "{first}");
    for _ in 0..20 {
        let again = edge.acquire(3, &cfg).await.unwrap_err();
        assert!(matches!(again, LimitError::Backoff { .. }), "{again}");
    }
    assert_eq!(edge.redis_calls(), 1);
}
