//! The origin with a real dtm v1.19.0 server as its coordinator (`[coordinator] kind = "dtm"`,
//! dtm's store in a Redis of its own), crashed where a crash matters: the origin killed after
//! dtm's prepare, after the reservation before the submit, and inside the branch's database
//! transaction; the dtm server killed and restarted in the middle of a sale; a second dtm server
//! on the same store taking over the messages of one that died. dtm's back-check and
//! retries finish every message with no operator and no embedded poller, and each test ends with
//! the books checked as the embedded coordinator's crash tests check them (stock and orders equal,
//! one order per user, every `reserved` answer with its order, reconcile's drift 0).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "integration tests: a failed unwrap is a failed test, with its message"
)]

use std::{collections::HashSet, path::Path, time::Duration};

use tokio::time::Instant;

use flash_tests::{
    dtm_server::{DtmServer, DtmSettings},
    metrics, origin_binary,
    origin_process::{DtmCoordinator, OriginOptions},
    redis_server::RedisServer,
    stack::Stack,
    wait,
};
use serde_json::Value;

/// dtm back-checks a prepared message about `timeout_to_fail` plus its cron's sweep after the
/// prepare, and retries a failing branch after `retry_interval`: generous, never a measure.
const DEADLINE: Duration = Duration::from_secs(60);

/// A stack whose origin's coordinator is `dtm`, and the dtm server with its store.
struct World {
    stack: Stack,
    dtm: DtmServer,
    store: RedisServer,
}

impl World {
    async fn start() -> Self {
        let store = RedisServer::start().await.unwrap();
        let dtm = DtmServer::start(DtmSettings::new(store.port(), "{dtm}"))
            .await
            .unwrap();
        let options = OriginOptions {
            dtm: Some(DtmCoordinator {
                dtm_url: dtm.url(),
                timeout_to_fail_seconds: 2,
                retry_interval_seconds: 1,
            }),
            ..OriginOptions::default()
        };
        let stack = Stack::start(crashable_origin(), options).await.unwrap();
        Self { stack, dtm, store }
    }

    /// `origin_dtm_calls_total{call, outcome}` on the origin now.
    async fn dtm_calls(&self, call: &str, outcome: &str) -> f64 {
        let text = metrics::scrape(
            &self.stack.http,
            &format!("{}/metrics", self.stack.origin.url()),
        )
        .await
        .unwrap();
        metrics::sample_sum(
            &text,
            "origin_dtm_calls_total",
            &[("call", call), ("outcome", outcome)],
        )
    }

    /// Waits until dtm has finished every message of `sale` and checks the books: stock and
    /// orders equal, nothing in flight, reconcile's drift 0; returns the buyers with an order.
    async fn settled(&self, sale: i64) -> HashSet<String> {
        self.stack
            .wait_quiet(sale, DEADLINE)
            .await
            .unwrap_or_else(|e| panic!("{e:#}\ndtm log:\n{}", self.dtm.log()));
        let books = self.stack.books(sale).await.unwrap();
        books.check().unwrap();
        assert_eq!(books.in_flight, 0, "{books:?}");
        let buyers = self.stack.live_buyers(sale).await.unwrap();
        assert_eq!(books.live(), i64::try_from(buyers.len()).unwrap());
        let (ok, report) = self.stack.reconcile(sale, false).await.unwrap();
        assert!(ok && report["drift"] == 0, "{report}");
        buyers
    }

    /// Arms `point` (its first visit), sends `uid`'s reservation, which the crash cuts off, and
    /// starts the origin again unarmed.
    async fn crash_on_a_reservation(&mut self, point: &str, sale: i64, uid: &str) {
        self.stack.origin.restart(Some(point)).await.unwrap();
        let answer = self.stack.reserve(sale, uid).await;
        assert!(answer.is_err(), "the crash cuts the answer off: {answer:?}");
        self.restarted_after_the_crash().await;
    }

    /// Waits for the armed origin to die at its crash point and starts it again unarmed.
    async fn restarted_after_the_crash(&mut self) {
        let status = self
            .stack
            .origin
            .wait_exit(Duration::from_secs(30))
            .await
            .unwrap();
        assert!(!status.success(), "the crash point must kill the origin");
        self.stack.origin.restart(None).await.unwrap();
    }
}

impl World {
    /// [`crash_on_a_reservation`](Self::crash_on_a_reservation) at `point`, then waits until
    /// dtm's back-check of the message has had `outcome` (`prepared` or `failure`) and prints how
    /// long after the press it came.
    async fn crash_until_the_back_check(
        &mut self,
        point: &str,
        sale: i64,
        uid: &str,
        outcome: &str,
    ) {
        let pressed = Instant::now();
        self.crash_on_a_reservation(point, sale, uid).await;
        wait::until(
            &format!("dtm's back-check: {outcome}"),
            DEADLINE,
            || async { Ok(self.dtm_calls("query", outcome).await >= 1.0) },
        )
        .await
        .unwrap_or_else(|e| panic!("{e:#}\ndtm log:\n{}", self.dtm.log()));
        println!(
            "{point}: dtm's back-check came {:.1} s after the press (timeout_to_fail 2 s)",
            pressed.elapsed().as_secs_f64()
        );
    }
}

fn crashable_origin() -> &'static Path {
    if cfg!(not(debug_assertions)) {
        panic!(
            "crash points are armed in debug builds only: run the crash tests without --release"
        );
    }
    origin_binary!()
}

/// Killed after dtm prepared the message, before any stock was taken: dtm's back-check finds no
/// reservation, the origin writes the marker that refuses a late one and answers FAILURE, dtm
/// fails the message. Nothing was sold; the buyer's next press buys.
#[tokio::test(flavor = "multi_thread")]
async fn the_origin_killed_after_the_prepare_sells_nothing_and_the_buyer_buys_again() {
    let mut world = World::start().await;
    let sale = world.stack.create_sale(3).await.unwrap();
    world
        .crash_until_the_back_check("after_prepare", sale, "alice", "failure")
        .await;
    let buyers = world.settled(sale).await;
    assert!(buyers.is_empty(), "{buyers:?}");

    let (status, body) = world.stack.reserve(sale, "alice").await.unwrap();
    assert_eq!(status, 200, "{body}");
    let buyers = world.settled(sale).await;
    assert_eq!(buyers, HashSet::from(["alice".to_string()]));
}

/// Killed after the reservation, before the submit: dtm's back-check finds the reservation and
/// dtm submits, calls the branch and the order is written, with the buyer never asking again.
#[tokio::test(flavor = "multi_thread")]
async fn the_origin_killed_before_the_submit_sells_the_reserved_unit_through_the_back_check() {
    let mut world = World::start().await;
    let sale = world.stack.create_sale(3).await.unwrap();
    world
        .crash_until_the_back_check("after_reserve", sale, "alice", "prepared")
        .await;
    let buyers = world.settled(sale).await;
    assert_eq!(buyers, HashSet::from(["alice".to_string()]));
    // The buyer who never got an answer asks again: told of the order dtm's branch wrote,
    // as under the embedded coordinator.
    let db = world.stack.postgres.client().await.unwrap();
    let (order, gid): (i64, String) = db
        .query_one(
            "SELECT id, gid FROM orders WHERE sale_id = $1 AND uid = 'alice'",
            &[&sale],
        )
        .await
        .map(|row| (row.get(0), row.get(1)))
        .unwrap();
    let (status, body) = world.stack.reserve(sale, "alice").await.unwrap();
    assert_eq!(
        (status, body["error"].as_str(), body["state"].as_str()),
        (409, Some("duplicate"), Some("succeeded")),
        "{body}"
    );
    assert_eq!(
        (body["order_id"].as_i64(), body["gid"].as_str()),
        (Some(order), Some(gid.as_str())),
        "{body}"
    );
}

/// Killed inside the branch's database transaction: dtm calls the branch again after the restart
/// and the order is written once.
#[tokio::test(flavor = "multi_thread")]
async fn the_origin_killed_inside_the_branch_writes_the_order_once_on_dtms_retry() {
    let mut world = World::start().await;
    let sale = world.stack.create_sale(3).await.unwrap();
    world
        .stack
        .origin
        .restart(Some("in_db_transaction"))
        .await
        .unwrap();
    // The answer may come (reserved) before dtm calls the branch that kills the origin.
    let answer = world.stack.reserve(sale, "alice").await;
    world.restarted_after_the_crash().await;
    let buyers = world.settled(sale).await;
    assert_eq!(buyers, HashSet::from(["alice".to_string()]), "{answer:?}");
    assert!(
        world.dtm_calls("branch", "ok").await >= 1.0,
        "dtm called the branch again after the restart"
    );
}

/// The dtm server killed in the middle of a sale and started again: a first crowd buys (some of
/// its messages still at dtm when it dies), a second crowd asks while dtm is away and is refused
/// with nothing taken (503), a third buys once it is back; every `reserved` answer gets its order
/// and the books balance.
#[tokio::test(flavor = "multi_thread")]
async fn dtm_killed_and_restarted_mid_sale_loses_and_doubles_nothing() {
    let mut world = World::start().await;
    let sale = world.stack.create_sale(15).await.unwrap();
    let mut answers = crowd(&world.stack, sale, "first").await;
    world.dtm.kill();
    let away = crowd(&world.stack, sale, "away").await;
    for (uid, (status, body)) in &away {
        assert_eq!(
            (*status, body["error"].as_str()),
            (503, Some("coordinator_unavailable")),
            "{uid}: {body}"
        );
    }
    world.dtm.restart().await.unwrap();
    answers.extend(crowd(&world.stack, sale, "back").await);

    let buyers = world.settled(sale).await;
    let reserved: HashSet<String> = answers
        .iter()
        .filter(|(_, (status, _))| *status == 200)
        .map(|(uid, _)| uid.clone())
        .collect();
    assert_eq!(buyers, reserved, "the buyers are those told reserved");
    assert_eq!(buyers.len(), 15, "the sale sold out: {answers:?}");
    for (uid, (status, body)) in &answers {
        assert!(
            matches!(*status, 200) || body["error"] == "sold_out",
            "{uid}: {status} {body}"
        );
    }
}

/// Ten reservations at once, by `{wave}-0` … `{wave}-9`: each uid with its answer.
async fn crowd(stack: &Stack, sale: i64, wave: &str) -> Vec<(String, (u16, Value))> {
    futures_util::future::join_all((0..10).map(|i| async move {
        let uid = format!("{wave}-{i}");
        let answer = stack.reserve(sale, &uid).await.unwrap();
        (uid, answer)
    }))
    .await
}

/// Two dtm servers on one store: the origin's dtm dies with a message prepared and its unit
/// reserved (the origin killed before the submit), and the other server, sweeping the same store,
/// back-checks it and sells the unit.
#[tokio::test(flavor = "multi_thread")]
async fn a_second_dtm_on_the_same_store_finishes_the_messages_of_one_that_died() {
    let mut world = World::start().await;
    let other = DtmServer::start(DtmSettings::new(world.store.port(), "{dtm}"))
        .await
        .unwrap();
    let sale = world.stack.create_sale(3).await.unwrap();
    world
        .crash_on_a_reservation("after_reserve", sale, "alice")
        .await;
    world.dtm.kill();
    wait::until("the other dtm's back-check", DEADLINE, || async {
        Ok(world.dtm_calls("query", "prepared").await >= 1.0)
    })
    .await
    .unwrap_or_else(|e| panic!("{e:#}\nthe other dtm's log:\n{}", other.log()));
    let buyers = world.settled(sale).await;
    assert_eq!(buyers, HashSet::from(["alice".to_string()]));
}
