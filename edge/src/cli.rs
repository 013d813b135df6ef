//! Command line of the `edge` binary: loads config (exit 64 when it is bad, naming every bad
//! field), sets up tracing (`EDGE_LOG`), binds, and serves until SIGTERM or SIGINT. SIGHUP
//! reloads the config.

use std::{io::IsTerminal, path::PathBuf, process::ExitCode};

use clap::Parser;

/// Exit code for bad usage or config (sysexits' EX_USAGE).
const EX_USAGE: u8 = 64;

#[derive(Debug, Parser)]
#[command(name = "edge", version, about = "Flash-sale edge gateway")]
struct Cli {
    /// Config file (TOML); see deploy/edge.toml for every field.
    #[arg(long, env = "EDGE_CONFIG", default_value = "deploy/edge.toml")]
    config: PathBuf,
}

/// Entry point of `edge` (and of the test build of it).
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("EDGE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        // Colours for a terminal only: a log file or journal gets plain text.
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let config = match crate::config::Config::load(&cli.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("edge: {e}");
            return ExitCode::from(EX_USAGE);
        }
    };
    config.warn_weak_secrets();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("edge: tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(config, cli.config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "edge failed");
            eprintln!("edge: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: crate::config::Config, path: PathBuf) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(config.http.listen)
        .await
        .map_err(|e| anyhow::anyhow!("bind {}: {e}", config.http.listen))?;
    let admin = tokio::net::TcpListener::bind(config.admin.listen)
        .await
        .map_err(|e| anyhow::anyhow!("bind admin {}: {e}", config.admin.listen))?;
    let state = crate::server::connect(config, Some(path)).await?;
    crate::server::run(listener, admin, state, shutdown_signal()).await
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot listen for signals; stop with SIGKILL");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = int.recv() => tracing::info!("SIGINT: shutting down"),
    }
}
