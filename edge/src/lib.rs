//! The flash-sale edge gateway: identity, captcha pass tokens, per-IP / per-UID / global limits,
//! the sold-out short circuit, sale pages, and forwarding of the survivors to the origins.
#![forbid(unsafe_code)]

pub mod captcha;
pub mod config;
pub mod identity;
pub mod limits;
pub mod pass;

use axum::{routing::get, Json, Router};
use serde_json::json;

/// The edge's HTTP service.
pub fn router() -> Router {
    Router::new().route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
}
