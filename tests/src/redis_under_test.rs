//! What a test stack needs of its Redis, whichever it is: one [`RedisServer`] or a six-node
//! [`RedisCluster`]. The services are pointed at it by [`RedisUnderTest::target`]; the books of
//! a sale are read on the node holding the sale's keys (one hash tag, one slot: one node); the
//! bench counts the commands it ran and the CPU its processes spent.

use std::{collections::BTreeMap, future::Future};

use redis::aio::MultiplexedConnection;

use crate::{redis_cluster::RedisCluster, redis_server::RedisServer};

/// A Redis the stack under test runs on.
pub trait RedisUnderTest: Send + Sync {
    /// `"single"` or `"cluster"`: how reports name it.
    fn mode(&self) -> &'static str;

    /// How a service is pointed at it (see
    /// [`redis_table`](crate::redis_server::redis_table)).
    fn target(&self) -> String;

    /// The processes of the Redis (one server, or every node running), for CPU readings.
    fn pids(&self) -> Vec<u32>;

    /// The port of the node serving `key` now: one server's port, or the primary of the key's
    /// slot.
    fn port_of(&self, key: &str) -> impl Future<Output = anyhow::Result<u16>> + Send;

    /// A plain connection to the node holding every key of `sale` (its hash tag `{s:<sale>}`).
    fn sale_connection(
        &self,
        sale: i64,
    ) -> impl Future<Output = anyhow::Result<MultiplexedConnection>> + Send;

    /// `INFO commandstats` as command -> calls (summed over the primaries of a cluster).
    fn command_stats(&self) -> impl Future<Output = anyhow::Result<BTreeMap<String, u64>>> + Send;

    /// `CONFIG RESETSTAT` (on every running node of a cluster).
    fn reset_stats(&self) -> impl Future<Output = anyhow::Result<()>> + Send;
}

/// A key of `sale`'s hash tag: the slot of all its keys.
fn sale_key(sale: i64) -> String {
    format!("{{s:{sale}}}:stock")
}

impl RedisUnderTest for RedisServer {
    fn mode(&self) -> &'static str {
        "single"
    }

    fn target(&self) -> String {
        self.url()
    }

    fn pids(&self) -> Vec<u32> {
        self.pid().into_iter().collect()
    }

    async fn port_of(&self, _key: &str) -> anyhow::Result<u16> {
        Ok(self.port())
    }

    async fn sale_connection(&self, _sale: i64) -> anyhow::Result<MultiplexedConnection> {
        self.connection().await
    }

    async fn command_stats(&self) -> anyhow::Result<BTreeMap<String, u64>> {
        RedisServer::command_stats(self).await
    }

    async fn reset_stats(&self) -> anyhow::Result<()> {
        RedisServer::reset_stats(self).await
    }
}

impl RedisUnderTest for RedisCluster {
    fn mode(&self) -> &'static str {
        "cluster"
    }

    fn target(&self) -> String {
        RedisCluster::target(self)
    }

    fn pids(&self) -> Vec<u32> {
        self.ports()
            .into_iter()
            .filter_map(|port| self.pid(port))
            .collect()
    }

    async fn port_of(&self, key: &str) -> anyhow::Result<u16> {
        Ok(self.primary_of(key).await?.port)
    }

    async fn sale_connection(&self, sale: i64) -> anyhow::Result<MultiplexedConnection> {
        let port = self.port_of(&sale_key(sale)).await?;
        self.node_connection(port).await
    }

    async fn command_stats(&self) -> anyhow::Result<BTreeMap<String, u64>> {
        RedisCluster::command_stats(self).await
    }

    async fn reset_stats(&self) -> anyhow::Result<()> {
        RedisCluster::reset_stats(self).await
    }
}
