//! The flash-sale edge gateway. For now it starts from its config and answers `/healthz`; the
//! filters (identity, captcha, limits, sold-out flag) and forwarding come next.
#![forbid(unsafe_code)]

pub mod config;

use axum::{routing::get, Json, Router};
use serde_json::json;

/// The edge's HTTP service.
pub fn router() -> Router {
    Router::new().route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
}
