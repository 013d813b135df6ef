//! `reserve-bench`: a closed-loop client of the origin's reserve endpoint. `--concurrency` workers
//! each keep one keep-alive connection and send the next request as soon as the last one is
//! answered, with distinct uids, for `--seconds`. Prints one JSON object: requests per second,
//! answers by status, latency percentiles (µs).
#![forbid(unsafe_code)]

use std::time::Duration;

use clap::Parser;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use tokio::time::Instant;

#[derive(Debug, Parser)]
struct Args {
    /// Base URL of the origin.
    #[arg(long, default_value = "http://127.0.0.1:8082")]
    url: String,
    /// Sale to reserve in.
    #[arg(long)]
    sale: i64,
    /// Concurrent connections, each in a closed loop.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// How long to run.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Prefix of the uids (uid = prefix-worker-n).
    #[arg(long, default_value = "bench")]
    prefix: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(args.concurrency)
        .build_http();
    let uri: hyper::Uri = format!("{}/v1/sales/{}/reserve", args.url, args.sale).parse()?;
    let until = Instant::now() + Duration::from_secs_f64(args.seconds);
    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for w in 0..args.concurrency {
        let client = client.clone();
        let uri = uri.clone();
        let prefix = args.prefix.clone();
        workers.spawn(async move {
            let mut hist = Histogram::<u64>::new(3)?;
            let mut statuses = std::collections::BTreeMap::<u16, u64>::new();
            let mut n = 0u64;
            while Instant::now() < until {
                let body = format!("{{\"uid\":\"{prefix}-{w}-{n}\"}}");
                n += 1;
                let req = hyper::Request::post(uri.clone())
                    .header("content-type", "application/json")
                    .body(Full::new(Bytes::from(body)))?;
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
    let mut statuses = std::collections::BTreeMap::<u16, u64>::new();
    for result in workers.join_all().await {
        let (h, s) = result?;
        hist.add(h)?;
        for (k, v) in s {
            *statuses.entry(k).or_default() += v;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let total: u64 = statuses.values().sum();
    let report = serde_json::json!({
        "requests": total,
        "seconds": elapsed,
        "rps": total as f64 / elapsed,
        "statuses": statuses,
        "p50_us": hist.value_at_quantile(0.5),
        "p99_us": hist.value_at_quantile(0.99),
        "p999_us": hist.value_at_quantile(0.999),
    });
    println!("{report}");
    Ok(())
}
