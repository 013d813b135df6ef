//! The edge's router driven in memory (`tower::ServiceExt::oneshot`), no process and no
//! listener: its state is connected to the test's real Redis and origin, configured as the test
//! edges of `edge_process` are (their secrets, dev mode, generous limits, difficulty 8). For the
//! tables of answers; what needs a listener, a signal or a second edge stays a process test.

use std::time::Duration;

use anyhow::Context;
use axum::{
    body::{to_bytes, Body},
    http::{header, Request},
    Router,
};
use edge::config::{Config, Level, RateConfig};
use serde_json::{json, Value};
use tower::ServiceExt;

use crate::edge_process::CAPTCHA_SECRET;

/// An edge's public API as a `Router`, answering requests in memory.
pub struct EdgeRouter {
    router: Router,
}

/// An answer: its status and its body parsed as JSON (`Null` when it is empty), with the raw
/// text for messages.
pub struct Answer {
    pub status: u16,
    pub json: Value,
    pub text: String,
}

impl EdgeRouter {
    /// Connects the edge's state to Redis at `redis_url` and the origin at `origin_url`.
    pub async fn start(redis_url: &str, origin_url: &str) -> anyhow::Result<Self> {
        let state = edge::server::connect(config(redis_url, origin_url)?, None).await?;
        Ok(Self {
            router: edge::routes::router(state),
        })
    }

    /// Sends `method path` with the user JWT `token` and a JSON `body`, when given.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<String>,
    ) -> anyhow::Result<Answer> {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let request = match body {
            Some(body) => request
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(body))?,
            None => request.body(Body::empty())?,
        };
        self.answer(request).await
    }

    /// Sends a request built by the test.
    pub async fn answer(&self, request: Request<Body>) -> anyhow::Result<Answer> {
        oneshot(&self.router, request).await
    }

    /// A pass token for `sale` as the user of `token`, earned as a browser earns it: the
    /// challenge, its proof of work, the solution traded.
    pub async fn pass(&self, token: &str, sale: i64) -> anyhow::Result<String> {
        let challenge = self
            .send(
                "GET",
                &format!("/api/captcha?sale={sale}"),
                Some(token),
                None,
            )
            .await?
            .json;
        let nonce = solve(&challenge)?;
        let solution = json!({"sale": sale, "challenge": challenge["challenge"], "nonce": nonce});
        let solved = self
            .send(
                "POST",
                "/api/captcha",
                Some(token),
                Some(solution.to_string()),
            )
            .await?
            .json;
        Ok(solved["pass_token"]
            .as_str()
            .with_context(|| format!("no pass token: {solved}"))?
            .to_string())
    }
}

/// Sends `request` to `router` in memory (the edge's or the origin's) and reads its answer.
pub async fn oneshot(router: &Router, request: Request<Body>) -> anyhow::Result<Answer> {
    let response = router.clone().oneshot(request).await?;
    let status = response.status().as_u16();
    let bytes = to_bytes(response.into_body(), usize::MAX).await?;
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let json = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).with_context(|| format!("not JSON: {status} {text}"))?
    };
    Ok(Answer { status, json, text })
}

/// The nonce that solves a challenge answer (`challenge`, `difficulty`).
pub fn solve(challenge: &Value) -> anyhow::Result<String> {
    let token = challenge["challenge"]
        .as_str()
        .with_context(|| format!("no challenge: {challenge}"))?;
    let difficulty = u8::try_from(challenge["difficulty"].as_u64().context("difficulty")?)?;
    Ok(edge::captcha::pow::solve(token, difficulty))
}

/// The config of the test edges (see `edge_process::EdgeOptions::default`), typed.
fn config(redis_url: &str, origin_url: &str) -> anyhow::Result<Config> {
    let mut config = Config::default();
    config.http.dev_mode = true;
    config.redis.url = redis_url.to_string();
    config.redis.command_timeout_ms = 5000;
    config.origin.urls = vec![origin_url.parse()?];
    config.origin.timeout = Duration::from_secs(1);
    config.origin.connect_timeout = Duration::from_millis(200);
    config.origin.retry_dead_after = Duration::from_millis(200);
    config.identity = crate::shopper::identity();
    config.captcha.secret = CAPTCHA_SECRET.to_string();
    config.captcha.levels = vec![Level {
        from_rate: 0,
        difficulty: 8,
        image: false,
    }];
    let generous = RateConfig {
        per_second: 10_000.0,
        burst: 10_000,
        dry_run: false,
    };
    config.limits.ip = generous.clone();
    config.limits.captcha.ip = generous.clone();
    config.limits.captcha.uid = generous;
    config.limits.uid.per_second = 100.0;
    config.limits.uid.burst = 100;
    config.limits.global.per_second = 100_000;
    config.limits.global.lease = 100;
    config.payments.dev_webhook_secret = Some(crate::origin_process::PAYMENT_WEBHOOK_SECRET.into());
    Ok(config)
}
