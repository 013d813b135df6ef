//! Who is buying: verification of the user JWTs issued by the shop's login. The keys are a
//! static key under one pinned algorithm, or the keys the shop's identity provider publishes
//! (`provider`, by `kid`), each under its own algorithm; a token under any other algorithm,
//! `alg: none` included, is refused before its signature is looked at. A token must carry
//! `exp` and `sub` (and `iss` / `aud` when configured), and `uid = sub`. It comes in the
//! `Authorization` header or the login's cookie (`carrier`, with the CSRF rule).
//! `mint_dev_token` makes HS256 tokens for local use only (the dev endpoint that calls it exists
//! only in dev mode).

mod carrier;
pub mod jwks;
mod keys;
pub mod provider;
mod token;

use std::sync::Arc;

use axum::http::{HeaderMap, Method};
use jsonwebtoken::{EncodingKey, Header};
use serde::Serialize;

pub use self::carrier::Via;
pub(crate) use self::token::{check_header_alg, AlgCheck};
use self::{
    carrier::{bearer_token, Carrier},
    keys::{key_bytes, ClaimRules, VerifyingKey},
    provider::{JwksMetrics, ProviderKeys},
    token::{identity_error, read_header, TokenHeader, UserClaims},
};
use crate::config::{Algorithm, IdentityConfig, Keys};

#[cfg(test)]
mod tests;

/// Longest `sub` accepted, in bytes.
pub const MAX_UID_BYTES: usize = 128;
/// Longest bearer token accepted, in bytes (bounds the work done on garbage).
pub const MAX_TOKEN_BYTES: usize = 8192;
/// Shortest HS256 secret accepted, in bytes.
pub const MIN_SECRET_BYTES: usize = 32;

/// A verified user id: the `sub` of a valid token; non-empty, at most 128 bytes, no control
/// characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Uid(String);

impl Uid {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl AsRef<str> for Uid {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Uid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why `[identity]` could not be turned into a verifier (or a dev token minted).
#[derive(Debug, thiserror::Error)]
pub enum IdentityConfigError {
    #[error("identity: set exactly one of identity.key, identity.key_file and identity.jwks_url")]
    KeyChoice,
    #[error("identity.key_file {path}: {source}")]
    ReadKey {
        path: String,
        source: std::io::Error,
    },
    #[error("identity.key: an HS256 secret must be at least {MIN_SECRET_BYTES} bytes")]
    ShortSecret,
    #[error("identity.key: not a PEM public key for {algorithm:?}: {source}")]
    BadKey {
        algorithm: Algorithm,
        source: jsonwebtoken::errors::Error,
    },
    #[error("dev tokens need an HS256 identity.key, not {0:?} (None: the provider's keys)")]
    DevTokenNeedsHs256(Option<Algorithm>),
    #[error("dev token uid: must be 1 to {MAX_UID_BYTES} bytes without control characters")]
    DevTokenUid,
    #[error("dev token: {0}")]
    Sign(jsonwebtoken::errors::Error),
}

/// Why a request's identity was refused (the client's fault: 401).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
pub enum IdentityError {
    #[error("no bearer token")]
    MissingToken,
    #[error("not a well-formed bearer JWT")]
    MalformedToken,
    #[error("token algorithm is not the pinned one")]
    WrongAlgorithm,
    #[error("token signature does not verify")]
    BadSignature,
    #[error("token expired")]
    Expired,
    #[error("token not valid yet")]
    NotYetValid,
    #[error("token lacks the {0} claim")]
    MissingClaim(&'static str),
    #[error("token claim {0} is malformed")]
    InvalidClaim(&'static str),
    #[error("token subject is not a valid uid")]
    InvalidSubject,
    #[error("token issuer is not the configured one")]
    WrongIssuer,
    #[error("token audience is not the configured one")]
    WrongAudience,
    #[error("token names no kid, and the identity provider's keys are told apart by kid")]
    MissingKeyId,
    #[error("token kid is none of the identity provider's keys")]
    UnknownKey,
    #[error("a cookie-borne token on a state-changing request from another site")]
    CrossSite,
}

impl IdentityError {
    /// A stable snake_case code for metrics and logs.
    pub fn reason(&self) -> &'static str {
        self.into()
    }
}

/// A verified user: who, until when, and how the token came.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub uid: Uid,
    /// The token's `exp`, in Unix seconds.
    pub expires_at: u64,
    pub via: Via,
}

/// The keys tokens are checked with.
enum KeyRing {
    Static(Box<VerifyingKey>),
    Provider(Arc<ProviderKeys>),
}

/// Verifies user JWTs.
pub struct Verifier {
    keys: KeyRing,
    carrier: Carrier,
    leeway: u64,
}

#[derive(Serialize)]
struct DevClaims<'a> {
    sub: &'a str,
    iat: u64,
    exp: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    iss: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    aud: Option<&'a str>,
}

impl Verifier {
    /// Reads the static key (`key` or `key_file`), or prepares the provider's keys: those of
    /// `previous` when its provider settings are the same (a reload keeps the keys held),
    /// else a new set, fetched at the first need.
    pub fn from_config(
        cfg: &IdentityConfig,
        previous: Option<&Verifier>,
        metrics: &JwksMetrics,
    ) -> Result<Self, IdentityConfigError> {
        let rules = ClaimRules::from_config(cfg);
        let keys = match &cfg.keys {
            None => return Err(IdentityConfigError::KeyChoice),
            Some(Keys::Static { algorithm, source }) => KeyRing::Static(Box::new(
                VerifyingKey::from_static(*algorithm, source, &rules)?,
            )),
            Some(Keys::Jwks(jwks)) => match previous.map(|p| &p.keys) {
                Some(KeyRing::Provider(held)) if held.same(jwks, &rules) => {
                    KeyRing::Provider(held.clone())
                }
                _ => KeyRing::Provider(ProviderKeys::new(jwks.clone(), rules, metrics.clone())),
            },
        };
        Ok(Self {
            keys,
            carrier: Carrier::from_config(cfg),
            leeway: cfg.leeway_seconds,
        })
    }

    /// The provider's keys, when the keys come from one.
    pub fn provider(&self) -> Option<&Arc<ProviderKeys>> {
        match &self.keys {
            KeyRing::Provider(keys) => Some(keys),
            KeyRing::Static(_) => None,
        }
    }

    /// The user of a request now (by `clock::unix_now`): its token from the header or the
    /// cookie, checked; a `kid` the provider's keys lack fetches them again (at most once per
    /// refetch interval) before the token is refused.
    pub async fn user(&self, headers: &HeaderMap, method: &Method) -> Result<User, IdentityError> {
        let (token, via) = self.carrier.token(headers, method)?;
        let now = crate::clock::unix_now();
        if let KeyRing::Provider(keys) = &self.keys {
            keys.refresh_if_stale();
        }
        let checked = match self.verify_token_at(token, now) {
            Err(IdentityError::UnknownKey) => match &self.keys {
                KeyRing::Provider(keys) => {
                    keys.fetch_if_due().await;
                    self.verify_token_at(token, now)
                }
                KeyRing::Static(_) => Err(IdentityError::UnknownKey),
            },
            checked => checked,
        };
        let (uid, expires_at) = checked?;
        Ok(User {
            uid,
            expires_at,
            via,
        })
    }

    /// Verifies the raw `Authorization` header value (`Bearer <jwt>`) at `now_unix` with the
    /// keys held.
    pub fn verify_at(
        &self,
        authorization_header: Option<&str>,
        now_unix: u64,
    ) -> Result<Uid, IdentityError> {
        let token = bearer_token(authorization_header)?;
        self.verify_token_at(token, now_unix).map(|(uid, _)| uid)
    }

    /// Verifies a compact JWT at `now_unix` with the keys held: the uid and the expiry.
    fn verify_token_at(&self, token: &str, now_unix: u64) -> Result<(Uid, u64), IdentityError> {
        let TokenHeader { alg, kid } = read_header(token).ok_or(IdentityError::MalformedToken)?;
        let held;
        let key = match &self.keys {
            KeyRing::Static(key) => key,
            KeyRing::Provider(keys) => {
                let kid = kid.ok_or(IdentityError::MissingKeyId)?;
                held = keys.keys();
                held.get(&kid).ok_or(IdentityError::UnknownKey)?
            }
        };
        if alg != Some(key.algorithm) {
            return Err(IdentityError::WrongAlgorithm);
        }
        let data = jsonwebtoken::decode::<UserClaims>(token, &key.key, &key.validation)
            .map_err(|e| identity_error(e.kind()))?;
        data.claims.check(now_unix, self.leeway)
    }
}

/// Mints a user JWT `{sub, iat, exp[, iss]}` for local use. HS256 only: other algorithms need
/// the shop's private key, which the edge never has.
pub fn mint_dev_token(
    cfg: &IdentityConfig,
    uid: &str,
    ttl_seconds: u64,
    now_unix: u64,
) -> Result<String, IdentityConfigError> {
    let source = match &cfg.keys {
        Some(Keys::Static {
            algorithm: Algorithm::HS256,
            source,
        }) => source,
        Some(Keys::Static { algorithm, .. }) => {
            return Err(IdentityConfigError::DevTokenNeedsHs256(Some(*algorithm)))
        }
        Some(Keys::Jwks(_)) => return Err(IdentityConfigError::DevTokenNeedsHs256(None)),
        None => return Err(IdentityConfigError::KeyChoice),
    };
    if !valid_uid(uid) {
        return Err(IdentityConfigError::DevTokenUid);
    }
    let secret = key_bytes(Algorithm::HS256, source)?;
    let claims = DevClaims {
        sub: uid,
        iat: now_unix,
        exp: now_unix.saturating_add(ttl_seconds),
        iss: cfg.issuer.as_deref(),
        aud: cfg.audience.as_deref(),
    };
    jsonwebtoken::encode(
        &Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(&secret),
    )
    .map_err(IdentityConfigError::Sign)
}

/// Whether `uid` may be a user id.
pub fn valid_uid(uid: &str) -> bool {
    !uid.is_empty() && uid.len() <= MAX_UID_BYTES && !uid.chars().any(char::is_control)
}
