//! A real `redis-server` for one test: a free loopback port, a temp dir holding its AOF and log,
//! append-only persistence with `everysec` fsync like production, and no RDB snapshots. It can be
//! killed (SIGKILL, a crash) and restarted on the same port and dir, so the AOF is replayed, or
//! restarted from an older copy of its AOF or with no data at all (the ways Redis loses writes). Also
//! reads `INFO commandstats`, so tests can count the commands a service sent.
//!
//! The binary is `redis-server` from `PATH`, or the path in the `REDIS_SERVER` variable.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, ConnectionAddr, IntoConnectionInfo, RedisConnectionInfo};
use tempfile::TempDir;
use tokio::process::{Child, Command};

use crate::{net, wait};

/// How long a start or restart may take, AOF replay included.
const START_DEADLINE: Duration = Duration::from_secs(20);
/// How long a killed server may take to be reaped.
const REAP_DEADLINE: Duration = Duration::from_secs(10);
/// Ports tried by [`RedisServer::start`] when another process takes the free port first.
const PORT_ATTEMPTS: usize = 3;
/// Log lines quoted in an error.
const LOG_TAIL_LINES: usize = 30;
/// Commands [`RedisServer::total_calls`] leaves out: the harness's own `INFO` and
/// `CONFIG RESETSTAT`, and the `CLIENT SETINFO` handshake redis-rs sends on every new connection.
pub const BOOKKEEPING_COMMANDS: [&str; 3] = ["info", "config|resetstat", "client|setinfo"];

/// The start of a service's `[redis]` table for `target`: a url (`redis://…`: one server), or
/// `cluster:` and the comma-separated urls of seed nodes (a Redis Cluster).
pub fn redis_table(target: &str) -> String {
    match target.strip_prefix("cluster:") {
        Some(seeds) => {
            let nodes = seeds
                .split(',')
                .map(|node| format!("\"{node}\""))
                .collect::<Vec<_>>()
                .join(", ");
            format!("[redis]\nmode = \"cluster\"\nnodes = [{nodes}]\n")
        }
        None => format!("[redis]\nmode = \"single\"\nurl = \"{target}\"\n"),
    }
}

/// A running `redis-server`, killed and reaped when dropped; its temp dir goes with it.
pub struct RedisServer {
    port: u16,
    /// `None` after [`RedisServer::kill`].
    child: Option<Child>,
    dir: TempDir,
}

impl RedisServer {
    /// Starts a server on a free port in a new temp dir and waits until it answers `PING` and has
    /// finished loading. On failure the error quotes the end of the server's log.
    pub async fn start() -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("flash-redis-")
            .tempdir()
            .context("creating the temp dir of redis-server")?;
        let mut server = RedisServer {
            port: net::free_port(),
            child: None,
            dir,
        };
        let mut attempt = 1;
        loop {
            match server.run().await {
                Ok(()) => return Ok(server),
                Err(error) if attempt < PORT_ATTEMPTS && server.port_was_taken() => {
                    attempt += 1;
                    tracing::debug!(port = server.port, %error, "redis port taken, trying another");
                    server.port = net::free_port();
                    // The next attempt's log must not contain this attempt's bind error.
                    for path in [server.log_path(), server.stderr_path()] {
                        remove_if_present(&path)?;
                    }
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:{port}/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// The temp dir holding the AOF (`appendonlydir/`) and `redis.log`.
    pub fn dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    /// The pid of the server process, `None` after [`RedisServer::kill`].
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// A new connection as a service would open it (with the `CLIENT SETINFO` handshake), but
    /// with a 10 s response timeout instead of redis-rs' 500 ms, so a slow machine does not
    /// fail a test.
    pub async fn connection(&self) -> anyhow::Result<MultiplexedConnection> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(5)))
            .set_response_timeout(Some(Duration::from_secs(10)));
        redis::Client::open(self.url())?
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .with_context(|| format!("connecting to redis at {}", self.url()))
    }

    /// The services' Redis handle on this server, commands timing out after `timeout`.
    pub async fn handle(&self, timeout: Duration) -> anyhow::Result<redis_layer::Redis> {
        let config = redis_layer::Config {
            url: self.url(),
            command_timeout_ms: u64::try_from(timeout.as_millis())?,
            ..redis_layer::Config::default()
        };
        Ok(redis_layer::Redis::connect(&config).await?)
    }

    /// `INFO {section}` as key -> value, comment and blank lines left out.
    pub async fn info(&self, section: &str) -> anyhow::Result<BTreeMap<String, String>> {
        info(self.port, section).await
    }

    /// `INFO commandstats` as command -> calls since start or [`RedisServer::reset_stats`], e.g.
    /// `"evalsha" -> 12`. Subcommands are named like Redis names them: `"config|resetstat"`.
    /// The harness's own commands are counted too (see [`BOOKKEEPING_COMMANDS`]): each call of
    /// this function adds one `info`.
    pub async fn command_stats(&self) -> anyhow::Result<BTreeMap<String, u64>> {
        let text: String = redis::cmd("INFO")
            .arg("commandstats")
            .query_async(&mut admin_connection(self.port).await?)
            .await?;
        parse_command_stats(&text)
    }

    /// The calls of all commands but the [`BOOKKEEPING_COMMANDS`]: zero after
    /// [`RedisServer::reset_stats`] means no one sent Redis anything since.
    pub async fn total_calls(&self) -> anyhow::Result<u64> {
        let stats = self.command_stats().await?;
        Ok(stats
            .iter()
            .filter(|(name, _)| !BOOKKEEPING_COMMANDS.contains(&name.as_str()))
            .map(|(_, calls)| calls)
            .sum())
    }

    /// `CONFIG RESETSTAT`: zeroes the command stats.
    pub async fn reset_stats(&self) -> anyhow::Result<()> {
        let () = redis::cmd("CONFIG")
            .arg("RESETSTAT")
            .query_async(&mut admin_connection(self.port).await?)
            .await?;
        Ok(())
    }

    /// Kills the server with SIGKILL, like a crash, and reaps it. Does nothing if it is not
    /// running. Writes Redis had acknowledged are in the AOF file (page cache) and survive.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            if let Err(error) = wait::kill_and_reap(&mut child, REAP_DEADLINE) {
                tracing::warn!(port = self.port, error = %format!("{error:#}"), "redis-server not reaped");
            }
        }
    }

    /// Starts the server again on the same port and dir, so it replays its AOF, and waits until it
    /// has loaded it. Kills the running server first, if any.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.kill();
        self.run().await
    }

    /// A copy of the AOF as it is on disk now (the running server keeps appending to its own):
    /// starting from it later is a Redis that lost every write made since, as a restart from an
    /// older backup or a failover to a lagging replica is.
    pub fn copy_aof(&self) -> anyhow::Result<AofCopy> {
        let copy = tempfile::Builder::new()
            .prefix("flash-redis-aof-")
            .tempdir()
            .context("creating the temp dir of an AOF copy")?;
        copy_dir(&self.aof_dir(), copy.path())?;
        Ok(AofCopy(copy))
    }

    /// Kills the server and starts it again on the same port from `copy` (see
    /// [`Self::copy_aof`]), waiting until it has loaded it.
    pub async fn restart_from(&mut self, copy: &AofCopy) -> anyhow::Result<()> {
        self.kill();
        let aof = self.aof_dir();
        if aof.exists() {
            std::fs::remove_dir_all(&aof).with_context(|| format!("removing {}", aof.display()))?;
        }
        std::fs::create_dir(&aof).with_context(|| format!("creating {}", aof.display()))?;
        copy_dir(copy.0.path(), &aof)?;
        self.run().await
    }

    /// Kills the server and starts it again on the same port with no data at all: a node
    /// replaced by an empty one, or restarted without its AOF.
    pub async fn restart_empty(&mut self) -> anyhow::Result<()> {
        self.kill();
        let aof = self.aof_dir();
        if aof.exists() {
            std::fs::remove_dir_all(&aof).with_context(|| format!("removing {}", aof.display()))?;
        }
        self.run().await
    }

    fn aof_dir(&self) -> PathBuf {
        self.dir.path().join("appendonlydir")
    }

    /// Spawns the server and waits until it is ready; kills it if it is not.
    async fn run(&mut self) -> anyhow::Result<()> {
        let child = self.spawn()?;
        let child = self.child.insert(child);
        let port = self.port;
        let ready = tokio::select! {
            waited = wait::until("redis-server to answer PING", START_DEADLINE, || ready(port)) => {
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

    fn spawn(&self) -> anyhow::Result<Child> {
        let program = std::env::var_os("REDIS_SERVER").unwrap_or_else(|| "redis-server".into());
        let output = File::options()
            .create(true)
            .append(true)
            .open(self.stderr_path())
            .context("opening the stderr file of redis-server")?;
        Command::new(&program)
            .arg("--port")
            .arg(self.port.to_string())
            .args(["--bind", "127.0.0.1", "--dir"])
            .arg(self.dir.path())
            .args(["--appendonly", "yes", "--appendfsync", "everysec"])
            .args(["--save", "", "--daemonize", "no", "--logfile"])
            .arg(self.log_path())
            .stdin(Stdio::null())
            .stdout(output.try_clone()?)
            .stderr(output)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("spawning {}", program.to_string_lossy()))
    }

    /// Whether the last run failed because another process had bound the port.
    fn port_was_taken(&self) -> bool {
        [self.log_path(), self.stderr_path()].iter().any(|path| {
            std::fs::read_to_string(path).is_ok_and(|log| log.contains("Address already in use"))
        })
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("redis.log")
    }

    /// Where stdout and stderr go: what Redis prints before it opens its log file.
    fn stderr_path(&self) -> PathBuf {
        self.dir.path().join("redis.stderr")
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The files of an AOF directory at one moment ([`RedisServer::copy_aof`]); removed when dropped.
pub struct AofCopy(TempDir);

/// Copies the files of `from` (an AOF directory has no subdirectories) into `to`.
fn copy_dir(from: &Path, to: &Path) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let entry = entry?;
        std::fs::copy(entry.path(), to.join(entry.file_name()))
            .with_context(|| format!("copying {}", entry.path().display()))?;
    }
    Ok(())
}

fn remove_if_present(path: &Path) -> anyhow::Result<()> {
    match std::fs::remove_file(path) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
            Err(error).with_context(|| format!("removing {}", path.display()))
        }
        _ => Ok(()),
    }
}

/// A connection for the harness's own commands: without the `CLIENT SETINFO` handshake, so it
/// adds nothing to the command stats but the command it sends.
async fn admin_connection(port: u16) -> anyhow::Result<MultiplexedConnection> {
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

/// Ready means: answers `PING` and is not loading its AOF any more.
async fn ready(port: u16) -> anyhow::Result<bool> {
    let mut connection = admin_connection(port).await?;
    let pong: String = redis::cmd("PING").query_async(&mut connection).await?;
    if pong != "PONG" {
        bail!("PING answered {pong:?}");
    }
    let persistence = info(port, "persistence").await?;
    Ok(persistence.get("loading").map(String::as_str) == Some("0"))
}

async fn info(port: u16, section: &str) -> anyhow::Result<BTreeMap<String, String>> {
    let text: String = redis::cmd("INFO")
        .arg(section)
        .query_async(&mut admin_connection(port).await?)
        .await?;
    Ok(parse_info(&text))
}

fn parse_info(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .filter_map(|line| line.split_once(':'))
        .map(|(key, value)| (key.to_owned(), value.to_owned()))
        .collect()
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
