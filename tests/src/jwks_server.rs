//! The shop's identity provider as the edge sees it, for tests and the benchmark: signing keys
//! made fresh by the harness (RS256, ES256, EdDSA), a JWKS endpoint on a free port that serves
//! the public half of whichever keys are published now (or a given status and body), counting
//! the requests it gets, and tokens minted under any of those keys with their `kid`.

use std::{
    net::SocketAddr,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
};

use anyhow::Context;
use axum::{http::StatusCode, routing::get, Router};
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use jsonwebtoken::{jwk::Jwk, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

/// A signing key of the provider and the JWK of its public half.
#[derive(Clone)]
pub struct SigningKey {
    pub kid: String,
    pub algorithm: Algorithm,
    encoding: EncodingKey,
    jwk: Value,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A new key under `algorithm` (RS256: 2048-bit RSA; ES256: P-256; EdDSA: Ed25519).
    pub fn generate(algorithm: Algorithm, kid: &str) -> anyhow::Result<Self> {
        use rand_core::OsRng;
        let (encoding, jwk) = match algorithm {
            Algorithm::RS256 => {
                use rsa::pkcs1::{EncodeRsaPrivateKey, LineEnding};
                let key = rsa::RsaPrivateKey::new(&mut OsRng, 2048)?;
                let pem = key.to_pkcs1_pem(LineEnding::LF)?;
                let encoding = EncodingKey::from_rsa_pem(pem.as_bytes())?;
                let jwk = serde_json::to_value(Jwk::from_encoding_key(&encoding, algorithm)?)?;
                (encoding, jwk)
            }
            Algorithm::ES256 => {
                use p256::pkcs8::{EncodePrivateKey, LineEnding};
                let key = p256::SecretKey::random(&mut OsRng);
                let pem = key.to_pkcs8_pem(LineEnding::LF)?;
                let encoding = EncodingKey::from_ec_pem(pem.as_bytes())?;
                let jwk = serde_json::to_value(Jwk::from_encoding_key(&encoding, algorithm)?)?;
                (encoding, jwk)
            }
            Algorithm::EdDSA => {
                use ed25519_dalek::pkcs8::EncodePrivateKey;
                let key = ed25519_dalek::SigningKey::generate(&mut OsRng);
                let der = key.to_pkcs8_der()?;
                let encoding = EncodingKey::from_ed_der(der.as_bytes());
                let x = URL_SAFE_NO_PAD.encode(key.verifying_key().to_bytes());
                (
                    encoding,
                    json!({"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "x": x}),
                )
            }
            other => anyhow::bail!("no test keys under {other:?}"),
        };
        let mut jwk = jwk;
        jwk["kid"] = json!(kid);
        jwk["use"] = json!("sig");
        Ok(Self {
            kid: kid.to_string(),
            algorithm,
            encoding,
            jwk,
        })
    }

    /// The public JWK, as the provider publishes it.
    pub fn jwk(&self) -> &Value {
        &self.jwk
    }

    /// A token of `claims` under this key, naming its `kid`.
    pub fn sign(&self, claims: &Value) -> anyhow::Result<String> {
        let mut header = Header::new(self.algorithm);
        header.kid = Some(self.kid.clone());
        self.sign_with(header, claims)
    }

    /// A token of `claims` with `header` (any `alg`, any `kid`), signed with this key.
    pub fn sign_with(&self, header: Header, claims: &Value) -> anyhow::Result<String> {
        Ok(jsonwebtoken::encode(&header, claims, &self.encoding)?)
    }
}

/// The provider's JWKS endpoint, `GET /jwks`, until dropped.
pub struct JwksServer {
    addr: SocketAddr,
    answer: Arc<Mutex<(StatusCode, String)>>,
    hits: Arc<AtomicUsize>,
    server: tokio::task::JoinHandle<()>,
}

impl JwksServer {
    /// Serves the public half of `keys` on a free port of 127.0.0.1.
    pub async fn start(keys: &[&SigningKey]) -> anyhow::Result<Self> {
        let answer = Arc::new(Mutex::new((StatusCode::OK, String::new())));
        let hits = Arc::new(AtomicUsize::new(0));
        let app = {
            let (answer, hits) = (answer.clone(), hits.clone());
            Router::new().route(
                "/jwks",
                get(move || {
                    hits.fetch_add(1, Ordering::SeqCst);
                    let (status, body) = answer
                        .lock()
                        .map(|a| a.clone())
                        .unwrap_or((StatusCode::INTERNAL_SERVER_ERROR, String::new()));
                    async move { (status, [("content-type", "application/json")], body) }
                }),
            )
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("bind the JWKS server")?;
        let addr = listener.local_addr()?;
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let jwks = Self {
            addr,
            answer,
            hits,
            server,
        };
        jwks.publish(keys);
        Ok(jwks)
    }

    pub fn url(&self) -> String {
        format!("http://{}/jwks", self.addr)
    }

    /// From now on the set holds the public half of `keys`.
    pub fn publish(&self, keys: &[&SigningKey]) {
        let keys: Vec<&Value> = keys.iter().map(|k| k.jwk()).collect();
        self.answer_with(StatusCode::OK, json!({ "keys": keys }).to_string());
    }

    /// From now on `GET /jwks` answers `status` with `body`.
    pub fn answer_with(&self, status: StatusCode, body: String) {
        if let Ok(mut answer) = self.answer.lock() {
            *answer = (status, body);
        }
    }

    /// Requests served so far.
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    /// Stops listening: the next fetch finds no provider.
    pub async fn stop(mut self) {
        self.server.abort();
        let _ = (&mut self.server).await;
    }
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        self.server.abort();
    }
}
