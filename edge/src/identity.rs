//! Who is buying: verification of the user JWTs issued by the shop's login. The algorithm and
//! key are pinned by `[identity]` in the config; a token must carry `exp` and `sub` (and `iss`
//! when one is configured), and `uid = sub`. Tokens under any other algorithm, `alg: none`
//! included, are refused before their signature is looked at. `mint_dev_token` makes HS256
//! tokens for local use only (the dev endpoint that calls it exists only in dev mode).

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use jsonwebtoken::{errors::ErrorKind, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::config::{Algorithm, IdentityConfig, KeySource};

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
    #[error("identity.key: set exactly one of identity.key and identity.key_file")]
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
    #[error("dev tokens need identity.algorithm = \"HS256\", not {0:?}")]
    DevTokenNeedsHs256(Algorithm),
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
}

impl IdentityError {
    /// A stable snake_case code for metrics and logs.
    pub fn reason(&self) -> &'static str {
        self.into()
    }
}

/// Verifies user JWTs under the one configured algorithm and key.
pub struct Verifier {
    algorithm: jsonwebtoken::Algorithm,
    key: DecodingKey,
    validation: Validation,
    leeway: u64,
}

/// The claims the edge reads; the library checks presence and `iss`, the rest is checked here.
#[derive(Deserialize)]
struct UserClaims {
    sub: Option<String>,
    exp: Option<f64>,
    nbf: Option<f64>,
}

#[derive(Serialize)]
struct DevClaims<'a> {
    sub: &'a str,
    iat: u64,
    exp: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    iss: Option<&'a str>,
}

impl Verifier {
    /// Reads the key (`key` or `key_file`) and pins the algorithm.
    pub fn from_config(cfg: &IdentityConfig) -> Result<Self, IdentityConfigError> {
        let bytes = key_bytes(cfg)?;
        let bad_key = |source| IdentityConfigError::BadKey {
            algorithm: cfg.algorithm,
            source,
        };
        let key = match cfg.algorithm {
            Algorithm::HS256 => DecodingKey::from_secret(&bytes),
            Algorithm::RS256 => DecodingKey::from_rsa_pem(&bytes).map_err(bad_key)?,
            Algorithm::ES256 => DecodingKey::from_ec_pem(&bytes).map_err(bad_key)?,
            Algorithm::EdDSA => DecodingKey::from_ed_pem(&bytes).map_err(bad_key)?,
        };
        let algorithm = jwt_algorithm(cfg.algorithm);
        let mut validation = Validation::new(algorithm);
        let mut required = vec!["exp", "sub"];
        if let Some(issuer) = &cfg.issuer {
            validation.set_issuer(&[issuer]);
            required.push("iss");
        }
        validation.set_required_spec_claims(&required);
        validation.validate_aud = false;
        // `exp` and `nbf` are checked in `verify_at`, against the caller's clock.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.leeway = cfg.leeway_seconds;
        Ok(Self {
            algorithm,
            key,
            validation,
            leeway: cfg.leeway_seconds,
        })
    }

    /// Verifies the raw `Authorization` header value now (by `clock::unix_now`).
    pub fn verify(&self, authorization_header: Option<&str>) -> Result<Uid, IdentityError> {
        self.verify_at(authorization_header, crate::clock::unix_now())
    }

    /// Verifies the raw `Authorization` header value (`Bearer <jwt>`) at `now_unix`.
    pub fn verify_at(
        &self,
        authorization_header: Option<&str>,
        now_unix: u64,
    ) -> Result<Uid, IdentityError> {
        let token = bearer_token(authorization_header)?;
        check_header_alg(token, self.algorithm).map_err(|e| match e {
            AlgCheck::Malformed => IdentityError::MalformedToken,
            AlgCheck::Wrong => IdentityError::WrongAlgorithm,
        })?;
        let data = jsonwebtoken::decode::<UserClaims>(token, &self.key, &self.validation)
            .map_err(|e| identity_error(e.kind()))?;
        let claims = data.claims;
        let exp = claims.exp.ok_or(IdentityError::MissingClaim("exp"))?;
        if !exp.is_finite() {
            return Err(IdentityError::InvalidClaim("exp"));
        }
        // Float to integer casts saturate: a negative exp is long past.
        if now_unix >= (exp as u64).saturating_add(self.leeway) {
            return Err(IdentityError::Expired);
        }
        if let Some(nbf) = claims.nbf {
            if !nbf.is_finite() {
                return Err(IdentityError::InvalidClaim("nbf"));
            }
            if (nbf as u64) > now_unix.saturating_add(self.leeway) {
                return Err(IdentityError::NotYetValid);
            }
        }
        let sub = claims.sub.ok_or(IdentityError::MissingClaim("sub"))?;
        if !valid_uid(&sub) {
            return Err(IdentityError::InvalidSubject);
        }
        Ok(Uid(sub))
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
    if cfg.algorithm != Algorithm::HS256 {
        return Err(IdentityConfigError::DevTokenNeedsHs256(cfg.algorithm));
    }
    if !valid_uid(uid) {
        return Err(IdentityConfigError::DevTokenUid);
    }
    let secret = key_bytes(cfg)?;
    let claims = DevClaims {
        sub: uid,
        iat: now_unix,
        exp: now_unix.saturating_add(ttl_seconds),
        iss: cfg.issuer.as_deref(),
    };
    jsonwebtoken::encode(
        &Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(&secret),
    )
    .map_err(IdentityConfigError::Sign)
}

/// The key material: the secret (HS256) or the PEM text. A key file's trailing newline is
/// not part of the key.
fn key_bytes(cfg: &IdentityConfig) -> Result<Vec<u8>, IdentityConfigError> {
    let bytes = match &cfg.key {
        Some(KeySource::Inline(key)) => key.as_bytes().to_vec(),
        Some(KeySource::File(path)) => std::fs::read_to_string(path)
            .map_err(|source| IdentityConfigError::ReadKey {
                path: path.display().to_string(),
                source,
            })?
            .trim_end_matches(['\r', '\n'])
            .as_bytes()
            .to_vec(),
        None => return Err(IdentityConfigError::KeyChoice),
    };
    if cfg.algorithm == Algorithm::HS256 && bytes.len() < MIN_SECRET_BYTES {
        return Err(IdentityConfigError::ShortSecret);
    }
    Ok(bytes)
}

fn jwt_algorithm(algorithm: Algorithm) -> jsonwebtoken::Algorithm {
    match algorithm {
        Algorithm::EdDSA => jsonwebtoken::Algorithm::EdDSA,
        Algorithm::ES256 => jsonwebtoken::Algorithm::ES256,
        Algorithm::RS256 => jsonwebtoken::Algorithm::RS256,
        Algorithm::HS256 => jsonwebtoken::Algorithm::HS256,
    }
}

/// The token of `Bearer <token>` (scheme case-insensitive, as RFC 7235 says).
fn bearer_token(header: Option<&str>) -> Result<&str, IdentityError> {
    let header = header.map(str::trim).unwrap_or_default();
    if header.is_empty() {
        return Err(IdentityError::MissingToken);
    }
    let (scheme, token) = header
        .split_once(' ')
        .ok_or(IdentityError::MalformedToken)?;
    let token = token.trim_start();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(IdentityError::MalformedToken);
    }
    if token.len() > MAX_TOKEN_BYTES || token.contains(char::is_whitespace) {
        return Err(IdentityError::MalformedToken);
    }
    Ok(token)
}

/// Whether `uid` may be a user id.
pub fn valid_uid(uid: &str) -> bool {
    !uid.is_empty() && uid.len() <= MAX_UID_BYTES && !uid.chars().any(char::is_control)
}

/// Why a JWT header failed the algorithm check.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum AlgCheck {
    Malformed,
    Wrong,
}

/// Reads the header of a compact JWT by hand and checks its `alg` against the pinned one, so
/// `alg: none` and unknown algorithms are refused as such rather than as unparsable headers.
pub(crate) fn check_header_alg(
    token: &str,
    expected: jsonwebtoken::Algorithm,
) -> Result<(), AlgCheck> {
    #[derive(Deserialize)]
    struct AlgOnly {
        alg: String,
    }
    let mut parts = token.split('.');
    let (Some(header), Some(_), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(AlgCheck::Malformed);
    };
    let json = URL_SAFE_NO_PAD
        .decode(header)
        .map_err(|_| AlgCheck::Malformed)?;
    let header: AlgOnly = serde_json::from_slice(&json).map_err(|_| AlgCheck::Malformed)?;
    match header.alg.parse::<jsonwebtoken::Algorithm>() {
        Ok(alg) if alg == expected => Ok(()),
        _ => Err(AlgCheck::Wrong),
    }
}

fn identity_error(kind: &ErrorKind) -> IdentityError {
    match kind {
        ErrorKind::InvalidAlgorithm | ErrorKind::MissingAlgorithm => IdentityError::WrongAlgorithm,
        ErrorKind::InvalidSignature
        | ErrorKind::InvalidEcdsaKey
        | ErrorKind::InvalidEddsaKey
        | ErrorKind::InvalidRsaKey(_)
        | ErrorKind::InvalidKeyFormat => IdentityError::BadSignature,
        ErrorKind::ExpiredSignature => IdentityError::Expired,
        ErrorKind::ImmatureSignature => IdentityError::NotYetValid,
        ErrorKind::InvalidIssuer => IdentityError::WrongIssuer,
        ErrorKind::InvalidSubject => IdentityError::InvalidSubject,
        ErrorKind::MissingRequiredClaim(claim) => IdentityError::MissingClaim(claim_name(claim)),
        ErrorKind::InvalidClaimFormat(claim) => IdentityError::InvalidClaim(claim_name(claim)),
        _ => IdentityError::MalformedToken,
    }
}

fn claim_name(claim: &str) -> &'static str {
    match claim {
        "exp" => "exp",
        "sub" => "sub",
        "iss" => "iss",
        "nbf" => "nbf",
        "aud" => "aud",
        _ => "other",
    }
}
