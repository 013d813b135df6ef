//! Forwarding to the origins: one pooled keep-alive HTTP/1 client, round robin over the origins,
//! an origin that cannot be reached taken out for `retry_dead_after_ms` and tried again after,
//! a deadline on every request (never a hang), request ids passed on, and hop-by-hop headers
//! stripped from what comes back.

use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Mutex,
    },
    time::Duration,
};

use http::{header, HeaderMap, HeaderValue, Method, Request, StatusCode, Uri};
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
    dead_until: Mutex<Option<Instant>>,
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
        connector.set_connect_timeout(Some(Duration::from_millis(config.connect_timeout_ms)));
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
                    base: u.trim_end_matches('/').to_string(),
                    dead_until: Mutex::new(None),
                })
                .collect(),
            next: AtomicUsize::new(0),
            timeout: Duration::from_millis(config.timeout_ms),
            retry_dead_after: Duration::from_millis(config.retry_dead_after_ms),
        }
    }

    /// Origins in the order to try: live ones round robin; the dead ones only when none is live.
    fn order(&self) -> Vec<&Target> {
        let n = self.targets.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        let rotated = (0..n).map(|i| &self.targets[(start + i) % n]);
        let (live, dead): (Vec<_>, Vec<_>) = rotated.partition(|t| {
            t.dead_until
                .lock()
                .map(|d| d.is_none_or(|until| until <= now))
                .unwrap_or(true)
        });
        if live.is_empty() {
            dead
        } else {
            live
        }
    }

    fn mark(&self, target: &Target, dead: bool) {
        if let Ok(mut d) = target.dead_until.lock() {
            let was_dead = d.is_some();
            *d = dead.then(|| Instant::now() + self.retry_dead_after);
            if dead && !was_dead {
                tracing::warn!(origin = %target.base, "origin unreachable, taken out");
            } else if !dead && was_dead {
                tracing::info!(origin = %target.base, "origin back");
            }
        }
    }

    /// Sends `method path` with an optional JSON body to an origin. Only a failure to connect
    /// moves on to the next origin: once a request may have reached one, it is not sent again.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        json: Option<Bytes>,
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
            let req = req
                .body(Full::new(json.clone().unwrap_or_default()))
                .map_err(|e| ForwardError::Broken {
                    origin: target.base.clone(),
                    message: e.to_string(),
                })?;
            let deadline = Instant::now() + self.timeout;
            let resp = match tokio::time::timeout_at(deadline, self.client.request(req)).await {
                Err(_) => {
                    return Err(ForwardError::Timeout {
                        origin: target.base.clone(),
                        timeout: self.timeout,
                    })
                }
                Ok(Err(e)) if e.is_connect() => {
                    self.mark(target, true);
                    last = format!("{}: {e}", target.base);
                    continue;
                }
                Ok(Err(e)) => {
                    return Err(ForwardError::Broken {
                        origin: target.base.clone(),
                        message: e.to_string(),
                    })
                }
                Ok(Ok(resp)) => resp,
            };
            self.mark(target, false);
            let (parts, body) = resp.into_parts();
            let limited = http_body_util::Limited::new(body, MAX_ANSWER_BYTES);
            let body = match tokio::time::timeout_at(deadline, limited.collect()).await {
                Err(_) => {
                    return Err(ForwardError::Timeout {
                        origin: target.base.clone(),
                        timeout: self.timeout,
                    })
                }
                Ok(Err(e)) => {
                    return Err(ForwardError::Broken {
                        origin: target.base.clone(),
                        message: format!("reading the answer: {e}"),
                    })
                }
                Ok(Ok(collected)) => collected.to_bytes(),
            };
            let mut headers = parts.headers;
            strip_hop_by_hop(&mut headers);
            return Ok(Answer {
                status: parts.status,
                headers,
                body,
            });
        }
        Err(ForwardError::Unreachable(last))
    }
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
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_and_those_connection_names_are_stripped() {
        let mut headers = HeaderMap::new();
        for (k, v) in [
            ("connection", "close, x-secret"),
            ("keep-alive", "timeout=5"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "h2c"),
            ("x-secret", "1"),
            ("content-type", "application/json"),
            ("x-request-id", "abc"),
        ] {
            headers.insert(
                http::HeaderName::from_static(k),
                HeaderValue::from_static(v),
            );
        }
        strip_hop_by_hop(&mut headers);
        let mut left: Vec<_> = headers.keys().map(|k| k.as_str()).collect();
        left.sort_unstable();
        assert_eq!(left, ["content-type", "x-request-id"]);
    }

    #[tokio::test]
    async fn unreachable_origins_answer_at_once_and_are_taken_out() {
        // Port 9 on loopback: nothing listens, the connection is refused at once.
        let config = OriginConfig {
            urls: vec!["http://127.0.0.1:9".into(), "http://127.0.0.1:9/".into()],
            ..OriginConfig::default()
        };
        let origins = Origins::new(&config);
        let err = origins
            .send(Method::GET, "/healthz", None, "t-1")
            .await
            .unwrap_err();
        assert!(matches!(err, ForwardError::Unreachable(_)), "{err}");
        assert!(origins
            .targets
            .iter()
            .all(|t| t.dead_until.lock().unwrap().is_some()));
    }
}
