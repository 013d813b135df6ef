//! Finding 4, the payment service's half: a forged, stale, replayed or mismatched webhook is refused
//! with the books untouched; a signed one pays once and its replay answers the same.

use super::*;

/// A webhook sent as is: its name, (raw body, signature header), the status and code expected.
type Case<'a> = (&'a str, (String, Option<String>), u16, &'a str);

#[tokio::test(flavor = "multi_thread")]
async fn finding_4_forged_stale_and_mismatched_webhooks_are_refused_with_the_books_untouched() {
    let world = World::start().await;
    let sale = world.sale(3).await;
    let order = world.reserve(sale, "alice").await;
    let other = world.reserve(sale, "bob").await;
    let books = world.front.stack.books(sale).await.unwrap();
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
            &world.front.stack.http,
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
    let after = world.front.stack.books(sale).await.unwrap();
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
    let http = &world.front.stack.http;
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
    let books = world.front.stack.books(sale).await.unwrap();
    books.check().unwrap();
    assert_eq!(books.paid, 1, "{books:?}");
    // Dev mode's button pays bob's order through the same signed path, once.
    let dev = |token: String| {
        http.post(format!("{}/api/dev/pay", world.front.nginx.url()))
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
    assert_eq!(world.front.stack.books(sale).await.unwrap().paid, 2);
}
