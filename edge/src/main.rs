//! The `edge` binary: loads config, sets up tracing, binds and serves until SIGTERM/SIGINT.
#![forbid(unsafe_code)]

use std::{path::PathBuf, process::ExitCode};

use clap::Parser;

#[derive(Debug, Parser)]
#[command(name = "edge", version, about = "Flash-sale edge gateway")]
struct Cli {
    /// Config file (TOML); see deploy/edge.toml.
    #[arg(long, env = "EDGE_CONFIG", default_value = "deploy/edge.toml")]
    config: PathBuf,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("EDGE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let config = match edge::config::Config::load(&cli.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("edge: config {e}");
            return ExitCode::from(64);
        }
    };
    let listener = match tokio::net::TcpListener::bind(config.http.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("edge: bind {}: {e}", config.http.listen);
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(addr = %config.http.listen, "edge listening");
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    match axum::serve(listener, edge::router())
        .with_graceful_shutdown(shutdown)
        .await
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("edge: {e}");
            ExitCode::FAILURE
        }
    }
}
