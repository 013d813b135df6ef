//! The captcha: `GET /api/captcha?sale=ID` hands the signed user a proof-of-work challenge (and
//! an image captcha with its audio alternative when the difficulty level asks for it);
//! `POST /api/captcha` checks the solution, spends the challenge once (Redis `SET NX`) and
//! answers with a pass token bound to the user and the sale.

use axum::{
    extract::{Query, State},
    http::HeaderMap,
    response::{IntoResponse, Response},
    Extension, Json,
};
use base64::Engine;
use serde::Deserialize;
use serde_json::json;

use super::{counted, ApiJson, Ctx};
use crate::{
    captcha::image,
    clock,
    error::{Error, Refusal},
    state::AppState,
};

/// Characters of an image captcha.
const IMAGE_CHARS: usize = 5;

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

fn data_url(mime: &str, bytes: &[u8]) -> String {
    format!(
        "data:{mime};base64,{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

pub async fn challenge(
    State(state): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    headers: HeaderMap,
    query: Result<Query<ChallengeQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let runtime = state.runtime.load();
    let uid = match runtime
        .verifier
        .verify(headers.get("authorization").and_then(|v| v.to_str().ok()))
    {
        Ok(uid) => uid,
        Err(e) => {
            let reason = e.reason();
            return counted(
                &state,
                "captcha",
                "refused",
                reason,
                Refusal::Unauthorized { reason },
            );
        }
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
            let generated = tokio::task::spawn_blocking(move || image::generate(IMAGE_CHARS))
                .await
                .map_err(|e| Error::Internal(format!("image captcha task: {e}")))?
                .map_err(|e| Error::Internal(format!("image captcha: {e}")))?;
            Some(generated)
        } else {
            None
        };
        let now = clock::unix_now();
        let challenge = runtime.pow.issue(
            uid.as_ref(),
            sale,
            &level,
            picture.as_ref().map(|p| p.answer.as_str()),
            now,
            cfg.challenge_ttl_seconds,
        );
        let image = picture.map(|p| {
            json!({
                "png": data_url("image/png", &p.png),
                "audio": p.wav.as_deref().map(|w| data_url("audio/wav", w)),
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
    let uid = match runtime
        .verifier
        .verify(headers.get("authorization").and_then(|v| v.to_str().ok()))
    {
        Ok(uid) => uid,
        Err(e) => {
            let reason = e.reason();
            return counted(
                &state,
                "captcha",
                "refused",
                reason,
                Refusal::Unauthorized { reason },
            );
        }
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
