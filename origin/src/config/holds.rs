//! `[holds]`: how long an order's hold may be extended, and the sweep of expired holds.

use serde::Deserialize;
use service::config::Problems;

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

impl Default for HoldsConfig {
    fn default() -> Self {
        Self {
            extend_seconds: 300,
            max_hold_seconds: 1800,
            sweep_batch: 100,
        }
    }
}

impl HoldsConfig {
    pub(super) fn validate(&self, problems: &mut Problems) {
        problems.range("holds.extend_seconds", self.extend_seconds, 1..=86_400);
        problems.range(
            "holds.max_hold_seconds",
            self.max_hold_seconds,
            1..=7 * 86_400,
        );
        problems.range("holds.sweep_batch", self.sweep_batch, 1..=10_000);
    }
}
