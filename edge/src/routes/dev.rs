//! Dev mode's stand-ins, for local use; each answers 404 (as if it did not exist) unless
//! `http.dev_mode` is on. `POST /api/dev/token {"uid"}` mints a user JWT. `POST /api/dev/pay
//! {"order_id"}` (user JWT) plays the shop's payment service for the user's own order: it signs
//! a `payment.succeeded` webhook (payment id `dev-<order>`, the sale's price and currency) with
//! `payments.dev_webhook_secret` and sends it to the origin's webhook, which verifies it as it
//! verifies the real service's: the same signed path, nothing the browser could forge.

use axum::{
    extract::State,
    http::{HeaderMap, HeaderValue, Method},
    response::{IntoResponse, Response},
    Extension, Json,
};
use hyper::body::Bytes;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{
    counted,
    orders::{admit, order_id, query_uid},
    ApiJson, Ctx,
};
use crate::{clock, error::Error, identity, payments, state::AppState};

/// Lifetime of a dev token.
const DEV_TOKEN_SECONDS: u64 = 3600;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DevTokenBody {
    uid: String,
}

pub async fn token(
    State(state): State<AppState>,
    body: Result<ApiJson<DevTokenBody>, Error>,
) -> Response {
    let runtime = state.runtime.load();
    if !runtime.config.http.dev_mode {
        return counted("refused", "dev_mode_off", Error::NoRoute);
    }
    let body = match body {
        Ok(ApiJson(body)) => body,
        Err(e) => return counted("failed", e.code(), e),
    };
    if body.uid.is_empty() || body.uid.len() > 128 || body.uid.chars().any(char::is_control) {
        let e = Error::bad_request(
            "invalid_uid",
            "uid must be 1 to 128 bytes without control characters",
        );
        return counted("failed", e.code(), e);
    }
    match identity::mint_dev_token(
        &runtime.config.identity,
        &body.uid,
        DEV_TOKEN_SECONDS,
        clock::unix_now(),
    ) {
        Ok(token) => {
            tracing::info!(uid = %body.uid, "dev token minted");
            counted(
                "served",
                "",
                Json(json!({"token": token, "uid": body.uid, "expires_in": DEV_TOKEN_SECONDS})),
            )
        }
        Err(e) => {
            let e = Error::bad_request("dev_tokens_unavailable", e.to_string());
            counted("failed", e.code(), e)
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DevPayBody {
    order_id: i64,
}

pub async fn pay(
    State(state): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    headers: HeaderMap,
    body: Result<ApiJson<DevPayBody>, Error>,
) -> Response {
    let runtime = state.runtime.load();
    let secret = match &runtime.config.payments.dev_webhook_secret {
        Some(secret) if runtime.config.http.dev_mode => secret.clone(),
        _ => return counted("refused", "dev_mode_off", Error::NoRoute),
    };
    let uid = match admit(&state, &ctx, &headers).await {
        Ok(user) => user.uid.into_string(),
        Err(refusal) => {
            let reason = refusal.reason();
            return counted("refused", reason, refusal);
        }
    };
    let order = match body.and_then(|ApiJson(b)| order_id(&b.order_id.to_string())) {
        Ok(order) => order,
        Err(e) => return counted("failed", e.code(), e),
    };
    // The order as its owner reads it: another user's (or no) order is passed back, 404.
    let path = format!("/v1/orders/{order}?uid={}", query_uid(&uid));
    let read = match runtime
        .origins
        .send(Method::GET, &path, None, &ctx.request_id)
        .await
    {
        Ok(answer) => answer,
        Err(e) => {
            let e = Error::OriginUnavailable(e.to_string());
            return counted("failed", e.code(), e);
        }
    };
    let sale = serde_json::from_slice::<Value>(&read.body)
        .ok()
        .and_then(|o| o["sale"].as_i64());
    let Some(sale) = sale.filter(|_| read.status.is_success()) else {
        return counted("refused", "order", (read.status, read.body).into_response());
    };
    let info = match state
        .sales
        .get(&runtime.origins, sale, &ctx.request_id)
        .await
    {
        Ok(info) => info,
        Err(e) => return counted("failed", e.code(), e),
    };
    let event = json!({
        "type": "payment.succeeded",
        "payment_id": format!("dev-{order}"),
        "order_id": order,
        "uid": uid,
        "amount_cents": info.price_cents,
        "currency": info.currency,
    });
    let body = Bytes::from(event.to_string());
    let signature = payments::sign(&secret, clock::unix_now(), &body);
    let Ok(signature) = HeaderValue::from_str(&signature) else {
        let e = Error::Internal("dev payment signature".into());
        return counted("failed", e.code(), e);
    };
    tracing::info!(order, %uid, "dev payment signed");
    super::payments::to_origin(&state, &ctx, body, Some(signature)).await
}
