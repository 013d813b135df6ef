//! A user's order, through the edge: `GET /api/orders/{id}`, `POST /api/orders/{id}/extend`,
//! `DELETE /api/orders/{id}`. The uid is the verified user JWT's, so a user can only see, extend
//! or cancel their own order (another user's is answered as an unknown one, 404, by the origin).
//! The origin's answer is passed back as is. Nobody pays here: only the payment service's signed
//! webhook (`payments.rs`) does.

use axum::{
    extract::{Path, State},
    http::{header, HeaderMap, HeaderName, HeaderValue, Method},
    response::{IntoResponse, Response},
    Extension,
};
use flash_wire::UidBody;
use hyper::body::Bytes;

use super::{counted, Ctx};
use crate::{
    error::{Error, Refusal},
    identity::User,
    limits::{self, Decision},
    state::AppState,
};

pub(super) fn order_id(raw: &str) -> Result<i64, Error> {
    raw.parse::<i64>().ok().filter(|id| *id > 0).ok_or_else(|| {
        Error::bad_request("invalid_order_id", "order id must be a positive integer")
    })
}

/// The IP limit and the user: `Ok(user)` or the refusal to send.
pub(super) async fn admit(
    state: &AppState,
    ctx: &Ctx,
    headers: &HeaderMap,
) -> Result<User, Refusal> {
    let runtime = state.runtime.load();
    let ip = &runtime.config.limits.ip;
    if let deny @ Decision::Deny { .. } = runtime.ip.check(ctx.client_ip) {
        if ip.dry_run {
            state.metrics.dry_run("ip");
        } else {
            return Err(Refusal::RateLimited {
                limit: "ip",
                headers: limits::headers(&deny),
            });
        }
    }
    super::user(&runtime, ctx, headers).await
}

fn refused(refusal: Refusal) -> Response {
    let reason = refusal.reason();
    counted("refused", reason, refusal)
}

async fn forward(
    state: &AppState,
    ctx: &Ctx,
    method: Method,
    path: String,
    body: Option<UidBody>,
) -> Response {
    let payload = match body.map(|b| serde_json::to_vec(&b)).transpose() {
        Ok(payload) => payload.map(Bytes::from),
        Err(e) => {
            let e = Error::Internal(format!("order body: {e}"));
            return counted("failed", e.code(), e);
        }
    };
    pass_through(state, ctx, method, &path, payload, &[]).await
}

/// Sends the request to an origin and passes its answer back as is (status, body, content
/// type), counted under the matched route.
pub(super) async fn pass_through(
    state: &AppState,
    ctx: &Ctx,
    method: Method,
    path: &str,
    body: Option<Bytes>,
    headers: &[(HeaderName, HeaderValue)],
) -> Response {
    let origins = state.runtime.load().origins.clone();
    match origins
        .send_with_headers(method, path, body, headers, &ctx.request_id)
        .await
    {
        Ok(answer) => {
            state.metrics.origin(answer.status.as_str());
            let mut resp = (answer.status, answer.body).into_response();
            if let Some(v) = answer.headers.get(header::CONTENT_TYPE) {
                resp.headers_mut().insert(header::CONTENT_TYPE, v.clone());
            }
            counted("forwarded", "", resp)
        }
        Err(e) => {
            state.metrics.origin("unreachable");
            let e = Error::OriginUnavailable(e.to_string());
            counted("failed", e.code(), e)
        }
    }
}

pub(super) fn query_uid(uid: &str) -> String {
    let mut out = String::with_capacity(uid.len());
    for b in uid.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `GET` or `DELETE` of the user's own order: the uid goes to the origin in the query.
async fn by_owner(
    state: &AppState,
    ctx: &Ctx,
    id: &str,
    headers: &HeaderMap,
    method: Method,
) -> Response {
    let uid = match admit(state, ctx, headers).await {
        Ok(user) => user.uid.into_string(),
        Err(refusal) => return refused(refusal),
    };
    match order_id(id) {
        Ok(id) => {
            let path = format!("/v1/orders/{id}?uid={}", query_uid(&uid));
            forward(state, ctx, method, path, None).await
        }
        Err(e) => counted("failed", e.code(), e),
    }
}

pub async fn get(
    State(state): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    by_owner(&state, &ctx, &id, &headers, Method::GET).await
}

pub async fn cancel(
    State(state): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    by_owner(&state, &ctx, &id, &headers, Method::DELETE).await
}

pub async fn extend(
    State(state): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let uid = match admit(&state, &ctx, &headers).await {
        Ok(user) => user.uid.into_string(),
        Err(refusal) => return refused(refusal),
    };
    match order_id(&id) {
        Ok(id) => {
            let payload = UidBody { uid };
            forward(
                &state,
                &ctx,
                Method::POST,
                format!("/v1/orders/{id}/extend"),
                Some(payload),
            )
            .await
        }
        Err(e) => counted("failed", e.code(), e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uids_are_escaped_for_the_query() {
        assert_eq!(query_uid("alice"), "alice");
        assert_eq!(query_uid("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
    }
}
