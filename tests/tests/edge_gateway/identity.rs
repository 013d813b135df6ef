//! Identity and pass-token attacks on the edge's router, in memory (its Redis and origin real):
//! forged, expired and missing user JWTs get 401; another user's, another sale's, an expired, a
//! tampered, a spent or no pass token gets 403; a solved challenge buys one pass only; the good
//! flow gets the order.

use base64::Engine;
use flash_tests::{
    edge_process::{CAPTCHA_SECRET, USER_JWT_SECRET},
    edge_router::{self, EdgeRouter},
    shopper::{identity, now_unix},
};
use serde_json::{json, Value};

use crate::{in_memory, jwt};

fn b64(v: &Value) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
}

async fn buy(edge: &EdgeRouter, token: Option<&str>, sale: i64, pass: &str) -> (u16, Value) {
    let body = json!({"pass_token": pass}).to_string();
    let answer = edge
        .send("POST", &format!("/api/sales/{sale}/buy"), token, Some(body))
        .await
        .unwrap();
    (answer.status, answer.json)
}

async fn pass(edge: &EdgeRouter, token: &str, sale: i64) -> String {
    edge.pass(token, sale).await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn forged_identities_get_401_misused_passes_get_403_and_a_good_flow_gets_the_order() {
    let (stack, edge) = in_memory().await;
    let sale = stack.create_sale(10).await.unwrap();
    let other_sale = stack.create_sale(10).await.unwrap();
    let alice = jwt("alice");
    let alice_pass = pass(&edge, &alice, sale).await;

    // Identity attacks: each is refused before anything else happens.
    let exp = now_unix() + 600;
    let claims = json!({"sub": "alice", "exp": exp});
    let alg_none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT"})),
        b64(&claims)
    );
    let wrong_key = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(b"another-secret-of-some-32-bytes-length!!"),
    )
    .unwrap();
    let other_alg = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS384),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(USER_JWT_SECRET.as_bytes()),
    )
    .unwrap();
    let expired =
        edge::identity::mint_dev_token(&identity(), "alice", 60, now_unix() - 3600).unwrap();
    let no_sub = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &json!({"exp": exp}),
        &jsonwebtoken::EncodingKey::from_secret(USER_JWT_SECRET.as_bytes()),
    )
    .unwrap();
    for (name, token) in [
        ("missing", None),
        ("alg none", Some(alg_none.as_str())),
        ("wrong key", Some(wrong_key.as_str())),
        ("other algorithm", Some(other_alg.as_str())),
        ("expired", Some(expired.as_str())),
        ("no sub", Some(no_sub.as_str())),
        ("garbage", Some("not.a.jwt")),
    ] {
        let (status, body) = buy(&edge, token, sale, &alice_pass).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (401, Some("unauthorized")),
            "{name}: {body}"
        );
    }

    // Pass-token misuse.
    let bob = jwt("bob");
    let signer = edge::pass::PassTokens::new(CAPTCHA_SECRET.as_bytes(), 60);
    let stale = signer
        .issue(
            "alice",
            sale,
            edge::pass::Earned::default(),
            now_unix() - 600,
        )
        .unwrap();
    let mut tampered = alice_pass.clone();
    tampered.pop();
    tampered.push(if alice_pass.ends_with('A') { 'B' } else { 'A' });
    let for_other_sale = pass(&edge, &alice, other_sale).await;
    for (name, token, pass_token) in [
        ("another user's pass", &bob, alice_pass.as_str()),
        ("another sale's pass", &alice, for_other_sale.as_str()),
        ("expired pass", &alice, stale.as_str()),
        ("tampered pass", &alice, tampered.as_str()),
        ("no pass", &alice, ""),
    ] {
        let (status, body) = buy(&edge, Some(token), sale, pass_token).await;
        assert_eq!(status, 403, "{name}: {body}");
    }

    // The good flow: the order.
    let (status, body) = buy(&edge, Some(&alice), sale, &alice_pass).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("reserved")),
        "{body}"
    );
    assert!(body["order_id"].is_i64(), "{body}");

    // The same pass again: spent.
    let (status, body) = buy(&edge, Some(&alice), sale, &alice_pass).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (403, Some("pass_token_spent")),
        "{body}"
    );

    // A solved challenge cannot buy a second pass.
    let challenge = edge
        .send(
            "GET",
            &format!("/api/captcha?sale={sale}"),
            Some(&bob),
            None,
        )
        .await
        .unwrap()
        .json;
    let nonce = edge_router::solve(&challenge).unwrap();
    let solution = json!({"sale": sale, "challenge": challenge["challenge"], "nonce": nonce});
    let solve = || {
        edge.send(
            "POST",
            "/api/captcha",
            Some(&bob),
            Some(solution.to_string()),
        )
    };
    let first = solve().await.unwrap();
    let second = solve().await.unwrap();
    assert_eq!((first.status, second.status), (200, 403), "{}", second.text);

    stack.books(sale).await.unwrap().check().unwrap();
}
