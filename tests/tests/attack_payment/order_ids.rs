//! Finding 8: another user's order and an unknown one answer the same, for every verb.

use super::*;

#[tokio::test(flavor = "multi_thread")]
async fn finding_8_another_users_order_and_an_unknown_one_answer_the_same_for_every_verb() {
    let world = World::start().await;
    let sale = world.sale(2).await;
    let order = world.reserve(sale, "alice").await;
    let http = &world.front.stack.http;
    let mallory = jwt("mallory");
    let base = world.front.nginx.url();
    // Alice's order, the next id (nobody's yet) and a far one, as mallory sees them.
    let answer = |method: &'static str, path: String| {
        let req = http
            .request(method.parse().unwrap(), format!("{base}{path}"))
            .bearer_auth(&mallory);
        let req = if method == "POST" {
            req.json(&json!({}))
        } else {
            req
        };
        async move {
            let resp = req.send().await.unwrap();
            (resp.status().as_u16(), resp.text().await.unwrap())
        }
    };
    for (method, path) in [
        ("GET", "/api/orders/{id}"),
        ("DELETE", "/api/orders/{id}"),
        ("POST", "/api/orders/{id}/extend"),
        ("POST", "/api/orders/{id}/pay"),
    ] {
        let theirs = answer(method, path.replace("{id}", &order.to_string())).await;
        for unknown in [order + 1, 999_999] {
            let none = answer(method, path.replace("{id}", &unknown.to_string())).await;
            assert_eq!(theirs, none, "{method} {path}: alice's order vs {unknown}");
        }
        assert_eq!(theirs.0 / 100, 4, "{method} {path}: {theirs:?}");
        if !path.ends_with("/pay") {
            assert_eq!(theirs.0, 404, "{method} {path}: {theirs:?}");
            let body: Value = serde_json::from_str(&theirs.1).unwrap();
            assert_eq!(body["error"], "unknown_order", "{body}");
        }
    }
    // The origin itself answers the same (the edge passes its answers through).
    let origin = world.front.stack.origin.url();
    for path in [
        format!("/v1/orders/{order}?uid=mallory"),
        "/v1/orders/999999?uid=mallory".into(),
    ] {
        let resp = http.get(format!("{origin}{path}")).send().await.unwrap();
        assert_eq!(resp.status(), 404, "{path}");
    }
    // Nothing happened to alice's hold.
    let db = world.front.stack.postgres.client().await.unwrap();
    let row = db
        .query_one(
            "SELECT status, extended FROM orders WHERE id = $1",
            &[&order],
        )
        .await
        .unwrap();
    assert_eq!(
        (row.get::<_, String>(0), row.get::<_, bool>(1)),
        ("pending".into(), false)
    );
}
