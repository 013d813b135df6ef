//! One `redis-server` of a test cluster: its settings, its process and its dir (`nodes.conf`, the
//! AOF, `redis.log`). It can be killed (SIGKILL, a crash) and started again in the same dir on the
//! same ports, where it rejoins the cluster from its `nodes.conf`. Also the harness's own
//! connection to one node, which adds nothing to the command stats but the command it sends.
//!
//! The binary is `redis-server` from `PATH`, or the path in the `REDIS_SERVER` variable.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{anyhow, Context};
use redis::aio::MultiplexedConnection;
use redis::{
    AsyncConnectionConfig, ConnectionAddr, InfoDict, IntoConnectionInfo, RedisConnectionInfo,
};
use tokio::process::{Child, Command};

use super::topology::View;
use crate::{net, wait};

/// How long a start or restart may take, AOF replay included.
const START_DEADLINE: Duration = Duration::from_secs(20);
/// How long a killed node may take to be reaped.
const REAP_DEADLINE: Duration = Duration::from_secs(10);
/// Port pairs tried by [`NodeProcess::start`] when another process takes a free port first.
const PORT_ATTEMPTS: usize = 3;
/// Log lines quoted in an error.
pub const LOG_TAIL_LINES: usize = 30;

/// How long a primary may be unreachable before the others count it as failed (PFAIL, then FAIL
/// once a majority of primaries agree) and its replica starts an election. Redis's default is
/// 15 s; 1 s makes a failover take two to three seconds, so a test can wait for it. Shorter
/// would risk a failover of a node that is merely slow on a loaded machine.
pub const NODE_TIMEOUT_MS: u32 = 1000;

/// The settings of every node, the same as `./deploy/up` gives its cluster (`deploy/lib.sh`).
/// Besides persistence like the single Redis (AOF, `everysec`, no RDB snapshots):
///
/// - `cluster-replica-validity-factor 0`: by default a replica refuses to take over when it had
///   heard nothing from its primary for longer than node timeout × 10 + `repl-ping-replica-period`
///   (20 s here) before the primary failed, as its data may be old; its shard then stays
///   without a primary. With 0 it always takes over: a shard without a primary stops every sale
///   on it, while writes a replica missed are healed from PostgreSQL by the origins.
/// - `cluster-require-full-coverage no`: with `yes`, every node refuses every command while a
///   single slot has no primary, so one shard's failover would stop the sales on the other two.
/// - `repl-diskless-sync-delay 0`: a primary waits 5 s by default before a full sync, for more
///   replicas to join it; a new or rejoining replica is in sync at once instead.
const SETTINGS: [(&str, &str); 10] = [
    ("bind", "127.0.0.1"),
    ("daemonize", "no"),
    ("cluster-enabled", "yes"),
    ("cluster-config-file", "nodes.conf"),
    ("cluster-replica-validity-factor", "0"),
    ("cluster-require-full-coverage", "no"),
    ("appendonly", "yes"),
    ("appendfsync", "everysec"),
    ("save", ""),
    ("repl-diskless-sync-delay", "0"),
];

/// A node's process and dir. Not killed when dropped: the cluster kills its nodes.
pub struct NodeProcess {
    port: u16,
    /// The cluster bus port, given explicitly: by default it is `port + 10000`, past 65535 for
    /// most ephemeral ports.
    bus_port: u16,
    dir: PathBuf,
    /// `None` after [`NodeProcess::kill`].
    child: Option<Child>,
}

impl NodeProcess {
    pub fn new(dir: PathBuf, (port, bus_port): (u16, u16)) -> Self {
        NodeProcess {
            port,
            bus_port,
            dir,
            child: None,
        }
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
        self.dir.join("redis.log")
    }

    /// The first start, before the cluster exists: when another process took one of the ports
    /// first, tries again on a fresh pair (a node's ports are fixed once it joined).
    pub async fn start(&mut self) -> anyhow::Result<()> {
        let mut attempt = 1;
        loop {
            match self.run().await {
                Ok(()) => return Ok(()),
                Err(error) if attempt < PORT_ATTEMPTS && self.port_was_taken() => {
                    attempt += 1;
                    tracing::debug!(port = self.port, %error, "redis port taken, trying another");
                    (self.port, self.bus_port) = (net::free_port(), net::free_port());
                    for path in [self.log_path(), self.stderr_path()] {
                        remove_if_present(&path)?;
                    }
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// Spawns the node and waits until it has loaded its AOF; kills it if it does not.
    pub async fn run(&mut self) -> anyhow::Result<()> {
        let child = self.spawn()?;
        let child = self.child.insert(child);
        let port = self.port;
        let ready = tokio::select! {
            waited = wait::until("a cluster node to load its data", START_DEADLINE, || loaded(port)) => {
                waited.map(|elapsed| tracing::debug!(port, ?elapsed, "cluster node ready"))
            }
            status = child.wait() => match status {
                Ok(status) => Err(anyhow!("redis-server exited with {status} before it was ready")),
                Err(error) => Err(anyhow!("waiting on redis-server: {error}")),
            },
        };
        ready.map_err(|error| {
            self.kill();
            error.context(format!(
                "cluster node on port {port} did not start\n{}\n{}",
                wait::log_tail(&self.log_path(), LOG_TAIL_LINES),
                wait::log_tail(&self.stderr_path(), LOG_TAIL_LINES),
            ))
        })
    }

    /// SIGKILL, like a crash, and reaps it. Does nothing if it is not running.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            if let Err(error) = wait::kill_and_reap(&mut child, REAP_DEADLINE) {
                tracing::warn!(port = self.port, error = %format!("{error:#}"), "cluster node not reaped");
            }
        }
    }

    fn spawn(&self) -> anyhow::Result<Child> {
        let program = std::env::var_os("REDIS_SERVER").unwrap_or_else(|| "redis-server".into());
        let output = File::options()
            .create(true)
            .append(true)
            .open(self.stderr_path())
            .context("opening the stderr file of a cluster node")?;
        let mut command = Command::new(&program);
        // `dir` first: Redis changes into it as it reads the option, and opens `nodes.conf` there.
        command.arg("--dir").arg(&self.dir);
        command.args(["--port", &self.port.to_string()]);
        command.args(["--cluster-port", &self.bus_port.to_string()]);
        command.args(["--cluster-node-timeout", &NODE_TIMEOUT_MS.to_string()]);
        for (name, value) in SETTINGS {
            command.arg(format!("--{name}")).arg(value);
        }
        command
            .arg("--logfile")
            .arg(self.log_path())
            .stdin(Stdio::null())
            .stdout(output.try_clone()?)
            .stderr(output)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("spawning {}", program.to_string_lossy()))
    }

    fn port_was_taken(&self) -> bool {
        [self.log_path(), self.stderr_path()].iter().any(|path| {
            std::fs::read_to_string(path).is_ok_and(|log| log.contains("Address already in use"))
        })
    }

    /// Where stdout and stderr go: what Redis prints before it opens its log file.
    fn stderr_path(&self) -> PathBuf {
        self.dir.join("redis.stderr")
    }
}

fn remove_if_present(path: &Path) -> anyhow::Result<()> {
    match std::fs::remove_file(path) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
            Err(error).with_context(|| format!("removing {}", path.display()))
        }
        _ => Ok(()),
    }
}

/// A connection for the harness's own commands to the node on `port`: without the
/// `CLIENT SETINFO` handshake, and with generous timeouts for a loaded machine.
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
        .with_context(|| format!("connecting to the cluster node on port {port}"))
}

/// `INFO {section}` of the node on `port`.
pub async fn info(port: u16, section: &str) -> anyhow::Result<InfoDict> {
    let info = redis::cmd("INFO")
        .arg(section)
        .query_async(&mut admin_connection(port).await?)
        .await
        .with_context(|| format!("INFO {section} on port {port}"))?;
    Ok(info)
}

/// `CLUSTER INFO` of the node on `port`.
pub async fn cluster_info(port: u16) -> anyhow::Result<InfoDict> {
    let info = redis::cmd("CLUSTER")
        .arg("INFO")
        .query_async(&mut admin_connection(port).await?)
        .await
        .with_context(|| format!("CLUSTER INFO on port {port}"))?;
    Ok(info)
}

/// `CLUSTER NODES` of the node on `port`: the cluster as it sees it.
pub async fn cluster_nodes(port: u16) -> anyhow::Result<View> {
    let text: String = redis::cmd("CLUSTER")
        .arg("NODES")
        .query_async(&mut admin_connection(port).await?)
        .await
        .with_context(|| format!("CLUSTER NODES on port {port}"))?;
    View::parse(&text).with_context(|| format!("the CLUSTER NODES of port {port}"))
}

/// Loaded means: answers `INFO` and is not loading its AOF any more. (No `PING`: each command
/// of the harness is one more in the node's stats.)
async fn loaded(port: u16) -> anyhow::Result<bool> {
    let persistence = info(port, "persistence").await?;
    Ok(persistence.get::<String>("loading").as_deref() == Some("0"))
}
