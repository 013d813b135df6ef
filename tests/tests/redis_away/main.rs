//! Redis away in the middle of a sale: stopped for seconds under a crowd buying through the edge,
//! and killed with SIGKILL under a crowd of reservations. While it is away every answer that
//! needs it is a `503` JSON error with `Retry-After` and `Cache-Control: no-store`, within the
//! configured timeouts (never a hang); the sale status still answers, without the count; once
//! Redis is back (from its own AOF) the sale resumes by itself and sells out, every `reserved`
//! answer has its order, and the books balance without running reconcile. In a real Chromium the
//! sale page, its Buy pressed while Redis is away, says the shop is busy in words, tries again
//! no sooner than Retry-After asks, and completes the purchase by itself once Redis is back. One
//! test binary: `mid_crowd`, `kill_9`, `origin_503`, `page`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "integration tests: a failed unwrap is a failed test, with its message"
)]

mod kill_9;
mod mid_crowd;
mod origin_503;
mod page;

use flash_tests::edge_binary;
use std::{
    collections::{BTreeMap, HashSet},
    sync::{Arc, Mutex},
    time::Duration,
};

use flash_tests::{
    browser::{Browser, Chromedriver},
    edge_process::{EdgeOptions, EdgeProcess},
    front,
    front::{EdgeStack, Front, FrontBuilder},
    origin_process::OriginOptions,
    shopper,
    stack::Stack,
    wait,
};
use redis::AsyncCommands;
use serde_json::{json, Value};
use tokio::{sync::Semaphore, time::Instant};

/// Redis, PostgreSQL and an origin with the shipped Redis timeout (how fast a dead Redis is
/// answered is what these tests measure).
async fn stack() -> Stack {
    shipped().start_stack().await.unwrap()
}

/// The front stack with the shipped timeouts of the origin and, with a proof of work of
/// `difficulty`, of the edge.
fn shipped_front(difficulty: u8) -> FrontBuilder {
    shipped().edge(edge_options(difficulty))
}

fn shipped() -> FrontBuilder {
    front!().origin(OriginOptions {
        redis_timeout_ms: ORIGIN_REDIS_TIMEOUT_MS,
        ..OriginOptions::default()
    })
}

/// The edge with the shipped timeouts and a proof of work of `difficulty`.
fn edge_options(difficulty: u8) -> EdgeOptions {
    EdgeOptions {
        redis_timeout_ms: EDGE_REDIS_TIMEOUT_MS,
        origin_timeout_ms: EDGE_ORIGIN_TIMEOUT_MS,
        levels: vec![(0, difficulty, false)],
        ..EdgeOptions::default()
    }
}

/// The shipped Redis command timeouts (deploy/edge.toml, deploy/origin.toml) and the shipped
/// origin timeout of the edge: what bounds an answer while Redis is away.
const EDGE_REDIS_TIMEOUT_MS: u64 = 500;
const ORIGIN_REDIS_TIMEOUT_MS: u64 = 1000;
const EDGE_ORIGIN_TIMEOUT_MS: u64 = 2000;

/// The longest a buy may take with Redis away: the global lease and the admission script each
/// within the edge's Redis timeout, then the origin within its timeout; plus a second for a
/// loaded two-core machine. Anything slower is a hang.
const ANSWER_BOUND: Duration =
    Duration::from_millis(2 * EDGE_REDIS_TIMEOUT_MS + EDGE_ORIGIN_TIMEOUT_MS + 1000);

/// How long Redis stays away.
const OUTAGE: Duration = Duration::from_secs(4);

/// Error codes a buy or a captcha solution may meet while Redis is away.
const AWAY_CODES: [&str; 5] = [
    "limits_unavailable",
    "redis_unavailable",
    "timeout",
    "origin_unavailable",
    "stock_unavailable",
];

/// One answer a buyer got.
#[derive(Debug, Clone)]
struct Answer {
    uid: String,
    /// `buy`, `challenge` or `solve`.
    route: &'static str,
    sent: Instant,
    took: Duration,
    status: u16,
    body: Value,
    retry_after: Option<String>,
    cache_control: Option<String>,
}

impl Answer {
    fn code(&self) -> &str {
        self.body["error"].as_str().unwrap_or("")
    }

    /// Whether the answer's request went out and came back within `[from, to]`.
    fn within(&self, from: Instant, to: Instant) -> bool {
        self.sent >= from && self.sent + self.took <= to
    }
}

/// The crowd's shared record: every answer, and the count of units answered `reserved`.
#[derive(Default)]
struct Record {
    answers: Mutex<Vec<Answer>>,
    reserved: std::sync::atomic::AtomicU64,
}

impl Record {
    fn answers(&self) -> Vec<Answer> {
        self.answers.lock().unwrap().clone()
    }
}

/// Sends `req` and records its answer; a transport error (a hang cut off by the client's
/// timeout, a broken connection) fails the test with what was sent.
async fn send(
    record: &Record,
    uid: &str,
    route: &'static str,
    req: reqwest::RequestBuilder,
) -> Answer {
    let sent = Instant::now();
    let resp = req
        .send()
        .await
        .unwrap_or_else(|e| panic!("{uid} {route}: no answer after {:?}: {e}", sent.elapsed()));
    let status = resp.status().as_u16();
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
    };
    let (retry_after, cache_control) = (header("retry-after"), header("cache-control"));
    let text = resp.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(json!({"not_json": text}));
    let answer = Answer {
        uid: uid.to_string(),
        route,
        sent,
        took: sent.elapsed(),
        status,
        body,
        retry_after,
        cache_control,
    };
    record.answers.lock().unwrap().push(answer.clone());
    answer
}

/// Waits until the crowd of `record` has been answered `reserved` for `units` units.
async fn until_reserved(record: &Record, units: i64, what: &str) {
    let units = u64::try_from(units).unwrap();
    wait::until(what, Duration::from_secs(60), || async {
        Ok(record.reserved.load(std::sync::atomic::Ordering::Relaxed) >= units)
    })
    .await
    .unwrap();
}

/// Waits what a `503` or `429` asks (its `Retry-After`, at most 3 s): the pace of a client that
/// honours the header, as the sale page does.
async fn honour(answer: &Answer) {
    let seconds: u64 = answer
        .retry_after
        .as_deref()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    tokio::time::sleep(Duration::from_secs(seconds.min(3))).await;
}

/// The books of `sale` balance as `origin reconcile` reads them, with nobody repairing them.
async fn assert_no_drift(stack: &Stack, sale: i64) {
    let run = stack.reconcile_run(sale, false).await.unwrap();
    assert_eq!((run.code, &run.report["drift"]), (0, &json!(0)), "{run:?}");
}

/// Waits until the books of `sale` balance, sold out: all of its `stock` units live.
async fn assert_balanced_sold_out(stack: &Stack, sale: i64, stock: i64) {
    let books = stack
        .wait_balanced(sale, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(
        (books.live(), books.redis_remaining),
        (stock, 0),
        "{books:?}"
    );
}

/// A log without its colours (the origin's log writes ANSI escapes).
fn plain(log: &str) -> String {
    let mut out = String::with_capacity(log.len());
    let mut chars = log.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            chars.by_ref().find(|c| *c == 'm');
        } else {
            out.push(c);
        }
    }
    out
}

/// Answers by `route status code`, for the printout.
fn tally<'a>(answers: impl Iterator<Item = &'a Answer>) -> BTreeMap<String, usize> {
    let mut tally = BTreeMap::new();
    for a in answers {
        *tally
            .entry(format!("{} {} {}", a.route, a.status, a.code()))
            .or_insert(0) += 1;
    }
    tally
}
