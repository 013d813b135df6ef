//! The edge's three limits and their shared vocabulary: a [`Decision`] with its [`Quota`], the
//! `RateLimit-*` / `Retry-After` headers it renders, and [`LimitError`], the one failure type of
//! the Redis-backed limits. Per IP in memory ([`ip`]), per UID as GCRA in Redis ([`uid`]), and a
//! global admission rate per sale leased from Redis ([`global`]). Which limit denied is named by
//! the caller, and so is the dry run of the IP and global limits (the UID script needs its flag).

pub mod global;
pub mod ip;
pub mod uid;

use std::time::Duration;

use http::{HeaderName, HeaderValue};
use redis::Value;
use redis_layer::Redis;

/// What a limit allows, as the `RateLimit-*` headers tell it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// Requests allowed at once (the burst, or the global rate's one second of budget).
    pub limit: u64,
    /// Requests still allowed at once after this one.
    pub remaining: u64,
    /// Time until the limit is fully available again.
    pub reset: Duration,
}

/// A limit's verdict on one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow(Quota),
    Deny { retry_after: Duration, quota: Quota },
}

impl Decision {
    pub fn quota(&self) -> Quota {
        match self {
            Self::Allow(quota) | Self::Deny { quota, .. } => *quota,
        }
    }

    pub fn is_allowed(&self) -> bool {
        matches!(self, Self::Allow(_))
    }
}

pub const RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("ratelimit-limit");
pub const RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("ratelimit-remaining");
pub const RATELIMIT_RESET: HeaderName = HeaderName::from_static("ratelimit-reset");

/// The response headers of a decision: `RateLimit-Limit`, `RateLimit-Remaining`,
/// `RateLimit-Reset` (whole seconds, rounded up) and, on deny, `Retry-After` (whole seconds,
/// rounded up, at least 1 so a client never retries at once). Extends a `HeaderMap` directly.
pub fn headers(decision: &Decision) -> Vec<(HeaderName, HeaderValue)> {
    let quota = decision.quota();
    let mut headers = vec![
        (RATELIMIT_LIMIT, HeaderValue::from(quota.limit)),
        (RATELIMIT_REMAINING, HeaderValue::from(quota.remaining)),
        (RATELIMIT_RESET, HeaderValue::from(seconds_up(quota.reset))),
    ];
    if let Decision::Deny { retry_after, .. } = decision {
        let seconds = seconds_up(*retry_after).max(1);
        headers.push((http::header::RETRY_AFTER, HeaderValue::from(seconds)));
    }
    headers
}

/// Whole seconds, rounded up.
fn seconds_up(duration: Duration) -> u64 {
    duration.as_secs() + u64::from(duration.subsec_nanos() > 0)
}

/// Why a limit could not decide. Redis failures are the upstream's fault; a bad quota or an
/// unexpected script reply is ours.
#[derive(Debug, thiserror::Error)]
pub enum LimitError {
    #[error(transparent)]
    Redis(#[from] redis_layer::Error),
    /// An earlier failure of `what` is recent: Redis is not asked again before `retry_after`.
    #[error("redis {what} failed recently, not retried for {retry_after:?}")]
    Backoff {
        what: &'static str,
        retry_after: Duration,
    },
    #[error("unexpected {0}")]
    Protocol(&'static str),
    #[error("limit quota {field}: {problem}")]
    Quota {
        field: &'static str,
        problem: &'static str,
    },
}

impl LimitError {
    /// Whether Redis (not the edge) is at fault.
    pub fn is_upstream(&self) -> bool {
        matches!(self, Self::Redis(_) | Self::Backoff { .. })
    }
}

/// Runs a script by EVALSHA (loading it again where Redis answers NOSCRIPT).
async fn run_script<T: redis::FromRedisValue>(
    redis: &Redis,
    what: &'static str,
    invocation: &redis::ScriptInvocation<'_>,
) -> Result<T, LimitError> {
    Ok(redis.script(what, invocation).await?)
}

fn text(v: Option<&Value>) -> Option<&str> {
    match v? {
        Value::BulkString(b) => std::str::from_utf8(b).ok(),
        Value::SimpleString(s) => Some(s),
        _ => None,
    }
}

/// A non-negative integer of a script reply.
fn count(v: Option<&Value>) -> Option<u64> {
    match v? {
        Value::Int(n) => u64::try_from(*n).ok(),
        other => text(Some(other))?.parse().ok(),
    }
}

/// Milliseconds of a script reply as a duration.
fn millis(v: Option<&Value>) -> Option<Duration> {
    count(v).map(Duration::from_millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(decision: Decision, expected: &[(&str, &str)]) {
        let rendered: Vec<(String, String)> = headers(&decision)
            .into_iter()
            .map(|(name, value)| (name.to_string(), value.to_str().unwrap().to_string()))
            .collect();
        let expected: Vec<(String, String)> = expected
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        assert_eq!(rendered, expected, "{decision:?}");
    }

    fn quota(limit: u64, remaining: u64, reset_ms: u64) -> Quota {
        Quota {
            limit,
            remaining,
            reset: Duration::from_millis(reset_ms),
        }
    }

    #[test]
    fn headers_round_seconds_up_and_retry_after_is_at_least_one() {
        check(
            Decision::Allow(quota(5, 4, 500)),
            &[
                ("ratelimit-limit", "5"),
                ("ratelimit-remaining", "4"),
                ("ratelimit-reset", "1"),
            ],
        );
        check(
            Decision::Allow(quota(5, 5, 0)),
            &[
                ("ratelimit-limit", "5"),
                ("ratelimit-remaining", "5"),
                ("ratelimit-reset", "0"),
            ],
        );
        check(
            Decision::Allow(quota(5, 0, 2000)),
            &[
                ("ratelimit-limit", "5"),
                ("ratelimit-remaining", "0"),
                ("ratelimit-reset", "2"),
            ],
        );
        for (retry_ms, shown) in [(0, "1"), (1, "1"), (999, "1"), (1000, "1"), (1001, "2")] {
            check(
                Decision::Deny {
                    retry_after: Duration::from_millis(retry_ms),
                    quota: quota(2, 0, 2001),
                },
                &[
                    ("ratelimit-limit", "2"),
                    ("ratelimit-remaining", "0"),
                    ("ratelimit-reset", "3"),
                    ("retry-after", shown),
                ],
            );
        }
    }

    #[test]
    fn replies_parse_as_counts_and_millis() {
        let bulk = |s: &str| Value::BulkString(s.as_bytes().to_vec());
        assert_eq!(count(Some(&Value::Int(3))), Some(3));
        assert_eq!(count(Some(&Value::Int(-1))), None);
        assert_eq!(count(Some(&bulk("12"))), Some(12));
        assert_eq!(count(None), None);
        assert_eq!(
            millis(Some(&Value::Int(1500))),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(text(Some(&bulk("ADMITTED"))), Some("ADMITTED"));
        assert_eq!(text(Some(&Value::Int(1))), None);
    }
}
