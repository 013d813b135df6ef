//! nginx in front of the edge, as `./deploy/up` runs it, with real Redis, PostgreSQL, origin and
//! edge behind it: the rendered template passes `nginx -t`; static files get their cache headers
//! and gzip; every answer carries the security headers; the origin's API is never routed (I6);
//! the API reaches the edge; per-IP limits answer 429 in JSON, keyed on the real client (trusted
//! `X-Forwarded-For` only); bodies over the limit get 413; the edge down gives a JSON 503; and
//! the micro-cache turns 200 concurrent status requests into a handful for the edge, with the
//! requests per second of the status JSON through nginx and from the edge alone printed; a
//! sold-out crowd is answered from the cache with every security header and logged one in 16; a
//! unit given back re-opens the sale through the cache within about a second. One test binary:
//! `static_files`, `api`, `micro_cache`, `sold_out`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "integration tests: a failed unwrap is a failed test, with its message"
)]

mod api;
mod micro_cache;
mod sold_out;
mod static_files;

use std::{
    collections::BTreeMap,
    net::{IpAddr, Ipv4Addr},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use flash_tests::{
    edge_process::EdgeProcess,
    front,
    front::Front,
    net,
    nginx_server::{self, NginxServer},
    stack::Stack,
    wait,
};
use serde_json::{json, Value};
use tempfile::TempDir;
use tokio::time::Instant;

/// The Content-Security-Policy the sale page needs, and nothing more.
const CSP: &str = "default-src 'none'; script-src 'self'; worker-src 'self'; style-src 'self'; \
                   img-src 'self' blob:; media-src 'self' blob:; connect-src 'self'; base-uri 'none'; \
                   form-action 'self'; frame-ancestors 'none'";
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// A static folder with a script big enough for gzip, a module in a subfolder (as the page's
/// `static/sale/`), a dot file, and nothing else.
fn static_folder() -> TempDir {
    let dir = tempfile::Builder::new()
        .prefix("flash-static-")
        .tempdir()
        .unwrap();
    let script: String = (0..200)
        .map(|i| format!("export function tick{i}(state) {{ return state.remaining - {i}; }}\n"))
        .collect();
    std::fs::write(dir.path().join("sale.js"), script).unwrap();
    std::fs::create_dir(dir.path().join("sale")).unwrap();
    std::fs::write(dir.path().join("sale/main.js"), "export const v = 1;\n").unwrap();
    std::fs::write(dir.path().join(".keep"), "").unwrap();
    dir
}

/// nginx → edge → origin → Redis and PostgreSQL.
struct World {
    stack: Stack,
    edge: EdgeProcess,
    nginx: NginxServer,
    _static: TempDir,
}

impl World {
    async fn start() -> Self {
        let static_dir = static_folder();
        let Front { stack, edge, nginx } = front!().start(static_dir.path()).await.unwrap();
        Self {
            stack,
            edge,
            nginx,
            _static: static_dir,
        }
    }

    fn http(&self) -> &reqwest::Client {
        &self.stack.http
    }

    /// `edge_requests_total{route="status"}`, all outcomes.
    async fn edge_status_requests(&self) -> u64 {
        self.edge.requests(self.http(), "status").await.unwrap()
    }
}

fn header<'a>(resp: &'a reqwest::Response, name: &str) -> &'a str {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// The security headers every answer of nginx carries, errors included.
fn assert_security_headers(resp: &reqwest::Response, what: &str) {
    assert_eq!(header(resp, "content-security-policy"), CSP, "{what}");
    assert_eq!(header(resp, "x-content-type-options"), "nosniff", "{what}");
    assert_eq!(header(resp, "x-frame-options"), "DENY", "{what}");
    assert_eq!(header(resp, "referrer-policy"), "same-origin", "{what}");
    assert!(!header(resp, "x-request-id").is_empty(), "{what}");
}

/// Status and JSON body of a request; panics when the body is not JSON.
async fn json_answer(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {status} {text}"));
    (status, body)
}

/// A distinct client address for request `n`, in 10.0.0.0/8.
fn client_ip(n: u64) -> String {
    format!("10.{}.{}.{}", (n >> 16) & 255, (n >> 8) & 255, n & 255)
}
