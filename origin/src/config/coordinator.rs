//! `[coordinator]`: who coordinates a purchase's two-phase message. `embedded` (the default):
//! this origin and its recovery poller. `dtm`: a dtm server (`dtm_url`), which this origin asks
//! to prepare and submit each winner's message and which calls back this origin's branch and
//! back-check endpoints at `callback_url` (docs/API.md, "dtm's calls").

use std::time::Duration;

use serde::Deserialize;
use service::config::Problems;

/// Which coordinator runs the purchases' two-phase messages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CoordinatorKind {
    /// This origin and its recovery poller.
    #[default]
    Embedded,
    /// A dtm server (v1.19's HTTP API), which recovers the messages itself.
    Dtm,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CoordinatorConfig {
    pub kind: CoordinatorKind,
    /// dtm's HTTP API, e.g. `http://127.0.0.1:36789/api/dtmsvr` (required with `kind = "dtm"`).
    pub dtm_url: String,
    /// This origin's base URL as dtm reaches it, e.g. `http://127.0.0.1:8082` (required with
    /// `kind = "dtm"`): dtm calls `{callback_url}/v1/dtm/branch` and `/v1/dtm/query`.
    pub callback_url: String,
    /// `timeout_to_fail_seconds`: how long dtm waits before it back-checks a prepared message
    /// (dtm's `timeout_to_fail`; 0: dtm's own default, 35 s). 3 by default, the embedded
    /// coordinator's `recovery.timeout`, so a crash costs a buyer as long under either.
    pub timeout_to_fail_seconds: u32,
    /// `retry_interval_seconds`: dtm's first retry interval for a failing branch or back-check
    /// (dtm's `retry_interval`; 0: dtm's own default, 10 s).
    pub retry_interval_seconds: u32,
    /// `request_timeout_ms`: longest this origin waits for dtm's answer to a prepare or submit.
    #[serde(
        rename = "request_timeout_ms",
        with = "service::config::fields::millis"
    )]
    pub request_timeout: Duration,
}

impl Default for CoordinatorConfig {
    fn default() -> Self {
        Self {
            kind: CoordinatorKind::Embedded,
            dtm_url: String::new(),
            callback_url: String::new(),
            timeout_to_fail_seconds: 3,
            retry_interval_seconds: 0,
            request_timeout: Duration::from_secs(3),
        }
    }
}

impl CoordinatorConfig {
    pub(super) fn validate(&self, problems: &mut Problems) {
        if self.kind == CoordinatorKind::Dtm {
            check_url(problems, "coordinator.dtm_url", &self.dtm_url);
            check_url(problems, "coordinator.callback_url", &self.callback_url);
        }
        problems.at_most(
            "coordinator.timeout_to_fail_seconds",
            self.timeout_to_fail_seconds,
            86_400,
        );
        problems.at_most(
            "coordinator.retry_interval_seconds",
            self.retry_interval_seconds,
            3_600,
        );
        problems.range(
            "coordinator.request_timeout_ms",
            self.request_timeout.as_millis(),
            10..=60_000,
        );
    }
}

/// An `http://` or `https://` URL with a host (required: the caller is a `dtm` coordinator).
fn check_url(problems: &mut Problems, field: &str, text: &str) {
    let ok = url::Url::parse(text)
        .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
    problems.check(ok, field, "must be an http:// or https:// URL with a host");
}

#[cfg(test)]
mod tests {
    use crate::config::{tests::KEY, Config, ConfigError, ConfigFile};

    /// The fields `validate` names for the `[coordinator]` table `table`.
    fn problems(table: &str) -> Vec<String> {
        let text = format!("[payments]\nwebhook_secret = \"{KEY}\"\n[coordinator]\n{table}");
        match Config::parse(&text, "t") {
            Ok(_) => Vec::new(),
            Err(ConfigError::Invalid { problems, .. }) => problems,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn dtm_needs_both_urls_and_embedded_needs_none() {
        let check = |table: &str, bad: &[&str]| {
            let found = problems(table);
            for field in bad {
                assert!(
                    found.iter().any(|p| p.starts_with(field)),
                    "{table}: {found:?} should name {field}"
                );
            }
            assert_eq!(found.len(), bad.len(), "{table}: {found:?}");
        };
        check("", &[]);
        check("kind = \"embedded\"\n", &[]);
        check(
            "kind = \"dtm\"\n",
            &["coordinator.dtm_url", "coordinator.callback_url"],
        );
        check(
            "kind = \"dtm\"\ndtm_url = \"http://127.0.0.1:36789/api/dtmsvr\"\ncallback_url = \"http://127.0.0.1:8082\"\n",
            &[],
        );
        check(
            "kind = \"dtm\"\ndtm_url = \"127.0.0.1:36789\"\ncallback_url = \"ftp://o\"\n",
            &["coordinator.dtm_url", "coordinator.callback_url"],
        );
        check(
            "timeout_to_fail_seconds = 90000\nretry_interval_seconds = 4000\nrequest_timeout_ms = 1\n",
            &[
                "coordinator.timeout_to_fail_seconds",
                "coordinator.retry_interval_seconds",
                "coordinator.request_timeout_ms",
            ],
        );
    }

    #[test]
    fn an_unknown_kind_is_refused() {
        let text = "[coordinator]\nkind = \"saga\"\n";
        assert!(Config::parse(text, "t").is_err());
    }
}
