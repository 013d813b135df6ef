//! Typed configuration of the origin (`deploy/origin.toml`), one file per table, each with its
//! defaults and its checks: every field has a default, unknown fields are refused, and
//! `validate` reports every bad field at once, by name (`service::config` reads the file).

mod coordinator;
mod holds;
mod http;
mod payments;
mod postgres;
mod recovery;
mod sales;
#[cfg(test)]
mod tests;

use serde::Deserialize;
pub use service::config::{ConfigError, ConfigFile, Problems};

pub use self::{
    coordinator::{CoordinatorConfig, CoordinatorKind},
    holds::HoldsConfig,
    http::HttpConfig,
    payments::PaymentsConfig,
    postgres::PostgresConfig,
    recovery::RecoveryConfig,
    sales::SalesConfig,
};

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
    pub coordinator: CoordinatorConfig,
}

impl ConfigFile for Config {
    fn validate(&self, problems: &mut Problems) {
        self.http.validate(problems);
        problems.extend(self.redis.validate("redis"));
        self.postgres.validate(problems);
        self.recovery.validate(problems);
        self.sales.validate(problems);
        self.holds.validate(problems);
        self.payments.validate(problems);
        self.coordinator.validate(problems);
    }
}
