//! The edge's memory after a million distinct clients: each passes the IP limiter, which keys
//! them, and the identity check, so both hold an entry per client while the pass token is refused.

use anyhow::Context;
use serde_json::{json, Value};
use tokio::time::Instant;

use super::{phases::CONCURRENCY, system, world::World};
use crate::{edge_process::USER_JWT_SECRET, redis_under_test::RedisUnderTest};

/// The edge's memory after `clients` requests from distinct IPs and uids (each passes the IP
/// limiter, which keys them, and the identity check; the pass token is refused).
pub async fn memory<R: RedisUnderTest>(world: &World<R>, clients: usize) -> anyhow::Result<Value> {
    let sale = world.create_sale(1_000_000).await?;
    let edge = &world.edges[0];
    let pid = edge.pid().context("edge pid")?;
    let (rss_before, _) = system::rss_mb(pid);
    let url = format!("{}/api/sales/{sale}/buy", edge.url());
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    let per = clients / CONCURRENCY;
    for w in 0..CONCURRENCY {
        let url = url.clone();
        let identity = edge::config::IdentityConfig {
            keys: Some(edge::config::Keys::hs256(USER_JWT_SECRET)),
            ..edge::config::IdentityConfig::default()
        };
        tasks.spawn(async move {
            let client: hyper_util::client::legacy::Client<
                _,
                http_body_util::Full<hyper::body::Bytes>,
            > = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http();
            let uri: hyper::Uri = url.parse()?;
            let now = super::world::now_unix();
            for i in 0..per {
                let n = w * per + i;
                let jwt = edge::identity::mint_dev_token(&identity, &format!("m{n}"), 3600, now)?;
                let ip = format!("10.{}.{}.{}", (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff);
                let ip = if n >> 24 == 0 {
                    ip
                } else {
                    format!("2001:db8::{n:x}")
                };
                let req = hyper::Request::post(uri.clone())
                    .header("content-type", "application/json")
                    .header("authorization", format!("Bearer {jwt}"))
                    .header("x-forwarded-for", ip)
                    .body(http_body_util::Full::new(hyper::body::Bytes::from_static(
                        b"{\"pass_token\":\"x\"}",
                    )))?;
                let resp = client.request(req).await?;
                http_body_util::BodyExt::collect(resp.into_body()).await?;
            }
            anyhow::Ok(())
        });
    }
    for done in tasks.join_all().await {
        done?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let (rss_after, peak) = system::rss_mb(pid);
    let origin_pid = world.stack.origin.pid().context("origin pid")?;
    let (origin_rss, origin_peak) = system::rss_mb(origin_pid);
    let edge_peaks: Vec<f64> = world
        .edges
        .iter()
        .filter_map(|e| e.pid())
        .map(|p| system::rss_mb(p).1)
        .collect();
    Ok(json!({
        "phase": "memory",
        "clients": per * CONCURRENCY,
        "seconds": elapsed,
        "edge_rss_mb_before": rss_before,
        "edge_rss_mb_after": rss_after,
        "edge_peak_rss_mb": peak,
        "edge_peak_rss_mb_all": edge_peaks,
        "origin_rss_mb": origin_rss,
        "origin_peak_rss_mb": origin_peak,
    }))
}
