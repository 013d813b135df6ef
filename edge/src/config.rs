//! Typed configuration of the edge (`deploy/edge.toml`): every field has a default, unknown
//! fields are refused, and `validate` reports every bad field at once, by name. SIGHUP loads the
//! file again (see `reload`); a bad file is refused and the running config stays.

use std::{net::SocketAddr, path::Path};

use serde::Deserialize;

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub http: HttpConfig,
    pub admin: AdminConfig,
    pub redis: redis_layer::Config,
    pub origin: OriginConfig,
    pub identity: IdentityConfig,
    pub captcha: CaptchaConfig,
    pub limits: LimitsConfig,
    pub pages: PagesConfig,
    pub payments: PaymentsConfig,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Address of the public API (behind nginx). Not reloadable.
    pub listen: SocketAddr,
    /// Largest request body accepted, in bytes.
    pub body_limit_bytes: usize,
    /// Largest total size of the request headers, in bytes (431 above).
    pub max_header_bytes: usize,
    /// Peers whose `X-Forwarded-For` is believed (nginx, the CDN): CIDR blocks.
    pub trusted_proxies: Vec<String>,
    /// Dev mode: enables `POST /api/dev/token`, which mints user JWTs, and lets weak secrets
    /// through with a warning. Never in production.
    pub dev_mode: bool,
    /// Slow clients and the connection cap (`[http.connections]`). Not reloadable.
    pub connections: service::listener::ConnectionConfig,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminConfig {
    /// Address of `/metrics`: a loopback address (anything else is refused). Not reloadable.
    pub listen: SocketAddr,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OriginConfig {
    /// Base URLs of the origins, used round robin.
    pub urls: Vec<String>,
    /// Time allowed for one origin request, connection included.
    pub timeout_ms: u64,
    /// Time allowed to connect to an origin.
    pub connect_timeout_ms: u64,
    /// An origin that failed is skipped this long, then tried again.
    pub retry_dead_after_ms: u64,
    /// Idle keep-alive connections kept per origin.
    pub pool_idle_per_origin: usize,
}

/// Supported user JWT algorithms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Algorithm {
    EdDSA,
    ES256,
    RS256,
    HS256,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IdentityConfig {
    /// The one algorithm user JWTs may use; any other (and `none`) is refused.
    pub algorithm: Algorithm,
    /// HS256: the shared secret (at least 32 bytes). Other algorithms: the PEM public key.
    /// Exactly one of `key` and `key_file` is set.
    pub key: Option<String>,
    /// A file holding the key, instead of `key`.
    pub key_file: Option<String>,
    /// Required `iss`, if set.
    pub issuer: Option<String>,
    /// Clock skew tolerated on `exp`, in seconds.
    pub leeway_seconds: u64,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Level {
    /// Distinct users asking for challenges per second (all sales, this edge; each user counts
    /// once a second) from which this level applies.
    pub from_rate: u32,
    /// Leading zero bits the proof of work must find.
    pub difficulty: u8,
    /// Whether an image captcha (with audio) must be solved too.
    pub image: bool,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CaptchaConfig {
    /// HMAC key of challenges, image handles and pass tokens (at least 32 bytes), the same on
    /// every edge. New ones are signed with it only.
    pub secret: String,
    /// Earlier secrets, still accepted on what they signed until it expires (a rotation: add the
    /// old secret here on every edge, then change `secret` edge by edge).
    pub previous_secrets: Vec<String>,
    /// How long a challenge may be solved.
    pub challenge_ttl_seconds: u64,
    /// How long a pass token may be spent (at most 120).
    pub pass_ttl_seconds: u64,
    /// Difficulty levels by live request rate, lowest first; the first must start at 0.
    pub levels: Vec<Level>,
    /// Window over which the live rate of distinct users is measured.
    pub window_seconds: u64,
    /// How long the rate must stay below a level's threshold before the level drops.
    pub cooldown_seconds: u64,
    /// Image captchas kept drawn; each lives `image_slots / images_per_second` seconds.
    pub image_slots: usize,
    /// Image captchas drawn per second at most (about 4 ms of CPU each).
    pub images_per_second: u32,
    /// Challenges one image is handed to at most; then its slot is due for a redraw.
    pub image_serves: u32,
    /// An image is handed out for at most this long after its first challenge, then its slot is
    /// due for a redraw.
    pub image_max_age_seconds: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    pub ip: RateConfig,
    pub uid: RateConfig,
    pub global: GlobalConfig,
    pub captcha: CaptchaLimitsConfig,
}

/// The limits of `GET` and `POST /api/captcha` together, in this edge's memory.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CaptchaLimitsConfig {
    /// Per client IP (IPv6 by its /64).
    pub ip: RateConfig,
    /// Per user (the JWT's `sub`).
    pub uid: RateConfig,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateConfig {
    /// Sustained requests per second.
    pub per_second: f64,
    /// Requests allowed at once above the sustained rate.
    pub burst: u32,
    /// Log and count what would be refused, but let it through.
    pub dry_run: bool,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GlobalConfig {
    /// Buy requests per second admitted per sale, across all edges.
    pub per_second: u32,
    /// Admissions an edge leases from Redis at a time.
    pub lease: u32,
    pub dry_run: bool,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PagesConfig {
    /// `max-age` of the status JSON while a sale is open, in seconds.
    pub status_max_age_seconds: u32,
    /// `stale-while-revalidate` of the status JSON, in seconds.
    pub status_stale_seconds: u32,
    /// `max-age` once the sale is sold out (short: returned stock may re-open it); at least
    /// `status_max_age_seconds`.
    pub sold_out_max_age_seconds: u32,
    /// `max-age` once the sale has ended.
    pub final_max_age_seconds: u32,
    /// `max-age` of the sale page.
    pub page_max_age_seconds: u32,
}

/// How a buyer pays: the shop's checkout page, and in dev mode a stand-in for the payment
/// service. Payment itself is confirmed only by the service's signed webhook, which the edge
/// passes to the origin (`POST /api/payments/webhook`) without holding its secret.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PaymentsConfig {
    /// The shop's checkout page for an order: an `https://` (or `http://`) URL with `{order}`
    /// (the order id) and optionally `{return}` (the sale page to come back to), both filled in
    /// and URL-encoded by the page. Unset: the page offers no checkout (dev mode pays itself).
    pub checkout_url: Option<String>,
    /// Dev mode only: a copy of the origin's `payments.webhook_secret`, with which
    /// `POST /api/dev/pay` signs a webhook as the payment service would (at least 32 bytes).
    /// Never set in production: there the secret lives on the origins only.
    pub dev_webhook_secret: Option<String>,
}

impl PaymentsConfig {
    /// Why `checkout_url` is not a usable template, if it is not.
    fn checkout_problem(&self) -> Option<&'static str> {
        let url = self.checkout_url.as_deref()?;
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            return Some("must start with https:// (or http://)");
        }
        if !url.contains("{order}") {
            return Some("must contain {order}");
        }
        let filled = url.replace("{order}", "1").replace("{return}", "x");
        if filled.contains(['{', '}']) {
            return Some("knows only the placeholders {order} and {return}");
        }
        if url.len() > 2048 || filled.parse::<http::Uri>().is_err() {
            return Some("must be a URL of at most 2048 bytes");
        }
        None
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8081)),
            body_limit_bytes: 4096,
            max_header_bytes: 16384,
            trusted_proxies: vec!["127.0.0.1/32".into(), "::1/128".into()],
            dev_mode: false,
            connections: service::listener::ConnectionConfig::default(),
        }
    }
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 9081)),
        }
    }
}

impl Default for OriginConfig {
    fn default() -> Self {
        Self {
            urls: vec!["http://127.0.0.1:8082".into()],
            timeout_ms: 2000,
            connect_timeout_ms: 300,
            retry_dead_after_ms: 2000,
            pool_idle_per_origin: 256,
        }
    }
}

impl Default for IdentityConfig {
    fn default() -> Self {
        Self {
            algorithm: Algorithm::HS256,
            key: None,
            key_file: None,
            issuer: None,
            leeway_seconds: 5,
        }
    }
}

impl Default for CaptchaConfig {
    fn default() -> Self {
        Self {
            secret: String::new(),
            challenge_ttl_seconds: 120,
            pass_ttl_seconds: 60,
            levels: vec![
                Level {
                    from_rate: 0,
                    difficulty: 12,
                    image: false,
                },
                Level {
                    from_rate: 200,
                    difficulty: 16,
                    image: false,
                },
                Level {
                    from_rate: 2000,
                    difficulty: 18,
                    image: true,
                },
            ],
            window_seconds: 5,
            cooldown_seconds: 30,
            image_slots: 512,
            images_per_second: 10,
            image_serves: 200,
            image_max_age_seconds: 60,
            previous_secrets: Vec::new(),
        }
    }
}

impl Default for RateConfig {
    fn default() -> Self {
        Self {
            per_second: 2.0,
            burst: 5,
            dry_run: false,
        }
    }
}

impl Default for CaptchaLimitsConfig {
    fn default() -> Self {
        Self {
            ip: RateConfig {
                per_second: 10.0,
                burst: 40,
                dry_run: false,
            },
            uid: RateConfig {
                per_second: 1.0,
                burst: 10,
                dry_run: false,
            },
        }
    }
}

impl Default for GlobalConfig {
    fn default() -> Self {
        Self {
            per_second: 5000,
            lease: 50,
            dry_run: false,
        }
    }
}

impl Default for PagesConfig {
    fn default() -> Self {
        Self {
            status_max_age_seconds: 1,
            status_stale_seconds: 5,
            sold_out_max_age_seconds: 5,
            final_max_age_seconds: 60,
            page_max_age_seconds: 10,
        }
    }
}

/// Why a configuration file was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("config {path}: {message}")]
    Parse { path: String, message: String },
    #[error("config {path}: {}", .problems.join("; "))]
    Invalid { path: String, problems: Vec<String> },
}

impl Config {
    /// Reads, parses and validates the file at `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: shown.clone(),
            source,
        })?;
        Self::parse(&text, &shown)
    }

    /// Parses and validates TOML text; `origin` names the source in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let config: Config = serde_path_to_error::deserialize(toml::Deserializer::new(text))
            .map_err(|e| ConfigError::Parse {
                path: origin.to_string(),
                message: parse_message(text, &e),
            })?;
        let problems = config.validate();
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError::Invalid {
                path: origin.to_string(),
                problems,
            })
        }
    }

    /// Every bad field, named, or an empty list.
    pub fn validate(&self) -> Vec<String> {
        let mut problems = self.redis.validate("redis");
        let mut check = |ok: bool, field: &str, rule: &str| {
            if !ok {
                problems.push(format!("{field}: {rule}"));
            }
        };
        check(
            (64..=1 << 20).contains(&self.http.body_limit_bytes),
            "http.body_limit_bytes",
            "must be between 64 and 1048576",
        );
        check(
            (1024..=1 << 20).contains(&self.http.max_header_bytes),
            "http.max_header_bytes",
            "must be between 1024 and 1048576",
        );
        check(
            self.http
                .trusted_proxies
                .iter()
                .all(|c| c.parse::<ipnet::IpNet>().is_ok()),
            "http.trusted_proxies",
            "must be CIDR blocks such as 127.0.0.1/32",
        );
        check(
            self.admin.listen.ip().is_loopback(),
            "admin.listen",
            "must be a loopback address (127.0.0.1 or ::1): /metrics is for the host only",
        );
        check(
            self.redis.wait_replicas == 0,
            "redis.wait_replicas",
            "must be 0 on the edge: no edge write waits for replicas (set it in the origin's config)",
        );
        check(
            !self.origin.urls.is_empty()
                && self
                    .origin
                    .urls
                    .iter()
                    .all(|u| u.starts_with("http://") && u.parse::<http::Uri>().is_ok()),
            "origin.urls",
            "must list at least one http:// URL",
        );
        check(
            self.http.connections.header_buffer_bytes >= self.http.max_header_bytes,
            "http.connections.header_buffer_bytes",
            "must be at least http.max_header_bytes (whose 431 is the JSON one)",
        );
        check(
            (1..=60_000).contains(&self.origin.timeout_ms),
            "origin.timeout_ms",
            "must be between 1 and 60000",
        );
        check(
            (1..=60_000).contains(&self.origin.connect_timeout_ms),
            "origin.connect_timeout_ms",
            "must be between 1 and 60000",
        );
        check(
            (1..=3_600_000).contains(&self.origin.retry_dead_after_ms),
            "origin.retry_dead_after_ms",
            "must be between 1 and 3600000",
        );
        check(
            self.identity.key.is_some() != self.identity.key_file.is_some(),
            "identity.key",
            "set exactly one of identity.key and identity.key_file",
        );
        check(
            self.identity.algorithm != Algorithm::HS256
                || self.identity.key.as_ref().is_none_or(|k| k.len() >= 32),
            "identity.key",
            "an HS256 secret must be at least 32 bytes",
        );
        check(
            self.identity.leeway_seconds <= 300,
            "identity.leeway_seconds",
            "must be at most 300",
        );
        check(
            self.captcha.secret.len() >= 32,
            "captcha.secret",
            "must be at least 32 bytes",
        );
        for (i, previous) in self.captcha.previous_secrets.iter().enumerate() {
            check(
                previous.len() >= 32,
                &format!("captcha.previous_secrets[{i}]"),
                "must be at least 32 bytes",
            );
        }
        check(
            (5..=3600).contains(&self.captcha.challenge_ttl_seconds),
            "captcha.challenge_ttl_seconds",
            "must be between 5 and 3600",
        );
        check(
            (1..=120).contains(&self.captcha.pass_ttl_seconds),
            "captcha.pass_ttl_seconds",
            "must be between 1 and 120",
        );
        let levels = &self.captcha.levels;
        check(
            levels.first().is_some_and(|l| l.from_rate == 0)
                && levels.windows(2).all(|w| w[0].from_rate < w[1].from_rate),
            "captcha.levels",
            "must start at from_rate = 0 and rise strictly",
        );
        check(
            levels.iter().all(|l| (1..=28).contains(&l.difficulty)),
            "captcha.levels.difficulty",
            "must be between 1 and 28",
        );
        check(
            (1..=600).contains(&self.captcha.window_seconds),
            "captcha.window_seconds",
            "must be between 1 and 600",
        );
        check(
            (1..=100_000).contains(&self.captcha.image_slots),
            "captcha.image_slots",
            "must be between 1 and 100000",
        );
        check(
            (1..=1000).contains(&self.captcha.images_per_second),
            "captcha.images_per_second",
            "must be between 1 and 1000",
        );
        check(
            (1..=1_000_000).contains(&self.captcha.image_serves),
            "captcha.image_serves",
            "must be between 1 and 1000000",
        );
        check(
            (1..=86_400).contains(&self.captcha.image_max_age_seconds),
            "captcha.image_max_age_seconds",
            "must be between 1 and 86400",
        );
        check(
            self.captcha.cooldown_seconds <= 3600,
            "captcha.cooldown_seconds",
            "must be at most 3600",
        );
        problems.extend(self.http.connections.validate("http.connections"));
        for (field, value) in self.secrets() {
            service::secret::check(&mut problems, &field, &value, self.http.dev_mode);
        }
        let mut check = |ok: bool, field: &str, rule: &str| {
            if !ok {
                problems.push(format!("{field}: {rule}"));
            }
        };
        for (name, rate) in [
            ("limits.ip", &self.limits.ip),
            ("limits.uid", &self.limits.uid),
            ("limits.captcha.ip", &self.limits.captcha.ip),
            ("limits.captcha.uid", &self.limits.captcha.uid),
        ] {
            check(
                rate.per_second > 0.0 && rate.per_second <= 1e6,
                &format!("{name}.per_second"),
                "must be above 0 and at most 1000000",
            );
            check(
                (1..=1_000_000).contains(&rate.burst),
                &format!("{name}.burst"),
                "must be between 1 and 1000000",
            );
        }
        check(
            (1..=10_000_000).contains(&self.limits.global.per_second),
            "limits.global.per_second",
            "must be between 1 and 10000000",
        );
        check(
            (1..=100_000).contains(&self.limits.global.lease)
                && self.limits.global.lease <= self.limits.global.per_second,
            "limits.global.lease",
            "must be between 1 and limits.global.per_second",
        );
        check(
            self.pages.status_max_age_seconds <= self.pages.final_max_age_seconds,
            "pages.status_max_age_seconds",
            "must be at most pages.final_max_age_seconds",
        );
        check(
            self.pages.sold_out_max_age_seconds >= self.pages.status_max_age_seconds,
            "pages.sold_out_max_age_seconds",
            "must be at least pages.status_max_age_seconds",
        );
        if let Some(rule) = self.payments.checkout_problem() {
            problems.push(format!("payments.checkout_url: {rule}"));
        }
        if self
            .payments
            .dev_webhook_secret
            .as_ref()
            .is_some_and(|s| s.len() < 32)
        {
            problems.push("payments.dev_webhook_secret: must be at least 32 bytes".into());
        }
        problems
    }
}

impl Config {
    /// The secrets whose strength is checked (`service::secret`), by field: refused when weak
    /// unless dev mode is on, and then warned about at start. The HS256 user JWT key, from
    /// `identity.key` or the file of `identity.key_file` (an unreadable file is reported when the
    /// verifier is built), and the captcha secret.
    pub fn secrets(&self) -> Vec<(String, String)> {
        let mut secrets = Vec::new();
        if self.identity.algorithm == Algorithm::HS256 {
            if let Some(key) = &self.identity.key {
                secrets.push(("identity.key".to_string(), key.clone()));
            } else if let Some(Ok(text)) =
                self.identity.key_file.as_ref().map(std::fs::read_to_string)
            {
                let key = text.trim_end_matches(['\r', '\n']).to_string();
                secrets.push(("identity.key_file".to_string(), key));
            }
        }
        secrets.push(("captcha.secret".to_string(), self.captcha.secret.clone()));
        for (i, old) in self.captcha.previous_secrets.iter().enumerate() {
            secrets.push((format!("captcha.previous_secrets[{i}]"), old.clone()));
        }
        secrets
    }

    /// At start, with dev mode on: a loud warning for every weak secret it lets through.
    pub fn warn_weak_secrets(&self) {
        if self.http.dev_mode {
            for (field, value) in self.secrets() {
                service::secret::warn_if_weak(&field, &value);
            }
        }
    }
}

/// "key.path: what is wrong (line L)": the key as a dotted path from the top of the file (a value
/// of the wrong type names its own key; an unknown key, the table it was found in).
fn parse_message(text: &str, error: &serde_path_to_error::Error<toml::de::Error>) -> String {
    let inner = error.inner();
    let key = error.path().to_string();
    let message = inner.message().trim_end();
    let line = line_of(text, inner.span());
    if key.is_empty() || key == "." {
        format!("{message}{line}")
    } else {
        format!("{key}: {message}{line}")
    }
}

/// " (line L)" for a parse error's span.
fn line_of(text: &str, span: Option<std::ops::Range<usize>>) -> String {
    span.map(|s| {
        let line = text[..s.start.min(text.len())].matches('\n').count() + 1;
        format!(" (line {line})")
    })
    .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Random secrets (`openssl rand -base64 48`), as an SRE sets them.
    const STRONG_KEY: &str = "kwXa7qdT53uYkzE5dFshI7OzT9hkie2aN06jd83EjIYc0/IwimVmdKTLSXyC1SE+";
    const STRONG_CAPTCHA: &str = "PO3S0uFANDIaGNZEfQufUpswWZj8Q998nAMo3OQuhgHTxEqKaIIGDZ4uQeBPKaic";

    /// The shipped file with its secrets set, as `./deploy/up` renders it.
    fn shipped_with(key: &str, secret: &str, dev_mode: bool) -> String {
        include_str!("../../deploy/edge.toml")
            .replace("key = \"\"", &format!("key = \"{key}\""))
            .replace("secret = \"\"", &format!("secret = \"{secret}\""))
            .replace("dev_mode = false", &format!("dev_mode = {dev_mode}"))
    }

    #[test]
    fn shipped_file_is_valid_once_its_secrets_are_set() {
        let text = shipped_with(STRONG_KEY, STRONG_CAPTCHA, false);
        assert_ne!(text, include_str!("../../deploy/edge.toml"));
        Config::parse(&text, "deploy/edge.toml").unwrap();
    }

    #[test]
    fn the_shipped_file_as_is_is_refused_naming_both_secrets() {
        let err = Config::parse(include_str!("../../deploy/edge.toml"), "deploy/edge.toml")
            .unwrap_err()
            .to_string();
        for field in ["identity.key: ", "captcha.secret: "] {
            assert!(err.contains(field), "{err} should name {field}");
        }
    }

    #[test]
    fn weak_secrets_are_refused_without_dev_mode_and_let_through_with_it() {
        let placeholder_key = "dev-only-user-jwt-secret-change-me-0123456789";
        let placeholder_captcha = "dev-only-captcha-secret-change-me-0123456789";
        let weak = shipped_with(placeholder_key, placeholder_captcha, false);
        let err = Config::parse(&weak, "t").unwrap_err().to_string();
        assert!(err.contains("identity.key: is a placeholder"), "{err}");
        assert!(err.contains("captcha.secret: is a placeholder"), "{err}");
        let dev = shipped_with(placeholder_key, placeholder_captcha, true);
        let config = Config::parse(&dev, "t").unwrap();
        assert_eq!(
            config.secrets(),
            vec![
                ("identity.key".to_string(), placeholder_key.to_string()),
                (
                    "captcha.secret".to_string(),
                    placeholder_captcha.to_string()
                )
            ]
        );
        // A key for a public-key algorithm is no secret.
        let mut eddsa = config;
        eddsa.identity.algorithm = Algorithm::EdDSA;
        assert_eq!(eddsa.secrets().len(), 1);
    }

    #[test]
    fn an_hs256_key_file_is_checked_too() {
        let dir = tempfile_dir();
        let path = dir.join("user-jwt.key");
        std::fs::write(&path, "dev-only-user-jwt-secret-change-me-0123456789\n").unwrap();
        let text = shipped_with(STRONG_KEY, STRONG_CAPTCHA, false).replace(
            &format!("key = \"{STRONG_KEY}\""),
            &format!("key_file = \"{}\"", path.display()),
        );
        let err = Config::parse(&text, "t").unwrap_err().to_string();
        assert!(err.contains("identity.key_file: is a placeholder"), "{err}");
        std::fs::write(&path, format!("{STRONG_KEY}\n")).unwrap();
        Config::parse(&text, "t").unwrap();
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// A fresh folder under the temp dir (the edge has no tempfile dependency).
    fn tempfile_dir() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "edge-config-test-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn every_bad_field_is_named_at_once() {
        let text = "[captcha]\nsecret = \"short\"\npass_ttl_seconds = 500\n[limits.global]\nper_second = 10\nlease = 20\n";
        let err = Config::parse(text, "t").unwrap_err().to_string();
        for field in [
            "captcha.secret",
            "captcha.pass_ttl_seconds",
            "limits.global.lease",
            "identity.key",
        ] {
            assert!(err.contains(field), "{err} should name {field}");
        }
    }

    #[test]
    fn a_value_of_the_wrong_type_is_refused_with_its_key_path_and_line() {
        let check = |text: &str, expected: &[&str]| {
            let err = Config::parse(text, "t").unwrap_err().to_string();
            for part in expected {
                assert!(err.contains(part), "{err} should contain {part}");
            }
        };
        check(
            "[limits.ip]\nburst = 3\nper_second = \"x\"\n",
            &["limits.ip.per_second", "line 3"],
        );
        check(
            "[origin]\nurls = \"http://127.0.0.1:1\"\n",
            &["origin.urls", "line 2"],
        );
        check(
            "[captcha]\nlevels = [{ from_rate = 0, difficulty = \"hard\", image = false }]\n",
            &["captcha.levels[0].difficulty", "line 2"],
        );
        check("[admin]\nlisten = 9081\n", &["admin.listen", "line 2"]);
    }

    #[test]
    fn admin_listen_must_be_loopback() {
        let base = format!(
            "[identity]\nkey = \"{STRONG_KEY}\"\n[captcha]\nsecret = \"{STRONG_CAPTCHA}\"\n"
        );
        for (listen, ok) in [
            ("127.0.0.1:9081", true),
            ("127.0.0.2:9081", true),
            ("[::1]:9081", true),
            ("0.0.0.0:9081", false),
            ("10.0.0.5:9081", false),
            ("[::]:9081", false),
        ] {
            let text = format!("{base}[admin]\nlisten = \"{listen}\"\n");
            match Config::parse(&text, "t") {
                Ok(_) => assert!(ok, "{listen} must be refused"),
                Err(e) => {
                    assert!(!ok, "{listen}: {e}");
                    assert!(e.to_string().contains("admin.listen"), "{e}");
                }
            }
        }
    }

    #[test]
    fn sold_out_status_is_cached_at_least_as_long_as_the_live_one() {
        let mut config = Config::default();
        let named = |c: &Config| {
            c.validate()
                .iter()
                .any(|p| p.starts_with("pages.sold_out_max_age_seconds"))
        };
        assert!(!named(&config), "the default holds");
        config.pages.status_max_age_seconds = 3;
        config.pages.sold_out_max_age_seconds = 2;
        assert!(named(&config), "{:?}", config.validate());
        config.pages.sold_out_max_age_seconds = 3;
        assert!(!named(&config));
    }

    #[test]
    fn each_previous_captcha_secret_is_validated_like_the_secret() {
        let base = &format!(
            "[identity]\nkey = \"{STRONG_KEY}\"\n[captcha]\nsecret = \"{STRONG_CAPTCHA}\"\n"
        );
        let config = Config::parse(base, "t").unwrap();
        assert!(
            config.captcha.previous_secrets.is_empty(),
            "none by default"
        );
        let good = "Le7rq0i1MPcRiITYtf0o9ZNgO98AOkkIUoBvrRNEb4QHQGqd";
        let text = format!("{base}previous_secrets = [\"{good}\", \"{STRONG_KEY}\"]\n");
        let config = Config::parse(&text, "t").unwrap();
        assert_eq!(config.captcha.previous_secrets.len(), 2);
        let text = format!("{base}previous_secrets = [\"{good}\", \"short\"]\n");
        let err = Config::parse(&text, "t").unwrap_err().to_string();
        assert!(err.contains("captcha.previous_secrets[1]"), "{err}");
        assert!(!err.contains("captcha.previous_secrets[0]"), "{err}");
        // Held to the secret's standard: a long placeholder is refused too.
        let text = format!(
            "{base}previous_secrets = [\"dev-only-old-captcha-secret-change-me-0123456789\"]\n"
        );
        let err = Config::parse(&text, "t").unwrap_err().to_string();
        assert!(
            err.contains("captcha.previous_secrets[0]: is a placeholder"),
            "{err}"
        );
    }

    #[test]
    fn payments_checkout_url_and_dev_secret_are_checked() {
        let base = &format!("[identity]\nkey = \"{STRONG_KEY}\"\n[captcha]\nsecret = \"{STRONG_CAPTCHA}\"\n[payments]\n");
        for (payments, ok) in [
            ("", true),
            (
                "checkout_url = \"https://shop.example/checkout?order={order}&return={return}\"",
                true,
            ),
            ("checkout_url = \"http://127.0.0.1:9/pay/{order}\"", true),
            ("checkout_url = \"https://shop.example/checkout\"", false),
            ("checkout_url = \"javascript:alert(1)//{order}\"", false),
            (
                "checkout_url = \"https://shop.example/{order}/{uid}\"",
                false,
            ),
            ("checkout_url = \"https://shop example/{order}\"", false),
            (
                "dev_webhook_secret = \"0123456789abcdef0123456789abcdef\"",
                true,
            ),
            ("dev_webhook_secret = \"short\"", false),
        ] {
            let field = payments.split(' ').next().unwrap_or_default();
            match Config::parse(&format!("{base}{payments}\n"), "t") {
                Ok(_) => assert!(ok, "{payments} must be refused"),
                Err(e) => {
                    assert!(!ok, "{payments}: {e}");
                    assert!(e.to_string().contains(&format!("payments.{field}")), "{e}");
                }
            }
        }
    }

    #[test]
    fn unknown_field_is_refused_with_its_line() {
        let err = Config::parse("[limits.ip]\nper_second = 1.0\nbrust = 3\n", "t")
            .unwrap_err()
            .to_string();
        assert!(err.contains("brust") && err.contains("line 3"), "{err}");
    }
}
