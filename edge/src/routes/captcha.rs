//! The captcha: `GET /api/captcha?sale=ID` hands the signed user a proof-of-work challenge (and
//! an image captcha with its audio alternative when the difficulty level asks for it);
//! `POST /api/captcha` checks the solution, spends the challenge once (Redis `SET NX`) and
//! answers with a pass token bound to the user and the sale.

use axum::{
    extract::{rejection::PathRejection, Path, Query, State},
    http::{header, HeaderMap},
    response::{IntoResponse, Response},
    Extension, Json,
};
use serde::Deserialize;
use serde_json::json;

use super::{counted, ApiJson, Ctx};
use crate::{
    captcha::image,
    clock,
    error::{Error, Refusal},
    identity::Uid,
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

/// An image captcha's `{slot}/{generation}` from the path, both numbers.
type ImagePath = Result<Path<(usize, u64)>, PathRejection>;

fn image_at(path: ImagePath) -> Result<(usize, u64), Error> {
    path.map(|Path(at)| at).map_err(|_| {
        Error::bad_request(
            "invalid_captcha_image",
            "a captcha image is at /api/captcha/image/{slot}/{generation}, both numbers",
        )
    })
}

/// The picture of a pooled image captcha, while its slot still holds it (immutable: cacheable).
pub async fn image(State(state): State<AppState>, path: ImagePath) -> Response {
    let (slot, generation) = match image_at(path) {
        Ok(at) => at,
        Err(e) => return e.into_response(),
    };
    match state.images.get(slot, generation) {
        Some(drawn) => (
            [
                (header::CONTENT_TYPE, "image/png"),
                (header::CACHE_CONTROL, "private, max-age=600, immutable"),
            ],
            drawn.png.clone(),
        )
            .into_response(),
        None => gone_image(),
    }
}

/// The audio alternative: the same characters read out, with fresh noise.
pub async fn audio(State(state): State<AppState>, path: ImagePath) -> Response {
    let (slot, generation) = match image_at(path) {
        Ok(at) => at,
        Err(e) => return e.into_response(),
    };
    let Some(drawn) = state.images.get(slot, generation) else {
        return gone_image();
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
        None => Error::Internal("captcha audio unavailable".into()).into_response(),
    }
}

fn gone_image() -> Response {
    Error::ImageGone.into_response()
}

/// The verified user, or the counted 401 to answer.
fn user(state: &AppState, runtime: &Runtime, headers: &HeaderMap) -> Result<Uid, Box<Response>> {
    runtime
        .verifier
        .verify(headers.get("authorization").and_then(|v| v.to_str().ok()))
        .map_err(|e| {
            let reason = e.reason();
            Box::new(counted(
                state,
                "captcha",
                "refused",
                reason,
                Refusal::Unauthorized { reason },
            ))
        })
}

pub async fn challenge(
    State(state): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    headers: HeaderMap,
    query: Result<Query<ChallengeQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let runtime = state.runtime.load();
    let uid = match user(&state, &runtime, &headers) {
        Ok(uid) => uid,
        Err(resp) => return *resp,
    };
    let answer = async {
        let raw = query
            .ok()
            .and_then(|Query(q)| q.sale)
            .ok_or_else(|| Error::bad_request("invalid_sale_id", "?sale=ID is required"))?;
        let sale = super::sale_id(&raw)?;
        state
            .sales
            .get(&runtime.origins, sale, &ctx.request_id)
            .await?;
        state.difficulty.record();
        let level = state.difficulty.current();
        state.metrics.captcha_level(state.difficulty.level_index());
        let cfg = &runtime.config.captcha;
        let picture = if level.image {
            let picked = match state.images.pick() {
                Some(picked) => picked,
                None => state
                    .images
                    .draw_now()
                    .await
                    .ok_or_else(|| Error::Internal("image captcha unavailable".into()))?,
            };
            Some(picked)
        } else {
            None
        };
        let now = clock::unix_now();
        let challenge = runtime.pow.issue(
            uid.as_ref(),
            sale,
            &level,
            picture.as_ref().map(|p| p.drawn.answer.as_str()),
            now,
            cfg.challenge_ttl_seconds,
        );
        let image = picture.map(|p| {
            let at = format!("{}/{}", p.slot, p.drawn.generation);
            json!({
                "png": format!("/api/captcha/image/{at}"),
                "audio": format!("/api/captcha/audio/{at}"),
            })
        });
        Ok::<_, Error>(Json(json!({
            "challenge": challenge.token,
            "difficulty": challenge.difficulty,
            "expires_at": challenge.expires_at,
            "level": state.difficulty.level_index(),
            "image": image,
        })))
    }
    .await;
    match answer {
        Ok(resp) => counted(&state, "captcha", "served", "challenge", resp),
        Err(e) => counted(&state, "captcha", "failed", e.code(), e),
    }
}

pub async fn solve(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<ApiJson<Solution>, Error>,
) -> Response {
    let runtime = state.runtime.load();
    let uid = match user(&state, &runtime, &headers) {
        Ok(uid) => uid,
        Err(resp) => return *resp,
    };
    let body = match body {
        Ok(ApiJson(body)) => body,
        Err(e) => return counted(&state, "captcha", "failed", e.code(), e),
    };
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
            return counted(
                &state,
                "captcha",
                "refused",
                reason,
                Refusal::Forbidden {
                    code: "captcha_failed",
                    reason,
                },
            );
        }
    };
    // Single use: the first solver of a challenge id wins, until the challenge expires anyway.
    let key = format!("{{u:{uid}}}:ch:{}", verified.id);
    let ttl = verified.expires_at.saturating_sub(now).max(1);
    let mut conn = state.redis.clone();
    state.metrics.redis("challenge_spend");
    let first: Result<Option<String>, Error> = tokio::time::timeout(
        state.redis_timeout,
        redis::cmd("SET")
            .arg(&key)
            .arg(1)
            .arg("NX")
            .arg("EX")
            .arg(ttl)
            .query_async(&mut conn),
    )
    .await
    .map_err(|_| Error::Timeout("challenge spend"))
    .and_then(|r| r.map_err(Error::redis("challenge spend")));
    match first {
        Ok(Some(_)) => {}
        Ok(None) => {
            return counted(
                &state,
                "captcha",
                "refused",
                "challenge_spent",
                Refusal::Forbidden {
                    code: "challenge_spent",
                    reason: "challenge_spent",
                },
            );
        }
        Err(e) => return counted(&state, "captcha", "failed", e.code(), e),
    }
    match runtime.pass.issue(uid.as_ref(), body.sale, now) {
        Ok(token) => counted(
            &state,
            "captcha",
            "served",
            "pass",
            Json(json!({
                "pass_token": token,
                "expires_at": now + runtime.config.captcha.pass_ttl_seconds,
            }))
            .into_response(),
        ),
        Err(e) => {
            let e = Error::Internal(format!("pass token: {e}"));
            counted(&state, "captcha", "failed", e.code(), e)
        }
    }
}
