//! The sale page, rendered with askama from the sale's facts. It is the same for every visitor
//! (no user data in it), so nginx and the CDN cache it; the browser script (`static/sale/`)
//! counts down on the server's time, polls the status and runs the captcha and the purchase.
//! Its assets (`static/` at the repository's root, served by nginx) are embedded here at compile
//! time only to name them by content: `/static/sale.css?v=<hash>`, so nginx and browsers can keep
//! each version forever and a new build changes the URL. The script is ES modules
//! (`static/sale/*.js`) named by ONE version, the hash of them all: the page loads
//! `/static/sale/main.js?v=<hash>` and each module imports its siblings with its own `?v=`
//! (`static/sale/main.js` says how), so a cached module of an older build is never mixed with a
//! newer one. A file added to `static/sale/` must be added to [`SCRIPT_MODULES`] (a test checks).

use std::{fmt::Write as _, sync::LazyLock};

use askama::Template;
use sha2::{Digest, Sha256};
use time::{format_description::well_known::Rfc3339, OffsetDateTime};

use crate::{
    config::Config,
    sales::{format_price, SaleInfo, State},
};

/// The page's script modules (`static/sale/`), each by its name, in the order of their names.
const SCRIPT_MODULES: &[(&str, &[u8])] = &[
    ("api.js", include_bytes!("../../static/sale/api.js")),
    ("captcha.js", include_bytes!("../../static/sale/captcha.js")),
    ("login.js", include_bytes!("../../static/sale/login.js")),
    ("main.js", include_bytes!("../../static/sale/main.js")),
    (
        "messages.js",
        include_bytes!("../../static/sale/messages.js"),
    ),
    ("order.js", include_bytes!("../../static/sale/order.js")),
    ("page.js", include_bytes!("../../static/sale/page.js")),
    ("poll.js", include_bytes!("../../static/sale/poll.js")),
    (
        "purchase.js",
        include_bytes!("../../static/sale/purchase.js"),
    ),
    ("state.js", include_bytes!("../../static/sale/state.js")),
    ("time.js", include_bytes!("../../static/sale/time.js")),
    ("user.js", include_bytes!("../../static/sale/user.js")),
];
const SALE_CSS: &[u8] = include_bytes!("../../static/sale.css");
const POW_WORKER_JS: &[u8] = include_bytes!("../../static/pow-worker.js");
const FAVICON_SVG: &[u8] = include_bytes!("../../static/favicon.svg");

/// Hex characters of the SHA-256 kept in an asset's version.
const VERSION_CHARS: usize = 12;

/// The page's asset URLs, each with its content's version.
struct Assets {
    script: String,
    style: String,
    worker: String,
    icon: String,
}

static ASSETS: LazyLock<Assets> = LazyLock::new(|| Assets {
    script: versioned("/static/sale/main.js", &modules_content(SCRIPT_MODULES)),
    style: versioned("/static/sale.css", SALE_CSS),
    worker: versioned("/static/pow-worker.js", POW_WORKER_JS),
    icon: versioned("/static/favicon.svg", FAVICON_SVG),
});

/// `path?v=` and the first [`VERSION_CHARS`] hex characters of the SHA-256 of `content`.
fn versioned(path: &str, content: &[u8]) -> String {
    let digest = Sha256::digest(content);
    let mut url = format!("{path}?v=");
    for byte in digest.iter().take(VERSION_CHARS / 2) {
        let _ = write!(url, "{byte:02x}");
    }
    url
}

/// Where the page sends the visitor, from the config only (never from a request): how "Pay now"
/// pays (the shop's checkout URL template, `{order}` and `{return}` filled in by the page, else in
/// dev mode the edge's `POST /api/dev/pay`, else nothing), and how the visitor logs in: in dev
/// mode with a token of the edge's `POST /api/dev/token`, else at the shop's login page behind
/// "Log in to buy" (`return_to=<the page>` added by the page; empty: none).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Links<'a> {
    pub checkout_url: &'a str,
    pub dev_pay: bool,
    pub dev_login: bool,
    pub login_url: &'a str,
}

impl<'a> Links<'a> {
    pub fn from_config(config: &'a Config) -> Self {
        Self {
            checkout_url: config.payments.checkout_url.as_deref().unwrap_or(""),
            dev_pay: config.http.dev_mode && config.payments.dev_webhook_secret.is_some(),
            dev_login: config.http.dev_mode,
            login_url: config
                .identity
                .login_url
                .as_ref()
                .map_or("", |url| url.as_str()),
        }
    }
}

#[derive(Template)]
#[template(path = "sale.html")]
struct SalePage<'a> {
    id: i64,
    name: &'a str,
    price: String,
    stock: i64,
    starts_at: String,
    starts_at_human: String,
    ends_at: String,
    server_time: String,
    state: &'static str,
    state_text: &'static str,
    script_url: &'a str,
    style_url: &'a str,
    worker_url: &'a str,
    icon_url: &'a str,
    checkout_url: &'a str,
    dev_pay: bool,
    dev_login: bool,
    login_url: &'a str,
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

/// What the script's version is the hash of: each module's name, length and content, so that no
/// two sets of modules (a file renamed, bytes moved from one file to the next) give one version.
fn modules_content(modules: &[(&str, &[u8])]) -> Vec<u8> {
    let mut all = Vec::new();
    for (name, content) in modules {
        all.extend_from_slice(format!("{name}\n{}\n", content.len()).as_bytes());
        all.extend_from_slice(content);
    }
    all
}

/// The page's HTML at `now`.
pub fn sale_page(
    info: &SaleInfo,
    now: OffsetDateTime,
    sold_out: bool,
    links: Links<'_>,
) -> Result<String, askama::Error> {
    let status = info.status(now, sold_out);
    let (state, state_text) = match status.state {
        State::Upcoming => ("upcoming", "The sale has not started yet."),
        State::Live => ("live", "The sale is live."),
        State::SoldOut => ("sold_out", "Sold out."),
        State::Ended => ("ended", "The sale has ended."),
    };
    let human = info
        .starts_at
        .format(time::macros::format_description!(
            "[year]-[month]-[day] [hour]:[minute]:[second] UTC"
        ))
        .unwrap_or_default();
    SalePage {
        id: info.id,
        name: &info.name,
        price: format_price(info.price_cents, &info.currency),
        stock: info.stock,
        starts_at: rfc3339(info.starts_at),
        starts_at_human: human,
        ends_at: info.ends_at.map(rfc3339).unwrap_or_default(),
        server_time: rfc3339(now),
        state,
        state_text,
        script_url: &ASSETS.script,
        style_url: &ASSETS.style,
        worker_url: &ASSETS.worker,
        icon_url: &ASSETS.icon,
        checkout_url: links.checkout_url,
        dev_pay: links.dev_pay,
        dev_login: links.dev_login,
        login_url: links.login_url,
    }
    .render()
}

#[cfg(test)]
mod tests;
