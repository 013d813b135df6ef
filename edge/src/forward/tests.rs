//! Unit tests of forwarding: round robin, an origin taken out and probed back, deadlines, hop-by-hop
//! headers.

use std::sync::Arc;

use http::Uri;
use tokio::{io::AsyncReadExt, net::TcpListener};

use super::*;

#[test]
fn hop_by_hop_headers_and_those_connection_names_are_stripped() {
    let mut headers = HeaderMap::new();
    for (k, v) in [
        ("connection", "close, x-secret"),
        ("keep-alive", "timeout=5"),
        ("transfer-encoding", "chunked"),
        ("upgrade", "h2c"),
        ("x-secret", "1"),
        ("content-type", "application/json"),
        ("x-request-id", "abc"),
    ] {
        headers.insert(
            http::HeaderName::from_static(k),
            HeaderValue::from_static(v),
        );
    }
    strip_hop_by_hop(&mut headers);
    let mut left: Vec<_> = headers.keys().map(|k| k.as_str()).collect();
    left.sort_unstable();
    assert_eq!(left, ["content-type", "x-request-id"]);
}

/// An origin that accepts connections and never answers; counts the connections.
async fn stalled_origin() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            held.push(socket);
        }
    });
    (url, accepted)
}

/// An origin that reads a request and closes the connection without answering.
async fn hanging_up_origin() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut buf = [0u8; 1024];
            let _ = socket.read(&mut buf).await;
        }
    });
    url
}

/// An origin that answers every request with 200.
async fn live_origin() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = axum::Router::new().fallback(|| async { "ok" });
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

fn origins(urls: Vec<String>, timeout_ms: u64) -> Origins {
    Origins::new(&OriginConfig {
        urls: urls.iter().map(|u| u.parse().unwrap()).collect(),
        timeout: Duration::from_millis(timeout_ms),
        retry_dead_after: Duration::from_secs(600),
        ..OriginConfig::default()
    })
}

/// Sends `n` requests: each one's status (or error) and time taken.
async fn send_n(origins: &Origins, n: usize) -> Vec<(Result<u16, String>, Duration)> {
    let mut out = Vec::new();
    for i in 0..n {
        let started = Instant::now();
        let result = origins
            .send(Method::GET, "/healthz", None, &format!("t-{i}"))
            .await
            .map(|a| a.status.as_u16())
            .map_err(|e| e.to_string());
        out.push((result, started.elapsed()));
    }
    out
}

#[tokio::test]
async fn a_stalled_origin_costs_one_timeout_then_is_taken_out() {
    let (stalled, accepted) = stalled_origin().await;
    let timeout = Duration::from_millis(300);
    let origins = origins(vec![stalled, live_origin().await], 300);

    let sent = send_n(&origins, 6).await;
    let (first, took) = &sent[0];
    assert!(
        first.as_ref().is_err_and(|e| e.contains("did not answer")),
        "the first request goes to the stalled origin: {first:?}"
    );
    assert!(*took >= timeout, "{took:?}");
    for (result, took) in &sent[1..] {
        assert_eq!(result, &Ok(200), "the live origin answers: {sent:?}");
        assert!(
            *took < timeout,
            "no request waits on the stalled origin: {sent:?}"
        );
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 1, "it is not tried again");
    assert!(origins.targets[0].lock().is_some());
    assert!(origins.targets[1].lock().is_none());
}

#[tokio::test]
async fn an_origin_that_breaks_the_connection_is_taken_out() {
    let origins = origins(vec![hanging_up_origin().await, live_origin().await], 5_000);
    let sent = send_n(&origins, 4).await;
    assert!(
        sent[0].0.as_ref().is_err_and(|e| e.starts_with("origin ")),
        "{sent:?}"
    );
    assert!(
        sent[1..].iter().all(|(r, _)| r == &Ok(200)),
        "then only the live origin is asked: {sent:?}"
    );
    assert!(origins.targets[0].lock().is_some());
}

#[tokio::test(start_paused = true)]
async fn a_dead_origin_is_probed_by_one_request_once_its_time_is_up() {
    let origins = Origins::new(&OriginConfig {
        urls: vec![
            Uri::from_static("http://127.0.0.1:1"),
            Uri::from_static("http://127.0.0.1:2"),
        ],
        retry_dead_after: Duration::from_secs(1),
        ..OriginConfig::default()
    });
    let bases =
        |order: Vec<&Target>| -> Vec<String> { order.iter().map(|t| t.base.clone()).collect() };
    let (a, b) = ("http://127.0.0.1:1", "http://127.0.0.1:2");
    origins.mark_dead(&origins.targets[0], "timeout");
    for _ in 0..3 {
        assert_eq!(bases(origins.order()), [b], "taken out");
    }
    tokio::time::advance(Duration::from_millis(999)).await;
    assert_eq!(bases(origins.order()), [b], "still out");
    tokio::time::advance(Duration::from_millis(1)).await;
    assert_eq!(
        bases(origins.order()),
        [a, b],
        "its time is up: probed first"
    );
    for _ in 0..3 {
        assert_eq!(bases(origins.order()), [b], "one probe per period");
    }
    origins.mark_dead(&origins.targets[0], "timeout");
    tokio::time::advance(Duration::from_millis(1000)).await;
    assert_eq!(
        bases(origins.order())[0],
        a,
        "probed again after another period"
    );
    origins.mark_live(&origins.targets[0]);
    let mut seen: Vec<String> = (0..2).map(|_| bases(origins.order())[0].clone()).collect();
    seen.sort();
    assert_eq!(seen, [a, b], "back in the rotation");
}

#[tokio::test]
async fn unreachable_origins_answer_at_once_and_are_taken_out() {
    // Port 9 on loopback: nothing listens, the connection is refused at once.
    let config = OriginConfig {
        urls: vec![
            Uri::from_static("http://127.0.0.1:9"),
            Uri::from_static("http://127.0.0.1:9/"),
        ],
        ..OriginConfig::default()
    };
    let origins = Origins::new(&config);
    let err = origins
        .send(Method::GET, "/healthz", None, "t-1")
        .await
        .unwrap_err();
    assert!(matches!(err, ForwardError::Unreachable(_)), "{err}");
    assert!(origins
        .targets
        .iter()
        .all(|t| t.dead_until.lock().unwrap().is_some()));
}
