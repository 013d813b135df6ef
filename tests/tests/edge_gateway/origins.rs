//! The edge's origins failing, as processes: an origin down gets a 503 at once and requests flow
//! again when it is back; a dead or a stalled origin beside a live one is taken out after its
//! first failure and retried after its dead period.

use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use flash_tests::{
    edge_binary,
    edge_process::{EdgeOptions, EdgeProcess},
    gateway::World,
    net, origin_binary,
    origin_process::OriginOptions,
    stack::Stack,
    wait,
};
use serde_json::json;
use tokio::time::Instant;

use crate::{buy, jwt, pass, start};

/// Time the test's HTTP client may add to an answer the edge gives within a deadline.
const CLIENT_MARGIN: Duration = Duration::from_millis(300);

#[tokio::test(flavor = "multi_thread")]
async fn origin_down_gets_503_json_at_once_and_requests_flow_again_when_it_is_back() {
    let mut world = start(1, EdgeOptions::default()).await;
    let sale = world.stack.create_sale(5).await.unwrap();
    let alice = jwt("alice");
    let pass_a = pass(&world, 0, &alice, sale).await;
    world.stack.origin.kill().await.unwrap();

    let started = Instant::now();
    let (status, body) = buy(&world, 0, Some(&alice), sale, &pass_a).await;
    let elapsed = started.elapsed();
    let timeout = Duration::from_millis(EdgeOptions::default().origin_timeout_ms);
    println!("origin down: {status} after {elapsed:?} (origin timeout {timeout:?})");
    assert_eq!(
        (status, body["error"].as_str()),
        (503, Some("origin_unavailable")),
        "{body}"
    );
    assert!(
        elapsed < timeout + CLIENT_MARGIN,
        "503 after {elapsed:?}: not within the origin timeout of {timeout:?}"
    );

    world.stack.origin.restart(None).await.unwrap();
    let bob = jwt("bob");
    let http = world.http().clone();
    let edge_url = world.edge(0).url();
    // The origin is retried once its dead period (200 ms in tests) has passed.
    wait::until("buys flow again", Duration::from_secs(10), || {
        let http = http.clone();
        let bob = bob.clone();
        let edge_url = edge_url.clone();
        async move {
            let pass = flash_tests::shopper::pass_token(&http, &edge_url, &bob, sale, None).await?;
            let status = http
                .post(format!("{edge_url}/api/sales/{sale}/buy"))
                .bearer_auth(&bob)
                .json(&json!({"pass_token": pass}))
                .send()
                .await?
                .status();
            Ok(status == 200)
        }
    })
    .await
    .unwrap();
}

struct StalledOrigin {
    url: String,
    accepted: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl StalledOrigin {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                held.push(socket);
            }
        });
        Self {
            url,
            accepted,
            task,
        }
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for StalledOrigin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// GET `path` on edge 0: the status and how long the answer took.
async fn timed_get(world: &World, path: &str) -> (u16, Duration) {
    let started = Instant::now();
    let resp = world
        .http()
        .get(format!("{}{path}", world.edge(0).url()))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    resp.bytes().await.unwrap();
    (status, started.elapsed())
}

/// The next sale id no origin knows: each lookup of one reaches an origin (the edge keeps sale
/// facts a second per id).
fn unknown_sale() -> i64 {
    static NEXT: AtomicUsize = AtomicUsize::new(900_000_000);
    i64::try_from(NEXT.fetch_add(1, Ordering::SeqCst)).unwrap()
}

/// Lines of the edge's log about the origin at `url` that contain `what`.
fn log_lines(edge: &EdgeProcess, what: &str, url: &str) -> usize {
    let origin = format!("origin={url}");
    edge.log()
        .lines()
        .filter(|l| l.contains(what) && l.contains(&origin))
        .count()
}

/// Two origins, a bad one (`stalled`: accepts and never answers; else a closed port) and the
/// real one: buys go on through the real one, the bad one is taken out after its first failure
/// (no request waits on it any more) and tried again once `retry_dead_after_ms` has passed.
async fn a_bad_origin_is_taken_out_and_retried(stalled: bool) {
    const TIMEOUT: Duration = Duration::from_millis(1000);
    const DEAD: Duration = Duration::from_millis(4000);
    let stack = Stack::start(origin_binary!(), OriginOptions::default())
        .await
        .unwrap();
    let hung = StalledOrigin::start().await;
    let bad = if stalled {
        hung.url.clone()
    } else {
        format!("http://127.0.0.1:{}", net::free_port())
    };
    let options = EdgeOptions {
        origin_timeout_ms: u64::try_from(TIMEOUT.as_millis()).unwrap(),
        retry_dead_after_ms: u64::try_from(DEAD.as_millis()).unwrap(),
        ..EdgeOptions::default()
    };
    // The bad origin first: the edge's first origin request goes to it.
    let origins = [bad.clone(), stack.origin.url()];
    let edge = EdgeProcess::start(edge_binary!(), &stack.redis.url(), &origins, &options)
        .await
        .unwrap();
    let world = World {
        stack,
        edges: vec![edge],
    };
    let sale = world.stack.create_sale(100).await.unwrap();

    let (status, took) = timed_get(&world, &format!("/api/sales/{sale}/status")).await;
    let taken_out = Instant::now();
    if stalled {
        assert_eq!(status, 503, "the first request waits on the stalled origin");
        assert!(
            took >= TIMEOUT && took < TIMEOUT + CLIENT_MARGIN,
            "503 after {took:?}, the origin timeout is {TIMEOUT:?}"
        );
    } else {
        assert_eq!(
            status, 200,
            "a refused connection moves on to the next origin"
        );
        assert!(took < TIMEOUT, "{took:?}");
    }

    // Taken out: every request goes to the live origin and none waits on the bad one.
    let mut slowest = Duration::ZERO;
    for i in 0..5 {
        let token = jwt(&format!("user{i}"));
        let pass = pass(&world, 0, &token, sale).await;
        let started = Instant::now();
        let (status, body) = buy(&world, 0, Some(&token), sale, &pass).await;
        slowest = slowest.max(started.elapsed());
        assert_eq!(status, 200, "buys go on through the live origin: {body}");
        let (status, took) =
            timed_get(&world, &format!("/api/sales/{}/status", unknown_sale())).await;
        slowest = slowest.max(took);
        assert_eq!(status, 404, "the live origin answers the lookup");
    }
    assert!(
        taken_out.elapsed() < DEAD,
        "the machine is too slow for this test: the taken-out phase outlasted the dead period"
    );
    println!(
        "bad origin (stalled: {stalled}): first request {took:?}, then the slowest of 10 {slowest:?}"
    );
    assert!(
        slowest < TIMEOUT / 2,
        "a request waited on the taken-out origin: {slowest:?}"
    );
    let edge = world.edge(0);
    assert_eq!(log_lines(edge, "taken out", &bad), 1, "{}", edge.log_tail());
    assert_eq!(log_lines(edge, "retrying an origin taken out", &bad), 0);
    if stalled {
        assert_eq!(hung.accepted(), 1, "the stalled origin is not asked again");
    }

    // Retried once the dead period is over: a lookup probes it (the stalled one sees a new
    // connection and that lookup costs the timeout once more).
    wait::until(
        "the taken-out origin is tried again",
        DEAD + Duration::from_secs(15),
        || async {
            timed_get(&world, &format!("/api/sales/{}/status", unknown_sale())).await;
            Ok(if stalled {
                hung.accepted() >= 2
            } else {
                log_lines(edge, "retrying an origin taken out", &bad) >= 1
            })
        },
    )
    .await
    .unwrap();
    let retried_after = taken_out.elapsed();
    println!(
        "bad origin (stalled: {stalled}): tried again {retried_after:?} after it was taken out"
    );
    assert!(
        retried_after >= DEAD - Duration::from_millis(100),
        "tried again after {retried_after:?}, before the dead period of {DEAD:?}"
    );
    assert_eq!(log_lines(edge, "retrying an origin taken out", &bad), 1);

    // Still failing: out again, and buys still go on.
    let token = jwt("late");
    let pass = pass(&world, 0, &token, sale).await;
    let started = Instant::now();
    assert_eq!(buy(&world, 0, Some(&token), sale, &pass).await.0, 200);
    assert!(started.elapsed() < TIMEOUT / 2, "{:?}", started.elapsed());
    world.stack.books(sale).await.unwrap().check().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_origin_beside_a_live_one_is_taken_out_and_retried_after_its_dead_period() {
    a_bad_origin_is_taken_out_and_retried(false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stalled_origin_beside_a_live_one_costs_one_timeout_and_is_retried_after_its_dead_period()
{
    a_bad_origin_is_taken_out_and_retried(true).await;
}
