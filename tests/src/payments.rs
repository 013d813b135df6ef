//! The shop's payment service, as the tests play it: a `payment.succeeded` webhook for an order,
//! signed as the service signs it (`Payment-Signature: t=<unix>,v1=<HMAC-SHA256>`, the origin's
//! own `payments::sign`), sent to the origin's `/v1/payments/webhook` or the edge's public
//! `/api/payments/webhook`. Each part can be chosen, to forge, age or replay a webhook.

use serde_json::{json, Value};

use crate::{origin_process::PAYMENT_WEBHOOK_SECRET, shopper};

/// The body the payment service sends when `payment_id` paid `amount_cents` in `currency` for
/// `order`, bought for `uid`.
pub fn event(order: i64, uid: &str, payment_id: &str, amount_cents: i64, currency: &str) -> Value {
    json!({
        "type": "payment.succeeded",
        "payment_id": payment_id,
        "order_id": order,
        "uid": uid,
        "amount_cents": amount_cents,
        "currency": currency,
    })
}

/// A signed webhook: the raw body and its `Payment-Signature`, made now with the tests' secret.
pub fn signed(event: &Value) -> (String, String) {
    signed_with(event, PAYMENT_WEBHOOK_SECRET, now())
}

/// A webhook signed with `secret` at `timestamp`.
pub fn signed_with(event: &Value, secret: &str, timestamp: i64) -> (String, String) {
    let body = event.to_string();
    let signature = origin::payments::sign(secret, timestamp, body.as_bytes());
    (body, signature)
}

/// Unix seconds now.
pub fn now() -> i64 {
    i64::try_from(shopper::now_unix()).unwrap_or(i64::MAX)
}

/// POSTs `body` with `signature` (if any) to `url`: (status, JSON body).
pub async fn send(
    http: &reqwest::Client,
    url: &str,
    body: &str,
    signature: Option<&str>,
) -> anyhow::Result<(u16, Value)> {
    let mut req = http
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(signature) = signature {
        req = req.header("payment-signature", signature);
    }
    let resp = req.send().await?;
    let status = resp.status().as_u16();
    Ok((status, resp.json().await?))
}

/// Pays `order` through the origin's webhook, correctly signed: (status, body).
pub async fn pay(
    http: &reqwest::Client,
    origin_url: &str,
    event: &Value,
) -> anyhow::Result<(u16, Value)> {
    let (body, signature) = signed(event);
    send(
        http,
        &format!("{origin_url}/v1/payments/webhook"),
        &body,
        Some(&signature),
    )
    .await
}
