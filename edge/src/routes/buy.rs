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
use flash_wire::{Refused, ReserveRefusal, Reserved, UidBody};
use hyper::body::Bytes;
use serde::Deserialize;

use super::{sale_id, ApiJson, Ctx};
use crate::{
    clock,
    error::{Error, Refusal, Stop, RETRY_AFTER_SECONDS},
    forward::Answer,
    limits::{self, uid::Admission, Decision},
    pass::PassClaims,
    state::{AppState, Runtime},
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuyBody {
    pass_token: String,
}

/// Marks a buy answer that is the same for every caller: the generic sold-out (or ended) 410,
/// with no user field. Only such an answer may be kept by nginx.
#[derive(Debug, Clone, Copy)]
struct SameForEveryone;

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

/// The buy, marked ONCE here with what it came to (forwarded: the origin's answer; refused or
/// failed by the filter), counted under its route by the router's context.
pub async fn buy(
    State(state): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<ApiJson<BuyBody>, Error>,
) -> Response {
    let (outcome, reason, resp) = match filter(&state, &ctx, &id, &headers, body).await {
        Ok(forwarded) => {
            let (outcome, reason) = forwarded.labels();
            (outcome, reason, forwarded.into_response())
        }
        Err(stop) => {
            let (outcome, reason) = stop.labels();
            let same_for_everyone = matches!(stop, Stop::Refused(Refusal::SoldOut));
            let mut resp = stop.into_response();
            if same_for_everyone {
                resp.extensions_mut().insert(SameForEveryone);
            }
            (outcome, reason, resp)
        }
    };
    cache_control(super::counted(outcome, reason, resp))
}

/// Steps 1 to 8: the origin's answer, or why the request went no further.
async fn filter(
    state: &AppState,
    ctx: &Ctx,
    id: &str,
    headers: &HeaderMap,
    body: Result<ApiJson<BuyBody>, Error>,
) -> Result<Forwarded, Stop> {
    let sale = sale_id(id)?;
    if state.soldout.is_sold_out(sale) {
        return Err(Refusal::SoldOut.into());
    }
    let runtime = state.runtime.load();
    let limits_cfg = &runtime.config.limits;
    super::within_limit(
        state,
        "ip",
        runtime.ip.check(ctx.client_ip),
        limits_cfg.ip.dry_run,
    )?;
    let uid = super::user(&runtime, ctx, headers).await?.uid;
    let ApiJson(body) = body?;
    let now = clock::unix_now();
    let pass = runtime
        .pass
        .verify(&body.pass_token, uid.as_ref(), sale, now)
        .map_err(|e| {
            tracing::info!(%uid, sale, reason = e.reason(), "pass token refused");
            Refusal::Forbidden {
                code: "pass_token_invalid",
                reason: e.reason(),
            }
        })?;
    super::pass_level(state, &pass)?;
    let decision = state
        .global
        .acquire(sale, &limits_cfg.global)
        .await
        .map_err(|e| limit_failure("global", &e))?;
    let global_taken = decision.is_allowed();
    super::within_limit(state, "global", decision, limits_cfg.global.dry_run)?;
    if let Err(stop) = admit(state, &runtime, sale, uid.as_ref(), &pass, now).await {
        // Not forwarded: the global admission goes back to this edge's slice.
        if global_taken {
            state.global.give_back(sale);
        }
        return Err(stop);
    }

    let payload = serde_json::to_vec(&UidBody {
        uid: uid.as_ref().to_string(),
    })
    .map_err(|e| Error::Internal(format!("reserve body: {e}")))?;
    let ticket = state.soldout.ticket(sale);
    let answer = runtime
        .origins
        .send(
            Method::POST,
            &format!("/v1/sales/{sale}/reserve"),
            Some(Bytes::from(payload)),
            &ctx.request_id,
        )
        .await
        .map_err(|e| {
            state.metrics.origin("unreachable");
            Error::OriginUnavailable(e.to_string())
        })?;
    state.metrics.origin(answer.status.as_str());
    let reply = Reply::read(&answer);
    match &reply {
        Reply::Reserved(reserved) => state.bought.insert(sale, uid.as_ref(), reserved.order_id),
        Reply::Refused(ReserveRefusal::Duplicate { order_id, .. }) => {
            state.bought.insert(sale, uid.as_ref(), *order_id);
        }
        _ => {}
    }
    if reply.sold_out() && state.soldout.mark_since(sale, ticket) {
        tracing::info!(sale, "sold out (origin answer)");
    }
    if answer.status == StatusCode::SERVICE_UNAVAILABLE {
        // The origin's Redis or database is away: the browser waits the origin's Retry-After
        // (ours when it gave none) before it tries again. Its pass token is spent already.
        tracing::debug!(sale, %uid, "origin unavailable for a reservation");
    }
    Ok(Forwarded {
        same_for_everyone: reply.same_for_everyone(),
        answer,
    })
}

/// The origin's answer to a reservation, read once: the types of `flash-wire`.
enum Reply {
    /// 200: the unit is the user's.
    Reserved(Reserved),
    /// 409 or 410: a duplicate, not started, sold out, ended.
    Refused(ReserveRefusal),
    /// Any other answer (a failure, passed back as it is).
    Other,
}

impl Reply {
    fn read(answer: &Answer) -> Self {
        match answer.status {
            StatusCode::OK => {
                serde_json::from_slice(&answer.body).map_or(Self::Other, Self::Reserved)
            }
            StatusCode::CONFLICT | StatusCode::GONE => {
                serde_json::from_slice::<Refused<ReserveRefusal>>(&answer.body)
                    .map_or(Self::Other, |refused| Self::Refused(refused.refusal))
            }
            _ => Self::Other,
        }
    }

    /// No unit left: the origin's `sold_out`, or a `reserved` that took the last unit
    /// (`remaining_hint: 0`), before the event reaches this edge.
    fn sold_out(&self) -> bool {
        match self {
            Self::Reserved(reserved) => reserved.remaining_hint == 0,
            Self::Refused(refusal) => matches!(refusal, ReserveRefusal::SoldOut { .. }),
            Self::Other => false,
        }
    }

    /// The origin's 410 without a user field: sold out or ended. Its refusal of a unit the
    /// database had not (`gid`, `order_id`) is that user's own answer.
    fn same_for_everyone(&self) -> bool {
        matches!(
            self,
            Self::Refused(
                ReserveRefusal::SoldOut {
                    gid: None,
                    order_id: None
                } | ReserveRefusal::Ended
            )
        )
    }
}

/// The origin's answer to a forwarded buy, passed back as it is.
struct Forwarded {
    answer: Answer,
    same_for_everyone: bool,
}

impl Forwarded {
    /// The `outcome` and `reason` labels of the request metric.
    fn labels(&self) -> (&'static str, &'static str) {
        let status = self.answer.status;
        let outcome = if status.is_success() {
            "forwarded"
        } else {
            "origin_refused"
        };
        let reason = match status.as_u16() {
            200 => "reserved",
            409 => "duplicate",
            410 => "sold_out",
            404 => "unknown_sale",
            503 => "unavailable",
            _ => "other",
        };
        (outcome, reason)
    }
}

impl IntoResponse for Forwarded {
    fn into_response(self) -> Response {
        let Answer {
            status,
            headers,
            body,
        } = self.answer;
        let mut resp = (status, body).into_response();
        if self.same_for_everyone {
            resp.extensions_mut().insert(SameForEveryone);
        }
        for name in [header::CONTENT_TYPE, header::RETRY_AFTER] {
            if let Some(v) = headers.get(&name) {
                resp.headers_mut().insert(name, v.clone());
            }
        }
        if status == StatusCode::SERVICE_UNAVAILABLE {
            resp.headers_mut()
                .entry(header::RETRY_AFTER)
                .or_insert(header::HeaderValue::from(RETRY_AFTER_SECONDS));
        }
        resp
    }
}

/// Steps 6 and 7, and the sold-out flag again: `Ok` to forward, or why a request admitted by
/// the global limit goes no further.
async fn admit(
    state: &AppState,
    runtime: &Runtime,
    sale: i64,
    uid: &str,
    pass: &PassClaims,
    now: u64,
) -> Result<(), Stop> {
    state.metrics.redis("admit");
    let rate = &runtime.config.limits.uid;
    let admission = state
        .uid
        .admit(sale, uid, &pass.jti, rate, pass.spent_mark_ttl(now))
        .await
        .map_err(|e| limit_failure("uid", &e))?;
    match admission {
        Admission::Admitted(_) => {}
        Admission::WouldLimit { .. } => {
            state.metrics.dry_run("uid");
            tracing::info!(%uid, "dry run: would be rate limited (uid)");
        }
        Admission::Limited { retry_after, quota } => {
            let decision = Decision::Deny { retry_after, quota };
            return Err(Refusal::RateLimited {
                limit: "uid",
                headers: limits::headers(&decision),
            }
            .into());
        }
        Admission::Replayed => {
            tracing::info!(%uid, sale, "pass token replayed");
            return Err(Refusal::Forbidden {
                code: "pass_token_spent",
                reason: "replayed",
            }
            .into());
        }
    }
    if let Some(order_id) = state.bought.get(sale, uid) {
        return Err(Refusal::Duplicate { order_id }.into());
    }
    // The flag again: the sale may have sold out while this request was being admitted (a
    // crowd keeps many in flight), and the origin would only say so.
    if state.soldout.is_sold_out(sale) {
        return Err(Refusal::SoldOut.into());
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

#[cfg(test)]
mod tests;
