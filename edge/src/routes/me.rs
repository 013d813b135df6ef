//! `GET /api/me`: who the page's visitor is, from the token of the request (header or the
//! login's cookie): `{"uid", "expires_at"}` (Unix seconds), or the 401 that tells the page to
//! send them to the shop's login. Behind the per-IP limit like every authenticated route; the
//! answer is the visitor's own, never to be cached by anyone.

use axum::{
    extract::State,
    http::{header, HeaderMap},
    response::{IntoResponse, Response},
    Extension, Json,
};
use serde::Serialize;

use super::{counted, orders::admit, Ctx};
use crate::state::AppState;

#[derive(Debug, Serialize)]
struct Me<'a> {
    uid: &'a str,
    expires_at: u64,
}

pub async fn me(
    State(state): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    headers: HeaderMap,
) -> Response {
    let user = match admit(&state, &ctx, &headers).await {
        Ok(user) => user,
        Err(refusal) => {
            let reason = refusal.reason();
            return counted("refused", reason, refusal);
        }
    };
    let answer = (
        [(header::CACHE_CONTROL, "private, no-store")],
        Json(Me {
            uid: user.uid.as_str(),
            expires_at: user.expires_at,
        }),
    )
        .into_response();
    counted("served", "", answer)
}
