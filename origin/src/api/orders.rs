//! A user's order at the origin: read it, extend it once, cancel it; and the answer of a payment
//! webhook (`api/payments.rs`) about it. The uid comes from the edge (the verified user JWT's)
//! and must be the order's: another user's order is answered exactly as an unknown one (404
//! `unknown_order`, the same body), so sequential ids tell nothing. Payment is not here: only
//! the payment service's signed webhook pays an order.

use axum::{
    extract::{FromRequestParts, Path, Query, State},
    http::request::Parts,
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

/// An order asked for by its owner: the order id of the path and the `?uid=` of the query, each
/// checked (`invalid_order_id`, `invalid_uid`; a query that does not parse has no uid).
pub(super) struct ByOwner {
    id: i64,
    uid: String,
}

impl FromRequestParts<AppState> for ByOwner {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> std::result::Result<Self, Response> {
        let Path(id) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let query = Query::<UidQuery>::from_request_parts(parts, state).await;
        let checked = || -> Result<Self> {
            let id = order_id(&id)?;
            let uid = query
                .ok()
                .and_then(|Query(q)| q.uid)
                .ok_or_else(|| Error::bad_request("invalid_uid", "?uid= is required"))?;
            valid_uid(&uid, state.config.http.max_uid_bytes)?;
            Ok(Self { id, uid })
        };
        checked().map_err(IntoResponse::into_response)
    }
}

pub(super) async fn order(State(state): State<AppState>, owner: ByOwner) -> Result<Response> {
    Ok(order_answer(state.holds.order(owner.id, &owner.uid).await?))
}

pub(super) async fn cancel_order(
    State(state): State<AppState>,
    owner: ByOwner,
) -> Result<Response> {
    Ok(order_answer(
        state.holds.cancel_by_user(owner.id, &owner.uid).await?,
    ))
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
