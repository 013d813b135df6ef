//! Issue 10's findings 7 and 9 against the real binaries: the services' listeners hold slow and
//! oversized clients to their timers, buffer and connection cap (finding 7), and neither service starts on the
//! shipped or a weak secret (finding 9): the review minted a user JWT and a pass token with the
//! placeholders printed in deploy/edge.toml and bought with no captcha; now the edge run with
//! that file exits 64 before it answers anything.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "integration tests: a failed unwrap is a failed test, with its message"
)]

use std::{path::Path, process::Stdio, time::Duration};

use flash_tests::{
    edge_process::{EdgeOptions, EdgeProcess},
    metrics, net,
    origin_process::OriginOptions,
    redis_server::RedisServer,
    stack::Stack,
    wait,
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    process::Command,
};

const EDGE: &str = env!("CARGO_BIN_EXE_edge-under-test");
const ORIGIN: &str = env!("CARGO_BIN_EXE_origin-crashable");
/// Secrets as `openssl rand -base64 48` makes them.
const STRONG_KEY: &str = "3tJ1m9QbV2x0Ykq8ZJ5rS7uE4wLhA6nC0pDfGiKoRsTzUvWyXb1cNdMeOgPhQiRj";
const STRONG_CAPTCHA: &str = "Yq2Lr8Vt3Nw5Hs0Kx7Bz1Mc4Pf6Dg9Jh2Ak5Ql8Rm3Sn6To9Up1Vr4Ws7Xt0Yu3Zv";
/// The placeholders deploy/edge.toml shipped before (the review's keys).
const OLD_JWT_PLACEHOLDER: &str = "dev-only-user-jwt-secret-change-me-0123456789";
const OLD_CAPTCHA_PLACEHOLDER: &str = "dev-only-captcha-secret-change-me-0123456789";

fn repo_file(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

/// Runs `binary args`, which must exit by itself within 30 s: (exit code, stderr).
async fn run_to_exit(binary: &str, args: &[&str]) -> (Option<i32>, String) {
    let child = Command::new(binary)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let out = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("a refused config exits at once, it does not start serving")
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// deploy/edge.toml with its secrets set to `key` / `captcha` and its ports and Redis replaced.
fn edge_config(key: &str, captcha: &str, redis_url: &str) -> (tempfile::TempDir, String, u16) {
    let shipped = std::fs::read_to_string(repo_file("deploy/edge.toml")).unwrap();
    let port = net::free_port();
    let text = shipped
        .replace("key = \"\"", &format!("key = \"{key}\""))
        .replace("secret = \"\"", &format!("secret = \"{captcha}\""))
        .replace("127.0.0.1:8081", &format!("127.0.0.1:{port}"))
        .replace("127.0.0.1:9081", &format!("127.0.0.1:{}", net::free_port()))
        .replace("redis://127.0.0.1:6380/", redis_url);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("edge.toml");
    std::fs::write(&path, text).unwrap();
    (dir, path.to_string_lossy().into_owned(), port)
}

#[tokio::test(flavor = "multi_thread")]
async fn finding_9_the_edge_does_not_start_on_the_shipped_or_a_weak_secret() {
    // The shipped file as it is: both secrets empty, dev mode off.
    let (code, stderr) = run_to_exit(EDGE, &["--config", &repo_file("deploy/edge.toml")]).await;
    assert_eq!(code, Some(64), "{stderr}");
    assert!(stderr.contains("identity.key: is not set"), "{stderr}");
    assert!(stderr.contains("captcha.secret: is not set"), "{stderr}");

    // The review's attack: the placeholders the file used to print, put back by an operator.
    let redis = RedisServer::start().await.unwrap();
    let (_dir, path, _) = edge_config(OLD_JWT_PLACEHOLDER, OLD_CAPTCHA_PLACEHOLDER, &redis.url());
    let (code, stderr) = run_to_exit(EDGE, &["--config", &path]).await;
    assert_eq!(code, Some(64), "{stderr}");
    assert!(
        stderr.contains("identity.key: is a placeholder"),
        "{stderr}"
    );
    assert!(
        stderr.contains("captcha.secret: is a placeholder"),
        "{stderr}"
    );

    // One weak secret is named alone.
    let (_dir, path, _) = edge_config(STRONG_KEY, "short-but-not-random", &redis.url());
    let (code, stderr) = run_to_exit(EDGE, &["--config", &path]).await;
    assert_eq!(code, Some(64), "{stderr}");
    assert!(stderr.contains("captcha.secret:"), "{stderr}");
    assert!(!stderr.contains("identity.key:"), "{stderr}");

    // Strong secrets: the same file starts and answers.
    let (_dir, path, port) = edge_config(STRONG_KEY, STRONG_CAPTCHA, &redis.url());
    let mut child = Command::new(EDGE)
        .args(["--config", &path])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let health = format!("http://127.0.0.1:{port}/healthz");
    let http = reqwest::Client::new();
    flash_tests::wait::until("the edge answers /healthz", Duration::from_secs(20), || {
        let http = http.clone();
        let health = health.clone();
        async move { Ok(http.get(&health).send().await?.status() == 200) }
    })
    .await
    .unwrap();
    assert!(
        child.try_wait().unwrap().is_none(),
        "the edge keeps running"
    );
    // Dev mode is off in the shipped file: its stand-ins for the identity provider and the
    // payment service do not exist (a token for any uid, a payment signed by the edge).
    for (path, body) in [
        ("/api/dev/token", r#"{"uid":"mallory"}"#),
        ("/api/dev/pay", r#"{"order_id":1}"#),
    ] {
        let answer = http
            .post(format!("http://127.0.0.1:{port}{path}"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 404, "{path} with dev mode off");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn finding_9_the_origin_does_not_start_on_the_shipped_or_a_weak_webhook_secret() {
    let shipped = repo_file("deploy/origin.toml");
    let (code, stderr) = run_to_exit(ORIGIN, &["--config", &shipped, "serve"]).await;
    assert_eq!(code, Some(64), "{stderr}");
    assert!(
        stderr.contains("payments.webhook_secret: is not set"),
        "{stderr}"
    );

    let text = std::fs::read_to_string(&shipped).unwrap().replace(
        "webhook_secret = \"\"",
        "webhook_secret = \"dev-only-payment-webhook-secret-change-me-0123456789\"",
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("origin.toml");
    std::fs::write(&path, text).unwrap();
    let (code, stderr) = run_to_exit(ORIGIN, &["--config", &path.to_string_lossy(), "serve"]).await;
    assert_eq!(code, Some(64), "{stderr}");
    assert!(
        stderr.contains("payments.webhook_secret: is a placeholder"),
        "{stderr}"
    );
}

/// Reads until the server closes the connection (or `limit` passes): (bytes read, closed).
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> (Vec<u8>, bool) {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (got, true),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => return (got, false),
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn finding_7_slow_and_oversized_clients_are_cut_off() {
    let redis = RedisServer::start().await.unwrap();
    // No origin is needed: nothing here reaches one.
    let edge = EdgeProcess::start(
        Path::new(EDGE),
        &redis.url(),
        &[format!("http://127.0.0.1:{}", net::free_port())],
        &EdgeOptions::default(),
    )
    .await
    .unwrap();
    let addr = edge.url().trim_start_matches("http://").to_string();
    // The shipped header timeout is 5 s; the review saw both connections still open after 50 s.
    let limit = Duration::from_secs(12);

    // A silent connection.
    let started = tokio::time::Instant::now();
    let mut silent = TcpStream::connect(&addr).await.unwrap();
    let (_, closed) = read_until_closed(&mut silent, limit).await;
    assert!(
        closed,
        "a silent connection is closed by the header timeout"
    );
    let silent_for = started.elapsed();
    assert!(silent_for >= Duration::from_secs(4), "{silent_for:?}");

    // A half-sent header.
    let started = tokio::time::Instant::now();
    let mut half = TcpStream::connect(&addr).await.unwrap();
    half.write_all(b"GET /healthz HTTP/1.1\r\nHost: edge\r\nX-Slow: ")
        .await
        .unwrap();
    let (got, closed) = read_until_closed(&mut half, limit).await;
    assert!(closed, "a half-sent header is closed by the header timeout");
    assert!(started.elapsed() >= Duration::from_secs(4));
    assert!(!String::from_utf8_lossy(&got).contains("200 OK"), "{got:?}");

    // 500 KB of headers: refused once the head passes the buffer (32 KiB), not read to the end.
    let mut big = TcpStream::connect(&addr).await.unwrap();
    big.write_all(b"GET /healthz HTTP/1.1\r\nHost: edge\r\n")
        .await
        .unwrap();
    let line = format!("X-Filler: {}\r\n", "a".repeat(1000));
    let mut sent = 0usize;
    let mut refused_early = false;
    while sent < 500_000 {
        match tokio::time::timeout(Duration::from_secs(5), big.write_all(line.as_bytes())).await {
            Ok(Ok(())) => sent += line.len(),
            Ok(Err(_)) => {
                refused_early = true;
                break;
            }
            Err(_) => panic!("a write of headers stalled for 5 s"),
        }
    }
    let (got, closed) = read_until_closed(&mut big, limit).await;
    let answer = String::from_utf8_lossy(&got);
    assert!(closed, "the oversized head's connection is closed");
    assert!(
        refused_early || answer.starts_with("HTTP/1.1 431"),
        "sent {sent} bytes; answer: {answer:?}"
    );
    if !answer.is_empty() {
        assert!(answer.starts_with("HTTP/1.1 431"), "{answer:?}");
    }

    // Keep-alive traffic still works: two requests on one connection.
    let mut alive = TcpStream::connect(&addr).await.unwrap();
    for _ in 0..2 {
        alive
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: edge\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 1024];
        let n = tokio::time::timeout(Duration::from_secs(5), alive.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(
            String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"),
            "{:?}",
            String::from_utf8_lossy(&buf[..n])
        );
    }
}

const HEALTHZ: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: service\r\n\r\n";

/// Sends `GET /healthz` on `stream` and reads one answer's first bytes (within `limit`).
async fn healthz_on(stream: &mut TcpStream, limit: Duration) -> Option<String> {
    stream.write_all(HEALTHZ).await.unwrap();
    let mut buf = [0u8; 1024];
    match tokio::time::timeout(limit, stream.read(&mut buf)).await {
        Ok(Ok(n)) if n > 0 => Some(String::from_utf8_lossy(&buf[..n]).into_owned()),
        _ => None,
    }
}

/// `cap` keep-alive connections, each answered and left open, fill the listener: one more is
/// taken by the kernel's backlog but answered only once one of them closes.
async fn the_cap_holds(addr: &str, cap: usize) -> Vec<TcpStream> {
    let mut held = Vec::new();
    for i in 0..cap {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let answer = healthz_on(&mut stream, Duration::from_secs(5)).await;
        assert!(
            answer
                .as_deref()
                .is_some_and(|a| a.starts_with("HTTP/1.1 200")),
            "connection {i} of {cap}: {answer:?}"
        );
        held.push(stream);
    }
    let mut waiting = TcpStream::connect(addr).await.unwrap();
    assert_eq!(
        healthz_on(&mut waiting, Duration::from_secs(2)).await,
        None,
        "a connection beyond the cap of {cap} was served"
    );
    drop(held.pop());
    let mut buf = [0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(5), waiting.read(&mut buf))
        .await
        .expect("the waiting connection is served once a slot frees")
        .unwrap();
    assert!(
        String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&buf[..n])
    );
    held.push(waiting);
    held
}

/// Finding 7's connection cap, on both services: with `max_connections = 3`, a fourth
/// connection waits in the backlog (not refused, not served) until one of the three closes;
/// the wait is counted and logged. The origin's listener, the same code, also closes a silent
/// connection at its header timeout.
#[tokio::test(flavor = "multi_thread")]
async fn finding_7_the_connection_cap_keeps_new_connections_waiting() {
    const CAP: usize = 3;
    let stack = Stack::start(
        Path::new(ORIGIN),
        OriginOptions {
            max_connections: CAP,
            ..OriginOptions::default()
        },
    )
    .await
    .unwrap();
    let http = reqwest::Client::new();

    // The origin first, while no edge keeps connections to it: its /metrics is on the capped
    // listener, read once the connections close.
    let origin = stack.origin.url();
    let held = the_cap_holds(origin.trim_start_matches("http://"), CAP).await;
    drop(held);
    let waited = wait::until(
        "the origin's waits counted",
        Duration::from_secs(10),
        || {
            let http = http.clone();
            let url = format!("{origin}/metrics");
            async move {
                let text = metrics::scrape(&http, &url).await?;
                Ok(metrics::sample_sum(
                    &text,
                    "origin_connections_waited_total",
                    &[("listener", "api")],
                ) >= 1.0)
            }
        },
    )
    .await;
    assert!(waited.is_ok(), "{}", stack.origin.log_tail());
    let started = tokio::time::Instant::now();
    let mut silent = TcpStream::connect(origin.trim_start_matches("http://"))
        .await
        .unwrap();
    let (_, closed) = read_until_closed(&mut silent, Duration::from_secs(12)).await;
    assert!(
        closed,
        "the origin closes a silent connection at its header timeout"
    );
    assert!(
        started.elapsed() >= Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );

    let edge = EdgeProcess::start(
        Path::new(EDGE),
        &stack.redis.url(),
        &[stack.origin.url()],
        &EdgeOptions {
            max_connections: CAP,
            ..EdgeOptions::default()
        },
    )
    .await
    .unwrap();
    // The edge: the admin listener (metrics) has its own slots.
    let held = the_cap_holds(edge.url().trim_start_matches("http://"), CAP).await;
    let open = edge
        .metric(&http, "edge_connections_open", &[("listener", "api")])
        .await
        .unwrap();
    let waited = edge
        .metric(
            &http,
            "edge_connections_waited_total",
            &[("listener", "api")],
        )
        .await
        .unwrap();
    println!("edge: {open} open, {waited} waits at the cap");
    assert_eq!(open, CAP as f64);
    assert!(waited >= 1.0, "{waited}");
    assert!(
        edge.log().contains("connection cap reached"),
        "{}",
        edge.log_tail()
    );
    drop(held);
}
