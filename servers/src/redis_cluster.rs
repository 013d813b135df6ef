//! A real six-node Redis Cluster for one test: three primaries and three replicas, each a
//! `redis-server` on free loopback ports in its own subdir of one temp dir, with the settings
//! `./deploy/up` gives its cluster (AOF, a 1 s node timeout, replicas always promoted, the other
//! shards serving while one fails over: see `node.rs`). Created with `redis-cli --cluster create`
//! and awaited until every node agrees on the slot map.
//!
//! A node can be killed (SIGKILL, a crash) and restarted in its dir, where it rejoins from its
//! `nodes.conf` (as a replica if its replica took over meanwhile). The harness waits for a
//! failover and says how long it took, asks the cluster who serves a key, and counts the commands
//! the primaries ran, as [`RedisServer`](crate::redis_server::RedisServer) does for one server.
//!
//! The launcher's cluster, on fixed ports in a state folder and kept running, is [`start_kept`].
//!
//! `redis-cli` comes from `PATH`, or the path in the `REDIS_CLI` variable.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{ensure, Context};
use futures_util::future::try_join_all;
use redis::aio::MultiplexedConnection;
use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::cluster_async::ClusterConnection;
use redis::AsyncConnectionConfig;
use tempfile::TempDir;

use crate::{net, wait};

mod create;
mod health;
mod kept;
mod node;
mod stats;
mod topology;

use crate::redis_process::{admin_connection, LOG_TAIL_LINES};
use node::{cluster_nodes, NodeProcess};
use topology::{KnownRole, View};

pub use kept::{start_kept, KeptNode};
pub use node::NODE_TIMEOUT_MS;
pub use stats::CLUSTER_BOOKKEEPING_COMMANDS;

/// Primaries of the cluster; each has one replica.
pub const PRIMARIES: usize = 3;
/// How long the nodes may take to agree on a new cluster, or on a node that came back.
const SETTLE_DEADLINE: Duration = Duration::from_secs(20);
/// How long a failover may take: [`NODE_TIMEOUT_MS`] until the primary is suspected, some
/// gossip until a majority agrees, an election delay of 0.5 to 1 s, then gossip of the new slot
/// owner (2 to 3 s measured), with room for a loaded machine.
const FAILOVER_DEADLINE: Duration = Duration::from_secs(15);

/// A running six-node cluster, every node killed and reaped when dropped; the temp dir goes
/// with it.
pub struct RedisCluster {
    nodes: Vec<NodeProcess>,
    dir: TempDir,
}

/// A node as the cluster reports it, with its process as the harness knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub port: u16,
    /// The cluster's id of the node (40 hex digits).
    pub id: String,
    /// `None` once killed through [`RedisCluster::kill`].
    pub pid: Option<u32>,
}

/// A node's role, as the node itself says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Primary,
    /// A replica of the primary on port `of`.
    Replica {
        of: u16,
    },
}

impl RedisCluster {
    /// Starts six nodes, creates the cluster (three primaries, one replica each) and waits until
    /// every node says `cluster_state:ok`, all agree on the same three shards covering the 16384
    /// slots, and every replica's link to its primary is up. On failure the error quotes the
    /// ends of the logs.
    pub async fn start() -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("flash-redis-cluster-")
            .tempdir()
            .context("creating the temp dir of the redis cluster")?;
        let mut ports = distinct_free_ports(2 * 2 * PRIMARIES).into_iter();
        let mut nodes = Vec::new();
        for index in 0..2 * PRIMARIES {
            let node_dir = dir.path().join(format!("node-{index}"));
            std::fs::create_dir(&node_dir)
                .with_context(|| format!("creating {}", node_dir.display()))?;
            let pair = ports.next().zip(ports.next());
            let pair = pair.context("distinct_free_ports gave as many ports as asked")?;
            nodes.push(NodeProcess::new(node_dir, pair));
        }
        // Built before the nodes start, so that a failure below kills those already running.
        let mut cluster = RedisCluster { nodes, dir };
        try_join_all(cluster.nodes.iter_mut().map(NodeProcess::start)).await?;
        cluster.create().await?;
        let settled = cluster.wait_healthy().await?;
        tracing::debug!(?settled, "redis cluster settled");
        Ok(cluster)
    }

    /// The client ports of the six nodes, on 127.0.0.1.
    pub fn ports(&self) -> Vec<u16> {
        self.nodes.iter().map(NodeProcess::port).collect()
    }

    /// `redis://127.0.0.1:{port}/` of every node: the seed list a service is given.
    pub fn seeds(&self) -> Vec<String> {
        self.ports()
            .iter()
            .map(|port| format!("redis://127.0.0.1:{port}/"))
            .collect()
    }

    /// How a service under test is pointed at the cluster (see
    /// [`redis_table`](crate::redis_server::redis_table)): `cluster:` and the seed list.
    pub fn target(&self) -> String {
        format!("cluster:{}", self.seeds().join(","))
    }

    /// The services' Redis handle on the cluster, commands timing out after `timeout`.
    pub async fn handle(&self, timeout: Duration) -> anyhow::Result<redis_layer::Redis> {
        let config = redis_layer::Config {
            mode: redis_layer::Mode::Cluster,
            nodes: self.seeds(),
            command_timeout_ms: u64::try_from(timeout.as_millis())?,
            ..redis_layer::Config::default()
        };
        Ok(redis_layer::Redis::connect(&config).await?)
    }

    /// The temp dir holding a `node-N/` dir per node (`nodes.conf`, `appendonlydir/`, `redis.log`).
    pub fn dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    /// The pid of the node on `port`, `None` after [`RedisCluster::kill`] or for another port.
    pub fn pid(&self, port: u16) -> Option<u32> {
        self.nodes
            .iter()
            .find(|node| node.port() == port)
            .and_then(NodeProcess::pid)
    }

    /// A cluster client over [`Self::seeds`] as a service would build one, but with a 10 s
    /// response timeout instead of redis-rs' 500 ms, so a slow machine does not fail a test.
    pub fn client(&self) -> anyhow::Result<ClusterClient> {
        ClusterClientBuilder::new(self.seeds())
            .connection_timeout(Duration::from_secs(5))
            .response_timeout(Duration::from_secs(10))
            .build()
            .context("building the cluster client")
    }

    /// A connection of [`Self::client`]: it follows the slots as they move.
    pub async fn connection(&self) -> anyhow::Result<ClusterConnection> {
        self.client()?
            .get_async_connection()
            .await
            .context("connecting to the redis cluster")
    }

    /// A plain connection to the node on `port` alone (it answers `MOVED` for the slots it does
    /// not serve), opened as a service would, with the `CLIENT SETINFO` handshake.
    pub async fn node_connection(&self, port: u16) -> anyhow::Result<MultiplexedConnection> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(5)))
            .set_response_timeout(Some(Duration::from_secs(10)));
        redis::Client::open(format!("redis://127.0.0.1:{port}/"))?
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .with_context(|| format!("connecting to the cluster node on port {port}"))
    }

    /// `CLUSTER KEYSLOT key`, asked of a running node.
    pub async fn key_slot(&self, key: &str) -> anyhow::Result<u16> {
        let port = self.any_running_port()?;
        let slot = redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(key)
            .query_async(&mut admin_connection(port).await?)
            .await
            .with_context(|| format!("CLUSTER KEYSLOT on port {port}"))?;
        Ok(slot)
    }

    /// The primary serving `key`'s slot now, as a running node sees it (a primary just killed
    /// stays the answer until the cluster has failed it over).
    pub async fn primary_of(&self, key: &str) -> anyhow::Result<Node> {
        let slot = self.key_slot(key).await?;
        let view = self.any_view().await?;
        let owner = view
            .owner_of(slot)
            .with_context(|| format!("no primary serves slot {slot} of {key:?}"))?;
        Ok(self.node(owner.port, &owner.id))
    }

    /// The primaries serving slots now, as a running node sees them, in slot order.
    pub async fn primaries(&self) -> anyhow::Result<Vec<Node>> {
        let view = self.any_view().await?;
        Ok(view
            .owners()
            .into_iter()
            .map(|owner| self.node(owner.port, &owner.id))
            .collect())
    }

    /// The role of the node on `port`, as it says itself.
    pub async fn role(&self, port: u16) -> anyhow::Result<Role> {
        let view = cluster_nodes(port).await?;
        match &view.myself()?.role {
            KnownRole::Primary => Ok(Role::Primary),
            KnownRole::Replica { of } => {
                let primary = view
                    .nodes
                    .iter()
                    .find(|node| &node.id == of)
                    .with_context(|| {
                        format!("node {port} replicates {of}, which it does not know")
                    })?;
                Ok(Role::Replica { of: primary.port })
            }
        }
    }

    /// Kills the node on `port` with SIGKILL, like a crash, and reaps it. Does nothing if it
    /// was killed already.
    pub fn kill(&mut self, port: u16) -> anyhow::Result<()> {
        self.node_process(port)?.kill();
        Ok(())
    }

    /// Starts the node on `port` again in its dir, on the same ports, and waits until it has
    /// loaded its AOF. It rejoins the cluster from its `nodes.conf`: [`Self::wait_healthy`] waits
    /// until the others agree. Kills the running node first, if any.
    pub async fn restart(&mut self, port: u16) -> anyhow::Result<()> {
        let node = self.node_process(port)?;
        node.kill();
        node.run().await
    }

    /// Waits until every running node but `old_primary` (the survivors) says `cluster_state:ok`
    /// and sees the same other node, not failing, as the primary of `key`'s slot; returns how
    /// long that took from this call (called right after [`Self::kill`]: the failover time).
    pub async fn wait_failover(&self, key: &str, old_primary: u16) -> anyhow::Result<Duration> {
        let slot = self.key_slot(key).await?;
        let what = format!("a node other than {old_primary} to serve slot {slot} of {key:?}");
        wait::until(&what, FAILOVER_DEADLINE, || {
            self.failed_over(slot, old_primary)
        })
        .await
        .map_err(|error| error.context(self.log_tails()))
    }

    /// Waits until all six nodes run, say `cluster_state:ok` and agree on three shards covering
    /// every slot, each with one replica whose link to its primary is up: a new cluster, or one
    /// whose restarted node has rejoined. Returns how long that took.
    pub async fn wait_healthy(&self) -> anyhow::Result<Duration> {
        wait::until(
            "every node to agree on three shards, each with a connected replica",
            SETTLE_DEADLINE,
            || self.healthy(),
        )
        .await
        .map_err(|error| error.context(self.log_tails()))
    }

    /// Runs `redis-cli --cluster create` over the six nodes (see [`create::create`]).
    async fn create(&self) -> anyhow::Result<()> {
        create::create(&self.ports())
            .await
            .map(drop)
            .map_err(|error| error.context(self.log_tails()))
    }

    async fn healthy(&self) -> anyhow::Result<bool> {
        for node in &self.nodes {
            ensure!(node.is_running(), "node {} is not running", node.port());
        }
        health::healthy(&self.ports()).await
    }

    async fn failed_over(&self, slot: u16, old_primary: u16) -> anyhow::Result<bool> {
        let survivors: Vec<u16> = self
            .nodes
            .iter()
            .filter(|node| node.is_running() && node.port() != old_primary)
            .map(NodeProcess::port)
            .collect();
        health::failed_over(&survivors, slot, old_primary).await
    }

    fn node(&self, port: u16, id: &str) -> Node {
        Node {
            port,
            id: id.to_owned(),
            pid: self.pid(port),
        }
    }

    fn node_process(&mut self, port: u16) -> anyhow::Result<&mut NodeProcess> {
        self.nodes
            .iter_mut()
            .find(|node| node.port() == port)
            .with_context(|| format!("no node of the cluster is on port {port}"))
    }

    fn any_running_port(&self) -> anyhow::Result<u16> {
        self.nodes
            .iter()
            .find(|node| node.is_running())
            .map(NodeProcess::port)
            .context("no node of the cluster is running")
    }

    async fn any_view(&self) -> anyhow::Result<View> {
        cluster_nodes(self.any_running_port()?).await
    }

    /// The end of every node's log, for an error message.
    fn log_tails(&self) -> String {
        self.nodes
            .iter()
            .map(|node| wait::log_tail(&node.log_path(), LOG_TAIL_LINES / 3))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            node.kill();
        }
    }
}

/// `count` different ports that were free a moment ago.
fn distinct_free_ports(count: usize) -> Vec<u16> {
    let mut ports = Vec::with_capacity(count);
    while ports.len() < count {
        let port = net::free_port();
        if !ports.contains(&port) {
            ports.push(port);
        }
    }
    ports
}
