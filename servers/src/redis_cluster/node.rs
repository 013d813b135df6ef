//! One `redis-server` of a test cluster: its settings, its process (a [`RedisProcess`]) and its
//! dir (`nodes.conf`, the AOF, `redis.log`). It can be killed (SIGKILL, a crash) and started again
//! in the same dir on the same ports, where it rejoins the cluster from its `nodes.conf`. Also the
//! harness's questions to one node (`INFO`, `CLUSTER INFO`, `CLUSTER NODES`).

use std::path::PathBuf;

use anyhow::Context;
use redis::InfoDict;

use super::topology::View;
use crate::net;
use crate::redis_process::{admin_connection, RedisProcess};

/// How long a primary may be unreachable before the others count it as failed (PFAIL, then FAIL
/// once a majority of primaries agree) and its replica starts an election. Redis's default is
/// 15 s; 1 s makes a failover take two to three seconds, so a test can wait for it. Shorter
/// would risk a failover of a node that is merely slow on a loaded machine.
pub const NODE_TIMEOUT_MS: u32 = 1000;

/// The settings of every node, the tests' and the launcher's (`./deploy/up`).
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
const SETTINGS: [(&str, &str); 8] = [
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
    process: RedisProcess,
}

/// A node's options: its cluster bus port (given explicitly: by default it is `port + 10000`,
/// past 65535 for most ephemeral ports), the node timeout and [`SETTINGS`].
fn options(bus_port: u16) -> Vec<String> {
    let mut options = vec![
        "--cluster-port".to_string(),
        bus_port.to_string(),
        "--cluster-node-timeout".to_string(),
        NODE_TIMEOUT_MS.to_string(),
    ];
    for (name, value) in SETTINGS {
        options.push(format!("--{name}"));
        options.push(value.to_string());
    }
    options
}

impl NodeProcess {
    pub fn new(dir: PathBuf, (port, bus_port): (u16, u16)) -> Self {
        NodeProcess {
            process: RedisProcess::new(dir, port, options(bus_port)),
        }
    }

    /// A node kept running after its owner exits (the launcher's cluster, see
    /// [`crate::kept`]), writing everything to `log`.
    pub fn kept(dir: PathBuf, (port, bus_port): (u16, u16), log: PathBuf) -> Self {
        NodeProcess {
            process: RedisProcess::kept(dir, port, options(bus_port), log),
        }
    }

    /// Lets go of a running kept node: its pid.
    pub fn detach(&mut self) -> Option<u32> {
        self.process.detach()
    }

    pub fn port(&self) -> u16 {
        self.process.port()
    }

    pub fn pid(&self) -> Option<u32> {
        self.process.pid()
    }

    pub fn is_running(&self) -> bool {
        self.process.is_running()
    }

    pub fn log_path(&self) -> PathBuf {
        self.process.log_path()
    }

    /// The first start, before the cluster exists: when another process took one of the ports
    /// first, tries again on a fresh pair (a node's ports are fixed once it joined).
    pub async fn start(&mut self) -> anyhow::Result<()> {
        self.process
            .start(|port, options| {
                *port = net::free_port();
                *options = self::options(net::free_port());
            })
            .await
    }

    /// Starts the node again in its dir and waits until it has loaded its data.
    pub async fn run(&mut self) -> anyhow::Result<()> {
        self.process.run().await
    }

    /// SIGKILL, like a crash, and reaps it. Does nothing if it is not running.
    pub fn kill(&mut self) {
        self.process.kill();
    }
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
