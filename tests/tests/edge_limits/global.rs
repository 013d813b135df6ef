//! The global admission rate per sale, leased in slices: its bound across two edge processes
//! in front of a real origin, its Redis cost, a shared lease fetch, local denial, a failed lease.

use super::*;

async fn global_limiter(redis: &RedisServer, timeout: Duration) -> Arc<GlobalLimiter> {
    let limiter = GlobalLimiter::new(redis.handle(timeout).await.unwrap());
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

/// One buy attempt through an edge process, as the client saw it.
#[derive(Debug, Clone, Copy)]
struct Attempt {
    sent: Instant,
    answered: Instant,
    /// Admitted by the global limit (forwarded: 200); else refused by it (429).
    admitted: bool,
}

/// A buyer loop on the edge at `base` until `end`: every attempt a new user, its JWT and pass
/// token minted here (no captcha round trips), so only the global limit can refuse it.
async fn buyers(
    http: reqwest::Client,
    base: String,
    sale: i64,
    tag: String,
    end: Instant,
) -> Vec<Attempt> {
    let passes = PassTokens::new(CAPTCHA_SECRET.as_bytes(), 60);
    let url = format!("{base}/api/sales/{sale}/buy");
    let mut attempts = Vec::new();
    for n in 0.. {
        let sent = Instant::now();
        if sent >= end {
            break;
        }
        let uid = format!("{tag}-{n}");
        let now_unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let pass = passes.issue(&uid, sale, ANY_LEVEL, now_unix).unwrap();
        let resp = http
            .post(&url)
            .bearer_auth(shopper::jwt(&uid).unwrap())
            .json(&serde_json::json!({ "pass_token": pass }))
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let body: serde_json::Value = resp.json().await.unwrap();
        let admitted = match (status, body["limit"].as_str()) {
            (200, _) => true,
            (429, Some("global")) => false,
            other => panic!("{uid}: only the global limit may refuse: {other:?} {body}"),
        };
        attempts.push(Attempt {
            sent,
            answered: Instant::now(),
            admitted,
        });
    }
    attempts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn global_rate_holds_across_two_edge_processes_within_one_lease_per_edge() {
    const RATE: u32 = 60;
    const LEASE: u32 = 6;
    const EDGES: u32 = 2;
    let origin = origin_binary!();
    let stack = Stack::start(origin, OriginOptions::default())
        .await
        .unwrap();
    let sale = stack.create_sale(1_000_000).await.unwrap();
    let options = EdgeOptions {
        global_per_second: RATE,
        global_lease: LEASE,
        ..EdgeOptions::default()
    };
    let binary = edge_binary!();
    let mut edges = Vec::new();
    for _ in 0..EDGES {
        let edge = EdgeProcess::start(binary, &stack.redis.url(), &[stack.origin.url()], &options)
            .await
            .unwrap();
        edges.push(edge);
    }

    // The bucket starts full (one second of budget): a warm-up drains it, then the window counts.
    let start = Instant::now();
    let window_start = start + Duration::from_millis(1500);
    let window_end = window_start + Duration::from_secs(3);
    let mut tasks = tokio::task::JoinSet::new();
    for (e, edge) in edges.iter().enumerate() {
        for t in 0..6 {
            let tag = format!("g{e}-{t}");
            tasks.spawn(buyers(
                stack.http.clone(),
                edge.url(),
                sale,
                tag,
                window_end,
            ));
        }
    }
    let attempts: Vec<Attempt> = tasks.join_all().await.into_iter().flatten().collect();

    let in_window: Vec<&Attempt> = attempts
        .iter()
        .filter(|a| a.sent >= window_start && a.answered <= window_end)
        .collect();
    let admitted = in_window.iter().filter(|a| a.admitted).count() as f64;
    let window = (window_end - window_start).as_secs_f64();
    let rate = f64::from(RATE);
    let bound = rate * window + f64::from(EDGES * LEASE);
    let admitted_all = attempts.iter().filter(|a| a.admitted).count();
    let mut leases = 0.0;
    let mut admits = 0.0;
    for edge in &edges {
        let metric = "edge_redis_calls_total";
        let lease = [("name", "global_lease")];
        leases += edge.metric(&stack.http, metric, &lease).await.unwrap();
        let admit = [("name", "admit")];
        admits += edge.metric(&stack.http, metric, &admit).await.unwrap();
    }
    println!(
        "global, {EDGES} edge processes, {RATE}/s leased {LEASE} at a time: {admitted} admitted of \
         {} requests in the {window:.1} s window after 1.5 s of warm-up (bound {bound:.0}); over \
         the whole run {admitted_all} of {} requests; {leases} lease calls: {:.4} per admission, \
         {:.5} per request (1/lease = {:.4}); {admits} admit calls (one per admitted request)",
        in_window.len(),
        attempts.len(),
        leases / admitted_all as f64,
        leases / attempts.len() as f64,
        1.0 / f64::from(LEASE),
    );
    assert!(
        in_window.len() as f64 >= 2.0 * rate * window,
        "the edges must be asked for more than the rate for the bound to mean anything"
    );
    assert!(
        admitted <= bound,
        "admitted {admitted} in {window:.1} s > per_second x window + one lease per edge = \
         {rate} x {window:.1} + {EDGES} x {LEASE} = {bound:.0}"
    );
    assert!(
        admitted >= 0.5 * rate * window,
        "admitted {admitted} < 50% of {rate}/s over {window:.1} s: leasing starves the edges"
    );
    assert!(
        leases <= f64::from(EDGES) * 1.5 * admitted_all as f64 / f64::from(LEASE) + 4.0,
        "{leases} lease calls for {admitted_all} admissions: not about one per lease per edge"
    );
    assert!(
        (admits - admitted_all as f64).abs() < f64::EPSILON,
        "refused requests cost no admit call"
    );
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
