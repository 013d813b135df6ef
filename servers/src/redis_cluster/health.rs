//! Whether a cluster is healthy (every node `cluster_state:ok`, all agreeing on three shards
//! covering the slots, every replica linked to its primary), and whether a slot has failed over
//! from a primary to another node, as the nodes themselves report it.

use anyhow::{ensure, Context};

use super::node::{cluster_info, cluster_nodes, info};
use super::topology::{KnownRole, Shard};
use super::PRIMARIES;

/// Every node on `ports` says `cluster_state:ok`, all agree on the same [`PRIMARIES`] shards
/// covering the 16384 slots, and every replica's link to its primary is up; else an error
/// saying what is missing.
pub async fn healthy(ports: &[u16]) -> anyhow::Result<bool> {
    let mut agreed: Option<(u16, Vec<Shard>)> = None;
    for &port in ports {
        ensure_state_ok(port).await?;
        let view = cluster_nodes(port).await?;
        let shards = view
            .settled_shards(PRIMARIES)
            .with_context(|| format!("node {port} sees"))?;
        if let KnownRole::Replica { .. } = view.myself()?.role {
            let replication = info(port, "replication").await?;
            let link = replication.get::<String>("master_link_status");
            ensure!(
                link.as_deref() == Some("up"),
                "replica {port}: master_link_status:{link:?}"
            );
        }
        match &agreed {
            None => agreed = Some((port, shards)),
            Some((first, seen)) => ensure!(
                *seen == shards,
                "node {first} sees {} but node {port} sees {}",
                describe(seen),
                describe(&shards)
            ),
        }
    }
    Ok(true)
}

/// Every node on `survivors` says `cluster_state:ok` and sees the same node, not
/// `old_primary` and not failing, as the primary of `slot`.
pub async fn failed_over(survivors: &[u16], slot: u16, old_primary: u16) -> anyhow::Result<bool> {
    let mut agreed: Option<(u16, u16)> = None;
    for &port in survivors {
        ensure_state_ok(port).await?;
        let view = cluster_nodes(port).await?;
        let owner = view
            .owner_of(slot)
            .with_context(|| format!("node {port} sees no primary for slot {slot}"))?;
        ensure!(
            owner.port != old_primary && !owner.failing,
            "node {port} sees {} as the primary of slot {slot}{}",
            owner.port,
            if owner.failing { " (failing)" } else { "" }
        );
        match agreed {
            None => agreed = Some((port, owner.port)),
            Some((first, primary)) => ensure!(
                primary == owner.port,
                "node {first} sees {primary} as the primary of slot {slot}, node {port} {}",
                owner.port
            ),
        }
    }
    ensure!(agreed.is_some(), "no node survives");
    Ok(true)
}

async fn ensure_state_ok(port: u16) -> anyhow::Result<()> {
    let state = cluster_info(port).await?.get::<String>("cluster_state");
    ensure!(
        state.as_deref() == Some("ok"),
        "node {port}: cluster_state:{}",
        state.as_deref().unwrap_or("missing")
    );
    Ok(())
}

fn describe(shards: &[Shard]) -> String {
    let shards: Vec<String> = shards.iter().map(Shard::to_string).collect();
    shards.join("; ")
}
