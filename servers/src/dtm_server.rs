//! A real dtm server (v1.19.0, the coordinator of two-phase messages) for one test: its store in
//! a given Redis under a key prefix of its own (`STORE_REDIS_PREFIX`), its HTTP API and its gRPC
//! port (the only two ports it opens: JSON-RPC is served on the HTTP port, metrics at
//! `/api/metrics`) on free loopback ports, its log in a temp dir. It can be killed (SIGKILL, a
//! crash) and started again on the same ports and store, and several can share one Redis.
//!
//! dtm's flash-sale bench server is [`DtmBench`]; the launcher's dtm (`./deploy/up`), kept
//! running, is [`start_kept`].
//!
//! The binary is the path in `DTM_BIN` (`./deploy/test` installs it), else `dtm` on `PATH`.

use std::path::{Path, PathBuf};

use anyhow::Context;
use tempfile::TempDir;
use tokio::process::Child;

use crate::kept::PidFile;
use crate::net;

mod bench;
mod process;

pub use bench::DtmBench;
use process::Launch;

/// Starts tried when another process takes a free port first.
const PORT_ATTEMPTS: usize = 3;

/// What a dtm server is told, beyond its ports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DtmSettings {
    /// The Redis of its store, on 127.0.0.1.
    pub store_port: u16,
    /// The prefix of every key of its store (`STORE_REDIS_PREFIX`; dtm's default is `{a}`).
    pub redis_prefix: String,
    /// How often, in seconds, it looks for messages due for a back-check or a retry
    /// (`TRANS_CRON_INTERVAL`; dtm's default is 3).
    pub cron_interval_secs: u32,
}

impl DtmSettings {
    /// dtm's defaults, but a back-check sweep every second, so tests wait less.
    pub fn new(store_port: u16, redis_prefix: &str) -> Self {
        Self {
            store_port,
            redis_prefix: redis_prefix.to_owned(),
            cron_interval_secs: 1,
        }
    }

    fn env(&self, http_port: u16, grpc_port: u16) -> Vec<(String, String)> {
        [
            ("STORE_DRIVER", "redis".to_owned()),
            ("STORE_HOST", "127.0.0.1".to_owned()),
            ("STORE_PORT", self.store_port.to_string()),
            ("STORE_REDIS_PREFIX", self.redis_prefix.clone()),
            ("TRANS_CRON_INTERVAL", self.cron_interval_secs.to_string()),
            ("HTTP_PORT", http_port.to_string()),
            ("GRPC_PORT", grpc_port.to_string()),
        ]
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value))
        .collect()
    }

    /// The same settings as a config file for `dtm -c` (YAML; this JSON is YAML too), for a kept
    /// dtm: its command line then names its state folder, so its pid file can be checked.
    fn config_file(&self, http_port: u16, grpc_port: u16) -> String {
        serde_json::json!({
            "Store": {
                "Driver": "redis",
                "Host": "127.0.0.1",
                "Port": self.store_port,
                "RedisPrefix": self.redis_prefix,
            },
            "TransCronInterval": self.cron_interval_secs,
            "HttpPort": http_port,
            "GrpcPort": grpc_port,
        })
        .to_string()
    }
}

/// Whether both of dtm's binaries (the server and its bench server) can be found; the error says
/// how to install the missing one.
pub fn installed() -> anyhow::Result<()> {
    process::binary("DTM_BIN", "dtm")?;
    process::binary("DTM_BENCH_BIN", "dtm-bench")?;
    Ok(())
}

/// `http://127.0.0.1:{http_port}/api/dtmsvr`: where dtm's HTTP API is.
pub fn api_url(http_port: u16) -> String {
    format!("http://127.0.0.1:{http_port}/api/dtmsvr")
}

/// A running dtm server, killed and reaped when dropped; its temp dir (its log) goes with it.
pub struct DtmServer {
    settings: DtmSettings,
    http_port: u16,
    grpc_port: u16,
    dir: TempDir,
    child: Option<Child>,
}

impl DtmServer {
    /// Starts a server with `settings` on free ports in a new temp dir and waits until its API
    /// answers (it connects to its store first). On failure the error quotes the end of its log.
    pub async fn start(settings: DtmSettings) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("flash-dtm-")
            .tempdir()
            .context("creating the temp dir of dtm")?;
        let mut server = Self {
            settings,
            http_port: net::free_port(),
            grpc_port: net::free_port(),
            dir,
            child: None,
        };
        let mut attempt = 1;
        loop {
            match server.run().await {
                Ok(()) => return Ok(server),
                Err(error) if attempt < PORT_ATTEMPTS && server.launch()?.port_was_taken() => {
                    attempt += 1;
                    tracing::debug!(%error, "dtm port taken, trying others");
                    server.http_port = net::free_port();
                    server.grpc_port = net::free_port();
                    std::fs::write(server.log_path(), "")?;
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// `http://127.0.0.1:{port}/api/dtmsvr`: prepare, submit, abort, query, newGid, ...
    pub fn url(&self) -> String {
        api_url(self.http_port)
    }

    pub fn http_port(&self) -> u16 {
        self.http_port
    }

    pub fn grpc_port(&self) -> u16 {
        self.grpc_port
    }

    pub fn settings(&self) -> &DtmSettings {
        &self.settings
    }

    /// The pid of the server process, `None` after [`DtmServer::kill`].
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// dtm's log (its stdout and stderr).
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("dtm.log")
    }

    /// The text of its log (empty when unreadable).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Kills the server with SIGKILL, like a crash, and reaps it. Does nothing if it is not
    /// running. What it had written to its store stays there.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            process::kill(&mut child);
        }
    }

    /// Starts the server again on the same ports and store and waits until it answers. Kills the
    /// running server first, if any.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.kill();
        self.run().await
    }

    fn launch(&self) -> anyhow::Result<Launch> {
        Ok(Launch {
            binary: process::binary("DTM_BIN", "dtm")?,
            args: Vec::new(),
            env: self.settings.env(self.http_port, self.grpc_port),
            log: self.log_path(),
        })
    }

    async fn run(&mut self) -> anyhow::Result<()> {
        let launch = self.launch()?;
        let child = self.child.insert(launch.spawn()?);
        let probe = format!("{}/newGid", api_url(self.http_port));
        process::until_up("dtm", child, &probe, &[self.grpc_port], &launch.log).await
    }
}

impl Drop for DtmServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Where a kept dtm runs: its ports, its config file (written by [`start_kept`]) and its log.
#[derive(Debug, Clone, Copy)]
pub struct KeptDtm<'a> {
    pub http_port: u16,
    pub grpc_port: u16,
    pub config: &'a Path,
    pub log: &'a Path,
}

/// Starts a dtm server with `settings` where `kept` says, its settings written to `kept.config`
/// (`dtm -c` reads it), everything it writes appended to `kept.log`, kept running after this
/// program exits (the launcher's dtm), its pid recorded in `pid_file` at once; waits until its
/// API answers, and gives its pid.
pub async fn start_kept(
    settings: &DtmSettings,
    kept: KeptDtm<'_>,
    pid_file: &PidFile,
) -> anyhow::Result<u32> {
    let KeptDtm {
        http_port,
        grpc_port,
        config,
        log,
    } = kept;
    std::fs::write(config, settings.config_file(http_port, grpc_port))
        .with_context(|| format!("writing {}", config.display()))?;
    let launch = Launch {
        binary: process::binary("DTM_BIN", "dtm")?,
        args: vec!["-c".to_owned(), config.display().to_string()],
        env: Vec::new(),
        log: log.to_path_buf(),
    };
    let mut child = launch.spawn_kept()?;
    let pid = child.id().context("a child just spawned has a pid")?;
    pid_file.write(pid)?;
    let probe = format!("{}/newGid", api_url(http_port));
    process::until_up("dtm", &mut child, &probe, &[grpc_port], log).await?;
    Ok(pid)
}
