//! The sale page in production, logged in through a real OpenID Connect provider: the stack
//! (nginx → edge → origin → Redis and PostgreSQL) with `dev_mode = false`, the edge's identity on
//! the `oidc-provider` npm package run with Node.js (its JWKS, issuer, the shop's client as
//! audience, the login's cookie, nginx's origin as the one allowed to send state-changing
//! requests), and the shop's login in the harness. Headless Chromium loads the page, sees "Log in
//! to buy", follows it, logs in on the provider's form, comes back to the page logged in and
//! buys. A login that stops working while the page is open sends the visitor to log in again and
//! back, and they buy; one running out on an open page, untouched, does the same 10 s before its
//! expiry; a captcha answer typed before the login ran out is sent once the shopper is back. A
//! cross-site POST carrying the cookie is refused `403 csrf`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "integration tests: a failed unwrap is a failed test, with its message"
)]

use std::time::Duration;

use flash_tests::{
    browser::{Browser, Chromedriver},
    edge_process::{EdgeOptions, EdgeProcess},
    front,
    front::Front,
    nginx_server::NginxServer,
    oidc_provider::{OidcClient, OidcProvider},
    shop_login::{ShopConfig, ShopLogin},
    stack::Stack,
    wait,
};
use serde_json::{json, Value};
use time::{format_description::well_known::Rfc3339, OffsetDateTime};

/// The cookie the shop's login sets and the edge reads.
const COOKIE: &str = "flash_id";
/// Who logs in on the provider's form (its dev interactions take any login).
const SHOPPER: &str = "shopper-1";
const CLIENT_ID: &str = "flash-sale";
const WAIT: Duration = Duration::from_secs(30);

/// A random hex string of `bytes` bytes: a secret of the shop's client.
fn random_secret(bytes: usize) -> String {
    (0..bytes)
        .map(|_| format!("{:02x}", rand::random::<u8>()))
        .collect()
}

/// The stack in production, the provider and the shop's login.
struct World {
    stack: Stack,
    edge: EdgeProcess,
    nginx: NginxServer,
    provider: OidcProvider,
    shop: ShopLogin,
    /// The edge's settings before it went to production.
    options: EdgeOptions,
}

impl World {
    /// The world, the provider's ID tokens (the login's cookie) good for `login_ttl`, the
    /// captcha an image one when `image`.
    async fn start(login_ttl: Duration, image: bool) -> Self {
        let options = EdgeOptions {
            levels: vec![(0, 10, image)],
            ..EdgeOptions::default()
        };
        let Front { stack, edge, nginx } = front!()
            .edge(options.clone())
            .start(&front::static_root().unwrap())
            .await
            .unwrap();
        let listener = ShopLogin::bind().await.unwrap();
        let client = OidcClient {
            id: CLIENT_ID.into(),
            secret: random_secret(32),
            redirect_uri: listener.callback_url(),
        };
        let provider = OidcProvider::start(&client, login_ttl).await.unwrap();
        let shop = listener.serve(ShopConfig::new(client, &provider, COOKIE, &nginx.url()));
        let world = Self {
            stack,
            edge,
            nginx,
            provider,
            shop,
            options,
        };
        world.to_production().await;
        world
    }

    /// The edge's config as production runs it, reloaded (SIGHUP): dev mode off (and so a
    /// strong captcha secret), the identity on the provider. After the start, because the
    /// allowed origin is nginx's, which needed the edge first.
    async fn to_production(&self) {
        let identity = format!(
            "jwks_url = \"{}\"\nissuer = \"{}\"\naudience = \"{CLIENT_ID}\"\n\
             cookie = \"{COOKIE}\"\nallowed_origins = [\"{}\"]\nlogin_url = \"{}\"",
            self.provider.jwks_url(),
            self.provider.issuer(),
            self.nginx.url(),
            self.shop.login_url(),
        );
        let production = EdgeOptions {
            dev_mode: false,
            identity: Some(identity),
            ..self.options.clone()
        };
        self.edge.write_config(&production).unwrap();
        self.edge.sighup().unwrap();
        self.edge
            .await_reloads(&self.stack.http, "applied", 1)
            .await
            .unwrap();
    }

    /// `GET /api/me` through nginx with the login's cookie `token`: `{status, body}`.
    async fn me(&self, token: &str) -> Value {
        let answer = self
            .stack
            .http
            .get(format!("{}/api/me", self.nginx.url()))
            .header("Cookie", format!("{COOKIE}={token}"))
            .send()
            .await
            .unwrap();
        json!({"status": answer.status().as_u16(), "body": answer.json::<Value>().await.unwrap()})
    }

    /// A live sale of `stock` units: its page's URL.
    async fn live_sale(&self, stock: i64) -> (i64, String) {
        let starts_at = OffsetDateTime::now_utc().format(&Rfc3339).unwrap();
        let (status, body) = self
            .stack
            .post(
                "/v1/sales",
                &json!({"name": "Trail runner sneakers", "stock": stock, "starts_at": starts_at,
                        "price_cents": 12900, "currency": "EUR"}),
            )
            .await
            .unwrap();
        assert_eq!(status, 201, "{body}");
        let id = body["id"].as_i64().unwrap();
        (id, format!("{}/sale/{id}", self.nginx.url()))
    }
}

/// Waits until `script` (a function body) returns true in the browser, naming `what`.
async fn until_true(browser: &Browser, what: &str, script: &str) {
    if let Err(e) = browser.until(what, WAIT, script).await {
        panic!("{e:#}; the page: {}", page_state(browser).await);
    }
}

/// What the page shows: whether `#login` and `#buy` are shown, Buy's state, the result, the
/// start of its text.
async fn page_state(browser: &Browser) -> Value {
    browser
        .run(
            r#"const login = document.getElementById("login");
               const buy = document.getElementById("buy");
               return {url: location.href, login: login && !login.hidden, buyShown: !!buy && !buy.hidden,
                       buyEnabled: !!buy && !buy.disabled, result: (document.getElementById("result") || {}).textContent,
                       text: document.body ? document.body.innerText.slice(0, 300) : null};"#,
            vec![],
        )
        .await
        .unwrap()
}

/// Waits until the sale page at `page` is back, logged in: Buy enabled.
async fn until_logged_in(browser: &Browser, page: &str) {
    let script = format!(
        r#"const buy = document.getElementById("buy");
           return location.href === {page:?} && !!buy && !buy.hidden && !buy.disabled;"#
    );
    until_true(
        browser,
        "the sale page back, logged in (Buy enabled)",
        &script,
    )
    .await;
}

/// Logs in as `SHOPPER` on the provider's own login form and consents.
async fn logs_in_at_the_provider(browser: &Browser) {
    until_true(
        browser,
        "the provider's login form",
        r#"return !!document.querySelector("input[name=login]");"#,
    )
    .await;
    browser
        .type_into("input[name=login]", SHOPPER)
        .await
        .unwrap();
    browser
        .type_into("input[name=password]", "any")
        .await
        .unwrap();
    browser.click("button.login-submit").await.unwrap();
    until_true(
        browser,
        "the provider's consent",
        r#"return !!document.querySelector("input[name=prompt][value=consent]");"#,
    )
    .await;
    browser.click("button.login-submit").await.unwrap();
}

/// A browser logged in on the page of a new live sale of 3 units: the sale, its page, the
/// driver (kept alive for the session) and the browser.
async fn logged_in_on_a_sale(world: &World) -> (i64, String, Chromedriver, Browser) {
    let (sale, page) = world.live_sale(3).await;
    let driver = Chromedriver::start().await.unwrap();
    let browser = driver.session().await.unwrap();
    logs_in_on(&browser, &page).await;
    (sale, page, driver, browser)
}

/// Opens `page` logged out, follows "Log in to buy" and logs in: back on `page`, logged in.
async fn logs_in_on(browser: &Browser, page: &str) {
    browser.goto(page).await.unwrap();
    until_true(
        browser,
        "\"Log in to buy\" shown",
        r#"const login = document.getElementById("login"); return !!login && !login.hidden;"#,
    )
    .await;
    browser.click("#login").await.unwrap();
    logs_in_at_the_provider(browser).await;
    until_logged_in(browser, page).await;
}

/// Presses Buy and waits for the order.
async fn buys(browser: &Browser) {
    browser.click("#buy").await.unwrap();
    until_true(
        browser,
        "the order shown",
        r#"return document.getElementById("result").textContent.includes("You got it");"#,
    )
    .await;
}

/// The login's cookie as the browser holds it (WebDriver reads HttpOnly cookies).
async fn login_cookie(browser: &Browser) -> String {
    let cookies = browser.client().get_all_cookies().await.unwrap();
    let cookie = cookies
        .iter()
        .find(|c| c.name() == COOKIE)
        .expect("the shop's login set the cookie");
    assert_eq!(
        cookie.http_only(),
        Some(true),
        "the login's cookie is HttpOnly"
    );
    cookie.value().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_shopper_logged_in_at_the_provider_buys_with_dev_mode_off() {
    let world = World::start(Duration::from_secs(3600), false).await;
    let (sale, page) = world.live_sale(3).await;
    let driver = Chromedriver::start().await.unwrap();
    let browser = driver.session().await.unwrap();

    // Logged out: "Log in to buy" instead of Buy, to the shop's login and back to this page.
    browser.goto(&page).await.unwrap();
    until_true(
        &browser,
        "\"Log in to buy\" shown",
        r#"const login = document.getElementById("login"); return !!login && !login.hidden;"#,
    )
    .await;
    let shown = page_state(&browser).await;
    assert_eq!(shown["buyShown"], false, "{shown}");
    assert_eq!(browser.text("#login").await.unwrap(), "Log in to buy");
    let href = browser
        .run("return document.getElementById('login').href;", vec![])
        .await
        .unwrap();
    let expected = format!(
        "{}?return_to={}",
        world.shop.login_url(),
        page.replace(':', "%3A").replace('/', "%2F")
    );
    assert_eq!(href.as_str(), Some(expected.as_str()));

    // The provider's own login form and consent; back on the page, logged in through the cookie
    // the script never sees.
    browser.click("#login").await.unwrap();
    logs_in_at_the_provider(&browser).await;
    until_logged_in(&browser, &page).await;
    assert_eq!(world.shop.logins(), 1);
    let token = login_cookie(&browser).await;
    let me = world.me(&token).await;
    assert_eq!(me["status"], 200, "{me}");
    assert_eq!(me["body"]["uid"], SHOPPER, "{me}");
    let cookie_seen = browser
        .run("return document.cookie;", vec![])
        .await
        .unwrap();
    assert!(
        !cookie_seen.as_str().unwrap_or_default().contains(&token),
        "the script must not see the token: {cookie_seen}"
    );

    buys(&browser).await;
    let buyers = world.stack.live_buyers(sale).await.unwrap();
    assert!(buyers.contains(SHOPPER), "{buyers:?}");
    refuses_a_cross_site_post_with_the_cookie(&world, sale, &token).await;

    // The login stops working while a page is open (its cookie gone, as when it expired): the
    // next call's 401 sends the visitor to log in again and back (the provider remembers them), and
    // they buy in the second sale.
    let (second, page) = world.live_sale(3).await;
    browser.goto(&page).await.unwrap();
    until_logged_in(&browser, &page).await;
    browser.client().delete_cookie(COOKIE).await.unwrap();
    browser.click("#buy").await.unwrap();
    wait::until("a second login", WAIT, || async {
        Ok(world.shop.logins() == 2)
    })
    .await
    .unwrap();
    until_logged_in(&browser, &page).await;
    buys(&browser).await;
    let buyers = world.stack.live_buyers(second).await.unwrap();
    assert!(buyers.contains(SHOPPER), "{buyers:?}");

    // The page's own script logged nothing (the provider's pages and the 401s on the way are
    // not the page's).
    let site = world.nginx.url();
    let errors: Vec<_> = browser
        .console()
        .await
        .unwrap()
        .into_iter()
        .filter(|e| (e.level == "SEVERE" || e.level == "WARNING") && e.source != "network")
        .filter(|e| e.message.contains(&site))
        .collect();
    assert!(errors.is_empty(), "script errors: {errors:?}");
    browser.close().await.unwrap();
}

/// The cookie on a POST from another site is refused `403 csrf` (the buy and the captcha's
/// answer); from the sale page's own origin it passes the CSRF rule.
async fn refuses_a_cross_site_post_with_the_cookie(world: &World, sale: i64, token: &str) {
    let post = |path: &str, body: Value, headers: &[(&str, &str)]| {
        let mut request = world
            .stack
            .http
            .post(format!("{}{path}", world.nginx.url()))
            .header("Cookie", format!("{COOKIE}={token}"))
            .json(&body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        async move {
            let answer = request.send().await.unwrap();
            let status = answer.status().as_u16();
            (status, answer.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let buy = format!("/api/sales/{sale}/buy");
    let cross_site: [&[(&str, &str)]; 3] = [
        &[("Origin", "http://evil.example")],
        &[("Sec-Fetch-Site", "cross-site")],
        &[],
    ];
    for headers in cross_site {
        for (path, body) in [
            (buy.as_str(), json!({"pass_token": "x"})),
            (
                "/api/captcha",
                json!({"sale": sale, "challenge": "x", "nonce": 1}),
            ),
        ] {
            let (status, body) = post(path, body, headers).await;
            assert_eq!(
                (status, &body["error"]),
                (403, &json!("csrf")),
                "{path} {headers:?}: {body}"
            );
        }
    }
    let origin = world.nginx.url();
    let (status, body) = post(&buy, json!({"pass_token": "x"}), &[("Origin", &origin)]).await;
    assert_ne!(
        body["error"], "csrf",
        "the page's own origin: {status} {body}"
    );
}

/// The login runs out while the page is open and nobody touches it: 10 s before its expiry the
/// page sends the shopper to the shop's login (while the old login still works, so no call was
/// refused on the way), the provider knows them and sends them straight back, and the page shows
/// their order again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_login_running_out_on_an_open_page_takes_the_shopper_to_log_in_and_back() {
    // Due 20 s after the login: long enough to log in and buy on a loaded machine, short for a
    // test.
    let world = World::start(Duration::from_secs(30), false).await;
    let (sale, page, _driver, browser) = logged_in_on_a_sale(&world).await;
    let token = login_cookie(&browser).await;
    let me = world.me(&token).await;
    assert_eq!(me["status"], 200, "{me}");
    let expires_at = me["body"]["expires_at"]
        .as_i64()
        .expect("/api/me names the login's expiry");
    buys(&browser).await;
    assert_eq!(world.shop.logins(), 1);

    // The page's own timer: nothing is pressed from here on.
    wait::until(
        "the page's own trip to the login",
        Duration::from_secs(60),
        || async { Ok(world.shop.logins() == 2) },
    )
    .await
    .unwrap();
    let now = OffsetDateTime::now_utc().unix_timestamp();
    assert!(
        now < expires_at,
        "the page went to the login before its login expired ({now} < {expires_at})"
    );
    // Back on the page, logged in (no "Log in to buy"), their order shown again (Buy stays
    // disabled: one order per user).
    let back = format!(
        r#"const login = document.getElementById("login");
           return location.href === {page:?} && !!login && login.hidden
               && document.getElementById("result").textContent.includes("You got it");"#
    );
    until_true(
        &browser,
        "the page back, logged in, the order shown again",
        &back,
    )
    .await;
    assert_ne!(login_cookie(&browser).await, token, "a new login");
    let buyers = world.stack.live_buyers(sale).await.unwrap();
    assert_eq!(buyers.len(), 1, "{buyers:?}");
    assert!(buyers.contains(SHOPPER), "{buyers:?}");
    browser.close().await.unwrap();
}

/// The login stops working while the shopper answers the image captcha: their answer's 401 sends
/// them to log in again, and back on the page the next press sends the answer they typed (kept in
/// sessionStorage over the trip), with no new challenge or picture fetched. The answer is a wrong
/// one, so that the edge's verdict on it shows it was the kept answer that reached it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_answer_typed_before_a_login_ran_out_is_sent_after_the_login() {
    let world = World::start(Duration::from_secs(3600), true).await;
    let (_, page, _driver, browser) = logged_in_on_a_sale(&world).await;
    browser.click("#buy").await.unwrap();
    until_true(
        &browser,
        "the image captcha",
        r#"const img = document.getElementById("captcha-image");
           return !document.getElementById("image-captcha").hidden && img.complete && img.naturalWidth > 0;"#,
    )
    .await;

    // The login's cookie goes (as when it expires) while the shopper types.
    browser.client().delete_cookie(COOKIE).await.unwrap();
    browser
        .type_into("#captcha-answer", "not it")
        .await
        .unwrap();
    browser.click("#captcha-submit").await.unwrap();
    wait::until("the trip to the login", WAIT, || async {
        Ok(world.shop.logins() == 2)
    })
    .await
    .unwrap();
    until_logged_in(&browser, &page).await;

    // The edge counts every captcha request (challenge, picture, sound, answer) under one route.
    let http = &world.stack.http;
    let challenges = || async {
        world
            .edge
            .metric(
                http,
                "edge_requests_total",
                &[("route", "captcha"), ("reason", "challenge")],
            )
            .await
            .unwrap()
    };
    let (asked, before) = (
        world.edge.requests(http, "captcha").await.unwrap(),
        challenges().await,
    );
    assert_eq!(before, 1.0, "the one challenge before the login ran out");
    browser.click("#buy").await.unwrap();
    until_true(
        &browser,
        "the kept answer's verdict",
        r#"return document.getElementById("result").textContent.startsWith("The characters did not match");"#,
    )
    .await;
    assert_eq!(
        world.edge.requests(http, "captcha").await.unwrap(),
        asked + 1,
        "one captcha request: the kept answer, no new challenge or picture"
    );
    assert_eq!(challenges().await, before, "no new challenge");
    browser.close().await.unwrap();
}
