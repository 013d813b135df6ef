//! Holds, payment and returned stock, on real servers: a lapsed hold gives its unit back and
//! re-opens a sold-out sale on every edge; payment and expiry race without ever both winning;
//! a late payment is refused; a crash between the database cancel and the Redis return loses
//! nothing; conservation holds through a seeded random mix of buys, payments, cancels and
//! expiries; a user cannot touch another user's order (answered as an unknown one).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "integration tests: a failed unwrap is a failed test, with its message"
)]

use flash_tests::{edge_binary, origin_binary};
use std::{sync::Arc, time::Duration};

use flash_tests::{
    edge_process::{EdgeOptions, EdgeProcess},
    origin_process::OriginOptions,
    payments,
    stack::Stack,
    wait,
};
use redis::AsyncCommands;
use serde_json::{json, Value};
use tokio::time::Instant;

const DEADLINE: Duration = Duration::from_secs(30);

async fn stack() -> Stack {
    Stack::start(origin_binary!(), OriginOptions::default())
        .await
        .unwrap()
}

async fn sale(stack: &Stack, stock: i64, hold_seconds: i64) -> i64 {
    let (status, body) = stack
        .post(
            "/v1/sales",
            &json!({"name": "Held sneakers", "stock": stock, "hold_seconds": hold_seconds}),
        )
        .await
        .unwrap();
    assert_eq!(status, 201, "{body}");
    body["id"].as_i64().unwrap()
}

/// Reserves for `uid` through the origin: the order id.
async fn reserve(stack: &Stack, sale: i64, uid: &str) -> i64 {
    let (status, body) = stack.reserve(sale, uid).await.unwrap();
    assert_eq!(status, 200, "{body}");
    body["order_id"].as_i64().unwrap()
}

/// Pays through the payment service's signed webhook (the sales here are free: 0 EUR).
async fn pay(stack: &Stack, order: i64, uid: &str, payment: &str) -> (u16, Value) {
    let event = payments::event(order, uid, payment, 0, "EUR");
    payments::pay(&stack.http, &stack.origin.url(), &event)
        .await
        .unwrap()
}

async fn order_status(stack: &Stack, order: i64) -> String {
    let db = stack.postgres.client().await.unwrap();
    db.query_one("SELECT status FROM orders WHERE id = $1", &[&order])
        .await
        .unwrap()
        .get(0)
}

async fn wait_status(stack: &Stack, order: i64, status: &str) -> Duration {
    let db = stack.postgres.client().await.unwrap();
    let db = &db;
    wait::until(
        &format!("order {order} {status}"),
        DEADLINE,
        || async move {
            let row = db
                .query_one("SELECT status FROM orders WHERE id = $1", &[&order])
                .await?;
            Ok(row.get::<_, String>(0) == status)
        },
    )
    .await
    .unwrap()
}

fn jwt(uid: &str) -> String {
    flash_tests::shopper::jwt(uid).unwrap()
}

/// Whether `edge` answers a buy of `sale` from its sold-out flag (410 before any identity check).
async fn edge_says_sold_out(http: &reqwest::Client, edge: &EdgeProcess, sale: i64) -> bool {
    let url = format!("{}/api/sales/{sale}/buy", edge.url());
    let resp = http
        .post(url)
        .json(&json!({"pass_token": "x"}))
        .send()
        .await;
    resp.is_ok_and(|r| r.status() == 410)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lapsed_hold_gives_its_unit_back_and_reopens_the_sale_on_two_edges() {
    let stack = stack().await;
    let edges = [
        EdgeProcess::start(
            edge_binary!(),
            &stack.redis.url(),
            &[stack.origin.url()],
            &EdgeOptions::default(),
        )
        .await
        .unwrap(),
        EdgeProcess::start(
            edge_binary!(),
            &stack.redis.url(),
            &[stack.origin.url()],
            &EdgeOptions::default(),
        )
        .await
        .unwrap(),
    ];
    let sale = sale(&stack, 1, 2).await;
    let order = reserve(&stack, sale, "alice").await;
    for edge in &edges {
        let http = stack.http.clone();
        wait::until("sold out on the edge", DEADLINE, || {
            let http = http.clone();
            async move { Ok(edge_says_sold_out(&http, edge, sale).await) }
        })
        .await
        .unwrap();
    }

    let expires_at: time::OffsetDateTime = {
        let db = stack.postgres.client().await.unwrap();
        db.query_one("SELECT expires_at FROM orders WHERE id = $1", &[&order])
            .await
            .unwrap()
            .get(0)
    };
    wait_status(&stack, order, "cancelled").await;
    for edge in &edges {
        let http = stack.http.clone();
        wait::until("the edge re-opens the sale", DEADLINE, || {
            let http = http.clone();
            async move { Ok(!edge_says_sold_out(&http, edge, sale).await) }
        })
        .await
        .unwrap();
    }
    let reopened = time::OffsetDateTime::now_utc() - expires_at;
    println!(
        "expiry to buyable again on both edges: {:.2} s",
        reopened.as_seconds_f64()
    );
    // The status JSON, which open pages poll, says live again on both edges.
    for edge in &edges {
        let status: Value = stack
            .http
            .get(format!("{}/api/sales/{sale}/status", edge.url()))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(status["state"], "live", "{status}");
    }
    let books = stack.books(sale).await.unwrap();
    books.check().unwrap();
    assert_eq!(
        (books.redis_remaining, books.cancelled),
        (1, 1),
        "{books:?}"
    );

    // A new buyer gets the unit, through an edge.
    let bob = jwt("bob");
    let url = edges[1].url();
    let pass = flash_tests::shopper::pass_token(&stack.http, &url, &bob, sale, None)
        .await
        .unwrap();
    let resp = stack
        .http
        .post(format!("{url}/api/sales/{sale}/buy"))
        .bearer_auth(&bob)
        .json(&json!({"pass_token": pass}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    let books = stack.books(sale).await.unwrap();
    books.check().unwrap();
    assert_eq!((books.redis_remaining, books.live()), (0, 1));
}

/// Holds raced by their payments, one race each.
const RACERS: usize = 62;

#[tokio::test(flavor = "multi_thread")]
async fn payment_racing_expiry_never_both_wins() {
    let stack = Arc::new(stack().await);
    let sale = sale(&stack, RACERS as i64, 1).await;
    let mut orders = Vec::new();
    for i in 0..RACERS {
        let uid = format!("racer-{i}");
        orders.push((reserve(&stack, sale, &uid).await, uid));
    }
    // Each payment is aimed at its hold's expiry, from 150 ms before to 150 ms after in steps of
    // 10 ms (the sweeper polls every 100 ms), so that some land before and some after the
    // sweeper's cancel, many right at it: the race, run once per racer. Whatever the timing,
    // exactly one may win.
    let db = stack.postgres.client().await.unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for (i, (order, uid)) in orders.iter().cloned().enumerate() {
        let expires_at: time::OffsetDateTime = db
            .query_one("SELECT expires_at FROM orders WHERE id = $1", &[&order])
            .await
            .unwrap()
            .get(0);
        let offset_ms = i64::try_from(i % 31).unwrap() * 10 - 150;
        let stack = stack.clone();
        tasks.spawn(async move {
            let aim = expires_at + time::Duration::milliseconds(offset_ms)
                - time::OffsetDateTime::now_utc();
            let aim = Duration::try_from(aim).unwrap_or(Duration::ZERO);
            tokio::time::sleep(aim).await;
            let (status, body) = pay(&stack, order, &uid, &format!("pay-{order}")).await;
            (order, status, body)
        });
    }
    let answers = tasks.join_all().await;
    stack.wait_quiet(sale, DEADLINE).await.unwrap();
    // Let the sweeper pass over every expired hold.
    for (order, _) in &orders {
        let db = &db;
        let order = *order;
        wait::until("every hold settled", DEADLINE, || async move {
            let status: String = db
                .query_one("SELECT status FROM orders WHERE id = $1", &[&order])
                .await?
                .get(0);
            Ok(status != "pending")
        })
        .await
        .unwrap();
    }
    let (mut paid, mut expired) = (0, 0);
    for (order, status, body) in &answers {
        let now = order_status(&stack, *order).await;
        match status {
            200 => {
                assert_eq!(now, "paid", "order {order} was paid but is {now}");
                paid += 1;
            }
            409 => {
                assert_eq!(body["error"], "hold_expired", "{body}");
                assert_eq!(
                    now, "cancelled",
                    "order {order} refused payment but is {now}"
                );
                expired += 1;
            }
            other => panic!("order {order}: {other} {body}"),
        }
    }
    println!("race: {paid} paid, {expired} expired first");
    assert!(
        paid > 0 && expired > 0,
        "the payments must straddle the expiry for this to be a race: {paid} paid, {expired} expired"
    );
    stack.wait_quiet(sale, DEADLINE).await.unwrap();
    let books = stack.books(sale).await.unwrap();
    books.check().unwrap();
    assert_eq!(books.paid, paid);
    assert_eq!(
        books.redis_remaining, expired,
        "every expired hold's unit is back, once"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_payment_after_expiry_is_refused_and_the_unit_is_not_sold_twice() {
    let stack = stack().await;
    let sale = sale(&stack, 1, 1).await;
    let order = reserve(&stack, sale, "late").await;
    wait_status(&stack, order, "cancelled").await;
    let (status, body) = pay(&stack, order, "late", "pay-late").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (409, Some("hold_expired")),
        "{body}"
    );
    let again = reserve(&stack, sale, "next").await;
    let (status, body) = pay(&stack, again, "next", "pay-next").await;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("paid")),
        "{body}"
    );
    // The same payment id again: the same answer.
    let (status, _) = pay(&stack, again, "next", "pay-next").await;
    assert_eq!(status, 200);
    stack.wait_quiet(sale, DEADLINE).await.unwrap();
    let books = stack.books(sale).await.unwrap();
    books.check().unwrap();
    assert_eq!(
        (books.paid, books.cancelled, books.redis_remaining),
        (1, 1, 0)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn paying_a_cancelled_or_rejected_order_is_409_with_its_state() {
    let stack = stack().await;
    let sale = sale(&stack, 1, 600).await;
    // A hold its user cancelled.
    let order = reserve(&stack, sale, "quitter").await;
    let resp = stack
        .http
        .delete(format!(
            "{}/v1/orders/{order}?uid=quitter",
            stack.origin.url()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    let (status, body) = pay(&stack, order, "quitter", "pay-cancelled").await;
    assert_eq!(
        (status, body["error"].as_str(), body["status"].as_str()),
        (409, Some("order_cancelled"), Some("cancelled")),
        "{body}"
    );
    stack.wait_quiet(sale, DEADLINE).await.unwrap();

    // A unit Redis granted that the database no longer had (Redis given one unit too many, as
    // after a data loss): the order is `rejected`.
    let taker = reserve(&stack, sale, "taker").await;
    let mut conn = stack.redis.connection().await.unwrap();
    let _: () = conn.incr(format!("{{s:{sale}}}:stock"), 1).await.unwrap();
    let (status, body) = stack.reserve(sale, "unlucky").await.unwrap();
    assert_eq!(
        (status, body["error"].as_str()),
        (410, Some("sold_out")),
        "the database refused the unit: {body}"
    );
    let rejected = body["order_id"].as_i64().expect("the rejected order's id");
    stack.wait_quiet(sale, DEADLINE).await.unwrap();
    assert_eq!(order_status(&stack, rejected).await, "rejected");
    let (status, body) = pay(&stack, rejected, "unlucky", "pay-rejected").await;
    assert_eq!(
        (status, body["error"].as_str(), body["status"].as_str()),
        (409, Some("order_rejected"), Some("rejected")),
        "{body}"
    );
    // Neither refusal touched the books: the taker's hold is the one live order.
    assert_eq!(order_status(&stack, taker).await, "pending");
    let books = stack.books(sale).await.unwrap();
    assert_eq!(
        (books.live(), books.cancelled, books.rejected, books.paid),
        (1, 1, 1, 0),
        "{books:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crash_between_the_database_cancel_and_the_redis_return_loses_nothing() {
    // The unit is not in Redis yet when the origin dies: the restarted one puts it back.
    crash_during_a_return("after_cancel", 1).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crash_after_the_redis_return_before_its_record_is_closed_counts_the_unit_once() {
    // The unit is back in Redis when the origin dies, its return still open: the restarted one
    // runs the return again and the Redis barrier keeps the unit from counting twice.
    crash_during_a_return("after_restock", 2).await;
}

/// A hold cancelled by its user on an origin killed (SIGKILL) at `point` of the unit's return,
/// with `redis_at_crash` units in Redis then (of 3: one held by a keeper); restarted, the return
/// is finished exactly once.
async fn crash_during_a_return(point: &str, redis_at_crash: i64) {
    use std::os::unix::process::ExitStatusExt;

    let mut stack = stack().await;
    let sale = sale(&stack, 3, 600).await;
    let order = reserve(&stack, sale, "quitter").await;
    reserve(&stack, sale, "keeper").await;
    stack.origin.restart(Some(point)).await.unwrap();
    let url = format!("{}/v1/orders/{order}?uid=quitter", stack.origin.url());
    assert!(
        stack.http.delete(url).send().await.is_err(),
        "the crash cuts the answer off"
    );
    let exit = stack
        .origin
        .wait_exit(Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(exit.signal(), Some(9), "{point}: killed by SIGKILL: {exit}");
    let books = stack.books(sale).await.unwrap();
    assert_eq!(
        (books.returning, books.redis_remaining),
        (1, redis_at_crash),
        "{point}: {books:?}"
    );

    stack.origin.restart(None).await.unwrap();
    let took = stack.wait_quiet(sale, DEADLINE).await.unwrap();
    println!(
        "{point}: open return finished {:.2} s after the restart",
        took.as_secs_f64()
    );
    let books = stack.books(sale).await.unwrap();
    books.check().unwrap();
    assert_eq!(
        (books.redis_remaining, books.live(), books.cancelled),
        (2, 1, 1),
        "{point}: {books:?}"
    );
    let mut conn = stack.redis.connection().await.unwrap();
    let barrier: Option<String> = conn.get(format!("{{s:{sale}}}:r:{order}")).await.unwrap();
    assert_eq!(barrier.as_deref(), Some("returned"));
    let (ok, report) = stack.reconcile(sale, false).await.unwrap();
    assert!(
        ok && report["drift"] == 0 && report["returning"] == 0,
        "{point}: {report}"
    );
}

/// A small deterministic generator (SplitMix64), so a failing sequence can be replayed.
struct Seeded(u64);

impl Seeded {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn i2_conservation_through_a_seeded_mix_of_buys_payments_cancels_and_expiries() {
    const SEED: u64 = 0x5EED_2026;
    const OPS: usize = 3000;
    // Extensions of 2 s: an extended hold of this 1 s sale still lapses within the final wait.
    let options = OriginOptions {
        extend_seconds: 2,
        ..OriginOptions::default()
    };
    let stack = Arc::new(Stack::start(origin_binary!(), options).await.unwrap());
    let sale = sale(&stack, 60, 1).await;
    let mut rng = Seeded(SEED);
    let mut orders: Vec<(i64, String)> = Vec::new();
    let mut counts = std::collections::BTreeMap::<&str, usize>::new();
    let started = Instant::now();
    for batch in 0..(OPS / 20) {
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..20 {
            let op = rng.below(10);
            let pick = (!orders.is_empty())
                .then(|| orders[rng.below(orders.len() as u64) as usize].clone());
            let uid = format!("u{}", rng.below(400));
            let stack = stack.clone();
            let kind = match (op, &pick) {
                (0..=4, _) | (_, None) => "buy",
                (5..=6, Some(_)) => "pay",
                (7, Some(_)) => "cancel",
                (8, Some(_)) => "extend",
                _ => "read",
            };
            *counts.entry(kind).or_default() += 1;
            tasks.spawn(async move {
                match (kind, pick) {
                    ("buy", _) => {
                        let (status, body) = stack.reserve(sale, &uid).await.unwrap();
                        (status == 200).then(|| (body["order_id"].as_i64().unwrap_or(0), uid))
                    }
                    ("pay", Some((order, owner))) => {
                        pay(&stack, order, &owner, &format!("p-{order}")).await;
                        None
                    }
                    ("cancel", Some((order, owner))) => {
                        let url = format!("{}/v1/orders/{order}?uid={owner}", stack.origin.url());
                        stack.http.delete(url).send().await.unwrap();
                        None
                    }
                    ("extend", Some((order, owner))) => {
                        stack
                            .post(
                                &format!("/v1/orders/{order}/extend"),
                                &json!({"uid": owner}),
                            )
                            .await
                            .unwrap();
                        None
                    }
                    (_, Some((order, owner))) => {
                        let url = format!("{}/v1/orders/{order}?uid={owner}", stack.origin.url());
                        stack.http.get(url).send().await.unwrap();
                        None
                    }
                    _ => None,
                }
            });
        }
        for new in tasks.join_all().await.into_iter().flatten() {
            orders.push(new);
        }
        // A quiet point every 30 batches: nothing in flight, the books balance.
        if batch % 30 == 29 {
            stack.wait_balanced(sale, DEADLINE).await.unwrap();
        } else {
            stack.books(sale).await.unwrap().check_safety().unwrap();
        }
    }
    // The end: every hold settles (paid, or expired and returned).
    let db = stack.postgres.client().await.unwrap();
    let db = &db;
    wait::until(
        "every hold settled",
        Duration::from_secs(60),
        || async move {
            let n: i64 = db
                .query_one(
                    "SELECT count(*) FROM orders WHERE sale_id = $1 AND status = 'pending'",
                    &[&sale],
                )
                .await?
                .get(0);
            Ok(n == 0)
        },
    )
    .await
    .unwrap();
    let books = stack.wait_balanced(sale, DEADLINE).await.unwrap();
    println!(
        "seed {SEED:#x}: {OPS} operations {counts:?} in {:.1} s; final books {books:?}",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(books.redis_remaining + books.paid, 60, "{books:?}");
    let (ok, report) = stack.reconcile(sale, false).await.unwrap();
    assert!(ok && report["drift"] == 0, "{report}");
}

#[tokio::test(flavor = "multi_thread")]
async fn another_users_order_and_an_unknown_one_are_both_404_through_the_edge() {
    let stack = stack().await;
    let edge = EdgeProcess::start(
        edge_binary!(),
        &stack.redis.url(),
        &[stack.origin.url()],
        &EdgeOptions::default(),
    )
    .await
    .unwrap();
    let sale = sale(&stack, 2, 600).await;
    let order = reserve(&stack, sale, "alice").await;
    let url = edge.url();
    let mallory = jwt("mallory");
    let alice = jwt("alice");
    let cases = [
        (
            "GET",
            format!("{url}/api/orders/{order}"),
            None::<Value>,
            &mallory,
            404,
            "unknown_order",
        ),
        (
            "DELETE",
            format!("{url}/api/orders/{order}"),
            None,
            &mallory,
            404,
            "unknown_order",
        ),
        (
            "POST",
            format!("{url}/api/orders/{order}/extend"),
            None,
            &mallory,
            404,
            "unknown_order",
        ),
        (
            "GET",
            format!("{url}/api/orders/999999"),
            None,
            &alice,
            404,
            "unknown_order",
        ),
        (
            "GET",
            format!("{url}/api/orders/abc"),
            None,
            &alice,
            400,
            "invalid_order_id",
        ),
    ];
    for (method, target, body, token, status, code) in cases {
        let mut req = stack
            .http
            .request(method.parse().unwrap(), &target)
            .bearer_auth(token);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await.unwrap();
        let got = resp.status().as_u16();
        let body: Value = resp.json().await.unwrap();
        assert_eq!(
            (got, body["error"].as_str()),
            (status, Some(code)),
            "{method} {target}: {body}"
        );
    }
    // The owner sees the hold and its time left, extends it once, pays.
    let mine: Value = stack
        .http
        .get(format!("{url}/api/orders/{order}"))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(mine["status"], "pending");
    assert!(
        mine["hold_remaining_seconds"].as_i64().unwrap() > 500,
        "{mine}"
    );
    let extend = |n: u16| {
        let http = stack.http.clone();
        let target = format!("{url}/api/orders/{order}/extend");
        let alice = alice.clone();
        async move {
            let resp = http.post(target).bearer_auth(&alice).send().await.unwrap();
            assert_eq!(resp.status().as_u16(), n);
        }
    };
    extend(200).await;
    extend(409).await;
    // Paid by the payment service's signed webhook (dev mode plays it for the owner).
    let paid = stack
        .http
        .post(format!("{url}/api/dev/pay"))
        .bearer_auth(&alice)
        .json(&json!({"order_id": order}))
        .send()
        .await
        .unwrap();
    assert_eq!(paid.status(), 200);
    stack.books(sale).await.unwrap().check().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn two_origins_sweeping_the_same_expired_holds_cancel_each_once() {
    const HOLDS: i64 = 40;
    let stack = stack().await;
    let other = flash_tests::origin_process::OriginProcess::start(
        origin_binary!(),
        &stack.redis.url(),
        &stack.postgres.url(),
        &OriginOptions::default(),
        None,
    )
    .await
    .unwrap();
    let sale = sale(&stack, HOLDS, 1).await;
    let mut orders = Vec::new();
    for i in 0..HOLDS {
        orders.push(reserve(&stack, sale, &format!("sleeper-{i}")).await);
    }
    let db = stack.postgres.client().await.unwrap();
    let db = &db;
    wait::until("every hold cancelled", DEADLINE, || async move {
        let n: i64 = db
            .query_one(
                "SELECT count(*) FROM orders WHERE sale_id = $1 AND status = 'cancelled'",
                &[&sale],
            )
            .await?
            .get(0);
        Ok(n == HOLDS)
    })
    .await
    .unwrap();
    stack.wait_quiet(sale, DEADLINE).await.unwrap();
    // However the two sweepers shared the work, together they cancelled each hold once.
    let mut by_origin = Vec::new();
    for url in [stack.origin.url(), other.url()] {
        let text = flash_tests::metrics::scrape(&stack.http, &format!("{url}/metrics"))
            .await
            .unwrap();
        by_origin.push(flash_tests::metrics::sample_sum(
            &text,
            "origin_holds_total",
            &[("outcome", "expired")],
        ) as i64);
    }
    println!("expired holds cancelled by each origin: {by_origin:?}");
    assert_eq!(by_origin.iter().sum::<i64>(), HOLDS, "{by_origin:?}");
    let barriers: i64 = db
        .query_one(
            "SELECT count(*) FROM barriers b JOIN orders o ON o.gid = b.gid \
             WHERE o.sale_id = $1 AND b.op = 'cancel'",
            &[&sale],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(barriers, HOLDS);
    let books = stack.books(sale).await.unwrap();
    books.check().unwrap();
    assert_eq!(
        (books.cancelled, books.redis_remaining, books.live()),
        (HOLDS, HOLDS, 0),
        "every unit back once: {books:?}"
    );
}
