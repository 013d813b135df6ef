//! `[payments]`: how a buyer pays: the shop's checkout page, and in dev mode a stand-in for the
//! payment service. Payment itself is confirmed only by the service's signed webhook, which the
//! edge passes to the origin (`POST /api/payments/webhook`) without holding its secret.

use serde::Deserialize;
use service::config::Problems;

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PaymentsConfig {
    /// The shop's checkout page for an order: an `https://` (or `http://`) URL with `{order}`
    /// (the order id) and optionally `{return}` (the sale page to come back to), both filled in
    /// and URL-encoded by the page. Unset: the page offers no checkout (dev mode pays itself).
    /// A template, not yet a URL: it stays text, checked by filling it in.
    pub checkout_url: Option<String>,
    /// Dev mode only: a copy of the origin's `payments.webhook_secret`, with which
    /// `POST /api/dev/pay` signs a webhook as the payment service would (at least 32 bytes).
    /// Never set in production: there the secret lives on the origins only.
    pub dev_webhook_secret: Option<String>,
}

impl PaymentsConfig {
    pub(super) fn validate(&self, problems: &mut Problems) {
        if let Some(rule) = self.checkout_problem() {
            problems.push("payments.checkout_url", rule);
        }
        problems.check(
            self.dev_webhook_secret
                .as_ref()
                .is_none_or(|s| s.len() >= 32),
            "payments.dev_webhook_secret",
            "must be at least 32 bytes",
        );
    }

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
