//! The `[redis]` table of both services: one node or a cluster, and the time allowed for a command.

use std::time::Duration;

use serde::Deserialize;

/// How the services reach Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// One `redis-server` at `url`.
    #[default]
    Single,
    /// A Redis Cluster, found through the seed `nodes`.
    Cluster,
}

/// The `[redis]` table. Not reloadable.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub mode: Mode,
    /// Single mode: `redis://host:port/db` (or `unix://`).
    pub url: String,
    /// Cluster mode: `redis://host:port/` of some of the cluster's nodes; the client learns the
    /// rest from them (`CLUSTER SLOTS`), so a few per shard are enough.
    pub nodes: Vec<String>,
    /// Time allowed for one command, redirections and reconnections included.
    pub command_timeout_ms: u64,
    /// Replicas that must have a winner's reservation before its answer (`WAIT`); 0 answers at
    /// once, and a failover may lose the last writes (the heal covers them). The origin only.
    pub wait_replicas: u32,
    /// Longest `WAIT` for those replicas; past it the answer goes out all the same.
    pub wait_timeout_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            mode: Mode::Single,
            url: "redis://127.0.0.1:6380/".into(),
            nodes: Vec::new(),
            command_timeout_ms: 1000,
            wait_replicas: 0,
            wait_timeout_ms: 100,
        }
    }
}

impl Config {
    pub fn command_timeout(&self) -> Duration {
        Duration::from_millis(self.command_timeout_ms)
    }

    pub fn wait_timeout(&self) -> Duration {
        Duration::from_millis(self.wait_timeout_ms)
    }

    /// What the connection is made to, for messages: the url, or the seed nodes.
    pub fn target(&self) -> String {
        match self.mode {
            Mode::Single => self.url.clone(),
            Mode::Cluster => self.nodes.join(","),
        }
    }

    /// Every bad field, each as `<table>.<field>: <rule>`.
    pub fn validate(&self, table: &str) -> Vec<String> {
        let mut problems = Vec::new();
        let mut check = |ok: bool, field: &str, rule: &str| {
            if !ok {
                problems.push(format!("{table}.{field}: {rule}"));
            }
        };
        match self.mode {
            Mode::Single => check(
                is_redis_url(&self.url) || self.url.starts_with("unix://"),
                "url",
                "must start with redis:// or unix://",
            ),
            Mode::Cluster => {
                check(
                    !self.nodes.is_empty(),
                    "nodes",
                    "must name at least one node of the cluster in cluster mode",
                );
                check(
                    self.nodes.iter().all(|node| is_redis_url(node)),
                    "nodes",
                    "must be redis://host:port/ urls",
                );
            }
        }
        check(
            (1..=60_000).contains(&self.command_timeout_ms),
            "command_timeout_ms",
            "must be between 1 and 60000",
        );
        check(
            self.wait_replicas <= 5,
            "wait_replicas",
            "must be between 0 and 5",
        );
        check(
            (1..=10_000).contains(&self.wait_timeout_ms),
            "wait_timeout_ms",
            "must be between 1 and 10000",
        );
        problems
    }
}

fn is_redis_url(url: &str) -> bool {
    url.strip_prefix("redis://")
        .is_some_and(|rest| !rest.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(toml_text: &str) -> Vec<String> {
        let config: Config = toml::from_str(toml_text).unwrap();
        config.validate("redis")
    }

    #[test]
    fn each_mode_needs_its_address() {
        let check = |text: &str, expected: &[&str]| {
            assert_eq!(problems(text), expected, "{text}");
        };
        check("", &[]);
        check("mode = 'single'\nurl = 'redis://h:1/'", &[]);
        check(
            "url = 'http://h:1/'",
            &["redis.url: must start with redis:// or unix://"],
        );
        check(
            "mode = 'cluster'",
            &["redis.nodes: must name at least one node of the cluster in cluster mode"],
        );
        check(
            "mode = 'cluster'\nnodes = ['redis://h:1/', 'redis://h:2/']",
            &[],
        );
        check(
            "mode = 'cluster'\nnodes = ['h:1']",
            &["redis.nodes: must be redis://host:port/ urls"],
        );
        check(
            "command_timeout_ms = 0\nwait_replicas = 9\nwait_timeout_ms = 0",
            &[
                "redis.command_timeout_ms: must be between 1 and 60000",
                "redis.wait_replicas: must be between 0 and 5",
                "redis.wait_timeout_ms: must be between 1 and 10000",
            ],
        );
    }

    #[test]
    fn unknown_fields_and_modes_are_refused() {
        assert!(toml::from_str::<Config>("mode = 'sentinel'").is_err());
        assert!(toml::from_str::<Config>("seeds = []").is_err());
    }
}
