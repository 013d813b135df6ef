//! `[sales]`: what a sale is created with when it does not say, and how long its Redis keys last.

use serde::Deserialize;
use service::config::Problems;

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

impl Default for SalesConfig {
    fn default() -> Self {
        Self {
            default_hold_seconds: 600,
            max_stock: 10_000_000,
            keys_retention_seconds: 86_400,
        }
    }
}

impl SalesConfig {
    pub(super) fn validate(&self, problems: &mut Problems) {
        problems.range(
            "sales.default_hold_seconds",
            self.default_hold_seconds,
            1..=7 * 86_400,
        );
        problems.range("sales.max_stock", self.max_stock, 1..=1_000_000_000);
        problems.range(
            "sales.keys_retention_seconds",
            self.keys_retention_seconds,
            60..=30 * 86_400,
        );
    }
}
