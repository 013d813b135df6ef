//! `[origin]`: the origins the edge forwards to, round robin, and the time allowed to each.

use std::time::Duration;

use http::Uri;
use serde::Deserialize;
use service::config::{
    fields::{millis, parsed_list},
    Problems,
};

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OriginConfig {
    /// Base URLs of the origins (`http://`), used round robin.
    #[serde(deserialize_with = "parsed_list")]
    pub urls: Vec<Uri>,
    /// `timeout_ms`: time allowed for one origin request, connection included.
    #[serde(rename = "timeout_ms", with = "millis")]
    pub timeout: Duration,
    /// `connect_timeout_ms`: time allowed to connect to an origin.
    #[serde(rename = "connect_timeout_ms", with = "millis")]
    pub connect_timeout: Duration,
    /// `retry_dead_after_ms`: an origin that failed is skipped this long, then tried again.
    #[serde(rename = "retry_dead_after_ms", with = "millis")]
    pub retry_dead_after: Duration,
    /// Idle keep-alive connections kept per origin.
    pub pool_idle_per_origin: usize,
}

impl Default for OriginConfig {
    fn default() -> Self {
        Self {
            urls: vec![Uri::from_static("http://127.0.0.1:8082")],
            timeout: Duration::from_secs(2),
            connect_timeout: Duration::from_millis(300),
            retry_dead_after: Duration::from_secs(2),
            pool_idle_per_origin: 256,
        }
    }
}

impl OriginConfig {
    pub(super) fn validate(&self, problems: &mut Problems) {
        problems.check(
            !self.urls.is_empty()
                && self
                    .urls
                    .iter()
                    .all(|u| u.scheme_str() == Some("http") && u.authority().is_some()),
            "origin.urls",
            "must list at least one http:// URL",
        );
        let ms = Duration::as_millis;
        problems.range("origin.timeout_ms", ms(&self.timeout), 1..=60_000);
        problems.range(
            "origin.connect_timeout_ms",
            ms(&self.connect_timeout),
            1..=60_000,
        );
        problems.range(
            "origin.retry_dead_after_ms",
            ms(&self.retry_dead_after),
            1..=3_600_000,
        );
    }
}
