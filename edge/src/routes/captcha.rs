//! The captcha: `GET /api/captcha?sale=ID` hands the signed user a proof-of-work challenge (and
//! an image captcha with its audio alternative when the difficulty level asks for it, behind a
//! signed handle: `GET /api/captcha/image/{handle}` and `/api/captcha/audio/{handle}`, with the
//! same user's token); `POST /api/captcha` checks the solution, spends the challenge once (Redis
//! `SET NX`) and answers with a pass token bound to the user and the sale, carrying the level it
//! was earned at. Both captcha endpoints are limited per IP and per user, and answer nothing for
//! a sale that has not started. `pass_level` is the buy's check of that level.

use std::time::Duration;

use axum::{
    extract::{rejection::PathRejection, Path, Query, State},
    http::{header, HeaderMap},
    response::{IntoResponse, Response},
    Extension, Json,
};
use serde::Deserialize;
use serde_json::json;

use super::{counted, within_limit, ApiJson, Ctx};
use crate::{
    captcha::{image, pool::Wear},
    clock,
    config::CaptchaConfig,
    error::{Error, Refusal},
    identity::Uid,
    limits::{ip::UserKey, uid::UserKeys},
    pass::{Earned, PassClaims},
    state::{AppState, Runtime},
};

#[derive(Debug, Deserialize)]
pub struct ChallengeQuery {
    sale: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Solution {
    sale: i64,
    challenge: String,
    nonce: String,
    #[serde(default)]
    answer: Option<String>,
}

fn refused(refusal: Refusal) -> Response {
    let reason = refusal.reason();
    counted("refused", reason, refusal)
}

fn failed(error: Error) -> Response {
    counted("failed", error.code(), error)
}

/// How long a pooled image serves, from the config.
pub fn image_wear(cfg: &CaptchaConfig) -> Wear {
    Wear {
        serves: cfg.image_serves,
        max_age: Duration::from_secs(cfg.image_max_age_seconds),
    }
}

/// The buy's check of a pass: it must have been earned at the level in force now, or above.
pub fn pass_level(state: &AppState, pass: &PassClaims) -> Result<(), Refusal> {
    let level = state.difficulty.current();
    if pass.earned.meets(&level) {
        return Ok(());
    }
    tracing::info!(
        earned = pass.earned.difficulty,
        earned_image = pass.earned.image,
        difficulty = level.difficulty,
        image = level.image,
        "pass earned below the level in force"
    );
    Err(Refusal::Forbidden {
        code: "pass_level_too_low",
        reason: "level_too_low",
    })
}

/// The captcha endpoints' door: the per-IP limit (before any CPU is spent on the token), the
/// user, the per-user limit.
async fn admit(
    state: &AppState,
    runtime: &Runtime,
    ctx: &Ctx,
    headers: &HeaderMap,
) -> Result<Uid, Refusal> {
    let limits = &runtime.config.limits.captcha;
    within_limit(
        state,
        "captcha_ip",
        runtime.captcha_ip.check(ctx.client_ip),
        limits.ip.dry_run,
    )?;
    let uid = super::user(runtime, ctx, headers).await?.uid;
    within_limit(
        state,
        "captcha_uid",
        runtime.captcha_uid.check(UserKey::of(uid.as_ref())),
        limits.uid.dry_run,
    )?;
    Ok(uid)
}

/// `Ok` once `sale` exists and has started, by this edge's clock.
async fn started(
    state: &AppState,
    runtime: &Runtime,
    sale: i64,
    request_id: &str,
) -> Result<(), Response> {
    let info = state
        .sales
        .get(&runtime.origins, sale, request_id)
        .await
        .map_err(failed)?;
    let now = clock::now();
    if now < info.starts_at {
        return Err(refused(Refusal::SaleNotStarted {
            starts_at: info.starts_at,
            now,
        }));
    }
    Ok(())
}

/// The user of the request and the image its handle points at, if the handle is theirs.
async fn handled_image(
    state: &AppState,
    ctx: &Ctx,
    headers: &HeaderMap,
    handle: Result<Path<String>, PathRejection>,
) -> Result<std::sync::Arc<crate::captcha::pool::Drawn>, Box<Response>> {
    let runtime = state.runtime.load();
    let uid = super::user(&runtime, ctx, headers)
        .await
        .map_err(|r| Box::new(refused(r)))?
        .uid;
    let handle = handle.map(|Path(h)| h).unwrap_or_default();
    runtime
        .pow
        .open_image_handle(&handle, uid.as_ref(), clock::unix_now())
        .and_then(|at| state.images.get(at))
        .ok_or_else(|| Box::new(failed(Error::ImageGone)))
}

/// The picture of an image captcha, for the holder of its challenge.
pub async fn image(
    State(state): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    headers: HeaderMap,
    handle: Result<Path<String>, PathRejection>,
) -> Response {
    match handled_image(&state, &ctx, &headers, handle).await {
        Ok(drawn) => (
            [
                (header::CONTENT_TYPE, "image/png"),
                (header::CACHE_CONTROL, "private, no-store"),
            ],
            drawn.png.clone(),
        )
            .into_response(),
        Err(resp) => *resp,
    }
}

/// The audio alternative: the same characters read out, with fresh noise.
pub async fn audio(
    State(state): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    headers: HeaderMap,
    handle: Result<Path<String>, PathRejection>,
) -> Response {
    let drawn = match handled_image(&state, &ctx, &headers, handle).await {
        Ok(drawn) => drawn,
        Err(resp) => return *resp,
    };
    match image::speak(&drawn.answer) {
        Some(wav) => (
            [
                (header::CONTENT_TYPE, "audio/wav"),
                (header::CACHE_CONTROL, "private, no-store"),
            ],
            wav,
        )
            .into_response(),
        None => failed(Error::Internal("captcha audio unavailable".into())),
    }
}

pub async fn challenge(
    State(state): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    headers: HeaderMap,
    query: Result<Query<ChallengeQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let runtime = state.runtime.load();
    let uid = match admit(&state, &runtime, &ctx, &headers).await {
        Ok(uid) => uid,
        Err(refusal) => return refused(refusal),
    };
    let sale = match query
        .ok()
        .and_then(|Query(q)| q.sale)
        .ok_or_else(|| Error::bad_request("invalid_sale_id", "?sale=ID is required"))
        .and_then(|raw| super::sale_id(&raw))
    {
        Ok(sale) => sale,
        Err(e) => return failed(e),
    };
    if let Err(resp) = started(&state, &runtime, sale, &ctx.request_id).await {
        return resp;
    }
    // One user counts once a second towards the level, however many challenges they ask for.
    if state
        .distinct
        .first_this_second(uid.as_ref(), tokio::time::Instant::now())
    {
        state.difficulty.record();
    }
    let level = state.difficulty.current();
    let index = state.difficulty.level_index();
    state.metrics.captcha_level(index);
    let cfg = &runtime.config.captcha;
    let picked = if level.image {
        match state
            .images
            .pick(image_wear(cfg), tokio::time::Instant::now())
        {
            Some(picked) => Some(picked),
            None => {
                tracing::warn!("every image captcha is worn: challenge refused for a second");
                return refused(Refusal::CaptchaBusy);
            }
        }
    } else {
        None
    };
    let now = clock::unix_now();
    let challenge = runtime.pow.issue(
        uid.as_ref(),
        sale,
        &level,
        picked.as_ref().map(|p| p.drawn.answer.as_str()),
        now,
        cfg.challenge_ttl_seconds,
    );
    let image = picked.map(|p| {
        let handle = runtime
            .pow
            .image_handle(uid.as_ref(), p.at, challenge.expires_at);
        json!({
            "png": format!("/api/captcha/image/{handle}"),
            "audio": format!("/api/captcha/audio/{handle}"),
        })
    });
    let answer = Json(json!({
        "challenge": challenge.token,
        "difficulty": challenge.difficulty,
        "expires_at": challenge.expires_at,
        "level": index,
        "image": image,
    }));
    counted("served", "challenge", answer)
}

pub async fn solve(
    State(state): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    headers: HeaderMap,
    body: Result<ApiJson<Solution>, Error>,
) -> Response {
    let runtime = state.runtime.load();
    let uid = match admit(&state, &runtime, &ctx, &headers).await {
        Ok(uid) => uid,
        Err(refusal) => return refused(refusal),
    };
    let body = match body {
        Ok(ApiJson(body)) => body,
        Err(e) => return failed(e),
    };
    if let Err(resp) = started(&state, &runtime, body.sale, &ctx.request_id).await {
        return resp;
    }
    let now = clock::unix_now();
    let verified = match runtime.pow.verify(
        &body.challenge,
        uid.as_ref(),
        body.sale,
        &body.nonce,
        body.answer.as_deref(),
        now,
    ) {
        Ok(v) => v,
        Err(e) => {
            let reason = e.reason();
            tracing::info!(%uid, sale = body.sale, reason, "captcha refused");
            return refused(Refusal::Forbidden {
                code: "captcha_failed",
                reason,
            });
        }
    };
    // Single use: the first solver of a challenge id wins, until the challenge expires anyway.
    let key = UserKeys::new(body.sale, uid.as_str()).challenge(&verified.id);
    let ttl = verified.expires_at.saturating_sub(now).max(1);
    state.metrics.redis("challenge_spend");
    let spend = redis::cmd("SET")
        .arg(&key)
        .arg(1)
        .arg("NX")
        .arg("EX")
        .arg(ttl)
        .clone();
    let first: Result<Option<String>, Error> = state
        .redis
        .query("challenge spend", &spend)
        .await
        .map_err(Error::from);
    match first {
        Ok(Some(_)) => {}
        Ok(None) => {
            return refused(Refusal::Forbidden {
                code: "challenge_spent",
                reason: "challenge_spent",
            });
        }
        Err(e) => return failed(e),
    }
    let earned = Earned {
        difficulty: verified.difficulty,
        image: verified.image,
    };
    match runtime.pass.issue(uid.as_ref(), body.sale, earned, now) {
        Ok(token) => counted(
            "served",
            "pass",
            Json(json!({
                "pass_token": token,
                "expires_at": now + runtime.config.captcha.pass_ttl_seconds,
            })),
        ),
        Err(e) => failed(Error::Internal(format!("pass token: {e}"))),
    }
}
