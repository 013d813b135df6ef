//! JSON request bodies, read the same way by both services: [`ApiJson`] is axum's `Json` whose
//! rejections become a [`BodyError`] (a wrong content type, a body over the limit, malformed
//! JSON, a body of the wrong shape), which each service turns into its own error, and so into
//! its one error answer (`{"error": code, "message": text}`).

use std::{fmt, sync::Arc};

use axum::{
    extract::{rejection::JsonRejection, FromRequest, Request},
    http::StatusCode,
    response::IntoResponse,
    Json,
};
use serde::de::DeserializeOwned;

/// A state that reads JSON bodies: its body limit (for the message of a body over it) and the
/// error a bad body becomes.
pub trait JsonBodies: Send + Sync {
    type Rejection: From<BodyError> + IntoResponse;

    /// Largest body accepted, in bytes (the router's `DefaultBodyLimit`).
    fn body_limit(&self) -> usize;
}

/// A state shared behind an `Arc` reads bodies as the state it holds.
impl<S: JsonBodies> JsonBodies for Arc<S> {
    type Rejection = S::Rejection;

    fn body_limit(&self) -> usize {
        S::body_limit(self)
    }
}

/// `Json` whose rejections are answered in the API's error format.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: JsonBodies> FromRequest<S> for ApiJson<T> {
    type Rejection = S::Rejection;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(BodyError::new(rejection, state.body_limit()).into()),
        }
    }
}

/// Why a JSON body was refused: 400 with the code of [`BodyError::code`], or 413.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyError {
    ContentType,
    TooLarge { limit: usize },
    Malformed(String),
    Invalid(String),
}

impl BodyError {
    fn new(rejection: JsonRejection, limit: usize) -> Self {
        match rejection {
            JsonRejection::MissingJsonContentType(_) => Self::ContentType,
            r if r.status() == StatusCode::PAYLOAD_TOO_LARGE => Self::TooLarge { limit },
            JsonRejection::JsonSyntaxError(e) => Self::Malformed(e.body_text()),
            JsonRejection::JsonDataError(e) => {
                Self::Invalid(format!("invalid body: {}", e.body_text()))
            }
            other => Self::Invalid(other.body_text()),
        }
    }

    /// The stable code of a 400 (a body over the limit has the service's own 413 code).
    pub fn code(&self) -> &'static str {
        match self {
            Self::ContentType => "invalid_content_type",
            Self::TooLarge { .. } => "body_too_large",
            Self::Malformed(_) => "malformed_json",
            Self::Invalid(_) => "invalid_body",
        }
    }
}

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ContentType => f.write_str("expected content-type: application/json"),
            Self::TooLarge { limit } => {
                write!(f, "request body is over the limit of {limit} bytes")
            }
            Self::Malformed(why) => write!(f, "malformed JSON: {why}"),
            Self::Invalid(why) => f.write_str(why),
        }
    }
}
