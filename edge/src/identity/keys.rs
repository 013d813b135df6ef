//! The keys that verify user JWTs, each bound to its one algorithm and the claim rules of the
//! config: the static key of `key` / `key_file`, or the keys of the provider's JWKS by `kid`.

use jsonwebtoken::{DecodingKey, Validation};

use super::{IdentityConfigError, MIN_SECRET_BYTES};
use crate::config::{Algorithm, IdentityConfig, KeySource};

/// What every token must carry besides a good signature, from `[identity]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimRules {
    pub issuer: Option<String>,
    pub audience: Option<String>,
    pub leeway: u64,
}

impl ClaimRules {
    pub fn from_config(cfg: &IdentityConfig) -> Self {
        Self {
            issuer: cfg.issuer.clone(),
            audience: cfg.audience.clone(),
            leeway: cfg.leeway_seconds,
        }
    }

    /// The library's checks for tokens under `algorithm`: presence of `exp` and `sub` (and
    /// `iss` / `aud` when configured) and their values; `exp` and `nbf` are checked by
    /// `UserClaims::check` against the caller's clock.
    fn validation(&self, algorithm: jsonwebtoken::Algorithm) -> Validation {
        let mut validation = Validation::new(algorithm);
        let mut required = vec!["exp", "sub"];
        if let Some(issuer) = &self.issuer {
            validation.set_issuer(&[issuer]);
            required.push("iss");
        }
        match &self.audience {
            Some(audience) => {
                validation.set_audience(&[audience]);
                required.push("aud");
            }
            None => validation.validate_aud = false,
        }
        validation.set_required_spec_claims(&required);
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.leeway = self.leeway;
        validation
    }
}

/// One key, the one algorithm it verifies, and the checks of the claims.
pub struct VerifyingKey {
    pub algorithm: jsonwebtoken::Algorithm,
    pub key: DecodingKey,
    pub validation: Validation,
}

impl VerifyingKey {
    pub fn new(algorithm: jsonwebtoken::Algorithm, key: DecodingKey, rules: &ClaimRules) -> Self {
        Self {
            algorithm,
            key,
            validation: rules.validation(algorithm),
        }
    }

    /// The static key of the config, read (`key_file`) and parsed under its algorithm.
    pub fn from_static(
        algorithm: Algorithm,
        source: &KeySource,
        rules: &ClaimRules,
    ) -> Result<Self, IdentityConfigError> {
        let bytes = key_bytes(algorithm, source)?;
        let bad_key = |source| IdentityConfigError::BadKey { algorithm, source };
        let key = match algorithm {
            Algorithm::HS256 => DecodingKey::from_secret(&bytes),
            Algorithm::RS256 => DecodingKey::from_rsa_pem(&bytes).map_err(bad_key)?,
            Algorithm::ES256 => DecodingKey::from_ec_pem(&bytes).map_err(bad_key)?,
            Algorithm::EdDSA => DecodingKey::from_ed_pem(&bytes).map_err(bad_key)?,
        };
        Ok(Self::new(jwt_algorithm(algorithm), key, rules))
    }
}

/// The key material: the secret (HS256) or the PEM text. A key file's trailing newline is not
/// part of the key.
pub fn key_bytes(algorithm: Algorithm, source: &KeySource) -> Result<Vec<u8>, IdentityConfigError> {
    let bytes = match source {
        KeySource::Inline(key) => key.as_bytes().to_vec(),
        KeySource::File(path) => std::fs::read_to_string(path)
            .map_err(|source| IdentityConfigError::ReadKey {
                path: path.display().to_string(),
                source,
            })?
            .trim_end_matches(['\r', '\n'])
            .as_bytes()
            .to_vec(),
    };
    if algorithm == Algorithm::HS256 && bytes.len() < MIN_SECRET_BYTES {
        return Err(IdentityConfigError::ShortSecret);
    }
    Ok(bytes)
}

pub fn jwt_algorithm(algorithm: Algorithm) -> jsonwebtoken::Algorithm {
    match algorithm {
        Algorithm::EdDSA => jsonwebtoken::Algorithm::EdDSA,
        Algorithm::ES256 => jsonwebtoken::Algorithm::ES256,
        Algorithm::RS256 => jsonwebtoken::Algorithm::RS256,
        Algorithm::HS256 => jsonwebtoken::Algorithm::HS256,
    }
}
