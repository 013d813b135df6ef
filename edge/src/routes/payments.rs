//! `POST /api/payments/webhook`: the shop's payment service tells the shop an order was paid.
//! The provider calls a public URL, so the webhook comes in through nginx and the edge like any
//! API call, but with no user JWT and no per-IP buy limit: the raw body and its
//! `Payment-Signature` header go to the origin's `POST /v1/payments/webhook` untouched, and the
//! origin, which alone holds the webhook secret, verifies them. Its answer is passed back as is.

use axum::{
    body::Bytes,
    extract::{rejection::BytesRejection, State},
    http::{HeaderMap, HeaderName, Method, StatusCode},
    response::Response,
    Extension,
};

use super::{counted, orders::pass_through, Ctx};
use crate::{error::Error, payments::SIGNATURE_HEADER, state::AppState};

const ROUTE: &str = "payments";

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
            return counted(&state, ROUTE, "failed", e.code(), e);
        }
    };
    // Only the signature goes along: the origin judges it (missing, malformed, forged, stale).
    let signature: Vec<_> = headers
        .get(SIGNATURE_HEADER)
        .map(|v| (HeaderName::from_static(SIGNATURE_HEADER), v.clone()))
        .into_iter()
        .collect();
    tracing::info!(
        bytes = body.len(),
        signed = !signature.is_empty(),
        "payment webhook"
    );
    pass_through(
        &state,
        &ctx,
        ROUTE,
        Method::POST,
        "/v1/payments/webhook",
        Some(body),
        &signature,
    )
    .await
}
