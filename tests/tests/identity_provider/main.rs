//! The edge on the keys of the shop's identity provider: a JWKS endpoint of the harness
//! (`jwks_server`) with keys it makes (RS256, ES256, EdDSA). The verifier in this process against
//! that endpoint over real HTTP: tokens by `kid` under each key's own algorithm, rotations,
//! floods of made-up `kid`s, bad documents and an outage (`verifier`); the same through a real
//! edge in front of a real sale (`sale`). One test binary.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "integration tests: a failed unwrap is a failed test, with its message"
)]

mod sale;
mod verifier;

use serde_json::{json, Value};

const ISSUER: &str = "https://login.shop.example";
const AUDIENCE: &str = "shop-web";

/// The claims of a token for `uid` from the provider, valid ten minutes.
fn claims(uid: &str) -> Value {
    let now = flash_tests::shopper::now_unix();
    json!({"sub": uid, "iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 600})
}
