//! What one node of a Redis Cluster believes about the whole: its `CLUSTER NODES` answer parsed
//! into the nodes it knows (role, health, slots), and from that the shards it sees. The harness
//! asks every node and compares, because the nodes learn a change (a new cluster, a failover, a
//! node back) by gossip, one after the other.

use std::fmt;

use anyhow::{bail, ensure, Context};

/// Hash slots of every Redis Cluster.
pub const SLOTS: u32 = 16384;

/// One line of `CLUSTER NODES`: a node as the node asked sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Known {
    pub id: String,
    pub port: u16,
    pub role: KnownRole,
    /// The line of the node asked (flag `myself`).
    pub myself: bool,
    /// Flagged `fail` (the majority agreed it is down) or `fail?` (this node cannot reach it).
    pub failing: bool,
    /// Not yet a settled member: `handshake` or `noaddr`.
    pub joining: bool,
    /// The cluster bus link to it is up (always true for `myself`).
    pub connected: bool,
    /// Inclusive slot ranges it serves.
    pub slots: Vec<(u16, u16)>,
}

/// A node's role in one view: a primary, or a replica of the primary with this node id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KnownRole {
    Primary,
    Replica { of: String },
}

/// A primary's slots and replicas as one node sees them: what every node must agree on.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Shard {
    pub slots: Vec<(u16, u16)>,
    pub primary: u16,
    /// Ports of the replicas that are up and linked to the node asked.
    pub replicas: Vec<u16>,
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let slots: Vec<String> = self.slots.iter().map(|(a, b)| format!("{a}-{b}")).collect();
        write!(
            f,
            "{} on {} with replicas {:?}",
            slots.join(","),
            self.primary,
            self.replicas
        )
    }
}

/// The whole `CLUSTER NODES` answer of one node.
#[derive(Debug, Clone)]
pub struct View {
    pub nodes: Vec<Known>,
}

impl View {
    pub fn parse(text: &str) -> anyhow::Result<View> {
        let nodes = text
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty())
            .map(|line| parse_line(line).with_context(|| format!("CLUSTER NODES line {line:?}")))
            .collect::<anyhow::Result<_>>()?;
        Ok(View { nodes })
    }

    /// The node that answered.
    pub fn myself(&self) -> anyhow::Result<&Known> {
        self.nodes
            .iter()
            .find(|node| node.myself)
            .context("CLUSTER NODES has no `myself` line")
    }

    /// The primary this view says serves `slot`, failing or not.
    pub fn owner_of(&self, slot: u16) -> Option<&Known> {
        self.nodes.iter().find(|node| {
            node.role == KnownRole::Primary
                && node.slots.iter().any(|(a, b)| (*a..=*b).contains(&slot))
        })
    }

    /// The primaries that serve slots, in the order of their first slot.
    pub fn owners(&self) -> Vec<&Known> {
        let mut owners: Vec<&Known> = self
            .nodes
            .iter()
            .filter(|node| node.role == KnownRole::Primary && !node.slots.is_empty())
            .collect();
        owners.sort_by_key(|node| node.slots.first().copied());
        owners
    }

    /// The shards of a settled cluster of `primaries` primaries, each with exactly one replica,
    /// or why this view is not that yet: a node failing or still joining, a primary without
    /// slots (a replica not yet known as one), slots left uncovered, a replica missing.
    pub fn settled_shards(&self, primaries: usize) -> anyhow::Result<Vec<Shard>> {
        if let Some(node) = self
            .nodes
            .iter()
            .find(|node| node.failing || node.joining || !node.connected)
        {
            bail!("{} is failing, joining or not connected", node.port);
        }
        if let Some(empty) = self
            .nodes
            .iter()
            .find(|node| node.role == KnownRole::Primary && node.slots.is_empty())
        {
            bail!("{} is a primary without slots", empty.port);
        }
        let shards: Vec<Shard> = self
            .owners()
            .into_iter()
            .map(|primary| Shard {
                slots: primary.slots.clone(),
                primary: primary.port,
                replicas: self.replicas_of(&primary.id),
            })
            .collect();
        ensure!(
            shards.len() == primaries,
            "{} primaries instead of {primaries}",
            shards.len()
        );
        let covered: u32 = shards
            .iter()
            .flat_map(|shard| &shard.slots)
            .map(|(a, b)| u32::from(*b) - u32::from(*a) + 1)
            .sum();
        ensure!(covered == SLOTS, "{covered} of {SLOTS} slots covered");
        if let Some(alone) = shards.iter().find(|shard| shard.replicas.len() != 1) {
            bail!("shard {alone} does not have exactly one replica");
        }
        Ok(shards)
    }

    fn replicas_of(&self, primary_id: &str) -> Vec<u16> {
        let mut ports: Vec<u16> = self
            .nodes
            .iter()
            .filter(|node| matches!(&node.role, KnownRole::Replica { of } if of == primary_id))
            .filter(|node| !node.failing && node.connected)
            .map(|node| node.port)
            .collect();
        ports.sort_unstable();
        ports
    }
}

/// `<id> <ip:port@cport[,hostname]> <flags> <primary id or -> <ping-sent> <pong-recv>
/// <config-epoch> <link-state> <slot>...`; a slot is `N`, `A-B`, or a migration in brackets
/// (left out: the slot is still served by this node).
fn parse_line(line: &str) -> anyhow::Result<Known> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    let [id, address, flags, primary, _ping, _pong, _epoch, link, slots @ ..] = fields.as_slice()
    else {
        bail!("fewer than 8 fields");
    };
    let port = address
        .split(['@', ','])
        .next()
        .and_then(|host_port| host_port.rsplit_once(':'))
        .context("no port in the address")?
        .1
        .parse()
        .context("bad port in the address")?;
    let flags: Vec<&str> = flags.split(',').collect();
    let role = if flags.contains(&"master") {
        KnownRole::Primary
    } else if flags.contains(&"slave") && *primary != "-" {
        KnownRole::Replica {
            of: (*primary).to_owned(),
        }
    } else {
        bail!("neither a primary nor a replica of a known primary");
    };
    let slots = slots
        .iter()
        .filter(|slot| !slot.starts_with('['))
        .map(|slot| parse_slots(slot))
        .collect::<anyhow::Result<_>>()?;
    Ok(Known {
        id: (*id).to_owned(),
        port,
        role,
        myself: flags.contains(&"myself"),
        failing: flags.contains(&"fail") || flags.contains(&"fail?"),
        joining: flags.contains(&"handshake") || flags.contains(&"noaddr"),
        connected: *link == "connected",
        slots,
    })
}

fn parse_slots(text: &str) -> anyhow::Result<(u16, u16)> {
    let (first, last) = text.split_once('-').unwrap_or((text, text));
    let range = (first.parse()?, last.parse()?);
    ensure!(range.0 <= range.1, "slot range {text} runs backwards");
    Ok(range)
}

#[cfg(test)]
mod tests {
    use super::{Shard, View};

    /// A settled cluster as node 7004 sees it; `extra` is appended to the line of 7001.
    fn settled(extra: &str, flags_7001: &str) -> String {
        format!(
            "p1 127.0.0.1:7001@17001 {flags_7001} - 0 1 1 connected 0-5460 {extra}\n\
             p2 127.0.0.1:7002@17002,shop-2 master - 0 1 2 connected 5461-10922\n\
             p3 127.0.0.1:7003@17003 master - 0 1 3 connected 10923-16383\n\
             r1 127.0.0.1:7004@17004 myself,slave p1 0 0 1 connected\n\
             r2 127.0.0.1:7005@17005 slave p2 0 1 2 connected\n\
             r3 127.0.0.1:7006@17006 slave p3 0 1 3 connected\n"
        )
    }

    fn check(text: &str, expected: Result<&[(u16, u16, u16, u16)], &str>) {
        let shards = View::parse(text)
            .and_then(|view| view.settled_shards(3))
            .map_err(|error| format!("{error:#}"));
        match (shards, expected) {
            (Ok(shards), Ok(expected)) => {
                let expected: Vec<Shard> = expected
                    .iter()
                    .map(|&(a, b, primary, replica)| Shard {
                        slots: vec![(a, b)],
                        primary,
                        replicas: vec![replica],
                    })
                    .collect();
                assert_eq!(shards, expected, "input:\n{text}");
            }
            (Err(error), Err(part)) => assert!(error.contains(part), "{error}\ninput:\n{text}"),
            (got, expected) => panic!("got {got:?}, expected {expected:?}\ninput:\n{text}"),
        }
    }

    #[test]
    fn a_settled_view_gives_three_shards_with_one_replica_each() {
        let shards = [
            (0, 5460, 7001, 7004),
            (5461, 10922, 7002, 7005),
            (10923, 16383, 7003, 7006),
        ];
        check(&settled("", "master"), Ok(&shards));
        // A slot being migrated is still served by its primary.
        check(&settled("[93->-p2]", "master"), Ok(&shards));
    }

    #[test]
    fn an_unsettled_view_says_why() {
        check(&settled("", "master,fail"), Err("7001 is failing"));
        check(&settled("", "master,fail?"), Err("7001 is failing"));
        check(
            &settled("", "master").replace("slave p3", "master -"),
            Err("7006 is a primary without slots"),
        );
        check(
            &settled("", "master").replace(" 10923-16383", ""),
            Err("7003 is a primary without slots"),
        );
        check(
            &settled("", "master").replace("10923-16383", "10923-16000"),
            Err("16001 of 16384 slots covered"),
        );
        check(
            &settled("", "master").replace("slave p3", "slave p2"),
            Err("does not have exactly one replica"),
        );
        check(
            &settled("", "master").replace("2 connected\n", "2 disconnected\n"),
            Err("7005 is failing, joining or not connected"),
        );
        check(
            "p1 127.0.0.1:7001@17001 master - 0 1 1",
            Err("fewer than 8 fields"),
        );
    }

    #[test]
    fn the_owner_of_a_slot_is_its_primary_failing_or_not() -> anyhow::Result<()> {
        let view = View::parse(&settled("", "master,fail"))?;
        assert_eq!(view.owner_of(0).map(|node| node.port), Some(7001));
        assert_eq!(view.owner_of(10922).map(|node| node.port), Some(7002));
        assert_eq!(view.owner_of(16383).map(|node| node.port), Some(7003));
        assert_eq!(view.myself()?.port, 7004);
        let owners: Vec<u16> = view.owners().iter().map(|node| node.port).collect();
        assert_eq!(owners, [7001, 7002, 7003]);
        Ok(())
    }
}
