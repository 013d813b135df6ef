//! Counterfeit user JWTs for the identity bots: `alg: none` (no signature at all), HS256 signed
//! with a key that is not the edge's, and a real token (the right secret) that expired an hour
//! ago. Each claims the bot's own uid; the edge must answer 401 to all of them.

use base64::Engine;
use serde_json::json;

use super::scene::{unix_now, TOKEN_TTL_SECONDS};

/// The key forgers guess: long enough for HS256, but not the edge's.
const WRONG_KEY: &[u8] = b"a-guessed-key-that-is-not-the-edges-0123456789";

fn b64(value: &serde_json::Value) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value.to_string())
}

/// `{"alg": "none"}`, claims for `uid`, an empty signature.
pub fn alg_none(uid: &str) -> String {
    let claims = json!({"sub": uid, "iat": unix_now(), "exp": unix_now() + TOKEN_TTL_SECONDS});
    format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT"})),
        b64(&claims)
    )
}

/// HS256 with the wrong key. A signing failure still yields a token that cannot verify.
pub fn wrong_key(uid: &str) -> String {
    let claims = json!({"sub": uid, "iat": unix_now(), "exp": unix_now() + TOKEN_TTL_SECONDS});
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(WRONG_KEY),
    )
    .unwrap_or_else(|_| format!("{}.{}.AAAA", b64(&json!({"alg": "HS256"})), b64(&claims)))
}

/// A token signed with the real key (the scene's), valid for a minute an hour ago.
pub fn expired(scene: &super::scene::Scene, uid: &str) -> String {
    // Config validation requires a key for this kind; without one, still a bad token.
    scene
        .mint(uid, unix_now().saturating_sub(3600), 60)
        .unwrap_or_else(|| wrong_key(uid))
}
