//! Typed configuration of the edge (`deploy/edge.toml`), one file per table, each with its
//! defaults and its checks: every field has a default, unknown fields are refused, and
//! `validate` reports every bad field at once, by name (`service::config` reads the file).
//! SIGHUP loads the file again (see `reload`); a bad file is refused and the running config
//! stays.

mod captcha;
mod http;
mod identity;
mod limits;
mod origin;
mod pages;
mod payments;
#[cfg(test)]
mod tests;

use serde::Deserialize;
pub use service::config::{ConfigError, ConfigFile, Problems};

pub use self::{
    captcha::{CaptchaConfig, Level},
    http::{AdminConfig, HttpConfig},
    identity::{Algorithm, IdentityConfig, JwksConfig, KeySource, Keys},
    limits::{CaptchaLimitsConfig, GlobalConfig, LimitsConfig, RateConfig},
    origin::OriginConfig,
    pages::PagesConfig,
    payments::PaymentsConfig,
};

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

impl ConfigFile for Config {
    fn validate(&self, problems: &mut Problems) {
        problems.extend(self.redis.validate("redis"));
        problems.check(
            self.redis.wait_replicas == 0,
            "redis.wait_replicas",
            "must be 0 on the edge: no edge write waits for replicas (set it in the origin's config)",
        );
        self.http.validate(problems);
        self.admin.validate(problems);
        self.origin.validate(problems);
        self.identity.validate(problems);
        self.captcha.validate(problems);
        for (field, value) in self.secrets() {
            service::secret::check(problems, &field, &value, self.http.dev_mode);
        }
        self.limits.validate(problems);
        self.pages.validate(problems);
        self.payments.validate(problems);
    }
}

impl Config {
    /// The secrets whose strength is checked (`service::secret`), by field: refused when weak
    /// unless dev mode is on, and then warned about at start. The HS256 user JWT key, from
    /// `identity.key` or the file of `identity.key_file` (an unreadable file is reported when the
    /// verifier is built), and the captcha secret.
    pub fn secrets(&self) -> Vec<(String, String)> {
        let mut secrets = Vec::new();
        if let Some(Keys::Static {
            algorithm: Algorithm::HS256,
            source,
        }) = &self.identity.keys
        {
            match source {
                KeySource::Inline(key) => {
                    secrets.push(("identity.key".to_string(), key.clone()));
                }
                KeySource::File(path) => {
                    if let Ok(text) = std::fs::read_to_string(path) {
                        let key = text.trim_end_matches(['\r', '\n']).to_string();
                        secrets.push(("identity.key_file".to_string(), key));
                    }
                }
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
