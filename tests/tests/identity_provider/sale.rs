//! As processes: a real edge, origin, Redis and PostgreSQL, the edge on the harness's provider.
//! A sale sells through a key rotation (a new key published beside the old, then the old one
//! retired) with every buyer served under the key they hold and the books balanced; a provider
//! that dies leaves the keys held in use; a flood of made-up `kid`s costs the provider one
//! request per interval.

use std::time::Duration;

use flash_tests::{
    edge_process::{EdgeOptions, EdgeProcess},
    front,
    front::EdgeStack,
    jwks_server::{JwksServer, SigningKey},
    shopper,
    stack::Stack,
    wait,
};
use jsonwebtoken::Algorithm;
use serde_json::{json, Value};

use crate::{claims, AUDIENCE, ISSUER};

/// The stack with an edge on `jwks`, fetching again at most once per `refetch_seconds`.
async fn start(jwks: &JwksServer, refetch_seconds: u64) -> (Stack, EdgeProcess) {
    let options = EdgeOptions {
        dev_mode: false,
        identity: Some(format!(
            "jwks_url = \"{}\"\njwks_refetch_seconds = {refetch_seconds}\n\
             issuer = \"{ISSUER}\"\naudience = \"{AUDIENCE}\"",
            jwks.url()
        )),
        ..EdgeOptions::default()
    };
    let EdgeStack { stack, edge } = front!().edge(options).start_edge().await.unwrap();
    (stack, edge)
}

/// `GET /api/me` with `token`: the status and the answer's uid or reason.
async fn me(stack: &Stack, edge: &EdgeProcess, token: &str) -> (u16, String) {
    let resp = stack
        .http
        .get(format!("{}/api/me", edge.url()))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap();
    let said = body["uid"]
        .as_str()
        .or(body["reason"].as_str())
        .unwrap_or_default();
    (status, said.to_string())
}

/// The captcha and the buy of `sale` as the holder of `token`: the buy's status and answer.
async fn buy(stack: &Stack, edge: &EdgeProcess, token: &str, sale: i64) -> (u16, Value) {
    let pass = shopper::pass_token(&stack.http, &edge.url(), token, sale, None)
        .await
        .unwrap();
    let resp = stack
        .http
        .post(format!("{}/api/sales/{sale}/buy", edge.url()))
        .bearer_auth(token)
        .json(&json!({"pass_token": pass}))
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

/// Waits until the edge knows the key of `token` (its first token fetched the set again; a fetch
/// within the refetch interval of the last one waits for the interval).
async fn known(stack: &Stack, edge: &EdgeProcess, token: &str) {
    wait::until(
        "the edge knows the new key",
        Duration::from_secs(10),
        || async { Ok(me(stack, edge, token).await.0 == 200) },
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn a_sale_sells_through_a_key_rotation_and_the_books_balance() {
    let old = SigningKey::generate(Algorithm::RS256, "2026-11-rsa").unwrap();
    let new = SigningKey::generate(Algorithm::ES256, "2026-12-ec").unwrap();
    let next = SigningKey::generate(Algorithm::EdDSA, "2027-01-ed").unwrap();
    let jwks = JwksServer::start(&[&old]).await.unwrap();
    let (stack, edge) = start(&jwks, 1).await;
    let sale = stack.create_sale(5).await.unwrap();
    let tokens = |key: &SigningKey, users: &[&str]| -> Vec<String> {
        users
            .iter()
            .map(|u| key.sign(&claims(u)).unwrap())
            .collect()
    };

    // Under the old key.
    for token in tokens(&old, &["ann", "bob"]) {
        let (status, body) = buy(&stack, &edge, &token, sale).await;
        assert_eq!(
            (status, body["status"].as_str()),
            (200, Some("reserved")),
            "{body}"
        );
    }
    let under_new = tokens(&new, &["cat", "dan"]);
    assert_eq!(
        me(&stack, &edge, &under_new[0]).await,
        (401, "unknown_key".into())
    );

    // The provider publishes the new key beside the old one: both verify.
    jwks.publish(&[&old, &new]);
    known(&stack, &edge, &under_new[0]).await;
    for token in &under_new {
        let (status, body) = buy(&stack, &edge, token, sale).await;
        assert_eq!(
            (status, body["status"].as_str()),
            (200, Some("reserved")),
            "{body}"
        );
    }
    let late_old = tokens(&old, &["eve"]).remove(0);
    assert_eq!(me(&stack, &edge, &late_old).await, (200, "eve".into()));

    // Then retires the old one, and adds the next: a token under the old key is refused.
    jwks.publish(&[&new, &next]);
    let under_next = tokens(&next, &["fay", "gus"]);
    known(&stack, &edge, &under_next[0]).await;
    assert_eq!(
        me(&stack, &edge, &late_old).await,
        (401, "unknown_key".into())
    );
    let (status, body) = buy(&stack, &edge, &under_next[0], sale).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("reserved")),
        "{body}"
    );
    // The fifth unit was the last: the next buyer is told the sale is over.
    let (status, body) = buy(&stack, &edge, &under_next[1], sale).await;
    assert!(matches!(status, 409 | 410), "{status} {body}");

    let books = stack
        .wait_balanced(sale, Duration::from_secs(30))
        .await
        .unwrap();
    books.check().unwrap();
    assert_eq!((books.total, books.live()), (5, 5), "{books:?}");
    let http = &stack.http;
    let ok = edge
        .metric(http, "edge_jwks_fetches_total", &[("result", "ok")])
        .await
        .unwrap();
    assert!(ok >= 3.0, "the start, the new key and the next: {ok}");
    assert_eq!(edge.metric(http, "edge_jwks_keys", &[]).await.unwrap(), 2.0);
    assert_eq!(
        ok as usize,
        jwks.hits(),
        "every request to the provider was a fetch that succeeded"
    );
}

#[tokio::test]
async fn a_flood_of_made_up_kids_costs_the_provider_one_request_per_interval() {
    let key = SigningKey::generate(Algorithm::ES256, "only").unwrap();
    let jwks = JwksServer::start(&[&key]).await.unwrap();
    // The default interval, 30 s: the fetch at start is the only one the flood may cost.
    let (stack, edge) = start(&jwks, 30).await;
    assert_eq!(jwks.hits(), 1);
    let mut flood = tokio::task::JoinSet::new();
    for i in 0..300 {
        let made_up = SigningKey::generate(Algorithm::ES256, &format!("forged-{i}")).unwrap();
        let token = made_up.sign(&claims("mallory")).unwrap();
        let (http, url) = (stack.http.clone(), format!("{}/api/me", edge.url()));
        flood.spawn(async move {
            let resp = http.get(url).bearer_auth(token).send().await.unwrap();
            let status = resp.status().as_u16();
            let body: Value = resp.json().await.unwrap();
            (
                status,
                body["reason"].as_str().unwrap_or_default().to_string(),
            )
        });
    }
    while let Some(got) = flood.join_next().await {
        assert_eq!(got.unwrap(), (401, "unknown_key".to_string()));
    }
    assert_eq!(jwks.hits(), 1, "the flood asked the provider nothing");
    let token = key.sign(&claims("ann")).unwrap();
    assert_eq!(me(&stack, &edge, &token).await, (200, "ann".into()));
}

#[tokio::test]
async fn the_keys_held_outlive_a_provider_that_dies() {
    let key = SigningKey::generate(Algorithm::EdDSA, "ed").unwrap();
    let jwks = JwksServer::start(&[&key]).await.unwrap();
    let (stack, edge) = start(&jwks, 1).await;
    let sale = stack.create_sale(3).await.unwrap();
    let (status, body) = buy(&stack, &edge, &key.sign(&claims("ann")).unwrap(), sale).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("reserved")),
        "{body}"
    );

    jwks.stop().await;
    // A token under a key the edge lacks makes it try the provider, which is gone.
    let stranger = SigningKey::generate(Algorithm::ES256, "stranger").unwrap();
    let stranger = stranger.sign(&claims("eve")).unwrap();
    let http = &stack.http;
    wait::until(
        "a fetch found no provider",
        Duration::from_secs(10),
        || async {
            assert_eq!(
                me(&stack, &edge, &stranger).await,
                (401, "unknown_key".into())
            );
            let failed = edge
                .metric(
                    http,
                    "edge_jwks_fetches_total",
                    &[("result", "unreachable")],
                )
                .await?;
            Ok(failed >= 1.0)
        },
    )
    .await
    .unwrap();
    assert!(edge
        .log()
        .contains("jwks fetch failed: the keys held are kept"));
    // The keys held still serve the sale.
    let (status, body) = buy(&stack, &edge, &key.sign(&claims("bob")).unwrap(), sale).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("reserved")),
        "{body}"
    );
    assert_eq!(edge.metric(http, "edge_jwks_keys", &[]).await.unwrap(), 1.0);
    let books = stack
        .wait_balanced(sale, Duration::from_secs(30))
        .await
        .unwrap();
    books.check().unwrap();
    assert_eq!(books.live(), 2, "{books:?}");
}
