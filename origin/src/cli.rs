//! Command line of the `origin` binary: `serve` (the service), `migrate` (schema only) and
//! `reconcile` (the books of one sale). Bad config exits 64 (EX_USAGE) with a message naming
//! every bad field.

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};
use tokio::net::TcpListener;

use crate::{
    config::Config, database::Database, holds::Holds, metrics::Metrics, reconcile, server,
};

/// Exit code for bad usage or config (sysexits' EX_USAGE).
const EX_USAGE: u8 = 64;

#[derive(Debug, Parser)]
#[command(
    name = "origin",
    version,
    about = "Flash-sale origin: stock in Redis, orders in PostgreSQL"
)]
struct Cli {
    /// Config file (TOML); see deploy/origin.toml for every field.
    #[arg(
        long,
        env = "ORIGIN_CONFIG",
        default_value = "deploy/origin.toml",
        global = true
    )]
    config: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the API and run the recovery poller until SIGTERM or SIGINT.
    Serve,
    /// Apply the database migrations and exit.
    Migrate,
    /// Compare a sale's Redis stock with its orders; exits 1 when they drift.
    Reconcile {
        /// The sale id.
        #[arg(long)]
        sale: i64,
        /// Print one JSON object instead of a table.
        #[arg(long)]
        json: bool,
        /// Rebuild the Redis stock from PostgreSQL, only when nothing is in flight.
        #[arg(long)]
        repair: bool,
    },
}

/// Entry point shared by `origin` and the test build with crash points.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    let config = match Config::load(&cli.config) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("origin: {e}");
            return ExitCode::from(EX_USAGE);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("origin: tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Serve => serve(config).await,
            Command::Migrate => Ok(Database::migrate(&config.postgres.url).await?),
            Command::Reconcile { sale, json, repair } => {
                return reconcile_command(config, sale, json, repair).await;
            }
        }
        .map(|()| ExitCode::SUCCESS)
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "origin failed");
            eprintln!("origin: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("ORIGIN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let listener = TcpListener::bind(config.http.listen)
        .await
        .map_err(|e| anyhow::anyhow!("bind {}: {e}", config.http.listen))?;
    server::run(listener, config, shutdown_signal()).await
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

async fn reconcile_command(
    config: Config,
    sale: i64,
    json: bool,
    repair: bool,
) -> anyhow::Result<ExitCode> {
    let (redis, db) = server::connect(&config).await?;
    let holds = Holds::new(
        db.clone(),
        redis.clone(),
        config.holds.clone(),
        Metrics::default(),
    );
    if repair {
        match reconcile::repair(&redis, &db, &holds, sale).await? {
            reconcile::Repair::Repaired { from, to } => {
                let from = from.map_or_else(|| "missing".into(), |n: i64| n.to_string());
                eprintln!("origin: repaired sale {sale}: Redis stock {from} -> {to}");
            }
            reconcile::Repair::InFlight(n) => {
                eprintln!("origin: not repaired: {n} transactions in flight; run again once recovery has completed them");
            }
        }
    }
    let report = reconcile::report(&redis, &db, &holds, sale).await?;
    if json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!("{}", report.human());
    }
    Ok(if report.drift == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
