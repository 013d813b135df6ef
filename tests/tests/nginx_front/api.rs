//! The API reaches the edge and never the origin (I6); per-IP limits answer 429 in JSON, keyed on the
//! real client (trusted `X-Forwarded-For` only); bodies over the limit get 413.

use super::*;

#[tokio::test(flavor = "multi_thread")]
async fn the_api_reaches_the_edge_limited_per_real_client_and_never_the_origin() {
    let world = World::start().await;
    let sale = world.stack.create_sale(10).await.unwrap();
    let url = world.nginx.url();
    let buy = format!("{url}/api/sales/{sale}/buy");

    // A buy reaches the edge (its 401), with the request id passed on.
    let resp = world
        .http()
        .post(&buy)
        .header("x-request-id", "nginx-front-1")
        .header("x-forwarded-for", "203.0.113.1")
        .json(&serde_json::json!({"pass_token": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(header(&resp, "x-request-id"), "nginx-front-1");
    assert_security_headers(&resp, "buy");
    let (status, body) = json_answer(resp).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("unauthorized")),
        "{body}"
    );

    // The origin's API is not routed, even with the origin up: nothing is reserved.
    for (method, path) in [
        ("GET", "/v1/sales".to_string()),
        ("GET", format!("/v1/sales/{sale}")),
        ("POST", format!("/v1/sales/{sale}/reserve")),
    ] {
        let resp = world
            .http()
            .request(method.parse().unwrap(), format!("{url}{path}"))
            .json(&serde_json::json!({"uid": "mallory"}))
            .send()
            .await
            .unwrap();
        let (status, body) = json_answer(resp).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (404, Some("not_found")),
            "{path}"
        );
    }
    let books = world.stack.books(sale).await.unwrap();
    assert_eq!(books.redis_remaining, 10, "{books:?}");

    // One client (as the CDN reports it) sends 30 buys at once: past the burst, nginx answers
    // 429 in JSON with Retry-After, and the edge never sees those.
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..30 {
        let request = world
            .http()
            .post(&buy)
            .header("x-forwarded-for", "203.0.113.7")
            .json(&serde_json::json!({"pass_token": "x"}))
            .send();
        tasks.spawn(async move {
            let resp = request.await.unwrap();
            let retry_after = header(&resp, "retry-after").to_string();
            let (status, body) = json_answer(resp).await;
            if status == 429 {
                assert_eq!(body["error"], "rate_limited", "{body}");
                assert_eq!(retry_after, "1");
            }
            status
        });
    }
    let mut by_status = BTreeMap::<u16, u32>::new();
    while let Some(status) = tasks.join_next().await {
        *by_status.entry(status.unwrap()).or_default() += 1;
    }
    println!("30 buys at once from one client: {by_status:?}");
    let limited = by_status.get(&429).copied().unwrap_or(0);
    let passed = by_status.get(&401).copied().unwrap_or(0);
    assert!(limited >= 15, "{by_status:?}");
    // burst=10 nodelay, plus what 5 r/s refills while they arrive.
    assert!((1..=13).contains(&passed), "{by_status:?}");

    // Another client is not limited by the first one's flood.
    let resp = world
        .http()
        .post(&buy)
        .header("x-forwarded-for", "203.0.113.8")
        .json(&serde_json::json!({"pass_token": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);

    // From a peer that is not a trusted proxy (127.0.0.2, not in set_real_ip_from), a made-up
    // X-Forwarded-For is ignored: every request counts against the peer's own address.
    let untrusted = reqwest::Client::builder()
        .local_address(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)))
        .build()
        .unwrap();
    let mut spoofed = BTreeMap::<u16, u32>::new();
    for n in 0..20 {
        let resp = untrusted
            .post(&buy)
            .header("x-forwarded-for", client_ip(n))
            .json(&serde_json::json!({"pass_token": "x"}))
            .send()
            .await
            .unwrap();
        *spoofed.entry(resp.status().as_u16()).or_default() += 1;
    }
    println!("20 buys from an untrusted peer, each with another X-Forwarded-For: {spoofed:?}");
    assert!(spoofed.get(&429).copied().unwrap_or(0) >= 5, "{spoofed:?}");

    // A body over 8 KiB: 413 from nginx, in JSON.
    let resp = world
        .http()
        .post(&buy)
        .header("x-forwarded-for", "203.0.113.9")
        .header("content-type", "application/json")
        .body(format!("{{\"pass_token\": \"{}\"}}", "x".repeat(16 * 1024)))
        .send()
        .await
        .unwrap();
    assert_security_headers(&resp, "413");
    let (status, body) = json_answer(resp).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (413, Some("body_too_large")),
        "{body}"
    );

    // The sale page, through nginx and its cache.
    let page = format!("{url}/sale/{sale}");
    let first = world.http().get(&page).send().await.unwrap();
    assert_eq!(first.status(), 200);
    assert_security_headers(&first, "page");
    let second = world.http().get(&page).send().await.unwrap();
    assert_eq!(second.status(), 200);
    assert_eq!(header(&second, "x-cache-status"), "HIT");
}
