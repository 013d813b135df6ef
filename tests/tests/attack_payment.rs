//! The review's attacks on payment (finding 4: an order "paid" with any string) and on order ids
//! (finding 8: another user's order told apart from an unknown one), sent again against real
//! servers: nginx -> edge -> origin, Redis and PostgreSQL. The browser cannot pay; only the
//! payment service's signed webhook does, once; every forged, stale, replayed or mismatched one
//! is refused with the books untouched; another user's order and no order answer the same.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "integration tests: a failed unwrap is a failed test, with its message"
)]

use flash_tests::{edge_binary, origin_binary};
use std::path::Path;

use flash_tests::{
    edge_process::{EdgeOptions, EdgeProcess},
    nginx_server::NginxServer,
    origin_process::{OriginOptions, PAYMENT_WEBHOOK_SECRET},
    payments,
    stack::Stack,
};
use serde_json::{json, Value};

fn static_folder() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../static"))
}

struct World {
    stack: Stack,
    edge: EdgeProcess,
    nginx: NginxServer,
}

impl World {
    async fn start() -> Self {
        let stack = Stack::start(origin_binary!(), OriginOptions::default())
            .await
            .unwrap();
        let edge = EdgeProcess::start(
            edge_binary!(),
            &stack.redis.url(),
            &[stack.origin.url()],
            &EdgeOptions::default(),
        )
        .await
        .unwrap();
        let address = edge.url().trim_start_matches("http://").to_string();
        let nginx = NginxServer::start(&[address], static_folder())
            .await
            .unwrap();
        Self { stack, edge, nginx }
    }

    /// A sale at 129.00 EUR with `stock` units and long holds.
    async fn sale(&self, stock: i64) -> i64 {
        let (status, body) = self
            .stack
            .post(
                "/v1/sales",
                &json!({"name": "Paid sneakers", "stock": stock, "hold_seconds": 600,
                        "price_cents": 12900, "currency": "EUR"}),
            )
            .await
            .unwrap();
        assert_eq!(status, 201, "{body}");
        body["id"].as_i64().unwrap()
    }

    async fn reserve(&self, sale: i64, uid: &str) -> i64 {
        let (status, body) = self.stack.reserve(sale, uid).await.unwrap();
        assert_eq!(status, 200, "{body}");
        body["order_id"].as_i64().unwrap()
    }

    /// The order's status, payment id and paid_at, as PostgreSQL has them.
    async fn row(&self, order: i64) -> (String, Option<String>, Option<time::OffsetDateTime>) {
        let db = self.stack.postgres.client().await.unwrap();
        let row = db
            .query_one(
                "SELECT status, payment_id, paid_at FROM orders WHERE id = $1",
                &[&order],
            )
            .await
            .unwrap();
        (row.get(0), row.get(1), row.get(2))
    }

    /// The public webhook URL, through nginx and the edge.
    fn webhook_url(&self) -> String {
        format!("{}/api/payments/webhook", self.nginx.url())
    }
}

/// A webhook sent as is: its name, (raw body, signature header), the status and code expected.
type Case<'a> = (&'a str, (String, Option<String>), u16, &'a str);

fn jwt(uid: &str) -> String {
    flash_tests::shopper::jwt(uid).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn finding_4_the_browser_cannot_pay_an_order_with_any_string() {
    let world = World::start().await;
    let sale = world.sale(2).await;
    let order = world.reserve(sale, "alice").await;
    let http = &world.stack.http;
    // The review's request, through nginx and straight at the edge: the endpoint is gone.
    for base in [world.nginx.url(), world.edge.url()] {
        let resp = http
            .post(format!("{base}/api/orders/{order}/pay"))
            .bearer_auth(jwt("alice"))
            .json(&json!({"payment_id": "anything-i-like"}))
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.unwrap();
        assert!(
            matches!(status, 404 | 405) && body["error"].is_string(),
            "{base}: {status} {body}"
        );
    }
    // The origin's old bare payment id is gone too.
    let (status, body) = world
        .stack
        .post(
            &format!("/v1/orders/{order}/pay"),
            &json!({"uid": "alice", "payment_id": "anything-i-like"}),
        )
        .await
        .unwrap();
    assert!(matches!(status, 404 | 405), "{status} {body}");
    // The browser's own JSON sent to the public webhook, with a JWT and without a signature.
    let event = payments::event(order, "alice", "anything-i-like", 12900, "EUR");
    let resp = http
        .post(world.webhook_url())
        .bearer_auth(jwt("alice"))
        .json(&event)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "signature_missing", "{body}");
    assert_eq!(world.row(order).await, ("pending".into(), None, None));
    world.stack.books(sale).await.unwrap().check().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn finding_4_forged_stale_and_mismatched_webhooks_are_refused_with_the_books_untouched() {
    let world = World::start().await;
    let sale = world.sale(3).await;
    let order = world.reserve(sale, "alice").await;
    let other = world.reserve(sale, "bob").await;
    let books = world.stack.books(sale).await.unwrap();
    let good = payments::event(order, "alice", "pi_alice", 12900, "EUR");
    let now = payments::now();
    let (body, signature) = payments::signed(&good);
    let hex = signature.split_once("v1=").unwrap().1.to_string();
    let tampered = body.replace("pi_alice", "pi_mallory");
    let stale = payments::signed_with(&good, PAYMENT_WEBHOOK_SECRET, now - 301);
    // 310 s ahead: still beyond the 300 s tolerance when this request is sent seconds later.
    let future = payments::signed_with(&good, PAYMENT_WEBHOOK_SECRET, now + 310);
    let forged = payments::signed_with(&good, "a-guessed-secret-of-32-bytes-or-more!!", now);
    let cases: Vec<Case> = vec![
        (
            "no signature",
            (body.clone(), None),
            400,
            "signature_missing",
        ),
        (
            "garbage signature",
            (body.clone(), Some("anything-i-like".into())),
            400,
            "signature_malformed",
        ),
        (
            "no timestamp",
            (body.clone(), Some(format!("v1={hex}"))),
            400,
            "signature_malformed",
        ),
        (
            "forged with another key",
            (forged.0, Some(forged.1)),
            401,
            "bad_signature",
        ),
        (
            "the body changed under a good signature",
            (tampered, Some(signature.clone())),
            401,
            "bad_signature",
        ),
        (
            "the timestamp moved under a good signature",
            (
                body.clone(),
                Some(signature.replace(&format!("t={now}"), &format!("t={}", now + 1))),
            ),
            401,
            "bad_signature",
        ),
        (
            "captured 301 s ago",
            (stale.0, Some(stale.1)),
            401,
            "stale_timestamp",
        ),
        (
            "over the edge's 4 KiB body limit (under nginx's 8 KiB)",
            (format!("{body:<6000}"), Some(signature.clone())),
            413,
            "body_too_large",
        ),
        (
            "dated 310 s ahead",
            (future.0, Some(future.1)),
            401,
            "stale_timestamp",
        ),
    ];
    let mut signed_cases: Vec<(&str, Value, u16, &str)> = vec![
        (
            "a cent short",
            payments::event(order, "alice", "pi_short", 12899, "EUR"),
            409,
            "amount_mismatch",
        ),
        (
            "nothing paid",
            payments::event(order, "alice", "pi_zero", 0, "EUR"),
            409,
            "amount_mismatch",
        ),
        (
            "another currency",
            payments::event(order, "alice", "pi_usd", 12900, "USD"),
            409,
            "currency_mismatch",
        ),
        (
            "another order's uid",
            payments::event(order, "bob", "pi_bob", 12900, "EUR"),
            409,
            "uid_mismatch",
        ),
        (
            "an unknown order",
            payments::event(other + 1000, "alice", "pi_none", 12900, "EUR"),
            404,
            "unknown_order",
        ),
    ];
    signed_cases.push((
        "not a payment",
        json!({"type": "payment.refunded", "payment_id": "pi_r", "order_id": order,
               "uid": "alice", "amount_cents": 12900, "currency": "EUR"}),
        400,
        "invalid_payment",
    ));
    let mut all = cases;
    for (name, event, status, code) in signed_cases {
        let (body, signature) = payments::signed(&event);
        all.push((name, (body, Some(signature)), status, code));
    }
    for (name, (body, signature), status, code) in all {
        let got = payments::send(
            &world.stack.http,
            &world.webhook_url(),
            &body,
            signature.as_deref(),
        )
        .await
        .unwrap();
        assert_eq!(
            (got.0, got.1["error"].as_str()),
            (status, Some(code)),
            "{name}: {}",
            got.1
        );
        assert_eq!(
            world.row(order).await,
            ("pending".into(), None, None),
            "{name}"
        );
        assert_eq!(world.row(other).await.0, "pending", "{name}");
    }
    let after = world.stack.books(sale).await.unwrap();
    assert_eq!(
        format!("{after:?}"),
        format!("{books:?}"),
        "the books did not move"
    );
    after.check().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn finding_4_a_signed_webhook_pays_once_and_its_replay_answers_the_same() {
    let world = World::start().await;
    let sale = world.sale(3).await;
    let order = world.reserve(sale, "alice").await;
    let other = world.reserve(sale, "bob").await;
    let (body, signature) =
        payments::signed(&payments::event(order, "alice", "pi_1", 12900, "EUR"));
    let url = world.webhook_url();
    let http = &world.stack.http;
    let first = payments::send(http, &url, &body, Some(&signature))
        .await
        .unwrap();
    assert_eq!(
        (first.0, first.1["status"].as_str()),
        (200, Some("paid")),
        "{}",
        first.1
    );
    let paid = world.row(order).await;
    assert_eq!((paid.0.as_str(), paid.1.as_deref()), ("paid", Some("pi_1")));
    // The same webhook again (a provider's retry, or an attacker's replay within the window):
    // the same answer, and nothing changes, not even paid_at.
    for _ in 0..3 {
        let again = payments::send(http, &url, &body, Some(&signature))
            .await
            .unwrap();
        assert_eq!(again, first);
        assert_eq!(world.row(order).await, paid);
    }
    // The same payment again, signed anew: still the same answer.
    let (body2, signature2) =
        payments::signed(&payments::event(order, "alice", "pi_1", 12900, "EUR"));
    assert_eq!(
        payments::send(http, &url, &body2, Some(&signature2))
            .await
            .unwrap(),
        first
    );
    // Another payment for the paid order: refused, the first stands.
    let (b, s) = payments::signed(&payments::event(order, "alice", "pi_2", 12900, "EUR"));
    let (status, answer) = payments::send(http, &url, &b, Some(&s)).await.unwrap();
    assert_eq!(
        (status, answer["error"].as_str()),
        (409, Some("already_paid")),
        "{answer}"
    );
    // The same payment id cannot pay a second order.
    let (b, s) = payments::signed(&payments::event(other, "bob", "pi_1", 12900, "EUR"));
    let (status, answer) = payments::send(http, &url, &b, Some(&s)).await.unwrap();
    assert_eq!(
        (status, answer["error"].as_str()),
        (409, Some("payment_id_used")),
        "{answer}"
    );
    assert_eq!(world.row(order).await, paid);
    assert_eq!(world.row(other).await, ("pending".into(), None, None));
    let books = world.stack.books(sale).await.unwrap();
    books.check().unwrap();
    assert_eq!(books.paid, 1, "{books:?}");
    // Dev mode's button pays bob's order through the same signed path, once.
    let dev = |token: String| {
        http.post(format!("{}/api/dev/pay", world.nginx.url()))
            .bearer_auth(token)
            .json(&json!({"order_id": other}))
            .send()
    };
    let resp = dev(jwt("mallory")).await.unwrap();
    assert_eq!(resp.status(), 404, "not mallory's order");
    assert_eq!(world.row(other).await.0, "pending");
    let first: Value = dev(jwt("bob")).await.unwrap().json().await.unwrap();
    assert_eq!(first["status"], "paid", "{first}");
    assert_eq!(first["payment_id"], format!("dev-{other}"), "{first}");
    let again: Value = dev(jwt("bob")).await.unwrap().json().await.unwrap();
    assert_eq!(again, first);
    assert_eq!(world.stack.books(sale).await.unwrap().paid, 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn finding_8_another_users_order_and_an_unknown_one_answer_the_same_for_every_verb() {
    let world = World::start().await;
    let sale = world.sale(2).await;
    let order = world.reserve(sale, "alice").await;
    let http = &world.stack.http;
    let mallory = jwt("mallory");
    let base = world.nginx.url();
    // Alice's order, the next id (nobody's yet) and a far one, as mallory sees them.
    let answer = |method: &'static str, path: String| {
        let req = http
            .request(method.parse().unwrap(), format!("{base}{path}"))
            .bearer_auth(&mallory);
        let req = if method == "POST" {
            req.json(&json!({}))
        } else {
            req
        };
        async move {
            let resp = req.send().await.unwrap();
            (resp.status().as_u16(), resp.text().await.unwrap())
        }
    };
    for (method, path) in [
        ("GET", "/api/orders/{id}"),
        ("DELETE", "/api/orders/{id}"),
        ("POST", "/api/orders/{id}/extend"),
        ("POST", "/api/orders/{id}/pay"),
    ] {
        let theirs = answer(method, path.replace("{id}", &order.to_string())).await;
        for unknown in [order + 1, 999_999] {
            let none = answer(method, path.replace("{id}", &unknown.to_string())).await;
            assert_eq!(theirs, none, "{method} {path}: alice's order vs {unknown}");
        }
        assert_eq!(theirs.0 / 100, 4, "{method} {path}: {theirs:?}");
        if !path.ends_with("/pay") {
            assert_eq!(theirs.0, 404, "{method} {path}: {theirs:?}");
            let body: Value = serde_json::from_str(&theirs.1).unwrap();
            assert_eq!(body["error"], "unknown_order", "{body}");
        }
    }
    // The origin itself answers the same (the edge passes its answers through).
    let origin = world.stack.origin.url();
    for path in [
        format!("/v1/orders/{order}?uid=mallory"),
        "/v1/orders/999999?uid=mallory".into(),
    ] {
        let resp = http.get(format!("{origin}{path}")).send().await.unwrap();
        assert_eq!(resp.status(), 404, "{path}");
    }
    // Nothing happened to alice's hold.
    let db = world.stack.postgres.client().await.unwrap();
    let row = db
        .query_one(
            "SELECT status, extended FROM orders WHERE id = $1",
            &[&order],
        )
        .await
        .unwrap();
    assert_eq!(
        (row.get::<_, String>(0), row.get::<_, bool>(1)),
        ("pending".into(), false)
    );
}
