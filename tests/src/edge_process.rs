//! An edge as a real process for one test: its config written into a temp dir (pointing at the
//! test's Redis and origins), free ports for the API and `/metrics`, its log in the temp dir. The
//! config can be rewritten and reloaded with SIGHUP, as an SRE would.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use anyhow::Context;
use nix::{
    sys::signal::{kill, Signal},
    unistd::Pid,
};
use tempfile::TempDir;
use tokio::process::{Child, Command};

use crate::{net, wait};

/// The user JWT secret (HS256) of test edges; tests mint tokens with it.
pub const USER_JWT_SECRET: &str = "test-user-jwt-secret-0123456789-abcdefghij";
/// The captcha secret of test edges.
pub const CAPTCHA_SECRET: &str = "test-captcha-secret-0123456789-abcdefghijk";
/// The captcha secret of test edges without dev mode, which refuses a weak one (made with
/// `openssl rand -base64 48` for the tests; it guards nothing).
pub const STRONG_CAPTCHA_SECRET: &str =
    "1u2DX53KIm4Z1cfMThCyRVdxeUG9m2wNKUEWauRanb3+VzG6+vhsFrZSQIYmav92";

/// The settings tests vary; the rest is the shipped default.
#[derive(Debug, Clone)]
pub struct EdgeOptions {
    pub ip_per_second: f64,
    pub ip_burst: u32,
    pub ip_dry_run: bool,
    pub uid_per_second: f64,
    pub uid_burst: u32,
    pub uid_dry_run: bool,
    pub global_per_second: u32,
    pub global_lease: u32,
    pub global_dry_run: bool,
    /// `(from_rate, difficulty, image)` levels.
    pub levels: Vec<(u32, u8, bool)>,
    /// `captcha.window_seconds` and `captcha.cooldown_seconds` of the difficulty levels.
    pub captcha_window_seconds: u64,
    pub captcha_cooldown_seconds: u64,
    pub origin_timeout_ms: u64,
    /// `redis.command_timeout_ms`: 5 s for the tests (a loaded machine must not fail one), the
    /// shipped 500 ms where a test measures how fast a dead Redis is answered.
    pub redis_timeout_ms: u64,
    pub retry_dead_after_ms: u64,
    pub pass_ttl_seconds: u64,
    /// `[limits.captcha.ip]` and `[limits.captcha.uid]` as `(per_second, burst)`: generous by
    /// default, so that tests earning many passes are not limited.
    pub captcha_ip: (f64, u32),
    pub captcha_uid: (f64, u32),
    /// `captcha.image_serves` and `captcha.image_max_age_seconds`.
    pub image_serves: u32,
    pub image_max_age_seconds: u64,
    /// `http.connections.max_connections` (each listener).
    pub max_connections: usize,
    /// `EDGE_LOG`: debug for the tests (their failures print the log), the shipped `info` for
    /// the benchmark.
    pub log: &'static str,
    /// The lines of `[identity]` instead of the HS256 test key ([`USER_JWT_SECRET`]): a test of
    /// the identity provider's keys (`jwks_url = …`).
    pub identity: Option<String>,
    /// `http.dev_mode` (on in the tests, as `./deploy/up` renders it).
    pub dev_mode: bool,
}

impl Default for EdgeOptions {
    fn default() -> Self {
        Self {
            ip_per_second: 10_000.0,
            ip_burst: 10_000,
            ip_dry_run: false,
            uid_per_second: 100.0,
            uid_burst: 100,
            uid_dry_run: false,
            global_per_second: 100_000,
            global_lease: 100,
            global_dry_run: false,
            levels: vec![(0, 8, false)],
            captcha_window_seconds: 5,
            captcha_cooldown_seconds: 30,
            origin_timeout_ms: 1000,
            redis_timeout_ms: 5000,
            retry_dead_after_ms: 200,
            pass_ttl_seconds: 60,
            captcha_ip: (10_000.0, 10_000),
            captcha_uid: (10_000.0, 10_000),
            image_serves: 200,
            image_max_age_seconds: 60,
            max_connections: 4096,
            log: "info,edge=debug",
            identity: None,
            dev_mode: true,
        }
    }
}

impl EdgeOptions {
    fn toml(&self, port: u16, admin: u16, redis_url: &str, origins: &[String]) -> String {
        let origins = origins
            .iter()
            .map(|o| format!("\"{o}\""))
            .collect::<Vec<_>>()
            .join(", ");
        let levels = self
            .levels
            .iter()
            .map(|(rate, difficulty, image)| {
                format!("{{ from_rate = {rate}, difficulty = {difficulty}, image = {image} }}")
            })
            .collect::<Vec<_>>()
            .join(", ");
        format!(
            "[http]\nlisten = \"127.0.0.1:{port}\"\ndev_mode = {}\n\
             [http.connections]\nmax_connections = {}\n\
             [admin]\nlisten = \"127.0.0.1:{admin}\"\n\
             {}command_timeout_ms = {}\n\
             [origin]\nurls = [{origins}]\ntimeout_ms = {}\nconnect_timeout_ms = 200\nretry_dead_after_ms = {}\n\
             [identity]\n{}\n\
             [captcha]\nsecret = \"{}\"\npass_ttl_seconds = {}\nlevels = [{levels}]\n\
             window_seconds = {}\ncooldown_seconds = {}\n\
             image_serves = {}\nimage_max_age_seconds = {}\n\
             [limits.ip]\nper_second = {:?}\nburst = {}\ndry_run = {}\n\
             [limits.uid]\nper_second = {:?}\nburst = {}\ndry_run = {}\n\
             [limits.global]\nper_second = {}\nlease = {}\ndry_run = {}\n\
             [limits.captcha.ip]\nper_second = {:?}\nburst = {}\n\
             [limits.captcha.uid]\nper_second = {:?}\nburst = {}\n\
             [payments]\n{}\n",
            self.dev_mode,
            self.max_connections,
            crate::redis_server::redis_table(redis_url),
            self.redis_timeout_ms,
            self.origin_timeout_ms,
            self.retry_dead_after_ms,
            self.identity.clone().unwrap_or_else(|| format!(
                "algorithm = \"HS256\"\nkey = \"{USER_JWT_SECRET}\""
            )),
            if self.dev_mode {
                CAPTCHA_SECRET
            } else {
                STRONG_CAPTCHA_SECRET
            },
            self.pass_ttl_seconds,
            self.captcha_window_seconds,
            self.captcha_cooldown_seconds,
            self.image_serves,
            self.image_max_age_seconds,
            self.ip_per_second,
            self.ip_burst,
            self.ip_dry_run,
            self.uid_per_second,
            self.uid_burst,
            self.uid_dry_run,
            self.global_per_second,
            self.global_lease,
            self.global_dry_run,
            self.captcha_ip.0,
            self.captcha_ip.1,
            self.captcha_uid.0,
            self.captcha_uid.1,
            if self.dev_mode {
                format!(
                    "dev_webhook_secret = \"{}\"",
                    crate::origin_process::PAYMENT_WEBHOOK_SECRET
                )
            } else {
                String::new()
            },
        )
    }
}

pub struct EdgeProcess {
    port: u16,
    admin: u16,
    redis_url: String,
    origins: Vec<String>,
    dir: TempDir,
    child: Option<Child>,
}

impl EdgeProcess {
    /// Writes the config and starts `binary`, waiting for `/healthz`.
    pub async fn start(
        binary: &Path,
        redis_url: &str,
        origins: &[String],
        options: &EdgeOptions,
    ) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new().prefix("edge-").tempdir()?;
        let mut edge = Self {
            port: net::free_port(),
            admin: net::free_port(),
            redis_url: redis_url.to_string(),
            origins: origins.to_vec(),
            dir,
            child: None,
        };
        edge.write_config(options)?;
        let log = std::fs::File::create(edge.log_path())?;
        let child = Command::new(binary)
            .arg("--config")
            .arg(edge.config_path())
            .env("EDGE_LOG", options.log)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("spawn {}", binary.display()))?;
        edge.child = Some(child);
        let health = format!("{}/healthz", edge.url());
        let client = reqwest::Client::new();
        wait::until("edge /healthz", Duration::from_secs(30), || {
            let req = client.get(&health).send();
            async move { Ok(req.await?.status().is_success()) }
        })
        .await
        .with_context(|| format!("edge did not start; log:\n{}", edge.log_tail()))?;
        Ok(edge)
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("edge.toml")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("edge.log")
    }

    pub fn log_tail(&self) -> String {
        wait::log_tail(&self.log_path(), 40)
    }

    /// The whole log, for tests that look for a line.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn metrics_url(&self) -> String {
        format!("http://127.0.0.1:{}/metrics", self.admin)
    }

    /// The sum of the samples of the metric `name` that carry `labels`, as `/metrics` shows it now.
    pub async fn metric(
        &self,
        http: &reqwest::Client,
        name: &str,
        labels: &[(&str, &str)],
    ) -> anyhow::Result<f64> {
        let text = crate::metrics::scrape(http, &self.metrics_url()).await?;
        Ok(crate::metrics::sample_sum(&text, name, labels))
    }

    /// Waits until the edge has reloaded its config `n` times with `result` (`applied` or
    /// `refused`), counted by `edge_config_reloads_total`.
    pub async fn await_reloads(
        &self,
        http: &reqwest::Client,
        result: &str,
        n: u64,
    ) -> anyhow::Result<()> {
        wait::until(
            &format!("{n} config reloads {result}"),
            Duration::from_secs(10),
            || async move {
                let seen = self
                    .metric(http, "edge_config_reloads_total", &[("name", result)])
                    .await?;
                Ok(seen.round() as u64 >= n)
            },
        )
        .await
        .with_context(|| self.log_tail())?;
        Ok(())
    }

    /// `edge_requests_total{route}` summed over its outcomes.
    pub async fn requests(&self, http: &reqwest::Client, route: &str) -> anyhow::Result<u64> {
        let text = crate::metrics::scrape(http, &self.metrics_url()).await?;
        let total = crate::metrics::sample_sum(&text, "edge_requests_total", &[("route", route)]);
        Ok(total.round() as u64)
    }

    /// Rewrites the config file with `options` (same ports, Redis and origins).
    pub fn write_config(&self, options: &EdgeOptions) -> anyhow::Result<()> {
        let text = options.toml(self.port, self.admin, &self.redis_url, &self.origins);
        std::fs::write(self.config_path(), text)?;
        Ok(())
    }

    /// Writes raw text as the config file (to test a broken one).
    pub fn write_raw_config(&self, text: &str) -> anyhow::Result<()> {
        std::fs::write(self.config_path(), text)?;
        Ok(())
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// Sends SIGHUP (reload the config).
    pub fn sighup(&self) -> anyhow::Result<()> {
        let pid = self
            .child
            .as_ref()
            .and_then(Child::id)
            .context("edge not running")?;
        kill(Pid::from_raw(i32::try_from(pid)?), Signal::SIGHUP)?;
        Ok(())
    }
}
