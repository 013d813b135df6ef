//! `[postgres]`: the database of sales and orders, its pool, and the group commit of branches.

use std::time::Duration;

use serde::Deserialize;
use service::config::{fields::millis, Problems};

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PostgresConfig {
    /// `postgres://user@host:port/db` of the database holding sales and orders.
    pub url: String,
    /// Connections in the pool.
    pub pool_size: usize,
    /// `statement_timeout_ms`: time allowed to get a connection and run one statement.
    #[serde(rename = "statement_timeout_ms", with = "millis")]
    pub statement_timeout: Duration,
    /// Most branches (winners' orders) written in one database transaction (group commit).
    pub branch_batch: usize,
    /// Tasks writing branch batches at once, each on a connection of the pool.
    pub branch_writers: usize,
}

impl Default for PostgresConfig {
    fn default() -> Self {
        Self {
            url: "postgres://flash@127.0.0.1:5433/flash".into(),
            pool_size: 16,
            statement_timeout: Duration::from_secs(2),
            branch_batch: 128,
            branch_writers: 2,
        }
    }
}

impl PostgresConfig {
    pub(super) fn validate(&self, problems: &mut Problems) {
        problems.check(
            self.url.parse::<tokio_postgres::Config>().is_ok(),
            "postgres.url",
            "must be a postgres:// URL",
        );
        problems.range("postgres.pool_size", self.pool_size, 1..=1000);
        problems.range("postgres.branch_batch", self.branch_batch, 1..=10_000);
        problems.check(
            (1..=self.pool_size).contains(&self.branch_writers),
            "postgres.branch_writers",
            "must be between 1 and postgres.pool_size",
        );
        problems.range(
            "postgres.statement_timeout_ms",
            self.statement_timeout.as_millis(),
            1..=600_000,
        );
    }
}
