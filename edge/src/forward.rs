//! Forwarding to the origins: one pooled keep-alive HTTP/1 client, round robin over the origins,
//! a deadline on every request (never a hang), request ids passed on, and hop-by-hop headers
//! stripped from what comes back.
//!
//! An origin that fails (refuses the connection, breaks it, or does not answer within the
//! timeout) is taken out for `retry_dead_after_ms`: a stalled origin costs the timeout once, not
//! on every request of its round-robin share. When its time is up, ONE request tries it first
//! (the others keep skipping it); an answer puts it back in the rotation, another failure takes
//! it out again.

use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Mutex, MutexGuard, PoisonError,
    },
    time::Duration,
};

use http::{header, HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::{
    client::legacy::{connect::HttpConnector, Client},
    rt::TokioExecutor,
};
use tokio::time::Instant;

use crate::config::OriginConfig;

/// Largest origin answer read, in bytes.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// Why no answer came from any origin.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    #[error("no origin reachable ({0})")]
    Unreachable(String),
    #[error("origin {origin} did not answer within {timeout:?}")]
    Timeout { origin: String, timeout: Duration },
    #[error("origin {origin}: {message}")]
    Broken { origin: String, message: String },
}

/// An origin's answer.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

struct Target {
    base: String,
    /// Set while the origin is taken out: until when it is skipped.
    dead_until: Mutex<Option<Instant>>,
}

/// Where an origin stands for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Health {
    Live,
    /// Taken out, its time is up, and this request probes it.
    Probe,
    Dead,
}

impl Target {
    fn lock(&self) -> MutexGuard<'_, Option<Instant>> {
        self.dead_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Live, dead, or due for a probe; a probe claimed here (`may_probe`) keeps the origin out
    /// for the others another `retry_dead_after`, so a stalled origin gets one request per period.
    fn health(&self, now: Instant, may_probe: bool, retry_dead_after: Duration) -> Health {
        let mut dead_until = self.lock();
        match *dead_until {
            None => Health::Live,
            Some(until) if until <= now && may_probe => {
                *dead_until = Some(now + retry_dead_after);
                Health::Probe
            }
            Some(_) => Health::Dead,
        }
    }
}

pub struct Origins {
    client: Client<HttpConnector, Full<Bytes>>,
    targets: Vec<Target>,
    next: AtomicUsize,
    timeout: Duration,
    retry_dead_after: Duration,
}

impl Origins {
    pub fn new(config: &OriginConfig) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(config.connect_timeout));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(config.pool_idle_per_origin)
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Self {
            client,
            targets: config
                .urls
                .iter()
                .map(|u| Target {
                    base: u.to_string().trim_end_matches('/').to_string(),
                    dead_until: Mutex::new(None),
                })
                .collect(),
            next: AtomicUsize::new(0),
            timeout: config.timeout,
            retry_dead_after: config.retry_dead_after,
        }
    }

    /// Origins in the order to try: live ones round robin, after the one dead origin (if any)
    /// whose time out is over, which this request probes; the other dead ones only when none is
    /// live.
    fn order(&self) -> Vec<&Target> {
        let n = self.targets.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        let mut probe = None;
        let mut live = Vec::with_capacity(n);
        let mut dead = Vec::new();
        for target in (0..n).map(|i| &self.targets[(start + i) % n]) {
            match target.health(now, probe.is_none(), self.retry_dead_after) {
                Health::Live => live.push(target),
                Health::Probe => probe = Some(target),
                Health::Dead => dead.push(target),
            }
        }
        if let Some(target) = probe {
            tracing::info!(origin = %target.base, "retrying an origin taken out");
            live.insert(0, target);
        }
        if live.is_empty() {
            dead
        } else {
            live
        }
    }

    /// Puts `target` back in the rotation after an answer.
    fn mark_live(&self, target: &Target) {
        let mut dead_until = target.lock();
        if dead_until.take().is_some() {
            tracing::info!(origin = %target.base, "origin back");
        }
    }

    /// Takes `target` out for `retry_dead_after` after a failure.
    fn mark_dead(&self, target: &Target, failure: &str) {
        let mut dead_until = target.lock();
        if dead_until.is_none() {
            tracing::warn!(origin = %target.base, failure, "origin failed, taken out");
        }
        *dead_until = Some(Instant::now() + self.retry_dead_after);
    }

    /// Sends `method path` with an optional JSON body to an origin. Only a failure to connect
    /// moves on to the next origin: once a request may have reached one, it is not sent again.
    /// Every failure takes the origin out.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        json: Option<Bytes>,
        request_id: &str,
    ) -> Result<Answer, ForwardError> {
        self.send_with_headers(method, path, json, &[], request_id)
            .await
    }

    /// [`Origins::send`] with `headers` added to the request (a payment webhook's signature).
    pub async fn send_with_headers(
        &self,
        method: Method,
        path: &str,
        json: Option<Bytes>,
        headers: &[(HeaderName, HeaderValue)],
        request_id: &str,
    ) -> Result<Answer, ForwardError> {
        let mut last = String::from("no origin configured");
        for target in self.order() {
            let uri: Uri =
                format!("{}{path}", target.base)
                    .parse()
                    .map_err(|e| ForwardError::Broken {
                        origin: target.base.clone(),
                        message: format!("bad uri: {e}"),
                    })?;
            let mut req = Request::builder().method(method.clone()).uri(uri);
            if let Ok(id) = HeaderValue::from_str(request_id) {
                req = req.header("x-request-id", id);
            }
            if json.is_some() {
                req = req.header(header::CONTENT_TYPE, "application/json");
            }
            for (name, value) in headers {
                req = req.header(name, value);
            }
            let req = req
                .body(Full::new(json.clone().unwrap_or_default()))
                .map_err(|e| ForwardError::Broken {
                    origin: target.base.clone(),
                    message: e.to_string(),
                })?;
            match self.exchange(target, req).await {
                Ok(answer) => {
                    self.mark_live(target);
                    return Ok(answer);
                }
                Err(Failure::Connect(message)) => {
                    self.mark_dead(target, "connect");
                    last = format!("{}: {message}", target.base);
                }
                Err(Failure::After(error)) => {
                    let failure = match error {
                        ForwardError::Timeout { .. } => "timeout",
                        _ => "transport",
                    };
                    self.mark_dead(target, failure);
                    return Err(error);
                }
            }
        }
        Err(ForwardError::Unreachable(last))
    }

    /// One request to one origin, its answer read whole, all within the timeout.
    async fn exchange(
        &self,
        target: &Target,
        req: Request<Full<Bytes>>,
    ) -> Result<Answer, Failure> {
        let timed_out = || {
            Failure::After(ForwardError::Timeout {
                origin: target.base.clone(),
                timeout: self.timeout,
            })
        };
        let broken = |message: String| {
            Failure::After(ForwardError::Broken {
                origin: target.base.clone(),
                message,
            })
        };
        let deadline = Instant::now() + self.timeout;
        let resp = match tokio::time::timeout_at(deadline, self.client.request(req)).await {
            Err(_) => return Err(timed_out()),
            Ok(Err(e)) if e.is_connect() => return Err(Failure::Connect(e.to_string())),
            Ok(Err(e)) => return Err(broken(e.to_string())),
            Ok(Ok(resp)) => resp,
        };
        let (parts, body) = resp.into_parts();
        let limited = http_body_util::Limited::new(body, MAX_ANSWER_BYTES);
        let body = match tokio::time::timeout_at(deadline, limited.collect()).await {
            Err(_) => return Err(timed_out()),
            Ok(Err(e)) => return Err(broken(format!("reading the answer: {e}"))),
            Ok(Ok(collected)) => collected.to_bytes(),
        };
        let mut headers = parts.headers;
        strip_hop_by_hop(&mut headers);
        Ok(Answer {
            status: parts.status,
            headers,
            body,
        })
    }
}

/// How one exchange failed: before the request left (the next origin may be tried), or after it
/// may have reached the origin (it is not sent again).
enum Failure {
    Connect(String),
    After(ForwardError),
}

/// Removes the hop-by-hop headers (RFC 9110 §7.6.1) and every header `Connection` names.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<String> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|name| name.trim().to_ascii_lowercase())
        .filter(|name| !name.is_empty())
        .collect();
    for name in named {
        headers.remove(name.as_str());
    }
    for name in [
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    ] {
        headers.remove(name);
    }
}

#[cfg(test)]
mod tests;
