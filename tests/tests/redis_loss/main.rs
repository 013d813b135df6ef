//! Redis loses writes and PostgreSQL stays the truth, against real redis-server and PostgreSQL:
//! a Redis started again from an older copy of its AOF (the lost tail of a failover to a lagging
//! replica, or of a restore), and a Redis restarted with no data (a node replaced). Each heals by
//! itself, with nobody running reconcile, and each ends with the invariants: live orders within
//! the stock, at most one live order per gid, every `reserved` answer has its order, drift 0,
//! and the gate held: the attempts that reached PostgreSQL after the loss are bounded by the
//! units left, the units lost and a small constant.
//! One module per concern: losses a reservation meets — a lost tail, a Redis restarted empty
//! (`reservations`); losses only the books find — a forgotten return, a sale ended beyond the
//! key retention (`books`); a heal seen by every edge and by two origins (`fleet`). One test
//! binary.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "integration tests: a failed unwrap is a failed test, with its message"
)]

mod books;
mod fleet;
mod reservations;

use flash_tests::{edge_binary, origin_binary};
use std::{
    collections::HashSet,
    sync::Arc,
    time::{Duration, Instant},
};

use flash_tests::{
    edge_process::{EdgeOptions, EdgeProcess},
    front, metrics,
    origin_process::OriginOptions,
    stack::Stack,
    wait,
};
use redis::AsyncCommands;
use serde_json::Value;

/// Attempts beyond the units left and the units lost that may reach PostgreSQL after a loss:
/// the reservations handed out between the loss and the moment an origin notices it (the very
/// reservation that hands a repeated fence out is one of them) and those racing the heal.
const GATE_SLACK: f64 = 8.0;

/// How long a loss may take to heal in these tests.
const HEAL_DEADLINE: Duration = Duration::from_secs(20);

async fn stack() -> Stack {
    Stack::start(origin_binary!(), OriginOptions::default())
        .await
        .unwrap()
}

/// Times a buyer asks again after a `503` (the shop busy, or the sale being healed).
const RETRIES: usize = 50;
/// A buyer's pause before asking again after a `503`.
const RETRY_PAUSE: Duration = Duration::from_millis(100);

/// `uids` buy at once, each asking again after a `503` as the page does; their last answers.
async fn crowd(stack: &Arc<Stack>, sale: i64, uids: Vec<String>) -> Vec<(String, u16, Value)> {
    crowd_of(stack, sale, uids, usize::MAX).await
}

/// [`crowd`] with at most `at_once` buyers asking at a time.
async fn crowd_of(
    stack: &Arc<Stack>,
    sale: i64,
    uids: Vec<String>,
    at_once: usize,
) -> Vec<(String, u16, Value)> {
    let slots = Arc::new(tokio::sync::Semaphore::new(
        at_once.min(tokio::sync::Semaphore::MAX_PERMITS),
    ));
    let mut tasks = tokio::task::JoinSet::new();
    for uid in uids {
        let stack = stack.clone();
        let slots = slots.clone();
        tasks.spawn(async move {
            let _slot = slots.acquire_owned().await.unwrap();
            let mut answer = stack.reserve(sale, &uid).await.unwrap();
            for _ in 0..RETRIES {
                if answer.0 != 503 {
                    break;
                }
                tokio::time::sleep(RETRY_PAUSE).await;
                answer = stack.reserve(sale, &uid).await.unwrap();
            }
            (uid, answer.0, answer.1)
        });
    }
    tasks.join_all().await
}

/// A sale of `stock` units, `sold` of them bought by `early-*` users, with nothing in flight: the
/// stack, the sale and the early buyers' answers.
async fn early_buyers(stock: i64, sold: usize) -> (Arc<Stack>, i64, Vec<(String, u16, Value)>) {
    let stack = Arc::new(stack().await);
    let sale = stack.create_sale(stock).await.unwrap();
    let first = crowd(&stack, sale, uids("early", sold)).await;
    assert_eq!(reserved(&first).len(), sold, "{first:?}");
    stack.wait_quiet(sale, HEAL_DEADLINE).await.unwrap();
    (stack, sale, first)
}

/// Restarts the stack's Redis from `copy` (an AOF copied earlier); no request may be running.
async fn restart_from(stack: &mut Arc<Stack>, copy: &flash_tests::redis_server::AofCopy) {
    Arc::get_mut(stack)
        .expect("no request running")
        .redis
        .restart_from(copy)
        .await
        .unwrap();
}

fn uids(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i}")).collect()
}

/// Users told `reserved`.
fn reserved(answers: &[(String, u16, Value)]) -> HashSet<String> {
    answers
        .iter()
        .filter(|(_, status, body)| *status == 200 && body["status"] == "reserved")
        .map(|(uid, _, _)| uid.clone())
        .collect()
}

/// The first answer to `uid` that is not a `503` (the origin's connection to a restarted Redis is
/// made again on the first command that fails).
async fn answered(stack: &Stack, sale: i64, uid: &str) -> u16 {
    let status = std::sync::Mutex::new(0);
    wait::until(
        "an answer other than 503",
        Duration::from_secs(5),
        || async {
            let (got, _) = stack.reserve(sale, uid).await?;
            *status.lock().unwrap() = got;
            Ok(got != 503)
        },
    )
    .await
    .unwrap();
    status.into_inner().unwrap()
}

/// The invariants every scenario ends with, drift 0 reached without reconcile's repair.
async fn assert_healed(stack: &Stack, sale: i64, told_reserved: &HashSet<String>) -> Duration {
    let started = Instant::now();
    let drift = wait::until("drift 0 without a repair", HEAL_DEADLINE, || async {
        let run = stack.reconcile_run(sale, false).await?;
        Ok(run.code == 0 && run.report["drift"] == 0)
    })
    .await;
    assert!(drift.is_ok(), "{drift:?}\n{}", stack.origin.log_tail());
    let books = stack.wait_balanced(sale, HEAL_DEADLINE).await.unwrap();
    books.check().unwrap();
    let live = stack.live_buyers(sale).await.unwrap();
    let missing: Vec<_> = told_reserved.difference(&live).collect();
    assert!(
        missing.is_empty(),
        "told reserved, no live order: {missing:?}"
    );
    println!("books after the heal: {books:?}");
    started.elapsed()
}
