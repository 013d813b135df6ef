//! `POST /api/sales/{id}/buy`: the filter in front of the origin, cheapest check first:
//!
//! 1. the sold-out flag (memory): 410, no Redis, no origin;
//! 2. the per-IP limit (memory): 429;
//! 3. the user JWT (CPU): 401;
//! 4. the pass token's signature and binding (CPU), and its level (not below the one in force): 403;
//! 5. the global admission lease (memory, one Redis call per lease): 429;
//! 6. the per-UID GCRA and the pass token's single use, in ONE Redis script: 429 / 403;
//! 7. a user this edge already saw buy: 409 from memory, no origin request;
//! 8. forward to an origin's reserve and pass its answer back (`sold_out` sets the flag).
//!
//! A request refused at 6 or 7 gives its global admission back (only forwarded requests spend
//! the global budget), and its spent pass token is remembered until the token expires.

use axum::{
    extract::{Path, State},
    http::{header, HeaderMap, Method, StatusCode},
    response::{IntoResponse, Response},
    Extension,
};
use hyper::body::Bytes;
use serde::Deserialize;
use serde_json::json;

use super::{counted, sale_id, ApiJson, Ctx};
use crate::{
    clock,
    error::{Error, Refusal, RETRY_AFTER_SECONDS},
    limits::{self, uid::Admission, Decision},
    pass::PassClaims,
    state::{AppState, Runtime},
};

const ROUTE: &str = "buy";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuyBody {
    pass_token: String,
}

fn refused(state: &AppState, refusal: Refusal) -> Response {
    let reason = refusal.reason();
    counted(state, ROUTE, "refused", reason, refusal)
}

fn failed(state: &AppState, error: Error) -> Response {
    counted(state, ROUTE, "failed", error.code(), error)
}

/// Marks a buy answer that is the same for every caller: the generic sold-out (or ended) 410,
/// with no user field. Only such an answer may be kept by nginx.
#[derive(Debug, Clone, Copy)]
struct SameForEveryone;

/// The edge's own sold-out 410, the same for everyone.
fn sold_out(state: &AppState) -> Response {
    let mut resp = refused(state, Refusal::SoldOut);
    resp.extensions_mut().insert(SameForEveryone);
    resp
}

/// `Cache-Control` of a buy answer: a 410 marked [`SameForEveryone`] is public for a second
/// (nginx keeps it and answers the crowd); every other answer, and a 410 carrying a user's
/// fields (the database's refusal names the user's gid and order), is `no-store`.
fn cache_control(mut resp: Response) -> Response {
    let value = if resp.status() == StatusCode::GONE
        && resp.extensions().get::<SameForEveryone>().is_some()
    {
        "public, max-age=1"
    } else {
        "no-store"
    };
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static(value),
    );
    resp
}

pub async fn buy(
    state: State<AppState>,
    ctx: Extension<Ctx>,
    id: Path<String>,
    headers: HeaderMap,
    body: Result<ApiJson<BuyBody>, Error>,
) -> Response {
    cache_control(filter(state, ctx, id, headers, body).await)
}

async fn filter(
    State(state): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<ApiJson<BuyBody>, Error>,
) -> Response {
    let sale = match sale_id(&id) {
        Ok(sale) => sale,
        Err(e) => return failed(&state, e),
    };
    if state.soldout.is_sold_out(sale) {
        return sold_out(&state);
    }
    let runtime = state.runtime.load();
    let limits_cfg = &runtime.config.limits;
    if let Err(refusal) = super::within_limit(
        &state,
        "ip",
        runtime.ip.check(ctx.client_ip),
        limits_cfg.ip.dry_run,
    ) {
        return refused(&state, refusal);
    }
    let uid = match runtime.verifier.verify(
        headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok()),
    ) {
        Ok(uid) => uid,
        Err(e) => return refused(&state, Refusal::Unauthorized { reason: e.reason() }),
    };
    let body = match body {
        Ok(ApiJson(body)) => body,
        Err(e) => return failed(&state, e),
    };
    let now = clock::unix_now();
    let pass = match runtime
        .pass
        .verify(&body.pass_token, uid.as_ref(), sale, now)
    {
        Ok(claims) => claims,
        Err(e) => {
            tracing::info!(%uid, sale, reason = e.reason(), "pass token refused");
            return refused(
                &state,
                Refusal::Forbidden {
                    code: "pass_token_invalid",
                    reason: e.reason(),
                },
            );
        }
    };
    if let Err(refusal) = super::pass_level(&state, &pass) {
        return refused(&state, refusal);
    }
    let global_taken = match state.global.acquire(sale, &limits_cfg.global).await {
        Ok(decision) => {
            let taken = decision.is_allowed();
            if let Err(refusal) =
                super::within_limit(&state, "global", decision, limits_cfg.global.dry_run)
            {
                return refused(&state, refusal);
            }
            taken
        }
        Err(e) => return failed(&state, limit_failure("global", &e)),
    };
    if let Err(refusal) = admit(&state, &runtime, sale, uid.as_ref(), &pass, now).await {
        // Not forwarded: the global admission goes back to this edge's slice.
        if global_taken {
            state.global.give_back(sale);
        }
        return refusal;
    }

    let payload = Bytes::from(json!({ "uid": uid.as_ref() }).to_string());
    let ticket = state.soldout.ticket(sale);
    let answer = runtime
        .origins
        .send(
            Method::POST,
            &format!("/v1/sales/{sale}/reserve"),
            Some(payload),
            &ctx.request_id,
        )
        .await;
    let answer = match answer {
        Ok(answer) => answer,
        Err(e) => {
            state.metrics.origin("unreachable");
            return failed(&state, Error::OriginUnavailable(e.to_string()));
        }
    };
    state.metrics.origin(answer.status.as_str());
    if answer.status.is_success() || answer.status == StatusCode::CONFLICT {
        let order_id = serde_json::from_slice::<serde_json::Value>(&answer.body)
            .ok()
            .and_then(|v| v["order_id"].as_i64());
        if answer.status.is_success() || is_duplicate(&answer.body) {
            state.bought.insert(sale, uid.as_ref(), order_id);
        }
    }
    if (answer.status == StatusCode::GONE && is_sold_out(&answer.body)
        || answer.status.is_success() && took_the_last_unit(&answer.body))
        && state.soldout.mark_since(sale, ticket)
    {
        tracing::info!(sale, "sold out (origin answer)");
    }
    let outcome = if answer.status.is_success() {
        "forwarded"
    } else {
        "origin_refused"
    };
    let reason = match answer.status.as_u16() {
        200 => "reserved",
        409 => "duplicate",
        410 => "sold_out",
        404 => "unknown_sale",
        503 => "unavailable",
        _ => "other",
    };
    let same_for_everyone = answer.status == StatusCode::GONE && is_generic_gone(&answer.body);
    let mut resp = (answer.status, answer.body).into_response();
    if same_for_everyone {
        resp.extensions_mut().insert(SameForEveryone);
    }
    for name in [header::CONTENT_TYPE, header::RETRY_AFTER] {
        if let Some(v) = answer.headers.get(&name) {
            resp.headers_mut().insert(name, v.clone());
        }
    }
    if answer.status == StatusCode::SERVICE_UNAVAILABLE {
        // The origin's Redis or database is away: the browser waits the origin's Retry-After
        // (ours when it gave none) before it tries again. Its pass token is spent already.
        tracing::debug!(sale, %uid, "origin unavailable for a reservation");
        resp.headers_mut()
            .entry(header::RETRY_AFTER)
            .or_insert(header::HeaderValue::from(RETRY_AFTER_SECONDS));
    }
    counted(&state, ROUTE, outcome, reason, resp)
}

/// Steps 6 and 7, and the sold-out flag again: `Ok` to forward, or the answer of a request
/// refused after its global admission.
async fn admit(
    state: &AppState,
    runtime: &Runtime,
    sale: i64,
    uid: &str,
    pass: &PassClaims,
    now: u64,
) -> Result<(), Response> {
    state.metrics.redis("admit");
    let rate = &runtime.config.limits.uid;
    let admission = state
        .uid
        .admit(sale, uid, &pass.jti, rate, pass.spent_mark_ttl(now))
        .await;
    match admission {
        Ok(Admission::Admitted(_)) => {}
        Ok(Admission::WouldLimit { .. }) => {
            state.metrics.dry_run("uid");
            tracing::info!(%uid, "dry run: would be rate limited (uid)");
        }
        Ok(Admission::Limited { retry_after, quota }) => {
            let decision = Decision::Deny { retry_after, quota };
            return Err(refused(
                state,
                Refusal::RateLimited {
                    limit: "uid",
                    headers: limits::headers(&decision),
                },
            ));
        }
        Ok(Admission::Replayed) => {
            tracing::info!(%uid, sale, "pass token replayed");
            return Err(refused(
                state,
                Refusal::Forbidden {
                    code: "pass_token_spent",
                    reason: "replayed",
                },
            ));
        }
        Err(e) => return Err(failed(state, limit_failure("uid", &e))),
    }

    if let Some(order_id) = state.bought.get(sale, uid) {
        let answer = (
            StatusCode::CONFLICT,
            axum::Json(json!({
                "error": "duplicate",
                "message": "this user already has a purchase in this sale",
                "order_id": order_id,
            })),
        );
        return Err(counted(state, ROUTE, "refused", "duplicate_known", answer));
    }

    // The flag again: the sale may have sold out while this request was being admitted (a
    // crowd keeps many in flight), and the origin would only say so.
    if state.soldout.is_sold_out(sale) {
        return Err(sold_out(state));
    }
    Ok(())
}

/// A limit that could not decide: Redis's fault is a 503, ours a 500.
fn limit_failure(limit: &str, e: &limits::LimitError) -> Error {
    if e.is_upstream() {
        Error::LimitsUnavailable(format!("{limit}: {e}"))
    } else {
        Error::Internal(format!("{limit} limit: {e}"))
    }
}

/// A `reserved` answer that left no unit (`remaining_hint: 0`): the sale is sold out now, before
/// the event reaches this edge.
fn took_the_last_unit(body: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(body).is_ok_and(|v| v["remaining_hint"] == 0)
}

fn is_duplicate(body: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(body).is_ok_and(|v| v["error"] == "duplicate")
}

fn is_sold_out(body: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(body).is_ok_and(|v| v["error"] == "sold_out")
}

/// The origin's 410 without a user field: `{"error": "sold_out" | "ended", "message": ...}`
/// and nothing else. Its refusal of a unit the database had not (`gid`, `order_id`) is that
/// user's own answer.
fn is_generic_gone(body: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(body).is_ok_and(|v| {
        matches!(
            v.get("error").and_then(|e| e.as_str()),
            Some("sold_out" | "ended")
        ) && v.keys().all(|k| k == "error" || k == "message")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_410_without_user_fields_is_the_same_for_everyone() {
        let check = |body: &str, expected: bool| {
            assert_eq!(is_generic_gone(body.as_bytes()), expected, "{body}");
        };
        check(r#"{"error":"sold_out","message":"no unit left"}"#, true);
        check(r#"{"error":"ended","message":"the sale has ended"}"#, true);
        check(r#"{"error":"sold_out"}"#, true);
        check(
            r#"{"error":"sold_out","message":"no unit left","gid":"7/alice","order_id":12}"#,
            false,
        );
        check(r#"{"error":"sold_out","order_id":null}"#, false);
        check(r#"{"error":"duplicate","message":"x"}"#, false);
        check(r#"["sold_out"]"#, false);
        check("not json", false);
    }
}
