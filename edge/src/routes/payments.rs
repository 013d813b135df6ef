//! `POST /api/payments/webhook`: the shop's payment service tells the shop an order was paid.
//! The provider calls a public URL, so the webhook comes in through nginx and the edge like any
//! API call, but with no user JWT and no per-IP buy limit: the raw body and its
//! `Payment-Signature` header go to the origin's `POST /v1/payments/webhook` untouched, and the
//! origin, which alone holds the webhook secret, verifies them. Its answer is passed back as is.

use axum::{
    body::Bytes,
    extract::{rejection::BytesRejection, State},
    http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode},
    response::Response,
    Extension,
};

use super::{counted, orders::pass_through, Ctx};
use crate::{error::Error, payments::SIGNATURE_HEADER, state::AppState};

pub async fn webhook(
    State(state): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(rejection) => {
            let e = if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                Error::TooLarge {
                    limit: state.runtime.load().config.http.body_limit_bytes,
                }
            } else {
                Error::bad_request("invalid_body", rejection.body_text())
            };
            return counted("failed", e.code(), e);
        }
    };
    // Only the signature goes along: the origin judges it (missing, malformed, forged, stale).
    let signature = headers.get(SIGNATURE_HEADER).cloned();
    tracing::info!(
        bytes = body.len(),
        signed = signature.is_some(),
        "payment webhook"
    );
    to_origin(&state, &ctx, body, signature).await
}

/// Sends a webhook `body` and its `Payment-Signature`, when it has one, to the origin's webhook,
/// and passes its answer back as is.
pub(super) async fn to_origin(
    state: &AppState,
    ctx: &Ctx,
    body: Bytes,
    signature: Option<HeaderValue>,
) -> Response {
    let header: Vec<_> = signature
        .map(|v| (HeaderName::from_static(SIGNATURE_HEADER), v))
        .into_iter()
        .collect();
    pass_through(
        state,
        ctx,
        Method::POST,
        "/v1/payments/webhook",
        Some(body),
        &header,
    )
    .await
}
