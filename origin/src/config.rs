//! Typed configuration of the origin (`deploy/origin.toml`): every field has a default, unknown
//! fields are refused, and `validate` reports every bad field at once, by name.

use std::{net::SocketAddr, path::Path, time::Duration};

use serde::Deserialize;

/// Everything the origin reads from its TOML file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub http: HttpConfig,
    pub redis: redis_layer::Config,
    pub postgres: PostgresConfig,
    pub recovery: RecoveryConfig,
    pub sales: SalesConfig,
    pub holds: HoldsConfig,
    pub payments: PaymentsConfig,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Address of the internal HTTP API.
    pub listen: SocketAddr,
    /// Largest request body accepted, in bytes.
    pub body_limit_bytes: usize,
    /// Longest uid accepted, in bytes.
    pub max_uid_bytes: usize,
    /// Slow clients and the connection cap (`[http.connections]`).
    pub connections: service::listener::ConnectionConfig,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PostgresConfig {
    /// `postgres://user@host:port/db` of the database holding sales and orders.
    pub url: String,
    /// Connections in the pool.
    pub pool_size: usize,
    /// Time allowed to get a connection and run one statement.
    pub statement_timeout_ms: u64,
    /// Most branches (winners' orders) written in one database transaction (group commit).
    pub branch_batch: usize,
    /// Tasks writing branch batches at once, each on a connection of the pool.
    pub branch_writers: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RecoveryConfig {
    /// Age after which an unfinished transaction is taken over by recovery.
    pub timeout_ms: u64,
    /// Interval between two polls (the index of active sales, then their due sets).
    pub poll_interval_ms: u64,
    /// First lease on a claimed transaction; doubled on every attempt.
    pub lease_ms: u64,
    /// Largest lease.
    pub max_lease_ms: u64,
    /// Transactions claimed per sale and poll.
    pub batch: u32,
    /// Lifetime of a sale's heal lock, renewed by each step of the heal: an origin that dies
    /// healing holds the sale back this long at most.
    pub heal_lock_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SalesConfig {
    /// Hold time of an order when its sale does not set one.
    pub default_hold_seconds: u32,
    /// Largest stock a sale may be created with.
    pub max_stock: u32,
    /// The keys of a sale in Redis (barriers, transaction records) expire this long after its
    /// end; a sale ended longer ago is not healed back into Redis. dtm keeps its barriers a day.
    pub keys_retention_seconds: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HoldsConfig {
    /// Seconds one extension adds to a hold (a hold can be extended once).
    pub extend_seconds: u32,
    /// Longest a hold may last from the order's creation, extension included, in seconds.
    pub max_hold_seconds: u32,
    /// Expired holds cancelled per sweep.
    pub sweep_batch: u32,
}

/// The payment service's webhooks (`POST /v1/payments/webhook`): the only way an order is paid.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PaymentsConfig {
    /// HMAC-SHA256 key the payment service signs its webhooks with (at least 32 bytes). Lives
    /// only on the origins (and, in dev mode, in the edge's `payments.dev_webhook_secret`).
    pub webhook_secret: String,
    /// Keys still accepted during a rotation (each at least 32 bytes): the new key goes into
    /// `webhook_secret`, the old one here until the payment service signs with the new one.
    pub previous_webhook_secrets: Vec<String>,
    /// Largest difference, in seconds, between a webhook's signed `t=` and the origin's clock.
    pub tolerance_seconds: u32,
}

impl Default for PaymentsConfig {
    fn default() -> Self {
        Self {
            webhook_secret: String::new(),
            previous_webhook_secrets: Vec::new(),
            tolerance_seconds: 300,
        }
    }
}

impl PaymentsConfig {
    /// Every key a webhook may be signed with, the current one first.
    pub fn secrets(&self) -> impl Iterator<Item = &str> + Clone {
        std::iter::once(self.webhook_secret.as_str())
            .chain(self.previous_webhook_secrets.iter().map(String::as_str))
    }
}

impl Default for HoldsConfig {
    fn default() -> Self {
        Self {
            extend_seconds: 300,
            max_hold_seconds: 1800,
            sweep_batch: 100,
        }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8082)),
            body_limit_bytes: 4096,
            max_uid_bytes: 128,
            connections: service::listener::ConnectionConfig::default(),
        }
    }
}

impl Default for PostgresConfig {
    fn default() -> Self {
        Self {
            url: "postgres://flash@127.0.0.1:5433/flash".into(),
            pool_size: 16,
            statement_timeout_ms: 2000,
            branch_batch: 128,
            branch_writers: 2,
        }
    }
}

impl Default for RecoveryConfig {
    fn default() -> Self {
        Self {
            timeout_ms: 3000,
            poll_interval_ms: 200,
            lease_ms: 2000,
            max_lease_ms: 60_000,
            batch: 64,
            heal_lock_ms: 10_000,
        }
    }
}

impl Default for SalesConfig {
    fn default() -> Self {
        Self {
            default_hold_seconds: 600,
            max_stock: 10_000_000,
            keys_retention_seconds: 86_400,
        }
    }
}

/// Why a configuration file was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("config {path}: {message}")]
    Parse { path: String, message: String },
    #[error("config {path}: {}", .problems.join("; "))]
    Invalid { path: String, problems: Vec<String> },
}

impl Config {
    /// Reads, parses and validates the file at `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: shown.clone(),
            source,
        })?;
        Self::parse(&text, &shown)
    }

    /// Parses and validates TOML text; `origin` names the source in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: origin.to_string(),
            message: e.message().to_string() + &span_hint(text, e.span()),
        })?;
        let problems = config.validate();
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError::Invalid {
                path: origin.to_string(),
                problems,
            })
        }
    }

    /// Every bad field, named, or an empty list.
    pub fn validate(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let mut check = |ok: bool, field: &str, rule: &str| {
            if !ok {
                problems.push(format!("{field}: {rule}"));
            }
        };
        check(
            (64..=1 << 20).contains(&self.http.body_limit_bytes),
            "http.body_limit_bytes",
            "must be between 64 and 1048576",
        );
        check(
            (1..=1024).contains(&self.http.max_uid_bytes),
            "http.max_uid_bytes",
            "must be between 1 and 1024",
        );
        problems.extend(self.http.connections.validate("http.connections"));
        problems.extend(self.redis.validate("redis"));
        let mut check = |ok: bool, field: &str, rule: &str| {
            if !ok {
                problems.push(format!("{field}: {rule}"));
            }
        };
        check(
            (60..=30 * 86_400).contains(&self.sales.keys_retention_seconds),
            "sales.keys_retention_seconds",
            "must be between 60 and 2592000",
        );
        check(
            (100..=600_000).contains(&self.recovery.heal_lock_ms),
            "recovery.heal_lock_ms",
            "must be between 100 and 600000",
        );
        check(
            self.postgres.url.parse::<tokio_postgres::Config>().is_ok(),
            "postgres.url",
            "must be a postgres:// URL",
        );
        check(
            (1..=1000).contains(&self.postgres.pool_size),
            "postgres.pool_size",
            "must be between 1 and 1000",
        );
        check(
            (1..=10_000).contains(&self.postgres.branch_batch),
            "postgres.branch_batch",
            "must be between 1 and 10000",
        );
        check(
            (1..=self.postgres.pool_size).contains(&self.postgres.branch_writers),
            "postgres.branch_writers",
            "must be between 1 and postgres.pool_size",
        );
        check(
            (1..=600_000).contains(&self.postgres.statement_timeout_ms),
            "postgres.statement_timeout_ms",
            "must be between 1 and 600000",
        );
        check(
            (10..=3_600_000).contains(&self.recovery.timeout_ms),
            "recovery.timeout_ms",
            "must be between 10 and 3600000",
        );
        check(
            (10..=60_000).contains(&self.recovery.poll_interval_ms),
            "recovery.poll_interval_ms",
            "must be between 10 and 60000",
        );
        check(
            (10..=3_600_000).contains(&self.recovery.lease_ms),
            "recovery.lease_ms",
            "must be between 10 and 3600000",
        );
        check(
            self.recovery.max_lease_ms >= self.recovery.lease_ms,
            "recovery.max_lease_ms",
            "must be at least recovery.lease_ms",
        );
        check(
            (1..=10_000).contains(&self.recovery.batch),
            "recovery.batch",
            "must be between 1 and 10000",
        );
        check(
            (1..=7 * 86_400).contains(&self.sales.default_hold_seconds),
            "sales.default_hold_seconds",
            "must be between 1 and 604800",
        );
        check(
            (1..=1_000_000_000).contains(&self.sales.max_stock),
            "sales.max_stock",
            "must be between 1 and 1000000000",
        );
        check(
            (1..=86_400).contains(&self.holds.extend_seconds),
            "holds.extend_seconds",
            "must be between 1 and 86400",
        );
        check(
            (1..=7 * 86_400).contains(&self.holds.max_hold_seconds),
            "holds.max_hold_seconds",
            "must be between 1 and 604800",
        );
        check(
            (1..=10_000).contains(&self.holds.sweep_batch),
            "holds.sweep_batch",
            "must be between 1 and 10000",
        );
        check(
            (1..=3600).contains(&self.payments.tolerance_seconds),
            "payments.tolerance_seconds",
            "must be between 1 and 3600",
        );
        // The origin has no dev mode: its webhook keys are held to the production standard always
        // (./deploy/up and the tests render random ones).
        service::secret::check(
            &mut problems,
            "payments.webhook_secret",
            &self.payments.webhook_secret,
            false,
        );
        for (i, old) in self.payments.previous_webhook_secrets.iter().enumerate() {
            service::secret::check(
                &mut problems,
                &format!("payments.previous_webhook_secrets[{i}]"),
                old,
                false,
            );
        }
        problems
    }

    pub fn statement_timeout(&self) -> Duration {
        Duration::from_millis(self.postgres.statement_timeout_ms)
    }
}

/// " (line L)" for a parse error's span, so an SRE finds the line at once.
fn span_hint(text: &str, span: Option<std::ops::Range<usize>>) -> String {
    match span {
        Some(span) => {
            let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
            format!(" (line {line})")
        }
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A key as `openssl rand -base64 36` makes one.
    const KEY: &str = "CktOb6zNA57kb+FcGF2eYWw4lXjtQcaFnfQGppyuSqGSQW3F";

    #[test]
    fn shipped_file_is_valid_and_matches_the_defaults() {
        // The webhook secret ships empty (the origin refuses to start on it): set one to compare.
        let text = include_str!("../../deploy/origin.toml").replace(
            "webhook_secret = \"\"",
            &format!("webhook_secret = \"{KEY}\""),
        );
        let shipped = Config::parse(&text, "deploy/origin.toml").unwrap();
        let mut defaults = Config::default();
        defaults
            .payments
            .webhook_secret
            .clone_from(&shipped.payments.webhook_secret);
        assert_eq!(format!("{shipped:?}"), format!("{defaults:?}"));
    }

    #[test]
    fn every_bad_field_is_named_at_once() {
        let text = "[http]\nbody_limit_bytes = 1\n[recovery]\nbatch = 0\nlease_ms = 100\nmax_lease_ms = 50\n";
        let err = Config::parse(text, "t").unwrap_err().to_string();
        for field in [
            "http.body_limit_bytes",
            "recovery.batch",
            "recovery.max_lease_ms",
            "payments.webhook_secret",
        ] {
            assert!(err.contains(field), "{err} should name {field}");
        }
    }

    #[test]
    fn webhook_secrets_are_at_least_32_bytes_and_the_tolerance_bounded() {
        let key = KEY;
        let check = |payments: &str, bad: &[&str]| {
            let problems = match Config::parse(&format!("[payments]\n{payments}"), "t") {
                Ok(_) => Vec::new(),
                Err(ConfigError::Invalid { problems, .. }) => problems,
                Err(e) => panic!("{e}"),
            };
            for field in bad {
                assert!(
                    problems.iter().any(|p| p.starts_with(field)),
                    "{payments}: {problems:?} should name {field}"
                );
            }
            assert_eq!(problems.len(), bad.len(), "{payments}: {problems:?}");
        };
        check(&format!("webhook_secret = \"{key}\"\n"), &[]);
        check("webhook_secret = \"short\"\n", &["payments.webhook_secret"]);
        check(
            &format!(
                "webhook_secret = \"{key}\"\nprevious_webhook_secrets = [\"{key}\", \"old\"]\n"
            ),
            &["payments.previous_webhook_secrets[1]"],
        );
        check(
            &format!("webhook_secret = \"{key}\"\ntolerance_seconds = 0\n"),
            &["payments.tolerance_seconds"],
        );
    }

    #[test]
    fn unknown_field_is_refused_with_its_line() {
        let err = Config::parse("[http]\nlisten = \"127.0.0.1:1\"\nlisen = 3\n", "t")
            .unwrap_err()
            .to_string();
        assert!(err.contains("lisen") && err.contains("line 3"), "{err}");
    }
}
