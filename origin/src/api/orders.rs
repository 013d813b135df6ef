//! A user's order at the origin: read it, extend it once, cancel it; and the answer of a payment
//! webhook (`api/payments.rs`) about it. The uid comes from the edge (the verified user JWT's)
//! and must be the order's: another user's order is answered exactly as an unknown one (404
//! `unknown_order`, the same body), so sequential ids tell nothing. Payment is not here: only
//! the payment service's signed webhook pays an order.

use axum::{
    extract::{Path, Query, State},
    response::{IntoResponse, Response},
    Json,
};
use flash_wire::{OrderAnswer, UidBody};
use serde::Deserialize;
use time::OffsetDateTime;

use super::{valid_uid, ApiJson, AppState};
use crate::{
    error::{Error, Refusal, Result},
    holds::{Hold, Outcome},
};

fn order_id(raw: &str) -> Result<i64> {
    raw.parse::<i64>().ok().filter(|id| *id > 0).ok_or_else(|| {
        Error::bad_request("invalid_order_id", "order id must be a positive integer")
    })
}

/// The answer to an operation on an order.
pub(super) fn order_answer(outcome: Outcome) -> Response {
    let now = OffsetDateTime::now_utc();
    match outcome {
        Outcome::Done(order) => Json(OrderAnswer {
            hold_remaining_seconds: order.hold_remaining(now),
            order,
        })
        .into_response(),
        Outcome::Refused { code, order } => Refusal::Order { code, order }.into_response(),
        // The same answer, byte for byte: an id of another user's order reveals nothing.
        Outcome::NotYours | Outcome::Unknown => Refusal::UnknownOrder.into_response(),
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
    Ok(order_answer(state.holds.cancel_by_user(id, &uid).await?))
}

pub(super) async fn extend(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UidBody>,
) -> Result<Response> {
    let id = order_id(&id)?;
    valid_uid(&body.uid, state.config.http.max_uid_bytes)?;
    Ok(order_answer(state.holds.extend(id, &body.uid).await?))
}
