//! Where a request's token is: the `Authorization: Bearer` header, or else the cookie named by
//! `identity.cookie`, set by the shop's login on the same site. A browser sends a cookie with
//! every request to the site, whoever made the page that sent it, so a cookie-borne token on a
//! state-changing request (anything but GET, HEAD and OPTIONS) counts only when the request says
//! it comes from one of `identity.allowed_origins`: its `Origin`, or, without one,
//! `Sec-Fetch-Site: same-origin`. A bearer header is never sent by a browser on its own, so it
//! needs no such check.

use axum::http::{header, HeaderMap, Method};

use super::{IdentityError, MAX_TOKEN_BYTES};
use crate::config::IdentityConfig;

/// How the token came.
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
pub enum Via {
    Header,
    Cookie,
}

/// The cookie's name and the origins allowed to send state-changing requests with it.
pub struct Carrier {
    cookie: Option<String>,
    allowed_origins: Vec<String>,
}

impl Carrier {
    pub fn from_config(cfg: &IdentityConfig) -> Self {
        Self {
            cookie: cfg.cookie.clone(),
            allowed_origins: cfg.allowed_origins.clone(),
        }
    }

    /// The token of the request and how it came; a cookie-borne token of a cross-site
    /// state-changing request is refused as `CrossSite`.
    pub fn token<'a>(
        &self,
        headers: &'a HeaderMap,
        method: &Method,
    ) -> Result<(&'a str, Via), IdentityError> {
        let authorization = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        if authorization.is_some() || self.cookie.is_none() {
            return bearer_token(authorization).map(|t| (t, Via::Header));
        }
        let name = self.cookie.as_deref().unwrap_or_default();
        let token = cookie(headers, name).ok_or(IdentityError::MissingToken)?;
        if token.is_empty() || token.len() > MAX_TOKEN_BYTES {
            return Err(IdentityError::MalformedToken);
        }
        if !is_safe(method) && !self.same_site(headers) {
            return Err(IdentityError::CrossSite);
        }
        Ok((token, Via::Cookie))
    }

    /// The request says it comes from an allowed origin.
    fn same_site(&self, headers: &HeaderMap) -> bool {
        let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        match text(header::ORIGIN.as_str()) {
            Some(origin) => self.allowed_origins.iter().any(|o| o == origin),
            None => text("sec-fetch-site") == Some("same-origin"),
        }
    }
}

fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// The value of cookie `name` in the request's `Cookie` headers (quotes around it removed).
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|line| line.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.trim_matches('"'))
}

/// The token of `Bearer <token>` (scheme case-insensitive, as RFC 7235 says).
pub fn bearer_token(header: Option<&str>) -> Result<&str, IdentityError> {
    let header = header.map(str::trim).unwrap_or_default();
    if header.is_empty() {
        return Err(IdentityError::MissingToken);
    }
    let (scheme, token) = header
        .split_once(' ')
        .ok_or(IdentityError::MalformedToken)?;
    let token = token.trim_start();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(IdentityError::MalformedToken);
    }
    if token.len() > MAX_TOKEN_BYTES || token.contains(char::is_whitespace) {
        return Err(IdentityError::MalformedToken);
    }
    Ok(token)
}
