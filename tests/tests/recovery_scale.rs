//! The recovery poller's cost follows the sales that have work, not the number of sales: with
//! 1, 100 and 10,000 idle sales in the catalog the origin sends Redis the same few commands a
//! second (one read of the index of active sales per poll), where claiming every sale every poll
//! sent 5 a second per sale. And what the index is for still holds: a crowd's sale is marked once
//! per few seconds, not per attempt; an orphan of a dead origin is found by a live origin through
//! the index; a transaction the index lost is found by the full pass, of a running origin that
//! sees the index come back new, and of an origin that starts.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "integration tests: a failed unwrap is a failed test, with its message"
)]

use flash_tests::origin_binary;
use std::{path::Path, sync::Arc, time::Duration};

use flash_tests::{
    bench::system::{commands_inside_scripts, round_trips},
    metrics,
    origin_process::{OriginOptions, OriginProcess},
    redis_server::{RedisServer, BOOKKEEPING_COMMANDS},
    stack::Stack,
    wait,
};
use origin::{
    activity::HORIZON,
    gid::Gid,
    reservations::{Reservation, Reservations, ACTIVE_SALES_KEY},
};
use redis::AsyncCommands;
use tokio::time::Instant;

/// Generous for a loaded 2-core machine: a full pass over 10,000 sales reads each one's books.
const DEADLINE: Duration = Duration::from_secs(60);

/// The shipped poll interval (`deploy/origin.toml`), so that the figures are a deployment's.
const SHIPPED_POLL_MS: u64 = 200;

/// Polls each measurement spans: a few seconds at the shipped interval.
const MEASURED_POLLS: f64 = 15.0;

fn lua_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../lua")
}

/// The sum of the samples of `name` (with `labels`) at the origin serving `url`.
async fn metric(stack: &Stack, url: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    let text = metrics::scrape(&stack.http, &format!("{url}/metrics"))
        .await
        .unwrap();
    metrics::sample_sum(&text, name, labels)
}

/// Waits until the origin at `url` has done `n` full passes since it started.
async fn wait_full_passes(stack: &Stack, url: &str, n: f64) -> Duration {
    wait::until("the poller's full pass", DEADLINE, || async {
        let text = metrics::scrape(&stack.http, &format!("{url}/metrics")).await?;
        Ok(metrics::sample_sum(&text, "origin_recovery_full_passes_total", &[]) >= n)
    })
    .await
    .unwrap()
}

/// The origin's Redis calls, as the origin's tests read them.
async fn reservations(redis: &RedisServer, recovery_timeout: Duration) -> Reservations {
    Reservations::new(
        redis.handle(Duration::from_secs(10)).await.unwrap(),
        recovery_timeout,
    )
}

/// Adds `n` sales of 10 units straight into PostgreSQL (as the API's creation writes them) and
/// opens their stock in Redis with the origin's own script; the origin learns them from
/// PostgreSQL (at start, or its catalog refresh).
async fn add_sales(stack: &Stack, redis: &Reservations, n: i64) -> Vec<i64> {
    let db = stack.postgres.client().await.unwrap();
    let ids: Vec<i64> = db
        .query(
            "INSERT INTO sales (name, total, starts_at, hold_seconds)
             SELECT 'Idle sale ' || g, 10, now(), 600 FROM generate_series(1::bigint, $1) g
             RETURNING id",
            &[&n],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    for chunk in ids.chunks(500) {
        let opened =
            futures_util::future::try_join_all(chunk.iter().map(|&id| redis.open_stock(id, 10)))
                .await
                .unwrap();
        assert!(opened.into_iter().all(|new| new));
    }
    ids
}

/// What an idle origin sent Redis over [`MEASURED_POLLS`] polls.
#[derive(Debug)]
struct Idle {
    /// Every command Redis ran for the origin, those inside scripts included.
    commands_per_s: f64,
    /// Round trips: EVALSHA and plain commands.
    round_trips_per_s: f64,
    claims: f64,
    polls: f64,
}

async fn measure_idle(stack: &Stack) -> Idle {
    let url = stack.origin.url();
    let reads = || metric(stack, &url, "origin_recovery_index_reads_total", &[]);
    let claims = || metric(stack, &url, "origin_recovery_claims_total", &[]);
    stack.redis.reset_stats().await.unwrap();
    let started = Instant::now();
    let (reads_before, claims_before) = (reads().await, claims().await);
    wait::until("the measured polls", DEADLINE, || async {
        Ok(reads().await >= reads_before + MEASURED_POLLS)
    })
    .await
    .unwrap();
    let stats = stack.redis.command_stats().await.unwrap();
    let seconds = started.elapsed().as_secs_f64();
    let commands: u64 = stats
        .iter()
        .filter(|(name, _)| !BOOKKEEPING_COMMANDS.contains(&name.as_str()))
        .map(|(_, calls)| calls)
        .sum();
    let commands = commands as f64;
    let trips = round_trips(&stats, &commands_inside_scripts(&lua_dir())) as f64;
    println!("commandstats while idle: {stats:?}");
    Idle {
        commands_per_s: commands / seconds,
        round_trips_per_s: trips / seconds,
        claims: claims().await - claims_before,
        polls: reads().await - reads_before,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_sales_cost_the_poller_nothing_whatever_their_number() {
    let options = OriginOptions {
        poll_interval_ms: SHIPPED_POLL_MS,
        ..OriginOptions::default()
    };
    let mut stack = Stack::start(origin_binary!(), options).await.unwrap();
    let redis = reservations(&stack.redis, Duration::from_secs(1)).await;
    let mut sales = Vec::new();
    let mut figures = Vec::new();
    for total in [1, 100, 10_000] {
        sales.extend(add_sales(&stack, &redis, total - sales.len() as i64).await);
        // A fresh start knows every sale and goes over them all once (its full pass); the
        // measure starts after it.
        stack.origin.restart(None).await.unwrap();
        let pass = wait_full_passes(&stack, &stack.origin.url(), 1.0).await;
        let idle = measure_idle(&stack).await;
        eprintln!(
            "{total} idle sales: {:.1} Redis commands/s ({:.1} round trips/s) over {} polls, \
             {} claims; the start's full pass over them took {:.1} s",
            idle.commands_per_s,
            idle.round_trips_per_s,
            idle.polls,
            idle.claims,
            pass.as_secs_f64()
        );
        figures.push((total, idle));
    }
    for (total, idle) in &figures {
        // A poll: one active_sales.lua (TIME, ZREMRANGEBYSCORE, ZRANGE inside) and nothing per
        // sale; 5 polls a second. Claiming every sale sent 10,000 claims per poll.
        assert_eq!(idle.claims, 0.0, "{total} sales: no idle sale is claimed");
        assert!(idle.round_trips_per_s <= 10.0, "{total} sales: {idle:?}");
        assert!(idle.commands_per_s <= 40.0, "{total} sales: {idle:?}");
    }

    // One sale of the 10,000 gets a crowd: it is marked once per few seconds, not per
    // attempt, and its transactions complete.
    let sale = sales[sales.len() / 2];
    let url = stack.origin.url();
    let stack = Arc::new(stack);
    let marks = || metric(&stack, &url, "origin_activity_marks_total", &[]);
    let marks_before = marks().await;
    let started = Instant::now();
    let mut buyers = tokio::task::JoinSet::new();
    for i in 0..50 {
        let stack = stack.clone();
        buyers.spawn(async move { stack.reserve(sale, &format!("crowd-{i}")).await.unwrap().0 });
    }
    let statuses = buyers.join_all().await;
    let elapsed = started.elapsed();
    let marked = marks().await - marks_before;
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 10);
    assert!(
        statuses.iter().all(|s| matches!(s, 200 | 410)),
        "{statuses:?}"
    );
    let most = 1.0 + (elapsed.as_secs_f64() / 5.0).ceil();
    assert!(
        (1.0..=most).contains(&marked),
        "{marked} marks for 50 attempts in {elapsed:?}"
    );
    let books = stack.wait_balanced(sale, DEADLINE).await.unwrap();
    assert_eq!(books.live(), 10);
    let (balanced, report) = stack.reconcile(sale, false).await.unwrap();
    assert!(balanced, "{report}");
}

/// Sends one reservation per uid to the origin at `url`, all at once; the answers that came.
async fn crowd(stack: &Arc<Stack>, url: &str, sale: i64, uids: &[String]) -> usize {
    let mut tasks = tokio::task::JoinSet::new();
    for uid in uids {
        let (stack, url, uid) = (stack.clone(), url.to_string(), uid.clone());
        tasks.spawn(async move {
            stack
                .http
                .post(format!("{url}/v1/sales/{sale}/reserve"))
                .json(&serde_json::json!({ "uid": uid }))
                .send()
                .await
                .is_ok()
        });
    }
    tasks.join_all().await.into_iter().filter(|ok| *ok).count()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_orphan_of_a_dead_origin_is_found_by_a_live_one_through_the_index() {
    let options = OriginOptions::default();
    let stack = Stack::start(origin_binary!(), options.clone())
        .await
        .unwrap();
    let redis = reservations(&stack.redis, Duration::from_secs(1)).await;
    add_sales(&stack, &redis, 100).await;
    let sale = stack.create_sale(20).await.unwrap();
    let live = stack.origin.url();
    let passes = wait_full_passes(&stack, &live, 1.0).await;
    let passes_before = metric(&stack, &live, "origin_recovery_full_passes_total", &[]).await;

    // A second origin takes a crowd and dies at its 4th reservation, after Redis took it.
    let mut dying = OriginProcess::start(
        origin_binary!(),
        &stack.redis.url(),
        &stack.postgres.url(),
        &options,
        Some("after_reserve:4"),
    )
    .await
    .unwrap();
    let stack = Arc::new(stack);
    let uids: Vec<String> = (0..12).map(|i| format!("crowd-{i}")).collect();
    let answered = crowd(&stack, &dying.url(), sale, &uids).await;
    dying.wait_exit(DEADLINE).await.unwrap();
    assert!(answered < uids.len(), "the crash cuts a request off");
    let orphans = stack.books_redis_due(sale).await.unwrap();
    assert!(
        !orphans.is_empty(),
        "the crash leaves a transaction in flight"
    );

    // The live origin never took a request for this sale: only the index tells it.
    stack.wait_balanced(sale, DEADLINE).await.unwrap();
    let recovered = metric(
        &stack,
        &live,
        "origin_recoveries_total",
        &[("outcome", "completed")],
    )
    .await;
    assert!(recovered >= 1.0, "the live origin recovered the orphans");
    assert_eq!(
        metric(&stack, &live, "origin_recovery_full_passes_total", &[]).await,
        passes_before,
        "found through the index, with no full pass (the start's took {passes:?})"
    );
    let (balanced, report) = stack.reconcile(sale, false).await.unwrap();
    assert!(balanced, "{report}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_transaction_the_index_lost_is_found_by_the_full_pass_of_a_running_origin() {
    let options = OriginOptions::default();
    let stack = Stack::start(origin_binary!(), options.clone())
        .await
        .unwrap();
    let timeout = Duration::from_millis(options.recovery_timeout_ms);
    let redis = reservations(&stack.redis, timeout).await;
    add_sales(&stack, &redis, 100).await;
    let sale = stack.create_sale(5).await.unwrap();
    let url = stack.origin.url();
    wait_full_passes(&stack, &url, 1.0).await;
    let passes = metric(&stack, &url, "origin_recovery_full_passes_total", &[]).await;

    // An origin marked the sale, reserved and died; then the index's node lost the mark. The
    // transaction is in Redis with its sale in no index: the reservation is made here, without
    // a mark, and the index deleted as a node replaced by an empty one would lose it.
    assert!(matches!(
        redis.reserve(&Gid::new(sale, "orphan"), 0).await.unwrap(),
        Reservation::Reserved { .. }
    ));
    let mut conn = stack.redis.connection().await.unwrap();
    let _: () = conn.del(ACTIVE_SALES_KEY).await.unwrap();

    // The running origin's next read finds the index new and goes over every sale.
    wait_full_passes(&stack, &url, passes + 1.0).await;
    let books = stack.wait_balanced(sale, DEADLINE).await.unwrap();
    assert_eq!(books.live(), 1, "{books:?}");
    assert!(
        stack
            .origin
            .log()
            .contains("the index of active sales is new"),
        "{}",
        stack.origin.log_tail()
    );
    let (balanced, report) = stack.reconcile(sale, false).await.unwrap();
    assert!(balanced, "{report}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_transaction_the_index_lost_is_found_by_the_full_pass_at_start() {
    let mut stack = Stack::start(origin_binary!(), OriginOptions::default())
        .await
        .unwrap();
    let sale = stack.create_sale(5).await.unwrap();
    // The origin dies at its first reservation, after Redis took it; the index then loses the
    // sale's mark, and the origin starts again knowing nothing of it.
    stack.origin.restart(Some("after_reserve:1")).await.unwrap();
    assert!(stack.reserve(sale, "orphan").await.is_err(), "cut off");
    stack.origin.wait_exit(DEADLINE).await.unwrap();
    assert_eq!(stack.books_redis_in_flight(sale).await.unwrap(), 1);
    let mut conn = stack.redis.connection().await.unwrap();
    let _: () = conn.del(ACTIVE_SALES_KEY).await.unwrap();

    stack.origin.restart(None).await.unwrap();
    let books = stack.wait_balanced(sale, DEADLINE).await.unwrap();
    assert_eq!(books.live(), 1, "{books:?}");
    // The full pass found the transaction in flight and marked its sale again.
    let score: Option<f64> = conn.zscore(ACTIVE_SALES_KEY, sale).await.unwrap();
    assert!(score.is_some(), "the sale is back in the index");
    let (balanced, report) = stack.reconcile(sale, false).await.unwrap();
    assert!(balanced, "{report}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_index_drops_old_marks_and_comes_back_new_when_lost() {
    let server = RedisServer::start().await.unwrap();
    let redis = reservations(&server, Duration::ZERO).await;
    let mut conn = server.connection().await.unwrap();

    let first = redis.active_sales(HORIZON).await.unwrap();
    assert!(first.sales.is_empty());
    assert!(redis.mark_active(3).await.unwrap(), "new in the index");
    assert!(redis.mark_active(12).await.unwrap());
    assert!(!redis.mark_active(3).await.unwrap(), "its mark moved on");
    let read = redis.active_sales(HORIZON).await.unwrap();
    assert_eq!(
        (read.epoch.as_str(), read.sales.as_slice()),
        (first.epoch.as_str(), &[12, 3][..])
    );

    // A mark never moves back (GT): the index keeps the latest of two origins' marks.
    let late: f64 = conn.zscore(ACTIVE_SALES_KEY, 3).await.unwrap();
    let _: () = redis::cmd("ZADD")
        .arg(ACTIVE_SALES_KEY)
        .arg("GT")
        .arg(late - 1000.0)
        .arg(3)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        conn.zscore::<_, _, f64>(ACTIVE_SALES_KEY, 3).await.unwrap(),
        late
    );

    // Past the horizon the sales leave (with no horizon, once Redis's clock has moved on by a
    // millisecond); the epoch stays.
    wait::until("the marks to leave", DEADLINE, || async {
        let read = redis.active_sales(Duration::ZERO).await?;
        assert_eq!(read.epoch, first.epoch);
        Ok(read.sales.is_empty())
    })
    .await
    .unwrap();
    let members: i64 = conn.zcard(ACTIVE_SALES_KEY).await.unwrap();
    assert_eq!(members, 1, "only the epoch is left");

    // Lost (deleted, or its node replaced), then written again by a mark: another epoch.
    let _: () = conn.del(ACTIVE_SALES_KEY).await.unwrap();
    assert!(redis.mark_active(3).await.unwrap());
    let read = redis.active_sales(HORIZON).await.unwrap();
    assert_ne!(read.epoch, first.epoch);
    assert_eq!(read.sales, vec![3]);
}
