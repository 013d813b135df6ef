//! Finding 4, the browser's half: an order cannot be paid from the browser with any string.

use super::*;

#[tokio::test(flavor = "multi_thread")]
async fn finding_4_the_browser_cannot_pay_an_order_with_any_string() {
    let world = World::start().await;
    let sale = world.sale(2).await;
    let order = world.reserve(sale, "alice").await;
    let http = &world.front.stack.http;
    // The review's request, through nginx and straight at the edge: the endpoint is gone.
    for base in [world.front.nginx.url(), world.front.edge.url()] {
        let resp = http
            .post(format!("{base}/api/orders/{order}/pay"))
            .bearer_auth(jwt("alice"))
            .json(&json!({"payment_id": "anything-i-like"}))
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.unwrap();
        assert!(
            matches!(status, 404 | 405) && body["error"].is_string(),
            "{base}: {status} {body}"
        );
    }
    // The origin's old bare payment id is gone too.
    let (status, body) = world
        .front
        .stack
        .post(
            &format!("/v1/orders/{order}/pay"),
            &json!({"uid": "alice", "payment_id": "anything-i-like"}),
        )
        .await
        .unwrap();
    assert!(matches!(status, 404 | 405), "{status} {body}");
    // The browser's own JSON sent to the public webhook, with a JWT and without a signature.
    let event = payments::event(order, "alice", "anything-i-like", 12900, "EUR");
    let resp = http
        .post(world.webhook_url())
        .bearer_auth(jwt("alice"))
        .json(&event)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "signature_missing", "{body}");
    assert_eq!(world.row(order).await, ("pending".into(), None, None));
    world
        .front
        .stack
        .books(sale)
        .await
        .unwrap()
        .check()
        .unwrap();
}
