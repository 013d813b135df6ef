//! Crashes and outages: the origin killed with SIGKILL at each point where a crash matters, and
//! PostgreSQL stopped in the middle of a sale. After recovery, conservation (I2) is exact,
//! nothing is lost or doubled (I4) and every "reserved" answer has its order (I5).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "integration tests: a failed unwrap is a failed test, with its message"
)]

use flash_tests::origin_binary;
use std::{path::Path, sync::Arc, time::Duration};

use flash_tests::{
    metrics,
    origin_process::{OriginOptions, OriginProcess},
    stack::Stack,
};
use origin::config::ConfigFile;
use serde_json::Value;
use tokio::time::Instant;

/// Generous: the target (orphans done within `recovery.timeout` of the restart) is a benchmark
/// figure, not an assertion.
const RECOVERY_DEADLINE: Duration = Duration::from_secs(30);

fn crashable_origin() -> &'static Path {
    if cfg!(not(debug_assertions)) {
        panic!(
            "crash points are armed in debug builds only: run the crash tests without --release"
        );
    }
    origin_binary!()
}

/// The test settings with the recovery of the shipped config (`deploy/origin.toml`: timeout,
/// poll interval, lease), so that the recovery time printed is the one a deployment gets.
fn shipped_recovery() -> OriginOptions {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/origin.toml");
    // The webhook key ships empty (the origin refuses to start on it): the tests' key in its place.
    let text = std::fs::read_to_string(&path).unwrap().replace(
        "webhook_secret = \"\"",
        &format!(
            "webhook_secret = \"{}\"",
            flash_tests::origin_process::PAYMENT_WEBHOOK_SECRET
        ),
    );
    let shipped = origin::config::Config::parse(&text, "deploy/origin.toml")
        .unwrap()
        .recovery;
    let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap();
    OriginOptions {
        recovery_timeout_ms: ms(shipped.timeout),
        poll_interval_ms: ms(shipped.poll_interval),
        lease_ms: ms(shipped.lease),
        ..OriginOptions::default()
    }
}

/// Sends one reservation per uid, all at once: (uid, Ok(status, body)) or a transport error.
async fn crowd(
    stack: &Arc<Stack>,
    sale: i64,
    uids: impl Iterator<Item = String>,
) -> Vec<(String, Option<(u16, Value)>)> {
    let mut tasks = tokio::task::JoinSet::new();
    for uid in uids {
        let stack = stack.clone();
        tasks.spawn(async move {
            let answer = stack.reserve(sale, &uid).await.ok();
            (uid, answer)
        });
    }
    tasks.join_all().await
}

/// Arms `point` on the Nth visit, sends a crowd, waits for the crash, restarts the origin and
/// waits for recovery; then checks the books.
async fn crash_and_recover(point: &str, options: OriginOptions) {
    let timeout = Duration::from_millis(options.recovery_timeout_ms);
    let shipped = options.recovery_timeout_ms == shipped_recovery().recovery_timeout_ms;
    let mut stack = Stack::start(crashable_origin(), options).await.unwrap();
    let sale = stack.create_sale(20).await.unwrap();
    for i in 0..3 {
        assert_eq!(
            stack.reserve(sale, &format!("before-{i}")).await.unwrap().0,
            200
        );
    }

    stack
        .origin
        .restart(Some(&format!("{point}:4")))
        .await
        .unwrap();
    let stack_arc = Arc::new(stack);
    let answers = crowd(&stack_arc, sale, (0..12).map(|i| format!("crowd-{i}"))).await;
    let mut stack = Arc::into_inner(stack_arc).unwrap();
    let status = stack
        .origin
        .wait_exit(Duration::from_secs(30))
        .await
        .unwrap();
    let cut_off = answers.iter().filter(|a| a.1.is_none()).count();
    println!("{point}: origin exited with {status}; {cut_off} requests cut off");
    assert!(!status.success(), "the crash point must kill the origin");
    assert!(cut_off >= 1, "the crash must cut a request off");

    // The unit taken before the crash is not in PostgreSQL yet, or not completed in Redis.
    let before = stack.books(sale).await.unwrap();
    assert!(
        before.in_flight >= 1,
        "a transaction must be left in flight: {before:?}"
    );
    before.check().unwrap();

    let restarted = Instant::now();
    stack.origin.restart(None).await.unwrap();
    let ready = restarted.elapsed();
    stack.wait_quiet(sale, RECOVERY_DEADLINE).await.unwrap();
    let recovered = restarted.elapsed();
    println!(
        "{point}: recovery took {:.2} s after the restart ({:.2} s to start; recovery.timeout {:.1} s{})",
        recovered.as_secs_f64(),
        ready.as_secs_f64(),
        timeout.as_secs_f64(),
        if shipped { ", the shipped setting" } else { ", the tests' setting" },
    );

    let books = stack.books(sale).await.unwrap();
    books.check().unwrap();
    assert_eq!(books.in_flight, 0);

    // I5: every user told "reserved" has an order; so has every user whose unit was taken
    // before the crash cut the answer off.
    let ordered = stack.live_buyers(sale).await.unwrap();
    for (uid, answer) in &answers {
        if let Some((200, _)) = answer {
            assert!(
                ordered.contains(uid),
                "I5: {uid} was told reserved but has no order"
            );
        }
    }
    assert_eq!(books.live(), i64::try_from(ordered.len()).unwrap());

    // A user cut off by the crash who retries learns where their purchase stands, and it
    // costs nothing more.
    for (uid, answer) in answers.iter().filter(|a| a.1.is_none()) {
        let (status, body) = stack.reserve(sale, uid).await.unwrap();
        if ordered.contains(uid) {
            assert_eq!(
                (status, body["error"].as_str()),
                (409, Some("duplicate")),
                "{body}"
            );
        } else {
            assert_eq!(status, 200, "{uid} had no unit before the crash: {body}");
        }
        let _ = answer;
    }
    stack.wait_quiet(sale, RECOVERY_DEADLINE).await.unwrap();
    stack.books(sale).await.unwrap().check().unwrap();
    let (ok, report) = stack.reconcile(sale, false).await.unwrap();
    assert!(ok && report["drift"] == 0, "{report}");
}

/// With the shipped recovery settings (3 s timeout): the recovery time printed here is the
/// benchmark figure of a deployment. The other points use the tests' shorter timeout.
#[tokio::test(flavor = "multi_thread")]
async fn i2_crash_after_the_redis_reservation_before_the_branch() {
    let options = shipped_recovery();
    assert_eq!(
        u128::from(options.recovery_timeout_ms),
        origin::config::RecoveryConfig::default()
            .timeout
            .as_millis(),
        "deploy/origin.toml ships the default recovery timeout"
    );
    crash_and_recover("after_reserve", options).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn i2_crash_inside_the_database_transaction() {
    crash_and_recover("in_db_transaction", OriginOptions::default()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn i2_crash_after_the_commit_before_completion() {
    crash_and_recover("after_commit", OriginOptions::default()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn i4_database_outage_mid_sale_loses_and_doubles_nothing() {
    let mut stack = Stack::start(crashable_origin(), OriginOptions::default())
        .await
        .unwrap();
    let sale = stack.create_sale(50).await.unwrap();
    for i in 0..10 {
        assert_eq!(
            stack.reserve(sale, &format!("before-{i}")).await.unwrap().0,
            200
        );
    }

    stack.postgres.stop().await.unwrap();
    let stack_arc = Arc::new(stack);
    let started = Instant::now();
    let answers = crowd(&stack_arc, sale, (0..20).map(|i| format!("during-{i}"))).await;
    println!(
        "20 reservations answered in {:?} while PostgreSQL was down",
        started.elapsed()
    );
    let mut stack = Arc::into_inner(stack_arc).unwrap();
    for (uid, answer) in &answers {
        let (status, body) = answer
            .as_ref()
            .expect("answered while the database is down");
        assert_eq!(*status, 200, "{uid}: {body}");
        assert_eq!(
            body["confirmed"], false,
            "no order can be confirmed yet: {body}"
        );
    }
    assert_eq!(stack.books_redis_in_flight(sale).await.unwrap(), 20);

    stack.postgres.start_again().await.unwrap();
    let took = stack.wait_quiet(sale, RECOVERY_DEADLINE).await.unwrap();
    println!(
        "orders written {:.2} s after PostgreSQL came back",
        took.as_secs_f64()
    );
    let books = stack.books(sale).await.unwrap();
    books.check().unwrap();
    assert_eq!((books.live(), books.redis_remaining), (30, 20));
    let ordered = stack.live_buyers(sale).await.unwrap();
    for (uid, _) in &answers {
        assert!(
            ordered.contains(uid),
            "I5: {uid} has no order after the outage"
        );
    }
    let (ok, report) = stack.reconcile(sale, false).await.unwrap();
    assert!(ok && report["drift"] == 0, "{report}");
}

/// A counter of an origin's `/metrics` for one `outcome` label (0 when absent).
async fn metric(stack: &Stack, origin_url: &str, name: &str, outcome: &str) -> u64 {
    let text = metrics::scrape(&stack.http, &format!("{origin_url}/metrics"))
        .await
        .unwrap();
    metrics::sample_sum(&text, name, &[("outcome", outcome)]) as u64
}

#[tokio::test(flavor = "multi_thread")]
async fn i4_two_origins_recover_each_orphan_exactly_once() {
    let options = OriginOptions::default();
    let mut stack = Stack::start(crashable_origin(), options.clone())
        .await
        .unwrap();
    let sale = stack.create_sale(30).await.unwrap();

    // Orphans: the origin dies at its 8th reservation. The requests before it may have gone on
    // into their branch, and some of those committed it before the kill: their barrier is in
    // PostgreSQL and recovery finds it (a legitimate repeat, counted below).
    stack.origin.restart(Some("after_reserve:8")).await.unwrap();
    let stack_arc = Arc::new(stack);
    crowd(&stack_arc, sale, (0..8).map(|i| format!("orphan-{i}"))).await;
    let mut stack = Arc::into_inner(stack_arc).unwrap();
    stack
        .origin
        .wait_exit(Duration::from_secs(30))
        .await
        .unwrap();
    let due = stack.books_redis_due(sale).await.unwrap();
    assert!(!due.is_empty(), "the crash must leave orphans");
    let db = stack.postgres.client().await.unwrap();
    let committed_by_the_dead: i64 = db
        .query_one("SELECT count(*) FROM orders WHERE gid = ANY($1)", &[&due])
        .await
        .unwrap()
        .get(0);

    // Two origins start at once and poll the same due set; the leases let only one of them
    // run each orphan's branch.
    let (redis_url, postgres_url) = (stack.redis.url(), stack.postgres.url());
    let (restarted, other) = tokio::join!(
        stack.origin.restart(None),
        OriginProcess::start(
            crashable_origin(),
            &redis_url,
            &postgres_url,
            &options,
            None
        )
    );
    restarted.unwrap();
    let other = other.unwrap();
    stack.wait_quiet(sale, RECOVERY_DEADLINE).await.unwrap();
    let url = stack.origin.url();
    let first = metric(&stack, &url, "origin_recoveries_total", "completed").await;
    let second = metric(&stack, &other.url(), "origin_recoveries_total", "completed").await;
    let repeats = metric(&stack, &url, "origin_branches_total", "repeat").await
        + metric(&stack, &other.url(), "origin_branches_total", "repeat").await;
    println!(
        "{} orphans ({committed_by_the_dead} committed before the kill): {first} recovered by \
         the restarted origin, {second} by the other, {repeats} repeated branches",
        due.len()
    );
    assert_eq!(
        first + second,
        u64::try_from(due.len()).unwrap(),
        "each orphan recovered once"
    );
    assert_eq!(
        repeats,
        u64::try_from(committed_by_the_dead).unwrap(),
        "a branch runs again only where the dead origin had committed it, never twice by the \
         living ones"
    );
    let books = stack.books(sale).await.unwrap();
    books.check().unwrap();
    assert_eq!(books.live(), 8, "every reservation has its order");
}
