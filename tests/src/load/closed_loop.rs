//! A closed-loop HTTP/1 client for side-by-side measurements: `concurrency` workers each keep one
//! keep-alive connection and send the next request as soon as the last one is answered, for a
//! fixed time. `{n}` in the body becomes a number unique to the request (distinct uids) and
//! `{ip}` in a header value an IPv4 address unique to the request (a crowd of clients behind a
//! trusted proxy, `X-Forwarded-For`). The result: requests per second, answers by status, latency
//! percentiles in µs.

use std::{collections::BTreeMap, time::Duration};

use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use serde::Serialize;
use tokio::time::Instant;

/// One measurement to make.
#[derive(Debug, Clone)]
pub struct ClosedLoop {
    pub url: String,
    pub method: String,
    pub body: String,
    pub headers: Vec<(String, String)>,
    pub concurrency: usize,
    pub duration: Duration,
}

/// What it measured.
#[derive(Debug, Clone, Serialize)]
pub struct LoopReport {
    pub url: String,
    pub requests: u64,
    pub seconds: f64,
    pub rps: f64,
    pub statuses: BTreeMap<u16, u64>,
    pub p50_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
}

/// An address of 10.0.0.0/8 for request `n` of worker `w`, distinct for up to 2^24 requests.
fn unique_ip(w: usize, n: u64) -> String {
    let x = (n.wrapping_mul(64) + w as u64) & 0x00ff_ffff;
    format!("10.{}.{}.{}", x >> 16, (x >> 8) & 0xff, x & 0xff)
}

/// Runs the loop and measures it.
pub async fn run(spec: &ClosedLoop) -> anyhow::Result<LoopReport> {
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(spec.concurrency)
        .build_http();
    let uri: hyper::Uri = spec.url.parse()?;
    let method: hyper::Method = spec.method.parse()?;
    let until = Instant::now() + spec.duration;
    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for w in 0..spec.concurrency {
        let (client, uri, method) = (client.clone(), uri.clone(), method.clone());
        let (body, headers) = (spec.body.clone(), spec.headers.clone());
        workers.spawn(async move {
            let mut hist = Histogram::<u64>::new(3)?;
            let mut statuses = BTreeMap::<u16, u64>::new();
            let mut n = 0u64;
            while Instant::now() < until {
                let payload = body.replace("{n}", &format!("{w}-{n}"));
                n += 1;
                let mut req = hyper::Request::builder()
                    .method(method.clone())
                    .uri(uri.clone());
                if !payload.is_empty() {
                    req = req.header("content-type", "application/json");
                }
                for (k, v) in &headers {
                    req = req.header(k, v.replace("{ip}", &unique_ip(w, n)));
                }
                let req = req.body(Full::new(Bytes::from(payload)))?;
                let sent = Instant::now();
                let resp = client.request(req).await?;
                let status = resp.status().as_u16();
                resp.into_body().collect().await?;
                hist.record(u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX))?;
                *statuses.entry(status).or_default() += 1;
            }
            anyhow::Ok((hist, statuses))
        });
    }
    let mut hist = Histogram::<u64>::new(3)?;
    let mut statuses = BTreeMap::<u16, u64>::new();
    for result in workers.join_all().await {
        let (h, s) = result?;
        hist.add(h)?;
        for (k, v) in s {
            *statuses.entry(k).or_default() += v;
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let requests: u64 = statuses.values().sum();
    Ok(LoopReport {
        url: spec.url.clone(),
        requests,
        seconds,
        rps: requests as f64 / seconds,
        statuses,
        p50_us: hist.value_at_quantile(0.5),
        p99_us: hist.value_at_quantile(0.99),
        p999_us: hist.value_at_quantile(0.999),
    })
}
