//! Command line of the `edge` binary: loads config (exit 64 when it is bad, naming every bad
//! field, or on bad usage: `service::process`, shared with the origin), sets up tracing
//! (`EDGE_LOG`), binds, and serves until SIGTERM or SIGINT. SIGHUP reloads the config.

use std::{path::PathBuf, process::ExitCode};

use clap::Parser;
use service::process;

use crate::config::Config;

#[derive(Debug, Parser)]
#[command(name = "edge", version, about = "Flash-sale edge gateway")]
struct Cli {
    /// Config file (TOML); see deploy/edge.toml for every field.
    #[arg(long, env = "EDGE_CONFIG", default_value = "deploy/edge.toml")]
    config: PathBuf,
}

/// Entry point of `edge` (and of the test build of it).
pub fn main() -> ExitCode {
    let (cli, config) =
        match process::start::<Cli, Config>("edge", "EDGE_LOG", |cli| cli.config.clone()) {
            Ok(started) => started,
            Err(code) => return code,
        };
    config.warn_weak_secrets();
    process::block_on("edge", ExitCode::FAILURE, async move {
        serve(config, cli.config).await.map(|()| ExitCode::SUCCESS)
    })
}

async fn serve(config: Config, path: PathBuf) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(config.http.listen)
        .await
        .map_err(|e| anyhow::anyhow!("bind {}: {e}", config.http.listen))?;
    let admin = tokio::net::TcpListener::bind(config.admin.listen)
        .await
        .map_err(|e| anyhow::anyhow!("bind admin {}: {e}", config.admin.listen))?;
    let state = crate::server::connect(config, Some(path)).await?;
    crate::server::run(listener, admin, state, process::shutdown_signal()).await
}
