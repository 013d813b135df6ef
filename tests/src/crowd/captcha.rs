//! The captcha as a browser plays it: fetch the challenge (bound to the uid and the sale), solve
//! the proof of work with `edge::captcha::pow::solve` on a blocking thread (so the crowd's IO
//! goes on meanwhile), and trade the solution for a pass token. A challenge that asks for an
//! image cannot be solved by a load test: the actor stops there, counted as `image_required`.

use std::net::IpAddr;

use serde_json::json;
use tokio::time::Instant;

use super::{
    client::Call,
    roster::Role,
    scene::Scene,
    tally::{answer_key, Route, Side, Tally},
};

/// Gets a pass token for the user of `token` from address `ip`, counting every step. `None`
/// when a step failed; how it failed is counted as the actor's ending.
pub async fn pass(
    scene: &Scene,
    tally: &mut Tally,
    role: Role,
    token: &str,
    ip: Option<IpAddr>,
) -> Option<String> {
    let answer = scene
        .http
        .send(
            Call::get(Route::Captcha, scene.captcha_path())
                .bearer(token)
                .from_ip(ip),
        )
        .await;
    tally.answer(role, &answer);
    let challenge = answer.field("challenge").map(str::to_string);
    let difficulty = answer
        .body
        .get("difficulty")
        .and_then(serde_json::Value::as_u64)
        .and_then(|d| u8::try_from(d).ok());
    let (Some(challenge), Some(difficulty), 200) = (challenge, difficulty, answer.status) else {
        tally.ending(role, format!("captcha {}", answer_key(&answer)));
        return None;
    };
    *tally.difficulties.entry(difficulty).or_default() += 1;
    if answer.body.get("image").is_some_and(|i| !i.is_null()) {
        tally.image_required += 1;
        tally.ending(role, "image_required");
        return None;
    }

    let started = Instant::now();
    let solved = {
        let challenge = challenge.clone();
        tokio::task::spawn_blocking(move || edge::captcha::pow::solve(&challenge, difficulty)).await
    };
    tally.latency(Side::of(role), Route::Solve, started.elapsed());
    let Ok(nonce) = solved else {
        tally.ending(role, "solve panicked");
        return None;
    };

    let body = json!({"sale": scene.sale(), "challenge": challenge, "nonce": nonce}).to_string();
    let answer = scene
        .http
        .send(
            Call::post(Route::Pass, "/api/captcha".into(), body)
                .bearer(token)
                .from_ip(ip),
        )
        .await;
    tally.answer(role, &answer);
    match answer.field("pass_token") {
        Some(pass) if answer.status == 200 => Some(pass.to_string()),
        _ => {
            tally.ending(role, format!("pass {}", answer_key(&answer)));
            None
        }
    }
}
