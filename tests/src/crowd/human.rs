//! An honest user, once, as a browser would: read the sale's status (a sold-out or ended sale
//! sends the user away), get a pass through the captcha, buy once. Every step is counted; the
//! user's ending is the answer key of the buy (`200 reserved`, `410 sold_out`, ...) or of the
//! step that stopped it.

use serde_json::json;

use super::{
    captcha,
    client::Call,
    roster::Role,
    scene::Scene,
    tally::{answer_key, Route, Tally},
};

/// Plays honest user `i`.
pub async fn play(scene: &Scene, tally: &mut Tally, i: usize) {
    let role = Role::Human;
    tally.identity(role);
    let uid = scene.uid(i);
    let ip = scene.human_ip(i);
    let Some(token) = scene.user_token(tally, role, &uid).await else {
        return;
    };

    let status = scene
        .http
        .send(Call::get(Route::Status, scene.status_path()).from_ip(ip))
        .await;
    tally.answer(role, &status);
    if status.status != 200 {
        tally.ending(role, format!("status {}", answer_key(&status)));
        return;
    }
    if let Some(state @ ("sold_out" | "ended")) = status.field("state") {
        tally.ending(role, format!("saw {state}"));
        return;
    }

    let Some(pass) = captcha::pass(scene, tally, role, &token, ip).await else {
        return;
    };
    let body = json!({ "pass_token": pass }).to_string();
    let answer = scene
        .http
        .send(
            Call::post(Route::Buy, scene.buy_path(), body)
                .bearer(&token)
                .from_ip(ip),
        )
        .await;
    tally.buy(role, &uid, &answer);
    tally.ending(role, answer_key(&answer));
}
