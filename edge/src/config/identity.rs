//! `[identity]`: how user JWTs are checked: the one algorithm, the key (inline or from a file:
//! exactly one of `key` and `key_file`), the issuer and the clock skew allowed.

use std::path::PathBuf;

use serde::Deserialize;
use service::config::Problems;

/// Supported user JWT algorithms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Algorithm {
    EdDSA,
    ES256,
    RS256,
    HS256,
}

/// Where the key is: `key` (the key itself) or `key_file` (a file holding it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    Inline(String),
    File(PathBuf),
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "IdentityFields")]
pub struct IdentityConfig {
    /// The one algorithm user JWTs may use; any other (and `none`) is refused.
    pub algorithm: Algorithm,
    /// HS256: the shared secret (at least 32 bytes). Other algorithms: the PEM public key.
    /// `None` until one of `key` and `key_file` is set (refused by `validate`).
    pub key: Option<KeySource>,
    /// Required `iss`, if set.
    pub issuer: Option<String>,
    /// Clock skew tolerated on `exp`, in seconds.
    pub leeway_seconds: u64,
}

/// `[identity]` as written: `key` and `key_file` side by side; both set is refused as it is read.
#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
struct IdentityFields {
    algorithm: Algorithm,
    key: Option<String>,
    key_file: Option<PathBuf>,
    issuer: Option<String>,
    leeway_seconds: u64,
}

impl Default for IdentityConfig {
    fn default() -> Self {
        Self {
            algorithm: Algorithm::HS256,
            key: None,
            issuer: None,
            leeway_seconds: 5,
        }
    }
}

impl Default for IdentityFields {
    fn default() -> Self {
        let IdentityConfig {
            algorithm,
            issuer,
            leeway_seconds,
            ..
        } = IdentityConfig::default();
        Self {
            algorithm,
            key: None,
            key_file: None,
            issuer,
            leeway_seconds,
        }
    }
}

impl TryFrom<IdentityFields> for IdentityConfig {
    type Error = &'static str;

    fn try_from(fields: IdentityFields) -> Result<Self, Self::Error> {
        let key = match (fields.key, fields.key_file) {
            (Some(_), Some(_)) => return Err(KEY_CHOICE),
            (Some(key), None) => Some(KeySource::Inline(key)),
            (None, Some(path)) => Some(KeySource::File(path)),
            (None, None) => None,
        };
        Ok(Self {
            algorithm: fields.algorithm,
            key,
            issuer: fields.issuer,
            leeway_seconds: fields.leeway_seconds,
        })
    }
}

const KEY_CHOICE: &str = "set exactly one of identity.key and identity.key_file";

impl IdentityConfig {
    pub(super) fn validate(&self, problems: &mut Problems) {
        match &self.key {
            None => problems.push("identity.key", KEY_CHOICE),
            Some(KeySource::Inline(key)) if self.algorithm == Algorithm::HS256 => problems.check(
                key.len() >= 32,
                "identity.key",
                "an HS256 secret must be at least 32 bytes",
            ),
            Some(_) => {}
        }
        problems.at_most("identity.leeway_seconds", self.leeway_seconds, 300);
    }
}
