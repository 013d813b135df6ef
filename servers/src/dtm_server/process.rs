//! One process of dtm's (the server or its bench server): the binary found by its variable or on
//! `PATH`, configured by environment only (dtm reads every setting of its config from variables
//! named after it, e.g. `STORE_REDIS_PREFIX`), its output in one log, awaited until its HTTP API
//! answers and its gRPC port accepts, killed like a crash and reaped, started again on fresh
//! ports when another process took one first.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{anyhow, Context};
use tokio::process::{Child, Command};

use crate::{kept, wait};

/// How long dtm may take to answer after it was started (it waits for its store first).
const START_DEADLINE: Duration = Duration::from_secs(20);
/// How long a killed process may take to be reaped.
const REAP_DEADLINE: Duration = Duration::from_secs(10);
/// Log lines quoted in an error.
const LOG_TAIL_LINES: usize = 30;
/// What Go's net package says of a port another process holds.
const PORT_TAKEN: &str = "address already in use";

/// The binary in the variable `var` (`DTM_BIN`, `DTM_BENCH_BIN`: `./deploy/test` sets them to
/// what it installed), else `name` found on `PATH`; an error says how to install it.
pub fn binary(var: &str, name: &str) -> anyhow::Result<PathBuf> {
    if let Some(bin) = std::env::var_os(var) {
        return Ok(bin.into());
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(name))
        .find(|path| path.is_file())
        .with_context(|| {
            format!(
                "{name} (dtm v1.19.0) not found: set {var}, put it on PATH, or run ./deploy/test, \
                 which installs it with Go"
            )
        })
}

/// A dtm process to run: `binary args`, with `env` and nothing else of this process's
/// environment (a stray `HTTP_PORT` or `LOG_LEVEL` would change dtm's config).
#[derive(Debug, Clone)]
pub struct Launch {
    pub binary: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub log: PathBuf,
}

impl Launch {
    fn command(&self) -> Command {
        let mut command = Command::new(&self.binary);
        command.args(&self.args).env_clear().envs(self.env.clone());
        command
    }

    /// Spawns it for a test: output appended to its log, killed when its `Child` is dropped.
    pub fn spawn(&self) -> anyhow::Result<Child> {
        let output = File::options()
            .create(true)
            .append(true)
            .open(&self.log)
            .with_context(|| format!("opening {}", self.log.display()))?;
        self.command()
            .stdin(Stdio::null())
            .stdout(output.try_clone()?)
            .stderr(output)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("spawning {}", self.binary.display()))
    }

    /// Spawns it kept running after this program exits (see [`crate::kept`]).
    pub fn spawn_kept(&self) -> anyhow::Result<Child> {
        let mut command = self.command();
        kept::keep(&mut command, &self.log)?;
        command
            .spawn()
            .with_context(|| format!("spawning {}", self.binary.display()))
    }

    /// Whether the last run failed because another process had bound a port.
    pub fn port_was_taken(&self) -> bool {
        std::fs::read_to_string(&self.log).is_ok_and(|log| log.contains(PORT_TAKEN))
    }
}

/// Waits until `child` is up: `GET {http_probe}` answers 200 and each of `ports` (its gRPC
/// port, ...) accepts a connection. A child that exits first, or is not up within the deadline,
/// is killed; the error quotes the end of `log`.
pub async fn until_up(
    what: &str,
    child: &mut Child,
    http_probe: &str,
    ports: &[u16],
    log: &Path,
) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()?;
    let up = || {
        let request = client.get(http_probe).send();
        async move {
            if request.await?.status() != reqwest::StatusCode::OK {
                return Ok(false);
            }
            for &port in ports {
                tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
            }
            Ok(true)
        }
    };
    let awaited = format!("{what} to answer {http_probe}");
    let ready = tokio::select! {
        waited = wait::until(&awaited, START_DEADLINE, up) => {
            waited.map(|_| ())
        }
        status = child.wait() => match status {
            Ok(status) => Err(anyhow!("{what} exited with {status} before it answered")),
            Err(error) => Err(anyhow!("waiting on {what}: {error}")),
        },
    };
    // dtm only logs a failed bind of its HTTP port and runs on: what answered may be another.
    let taken = std::fs::read_to_string(log).is_ok_and(|text| text.contains(PORT_TAKEN));
    let ready = ready.and_then(|()| match taken {
        true => Err(anyhow!("{what} found a port taken")),
        false => Ok(()),
    });
    ready.map_err(|error| {
        kill(child);
        error.context(format!(
            "{what} did not start\n{}",
            wait::log_tail(log, LOG_TAIL_LINES)
        ))
    })
}

/// SIGKILL, like a crash, and reaps it.
pub fn kill(child: &mut Child) {
    if let Err(error) = wait::kill_and_reap(child, REAP_DEADLINE) {
        tracing::warn!(error = %format!("{error:#}"), "dtm not reaped");
    }
}
