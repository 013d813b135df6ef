//! A JWKS document read into verifying keys by `kid`. The algorithm of each key is the key's own
//! (`alg`, or the one its `kty` / `crv` allows), never the token's. A document with a symmetric
//! key (`kty: oct`, an `HS*` or `none` alg) is refused whole, as is one that is too large, not
//! JSON, or without a single usable signing key; the caller then keeps the keys it had. Keys
//! for encryption, without a `kid`, of an unsupported type or a repeated `kid` are left out,
//! each named in the log.

use std::collections::HashMap;

use jsonwebtoken::{
    jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse},
    Algorithm, DecodingKey,
};
use serde::Deserialize;

use super::keys::{ClaimRules, VerifyingKey};

/// Most keys read from one document.
pub const MAX_KEYS: usize = 64;

/// Why a JWKS document was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
pub enum JwksError {
    #[error("the document is over {limit} bytes")]
    TooLarge { limit: usize },
    #[error("not a JWKS document: {0}")]
    Malformed(String),
    #[error("key {index} is symmetric or unsigned ({what}): a JWKS holds public keys only")]
    Symmetric { index: usize, what: String },
    #[error("no usable signing key among {0}")]
    NoKeys(usize),
}

impl JwksError {
    /// A stable snake_case code for metrics and logs.
    pub fn reason(&self) -> &'static str {
        self.into()
    }
}

/// The keys of one document, by `kid`.
pub struct KeySet {
    keys: HashMap<String, VerifyingKey>,
}

impl KeySet {
    pub fn empty() -> Self {
        Self {
            keys: HashMap::new(),
        }
    }

    pub fn get(&self, kid: &str) -> Option<&VerifyingKey> {
        self.keys.get(kid)
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Reads `document` (at most `max_bytes`), each key under `rules`.
    pub fn parse(document: &[u8], max_bytes: usize, rules: &ClaimRules) -> Result<Self, JwksError> {
        if document.len() > max_bytes {
            return Err(JwksError::TooLarge { limit: max_bytes });
        }
        #[derive(Deserialize)]
        struct Document {
            keys: Vec<serde_json::Value>,
        }
        let document: Document =
            serde_json::from_slice(document).map_err(|e| JwksError::Malformed(e.to_string()))?;
        if document.keys.len() > MAX_KEYS {
            return Err(JwksError::Malformed(format!(
                "{} keys, at most {MAX_KEYS}",
                document.keys.len()
            )));
        }
        let mut keys = HashMap::new();
        for (index, raw) in document.keys.iter().enumerate() {
            if let Some(what) = symmetric(raw) {
                return Err(JwksError::Symmetric { index, what });
            }
            match usable(raw) {
                Ok((kid, algorithm, key)) => {
                    if keys.contains_key(&kid) {
                        tracing::warn!(index, kid, "jwks: a repeated kid, the first key kept");
                        continue;
                    }
                    keys.insert(kid, VerifyingKey::new(algorithm, key, rules));
                }
                Err(why) => tracing::warn!(index, why, "jwks: a key left out"),
            }
        }
        if keys.is_empty() {
            return Err(JwksError::NoKeys(document.keys.len()));
        }
        Ok(Self { keys })
    }
}

/// What makes `raw` a key no JWKS may hold: a shared secret, or a key for unsigned tokens.
fn symmetric(raw: &serde_json::Value) -> Option<String> {
    let text = |field| raw.get(field).and_then(serde_json::Value::as_str);
    match (text("kty"), text("alg")) {
        (Some("oct"), _) => Some("kty oct".to_string()),
        (_, Some(alg)) if alg.eq_ignore_ascii_case("none") || alg.starts_with("HS") => {
            Some(format!("alg {alg}"))
        }
        _ => None,
    }
}

/// The `kid`, algorithm and key of a signing key, or why it is left out.
fn usable(raw: &serde_json::Value) -> Result<(String, Algorithm, DecodingKey), &'static str> {
    let jwk: Jwk = serde_json::from_value(raw.clone()).map_err(|_| "not a supported key")?;
    if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
        return Err("a key for encryption");
    }
    let kid = jwk.common.key_id.clone().ok_or("no kid")?;
    let algorithm = algorithm(&jwk)?;
    let key = DecodingKey::from_jwk(&jwk).map_err(|_| "key parameters do not parse")?;
    Ok((kid, algorithm, key))
}

/// The one algorithm a key verifies: its `alg` when it names one that fits its type, else the
/// one its type allows.
fn algorithm(jwk: &Jwk) -> Result<Algorithm, &'static str> {
    let fits = |alg: Algorithm| match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => matches!(
            alg,
            Algorithm::RS256
                | Algorithm::RS384
                | Algorithm::RS512
                | Algorithm::PS256
                | Algorithm::PS384
                | Algorithm::PS512
        ),
        AlgorithmParameters::EllipticCurve(ec) => matches!(
            (&ec.curve, alg),
            (EllipticCurve::P256, Algorithm::ES256) | (EllipticCurve::P384, Algorithm::ES384)
        ),
        AlgorithmParameters::OctetKeyPair(okp) => {
            okp.curve == EllipticCurve::Ed25519 && alg == Algorithm::EdDSA
        }
        AlgorithmParameters::OctetKey(_) => false,
    };
    let named = match jwk.common.key_algorithm {
        None => None,
        Some(KeyAlgorithm::UNKNOWN_ALGORITHM) => return Err("an unknown alg"),
        Some(alg) => Some(
            alg.to_string()
                .parse::<Algorithm>()
                .map_err(|_| "an alg for encryption")?,
        ),
    };
    let algorithm = match (named, &jwk.algorithm) {
        (Some(alg), _) => alg,
        (None, AlgorithmParameters::RSA(_)) => Algorithm::RS256,
        (None, AlgorithmParameters::EllipticCurve(ec)) if ec.curve == EllipticCurve::P384 => {
            Algorithm::ES384
        }
        (None, AlgorithmParameters::EllipticCurve(_)) => Algorithm::ES256,
        (None, AlgorithmParameters::OctetKeyPair(_)) => Algorithm::EdDSA,
        (None, AlgorithmParameters::OctetKey(_)) => return Err("a symmetric key"),
    };
    if fits(algorithm) {
        Ok(algorithm)
    } else {
        Err("an alg that does not fit the key type")
    }
}
