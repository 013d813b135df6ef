//! Wall-clock time for tokens and pages (expiries are Unix seconds, shared with browsers and
//! other edges). Durations and rates use `tokio::time` instead.

use time::OffsetDateTime;

pub fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    u64::try_from(now().unix_timestamp()).unwrap_or(0)
}
