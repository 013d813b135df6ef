//! Failures of the origin, tagged by who is at fault, and expected refusals (`Refusal`: a
//! duplicate, sold out, a refused order), and the ONE place where they become HTTP answers: a
//! status and a JSON body `{"error": code, "message": text, ...}` with a stable code (the wire
//! types of `flash-wire`). Internal details go to the log, never to the client.

use axum::{
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use flash_wire::{ErrorBody, Order, OrderRefusal, OrderRefused, Refused, ReserveRefusal};

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// `Retry-After` of every 503, in seconds. A store that went away comes back in about this
/// long when it does at all: a Redis restart replays its AOF and the connection manager
/// reconnects within its 500 ms backoff; PostgreSQL's restart is of the same order. Sooner only
/// adds a crowd's retries to a store that is coming back; much later keeps buyers waiting after
/// it is back. The edge passes this header on to the browser, whose page waits at least this
/// long (plus jitter) before it tries again.
pub const RETRY_AFTER_SECONDS: u32 = 2;

/// Who is at fault for a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    Client,
    Upstream,
    Internal,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request the client must change: `code` is stable, `message` says what is wrong.
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    #[error("request body is over the limit of {limit} bytes")]
    TooLarge { limit: usize },
    #[error("no sale {0}")]
    UnknownSale(i64),
    /// PostgreSQL knows the sale but Redis has no stock for it (Redis lost its data): until
    /// `origin reconcile --sale ID --repair` rebuilds it, no unit can be reserved.
    #[error("sale {0} has no stock key in Redis")]
    StockUnavailable(i64),
    /// A payment webhook without a `Payment-Signature` header.
    #[error("the Payment-Signature header is missing")]
    SignatureMissing,
    /// A `Payment-Signature` header that is not `t=<unix>,v1=<hex>[,v1=<hex>...]`.
    #[error("the Payment-Signature header is malformed: {0}")]
    SignatureMalformed(&'static str),
    /// No `v1=` of the header is the HMAC of this body with any webhook secret.
    #[error("the payment signature does not match the body")]
    BadSignature,
    /// A signed `t=` further from the origin's clock than `payments.tolerance_seconds`.
    #[error("the payment signature's timestamp is {skew} s from now, beyond {tolerance} s")]
    StaleTimestamp { skew: i64, tolerance: i64 },
    #[error("no such endpoint")]
    NoRoute,
    #[error("method not allowed on this endpoint")]
    MethodNotAllowed,
    #[error("redis {what}: {source}")]
    Redis {
        what: &'static str,
        source: redis::RedisError,
    },
    #[error("redis {target}: {problem}")]
    RedisConnect { target: String, problem: String },
    #[error("postgres {what}: {source}")]
    Postgres {
        what: &'static str,
        source: tokio_postgres::Error,
    },
    /// The guarded `sold` update of a branch batch did not change exactly the sale's row.
    #[error("postgres branch stock guard: {rows} rows changed for sale {sale}, expected 1")]
    StockGuard { sale: i64, rows: u64 },
    /// A branch batch that could not be written (the first branch of the batch has the cause).
    #[error("postgres branch batch: {0}")]
    BranchBatch(String),
    #[error("postgres pool: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("{0} timed out")]
    Timeout(&'static str),
    /// The dtm coordinator did not take a call (`what`: prepare, submit, abort), or failed the
    /// message before its reservation: nothing was reserved.
    #[error("dtm {what}: {problem}")]
    Dtm { what: &'static str, problem: String },
    #[error("unexpected {0}")]
    Protocol(&'static str),
}

impl From<redis_layer::Error> for Error {
    fn from(error: redis_layer::Error) -> Self {
        match error {
            redis_layer::Error::Redis { what, source } => Self::Redis { what, source },
            redis_layer::Error::Timeout(what) => Self::Timeout(what),
            redis_layer::Error::Connect { target, problem } => {
                Self::RedisConnect { target, problem }
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

    /// `map_err` adapter naming the Redis operation.
    pub fn redis(what: &'static str) -> impl FnOnce(redis::RedisError) -> Self {
        move |source| Self::Redis { what, source }
    }

    /// `map_err` adapter naming the PostgreSQL operation.
    pub fn postgres(what: &'static str) -> impl FnOnce(tokio_postgres::Error) -> Self {
        move |source| Self::Postgres { what, source }
    }

    /// `map_err` adapter for a failed call to dtm.
    pub fn dtm(what: &'static str, problem: impl std::fmt::Display) -> Self {
        Self::Dtm {
            what,
            problem: problem.to_string(),
        }
    }

    pub fn fault(&self) -> Fault {
        match self {
            Self::BadRequest { .. }
            | Self::TooLarge { .. }
            | Self::UnknownSale(_)
            | Self::SignatureMissing
            | Self::SignatureMalformed(_)
            | Self::BadSignature
            | Self::StaleTimestamp { .. }
            | Self::NoRoute
            | Self::MethodNotAllowed => Fault::Client,
            Self::Redis { .. }
            | Self::RedisConnect { .. }
            | Self::StockUnavailable(_)
            | Self::Postgres { .. }
            | Self::BranchBatch(_)
            | Self::Pool(_)
            | Self::Timeout(_)
            | Self::Dtm { .. } => Fault::Upstream,
            Self::StockGuard { .. } | Self::Protocol(_) => Fault::Internal,
        }
    }

    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::BadRequest { code, .. } => (StatusCode::BAD_REQUEST, code),
            Self::TooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large"),
            Self::UnknownSale(_) => (StatusCode::NOT_FOUND, "unknown_sale"),
            Self::SignatureMissing => (StatusCode::BAD_REQUEST, "signature_missing"),
            Self::SignatureMalformed(_) => (StatusCode::BAD_REQUEST, "signature_malformed"),
            Self::BadSignature => (StatusCode::UNAUTHORIZED, "bad_signature"),
            Self::StaleTimestamp { .. } => (StatusCode::UNAUTHORIZED, "stale_timestamp"),
            Self::NoRoute => (StatusCode::NOT_FOUND, "not_found"),
            Self::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            Self::Redis { .. } | Self::RedisConnect { .. } => {
                (StatusCode::SERVICE_UNAVAILABLE, "redis_unavailable")
            }
            Self::StockUnavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "stock_unavailable"),
            Self::Postgres { .. } | Self::BranchBatch(_) | Self::Pool(_) => {
                (StatusCode::SERVICE_UNAVAILABLE, "database_unavailable")
            }
            Self::Timeout(_) => (StatusCode::SERVICE_UNAVAILABLE, "timeout"),
            Self::Dtm { .. } => (StatusCode::SERVICE_UNAVAILABLE, "coordinator_unavailable"),
            Self::StockGuard { .. } | Self::Protocol(_) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "internal")
            }
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let message = match self.fault() {
            Fault::Client => self.to_string(),
            Fault::Upstream => {
                tracing::warn!(error = %self, code, "upstream failure");
                match code {
                    "redis_unavailable" => "stock store unavailable, try again".to_string(),
                    "stock_unavailable" => {
                        "the sale's stock is unavailable, try again later".to_string()
                    }
                    "database_unavailable" => "order database unavailable, try again".to_string(),
                    "coordinator_unavailable" => {
                        "the transaction coordinator did not answer, try again".to_string()
                    }
                    _ => "a dependency did not answer in time, try again".to_string(),
                }
            }
            Fault::Internal => {
                tracing::error!(error = %self, "internal failure");
                "internal error".to_string()
            }
        };
        if status.is_client_error() {
            tracing::info!(code, %message, "request refused");
        }
        let body = ErrorBody {
            error: code,
            message,
        };
        let mut resp = (status, Json(body)).into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
        }
        resp
    }
}

/// An expected refusal, not a failure: the API's error body with the refusal's fields.
#[derive(Debug)]
pub enum Refusal {
    /// A reservation refused: 409 (a duplicate, not started) or 410 (sold out, ended).
    Reserve(ReserveRefusal),
    /// An operation on an order refused (409), with the order as it is.
    Order { code: OrderRefusal, order: Order },
    /// No such order, or another user's: the same answer, byte for byte, so that an order id
    /// (sequential) tells nothing about other users' orders.
    UnknownOrder,
    /// dtm's call refused for good: 409 with `"dtm_result": "FAILURE"`, which dtm reads as the
    /// message's failure (a back-check) and which no success body ever contains.
    Dtm { code: &'static str, message: String },
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Self::Reserve(refusal) => {
                let (status, message) = match &refusal {
                    ReserveRefusal::Duplicate { .. } => (
                        StatusCode::CONFLICT,
                        "this user already has a purchase in this sale",
                    ),
                    ReserveRefusal::NotStarted { .. } => {
                        (StatusCode::CONFLICT, "the sale has not started")
                    }
                    ReserveRefusal::SoldOut { .. } => (StatusCode::GONE, "no unit left"),
                    ReserveRefusal::Ended => (StatusCode::GONE, "the sale has ended"),
                };
                let body = Refused {
                    refusal,
                    message: message.to_string(),
                };
                (status, Json(body)).into_response()
            }
            Self::Order { code, order } => {
                let body = OrderRefused {
                    error: code,
                    message: order_message(code).to_string(),
                    status: order.status,
                    order,
                };
                (StatusCode::CONFLICT, Json(body)).into_response()
            }
            Self::UnknownOrder => {
                let body = ErrorBody {
                    error: "unknown_order",
                    message: "no such order".to_string(),
                };
                (StatusCode::NOT_FOUND, Json(body)).into_response()
            }
            Self::Dtm { code, message } => {
                tracing::info!(code, %message, "dtm call refused");
                let body = serde_json::json!({
                    "dtm_result": "FAILURE",
                    "error": code,
                    "message": message,
                });
                (StatusCode::CONFLICT, Json(body)).into_response()
            }
        }
    }
}

fn order_message(code: OrderRefusal) -> &'static str {
    match code {
        OrderRefusal::HoldExpired => "the hold expired before the payment: refund it",
        OrderRefusal::AlreadyPaid => "the order is paid already (with another payment id)",
        OrderRefusal::AlreadyExtended => "a hold can be extended once",
        OrderRefusal::PaymentIdUsed => "this payment id paid another order",
        OrderRefusal::UidMismatch => "the order was not bought for this uid",
        OrderRefusal::AmountMismatch => "the amount paid is not the sale's price",
        OrderRefusal::CurrencyMismatch => "the currency paid is not the sale's",
        OrderRefusal::NotExpired => "the hold has not expired",
        OrderRefusal::OrderCancelled | OrderRefusal::OrderRejected | OrderRefusal::NotPending => {
            "the order is not a live hold"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_errors_say_what_is_wrong_and_upstream_errors_hide_details() {
        let check = |e: Error, status: u16, code: &str| {
            let (s, c) = e.status_and_code();
            assert_eq!((s.as_u16(), c), (status, code), "{e}");
        };
        check(Error::bad_request("invalid_uid", "x"), 400, "invalid_uid");
        check(Error::TooLarge { limit: 10 }, 413, "body_too_large");
        check(Error::UnknownSale(3), 404, "unknown_sale");
        check(Error::SignatureMissing, 400, "signature_missing");
        check(Error::SignatureMalformed("x"), 400, "signature_malformed");
        check(Error::BadSignature, 401, "bad_signature");
        check(
            Error::StaleTimestamp {
                skew: 301,
                tolerance: 300,
            },
            401,
            "stale_timestamp",
        );
        check(Error::StockUnavailable(3), 503, "stock_unavailable");
        check(Error::Timeout("reserve"), 503, "timeout");
        check(
            Error::dtm("prepare", "refused"),
            503,
            "coordinator_unavailable",
        );
        check(Error::Protocol("x"), 500, "internal");
    }

    #[test]
    fn every_503_says_when_to_try_again_and_nothing_else_does() {
        let check = |e: Error, retry_after: Option<&str>| {
            let what = e.to_string();
            let resp = e.into_response();
            let header = resp
                .headers()
                .get(header::RETRY_AFTER)
                .map(|v| v.to_str().unwrap_or("not text"));
            assert_eq!(header, retry_after, "{what}");
        };
        let two = Some("2");
        check(
            Error::Redis {
                what: "reserve",
                source: redis::RedisError::from(std::io::Error::from(
                    std::io::ErrorKind::ConnectionRefused,
                )),
            },
            two,
        );
        check(Error::Timeout("reserve"), two);
        check(Error::StockUnavailable(3), two);
        check(Error::BranchBatch("x".into()), two);
        check(Error::UnknownSale(3), None);
        check(Error::Protocol("x"), None);
    }
}
