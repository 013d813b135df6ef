//! The edge's Redis-backed limits against a real Redis shared by two edges: the per-UID GCRA and
//! its pass-token spending in one EVALSHA, and the global admission rate per sale leased in
//! slices (two limiters on two connections), whose bound and Redis cost are measured with two
//! edge processes in front of a real origin.
//! One module per concern: the per-UID limit (`uid`), the global admission rate (`global`). One
//! test binary.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "integration tests: a failed unwrap is a failed test, with its message"
)]

mod global;
mod uid;

use flash_tests::{edge_binary, origin_binary};
use std::{sync::Arc, time::Duration};

use edge::pass::{Earned, PassTokens};

/// A pass that meets every captcha level: this file tests the limits, not the captcha.
const ANY_LEVEL: Earned = Earned {
    difficulty: u8::MAX,
    image: true,
};
use edge::{
    config::{GlobalConfig, RateConfig},
    limits::{
        global::GlobalLimiter,
        uid::{Admission, UidLimiter, UserKeys},
        Decision, LimitError,
    },
};
use flash_tests::{
    edge_process::{EdgeOptions, EdgeProcess, CAPTCHA_SECRET},
    origin_process::OriginOptions,
    redis_server::RedisServer,
    shopper,
    stack::Stack,
};
use redis::AsyncCommands;
use tokio::time::Instant;

/// Command timeout of the limiters: generous, so a slow machine does not fail a test.
const TIMEOUT: Duration = Duration::from_secs(5);
const PASS_TTL: u64 = 60;

/// The sale of the limiter tests: the per-UID keys are under its hash tag.
const SALE: i64 = 1;

async fn uid_limiter(redis: &RedisServer) -> UidLimiter {
    let limiter = UidLimiter::new(redis.handle(TIMEOUT).await.unwrap());
    limiter.preload().await.unwrap();
    limiter
}

fn rate(per_second: f64, burst: u32, dry_run: bool) -> RateConfig {
    RateConfig {
        per_second,
        burst,
        dry_run,
    }
}

/// `Ok(remaining)` for an admission, the admission itself otherwise.
fn remaining(admission: Admission) -> Result<u64, Admission> {
    match admission {
        Admission::Admitted(quota) => Ok(quota.remaining),
        other => Err(other),
    }
}
