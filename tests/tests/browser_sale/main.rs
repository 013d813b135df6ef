//! The sale page in a real headless Chromium, with the whole stack behind it: nginx (static files,
//! the micro-cache) → edge → origin → Redis and PostgreSQL, each a real process on free ports. A
//! visitor watches the countdown, buys when the sale opens (captcha proof of work in a Web
//! Worker), the focus lands on the result, a second visitor's page turns "Sold out" without a
//! reload, a reload remembers the order, an open page of a sale that ends turns "Sale ended", a
//! hold's time left ticks and, once it lapses, the holder's page tells it and the second page
//! offers the unit again (both without a reload), and the image captcha (picture, audio, labelled
//! box) tells a wrong answer in words; a run of failed status polls (404s, refused connections,
//! 503s) leaves Buy enabled while the page backs off and comes back; the status JSON comes from
//! nginx's cache; screenshots of each state are kept in the run's artifacts folder (and copied to
//! docs/screenshots/ with `UPDATE_SCREENSHOTS=1`), and no page logs a console error. One test
//! binary, a module per scene: `purchase` (with `ended` and `lapsed_hold`), `status_poll`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "integration tests: a failed unwrap is a failed test, with its message"
)]

mod ended;
mod lapsed_hold;
mod purchase;
mod status_poll;

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use flash_tests::{
    browser::{Browser, Chromedriver},
    edge_process::EdgeOptions,
    front,
    front::Front,
    sale_page,
    stack::Books,
    wait,
};
use serde_json::{json, Value};
use time::{format_description::well_known::Rfc3339, OffsetDateTime};

fn docs_screenshots() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/screenshots")
}

/// The test edge: a proof of work of about a thousand hashes (the flow, not the wait), with an
/// image captcha when `image`.
fn edge_options(image: bool) -> EdgeOptions {
    EdgeOptions {
        levels: vec![(0, 10, image)],
        ..EdgeOptions::default()
    }
}

/// nginx → edge → origin → Redis and PostgreSQL, and the calls the page's tests make.
struct World {
    front: Front,
}

impl World {
    async fn start() -> Self {
        let static_root = front::static_root().unwrap();
        let front = front!()
            .edge(edge_options(false))
            .start(&static_root)
            .await
            .unwrap();
        Self { front }
    }

    /// Creates a sale through the origin's API: its id and start.
    async fn create_sale(&self, stock: i64, starts_in: Duration) -> (i64, OffsetDateTime) {
        self.create_sale_with(stock, starts_in, json!({})).await
    }

    /// [`Self::create_sale`] with more fields of `POST /v1/sales` in `extra` (`ends_at`,
    /// `hold_seconds`).
    async fn create_sale_with(
        &self,
        stock: i64,
        starts_in: Duration,
        extra: Value,
    ) -> (i64, OffsetDateTime) {
        let start = OffsetDateTime::now_utc() + starts_in;
        let starts_at = start.format(&Rfc3339).unwrap();
        let mut request = json!({"name": "Trail runner sneakers", "stock": stock,
                                 "starts_at": starts_at, "price_cents": 12900, "currency": "EUR"});
        request
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let (status, body) = self.front.stack.post("/v1/sales", &request).await.unwrap();
        assert_eq!(status, 201, "{body}");
        (body["id"].as_i64().unwrap(), start)
    }

    fn http(&self) -> &reqwest::Client {
        &self.front.stack.http
    }

    /// The books of `sale` once nothing is in flight, checked.
    async fn quiet_books(&self, sale: i64) -> Books {
        let stack = &self.front.stack;
        stack
            .wait_quiet(sale, Duration::from_secs(10))
            .await
            .unwrap();
        let books = stack.books(sale).await.unwrap();
        books.check().unwrap();
        books
    }

    /// `edge_requests_total{route="status"}` summed over outcomes.
    async fn edge_status_requests(&self) -> u64 {
        self.front
            .edge
            .requests(self.http(), "status")
            .await
            .unwrap()
    }
}

/// Where this run's screenshots go: kept after the test, printed.
fn artifacts_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("flash-browser-sale-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A screenshot into this run's artifacts; also into docs/screenshots/ when
/// `UPDATE_SCREENSHOTS=1` (a test run leaves the checkout as it found it otherwise).
async fn shoot(browser: &Browser, dir: &Path, name: &str) {
    let path = dir.join(format!("{name}.png"));
    browser.screenshot(&path).await.unwrap();
    if std::env::var_os("UPDATE_SCREENSHOTS").is_some_and(|v| v == "1") {
        let docs = docs_screenshots();
        std::fs::create_dir_all(&docs).unwrap();
        std::fs::copy(&path, docs.join(format!("{name}.png"))).unwrap();
    }
}

/// Waits until `check` holds on `browser`, naming `what` on timeout.
async fn until_page<F>(browser: &Browser, what: &str, deadline: Duration, check: F) -> Duration
where
    F: Fn(&str, bool, &str) -> bool,
{
    sale_page::until(browser, what, deadline, check)
        .await
        .unwrap_or_else(|e| panic!("{e:#}"))
}

/// Records in the page when its button first enables, when it first shows an order, when it
/// first shows "Sold out", when it first shows "Sale ended", when it first tells a cancelled
/// order, and when the button first enables again after an order or "Sold out" (the browser's
/// Date.now(): both browsers, the edge and the origin run on this machine's clock). The record
/// lives in the page's window: a reload would lose it.
const WATCH: &str = r#"
    const seen = (window.__flashSeen = window.__flashSeen || {});
    const mark = () => {
        const result = document.getElementById("result").textContent;
        const buy = document.getElementById("buy");
        if (!seen.enabled && !buy.disabled) seen.enabled = Date.now();
        if (!seen.bought && result.includes("You got it")) seen.bought = Date.now();
        if (!seen.soldOut && buy.disabled && buy.textContent.includes("Sold out")) seen.soldOut = Date.now();
        if (!seen.ended && buy.disabled && buy.textContent.includes("Sale ended")) seen.ended = Date.now();
        if (!seen.cancelled && result.includes("was cancelled")) seen.cancelled = Date.now();
        if ((seen.bought || seen.soldOut) && !seen.reopened && !buy.disabled) seen.reopened = Date.now();
    };
    new MutationObserver(mark).observe(document.getElementById("sale"),
        {subtree: true, childList: true, characterData: true, attributes: true});
    mark();
"#;

async fn seen(browser: &Browser, key: &str) -> f64 {
    browser
        .run(
            &format!("return (window.__flashSeen || {{}}).{key} || 0;"),
            vec![],
        )
        .await
        .unwrap()
        .as_f64()
        .unwrap()
}

/// Milliseconds since the Unix epoch, as the browser's Date.now() counts them.
fn unix_ms(at: OffsetDateTime) -> f64 {
    (at.unix_timestamp_nanos() / 1_000_000) as f64
}

/// Prints how long after `since` (ms since the epoch, and what it is) the page did `what` at `at`,
/// and fails when it did it before.
fn not_before(what: &str, at: f64, (since, since_what): (f64, &str)) {
    println!("{what} {:.0} ms after {since_what}", at - since);
    assert!(
        at >= since,
        "{what} {:.0} ms before {since_what}",
        since - at
    );
}

/// The hold's time left as the page shows it, `None` while hidden.
async fn hold_text(browser: &Browser) -> anyhow::Result<Option<String>> {
    let text = browser
        .run(
            r#"const hold = document.getElementById("hold");
               return hold.hidden ? null : hold.textContent;"#,
            vec![],
        )
        .await?;
    Ok(text.as_str().map(str::to_string))
}

/// Waits until the page shows a hold's time left that passes `check`; returns that text.
async fn until_hold<F>(browser: &Browser, what: &str, check: F) -> String
where
    F: Fn(&str) -> bool,
{
    let shown = std::sync::Mutex::new(String::new());
    let result = wait::until(what, Duration::from_secs(10), || async {
        let text = hold_text(browser).await?.unwrap_or_default();
        let ok = check(&text);
        *shown.lock().unwrap() = text;
        Ok(ok)
    })
    .await;
    let shown = shown.into_inner().unwrap();
    result.unwrap_or_else(|e| panic!("{e:#} (the page shows {shown:?})"));
    shown
}

/// The status fetches the page made (Resource Timing).
async fn page_status_fetches(browser: &Browser) -> u64 {
    browser
        .run(
            r#"return performance.getEntriesByType("resource")
                   .filter(e => e.name.includes("/status")).length;"#,
            vec![],
        )
        .await
        .unwrap()
        .as_u64()
        .unwrap()
}

/// Fails on any console error or warning but the failed requests the test caused on purpose
/// (`expected`: the URL path and status of each, as Chromium logs them).
async fn assert_clean_console(name: &str, browser: &Browser, expected: &[(&str, u16)]) {
    let entries = browser.console().await.unwrap();
    for entry in &entries {
        println!(
            "console {name}: {} {} {}",
            entry.level, entry.source, entry.message
        );
    }
    let errors: Vec<_> = entries
        .iter()
        .filter(|e| e.level == "SEVERE" || e.level == "WARNING")
        .filter(|e| {
            !(e.source == "network"
                && expected.iter().any(|(path, status)| {
                    e.message.contains(&format!("{path} - "))
                        && e.message.contains(&format!("status of {status} "))
                }))
        })
        .collect();
    assert!(errors.is_empty(), "{name}'s console: {errors:#?}");
}
