//! `[pages]`: how long nginx and browsers may keep the sale's status JSON and its page.

use serde::Deserialize;
use service::config::Problems;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PagesConfig {
    /// `max-age` of the status JSON while a sale is open, in seconds.
    pub status_max_age_seconds: u32,
    /// `stale-while-revalidate` of the status JSON, in seconds.
    pub status_stale_seconds: u32,
    /// `max-age` once the sale is sold out (short: returned stock may re-open it); at least
    /// `status_max_age_seconds`.
    pub sold_out_max_age_seconds: u32,
    /// `max-age` once the sale has ended.
    pub final_max_age_seconds: u32,
    /// `max-age` of the sale page.
    pub page_max_age_seconds: u32,
}

impl Default for PagesConfig {
    fn default() -> Self {
        Self {
            status_max_age_seconds: 1,
            status_stale_seconds: 5,
            sold_out_max_age_seconds: 5,
            final_max_age_seconds: 60,
            page_max_age_seconds: 10,
        }
    }
}

impl PagesConfig {
    pub(super) fn validate(&self, problems: &mut Problems) {
        problems.check(
            self.status_max_age_seconds <= self.final_max_age_seconds,
            "pages.status_max_age_seconds",
            "must be at most pages.final_max_age_seconds",
        );
        problems.check(
            self.sold_out_max_age_seconds >= self.status_max_age_seconds,
            "pages.sold_out_max_age_seconds",
            "must be at least pages.status_max_age_seconds",
        );
    }
}
