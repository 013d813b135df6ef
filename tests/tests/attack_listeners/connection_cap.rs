//! Finding 7's connection cap, on both services: a connection over the cap waits in the backlog
//! until one of the others closes.

use super::*;

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

    let edge = front::start_edge(
        Path::new(EDGE),
        &stack,
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
