//! Redis away in the middle of a sale: stopped for seconds under a crowd buying through the edge,
//! and killed with SIGKILL under a crowd of reservations. While it is away every answer that
//! needs it is a `503` JSON error with `Retry-After` and `Cache-Control: no-store`, within the
//! configured timeouts (never a hang); the sale status still answers, without the count; once
//! Redis is back (from its own AOF) the sale resumes by itself and sells out, every `reserved`
//! answer has its order, and the books balance without running reconcile. In a real Chromium the
//! sale page, its Buy pressed while Redis is away, says the shop is busy in words, tries again
//! no sooner than Retry-After asks, and completes the purchase by itself once Redis is back.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "integration tests: a failed unwrap is a failed test, with its message"
)]

use flash_tests::{edge_binary, origin_binary};
use std::{
    collections::{BTreeMap, HashSet},
    path::Path,
    sync::{Arc, Mutex},
    time::Duration,
};

use flash_tests::{
    browser::{Browser, Chromedriver},
    edge_process::{EdgeOptions, EdgeProcess},
    nginx_server::NginxServer,
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
    Stack::start(
        origin_binary!(),
        OriginOptions {
            redis_timeout_ms: ORIGIN_REDIS_TIMEOUT_MS,
            ..OriginOptions::default()
        },
    )
    .await
    .unwrap()
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

/// One buyer through the edge at `base`: earns a pass, buys, and goes on until the sale answers
/// for good (reserved, duplicate, sold out); keeps a pass the edge did not spend (a `503
/// limits_unavailable`), earns a new one otherwise.
async fn buyer(http: reqwest::Client, base: String, sale: i64, uid: String, record: Arc<Record>) {
    let jwt = shopper::jwt(&uid).unwrap();
    let mut pass: Option<String> = None;
    let give_up = Instant::now() + Duration::from_secs(90);
    while Instant::now() < give_up {
        let token = match &pass {
            Some(token) => token.clone(),
            None => {
                let challenge = send(
                    &record,
                    &uid,
                    "challenge",
                    http.get(format!("{base}/api/captcha?sale={sale}"))
                        .bearer_auth(&jwt),
                )
                .await;
                if challenge.status == 410 {
                    return; // the sale is over
                }
                if challenge.status != 200 {
                    honour(&challenge).await;
                    continue;
                }
                let text = challenge.body["challenge"].as_str().unwrap().to_string();
                let difficulty =
                    u8::try_from(challenge.body["difficulty"].as_u64().unwrap()).unwrap();
                let nonce = {
                    let text = text.clone();
                    tokio::task::spawn_blocking(move || {
                        edge::captcha::pow::solve(&text, difficulty)
                    })
                    .await
                    .unwrap()
                };
                // A solution refused for Redis's absence is sent again: the challenge was not
                // spent (unless Redis took it and died before answering: then a new one).
                let mut resent = false;
                let earned = loop {
                    let solved = send(
                        &record,
                        &uid,
                        "solve",
                        http.post(format!("{base}/api/captcha"))
                            .bearer_auth(&jwt)
                            .json(&json!({"sale": sale, "challenge": text, "nonce": nonce})),
                    )
                    .await;
                    if solved.status == 503 && Instant::now() < give_up {
                        honour(&solved).await;
                        resent = true;
                        continue;
                    }
                    if resent && (solved.status, solved.code()) == (403, "challenge_spent") {
                        break None;
                    }
                    assert_eq!(solved.status, 200, "{uid} solve: {:?}", solved.body);
                    break Some(solved.body["pass_token"].as_str().unwrap().to_string());
                };
                match earned {
                    Some(token) => token,
                    None => continue,
                }
            }
        };
        pass = Some(token.clone());
        let bought = send(
            &record,
            &uid,
            "buy",
            http.post(format!("{base}/api/sales/{sale}/buy"))
                .bearer_auth(&jwt)
                .json(&json!({"pass_token": token})),
        )
        .await;
        match (bought.status, bought.code()) {
            (200, _) => {
                record
                    .reserved
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                return;
            }
            (409, "duplicate") | (410, _) => return,
            (503, "limits_unavailable") => honour(&bought).await,
            (503, _) => {
                pass = None; // spent by the edge before the origin failed
                honour(&bought).await;
            }
            (403, "pass_token_spent") => pass = None,
            (429, _) => honour(&bought).await,
            (status, code) => panic!("{uid}: unexpected buy answer {status} {code}: {bought:?}"),
        }
    }
    panic!("{uid}: no final answer in 90 s");
}

/// The books of `sale` balance as `origin reconcile` reads them, with nobody repairing them.
async fn assert_no_drift(stack: &Stack, sale: i64) {
    let run = stack.reconcile_run(sale, false).await.unwrap();
    assert_eq!((run.code, &run.report["drift"]), (0, &json!(0)), "{run:?}");
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

#[tokio::test(flavor = "multi_thread")]
async fn redis_away_mid_crowd_answers_503_with_retry_after_and_the_sale_resumes() {
    const STOCK: i64 = 60;
    const BUYERS: usize = 160;
    const AT_ONCE: usize = 24;
    let mut stack = stack().await;
    let edge = EdgeProcess::start(
        edge_binary!(),
        &stack.redis.url(),
        &[stack.origin.url()],
        &EdgeOptions {
            redis_timeout_ms: EDGE_REDIS_TIMEOUT_MS,
            origin_timeout_ms: EDGE_ORIGIN_TIMEOUT_MS,
            levels: vec![(0, 6, false)],
            ..EdgeOptions::default()
        },
    )
    .await
    .unwrap();
    let sale = stack.create_sale(STOCK).await.unwrap();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()
        .unwrap();

    // Buyers who earned their pass before Redis went away and press Buy while it is, in a sale
    // of their own (the crowd's may sell out before they are back).
    let theirs = stack.create_sale(5).await.unwrap();
    let attempts = stack.branch_runs().await.unwrap();
    let mut held = Vec::new();
    for i in 0..5 {
        let uid = format!("held-{i}");
        let jwt = shopper::jwt(&uid).unwrap();
        let pass = shopper::pass_token(&http, &edge.url(), &jwt, theirs, None)
            .await
            .unwrap();
        held.push((uid, jwt, pass));
    }
    let held_buy = |jwt: &str, pass: &str| {
        http.post(format!("{}/api/sales/{theirs}/buy", edge.url()))
            .bearer_auth(jwt)
            .json(&json!({"pass_token": pass}))
    };

    let record = Arc::new(Record::default());
    let gate = Arc::new(Semaphore::new(AT_ONCE));
    let mut crowd = tokio::task::JoinSet::new();
    for i in 0..BUYERS {
        let (http, base, record, gate) = (http.clone(), edge.url(), record.clone(), gate.clone());
        crowd.spawn(async move {
            let _turn = gate.acquire_owned().await.unwrap();
            buyer(http, base, sale, format!("buyer-{i}"), record).await;
        });
    }

    // Mid-crowd: a third of the stock sold, Redis goes away.
    wait::until("a third of the stock sold", Duration::from_secs(60), || {
        let record = record.clone();
        async move {
            let sold = record.reserved.load(std::sync::atomic::Ordering::Relaxed);
            Ok(sold >= u64::try_from(STOCK / 3).unwrap())
        }
    })
    .await
    .unwrap();
    stack.redis.kill();
    let killed = Instant::now();
    println!(
        "redis killed with {} units reserved",
        record.reserved.load(std::sync::atomic::Ordering::Relaxed)
    );

    // The status still answers while Redis is away, without the count.
    let status_url = format!("{}/api/sales/{sale}/status", edge.url());
    wait::until(
        "the edge's status without the count",
        Duration::from_secs(5),
        || {
            let req = http.get(&status_url).send();
            async move {
                let resp = req.await?;
                let ok = resp.status() == 200;
                let body: Value = resp.json().await?;
                Ok(ok && body["state"] == "live" && body.get("remaining_hint").is_none())
            }
        },
    )
    .await
    .unwrap();
    let origin_status = http
        .get(format!("{}/v1/sales/{sale}", stack.origin.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(origin_status.status(), 200);
    let body: Value = origin_status.json().await.unwrap();
    assert_eq!(
        (body["remaining"].clone(), body["state"].clone()),
        (Value::Null, json!("live")),
        "{body}"
    );

    for (uid, jwt, pass) in &held {
        let answer = send(&record, uid, "buy", held_buy(jwt, pass)).await;
        assert_eq!(
            (answer.status, answer.code()),
            (503, "limits_unavailable"),
            "{answer:?}"
        );
    }

    // The crowd keeps buying through the outage.
    wait::until("the outage's length and answers", OUTAGE * 3, || {
        let record = record.clone();
        async move {
            let during = record
                .answers()
                .iter()
                .filter(|a| a.route != "challenge" && a.sent >= killed)
                .count();
            Ok(killed.elapsed() >= OUTAGE && during >= 20)
        }
    })
    .await
    .unwrap();
    let restarting = Instant::now();
    stack.redis.restart().await.unwrap();
    let back = Instant::now();
    println!(
        "redis away {:.1} s, back from its AOF in {:.2} s",
        (restarting - killed).as_secs_f64(),
        (back - restarting).as_secs_f64()
    );

    // The edge spent nothing of a buy it refused for Redis's absence: the same pass buys now,
    // once the edge's connection and lease are back (a failed lease is asked for again a second
    // later), honouring Retry-After meanwhile.
    for (uid, jwt, pass) in &held {
        let mut answer = send(&record, uid, "buy", held_buy(jwt, pass)).await;
        for _ in 0..5 {
            if (answer.status, answer.code()) != (503, "limits_unavailable") {
                break;
            }
            honour(&answer).await;
            answer = send(&record, uid, "buy", held_buy(jwt, pass)).await;
        }
        assert_eq!(answer.status, 200, "{uid}'s kept pass: {answer:?}");
    }

    while let Some(done) = crowd.join_next().await {
        done.unwrap();
    }
    let answers = record.answers();
    let away: Vec<&Answer> = answers
        .iter()
        .filter(|a| a.route != "challenge" && a.within(killed, restarting))
        .collect();
    println!("while redis was away: {:#?}", tally(away.iter().copied()));
    println!("the whole crowd: {:#?}", tally(answers.iter()));

    // While Redis was away: every buy and every captcha solution was a 503 in JSON with
    // Retry-After, never kept by a cache.
    assert!(
        away.len() >= 20,
        "{} answers while Redis was away",
        away.len()
    );
    assert!(
        away.iter().any(|a| a.route == "buy"),
        "no buy while Redis was away"
    );
    for a in &away {
        assert_eq!(a.status, 503, "{a:?}");
        assert!(AWAY_CODES.contains(&a.code()), "{a:?}");
        assert!(a.body["message"].is_string(), "{a:?}");
        let seconds: u64 = a
            .retry_after
            .as_deref()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        assert!(
            (1..=5).contains(&seconds),
            "Retry-After {:?}: {a:?}",
            a.retry_after
        );
        assert_eq!(a.cache_control.as_deref(), Some("no-store"), "{a:?}");
    }

    // Never a hang: every answer of the run came within the timeouts.
    let slowest = answers.iter().max_by_key(|a| a.took).unwrap();
    let slowest_away = away.iter().map(|a| a.took).max().unwrap();
    println!(
        "slowest answer {:?} ({} {} {}); slowest while Redis was away {slowest_away:?}; bound {ANSWER_BOUND:?}",
        slowest.took,
        slowest.route,
        slowest.status,
        slowest.code()
    );
    assert!(slowest.took <= ANSWER_BOUND, "{slowest:?}");

    // What an SRE sees (README, "Redis away"): the failures counted by route and reason, and
    // logged with their code.
    let failed = |route: &'static str, reason: &'static str| {
        let (edge, http) = (&edge, &http);
        async move {
            edge.metric(
                http,
                "edge_requests_total",
                &[("route", route), ("outcome", "failed"), ("reason", reason)],
            )
            .await
            .unwrap()
        }
    };
    assert!(failed("buy", "limits_unavailable").await >= 1.0);
    assert!(failed("captcha", "redis_unavailable").await >= 1.0);
    let log = plain(&edge.log());
    for line in [
        "upstream failure code=\"limits_unavailable\"",
        "upstream failure code=\"redis_unavailable\"",
        "sale event stream failed, reconnecting",
        "subscribed to sale events",
    ] {
        assert!(
            log.contains(line),
            "no {line:?} in the edge's log:\n{}",
            edge.log_tail()
        );
    }
    assert!(
        stack
            .origin
            .log()
            .contains("sale status without Redis's count"),
        "{}",
        stack.origin.log_tail()
    );

    // The sale resumed by itself: units were reserved after Redis came back, and it sold out.
    assert!(
        answers.iter().any(|a| a.route == "buy"
            && a.status == 200
            && a.sent >= back
            && !a.uid.starts_with("held-")),
        "no unit reserved after Redis came back"
    );
    let books = stack
        .wait_balanced(sale, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(
        (books.live(), books.redis_remaining),
        (STOCK, 0),
        "{books:?}"
    );

    // I5: every buyer told "reserved" has an order; every order's buyer was told reserved, or
    // duplicate when its earlier answer was lost to the outage.
    let theirs_books = stack
        .wait_balanced(theirs, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(theirs_books.live(), 5, "{theirs_books:?}");
    assert_no_drift(&stack, sale).await;
    assert_no_drift(&stack, theirs).await;
    // The gate held: beyond the units sold, only purchases caught by the outage between their
    // phases (at most one per buyer asking at once) ran their branch again.
    let reached = stack.branch_runs().await.unwrap() - attempts;
    println!(
        "{reached} attempts reached PostgreSQL for {} units",
        STOCK + 5
    );
    assert!(
        reached <= (STOCK + 5) as f64 + AT_ONCE as f64,
        "{reached} attempts reached PostgreSQL"
    );
    let ordered = stack.live_buyers(sale).await.unwrap();
    let told_reserved: HashSet<String> = answers
        .iter()
        .filter(|a| a.route == "buy" && a.status == 200 && !a.uid.starts_with("held-"))
        .map(|a| a.uid.clone())
        .collect();
    let told_duplicate: HashSet<String> = answers
        .iter()
        .filter(|a| a.route == "buy" && a.status == 409)
        .map(|a| a.uid.clone())
        .collect();
    for uid in &told_reserved {
        assert!(
            ordered.contains(uid),
            "I5: {uid} was told reserved but has no order"
        );
    }
    for uid in &ordered {
        assert!(
            told_reserved.contains(uid) || told_duplicate.contains(uid),
            "{uid} has an order it was never told of"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_of_redis_under_load_loses_nothing() {
    const STOCK: i64 = 300;
    const UIDS: usize = 400;
    const AT_ONCE: usize = 48;
    let mut stack = stack().await;
    let mut conn = stack.redis.connection().await.unwrap();
    let fsync: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("appendfsync")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(fsync, ["appendfsync", "everysec"], "the production setting");
    let sale = stack.create_sale(STOCK).await.unwrap();
    let attempts = stack.branch_runs().await.unwrap();

    // Every uid reserves until the origin answers for good; a 503 is retried after its
    // Retry-After with the same uid (a unit it took already answers duplicate).
    let record = Arc::new(Record::default());
    let gate = Arc::new(Semaphore::new(AT_ONCE));
    let mut crowd = tokio::task::JoinSet::new();
    for i in 0..UIDS {
        let (http, url, record, gate) = (
            stack.http.clone(),
            stack.origin.url(),
            record.clone(),
            gate.clone(),
        );
        crowd.spawn(async move {
            let _turn = gate.acquire_owned().await.unwrap();
            let uid = format!("load-{i}");
            loop {
                let answer = send(
                    &record,
                    &uid,
                    "reserve",
                    http.post(format!("{url}/v1/sales/{sale}/reserve"))
                        .json(&json!({"uid": uid})),
                )
                .await;
                match answer.status {
                    200 => {
                        record
                            .reserved
                            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        return;
                    }
                    409 | 410 => return,
                    503 => honour(&answer).await,
                    other => panic!("{uid}: unexpected {other} {:?}", answer.body),
                }
            }
        });
    }

    wait::until(
        "a third of the stock reserved",
        Duration::from_secs(60),
        || {
            let record = record.clone();
            async move {
                let sold = record.reserved.load(std::sync::atomic::Ordering::Relaxed);
                Ok(sold >= u64::try_from(STOCK / 3).unwrap())
            }
        },
    )
    .await
    .unwrap();
    let pid = stack.redis.pid().unwrap();
    stack.redis.kill();
    let killed = Instant::now();
    let before: HashSet<String> = record
        .answers()
        .iter()
        .filter(|a| a.status == 200 && a.sent + a.took <= killed)
        .map(|a| a.uid.clone())
        .collect();
    stack.redis.restart().await.unwrap();
    println!(
        "redis (pid {pid}) killed with SIGKILL after {} reservations answered; back from its AOF \
         in {:.2} s",
        before.len(),
        killed.elapsed().as_secs_f64()
    );

    // Nothing Redis acknowledged is lost: every reservation answered before the kill still has
    // its barrier and its transaction record after the restart.
    let mut conn = stack.redis.connection().await.unwrap();
    for uid in &before {
        let gid = format!("{sale}/{uid}");
        let barrier: bool = conn.exists(format!("{{s:{sale}}}:b:{gid}")).await.unwrap();
        let tx: bool = conn.exists(format!("{{s:{sale}}}:tx:{gid}")).await.unwrap();
        assert!(
            barrier && tx,
            "{gid}: barrier {barrier}, transaction {tx} after the restart"
        );
    }

    while let Some(done) = crowd.join_next().await {
        done.unwrap();
    }
    let answers = record.answers();
    println!("answers: {:#?}", tally(answers.iter()));
    for a in answers.iter().filter(|a| a.status == 503) {
        assert!(AWAY_CODES.contains(&a.code()), "{a:?}");
        assert!(a.retry_after.is_some(), "a 503 without Retry-After: {a:?}");
    }

    let books = stack
        .wait_balanced(sale, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(
        (books.live(), books.redis_remaining),
        (STOCK, 0),
        "{books:?}"
    );
    assert_no_drift(&stack, sale).await;
    let reached = stack.branch_runs().await.unwrap() - attempts;
    println!("{reached} attempts reached PostgreSQL for {STOCK} units");
    assert!(
        reached <= STOCK as f64 + AT_ONCE as f64,
        "{reached} attempts reached PostgreSQL"
    );
    let ordered = stack.live_buyers(sale).await.unwrap();
    for uid in answers.iter().filter(|a| a.status == 200).map(|a| &a.uid) {
        assert!(
            ordered.contains(uid),
            "I5: {uid} was told reserved but has no order"
        );
    }
}

/// The origin's Redis away while the edge's still answers (an edge given a Redis of its own):
/// the edge admits the buy, spending its pass, and passes on the origin's `503` with its
/// `Retry-After`, `no-store`; the same pass is then refused as spent, which is why the page
/// earns a new one after such an answer (and keeps its pass after the edge's own `503
/// limits_unavailable`, which spends nothing). Once the origin's Redis is back, a new pass buys.
#[tokio::test(flavor = "multi_thread")]
async fn the_origin_s_503_reaches_the_buyer_with_retry_after_and_its_pass_is_spent() {
    let mut stack = stack().await;
    let edge_redis = flash_tests::redis_server::RedisServer::start()
        .await
        .unwrap();
    let edge = EdgeProcess::start(
        edge_binary!(),
        &edge_redis.url(),
        &[stack.origin.url()],
        &EdgeOptions {
            redis_timeout_ms: EDGE_REDIS_TIMEOUT_MS,
            origin_timeout_ms: EDGE_ORIGIN_TIMEOUT_MS,
            levels: vec![(0, 6, false)],
            ..EdgeOptions::default()
        },
    )
    .await
    .unwrap();
    let sale = stack.create_sale(5).await.unwrap();
    let http = &stack.http;
    let jwt = shopper::jwt("alice").unwrap();
    let buy = |pass: String| {
        http.post(format!("{}/api/sales/{sale}/buy", edge.url()))
            .bearer_auth(&jwt)
            .json(&json!({"pass_token": pass}))
            .send()
    };
    let pass = shopper::pass_token(http, &edge.url(), &jwt, sale, None)
        .await
        .unwrap();

    stack.redis.kill();
    let sent = Instant::now();
    let resp = buy(pass.clone()).await.unwrap();
    let took = sent.elapsed();
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
    };
    let (status, retry_after, cache) = (
        resp.status().as_u16(),
        header("retry-after"),
        header("cache-control"),
    );
    let body: Value = resp.json().await.unwrap();
    println!("the origin's Redis away: {status} {body} Retry-After {retry_after:?} in {took:?}");
    assert_eq!(status, 503, "{body}");
    assert!(
        ["redis_unavailable", "timeout"].contains(&body["error"].as_str().unwrap()),
        "{body}"
    );
    assert!(body["message"].is_string(), "{body}");
    assert_eq!(
        retry_after.as_deref(),
        Some("2"),
        "the origin's Retry-After"
    );
    assert_eq!(cache.as_deref(), Some("no-store"));
    assert!(took <= ANSWER_BOUND, "{took:?}");
    let origin_metrics =
        flash_tests::metrics::scrape(http, &format!("{}/metrics", stack.origin.url()))
            .await
            .unwrap();
    let errors = flash_tests::metrics::sample_sum(
        &origin_metrics,
        "origin_reservations_total",
        &[("outcome", "error")],
    );
    assert!(
        errors >= 1.0,
        "origin_reservations_total{{outcome=\"error\"}} {errors}"
    );
    let forwarded = edge
        .metric(
            http,
            "edge_requests_total",
            &[
                ("route", "buy"),
                ("outcome", "origin_refused"),
                ("reason", "unavailable"),
            ],
        )
        .await
        .unwrap();
    assert_eq!(forwarded, 1.0);
    let log = plain(&stack.origin.log());
    assert!(
        log.contains("upstream failure error=redis reserve: ")
            && log.contains("code=\"redis_unavailable\""),
        "{log}"
    );

    let again = buy(pass).await.unwrap();
    assert_eq!(again.status(), 403);
    let body: Value = again.json().await.unwrap();
    assert_eq!(body["error"], "pass_token_spent", "{body}");

    stack.redis.restart().await.unwrap();
    let pass = shopper::pass_token(http, &edge.url(), &jwt, sale, None)
        .await
        .unwrap();
    let resp = buy(pass).await.unwrap();
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    let books = stack
        .wait_balanced(sale, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!((books.live(), books.redis_remaining), (1, 4), "{books:?}");
}

/// The sale page's purchase requests so far (the captcha solution's POST and the buy), by the
/// Resource Timing API: their start times in ms of the page's clock, in order.
async fn page_purchase_fetches(browser: &Browser) -> Vec<f64> {
    let starts = browser
        .run(
            r#"return performance.getEntriesByType("resource")
                   .filter(e => { const u = new URL(e.name);
                                  return (u.pathname === "/api/captcha" && u.search === "")
                                      || u.pathname.endsWith("/buy"); })
                   .map(e => e.startTime).sort((a, b) => a - b);"#,
            vec![],
        )
        .await
        .unwrap();
    starts
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect()
}

/// nginx → edge → origin → Redis and PostgreSQL, as browser_sale.rs's World, the shipped Redis
/// timeouts; Redis is stopped while a visitor presses Buy on the sale page.
#[tokio::test(flavor = "multi_thread")]
async fn the_page_tells_the_shop_is_busy_waits_retry_after_and_buys_once_redis_is_back() {
    let (stack, driver) = tokio::join!(stack(), async { Chromedriver::start().await.unwrap() });
    let mut stack = stack;
    let edge = EdgeProcess::start(
        edge_binary!(),
        &stack.redis.url(),
        &[stack.origin.url()],
        &EdgeOptions {
            redis_timeout_ms: EDGE_REDIS_TIMEOUT_MS,
            origin_timeout_ms: EDGE_ORIGIN_TIMEOUT_MS,
            levels: vec![(0, 10, false)],
            ..EdgeOptions::default()
        },
    )
    .await
    .unwrap();
    let static_root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../static")
        .canonicalize()
        .unwrap();
    let nginx = NginxServer::start(
        &[edge.url().trim_start_matches("http://").to_string()],
        &static_root,
    )
    .await
    .unwrap();
    let browser = driver.session().await.unwrap();
    let sale = stack.create_sale(3).await.unwrap();
    browser
        .goto(&format!("{}/sale/{sale}", nginx.url()))
        .await
        .unwrap();
    let page = |what: &'static str, deadline: Duration, check: fn(&str, bool, &str) -> bool| {
        let browser = &browser;
        async move {
            wait::until(what, deadline, || async {
                let countdown = browser.text("#countdown").await?;
                let enabled = browser.enabled("#buy").await?;
                let result = browser.text("#result").await?;
                Ok(check(&countdown, enabled, &result))
            })
            .await
            .unwrap_or_else(|e| panic!("{e:#}"))
        }
    };
    page(
        "the live sale",
        Duration::from_secs(20),
        |countdown, enabled, _| countdown.starts_with("The sale is live. 3 left.") && enabled,
    )
    .await;

    // Redis away; the page still shows the live sale (the status goes without the count).
    stack.redis.kill();
    page(
        "the live sale without its count",
        Duration::from_secs(15),
        |countdown, enabled, _| countdown == "The sale is live." && enabled,
    )
    .await;

    // Buy: the check is solved, its solution refused for Redis's absence (503, Retry-After 2).
    browser.click("#buy").await.unwrap();
    page(
        "the busy message",
        Duration::from_secs(20),
        |_, enabled, result| {
            result.starts_with("The shop is busy, trying again in ")
                && result.ends_with(" s…")
                && !enabled
        },
    )
    .await;
    let told = browser.text("#result").await.unwrap();
    println!("the page says: {told}");
    wait::until(
        "three purchase requests",
        Duration::from_secs(20),
        || async { Ok(page_purchase_fetches(&browser).await.len() >= 3) },
    )
    .await
    .unwrap();

    // Redis back: the page's next try goes through, by itself.
    stack.redis.restart().await.unwrap();
    page(
        "the order, without a press",
        Duration::from_secs(30),
        |_, enabled, result| result.starts_with("You got it: order ") && !enabled,
    )
    .await;
    println!("then: {}", browser.text("#result").await.unwrap());

    // Never sooner than Retry-After (2 s) between two tries, and no more tries than the wait
    // allows.
    let starts = page_purchase_fetches(&browser).await;
    let gaps: Vec<f64> = starts.windows(2).map(|w| w[1] - w[0]).collect();
    println!("purchase requests at {starts:?} ms: gaps {gaps:?}");
    assert!(starts.len() >= 4, "tries and the buy: {starts:?}");
    let away_gaps = &gaps[..gaps.len() - 1]; // the last: the pass's solution, then its buy
    for gap in away_gaps {
        assert!(*gap >= 2000.0, "a try {gap:.0} ms after the last: {gaps:?}");
    }
    assert!(
        starts.len() <= 7,
        "at most 5 tries of the solution, then the buy: {starts:?}"
    );

    let books = stack
        .wait_balanced(sale, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(books.live(), 1, "{books:?}");
    let entries = browser.console().await.unwrap();
    let unexpected: Vec<_> = entries
        .iter()
        .filter(|e| e.level == "SEVERE" || e.level == "WARNING")
        .filter(|e| !(e.source == "network" && e.message.contains("status of 503 ")))
        .collect();
    assert!(unexpected.is_empty(), "console: {unexpected:#?}");
}
