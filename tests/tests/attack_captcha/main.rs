//! The review's attacks on the captcha (issue 10), sent again against a real edge in front of a
//! real origin, Redis and PostgreSQL: the image pool cannot be read ahead (finding 2, `image_pool`),
//! one client cannot raise the captcha level for everyone (finding 3, the edge's half, `level`), and
//! no pass is had before a sale's start or kept past a rise of the level (finding 5, `passes`). Each
//! would fail if its hole came back. One test binary.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "integration tests: a failed unwrap is a failed test, with its message"
)]

mod image_pool;
mod level;
mod passes;

use std::time::Duration;

use edge::captcha::{handle::ImageRef, pow::PowSigner};
use flash_tests::{
    edge_process::{EdgeOptions, EdgeProcess, CAPTCHA_SECRET},
    front,
    front::EdgeStack,
    shopper::{self, now_unix},
    stack::Stack,
    wait,
};
use futures_util::future::join_all;
use serde_json::{json, Value};
use time::{format_description::well_known::Rfc3339, OffsetDateTime};

struct World {
    stack: Stack,
    edge: EdgeProcess,
    http: reqwest::Client,
}

impl World {
    async fn start(options: EdgeOptions) -> Self {
        let EdgeStack { stack, edge } = front!().edge(options).start_edge().await.unwrap();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(64)
            .build()
            .unwrap();
        Self { stack, edge, http }
    }

    /// A sale of `stock` units starting `starts_in` from now.
    async fn sale(&self, stock: i64, starts_in: Duration) -> i64 {
        let starts_at = (OffsetDateTime::now_utc() + starts_in)
            .format(&Rfc3339)
            .unwrap();
        let (status, body) = self
            .stack
            .post(
                "/v1/sales",
                &json!({"name": "Captcha sneakers", "stock": stock, "starts_at": starts_at}),
            )
            .await
            .unwrap();
        assert_eq!(status, 201, "{body}");
        body["id"].as_i64().unwrap()
    }

    /// `GET /api/captcha?sale=` as `jwt` from `ip`: (status, headers, body).
    async fn challenge(
        &self,
        jwt: &str,
        sale: i64,
        ip: &str,
    ) -> (u16, reqwest::header::HeaderMap, Value) {
        let resp = self
            .http
            .get(format!("{}/api/captcha?sale={sale}", self.edge.url()))
            .bearer_auth(jwt)
            .header("x-forwarded-for", ip)
            .send()
            .await
            .unwrap();
        let (status, headers) = (resp.status().as_u16(), resp.headers().clone());
        (status, headers, resp.json().await.unwrap_or(Value::Null))
    }

    /// GET `path` on the edge, with `jwt` if given: (status, content type).
    async fn fetch(&self, path: &str, jwt: Option<&str>) -> (u16, String) {
        let mut req = self.http.get(format!("{}{path}", self.edge.url()));
        if let Some(jwt) = jwt {
            req = req.bearer_auth(jwt);
        }
        let resp = req.send().await.unwrap();
        let kind = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        (resp.status().as_u16(), kind)
    }

    /// `POST /api/sales/{sale}/buy` with `pass`: (status, body).
    async fn buy(&self, jwt: &str, sale: i64, pass: &str) -> (u16, Value) {
        let resp = self
            .http
            .post(format!("{}/api/sales/{sale}/buy", self.edge.url()))
            .bearer_auth(jwt)
            .json(&json!({"pass_token": pass}))
            .send()
            .await
            .unwrap();
        (
            resp.status().as_u16(),
            resp.json().await.unwrap_or(Value::Null),
        )
    }

    async fn pass(&self, jwt: &str, sale: i64, ip: &str) -> anyhow::Result<String> {
        shopper::pass_token(&self.http, &self.edge.url(), jwt, sale, Some(ip)).await
    }
}

/// `n` challenge requests at once, as `jwts` in turn from `ips` in turn: the statuses, and the
/// levels the served challenges named.
async fn flood(
    world: &World,
    sale: i64,
    jwts: &[String],
    ips: &[String],
    n: usize,
) -> (Vec<u16>, Vec<u64>) {
    let answers =
        join_all((0..n).map(|i| world.challenge(&jwts[i % jwts.len()], sale, &ips[i % ips.len()])))
            .await;
    let mut levels = Vec::new();
    let mut statuses = Vec::new();
    for (status, headers, body) in answers {
        if status == 429 {
            assert_eq!(body["error"], "rate_limited", "{body}");
            assert!(
                headers.contains_key("retry-after") && headers.contains_key("ratelimit-limit"),
                "{headers:?}"
            );
        }
        if status == 200 {
            levels.push(body["level"].as_u64().unwrap());
        }
        statuses.push(status);
    }
    (statuses, levels)
}
