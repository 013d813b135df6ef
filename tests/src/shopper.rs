//! A shopper as the tests and load tools play one: a user JWT minted with the test edges' secret
//! (as the shop's login would issue it), and a pass token earned the way a browser earns it —
//! fetch the challenge, solve the proof of work, trade the solution.

use anyhow::Context;
use edge::config::{IdentityConfig, Keys};
use serde_json::{json, Value};

use crate::edge_process::USER_JWT_SECRET;

/// Seconds since the Unix epoch.
pub fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The identity config of the test edges (HS256 with [`USER_JWT_SECRET`]).
pub fn identity() -> IdentityConfig {
    IdentityConfig {
        keys: Some(Keys::hs256(USER_JWT_SECRET)),
        ..IdentityConfig::default()
    }
}

/// A user JWT for `uid`, valid an hour.
pub fn jwt(uid: &str) -> anyhow::Result<String> {
    Ok(edge::identity::mint_dev_token(
        &identity(),
        uid,
        3600,
        now_unix(),
    )?)
}

/// A pass token for `sale` from the edge API at `base` (an edge or nginx), as the user of `jwt`,
/// from address `ip` when given (`X-Forwarded-For`, believed from loopback).
pub async fn pass_token(
    http: &reqwest::Client,
    base: &str,
    jwt: &str,
    sale: i64,
    ip: Option<&str>,
) -> anyhow::Result<String> {
    let with_ip = |req: reqwest::RequestBuilder| match ip {
        Some(ip) => req.header("x-forwarded-for", ip),
        None => req,
    };
    let challenge: Value = with_ip(http.get(format!("{base}/api/captcha?sale={sale}")))
        .bearer_auth(jwt)
        .send()
        .await?
        .json()
        .await?;
    let token = challenge["challenge"]
        .as_str()
        .with_context(|| format!("no challenge: {challenge}"))?
        .to_string();
    let difficulty = u8::try_from(challenge["difficulty"].as_u64().context("difficulty")?)?;
    let nonce = {
        let token = token.clone();
        tokio::task::spawn_blocking(move || edge::captcha::pow::solve(&token, difficulty)).await?
    };
    let solved: Value = with_ip(http.post(format!("{base}/api/captcha")))
        .bearer_auth(jwt)
        .json(&json!({"sale": sale, "challenge": token, "nonce": nonce}))
        .send()
        .await?
        .json()
        .await?;
    Ok(solved["pass_token"]
        .as_str()
        .with_context(|| format!("no pass token: {solved}"))?
        .to_string())
}
