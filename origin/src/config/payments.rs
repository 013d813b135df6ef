//! `[payments]`: the payment service's webhooks (`POST /v1/payments/webhook`), the only way an
//! order is paid: the keys they are signed with and the clock skew allowed.

use serde::Deserialize;
use service::config::Problems;

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PaymentsConfig {
    /// HMAC-SHA256 key the payment service signs its webhooks with (at least 32 bytes). Lives
    /// only on the origins (and, in dev mode, in the edge's `payments.dev_webhook_secret`).
    pub webhook_secret: String,
    /// Keys still accepted during a rotation (each at least 32 bytes): the new key goes into
    /// `webhook_secret`, the old one here until the payment service signs with the new one.
    pub previous_webhook_secrets: Vec<String>,
    /// Largest difference, in seconds, between a webhook's signed `t=` and the origin's clock.
    pub tolerance_seconds: u32,
}

impl Default for PaymentsConfig {
    fn default() -> Self {
        Self {
            webhook_secret: String::new(),
            previous_webhook_secrets: Vec::new(),
            tolerance_seconds: 300,
        }
    }
}

impl PaymentsConfig {
    /// Every key a webhook may be signed with, the current one first.
    pub fn secrets(&self) -> impl Iterator<Item = &str> + Clone {
        std::iter::once(self.webhook_secret.as_str())
            .chain(self.previous_webhook_secrets.iter().map(String::as_str))
    }

    pub(super) fn validate(&self, problems: &mut Problems) {
        problems.range(
            "payments.tolerance_seconds",
            self.tolerance_seconds,
            1..=3600,
        );
        // The origin has no dev mode: its webhook keys are held to the production standard
        // always (./deploy/up and the tests render random ones).
        service::secret::check(
            problems,
            "payments.webhook_secret",
            &self.webhook_secret,
            false,
        );
        for (i, old) in self.previous_webhook_secrets.iter().enumerate() {
            let field = format!("payments.previous_webhook_secrets[{i}]");
            service::secret::check(problems, &field, old, false);
        }
    }
}
