//! The origin's Redis away while the edge's answers: the origin's `503` reaches the buyer with its
//! `Retry-After`, and the pass it spent is refused after.

use super::*;

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
        &edge_options(6),
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
