//! A user's order at the origin: read it, pay it (idempotent by payment id), extend it once,
//! cancel it. The uid comes from the edge (the verified user JWT's) and must be the order's.

use axum::{
    extract::{Path, Query, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    Json,
};
use serde::Deserialize;
use serde_json::{json, Value};
use time::OffsetDateTime;

use super::{refusal, valid_uid, ApiJson, AppState, ReserveBody};
use crate::{
    error::{Error, Result},
    holds::Outcome,
};

fn order_id(raw: &str) -> Result<i64> {
    raw.parse::<i64>().ok().filter(|id| *id > 0).ok_or_else(|| {
        Error::bad_request("invalid_order_id", "order id must be a positive integer")
    })
}

/// The answer to an operation on an order.
fn order_answer(outcome: Outcome) -> Response {
    let now = OffsetDateTime::now_utc();
    match outcome {
        Outcome::Done(order) => {
            let mut body = serde_json::to_value(&order).unwrap_or(Value::Null);
            if let Value::Object(map) = &mut body {
                map.insert(
                    "hold_remaining_seconds".into(),
                    json!(order.hold_remaining(now)),
                );
            }
            (StatusCode::OK, Json(body)).into_response()
        }
        Outcome::Refused { code, order } => refusal(
            StatusCode::CONFLICT,
            code,
            match code {
                "hold_expired" => "the hold expired before the payment: refund it",
                "already_paid" => "the order is paid already (with another payment id)",
                "already_extended" => "a hold can be extended once",
                "payment_id_used" => "this payment id paid another order",
                "not_expired" => "the hold has not expired",
                _ => "the order is not a live hold",
            },
            json!({"order": order, "status": order.status}),
        ),
        Outcome::NotYours => refusal(
            StatusCode::FORBIDDEN,
            "not_your_order",
            "this order belongs to another user",
            json!({}),
        ),
        Outcome::Unknown => refusal(
            StatusCode::NOT_FOUND,
            "unknown_order",
            "no such order",
            json!({}),
        ),
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct UidQuery {
    uid: Option<String>,
}

fn uid_of(
    query: std::result::Result<Query<UidQuery>, axum::extract::rejection::QueryRejection>,
    max: usize,
) -> Result<String> {
    let uid = query
        .ok()
        .and_then(|Query(q)| q.uid)
        .ok_or_else(|| Error::bad_request("invalid_uid", "?uid= is required"))?;
    valid_uid(&uid, max)?;
    Ok(uid)
}

pub(super) async fn order(
    State(state): State<AppState>,
    Path(id): Path<String>,
    query: std::result::Result<Query<UidQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response> {
    let id = order_id(&id)?;
    let uid = uid_of(query, state.config.http.max_uid_bytes)?;
    Ok(order_answer(state.holds.order(id, &uid).await?))
}

pub(super) async fn cancel_order(
    State(state): State<AppState>,
    Path(id): Path<String>,
    query: std::result::Result<Query<UidQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response> {
    let id = order_id(&id)?;
    let uid = uid_of(query, state.config.http.max_uid_bytes)?;
    Ok(order_answer(state.holds.cancel(id, Some(&uid)).await?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PayBody {
    uid: String,
    payment_id: String,
}

pub(super) async fn pay(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<PayBody>,
) -> Result<Response> {
    let id = order_id(&id)?;
    valid_uid(&body.uid, state.config.http.max_uid_bytes)?;
    let p = &body.payment_id;
    if p.is_empty() || p.len() > 128 || !p.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Error::bad_request(
            "invalid_payment_id",
            "payment_id must be 1 to 128 printable ASCII characters",
        ));
    }
    Ok(order_answer(state.holds.pay(id, &body.uid, p).await?))
}

pub(super) async fn extend(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ReserveBody>,
) -> Result<Response> {
    let id = order_id(&id)?;
    valid_uid(&body.uid, state.config.http.max_uid_bytes)?;
    Ok(order_answer(state.holds.extend(id, &body.uid).await?))
}
