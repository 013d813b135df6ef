//! `POST /api/dev/token {"uid"}`: mints a user JWT, for local use. It answers 404 (as if it did
//! not exist) unless `http.dev_mode` is on.

use axum::{extract::State, response::Response, Json};
use serde::Deserialize;
use serde_json::json;

use super::{counted, ApiJson};
use crate::{clock, error::Error, identity, state::AppState};

/// Lifetime of a dev token.
const DEV_TOKEN_SECONDS: u64 = 3600;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DevTokenBody {
    uid: String,
}

pub async fn token(
    State(state): State<AppState>,
    body: Result<ApiJson<DevTokenBody>, Error>,
) -> Response {
    let runtime = state.runtime.load();
    if !runtime.config.http.dev_mode {
        return counted(&state, "dev", "refused", "dev_mode_off", Error::NoRoute);
    }
    let body = match body {
        Ok(ApiJson(body)) => body,
        Err(e) => return counted(&state, "dev", "failed", e.code(), e),
    };
    if body.uid.is_empty() || body.uid.len() > 128 || body.uid.chars().any(char::is_control) {
        let e = Error::bad_request(
            "invalid_uid",
            "uid must be 1 to 128 bytes without control characters",
        );
        return counted(&state, "dev", "failed", e.code(), e);
    }
    match identity::mint_dev_token(
        &runtime.config.identity,
        &body.uid,
        DEV_TOKEN_SECONDS,
        clock::unix_now(),
    ) {
        Ok(token) => {
            tracing::info!(uid = %body.uid, "dev token minted");
            counted(
                &state,
                "dev",
                "served",
                "",
                Json(json!({"token": token, "uid": body.uid, "expires_in": DEV_TOKEN_SECONDS})),
            )
        }
        Err(e) => {
            let e = Error::bad_request("dev_tokens_unavailable", e.to_string());
            counted(&state, "dev", "failed", e.code(), e)
        }
    }
}
