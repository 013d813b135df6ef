//! The provider's keys, fetched from a JWKS this test serves over real HTTP: tokens verified by
//! `kid` under each key's algorithm, a rotation picked up, a flood of made-up `kid`s costing the
//! provider one request per interval, and the keys held kept through bad documents and an outage.

use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use axum::{http::StatusCode, routing::get, Router};

use super::*;
use crate::{
    config::JwksConfig,
    identity::provider::{JwksMetrics, ResultLabel},
};

/// A JWKS endpoint: the answer it serves now, and how often it was asked.
struct Jwks {
    url: url::Url,
    answer: Arc<Mutex<(StatusCode, String)>>,
    hits: Arc<AtomicUsize>,
    server: tokio::task::JoinHandle<()>,
}

impl Jwks {
    async fn serve(keys: &[Value]) -> Self {
        let answer = Arc::new(Mutex::new((StatusCode::OK, String::new())));
        let hits = Arc::new(AtomicUsize::new(0));
        let app = {
            let (answer, hits) = (answer.clone(), hits.clone());
            Router::new().route(
                "/jwks",
                get(move || {
                    hits.fetch_add(1, Ordering::SeqCst);
                    let (status, body) = answer.lock().unwrap().clone();
                    async move { (status, body) }
                }),
            )
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/jwks", listener.local_addr().unwrap());
        let server = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let jwks = Self {
            url: url.parse().unwrap(),
            answer,
            hits,
            server,
        };
        jwks.publish(keys);
        jwks
    }

    fn publish(&self, keys: &[Value]) {
        self.answer_with(StatusCode::OK, json!({ "keys": keys }).to_string());
    }

    fn answer_with(&self, status: StatusCode, body: String) {
        *self.answer.lock().unwrap() = (status, body);
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    /// A verifier on these keys, fetched once as the edge does at start.
    async fn verifier(&self, refetch: Duration, metrics: &JwksMetrics) -> Verifier {
        let cfg = IdentityConfig {
            keys: Some(Keys::Jwks(JwksConfig {
                url: self.url.clone(),
                refresh: Duration::from_secs(300),
                refetch,
                timeout: Duration::from_secs(2),
                max_bytes: 4096,
            })),
            issuer: Some("https://login.example".into()),
            audience: Some("flash".into()),
            ..IdentityConfig::default()
        };
        let v = Verifier::from_config(&cfg, None, metrics).unwrap();
        v.provider().unwrap().fetch_if_due().await;
        v
    }
}

fn claims() -> Value {
    json!({"sub": "u1", "exp": crate::clock::unix_now() + 60,
        "iss": "https://login.example", "aud": "flash"})
}

async fn verified(v: &Verifier, token: &str) -> Result<String, &'static str> {
    let mut headers = HeaderMap::new();
    headers.insert("authorization", bearer(token).parse().unwrap());
    v.user(&headers, &Method::POST)
        .await
        .map(|u| u.uid.into_string())
        .map_err(|e| e.reason())
}

fn fetches(metrics: &JwksMetrics, result: &'static str) -> u64 {
    metrics.fetches.get_or_create(&ResultLabel { result }).get()
}

#[tokio::test]
async fn tokens_verify_by_kid_under_the_key_s_own_algorithm() {
    let jwks = Jwks::serve(&[public_jwk(Jwa::RS256, "r"), public_jwk(Jwa::ES256, "e")]).await;
    let metrics = JwksMetrics::default();
    let v = jwks.verifier(Duration::from_secs(30), &metrics).await;
    assert_eq!(metrics.keys.get(), 2);
    assert_eq!(
        verified(&v, &with_kid(Jwa::RS256, "r", &claims())).await,
        Ok("u1".into())
    );
    assert_eq!(
        verified(&v, &with_kid(Jwa::ES256, "e", &claims())).await,
        Ok("u1".into())
    );
    // The token's alg is not the key's.
    assert_eq!(
        verified(&v, &with_kid(Jwa::ES256, "r", &claims())).await,
        Err("wrong_algorithm")
    );
    assert_eq!(
        verified(&v, &with_kid(Jwa::PS256, "r", &claims())).await,
        Err("wrong_algorithm")
    );
    // Key confusion: HS256 "signed" with the RSA key's public bytes.
    let mut header = Header::new(Jwa::HS256);
    header.kid = Some("r".into());
    let confused = jsonwebtoken::encode(
        &header,
        &claims(),
        &EncodingKey::from_secret(RSA_PUBLIC.as_bytes()),
    )
    .unwrap();
    assert_eq!(verified(&v, &confused).await, Err("wrong_algorithm"));
    // alg none, naming a real kid.
    let none = forged(r#"{"alg":"none","kid":"r"}"#, &claims(), "");
    assert_eq!(verified(&v, &none).await, Err("wrong_algorithm"));
    // No kid at all.
    let bare = jsonwebtoken::encode(&Header::new(Jwa::RS256), &claims(), &rsa_private()).unwrap();
    assert_eq!(verified(&v, &bare).await, Err("missing_key_id"));
    // The issuer and the audience of the config.
    for (field, value, reason) in [
        ("iss", "https://evil.example", "wrong_issuer"),
        ("aud", "other-app", "wrong_audience"),
    ] {
        let mut wrong = claims();
        wrong[field] = json!(value);
        assert_eq!(
            verified(&v, &with_kid(Jwa::RS256, "r", &wrong)).await,
            Err(reason)
        );
        let mut missing = claims();
        missing.as_object_mut().unwrap().remove(field);
        assert_eq!(
            verified(&v, &with_kid(Jwa::RS256, "r", &missing)).await,
            Err("missing_claim"),
            "without {field}"
        );
    }
    let mut expired = claims();
    expired["exp"] = json!(crate::clock::unix_now() - 60);
    assert_eq!(
        verified(&v, &with_kid(Jwa::RS256, "r", &expired)).await,
        Err("expired")
    );
    assert_eq!(jwks.hits(), 1, "every token was checked on the keys held");
    jwks.server.abort();
}

#[tokio::test]
async fn a_rotation_is_picked_up_by_the_first_token_of_the_new_key() {
    let jwks = Jwks::serve(&[public_jwk(Jwa::RS256, "old")]).await;
    let metrics = JwksMetrics::default();
    let v = jwks.verifier(Duration::ZERO, &metrics).await;
    let old = with_kid(Jwa::RS256, "old", &claims());
    let new = with_kid(Jwa::EdDSA, "new", &claims());
    assert_eq!(verified(&v, &old).await, Ok("u1".into()));
    assert_eq!(verified(&v, &new).await, Err("unknown_key"));
    // The provider publishes the new key beside the old one: both verify.
    jwks.publish(&[public_jwk(Jwa::RS256, "old"), public_jwk(Jwa::EdDSA, "new")]);
    assert_eq!(verified(&v, &new).await, Ok("u1".into()));
    assert_eq!(verified(&v, &old).await, Ok("u1".into()));
    // Then retires the old one.
    jwks.publish(&[public_jwk(Jwa::EdDSA, "new")]);
    assert_eq!(
        verified(&v, &with_kid(Jwa::ES256, "unseen", &claims())).await,
        Err("unknown_key")
    );
    assert_eq!(verified(&v, &old).await, Err("unknown_key"));
    assert_eq!(verified(&v, &new).await, Ok("u1".into()));
    assert_eq!(metrics.keys.get(), 1);
    jwks.server.abort();
}

#[tokio::test]
async fn a_flood_of_unknown_kids_asks_the_provider_once_per_interval() {
    let jwks = Jwks::serve(&[public_jwk(Jwa::RS256, "r")]).await;
    let metrics = JwksMetrics::default();
    let v = Arc::new(jwks.verifier(Duration::from_secs(30), &metrics).await);
    assert_eq!(jwks.hits(), 1);
    let mut flood = tokio::task::JoinSet::new();
    for i in 0..500 {
        let v = v.clone();
        flood.spawn(async move {
            verified(&v, &with_kid(Jwa::ES256, &format!("k{i}"), &claims())).await
        });
    }
    while let Some(got) = flood.join_next().await {
        assert_eq!(got.unwrap(), Err("unknown_key"));
    }
    assert_eq!(jwks.hits(), 1, "the fetch at start was within the interval");
    assert_eq!(
        verified(&v, &with_kid(Jwa::RS256, "r", &claims())).await,
        Ok("u1".into())
    );
    jwks.server.abort();
}

#[tokio::test]
async fn the_keys_held_outlive_bad_documents_and_an_unreachable_provider() {
    let jwks = Jwks::serve(&[public_jwk(Jwa::RS256, "r")]).await;
    let metrics = JwksMetrics::default();
    let v = jwks.verifier(Duration::ZERO, &metrics).await;
    let token = with_kid(Jwa::RS256, "r", &claims());
    let oct = json!({"kty": "oct", "kid": "s", "k": URL_SAFE_NO_PAD.encode(SECRET)});
    let huge = json!({"keys": [public_jwk(Jwa::RS256, "r")], "pad": "x".repeat(5000)}).to_string();
    for (status, body, result) in [
        (StatusCode::OK, "{\"keys\": [".to_string(), "malformed"),
        (StatusCode::OK, huge, "too_large"),
        (
            StatusCode::OK,
            json!({"keys": [oct]}).to_string(),
            "symmetric",
        ),
        (StatusCode::OK, "{\"keys\": []}".to_string(), "no_keys"),
        (StatusCode::INTERNAL_SERVER_ERROR, String::new(), "status"),
    ] {
        jwks.answer_with(status, body);
        v.provider().unwrap().fetch_if_due().await;
        assert_eq!(fetches(&metrics, result), 1, "{result}");
        assert_eq!(
            verified(&v, &token).await,
            Ok("u1".into()),
            "after {result}"
        );
    }
    jwks.server.abort();
    let _ = jwks.server.await;
    // Unreachable: the unknown kid's fetch fails, the known one still verifies.
    let stranger = with_kid(Jwa::ES256, "stranger", &claims());
    assert_eq!(verified(&v, &stranger).await, Err("unknown_key"));
    assert_eq!(fetches(&metrics, "unreachable"), 1);
    assert_eq!(verified(&v, &token).await, Ok("u1".into()));
    assert_eq!(metrics.keys.get(), 1);
    assert_eq!(fetches(&metrics, "ok"), 1);
}
