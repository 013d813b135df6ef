//! `http-bench`: the closed-loop client (`flash_tests::load::closed_loop`) from the command line,
//! for side-by-side measurements. Prints one JSON object: requests per second, answers by status,
//! latency percentiles in µs.
#![forbid(unsafe_code)]

use std::time::Duration;

use clap::Parser;
use flash_tests::load::closed_loop::{self, ClosedLoop};

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
    let spec = ClosedLoop {
        url: args.url,
        method: args.method,
        body: args.body,
        headers: args
            .headers
            .iter()
            .filter_map(|h| h.split_once(':'))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect(),
        concurrency: args.concurrency,
        duration: Duration::from_secs_f64(args.seconds),
    };
    let report = closed_loop::run(&spec).await?;
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}
