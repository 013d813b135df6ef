//! One `redis-server` process of a test, a lone server or a cluster's node: spawned in its dir
//! (its `redis.log`, and `redis.stderr` for what Redis prints before it opens its log), awaited
//! until it has loaded its data, killed like a crash and reaped, started again on fresh ports when
//! another process took one first; and the harness's own connection to it, which adds nothing to
//! the command stats but the command it sends.
//!
//! A kept process (the launcher's, see [`crate::kept`]) writes everything to one log given to it
//! and outlives its owner.
//!
//! The binary is `redis-server` from `PATH`, or the path in the `REDIS_SERVER` variable.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{anyhow, Context};
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, ConnectionAddr, IntoConnectionInfo, RedisConnectionInfo};
use tokio::process::{Child, Command};

use crate::wait;

/// How long a start or restart may take, AOF replay included.
const START_DEADLINE: Duration = Duration::from_secs(20);
/// How long a killed server may take to be reaped.
const REAP_DEADLINE: Duration = Duration::from_secs(10);
/// Starts tried by [`RedisProcess::start`] when another process takes a free port first.
const PORT_ATTEMPTS: usize = 3;
/// Log lines quoted in an error.
pub const LOG_TAIL_LINES: usize = 30;

/// A `redis-server` process and its dir. Not killed when dropped: its owner kills it.
pub struct RedisProcess {
    port: u16,
    dir: PathBuf,
    /// The options after `--dir` and `--port`.
    options: Vec<String>,
    /// `None` after [`RedisProcess::kill`] or [`RedisProcess::detach`].
    child: Option<Child>,
    /// Kept: its one log (Redis's own and its output), and left running by [`Self::detach`].
    kept_log: Option<PathBuf>,
}

impl RedisProcess {
    /// A server to run on `port` in `dir` with `options` (`["--appendonly", "yes", ...]`).
    pub fn new(dir: PathBuf, port: u16, options: Vec<String>) -> Self {
        Self {
            port,
            dir,
            options,
            child: None,
            kept_log: None,
        }
    }

    /// A server kept running after its owner exits (see [`crate::kept`]), writing everything to
    /// `log`.
    pub fn kept(dir: PathBuf, port: u16, options: Vec<String>, log: PathBuf) -> Self {
        Self {
            kept_log: Some(log),
            ..Self::new(dir, port, options)
        }
    }

    /// Lets go of a running kept server: its pid. It runs on after this value is gone.
    pub fn detach(&mut self) -> Option<u32> {
        self.child.take().and_then(|child| child.id())
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    pub fn log_path(&self) -> PathBuf {
        self.kept_log
            .clone()
            .unwrap_or_else(|| self.dir.join("redis.log"))
    }

    /// The first start: when another process took a port first, `repick` chooses fresh ports
    /// (it gets the port and the options to change) and the start is tried again.
    pub async fn start(
        &mut self,
        mut repick: impl FnMut(&mut u16, &mut Vec<String>),
    ) -> anyhow::Result<()> {
        let mut attempt = 1;
        loop {
            match self.run().await {
                Ok(()) => return Ok(()),
                Err(error) if attempt < PORT_ATTEMPTS && self.port_was_taken() => {
                    attempt += 1;
                    tracing::debug!(port = self.port, %error, "redis port taken, trying another");
                    repick(&mut self.port, &mut self.options);
                    // The next attempt's log must not contain this attempt's bind error.
                    for path in [self.log_path(), self.stderr_path()] {
                        remove_if_present(&path)?;
                    }
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// Spawns the server and waits until it has loaded its data; kills it if it does not.
    pub async fn run(&mut self) -> anyhow::Result<()> {
        let child = self.spawn()?;
        let child = self.child.insert(child);
        let port = self.port;
        let ready = tokio::select! {
            waited = wait::until("redis-server to load its data", START_DEADLINE, || loaded(port)) => {
                waited.map(|elapsed| tracing::debug!(port, ?elapsed, "redis-server ready"))
            }
            status = child.wait() => match status {
                Ok(status) => Err(anyhow!("redis-server exited with {status} before it was ready")),
                Err(error) => Err(anyhow!("waiting on redis-server: {error}")),
            },
        };
        ready.map_err(|error| {
            self.kill();
            error.context(format!(
                "redis-server on port {port} did not start\n{}\n{}",
                wait::log_tail(&self.log_path(), LOG_TAIL_LINES),
                wait::log_tail(&self.stderr_path(), LOG_TAIL_LINES),
            ))
        })
    }

    /// SIGKILL, like a crash, and reaps it. Does nothing if it is not running. Writes Redis had
    /// acknowledged are in the AOF file (page cache) and survive.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            if let Err(error) = wait::kill_and_reap(&mut child, REAP_DEADLINE) {
                tracing::warn!(port = self.port, error = %format!("{error:#}"), "redis-server not reaped");
            }
        }
    }

    fn spawn(&self) -> anyhow::Result<Child> {
        let program = std::env::var_os("REDIS_SERVER").unwrap_or_else(|| "redis-server".into());
        // `--dir` first: Redis changes into it as it reads the option, and opens the files named
        // by the later ones (a cluster's `nodes.conf`) there.
        let mut command = Command::new(&program);
        command
            .arg("--dir")
            .arg(&self.dir)
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1", "--daemonize", "no"])
            .args(&self.options)
            .arg("--logfile")
            .arg(self.log_path());
        match &self.kept_log {
            Some(log) => crate::kept::keep(&mut command, log)?,
            None => {
                let output = File::options()
                    .create(true)
                    .append(true)
                    .open(self.stderr_path())
                    .context("opening the stderr file of redis-server")?;
                command
                    .stdin(Stdio::null())
                    .stdout(output.try_clone()?)
                    .stderr(output)
                    .kill_on_drop(true);
            }
        }
        command
            .spawn()
            .with_context(|| format!("spawning {}", program.to_string_lossy()))
    }

    /// Whether the last run failed because another process had bound a port.
    fn port_was_taken(&self) -> bool {
        [self.log_path(), self.stderr_path()].iter().any(|path| {
            std::fs::read_to_string(path).is_ok_and(|log| log.contains("Address already in use"))
        })
    }

    fn stderr_path(&self) -> PathBuf {
        self.kept_log
            .clone()
            .unwrap_or_else(|| self.dir.join("redis.stderr"))
    }
}

pub fn remove_if_present(path: &Path) -> anyhow::Result<()> {
    match std::fs::remove_file(path) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
            Err(error).with_context(|| format!("removing {}", path.display()))
        }
        _ => Ok(()),
    }
}

/// A connection for the harness's own commands to the server on `port`: without the
/// `CLIENT SETINFO` handshake, so it adds nothing to the command stats but the command it sends,
/// and with generous timeouts for a loaded machine.
pub async fn admin_connection(port: u16) -> anyhow::Result<MultiplexedConnection> {
    let info = ConnectionAddr::Tcp("127.0.0.1".into(), port)
        .into_connection_info()?
        .set_redis_settings(RedisConnectionInfo::default().set_skip_set_lib_name());
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(Duration::from_secs(10)));
    redis::Client::open(info)?
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .with_context(|| format!("connecting to redis on port {port}"))
}

/// `INFO {section}` of the server on `port` as key -> value.
pub async fn info(port: u16, section: &str) -> anyhow::Result<BTreeMap<String, String>> {
    let text: String = redis::cmd("INFO")
        .arg(section)
        .query_async(&mut admin_connection(port).await?)
        .await
        .with_context(|| format!("INFO {section} on port {port}"))?;
    Ok(parse_info(&text))
}

/// The `key:value` lines of an `INFO` answer, comment and blank lines left out.
pub fn parse_info(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .filter_map(|line| line.split_once(':'))
        .map(|(key, value)| (key.to_owned(), value.to_owned()))
        .collect()
}

/// `INFO commandstats` of the server on `port` as command -> calls since its start or
/// [`reset_stats`], e.g. `"evalsha" -> 12`. Subcommands are named like Redis names them:
/// `"config|resetstat"`. Each call adds one `info` of its own.
pub async fn command_stats(port: u16) -> anyhow::Result<BTreeMap<String, u64>> {
    let text: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut admin_connection(port).await?)
        .await
        .with_context(|| format!("INFO commandstats on port {port}"))?;
    parse_command_stats(&text)
}

/// `CONFIG RESETSTAT` on the server on `port`: zeroes its command stats.
pub async fn reset_stats(port: u16) -> anyhow::Result<()> {
    let () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query_async(&mut admin_connection(port).await?)
        .await
        .with_context(|| format!("CONFIG RESETSTAT on port {port}"))?;
    Ok(())
}

/// Parses lines like `cmdstat_evalsha:calls=12,usec=340,usec_per_call=28.33,...`.
fn parse_command_stats(text: &str) -> anyhow::Result<BTreeMap<String, u64>> {
    let mut stats = BTreeMap::new();
    for (key, value) in parse_info(text) {
        let Some(command) = key.strip_prefix("cmdstat_") else {
            continue;
        };
        let calls = value
            .split(',')
            .find_map(|field| field.strip_prefix("calls="))
            .with_context(|| format!("no calls= in commandstats line {key}:{value}"))?;
        let calls = calls
            .parse()
            .with_context(|| format!("bad calls= in commandstats line {key}:{value}"))?;
        stats.insert(command.to_ascii_lowercase(), calls);
    }
    Ok(stats)
}

/// Loaded means: answers `INFO` and is not loading its AOF any more. (No `PING`: each command
/// of the harness is one more in the server's stats.)
async fn loaded(port: u16) -> anyhow::Result<bool> {
    let persistence = info(port, "persistence").await?;
    Ok(persistence.get("loading").map(String::as_str) == Some("0"))
}

#[cfg(test)]
mod tests {
    use super::parse_command_stats;

    fn check(info: &str, expected: &[(&str, u64)]) {
        let parsed = parse_command_stats(info).map_err(|e| format!("{e:#}"));
        let expected = expected
            .iter()
            .map(|(name, calls)| ((*name).to_owned(), *calls))
            .collect();
        assert_eq!(parsed, Ok(expected), "input:\n{info}");
    }

    #[test]
    fn command_stats_are_parsed() {
        check("# Commandstats\r\n", &[]);
        check(
            "# Commandstats\r\n\
             cmdstat_evalsha:calls=12,usec=340,usec_per_call=28.33,rejected_calls=0,failed_calls=1\r\n\
             cmdstat_config|resetstat:calls=1,usec=5,usec_per_call=5.00,rejected_calls=0,failed_calls=0\r\n\
             cmdstat_SET:calls=3,usec=9,usec_per_call=3.00,rejected_calls=0,failed_calls=0\r\n",
            &[("config|resetstat", 1), ("evalsha", 12), ("set", 3)],
        );
    }

    #[test]
    fn a_line_without_calls_is_an_error() {
        assert!(parse_command_stats("cmdstat_get:usec=3\r\n").is_err());
    }
}
