//! What the edge answers when it does not forward: expected refusals (`Refusal`: limits, sold
//! out, bad tokens) and failures (`Error`: Redis or origin trouble, bad input), either of them a
//! `Stop` of a request, turned into HTTP answers in this ONE place. Every body is
//! `{"error": code, "message": text, ...}` (the wire's `ErrorBody`); internals go to the log,
//! never to the client.

use axum::{
    http::{HeaderName, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use flash_wire::ErrorBody;
use serde_json::json;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// `Retry-After` of the edge's own 503s (Redis or an origin away), in seconds: the origin's
/// figure for the same outage (`origin::error::RETRY_AFTER_SECONDS`, passed on when the origin
/// answers), so a buyer is told the same wait whichever service noticed first. A failed global
/// lease is not asked for again for a second (`limits::global::FAILED_LEASE_BACKOFF`), and the
/// Redis connection reconnects within its 500 ms backoff, so a store back from a restart serves
/// the retry.
pub const RETRY_AFTER_SECONDS: u32 = 2;

/// A request the edge turns away on purpose.
#[derive(Debug)]
pub enum Refusal {
    /// 401: no valid user JWT; `reason` is the identity check that failed.
    Unauthorized { reason: &'static str },
    /// 403: a pass token or a captcha solution that does not hold.
    Forbidden {
        code: &'static str,
        reason: &'static str,
    },
    /// 429 from the limit named `limit` (ip, uid, global), with its headers.
    RateLimited {
        limit: &'static str,
        headers: Vec<(HeaderName, HeaderValue)>,
    },
    /// 410: the sale has no unit left (answered from memory).
    SoldOut,
    /// 409: this edge saw the user buy in this sale already (answered from memory); their
    /// order's id when the origin had given it.
    Duplicate { order_id: Option<i64> },
    /// 409: no captcha for a sale before its start; `Retry-After` is the time left.
    SaleNotStarted {
        starts_at: time::OffsetDateTime,
        now: time::OffsetDateTime,
    },
    /// 403 `csrf`: a token in the login's cookie, on a state-changing request that does not
    /// come from one of `identity.allowed_origins`.
    CrossSite,
    /// 503: every pooled image captcha is worn (the image level above what the pool can draw);
    /// `Retry-After: 1`.
    CaptchaBusy,
}

/// Why a request went no further: turned away on purpose, or failed.
#[derive(Debug)]
pub enum Stop {
    Refused(Refusal),
    Failed(Error),
}

impl From<Refusal> for Stop {
    fn from(refusal: Refusal) -> Self {
        Self::Refused(refusal)
    }
}

impl From<Error> for Stop {
    fn from(error: Error) -> Self {
        Self::Failed(error)
    }
}

impl Stop {
    /// The `outcome` and `reason` labels of the request metric.
    pub fn labels(&self) -> (&'static str, &'static str) {
        match self {
            Self::Refused(refusal) => ("refused", refusal.reason()),
            Self::Failed(error) => ("failed", error.code()),
        }
    }
}

impl IntoResponse for Stop {
    fn into_response(self) -> Response {
        match self {
            Self::Refused(refusal) => refusal.into_response(),
            Self::Failed(error) => error.into_response(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    #[error("request body is over the limit of {limit} bytes")]
    TooLarge { limit: usize },
    #[error("request headers are over the limit of {limit} bytes")]
    HeadersTooLarge { limit: usize },
    #[error("no sale {0}")]
    UnknownSale(i64),
    #[error("this captcha image is not yours, expired or was replaced: fetch a new challenge")]
    ImageGone,
    #[error("no such endpoint")]
    NoRoute,
    #[error("the path is not canonical (no //, /./, /../, %XX or \\)")]
    NonCanonicalPath,
    #[error("method not allowed on this endpoint")]
    MethodNotAllowed,
    #[error("redis {what}: {source}")]
    Redis {
        what: &'static str,
        source: redis::RedisError,
    },
    #[error("{0} timed out")]
    Timeout(&'static str),
    #[error("origin unavailable: {0}")]
    OriginUnavailable(String),
    #[error("limits unavailable: {0}")]
    LimitsUnavailable(String),
    #[error("unexpected {0}")]
    Internal(String),
}

impl From<redis_layer::Error> for Error {
    fn from(error: redis_layer::Error) -> Self {
        match error {
            redis_layer::Error::Redis { what, source } => Self::Redis { what, source },
            redis_layer::Error::Timeout(what) => Self::Timeout(what),
            connect @ redis_layer::Error::Connect { .. } => {
                Self::LimitsUnavailable(connect.to_string())
            }
        }
    }
}

impl Error {
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::BadRequest {
            code,
            message: message.into(),
        }
    }

    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::BadRequest { code, .. } => (StatusCode::BAD_REQUEST, code),
            Self::TooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large"),
            Self::HeadersTooLarge { .. } => (
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "headers_too_large",
            ),
            Self::UnknownSale(_) => (StatusCode::NOT_FOUND, "unknown_sale"),
            Self::NoRoute => (StatusCode::NOT_FOUND, "not_found"),
            Self::NonCanonicalPath => (StatusCode::BAD_REQUEST, "non_canonical_path"),
            Self::ImageGone => (StatusCode::NOT_FOUND, "captcha_image_gone"),
            Self::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            Self::Redis { .. } => (StatusCode::SERVICE_UNAVAILABLE, "redis_unavailable"),
            Self::Timeout(_) => (StatusCode::SERVICE_UNAVAILABLE, "timeout"),
            Self::OriginUnavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "origin_unavailable"),
            Self::LimitsUnavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "limits_unavailable"),
            Self::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }

    /// The stable code, for metrics.
    pub fn code(&self) -> &'static str {
        self.status_and_code().1
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let message = if status.is_client_error() {
            tracing::debug!(code, error = %self, "request refused");
            self.to_string()
        } else if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(error = %self, "internal failure");
            "internal error".to_string()
        } else {
            tracing::warn!(code, error = %self, "upstream failure");
            match self {
                Self::Redis { .. } | Self::LimitsUnavailable(_) => {
                    "limits store unavailable, try again"
                }
                Self::OriginUnavailable(_) => "the shop is busy, try again",
                _ => "a dependency did not answer in time, try again",
            }
            .to_string()
        };
        let body = ErrorBody {
            error: code,
            message,
        };
        let mut resp = (status, Json(body)).into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            resp.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                HeaderValue::from(RETRY_AFTER_SECONDS),
            );
        }
        no_store(resp)
    }
}

/// Marks an answer `Cache-Control: no-store`: no error or refusal may be kept by nginx or a
/// CDN under its URL (it is not the URL's answer for everyone). A route whose error is the true
/// answer for its URL overrides it (the status route's unknown sale, buy's sold-out 410).
fn no_store(mut resp: Response) -> Response {
    resp.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    );
    resp
}

impl Refusal {
    /// The stable reason, for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Unauthorized { reason } | Self::Forbidden { reason, .. } => reason,
            Self::RateLimited { limit, .. } => limit,
            Self::SoldOut => "sold_out",
            Self::Duplicate { .. } => "duplicate_known",
            Self::SaleNotStarted { .. } => "sale_not_started",
            Self::CaptchaBusy => "captcha_busy",
            Self::CrossSite => "csrf",
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let resp = match self {
            Self::Unauthorized { reason } => (
                StatusCode::UNAUTHORIZED,
                [("www-authenticate", "Bearer")],
                Json(json!({"error": "unauthorized", "reason": reason,
                    "message": "a valid user token is required (Authorization: Bearer, or the login's cookie)"})),
            )
                .into_response(),
            Self::CrossSite => (
                StatusCode::FORBIDDEN,
                Json(json!({"error": "csrf", "reason": "cross_site",
                    "message": "a request that changes state must come from the shop's own pages"})),
            )
                .into_response(),
            Self::Forbidden { code, reason } => (
                StatusCode::FORBIDDEN,
                Json(json!({"error": code, "reason": reason,
                    "message": forbidden_message(code)})),
            )
                .into_response(),
            Self::RateLimited { limit, headers } => {
                let mut resp = (
                    StatusCode::TOO_MANY_REQUESTS,
                    Json(json!({"error": "rate_limited", "limit": limit,
                        "message": "too many requests, wait before trying again"})),
                )
                    .into_response();
                resp.headers_mut().extend(headers);
                resp
            }
            Self::SoldOut => (
                StatusCode::GONE,
                Json(json!({"error": "sold_out", "message": "no unit left"})),
            )
                .into_response(),
            Self::Duplicate { order_id } => (
                StatusCode::CONFLICT,
                Json(json!({"error": "duplicate", "order_id": order_id,
                    "message": "this user already has a purchase in this sale"})),
            )
                .into_response(),
            Self::SaleNotStarted { starts_at, now } => {
                let rfc3339 = |t: time::OffsetDateTime| {
                    t.format(&time::format_description::well_known::Rfc3339)
                        .unwrap_or_default()
                };
                let left = (starts_at - now).as_seconds_f64().ceil().max(1.0) as u64;
                (
                    StatusCode::CONFLICT,
                    [(http::header::RETRY_AFTER, HeaderValue::from(left))],
                    Json(json!({"error": "sale_not_started",
                        "message": "the sale has not started: no captcha before its start",
                        "starts_at": rfc3339(starts_at), "server_time": rfc3339(now)})),
                )
                    .into_response()
            }
            Self::CaptchaBusy => (
                StatusCode::SERVICE_UNAVAILABLE,
                [(http::header::RETRY_AFTER, HeaderValue::from_static("1"))],
                Json(json!({"error": "captcha_busy",
                    "message": "every image captcha is in use, try again in a second"})),
            )
                .into_response(),
        };
        no_store(resp)
    }
}

fn forbidden_message(code: &str) -> &'static str {
    match code {
        "pass_token_invalid" => "the captcha pass is missing, expired, or not yours for this sale",
        "pass_token_spent" => "this captcha pass was used already: solve a new captcha",
        "captcha_failed" => "the captcha solution is wrong or expired: fetch a new challenge",
        "challenge_spent" => "this challenge was solved already: fetch a new one",
        "pass_level_too_low" => {
            "the captcha got harder since this pass was earned: solve a new captcha"
        }
        _ => "forbidden",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_503_says_when_to_try_again_and_is_never_cached() {
        let check = |resp: Response, retry_after: Option<&str>| {
            let header = |name| {
                resp.headers()
                    .get(name)
                    .map(|v: &HeaderValue| v.to_str().unwrap_or("not text").to_string())
            };
            assert_eq!(
                (
                    header(http::header::RETRY_AFTER),
                    header(http::header::CACHE_CONTROL)
                ),
                (
                    retry_after.map(str::to_string),
                    Some("no-store".to_string())
                ),
                "{}",
                resp.status()
            );
        };
        let two = Some("2");
        check(
            Error::LimitsUnavailable("admit".into()).into_response(),
            two,
        );
        check(Error::OriginUnavailable("x".into()).into_response(), two);
        check(Error::Timeout("challenge spend").into_response(), two);
        check(Error::UnknownSale(1).into_response(), None);
        check(Error::Internal("x".into()).into_response(), None);
        check(Refusal::CaptchaBusy.into_response(), Some("1"));
    }
}
