//! `[recovery]`: the poller that takes over unfinished transactions, and the heal lock.

use std::time::Duration;

use serde::Deserialize;
use service::config::{fields::millis, Problems};

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RecoveryConfig {
    /// `timeout_ms`: age after which an unfinished transaction is taken over by recovery.
    #[serde(rename = "timeout_ms", with = "millis")]
    pub timeout: Duration,
    /// `poll_interval_ms`: interval between two polls (the index of active sales, then their due
    /// sets).
    #[serde(rename = "poll_interval_ms", with = "millis")]
    pub poll_interval: Duration,
    /// `lease_ms`: first lease on a claimed transaction; doubled on every attempt.
    #[serde(rename = "lease_ms", with = "millis")]
    pub lease: Duration,
    /// `max_lease_ms`: largest lease.
    #[serde(rename = "max_lease_ms", with = "millis")]
    pub max_lease: Duration,
    /// Transactions claimed per sale and poll.
    pub batch: u32,
    /// `heal_lock_ms`: lifetime of a sale's heal lock, renewed by each step of the heal: an
    /// origin that dies healing holds the sale back this long at most.
    #[serde(rename = "heal_lock_ms", with = "millis")]
    pub heal_lock: Duration,
}

impl Default for RecoveryConfig {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(3),
            poll_interval: Duration::from_millis(200),
            lease: Duration::from_secs(2),
            max_lease: Duration::from_secs(60),
            batch: 64,
            heal_lock: Duration::from_secs(10),
        }
    }
}

impl RecoveryConfig {
    pub(super) fn validate(&self, problems: &mut Problems) {
        let ms = Duration::as_millis;
        problems.range("recovery.timeout_ms", ms(&self.timeout), 10..=3_600_000);
        problems.range(
            "recovery.poll_interval_ms",
            ms(&self.poll_interval),
            10..=60_000,
        );
        problems.range("recovery.lease_ms", ms(&self.lease), 10..=3_600_000);
        problems.check(
            self.max_lease >= self.lease,
            "recovery.max_lease_ms",
            "must be at least recovery.lease_ms",
        );
        problems.range("recovery.batch", self.batch, 1..=10_000);
        problems.range("recovery.heal_lock_ms", ms(&self.heal_lock), 100..=600_000);
    }
}
