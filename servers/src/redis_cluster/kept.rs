//! The launcher's cluster (`REDIS_CLUSTER=1 ./deploy/up`): six nodes on fixed ports, each in its
//! folder of the state folder (`nodes.conf`, the AOF) and kept running after the launcher exits.
//! Nodes already running are left alone; a node that was stopped starts again and rejoins from
//! its `nodes.conf`; the cluster is created only when all six nodes are new.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use futures_util::future::try_join_all;

use super::node::{cluster_info, NodeProcess};
use super::{create, health, PRIMARIES};
use crate::wait;

/// One node of the launcher's cluster.
#[derive(Debug, Clone)]
pub struct KeptNode {
    pub port: u16,
    /// Its folder: `nodes.conf`, `appendonlydir/`.
    pub dir: PathBuf,
    pub log: PathBuf,
    /// Its pid when it runs already: then it is left alone.
    pub running: Option<u32>,
}

/// What [`start_kept`] did.
#[derive(Debug, Clone)]
pub struct KeptCluster {
    /// `(port, pid)` of each node started now.
    pub started: Vec<(u16, u32)>,
    /// The output of `redis-cli --cluster create`, when the cluster was created now.
    pub created: Option<String>,
}

/// Starts the nodes of `nodes` that do not run (cluster bus on port + 10000), creates the cluster
/// when all six are new (a mix of new nodes and members is for a human to sort out: an error),
/// and waits up to `deadline` until it is healthy (see [`health::healthy`]).
pub async fn start_kept(nodes: &[KeptNode], deadline: Duration) -> anyhow::Result<KeptCluster> {
    if nodes.len() != 2 * PRIMARIES {
        bail!(
            "a cluster of {} nodes needs {} ports",
            2 * PRIMARIES,
            nodes.len()
        );
    }
    let mut processes: Vec<NodeProcess> = nodes
        .iter()
        .filter(|node| node.running.is_none())
        .map(|node| {
            let bus = node.port.checked_add(10_000).unwrap_or(node.port);
            NodeProcess::kept(node.dir.clone(), (node.port, bus), node.log.clone())
        })
        .collect();
    if let Err(error) = try_join_all(processes.iter_mut().map(NodeProcess::run)).await {
        // The nodes that did start would otherwise run on with no pid file recording them.
        processes.iter_mut().for_each(NodeProcess::kill);
        return Err(error);
    }
    let started = processes
        .iter_mut()
        .filter_map(|node| Some((node.port(), node.detach()?)))
        .collect();
    let ports: Vec<u16> = nodes.iter().map(|node| node.port).collect();
    let log_tails = || {
        nodes
            .iter()
            .map(|node| wait::log_tail(&node.log, 8))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let created = match membership(&ports).await? {
        Membership::AllNew => Some(
            create::create(&ports)
                .await
                .map_err(|error| error.context(log_tails()))?,
        ),
        Membership::OneCluster => None,
        Membership::Mixed(description) => bail!(
            "redis cluster: the nodes do not make one cluster: {description}. Add new nodes with \
             redis-cli --cluster add-node, or start from nothing with ./deploy/down --purge"
        ),
    };
    wait::until(
        "every node to agree on three shards, each with a connected replica",
        deadline,
        || health::healthy(&ports),
    )
    .await
    .map_err(|error| error.context(log_tails()))?;
    Ok(KeptCluster { started, created })
}

enum Membership {
    /// Each node knows only itself and serves no slot.
    AllNew,
    /// Every node knows all the others (from its `nodes.conf`).
    OneCluster,
    Mixed(String),
}

async fn membership(ports: &[u16]) -> anyhow::Result<Membership> {
    let (mut new, mut joined, mut other) = (Vec::new(), Vec::new(), Vec::new());
    for &port in ports {
        let info = cluster_info(port).await?;
        let known: u64 = info
            .get("cluster_known_nodes")
            .with_context(|| format!("node {port}: no cluster_known_nodes"))?;
        let assigned: u64 = info.get("cluster_slots_assigned").unwrap_or(0);
        match (known, assigned) {
            (1, 0) => new.push(port.to_string()),
            (known, _) if known == ports.len() as u64 => joined.push(port.to_string()),
            (known, _) => other.push(format!("{port} (knows {known} nodes)")),
        }
    }
    Ok(if new.len() == ports.len() {
        Membership::AllNew
    } else if joined.len() == ports.len() {
        Membership::OneCluster
    } else {
        let list = |ports: &[String]| match ports.is_empty() {
            true => "none".to_owned(),
            false => ports.join(" "),
        };
        Membership::Mixed(format!(
            "new {}; in a cluster of six {}; other {}",
            list(&new),
            list(&joined),
            list(&other)
        ))
    })
}
