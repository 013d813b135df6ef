//! `http-bench`: a closed-loop HTTP/1 client for side-by-side measurements. `--concurrency`
//! workers each keep one keep-alive connection and send the next request as soon as the last one
//! is answered, for `--seconds`. `{n}` in the body becomes a number unique to the request (for
//! distinct uids). Prints one JSON object: requests per second, answers by status, latency
//! percentiles in µs.
#![forbid(unsafe_code)]

use std::{collections::BTreeMap, time::Duration};

use clap::Parser;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use tokio::time::Instant;

#[derive(Debug, Parser)]
struct Args {
    /// The URL to request.
    #[arg(long)]
    url: String,
    /// GET or POST.
    #[arg(long, default_value = "POST")]
    method: String,
    /// Request body (JSON); `{n}` is replaced by a number unique to the request.
    #[arg(long, default_value = "")]
    body: String,
    /// Extra header `name: value`, repeatable.
    #[arg(long = "header")]
    headers: Vec<String>,
    /// Concurrent connections, each in a closed loop.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// How long to run.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(args.concurrency)
        .build_http();
    let uri: hyper::Uri = args.url.parse()?;
    let method: hyper::Method = args.method.parse()?;
    let headers: Vec<(String, String)> = args
        .headers
        .iter()
        .filter_map(|h| h.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let until = Instant::now() + Duration::from_secs_f64(args.seconds);
    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for w in 0..args.concurrency {
        let (client, uri, method) = (client.clone(), uri.clone(), method.clone());
        let (body, headers) = (args.body.clone(), headers.clone());
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
                    req = req.header(k, v);
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
    let elapsed = started.elapsed().as_secs_f64();
    let total: u64 = statuses.values().sum();
    let report = serde_json::json!({
        "url": args.url,
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
