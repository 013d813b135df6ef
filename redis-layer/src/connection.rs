//! [`Redis`]: the handle both services use, over one node or a cluster.
//!
//! Scripts run by EVALSHA; a node that answers NOSCRIPT (a fresh node, a promoted replica: the
//! script cache is not replicated) gets the script by SCRIPT LOAD and the call is sent again. In a
//! cluster, EVALSHA goes to the node serving its first key's slot (every script keeps its keys
//! under one hash tag, so one slot), and SCRIPT LOAD goes to every primary.

use std::{sync::Arc, time::Duration};

use redis::{
    aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig},
    cluster::ClusterClientBuilder,
    cluster_async::ClusterConnection,
    cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr},
    Cmd, FromRedisValue, Pipeline, RedisFuture, Script, ScriptInvocation, Value,
};

use crate::{Config, Error, Mode};

/// How many times the cluster client retries a command after a redirection or a broken
/// connection (refreshing its slot map), within the command timeout.
const CLUSTER_RETRIES: u32 = 3;
/// Bounds of the cluster client's wait between two retries, in ms: a failover takes about a
/// node timeout, so waiting longer than the command timeout is useless.
const CLUSTER_RETRY_WAIT_MS: (u64, u64) = (10, 200);
/// The first connection may take this many command timeouts.
const CONNECT_TIMEOUTS: u32 = 5;

/// One connection to Redis, cloned by every task that needs it.
#[derive(Clone)]
pub struct Redis {
    link: Link,
    mode: Mode,
    timeout: Duration,
    /// Single: the url. Cluster: the seed nodes.
    nodes: Arc<[String]>,
}

#[derive(Clone)]
enum Link {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl Redis {
    /// Connects as `config` says, within a few command timeouts.
    pub async fn connect(config: &Config) -> Result<Self, Error> {
        let timeout = config.command_timeout();
        let connect_error = |problem: String| Error::Connect {
            target: config.target(),
            problem,
        };
        let (link, nodes) = match config.mode {
            Mode::Single => {
                let client = redis::Client::open(config.url.as_str())
                    .map_err(|e| connect_error(e.to_string()))?;
                let manager = ConnectionManagerConfig::new()
                    .set_response_timeout(Some(timeout))
                    .set_connection_timeout(Some(timeout))
                    .set_number_of_retries(1)
                    .set_max_delay(Duration::from_millis(500));
                let conn = tokio::time::timeout(
                    timeout * CONNECT_TIMEOUTS,
                    ConnectionManager::new_with_config(client, manager),
                )
                .await
                .map_err(|_| connect_error("connect timed out".into()))?
                .map_err(|e| connect_error(e.to_string()))?;
                (Link::Single(conn), vec![config.url.clone()])
            }
            Mode::Cluster => {
                let client = ClusterClientBuilder::new(config.nodes.iter().map(String::as_str))
                    .connection_timeout(timeout)
                    .response_timeout(timeout)
                    .retries(CLUSTER_RETRIES)
                    .min_retry_wait(CLUSTER_RETRY_WAIT_MS.0)
                    .max_retry_wait(CLUSTER_RETRY_WAIT_MS.1)
                    .build()
                    .map_err(|e| connect_error(e.to_string()))?;
                let conn =
                    tokio::time::timeout(timeout * CONNECT_TIMEOUTS, client.get_async_connection())
                        .await
                        .map_err(|_| connect_error("connect timed out".into()))?
                        .map_err(|e| connect_error(e.to_string()))?;
                (Link::Cluster(conn), config.nodes.clone())
            }
        };
        tracing::info!(mode = ?config.mode, target = %config.target(), "redis connected");
        Ok(Self {
            link,
            mode: config.mode,
            timeout,
            nodes: nodes.into(),
        })
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The time allowed for one command.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Where a pub/sub subscription may connect, in order of preference: the url, or the seed
    /// nodes (a classic `PUBLISH` reaches every node of a cluster).
    pub fn nodes(&self) -> &[String] {
        &self.nodes
    }

    /// Runs a script by EVALSHA (loading it where it is missing).
    pub async fn script<T: FromRedisValue>(
        &self,
        what: &'static str,
        invocation: &ScriptInvocation<'_>,
    ) -> Result<T, Error> {
        let mut link = self.link.clone();
        self.bounded(what, invocation.invoke_async(&mut link)).await
    }

    /// Sends one command, routed by its key in a cluster.
    pub async fn query<T: FromRedisValue>(
        &self,
        what: &'static str,
        cmd: &Cmd,
    ) -> Result<T, Error> {
        let mut link = self.link.clone();
        self.bounded(what, cmd.query_async(&mut link)).await
    }

    /// Sends a pipeline (atomic or not), routed by its first key in a cluster: its keys must
    /// share a slot.
    pub async fn pipeline<T: FromRedisValue>(
        &self,
        what: &'static str,
        pipe: &Pipeline,
    ) -> Result<T, Error> {
        let mut link = self.link.clone();
        self.bounded(what, pipe.query_async(&mut link)).await
    }

    /// Loads `scripts` (on every primary of a cluster), so that no request pays for a NOSCRIPT
    /// retry; a node that joins later gets them on its first NOSCRIPT.
    pub async fn load(&self, scripts: &[&Script]) -> Result<(), Error> {
        for script in scripts {
            let mut link = self.link.clone();
            self.bounded("script load", script.load_async(&mut link))
                .await?;
        }
        Ok(())
    }

    /// Waits until `replicas` replicas of the node holding `key` have every write this
    /// connection sent it, or `timeout` passed (`WAIT`); the number that have them. On a single
    /// node with no replica this is 0 after `timeout`.
    pub async fn wait_replicas(
        &self,
        key: &str,
        replicas: u32,
        timeout: Duration,
    ) -> Result<u32, Error> {
        let millis = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        let mut wait = redis::cmd("WAIT");
        wait.arg(replicas).arg(millis);
        let acked: i64 = match &self.link {
            Link::Single(conn) => {
                let mut conn = conn.clone();
                self.bounded_by(timeout + self.timeout, "wait", wait.query_async(&mut conn))
                    .await?
            }
            Link::Cluster(conn) => {
                let mut conn = conn.clone();
                let routing = node_of(key);
                let reply = self
                    .bounded_by(
                        timeout + self.timeout,
                        "wait",
                        conn.route_command(wait, routing),
                    )
                    .await?;
                i64::from_redis_value(reply).map_err(|e| Error::redis("wait")(e.into()))?
            }
        };
        Ok(u32::try_from(acked).unwrap_or(0))
    }

    async fn bounded<T>(
        &self,
        what: &'static str,
        call: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, Error> {
        self.bounded_by(self.timeout, what, call).await
    }

    async fn bounded_by<T>(
        &self,
        timeout: Duration,
        what: &'static str,
        call: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, Error> {
        tokio::time::timeout(timeout, call)
            .await
            .map_err(|_| Error::Timeout(what))?
            .map_err(Error::redis(what))
    }
}

/// The routing of the primary serving `key`'s slot.
fn node_of(key: &str) -> RoutingInfo {
    RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(Route::with_key(
        key,
        SlotAddr::Master,
    )))
}

impl ConnectionLike for Link {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(conn) => conn.req_packed_command(cmd),
            Self::Cluster(conn) => conn.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(conn) => conn.req_packed_commands(pipeline, offset, count),
            Self::Cluster(conn) => conn.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(conn) => conn.get_db(),
            Self::Cluster(conn) => conn.get_db(),
        }
    }
}
