//! Finding 7: slow and oversized clients are cut off by the listeners' timers and buffer.

use super::*;

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
