//! The edge's HTTP API as an axum `Router` built from state (so tests can drive it in memory):
//! sale status and page, captcha, buy, orders, the payment webhook, dev tokens and payments,
//! health. Shared request plumbing lives here:
//! the request id, the client IP, JSON bodies answered in the API's error format, and the
//! per-route metrics. Documented in docs/API.md.

mod buy;
mod captcha;
mod dev;
mod me;
mod orders;
mod payments;
mod sale;

pub use captcha::{image_wear, pass_level};

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::{
    extract::{ConnectInfo, DefaultBodyLimit, MatchedPath, Request},
    http::{HeaderMap, HeaderValue, Method},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{get, post},
    Json, Router,
};
use serde_json::json;
pub use service::body::ApiJson;
use service::body::{BodyError, JsonBodies};
use tokio::time::Instant;

use crate::{
    error::{Error, Refusal},
    identity::{IdentityError, User},
    limits::{self, Decision},
    state::{AppState, Runtime, Shared},
};

// The routes' paths, each named once: the router serves them and `route_name` names them.
const HEALTH: &str = "/healthz";
const STATUS: &str = "/api/sales/{id}/status";
const PAGE: &str = "/sale/{id}";
const CAPTCHA: &str = "/api/captcha";
const CAPTCHA_IMAGE: &str = "/api/captcha/image/{handle}";
const CAPTCHA_AUDIO: &str = "/api/captcha/audio/{handle}";
const BUY: &str = "/api/sales/{id}/buy";
const DEV_TOKEN: &str = "/api/dev/token";
const DEV_PAY: &str = "/api/dev/pay";
const PAYMENTS: &str = "/api/payments/webhook";
const ORDER: &str = "/api/orders/{id}";
const ORDER_EXTEND: &str = "/api/orders/{id}/extend";
const ME: &str = "/api/me";

/// The public API.
pub fn router(state: AppState) -> Router {
    let body_limit = state.runtime.load().config.http.body_limit_bytes;
    Router::new()
        .route(HEALTH, get(|| async { Json(json!({"status": "ok"})) }))
        .route(STATUS, get(sale::status))
        .route(PAGE, get(sale::page))
        .route(CAPTCHA, get(captcha::challenge).post(captcha::solve))
        .route(CAPTCHA_IMAGE, get(captcha::image))
        .route(CAPTCHA_AUDIO, get(captcha::audio))
        .route(BUY, post(buy::buy))
        .route(DEV_TOKEN, post(dev::token))
        .route(DEV_PAY, post(dev::pay))
        .route(PAYMENTS, post(payments::webhook))
        .route(ORDER, get(orders::get).delete(orders::cancel))
        .route(ORDER_EXTEND, post(orders::extend))
        .route(ME, get(me::me))
        .fallback(|| async { Error::NoRoute })
        .method_not_allowed_fallback(|| async { Error::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn_with_state(state.clone(), context))
        .with_state(state)
}

/// Per request: its id (kept from nginx or made here), client IP and route name (from the
/// matched path, [`route_name`]), a span carrying them, the latency metric, the outcome its
/// handler marked on the answer ([`counted`]) counted under the route, and the id echoed in the
/// answer.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub request_id: String,
    pub client_ip: IpAddr,
    /// The request's method (the CSRF rule of cookie-borne tokens reads it).
    pub method: Method,
}

async fn context(
    axum::extract::State(state): axum::extract::State<AppState>,
    mut req: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let limit = state.runtime.load().config.http.max_header_bytes;
    let header_bytes: usize = req
        .headers()
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum();
    if header_bytes > limit {
        state
            .metrics
            .request("other", "failed", "headers_too_large");
        return Error::HeadersTooLarge { limit }.into_response();
    }
    if !canonical_path(req.uri().path()) {
        state
            .metrics
            .request("other", "failed", "non_canonical_path");
        return Error::NonCanonicalPath.into_response();
    }
    let request_id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map_or_else(|| state.next_request_id(), str::to_string);
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::LOCALHOST), |c| c.0.ip());
    let client_ip = state.runtime.load().trusted.client_ip(peer, req.headers());
    let route = route_name(req.extensions().get::<MatchedPath>());
    let span = tracing::info_span!("request", request_id = %request_id, %client_ip, route);
    let method = req.method().clone();
    req.extensions_mut().insert(Ctx {
        request_id: request_id.clone(),
        client_ip,
        method,
    });
    let mut resp = tracing::Instrument::instrument(next.run(req), span).await;
    if let Some(Outcome { outcome, reason }) = resp.extensions_mut().remove::<Outcome>() {
        state.metrics.request(route, outcome, reason);
    }
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    state
        .metrics
        .latency(route, started.elapsed().as_secs_f64());
    resp
}

/// Whether a path is spelt the one way nginx and the router read alike: no empty segment
/// (`//`), no `.` or `..` segment, no percent-encoding and no backslash. nginx normalises
/// before it routes and keys its cache; the router matches the raw text, so any other spelling
/// could be cached as one URL and answered as another: such paths are refused, never guessed.
fn canonical_path(path: &str) -> bool {
    let Some(rest) = path.strip_prefix('/') else {
        return false;
    };
    if path.contains(['%', '\\']) {
        return false;
    }
    let segments: Vec<&str> = rest.split('/').collect();
    // A trailing slash is an empty last segment: allowed (the router answers it 404).
    segments.iter().enumerate().all(|(i, segment)| {
        (!segment.is_empty() || i + 1 == segments.len()) && *segment != "." && *segment != ".."
    })
}

/// A bounded set of route names for metrics and logs, by the route the router matched (the
/// fallback matches none: `other`).
fn route_name(matched: Option<&MatchedPath>) -> &'static str {
    match matched.map(MatchedPath::as_str) {
        Some(BUY) => "buy",
        Some(STATUS) => "status",
        Some(CAPTCHA | CAPTCHA_IMAGE | CAPTCHA_AUDIO) => "captcha",
        Some(PAGE) => "page",
        Some(ORDER | ORDER_EXTEND) => "orders",
        Some(PAYMENTS) => "payments",
        Some(DEV_TOKEN | DEV_PAY) => "dev",
        Some(HEALTH) => "health",
        Some(ME) => "me",
        _ => "other",
    }
}

/// JSON bodies (`ApiJson`): a bad one is answered as this API's 400 or 413.
impl JsonBodies for Shared {
    type Rejection = Error;

    fn body_limit(&self) -> usize {
        self.runtime.load().config.http.body_limit_bytes
    }
}

impl From<BodyError> for Error {
    fn from(error: BodyError) -> Self {
        match error {
            BodyError::TooLarge { limit } => Self::TooLarge { limit },
            other => Self::bad_request(other.code(), other.to_string()),
        }
    }
}

/// The verified user of a request, or the refusal: 401 for a missing or bad token, 403 `csrf`
/// for a cookie-borne token on a state-changing request from another site.
pub async fn user(runtime: &Runtime, ctx: &Ctx, headers: &HeaderMap) -> Result<User, Refusal> {
    runtime
        .verifier
        .user(headers, &ctx.method)
        .await
        .map_err(|e| match e {
            IdentityError::CrossSite => Refusal::CrossSite,
            e => Refusal::Unauthorized { reason: e.reason() },
        })
}

/// A sale id from the path.
pub fn sale_id(raw: &str) -> Result<i64, Error> {
    raw.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| Error::bad_request("invalid_sale_id", "sale id must be a positive integer"))
}

/// What a request came to, carried on its answer to the one place that counts it
/// ([`context`], under the name of the route the router matched).
#[derive(Debug, Clone, Copy)]
struct Outcome {
    outcome: &'static str,
    reason: &'static str,
}

/// Marks the answer with the request's outcome, counted once by [`context`] under the matched
/// route's name.
pub fn counted<R: IntoResponse>(
    outcome: &'static str,
    reason: &'static str,
    answer: R,
) -> Response {
    let mut resp = answer.into_response();
    resp.extensions_mut().insert(Outcome { outcome, reason });
    resp
}

/// A limit's decision: `Ok` to go on, or the 429 (a dry-run limit logs, counts and goes on).
pub fn within_limit(
    state: &AppState,
    limit: &'static str,
    decision: Decision,
    dry_run: bool,
) -> Result<(), Refusal> {
    match decision {
        Decision::Allow(_) => Ok(()),
        Decision::Deny { .. } if dry_run => {
            state.metrics.dry_run(limit);
            tracing::info!(limit, "dry run: would be rate limited");
            Ok(())
        }
        deny @ Decision::Deny { .. } => Err(Refusal::RateLimited {
            limit,
            headers: limits::headers(&deny),
        }),
    }
}

#[cfg(test)]
mod path_tests {
    use super::canonical_path;

    fn check(path: &str, expected: bool) {
        assert_eq!(canonical_path(path), expected, "{path}");
    }

    #[test]
    fn status_micro_cache_poisoning_paths_are_not_canonical() {
        for path in [
            "/",
            "/api/sales/55/status",
            "/sale/1",
            "/api/captcha",
            "/api/x/",
        ] {
            check(path, true);
        }
        for path in [
            "//api/sales/55/status",
            "/api//sales/55/status",
            "/./api/sales/55/status",
            "/api/sales/./55/status",
            "/x/../api/sales/55/status",
            "/api/sales/55/status/..",
            "/api/sales/%35%35/status",
            "/api%2fsales/55/status",
            "/api/sales/55/%2e%2e/status",
            "/api\\sales/55/status",
            "api/sales/55/status",
            "",
        ] {
            check(path, false);
        }
    }
}
