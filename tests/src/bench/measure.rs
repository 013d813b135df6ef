//! The buy loop of the live phase: `concurrency` workers take prepared buyers from one queue and
//! buy through nginx (each buyer from its own address), as fast as answers come, until the queue
//! is empty. Records answers by status, latency percentiles, and when the last unit was sold.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
};

use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use serde::Serialize;
use tokio::time::Instant;

use super::world::Buyer;

#[derive(Debug, Clone, Serialize)]
pub struct BuyLoop {
    pub attempts: u64,
    pub statuses: BTreeMap<u16, u64>,
    /// Seconds from the start to the last `200`.
    pub selling_seconds: f64,
    /// Attempts answered while units were still being sold (before the last `200`).
    pub attempts_while_selling: u64,
    pub seconds: f64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
}

impl BuyLoop {
    /// Buy attempts per second while stock lasted.
    pub fn live_rps(&self) -> f64 {
        if self.selling_seconds > 0.0 {
            self.attempts_while_selling as f64 / self.selling_seconds
        } else {
            0.0
        }
    }
}

/// Buys with every buyer of `buyers` against `base/api/sales/{sale}/buy`.
pub async fn buy_all(
    base: &str,
    sale: i64,
    buyers: Vec<Buyer>,
    concurrency: usize,
) -> anyhow::Result<BuyLoop> {
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(concurrency)
        .build_http();
    let uri: hyper::Uri = format!("{base}/api/sales/{sale}/buy").parse()?;
    let total = buyers.len();
    let queue = Arc::new(Mutex::new(buyers));
    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (client, uri, queue) = (client.clone(), uri.clone(), queue.clone());
        workers.spawn(async move {
            let mut hist = Histogram::<u64>::new(3)?;
            let mut answers: Vec<(f64, u16)> = Vec::new();
            loop {
                let next = queue
                    .lock()
                    .ok()
                    .and_then(|mut q| q.pop().map(|b| (b, q.len())));
                let Some((buyer, left)) = next else { break };
                let ip = format!("172.16.{}.{}", (left >> 8) & 0xff, left & 0xff);
                let req = hyper::Request::post(uri.clone())
                    .header("content-type", "application/json")
                    .header("authorization", format!("Bearer {}", buyer.jwt))
                    .header("x-forwarded-for", ip)
                    .body(Full::new(Bytes::from(format!(
                        "{{\"pass_token\":\"{}\"}}",
                        buyer.pass
                    ))))?;
                let sent = Instant::now();
                let resp = client.request(req).await?;
                let status = resp.status().as_u16();
                resp.into_body().collect().await?;
                hist.record(u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX))?;
                answers.push((started.elapsed().as_secs_f64(), status));
            }
            anyhow::Ok((hist, answers))
        });
    }
    let mut hist = Histogram::<u64>::new(3)?;
    let mut answers = Vec::with_capacity(total);
    for result in workers.join_all().await {
        let (h, a) = result?;
        hist.add(h)?;
        answers.extend(a);
    }
    let seconds = started.elapsed().as_secs_f64();
    let selling_seconds = answers
        .iter()
        .filter(|(_, s)| *s == 200)
        .map(|(t, _)| *t)
        .fold(0.0, f64::max);
    let mut statuses = BTreeMap::new();
    for (_, s) in &answers {
        *statuses.entry(*s).or_default() += 1;
    }
    Ok(BuyLoop {
        attempts: answers.len() as u64,
        attempts_while_selling: answers
            .iter()
            .filter(|(t, _)| *t <= selling_seconds)
            .count() as u64,
        statuses,
        selling_seconds,
        seconds,
        p50_us: hist.value_at_quantile(0.5),
        p99_us: hist.value_at_quantile(0.99),
        p999_us: hist.value_at_quantile(0.999),
    })
}
