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

/// How the page's "Pay now" pays, from the config only (never from a request): the shop's
/// checkout URL template (`{order}`, `{return}` filled in by the page), else in dev mode the
/// edge's `POST /api/dev/pay`, else nothing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Checkout<'a> {
    pub url: &'a str,
    pub dev_pay: bool,
}

impl<'a> Checkout<'a> {
    pub fn from_config(config: &'a Config) -> Self {
        Self {
            url: config.payments.checkout_url.as_deref().unwrap_or(""),
            dev_pay: config.http.dev_mode && config.payments.dev_webhook_secret.is_some(),
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
    checkout: Checkout<'_>,
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
        checkout_url: checkout.url,
        dev_pay: checkout.dev_pay,
    }
    .render()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn page_shows_the_sale_and_escapes_its_name() {
        let info = SaleInfo {
            id: 7,
            name: "<script>alert(1)</script> Sneakers".into(),
            stock: 300,
            remaining: Some(300),
            starts_at: datetime!(2026-11-22 18:00 UTC),
            ends_at: None,
            hold_seconds: 600,
            price_cents: 12900,
            currency: "EUR".into(),
        };
        let html = sale_page(
            &info,
            datetime!(2026-11-22 17:00 UTC),
            false,
            Checkout::default(),
        )
        .unwrap();
        assert!(html.contains("129.00 EUR"), "{html}");
        assert!(html.contains("data-sale=\"7\""));
        assert!(html.contains("2026-11-22 18:00:00 UTC"));
        assert!(html.contains("data-state=\"upcoming\""));
        assert!(
            !html.contains("<script>alert(1)"),
            "the name must be escaped"
        );
    }

    #[test]
    fn page_names_its_assets_by_content_and_has_nothing_inline() {
        let info = SaleInfo {
            id: 7,
            name: "Sneakers".into(),
            stock: 3,
            remaining: Some(0),
            starts_at: datetime!(2026-11-22 18:00 UTC),
            ends_at: Some(datetime!(2026-11-22 19:00 UTC)),
            hold_seconds: 600,
            price_cents: 5,
            currency: "EUR".into(),
        };
        let checkout = Checkout {
            url: "https://shop.example/checkout?order={order}&return={return}",
            dev_pay: false,
        };
        let html = sale_page(&info, datetime!(2026-11-22 18:30 UTC), true, checkout).unwrap();
        assert!(
            html.contains(
                "data-checkout=\"https://shop.example/checkout?order={order}&#38;return={return}\""
            ) || html.contains(
                "data-checkout=\"https://shop.example/checkout?order={order}&amp;return={return}\""
            ),
            "{html}"
        );
        assert!(html.contains("data-dev-pay=\"false\""), "{html}");
        let modules = modules_content(SCRIPT_MODULES);
        for (path, content) in [
            ("/static/sale/main.js", modules.as_slice()),
            ("/static/sale.css", SALE_CSS),
            ("/static/pow-worker.js", POW_WORKER_JS),
            ("/static/favicon.svg", FAVICON_SVG),
        ] {
            let hash: String = Sha256::digest(content)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            let url = format!("{path}?v={}", &hash[..12]);
            assert!(html.contains(&format!("\"{url}\"")), "{url} in {html}");
        }
        assert!(html.contains("data-state=\"sold_out\""));
        assert!(html.contains("data-ends-at=\"2026-11-22T19:00:00Z\""));
        assert!(html.contains("data-server-time=\"2026-11-22T18:30:00Z\""));
        assert!(html.contains("0.05 EUR"), "{html}");
        // The CSP allows no inline script or style: every script has a src, nothing has style=.
        assert_eq!(html.matches("<script").count(), 1, "{html}");
        assert!(
            html.contains("<script type=\"module\" src=\"/static/sale/main.js?v="),
            "{html}"
        );
        assert!(!html.contains("style="), "{html}");
        assert!(!html.contains("<style"), "{html}");
        assert!(
            !html
                .split_whitespace()
                .any(|word| word.starts_with("on") && word.contains('=')),
            "no inline event handler: {html}"
        );
    }

    #[test]
    fn every_script_module_is_in_the_version() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../static/sale");
        let mut on_disk: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .filter(|name| name.ends_with(".js"))
            .collect();
        on_disk.sort();
        let listed: Vec<&str> = SCRIPT_MODULES.iter().map(|(name, _)| *name).collect();
        assert_eq!(listed, on_disk, "SCRIPT_MODULES must list static/sale/*.js");
        for (name, content) in SCRIPT_MODULES {
            let text = std::str::from_utf8(content).unwrap();
            // A static import would drop the version (see main.js): siblings come by import().
            assert!(
                !text.lines().any(|line| line.starts_with("import ")),
                "{name} has a static import"
            );
            for sibling in text.split("`./").skip(1) {
                let file = sibling.split('$').next().unwrap();
                assert!(
                    sibling.starts_with(&format!("{file}${{v}}`")),
                    "{name}: {file} without the version"
                );
                assert!(
                    listed.contains(&file),
                    "{name} imports {file}, not a module"
                );
            }
        }
    }

    #[test]
    fn the_script_version_covers_every_module() {
        let changed: Vec<(&str, &[u8])> = SCRIPT_MODULES
            .iter()
            .map(|&(name, content)| (name, if name == "time.js" { b"x" } else { content }))
            .collect();
        assert_ne!(
            versioned("/s", &modules_content(SCRIPT_MODULES)),
            versioned("/s", &modules_content(&changed))
        );
        // Bytes moved from one module to the next change it too.
        assert_ne!(
            modules_content(&[("a.js", b"ab"), ("b.js", b"c")]),
            modules_content(&[("a.js", b"a"), ("b.js", b"bc")])
        );
    }

    #[test]
    fn versions_change_with_the_content() {
        let a = versioned("/static/a.js", b"one");
        let b = versioned("/static/a.js", b"two");
        assert_ne!(a, b);
        assert_eq!(a.len(), "/static/a.js?v=".len() + VERSION_CHARS);
        assert!(a[a.len() - VERSION_CHARS..]
            .bytes()
            .all(|c| c.is_ascii_hexdigit()));
    }
}
