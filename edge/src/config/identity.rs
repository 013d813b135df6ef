//! `[identity]`: how user JWTs are checked and where they come from. The keys are exactly one
//! of a static key (`key` or `key_file`, under the one pinned `algorithm`) and the shop's
//! identity provider (`jwks_url`: its published key set, the algorithm taken from each key).
//! The claims required (`exp`, `sub`, and `iss` / `aud` when set), the clock skew allowed, the
//! cookie a token may come in, the origins allowed to send state-changing requests with that
//! cookie (the CSRF rule), and the shop's login page.

use std::{path::PathBuf, time::Duration};

use serde::Deserialize;
use service::config::Problems;
use url::Url;

/// Supported algorithms of a static user JWT key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Algorithm {
    EdDSA,
    ES256,
    RS256,
    HS256,
}

/// Where a static key is: `key` (the key itself) or `key_file` (a file holding it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    Inline(String),
    File(PathBuf),
}

/// Where the keys that verify user JWTs come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Keys {
    /// One key under one pinned algorithm: HS256's shared secret, or another's PEM public key.
    Static {
        algorithm: Algorithm,
        source: KeySource,
    },
    /// The identity provider's JWKS, fetched and refreshed.
    Jwks(JwksConfig),
}

impl Keys {
    /// An HS256 secret written inline.
    pub fn hs256(secret: &str) -> Self {
        Self::Static {
            algorithm: Algorithm::HS256,
            source: KeySource::Inline(secret.to_string()),
        }
    }
}

/// The provider's key set: where it is and how often it is fetched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwksConfig {
    /// `jwks_url`: the provider's `jwks_uri` (http or https).
    pub url: Url,
    /// `jwks_refresh_seconds`: the set is fetched again this often.
    pub refresh: Duration,
    /// `jwks_refetch_seconds`: a token naming an unknown `kid` fetches the set again, at most
    /// once per this interval (a flood of made-up `kid`s costs the provider one request).
    pub refetch: Duration,
    /// `jwks_timeout_ms`: time allowed to one fetch.
    pub timeout: Duration,
    /// `jwks_max_bytes`: a larger document is refused and the keys held are kept.
    pub max_bytes: usize,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "IdentityFields")]
pub struct IdentityConfig {
    /// `None` until one of `key`, `key_file` and `jwks_url` is set (refused by `validate`).
    pub keys: Option<Keys>,
    /// Required `iss`, if set.
    pub issuer: Option<String>,
    /// Required `aud` (one of the token's audiences), if set.
    pub audience: Option<String>,
    /// Clock skew tolerated on `exp` and `nbf`, in seconds.
    pub leeway_seconds: u64,
    /// The cookie a token may come in when no `Authorization` header is sent.
    pub cookie: Option<String>,
    /// Origins (`scheme://host[:port]`) allowed to send state-changing requests authenticated
    /// by the cookie.
    pub allowed_origins: Vec<String>,
    /// The shop's login page; the sale page links to it with `return_to=<the page>`.
    pub login_url: Option<Url>,
}

/// `[identity]` as written.
#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
struct IdentityFields {
    algorithm: Option<Algorithm>,
    key: Option<String>,
    key_file: Option<PathBuf>,
    jwks_url: Option<String>,
    jwks_refresh_seconds: u64,
    jwks_refetch_seconds: u64,
    jwks_timeout_ms: u64,
    jwks_max_bytes: usize,
    issuer: Option<String>,
    audience: Option<String>,
    leeway_seconds: u64,
    cookie: Option<String>,
    allowed_origins: Vec<String>,
    login_url: Option<String>,
}

impl Default for IdentityConfig {
    fn default() -> Self {
        Self {
            keys: None,
            issuer: None,
            audience: None,
            leeway_seconds: 5,
            cookie: None,
            allowed_origins: Vec::new(),
            login_url: None,
        }
    }
}

impl Default for IdentityFields {
    fn default() -> Self {
        Self {
            algorithm: None,
            key: None,
            key_file: None,
            jwks_url: None,
            jwks_refresh_seconds: 300,
            jwks_refetch_seconds: 30,
            jwks_timeout_ms: 2000,
            jwks_max_bytes: 64 * 1024,
            issuer: None,
            audience: None,
            leeway_seconds: IdentityConfig::default().leeway_seconds,
            cookie: None,
            allowed_origins: Vec::new(),
            login_url: None,
        }
    }
}

impl TryFrom<IdentityFields> for IdentityConfig {
    type Error = String;

    fn try_from(f: IdentityFields) -> Result<Self, Self::Error> {
        let static_key = |source| Keys::Static {
            algorithm: f.algorithm.unwrap_or(Algorithm::HS256),
            source,
        };
        let keys = match (f.key, f.key_file, f.jwks_url) {
            (Some(key), None, None) => Some(static_key(KeySource::Inline(key))),
            (None, Some(path), None) => Some(static_key(KeySource::File(path))),
            (None, None, Some(url)) => {
                if f.algorithm.is_some() {
                    return Err(
                        "identity.algorithm: with jwks_url each key names its algorithm; \
                         leave algorithm unset"
                            .to_string(),
                    );
                }
                Some(Keys::Jwks(JwksConfig {
                    url: Url::parse(&url).map_err(|e| format!("identity.jwks_url {url:?}: {e}"))?,
                    refresh: Duration::from_secs(f.jwks_refresh_seconds),
                    refetch: Duration::from_secs(f.jwks_refetch_seconds),
                    timeout: Duration::from_millis(f.jwks_timeout_ms),
                    max_bytes: f.jwks_max_bytes,
                }))
            }
            (None, None, None) => None,
            _ => return Err(KEY_CHOICE.to_string()),
        };
        let login_url = f
            .login_url
            .map(|url| Url::parse(&url).map_err(|e| format!("identity.login_url {url:?}: {e}")))
            .transpose()?;
        let allowed_origins = f
            .allowed_origins
            .iter()
            .map(|origin| web_origin(origin))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            keys,
            issuer: f.issuer,
            audience: f.audience,
            leeway_seconds: f.leeway_seconds,
            cookie: f.cookie,
            allowed_origins,
            login_url,
        })
    }
}

const KEY_CHOICE: &str = "set exactly one of identity.key, identity.key_file and identity.jwks_url";

/// `scheme://host[:port]` as browsers send it in `Origin` (no path, no trailing slash, the
/// default port left out).
fn web_origin(text: &str) -> Result<String, String> {
    let url = Url::parse(text).map_err(|e| format!("identity.allowed_origins {text:?}: {e}"))?;
    let origin = url.origin();
    if !origin.is_tuple() || !matches!(url.scheme(), "http" | "https") || url.path() != "/" {
        return Err(format!(
            "identity.allowed_origins {text:?}: must be an http(s) origin, scheme://host[:port]"
        ));
    }
    Ok(origin.ascii_serialization())
}

impl IdentityConfig {
    pub(super) fn validate(&self, problems: &mut Problems) {
        match &self.keys {
            None => problems.push("identity.key", KEY_CHOICE),
            Some(Keys::Static {
                algorithm: Algorithm::HS256,
                source: KeySource::Inline(key),
            }) => problems.check(
                key.len() >= 32,
                "identity.key",
                "an HS256 secret must be at least 32 bytes",
            ),
            Some(Keys::Static { .. }) => {}
            Some(Keys::Jwks(jwks)) => {
                problems.check(
                    matches!(jwks.url.scheme(), "http" | "https"),
                    "identity.jwks_url",
                    "must be an http:// or https:// URL",
                );
                problems.range(
                    "identity.jwks_refresh_seconds",
                    jwks.refresh.as_secs(),
                    10..=86_400,
                );
                problems.range(
                    "identity.jwks_refetch_seconds",
                    jwks.refetch.as_secs(),
                    1..=3_600,
                );
                problems.range(
                    "identity.jwks_timeout_ms",
                    jwks.timeout.as_millis(),
                    1..=30_000,
                );
                problems.range("identity.jwks_max_bytes", jwks.max_bytes, 256..=1 << 20);
            }
        }
        problems.at_most("identity.leeway_seconds", self.leeway_seconds, 300);
        if let Some(name) = &self.cookie {
            problems.check(
                !name.is_empty()
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b)),
                "identity.cookie",
                "must be a cookie name (a token of visible ASCII, no separators)",
            );
            problems.check(
                !self.allowed_origins.is_empty(),
                "identity.allowed_origins",
                "must list the origins of the sale page when identity.cookie is set (the CSRF rule)",
            );
        }
        if let Some(url) = &self.login_url {
            problems.check(
                matches!(url.scheme(), "http" | "https"),
                "identity.login_url",
                "must be an http:// or https:// URL",
            );
        }
    }
}
