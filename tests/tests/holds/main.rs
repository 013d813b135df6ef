//! Holds, payment and returned stock, on real servers, one module per concern: a lapsed hold
//! gives its unit back and re-opens a sold-out sale on every edge, and two origins sweeping the
//! same expired holds cancel each once (`expiry`); payment and expiry race without ever both
//! winning, a late payment is refused, paying a cancelled or rejected order is 409 (`payment`); a
//! crash during a unit's return loses nothing (`crash`); conservation holds through a seeded
//! random mix of buys, payments, cancels and expiries (`conservation`); a user cannot touch
//! another user's order, answered as an unknown one (`ownership`). One test binary.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "integration tests: a failed unwrap is a failed test, with its message"
)]

mod conservation;
mod crash;
mod expiry;
mod ownership;
mod payment;

use flash_tests::{edge_binary, origin_binary};
use std::{sync::Arc, time::Duration};

use flash_tests::{
    edge_process::{EdgeOptions, EdgeProcess},
    front,
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

/// An edge with the default options in front of `stack`.
async fn edge(stack: &Stack) -> EdgeProcess {
    front::start_edge(edge_binary!(), stack, &EdgeOptions::default())
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

/// POSTs `body` to `url` as the user of `jwt`.
async fn post_as(stack: &Stack, url: String, jwt: &str, body: Value) -> reqwest::Response {
    stack
        .http
        .post(url)
        .bearer_auth(jwt)
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// Sends `req` and reads its JSON answer.
async fn json_of(req: reqwest::RequestBuilder) -> Value {
    req.send().await.unwrap().json().await.unwrap()
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
