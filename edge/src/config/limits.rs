//! `[limits]`: the per-IP and per-user rates of buy requests, the global admission per sale
//! (leased from Redis across all edges), and the captcha endpoints' own limits.

use serde::Deserialize;
use service::config::Problems;

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    pub ip: RateConfig,
    pub uid: RateConfig,
    pub global: GlobalConfig,
    pub captcha: CaptchaLimitsConfig,
}

/// The limits of `GET` and `POST /api/captcha` together, in this edge's memory.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CaptchaLimitsConfig {
    /// Per client IP (IPv6 by its /64).
    pub ip: RateConfig,
    /// Per user (the JWT's `sub`).
    pub uid: RateConfig,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateConfig {
    /// Sustained requests per second.
    pub per_second: f64,
    /// Requests allowed at once above the sustained rate.
    pub burst: u32,
    /// Log and count what would be refused, but let it through.
    pub dry_run: bool,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GlobalConfig {
    /// Buy requests per second admitted per sale, across all edges.
    pub per_second: u32,
    /// Admissions an edge leases from Redis at a time.
    pub lease: u32,
    pub dry_run: bool,
}

impl Default for RateConfig {
    fn default() -> Self {
        Self::new(2.0, 5)
    }
}

impl RateConfig {
    fn new(per_second: f64, burst: u32) -> Self {
        Self {
            per_second,
            burst,
            dry_run: false,
        }
    }

    fn validate(&self, table: &str, problems: &mut Problems) {
        problems.check(
            self.per_second > 0.0 && self.per_second <= 1e6,
            &format!("{table}.per_second"),
            "must be above 0 and at most 1000000",
        );
        problems.range(&format!("{table}.burst"), self.burst, 1..=1_000_000);
    }
}

impl Default for CaptchaLimitsConfig {
    fn default() -> Self {
        Self {
            ip: RateConfig::new(10.0, 40),
            uid: RateConfig::new(1.0, 10),
        }
    }
}

impl Default for GlobalConfig {
    fn default() -> Self {
        Self {
            per_second: 5000,
            lease: 50,
            dry_run: false,
        }
    }
}

impl LimitsConfig {
    pub(super) fn validate(&self, problems: &mut Problems) {
        self.ip.validate("limits.ip", problems);
        self.uid.validate("limits.uid", problems);
        self.captcha.ip.validate("limits.captcha.ip", problems);
        self.captcha.uid.validate("limits.captcha.uid", problems);
        let global = &self.global;
        problems.range(
            "limits.global.per_second",
            global.per_second,
            1..=10_000_000,
        );
        problems.check(
            (1..=100_000).contains(&global.lease) && global.lease <= global.per_second,
            "limits.global.lease",
            "must be between 1 and limits.global.per_second",
        );
    }
}
