//! The commands a test cluster ran, as [`RedisServer`](crate::redis_server::RedisServer) counts
//! them for one server: `INFO commandstats` summed over the primaries, less the harness's own
//! commands and the replicas' replication traffic, so the bench can count the Redis round trips
//! of one purchase attempt on a cluster.

use std::collections::BTreeMap;

use super::RedisCluster;
use crate::redis_process;
use crate::redis_server::BOOKKEEPING_COMMANDS;

/// Commands [`RedisCluster::total_calls`] leaves out on top of [`BOOKKEEPING_COMMANDS`]: the
/// harness's own `CLUSTER` questions, and what a replica sends its primary to stay in sync
/// (`REPLCONF ACK` every second, `PSYNC` when it (re)joins).
pub const CLUSTER_BOOKKEEPING_COMMANDS: [&str; 5] = [
    "cluster|nodes",
    "cluster|info",
    "cluster|keyslot",
    "replconf",
    "psync",
];

impl RedisCluster {
    /// `INFO commandstats` summed over the primaries serving slots, as command -> calls since
    /// the start or [`Self::reset_stats`]. Replicas are left out: they run again what their
    /// primary ran. The harness's own commands are counted (see [`Self::total_calls`]).
    pub async fn command_stats(&self) -> anyhow::Result<BTreeMap<String, u64>> {
        let mut stats = BTreeMap::new();
        for primary in self.primaries().await? {
            for (command, calls) in redis_process::command_stats(primary.port).await? {
                *stats.entry(command).or_insert(0) += calls;
            }
        }
        Ok(stats)
    }

    /// The calls on the primaries of all commands but the [`BOOKKEEPING_COMMANDS`] and the
    /// [`CLUSTER_BOOKKEEPING_COMMANDS`]: zero after [`Self::reset_stats`] means no client sent
    /// the cluster anything since. A cluster client's `CLUSTER SLOTS` (its look at the slot map
    /// on connecting and after a `MOVED`) is counted: a client's round trip like any other.
    pub async fn total_calls(&self) -> anyhow::Result<u64> {
        let stats = self.command_stats().await?;
        Ok(stats
            .iter()
            .filter(|(name, _)| {
                !BOOKKEEPING_COMMANDS.contains(&name.as_str())
                    && !CLUSTER_BOOKKEEPING_COMMANDS.contains(&name.as_str())
            })
            .map(|(_, calls)| calls)
            .sum())
    }

    /// `CONFIG RESETSTAT` on every running node.
    pub async fn reset_stats(&self) -> anyhow::Result<()> {
        for node in self.nodes.iter().filter(|node| node.is_running()) {
            redis_process::reset_stats(node.port()).await?;
        }
        Ok(())
    }
}
