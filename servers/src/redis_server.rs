//! A real `redis-server` for one test: a free loopback port, a temp dir holding its AOF and log,
//! append-only persistence with `everysec` fsync like production, and no RDB snapshots. It can be
//! killed (SIGKILL, a crash) and restarted on the same port and dir, so the AOF is replayed, or
//! restarted from an older copy of its AOF or with no data at all (the ways Redis loses writes). Also
//! reads `INFO commandstats`, so tests can count the commands a service sent.
//!
//! The process itself is a [`RedisProcess`]; the binary is `redis-server` from `PATH`, or the
//! path in the `REDIS_SERVER` variable.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use redis::aio::MultiplexedConnection;
use redis::AsyncConnectionConfig;
use tempfile::TempDir;

use crate::net;
use crate::redis_process::{self, RedisProcess};

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
    process: RedisProcess,
    dir: TempDir,
}

/// Persistence as in production: the AOF fsynced every second, no RDB snapshots.
const OPTIONS: [&str; 6] = [
    "--appendonly",
    "yes",
    "--appendfsync",
    "everysec",
    "--save",
    "",
];

impl RedisServer {
    /// Starts a server on a free port in a new temp dir and waits until it answers `PING` and has
    /// finished loading. On failure the error quotes the end of the server's log.
    pub async fn start() -> anyhow::Result<Self> {
        let mut server = Self::in_temp_dir(net::free_port())?;
        server
            .process
            .start(|port, _| *port = net::free_port())
            .await?;
        Ok(server)
    }

    /// Starts a server on the fixed `port` (for a program that cannot be told another, such as
    /// dtm's bench server) in a new temp dir; fails when the port is taken.
    pub async fn start_on(port: u16) -> anyhow::Result<Self> {
        let mut server = Self::in_temp_dir(port)?;
        server.process.run().await?;
        Ok(server)
    }

    /// A server not started yet, on `port` in a new temp dir.
    fn in_temp_dir(port: u16) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("flash-redis-")
            .tempdir()
            .context("creating the temp dir of redis-server")?;
        let options = OPTIONS.map(String::from).to_vec();
        Ok(RedisServer {
            process: RedisProcess::new(dir.path().to_path_buf(), port, options),
            dir,
        })
    }

    /// Starts a server with the same settings on `port` in `dir` (its AOF), everything it
    /// writes appended to `log`, kept running after this program exits (the launcher's single
    /// Redis); waits until it has loaded its data, and gives its pid.
    pub async fn start_kept(dir: &Path, port: u16, log: &Path) -> anyhow::Result<u32> {
        let options = OPTIONS.map(String::from).to_vec();
        let mut process = RedisProcess::kept(dir.to_path_buf(), port, options, log.to_path_buf());
        process.run().await?;
        process
            .detach()
            .context("a redis-server that just started has a pid")
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.process.port()
    }

    /// `redis://127.0.0.1:{port}/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port())
    }

    /// The temp dir holding the AOF (`appendonlydir/`) and `redis.log`.
    pub fn dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    /// The pid of the server process, `None` after [`RedisServer::kill`].
    pub fn pid(&self) -> Option<u32> {
        self.process.pid()
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
        redis_process::info(self.port(), section).await
    }

    /// `INFO commandstats` as command -> calls since start or [`RedisServer::reset_stats`], e.g.
    /// `"evalsha" -> 12`. Subcommands are named like Redis names them: `"config|resetstat"`.
    /// The harness's own commands are counted too (see [`BOOKKEEPING_COMMANDS`]): each call of
    /// this function adds one `info`.
    pub async fn command_stats(&self) -> anyhow::Result<BTreeMap<String, u64>> {
        redis_process::command_stats(self.port()).await
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
        redis_process::reset_stats(self.port()).await
    }

    /// Kills the server with SIGKILL, like a crash, and reaps it. Does nothing if it is not
    /// running. Writes Redis had acknowledged are in the AOF file (page cache) and survive.
    pub fn kill(&mut self) {
        self.process.kill();
    }

    /// Starts the server again on the same port and dir, so it replays its AOF, and waits until it
    /// has loaded it. Kills the running server first, if any.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.kill();
        self.process.run().await
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
        self.process.run().await
    }

    /// Kills the server and starts it again on the same port with no data at all: a node
    /// replaced by an empty one, or restarted without its AOF.
    pub async fn restart_empty(&mut self) -> anyhow::Result<()> {
        self.kill();
        let aof = self.aof_dir();
        if aof.exists() {
            std::fs::remove_dir_all(&aof).with_context(|| format!("removing {}", aof.display()))?;
        }
        self.process.run().await
    }

    fn aof_dir(&self) -> PathBuf {
        self.dir.path().join("appendonlydir")
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
