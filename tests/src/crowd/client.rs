//! The crowd's HTTP client: hyper-util's legacy client over keep-alive HTTP/1 connections, one
//! pool for the whole crowd. A [`Call`] is one request (route, bearer token, `X-Forwarded-For`,
//! JSON body); its [`Answer`] is the status, the JSON body (`null` when it is not JSON) and the
//! latency. A timeout or a broken connection is an answer too, with status 0: the crowd counts
//! it and goes on.

use std::{net::IpAddr, time::Duration};

use http_body_util::{BodyExt, Full};
use hyper::{body::Bytes, Method};
use hyper_util::{
    client::legacy::{connect::HttpConnector, Client},
    rt::TokioExecutor,
};
use serde_json::Value;
use tokio::time::Instant;

use super::tally::Route;

/// The client and where it sends.
#[derive(Debug, Clone)]
pub struct Http {
    client: Client<HttpConnector, Full<Bytes>>,
    base: String,
    timeout: Duration,
}

/// One request to make.
#[derive(Debug, Clone)]
pub struct Call<'a> {
    pub route: Route,
    pub method: Method,
    /// Path and query, from `/`.
    pub path: String,
    pub bearer: Option<&'a str>,
    pub forwarded_for: Option<IpAddr>,
    /// Sent as `application/json` when set.
    pub body: Option<Bytes>,
}

impl<'a> Call<'a> {
    pub fn get(route: Route, path: String) -> Self {
        Self {
            route,
            method: Method::GET,
            path,
            bearer: None,
            forwarded_for: None,
            body: None,
        }
    }

    pub fn post(route: Route, path: String, body: impl Into<Bytes>) -> Self {
        Self {
            method: Method::POST,
            body: Some(body.into()),
            ..Self::get(route, path)
        }
    }

    pub fn bearer(self, token: &'a str) -> Self {
        Self {
            bearer: Some(token),
            ..self
        }
    }

    pub fn from_ip(self, ip: Option<IpAddr>) -> Self {
        Self {
            forwarded_for: ip,
            ..self
        }
    }
}

/// What came back.
#[derive(Debug, Clone)]
pub struct Answer {
    pub route: Route,
    /// The HTTP status; 0 when no answer came (timeout, connection error).
    pub status: u16,
    /// The JSON body; `null` when the body was not JSON or nothing came.
    pub body: Value,
    pub latency: Duration,
    /// Why no answer came, when `status` is 0.
    pub failure: Option<&'static str>,
}

impl Answer {
    /// A string field of the body.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.body.get(name).and_then(Value::as_str)
    }

    /// A `200` whose body says `"status": "reserved"`: a unit.
    pub fn is_unit(&self) -> bool {
        self.route == Route::Buy && self.status == 200 && self.field("status") == Some("reserved")
    }
}

impl Http {
    /// A client for `base_url` keeping up to `idle` keep-alive connections.
    pub fn new(base_url: &str, idle: usize, timeout: Duration) -> anyhow::Result<Self> {
        let base = base_url.trim_end_matches('/').to_string();
        let _: hyper::Uri = base.parse()?;
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(timeout));
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(idle)
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Ok(Self {
            client,
            base,
            timeout,
        })
    }

    /// Sends `call` and waits for its whole answer, at most the timeout.
    pub async fn send(&self, call: Call<'_>) -> Answer {
        let route = call.route;
        let started = Instant::now();
        let outcome = tokio::time::timeout(self.timeout, self.exchange(call)).await;
        let latency = started.elapsed();
        match outcome {
            Ok(Ok((status, body))) => Answer {
                route,
                status,
                body,
                latency,
                failure: None,
            },
            Ok(Err(failure)) => Answer::none(route, latency, failure),
            Err(_elapsed) => Answer::none(route, latency, "timeout"),
        }
    }

    async fn exchange(&self, call: Call<'_>) -> Result<(u16, Value), &'static str> {
        let mut req = hyper::Request::builder()
            .method(call.method)
            .uri(format!("{}{}", self.base, call.path));
        if let Some(token) = call.bearer {
            req = req.header(hyper::header::AUTHORIZATION, format!("Bearer {token}"));
        }
        if let Some(ip) = call.forwarded_for {
            req = req.header("x-forwarded-for", ip.to_string());
        }
        if call.body.is_some() {
            req = req.header(hyper::header::CONTENT_TYPE, "application/json");
        }
        let req = req
            .body(Full::new(call.body.unwrap_or_default()))
            .map_err(|_| "bad_request")?;
        let resp = self.client.request(req).await.map_err(|_| "connection")?;
        let status = resp.status().as_u16();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|_| "body")?
            .to_bytes();
        Ok((
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        ))
    }
}

impl Answer {
    /// The answer of a request whose task was lost (it panicked).
    pub fn lost(route: Route) -> Self {
        Self::none(route, Duration::ZERO, "lost")
    }

    fn none(route: Route, latency: Duration, failure: &'static str) -> Self {
        Self {
            route,
            status: 0,
            body: Value::Null,
            latency,
            failure: Some(failure),
        }
    }
}
