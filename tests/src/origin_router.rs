//! The origin's API as a `Router` driven in memory (`tower::ServiceExt::oneshot`), no process
//! and no listener: assembled by `origin::server::App::assemble` on the test's real Redis and
//! PostgreSQL, configured as the test origins of `origin_process` are (their default options).
//! For the tables of answers; what needs a listener, a crash or a restart stays a process test.

use std::time::Duration;

use axum::{
    body::Body,
    http::{header, Request},
};
use origin::{config::Config, server::App};

use crate::{
    edge_router::{oneshot, Answer},
    origin_process::PAYMENT_WEBHOOK_SECRET,
};

/// An origin's API answering requests in memory, its recovery poller running beside it.
pub struct OriginRouter {
    app: App,
}

impl OriginRouter {
    /// Assembles the origin on Redis at `redis_url` and PostgreSQL at `postgres_url`.
    pub async fn start(redis_url: &str, postgres_url: &str) -> anyhow::Result<Self> {
        Self::start_with(config(redis_url, postgres_url)).await
    }

    /// Assembles the origin with `config` (from [`config`], changed).
    pub async fn start_with(config: Config) -> anyhow::Result<Self> {
        let app = App::assemble(config).await?;
        Ok(Self { app })
    }

    /// Sends `method path` with `body`, as JSON when `json` is true.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        body: String,
        json: bool,
    ) -> anyhow::Result<Answer> {
        let mut request = Request::builder().method(method).uri(path);
        if json {
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        oneshot(&self.app.router, request.body(Body::from(body))?).await
    }

    /// The Prometheus text `GET /metrics` serves.
    pub fn metrics(&self) -> String {
        self.app.metrics.render()
    }

    /// Stops the tasks beside the API.
    pub async fn stop(self) {
        self.app.background.stop().await;
    }
}

/// The config of the test origins (see `origin_process::OriginOptions::default`), typed.
pub fn config(redis_url: &str, postgres_url: &str) -> Config {
    let mut config = Config::default();
    config.redis.url = redis_url.to_string();
    config.redis.command_timeout_ms = 5000;
    config.postgres.url = postgres_url.to_string();
    config.postgres.statement_timeout = Duration::from_secs(2);
    config.recovery.timeout = Duration::from_secs(1);
    config.recovery.poll_interval = Duration::from_millis(100);
    config.recovery.lease = Duration::from_secs(2);
    config.recovery.max_lease = Duration::from_secs(4);
    config.holds.extend_seconds = 300;
    config.payments.webhook_secret = PAYMENT_WEBHOOK_SECRET.to_string();
    config
}
