//! The shop's login, as small as a shop can make it, for the end-to-end login test: an axum
//! server on a port the kernel picks. `GET /login?return_to=<page>` sends the visitor to the
//! OpenID provider's authorization endpoint (code flow, a `state` of its own remembering where to
//! return); `GET /callback?code&state` trades the code for tokens at the provider's token
//! endpoint (`client_secret_basic`), sets the ID token in the cookie the edge reads
//! (`HttpOnly; SameSite=Lax; Path=/`; `Secure` is left out only because the test serves plain
//! http) and sends the visitor back, only ever to the sale site's origin. Cookies ignore ports,
//! so this shop on 127.0.0.1:<port> sets the cookie nginx on 127.0.0.1 receives.
//!
//! The shop's address must be known before the provider starts (it is the client's redirect
//! URI), and the provider's before the shop serves: [`ShopLogin::bind`], then
//! [`ShopListener::serve`].

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
};

use anyhow::Context;
use axum::{
    extract::{Query, State},
    http::{header, StatusCode},
    response::{IntoResponse, Response},
    routing::get,
    Router,
};
use rand::Rng;
use reqwest::Url;
use serde::Deserialize;
use tokio::{net::TcpListener, task::JoinHandle};

use crate::oidc_provider::{OidcClient, OidcProvider};

/// What the shop is told about the provider and the sale site.
#[derive(Debug, Clone)]
pub struct ShopConfig {
    pub client: OidcClient,
    pub authorization_url: String,
    pub token_url: String,
    /// The cookie the edge reads the token from (`identity.cookie`).
    pub cookie: String,
    /// The sale site's origin (`http://127.0.0.1:<nginx>`): the only place `return_to` may be.
    pub site_origin: String,
}

impl ShopConfig {
    /// The shop of `client` at `provider`, sending visitors back to `site_origin`.
    pub fn new(
        client: OidcClient,
        provider: &OidcProvider,
        cookie: &str,
        site_origin: &str,
    ) -> Self {
        Self {
            client,
            authorization_url: provider.authorization_url(),
            token_url: provider.token_url(),
            cookie: cookie.to_string(),
            site_origin: site_origin.trim_end_matches('/').to_string(),
        }
    }
}

/// The shop's port, bound, not serving yet.
pub struct ShopListener {
    listener: TcpListener,
    addr: SocketAddr,
}

/// The shop, serving until dropped.
pub struct ShopLogin {
    addr: SocketAddr,
    shop: Arc<Shop>,
    task: JoinHandle<()>,
}

struct Shop {
    config: ShopConfig,
    http: reqwest::Client,
    /// `state` → the `return_to` it was made for; each is used once.
    pending: Mutex<HashMap<String, String>>,
    /// Logins completed: cookies set.
    logins: AtomicUsize,
}

impl ShopLogin {
    pub async fn bind() -> anyhow::Result<ShopListener> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        Ok(ShopListener { listener, addr })
    }

    /// `http://127.0.0.1:<port>/login`: `identity.login_url`.
    pub fn login_url(&self) -> String {
        format!("http://{}/login", self.addr)
    }

    /// How many logins came back from the provider and set the cookie.
    pub fn logins(&self) -> usize {
        self.shop.logins.load(Ordering::SeqCst)
    }
}

impl ShopListener {
    /// `http://127.0.0.1:<port>/callback`: the client's redirect URI.
    pub fn callback_url(&self) -> String {
        format!("http://{}/callback", self.addr)
    }

    pub fn serve(self, config: ShopConfig) -> ShopLogin {
        let shop = Arc::new(Shop {
            config,
            http: reqwest::Client::new(),
            pending: Mutex::new(HashMap::new()),
            logins: AtomicUsize::new(0),
        });
        let app = Router::new()
            .route("/login", get(login))
            .route("/callback", get(callback))
            .with_state(Arc::clone(&shop));
        let listener = self.listener;
        let task = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, app).await {
                tracing::warn!(%error, "the shop's login server stopped");
            }
        });
        ShopLogin {
            addr: self.addr,
            shop,
            task,
        }
    }
}

impl Drop for ShopLogin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(Deserialize)]
struct LoginQuery {
    return_to: String,
}

fn refuse(status: StatusCode, text: String) -> Response {
    (status, text).into_response()
}

fn redirect(to: &str) -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, to.to_string())]).into_response()
}

/// Whether `url` is on the sale site (its origin exactly): no open redirect.
fn on_site(url: &str, site_origin: &str) -> bool {
    Url::parse(url).is_ok_and(|url| url.origin().ascii_serialization() == site_origin)
}

async fn login(State(shop): State<Arc<Shop>>, Query(query): Query<LoginQuery>) -> Response {
    let config = &shop.config;
    if !on_site(&query.return_to, &config.site_origin) {
        return refuse(
            StatusCode::BAD_REQUEST,
            "return_to is not on the sale site".into(),
        );
    }
    let state = random_hex();
    let nonce = random_hex();
    lock(&shop.pending).insert(state.clone(), query.return_to);
    let Ok(mut url) = Url::parse(&config.authorization_url) else {
        return refuse(
            StatusCode::INTERNAL_SERVER_ERROR,
            "bad authorization URL".into(),
        );
    };
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &config.client.id)
        .append_pair("redirect_uri", &config.client.redirect_uri)
        .append_pair("scope", "openid")
        .append_pair("state", &state)
        .append_pair("nonce", &nonce);
    redirect(url.as_str())
}

#[derive(Deserialize)]
struct CallbackQuery {
    code: String,
    state: String,
}

#[derive(Deserialize)]
struct Tokens {
    id_token: String,
}

async fn callback(State(shop): State<Arc<Shop>>, Query(query): Query<CallbackQuery>) -> Response {
    let Some(return_to) = lock(&shop.pending).remove(&query.state) else {
        return refuse(StatusCode::BAD_REQUEST, "unknown or used state".into());
    };
    let tokens = match exchange(&shop, &query.code).await {
        Ok(tokens) => tokens,
        Err(error) => return refuse(StatusCode::BAD_GATEWAY, format!("{error:#}")),
    };
    let cookie = format!(
        "{}={}; HttpOnly; SameSite=Lax; Path=/",
        shop.config.cookie, tokens.id_token
    );
    let mut answer = redirect(&return_to);
    match cookie.parse() {
        Ok(value) => {
            answer.headers_mut().insert(header::SET_COOKIE, value);
            shop.logins.fetch_add(1, Ordering::SeqCst);
            answer
        }
        Err(_) => refuse(
            StatusCode::BAD_GATEWAY,
            "the ID token is not a cookie value".into(),
        ),
    }
}

/// The authorization code traded for tokens at the provider.
async fn exchange(shop: &Shop, code: &str) -> anyhow::Result<Tokens> {
    let config = &shop.config;
    let answer = shop
        .http
        .post(&config.token_url)
        .basic_auth(&config.client.id, Some(&config.client.secret))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", config.client.redirect_uri.as_str()),
        ])
        .send()
        .await
        .context("token endpoint")?;
    let status = answer.status();
    let text = answer.text().await.context("token endpoint's body")?;
    anyhow::ensure!(status.is_success(), "token endpoint {status}: {text}");
    serde_json::from_str(&text).with_context(|| format!("token endpoint's answer {text}"))
}

fn random_hex() -> String {
    let bytes: [u8; 16] = rand::rng().random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
