//! The edge's verifier in this process on the provider's keys, fetched over real HTTP from the
//! harness's JWKS endpoint: tokens verified by `kid` under the key's own algorithm (never the
//! token's), a rotation picked up by the first token of the new key, a flood of made-up `kid`s
//! costing the provider nothing within the interval, and the keys held kept through bad
//! documents and an unreachable provider.

use std::{sync::Arc, time::Duration};

use axum::http::{HeaderMap, Method, StatusCode};
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use edge::{
    config::{IdentityConfig, JwksConfig, Keys},
    identity::{
        provider::{JwksMetrics, ResultLabel},
        Verifier,
    },
};
use flash_tests::jwks_server::{JwksServer, SigningKey};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;

use crate::{claims, AUDIENCE, ISSUER};

/// A verifier on `jwks`, fetched once as the edge does at start.
async fn verifier(jwks: &JwksServer, refetch: Duration, metrics: &JwksMetrics) -> Verifier {
    let cfg = IdentityConfig {
        keys: Some(Keys::Jwks(JwksConfig {
            url: jwks.url().parse().unwrap(),
            refresh: Duration::from_secs(300),
            refetch,
            timeout: Duration::from_secs(2),
            max_bytes: 4096,
        })),
        issuer: Some(ISSUER.into()),
        audience: Some(AUDIENCE.into()),
        ..IdentityConfig::default()
    };
    let v = Verifier::from_config(&cfg, None, metrics).unwrap();
    v.provider().unwrap().fetch_if_due().await;
    v
}

/// The uid of `token`, or the refusal's reason.
async fn verified(v: &Verifier, token: &str) -> Result<String, &'static str> {
    let mut headers = HeaderMap::new();
    headers.insert("authorization", format!("Bearer {token}").parse().unwrap());
    v.user(&headers, &Method::POST)
        .await
        .map(|u| u.uid.into_string())
        .map_err(|e| e.reason())
}

fn fetches(metrics: &JwksMetrics, result: &'static str) -> u64 {
    metrics.fetches.get_or_create(&ResultLabel { result }).get()
}

fn b64(text: &str) -> String {
    URL_SAFE_NO_PAD.encode(text)
}

#[tokio::test]
async fn tokens_verify_by_kid_under_the_key_s_own_algorithm() {
    let rsa = SigningKey::generate(Algorithm::RS256, "r").unwrap();
    let ec = SigningKey::generate(Algorithm::ES256, "e").unwrap();
    let jwks = JwksServer::start(&[&rsa, &ec]).await.unwrap();
    let metrics = JwksMetrics::default();
    let v = verifier(&jwks, Duration::from_secs(30), &metrics).await;
    assert_eq!(metrics.keys.get(), 2);
    let u1 = claims("u1");
    assert_eq!(verified(&v, &rsa.sign(&u1).unwrap()).await, Ok("u1".into()));
    assert_eq!(verified(&v, &ec.sign(&u1).unwrap()).await, Ok("u1".into()));
    // A token whose alg is not its key's: another key's algorithm under this kid.
    let ec_as_r = SigningKey::generate(Algorithm::ES256, "r").unwrap();
    assert_eq!(
        verified(&v, &ec_as_r.sign(&u1).unwrap()).await,
        Err("wrong_algorithm")
    );
    // Key confusion: HS256 "signed" with the RSA key's public JWK as the secret.
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("r".into());
    let secret = rsa.jwk().to_string();
    let confused =
        jsonwebtoken::encode(&header, &u1, &EncodingKey::from_secret(secret.as_bytes())).unwrap();
    assert_eq!(verified(&v, &confused).await, Err("wrong_algorithm"));
    // alg none, naming a real kid.
    let none = format!(
        "{}.{}.",
        b64(r#"{"alg":"none","kid":"r"}"#),
        b64(&u1.to_string())
    );
    assert_eq!(verified(&v, &none).await, Err("wrong_algorithm"));
    // No kid at all.
    let bare = {
        let signed = rsa.sign(&u1).unwrap();
        let mut parts = signed.splitn(2, '.');
        let _ = parts.next();
        format!(
            "{}.{}",
            b64(r#"{"alg":"RS256","typ":"JWT"}"#),
            parts.next().unwrap()
        )
    };
    assert_eq!(verified(&v, &bare).await, Err("missing_key_id"));
    // The issuer and the audience of the config; the expiry.
    for (field, value, reason) in [
        ("iss", "https://evil.example", "wrong_issuer"),
        ("aud", "other-app", "wrong_audience"),
    ] {
        let mut wrong = claims("u1");
        wrong[field] = json!(value);
        assert_eq!(verified(&v, &rsa.sign(&wrong).unwrap()).await, Err(reason));
        let mut missing = claims("u1");
        missing.as_object_mut().unwrap().remove(field);
        assert_eq!(
            verified(&v, &rsa.sign(&missing).unwrap()).await,
            Err("missing_claim"),
            "without {field}"
        );
    }
    let mut expired = claims("u1");
    expired["exp"] = json!(flash_tests::shopper::now_unix() - 60);
    assert_eq!(
        verified(&v, &rsa.sign(&expired).unwrap()).await,
        Err("expired")
    );
    assert_eq!(jwks.hits(), 1, "every token was checked on the keys held");
}

#[tokio::test]
async fn a_rotation_is_picked_up_by_the_first_token_of_the_new_key() {
    let old = SigningKey::generate(Algorithm::RS256, "old").unwrap();
    let new = SigningKey::generate(Algorithm::EdDSA, "new").unwrap();
    let jwks = JwksServer::start(&[&old]).await.unwrap();
    let metrics = JwksMetrics::default();
    let v = verifier(&jwks, Duration::ZERO, &metrics).await;
    let (old_token, new_token) = (
        old.sign(&claims("u1")).unwrap(),
        new.sign(&claims("u1")).unwrap(),
    );
    assert_eq!(verified(&v, &old_token).await, Ok("u1".into()));
    assert_eq!(verified(&v, &new_token).await, Err("unknown_key"));
    // The provider publishes the new key beside the old one: both verify.
    jwks.publish(&[&old, &new]);
    assert_eq!(verified(&v, &new_token).await, Ok("u1".into()));
    assert_eq!(verified(&v, &old_token).await, Ok("u1".into()));
    // Then retires the old one.
    jwks.publish(&[&new]);
    let unseen = SigningKey::generate(Algorithm::ES256, "unseen").unwrap();
    assert_eq!(
        verified(&v, &unseen.sign(&claims("u1")).unwrap()).await,
        Err("unknown_key")
    );
    assert_eq!(verified(&v, &old_token).await, Err("unknown_key"));
    assert_eq!(verified(&v, &new_token).await, Ok("u1".into()));
    assert_eq!(metrics.keys.get(), 1);
}

#[tokio::test]
async fn a_flood_of_unknown_kids_asks_the_provider_nothing_within_the_interval() {
    let key = SigningKey::generate(Algorithm::ES256, "r").unwrap();
    let jwks = JwksServer::start(&[&key]).await.unwrap();
    let metrics = JwksMetrics::default();
    let v = Arc::new(verifier(&jwks, Duration::from_secs(30), &metrics).await);
    assert_eq!(jwks.hits(), 1);
    let forger = SigningKey::generate(Algorithm::ES256, "x").unwrap();
    let mut flood = tokio::task::JoinSet::new();
    for i in 0..500 {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(format!("k{i}"));
        let token = forger.sign_with(header, &claims("mallory")).unwrap();
        let v = v.clone();
        flood.spawn(async move { verified(&v, &token).await });
    }
    while let Some(got) = flood.join_next().await {
        assert_eq!(got.unwrap(), Err("unknown_key"));
    }
    assert_eq!(jwks.hits(), 1, "the fetch at start was within the interval");
    assert_eq!(
        verified(&v, &key.sign(&claims("u1")).unwrap()).await,
        Ok("u1".into())
    );
}

#[tokio::test]
async fn the_keys_held_outlive_bad_documents_and_an_unreachable_provider() {
    let key = SigningKey::generate(Algorithm::RS256, "r").unwrap();
    let jwks = JwksServer::start(&[&key]).await.unwrap();
    let metrics = JwksMetrics::default();
    let v = verifier(&jwks, Duration::ZERO, &metrics).await;
    let token = key.sign(&claims("u1")).unwrap();
    let oct = json!({"kty": "oct", "kid": "s", "k": b64("a shared secret of the shop")});
    let huge = json!({"keys": [key.jwk()], "pad": "x".repeat(5000)}).to_string();
    let answers: [(StatusCode, String, &str); 5] = [
        (StatusCode::OK, "{\"keys\": [".to_string(), "malformed"),
        (StatusCode::OK, huge, "too_large"),
        (
            StatusCode::OK,
            json!({"keys": [key.jwk(), oct]}).to_string(),
            "symmetric",
        ),
        (StatusCode::OK, "{\"keys\": []}".to_string(), "no_keys"),
        (StatusCode::INTERNAL_SERVER_ERROR, String::new(), "status"),
    ];
    for (status, body, result) in answers {
        jwks.answer_with(status, body);
        v.provider().unwrap().fetch_if_due().await;
        assert_eq!(fetches(&metrics, result), 1, "{result}");
        assert_eq!(
            verified(&v, &token).await,
            Ok("u1".into()),
            "after {result}"
        );
    }
    jwks.stop().await;
    // Unreachable: the unknown kid's fetch fails, the known one still verifies.
    let stranger = SigningKey::generate(Algorithm::ES256, "stranger").unwrap();
    let stranger = stranger.sign(&claims("eve")).unwrap();
    assert_eq!(verified(&v, &stranger).await, Err("unknown_key"));
    assert_eq!(fetches(&metrics, "unreachable"), 1);
    assert_eq!(verified(&v, &token).await, Ok("u1".into()));
    assert_eq!(metrics.keys.get(), 1);
    assert_eq!(fetches(&metrics, "ok"), 1);
}
