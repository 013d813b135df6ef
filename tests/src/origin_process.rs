//! An origin as a real process for one test: its config written into a temp dir (pointing at the
//! test's Redis and PostgreSQL), a free port, its log kept in the temp dir, and a crash point
//! armed through `ORIGIN_CRASH_POINT` when asked. It can be killed and started again on the same
//! port and config, as an SRE restarting a dead origin would.

use std::{
    path::{Path, PathBuf},
    process::{ExitStatus, Stdio},
    time::Duration,
};

use anyhow::Context;
use tempfile::TempDir;
use tokio::process::{Child, Command};

use crate::{net, wait};

/// The payment webhook secret of test origins (and the dev copy of test edges); tests sign the
/// payment service's webhooks with it.
pub const PAYMENT_WEBHOOK_SECRET: &str = "mGsrxHVGTmHgi1tjH+RZvF1GNfuFalw5Ma/Rt9KP6UYclKdI";

/// How long an origin may take to answer `/healthz`.
const START_DEADLINE: Duration = Duration::from_secs(30);

/// Settings a test may change; everything else is the default config.
#[derive(Debug, Clone)]
pub struct OriginOptions {
    pub recovery_timeout_ms: u64,
    pub poll_interval_ms: u64,
    pub lease_ms: u64,
    pub statement_timeout_ms: u64,
    /// `redis.command_timeout_ms`: 5 s for the tests, the shipped 1 s where a test measures how
    /// fast a dead Redis is answered.
    pub redis_timeout_ms: u64,
    pub body_limit_bytes: usize,
    pub max_uid_bytes: usize,
    /// Seconds one extension adds to a hold.
    pub extend_seconds: u32,
    /// `http.connections.max_connections`.
    pub max_connections: usize,
    /// `sales.keys_retention_seconds`.
    pub keys_retention_seconds: u64,
    /// `redis.wait_replicas` (with `redis.wait_timeout_ms` at its default, 100 ms).
    pub wait_replicas: u32,
    /// `ORIGIN_LOG`: debug for the tests (their failures print the log), the shipped `info` for
    /// the benchmark.
    pub log: &'static str,
    /// `[coordinator]`: a dtm server, or (`None`) the embedded coordinator.
    pub dtm: Option<DtmCoordinator>,
}

/// `[coordinator] kind = "dtm"`: the dtm server the origin asks, which calls it back at its own
/// URL.
#[derive(Debug, Clone)]
pub struct DtmCoordinator {
    /// `dtm_url`: dtm's HTTP API.
    pub dtm_url: String,
    /// `timeout_to_fail_seconds` (0: dtm's default).
    pub timeout_to_fail_seconds: u32,
    /// `retry_interval_seconds` (0: dtm's default).
    pub retry_interval_seconds: u32,
}

impl Default for OriginOptions {
    fn default() -> Self {
        Self {
            recovery_timeout_ms: 1000,
            poll_interval_ms: 100,
            lease_ms: 2000,
            statement_timeout_ms: 2000,
            redis_timeout_ms: 5000,
            body_limit_bytes: 4096,
            max_uid_bytes: 128,
            extend_seconds: 300,
            max_connections: 4096,
            keys_retention_seconds: 86_400,
            wait_replicas: 0,
            log: "info,origin=debug",
            dtm: None,
        }
    }
}

pub struct OriginProcess {
    binary: PathBuf,
    port: u16,
    dir: TempDir,
    child: Option<Child>,
    restarts: u32,
    log: &'static str,
    redis_url: String,
    postgres_url: String,
}

impl OriginProcess {
    /// Writes the config and starts `binary serve`, with `crash_point` armed if given.
    pub async fn start(
        binary: &Path,
        redis_url: &str,
        postgres_url: &str,
        options: &OriginOptions,
        crash_point: Option<&str>,
    ) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new().prefix("origin-").tempdir()?;
        let port = net::free_port();
        let config = config(port, redis_url, postgres_url, options);
        std::fs::write(dir.path().join("origin.toml"), config)?;
        let mut origin = Self {
            binary: binary.to_path_buf(),
            port,
            dir,
            child: None,
            restarts: 0,
            log: options.log,
            redis_url: redis_url.to_string(),
            postgres_url: postgres_url.to_string(),
        };
        origin.spawn(crash_point).await?;
        Ok(origin)
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("origin.toml")
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn log_path(&self) -> PathBuf {
        self.dir
            .path()
            .join(format!("origin-{}.log", self.restarts))
    }

    /// The end of the current log, for failure messages.
    pub fn log_tail(&self) -> String {
        wait::log_tail(&self.log_path(), 40)
    }

    /// The whole log of the current run, for tests that look for a line.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    async fn spawn(&mut self, crash_point: Option<&str>) -> anyhow::Result<()> {
        let log = std::fs::File::create(self.log_path())?;
        let mut cmd = Command::new(&self.binary);
        cmd.arg("--config")
            .arg(self.config_path())
            .arg("serve")
            .env("ORIGIN_LOG", self.log)
            .env_remove("ORIGIN_CRASH_POINT")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true);
        if let Some(point) = crash_point {
            cmd.env("ORIGIN_CRASH_POINT", point);
        }
        self.child = Some(
            cmd.spawn()
                .with_context(|| format!("spawn {}", self.binary.display()))?,
        );
        let health = format!("{}/healthz", self.url());
        let client = reqwest::Client::new();
        let ready = wait::until("origin /healthz", START_DEADLINE, || {
            let req = client.get(&health).send();
            async move { Ok(req.await?.status().is_success()) }
        })
        .await;
        ready.with_context(|| format!("origin did not start; log:\n{}", self.log_tail()))?;
        Ok(())
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// Waits for the process to exit by itself (a crash point), up to `deadline`.
    pub async fn wait_exit(&mut self, deadline: Duration) -> anyhow::Result<ExitStatus> {
        let child = self.child.as_mut().context("origin not running")?;
        let status = tokio::time::timeout(deadline, child.wait())
            .await
            .with_context(|| format!("origin still running after {deadline:?}"))??;
        self.child = None;
        Ok(status)
    }

    /// SIGKILL, and reap.
    pub async fn kill(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill().await?;
        }
        Ok(())
    }

    /// Starts the origin again on the same port and config (after a crash or a kill).
    pub async fn restart(&mut self, crash_point: Option<&str>) -> anyhow::Result<()> {
        self.kill().await?;
        self.restarts += 1;
        self.spawn(crash_point).await
    }

    /// Starts the origin again on the same port with its config rewritten for `options` (the
    /// same Redis and PostgreSQL), as an SRE changing a setting would.
    pub async fn restart_with(&mut self, options: &OriginOptions) -> anyhow::Result<()> {
        self.kill().await?;
        let text = config(self.port, &self.redis_url, &self.postgres_url, options);
        std::fs::write(self.config_path(), text)?;
        self.log = options.log;
        self.restarts += 1;
        self.spawn(None).await
    }

    /// Runs `binary --config <this config> <args>` to completion: (exit success, stdout, stderr).
    pub async fn run_command(&self, args: &[&str]) -> anyhow::Result<(bool, String, String)> {
        let (status, stdout, stderr) = self.run_command_status(args).await?;
        Ok((status.success(), stdout, stderr))
    }

    /// [`OriginProcess::run_command`] with the exit status itself.
    pub async fn run_command_status(
        &self,
        args: &[&str],
    ) -> anyhow::Result<(ExitStatus, String, String)> {
        let out = Command::new(&self.binary)
            .arg("--config")
            .arg(self.config_path())
            .args(args)
            .env("ORIGIN_LOG", "warn")
            .env_remove("ORIGIN_CRASH_POINT")
            .env_remove("ORIGIN_CONFIG")
            .stdin(Stdio::null())
            .output()
            .await?;
        Ok((
            out.status,
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ))
    }
}

/// The origin's config file for `options`, listening on `port`, on `redis_url` (see
/// [`redis_table`](crate::redis_server::redis_table)) and `postgres_url`.
fn config(port: u16, redis_url: &str, postgres_url: &str, options: &OriginOptions) -> String {
    format!(
        "[http]\nlisten = \"127.0.0.1:{port}\"\nbody_limit_bytes = {}\nmax_uid_bytes = {}\n\
         [http.connections]\nmax_connections = {}\n\
         {}command_timeout_ms = {}\nwait_replicas = {}\n\
         [sales]\nkeys_retention_seconds = {}\n\
         [postgres]\nurl = \"{postgres_url}\"\nstatement_timeout_ms = {}\n\
         [recovery]\ntimeout_ms = {}\npoll_interval_ms = {}\nlease_ms = {}\nmax_lease_ms = 4000\n\
         [holds]\nextend_seconds = {}\n\
         [payments]\nwebhook_secret = \"{PAYMENT_WEBHOOK_SECRET}\"\n{}",
        options.body_limit_bytes,
        options.max_uid_bytes,
        options.max_connections,
        crate::redis_server::redis_table(redis_url),
        options.redis_timeout_ms,
        options.wait_replicas,
        options.keys_retention_seconds,
        options.statement_timeout_ms,
        options.recovery_timeout_ms,
        options.poll_interval_ms,
        options.lease_ms,
        options.extend_seconds,
        options.dtm.as_ref().map_or_else(String::new, |dtm| format!(
            "[coordinator]\nkind = \"dtm\"\ndtm_url = \"{}\"\ncallback_url = \"http://127.0.0.1:{port}\"\n\
             timeout_to_fail_seconds = {}\nretry_interval_seconds = {}\n",
            dtm.dtm_url, dtm.timeout_to_fail_seconds, dtm.retry_interval_seconds
        )),
    )
}
