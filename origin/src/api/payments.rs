//! `POST /v1/payments/webhook`: the payment service tells the origin an order was paid. The raw
//! body is checked against its `Payment-Signature` before anything else (`payments.rs`), then
//! read as a payment event and applied by `Holds::confirm_payment`; the answer is the order's
//! (`orders::order_answer`): 200 paid, 409 with the reason, 404 unknown order.

use axum::{
    body::Bytes,
    extract::{rejection::BytesRejection, State},
    http::{HeaderMap, StatusCode},
    response::Response,
};
use time::OffsetDateTime;

use super::{orders::order_answer, AppState};
use crate::{
    error::{Error, Result},
    payments::{self, PaymentEvent},
};

pub(super) async fn webhook(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: std::result::Result<Bytes, BytesRejection>,
) -> Result<Response> {
    let body = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Error::TooLarge {
                limit: state.config.http.body_limit_bytes,
            }
        } else {
            Error::bad_request("invalid_body", rejection.body_text())
        }
    })?;
    let config = &state.config.payments;
    let signature = headers
        .get(payments::SIGNATURE_HEADER)
        .map(|v| v.to_str().unwrap_or(""));
    if let Err(error) = payments::verify(
        signature,
        &body,
        config.secrets(),
        OffsetDateTime::now_utc().unix_timestamp(),
        i64::from(config.tolerance_seconds),
    ) {
        tracing::warn!(%error, bytes = body.len(), "payment webhook refused");
        return Err(error);
    }
    let event = PaymentEvent::parse(&body, state.config.http.max_uid_bytes)?;
    Ok(order_answer(state.holds.confirm_payment(&event).await?))
}
