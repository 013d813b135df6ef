//! Command line of the `origin` binary: `serve` (the service), `migrate` (schema only) and
//! `reconcile` (the books of one sale). Without `--config`, every command reads the config the
//! service started by `./deploy/up` reads (see [`config_path`]). Exit codes: 0 done, 1 drift
//! (`reconcile`), 2 failure (a store unreachable, an unknown sale), 64 (EX_USAGE) bad usage or
//! bad config, with a message naming every bad field (`service::process`, shared with the edge).

use std::{
    path::{Path, PathBuf},
    process::ExitCode,
};

use clap::{Parser, Subcommand};
use service::process;
use tokio::net::TcpListener;

use crate::{
    activity::Activity, config::Config, database::Database, holds::Holds, metrics::Metrics,
    reconcile, server,
};

/// Exit code of `reconcile` when the books do not balance.
const EXIT_DRIFT: u8 = 1;
/// Exit code when a command fails (distinct from a drift: the books were not read).
const EXIT_FAILED: u8 = 2;

/// The config `./deploy/up` renders (ports filled in) and starts the service with.
const DEPLOYED_CONFIG: &str = "state/origin.toml";
/// The shipped config, every field documented.
const SHIPPED_CONFIG: &str = "deploy/origin.toml";

#[derive(Debug, Parser)]
#[command(
    name = "origin",
    version,
    about = "Flash-sale origin: stock in Redis, orders in PostgreSQL"
)]
struct Cli {
    /// Config file (TOML); see deploy/origin.toml for every field. Default: state/origin.toml
    /// when it exists (the one ./deploy/up runs the service with), else deploy/origin.toml.
    #[arg(long, env = "ORIGIN_CONFIG", global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the API and run the recovery poller until SIGTERM or SIGINT.
    Serve,
    /// Apply the database migrations and exit.
    Migrate,
    /// Compare a sale's Redis stock with its orders; exits 1 when they drift, 2 on failure.
    Reconcile {
        /// The sale id.
        #[arg(long)]
        sale: i64,
        /// Print one JSON object instead of a table.
        #[arg(long)]
        json: bool,
        /// Rebuild the Redis stock from PostgreSQL, only when nothing is in flight and nothing
        /// moves in Redis meanwhile.
        #[arg(long)]
        repair: bool,
    },
}

/// Entry point shared by `origin` and the test build with crash points.
pub fn main() -> ExitCode {
    let (cli, config) = match process::start::<Cli, Config>("origin", "ORIGIN_LOG", |cli| {
        config_path(cli.config.clone(), |p| p.is_file())
    }) {
        Ok(started) => started,
        Err(code) => return code,
    };
    process::block_on("origin", ExitCode::from(EXIT_FAILED), async move {
        match cli.command {
            Command::Serve => serve(config).await,
            Command::Migrate => Ok(Database::migrate(&config.postgres.url).await?),
            Command::Reconcile { sale, json, repair } => {
                return reconcile_command(config, sale, json, repair).await;
            }
        }
        .map(|()| ExitCode::SUCCESS)
    })
}

/// The config file: `--config` or `ORIGIN_CONFIG` when given, else [`DEPLOYED_CONFIG`] when it
/// exists, else [`SHIPPED_CONFIG`] (both relative to the working directory, the checkout).
fn config_path(given: Option<PathBuf>, exists: impl Fn(&Path) -> bool) -> PathBuf {
    given.unwrap_or_else(|| {
        let deployed = PathBuf::from(DEPLOYED_CONFIG);
        if exists(&deployed) {
            deployed
        } else {
            PathBuf::from(SHIPPED_CONFIG)
        }
    })
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let listener = TcpListener::bind(config.http.listen)
        .await
        .map_err(|e| anyhow::anyhow!("bind {}: {e}", config.http.listen))?;
    server::run(listener, config, process::shutdown_signal()).await
}

async fn reconcile_command(
    config: Config,
    sale: i64,
    json: bool,
    repair: bool,
) -> anyhow::Result<ExitCode> {
    let (redis, db) = server::connect(&config).await?;
    let metrics = Metrics::default();
    let holds = Holds::new(
        db.clone(),
        redis.clone(),
        config.holds.clone(),
        metrics.clone(),
        Activity::new(redis.clone(), metrics),
    );
    let balanced = || async {
        Ok::<_, anyhow::Error>(reconcile::report(&redis, &db, &holds, sale).await?.drift == 0)
    };
    if repair && balanced().await? {
        // The origins heal what Redis loses by themselves: a repair is for what they could not.
        eprintln!("origin: nothing to repair: the books of sale {sale} balance");
    } else if repair {
        // A refused repair changes nothing; the exit code is the report's, below.
        match reconcile::repair(&redis, &db, sale).await? {
            reconcile::Repair::Repaired { from, to } => {
                let from = from.map_or_else(|| "missing".into(), |n: i64| n.to_string());
                eprintln!("origin: repaired sale {sale}: Redis stock {from} -> {to}");
            }
            reconcile::Repair::InFlight(n) => {
                eprintln!("origin: not repaired: {n} transactions in flight; run again once recovery has completed them");
            }
            reconcile::Repair::Returning(n) => {
                eprintln!("origin: not repaired: {n} units of cancelled holds on their way back; run again once recovery has returned them");
            }
            reconcile::Repair::Moved => {
                eprintln!("origin: not repaired: the Redis stock moved while PostgreSQL was read (a purchase or a return completed); run again");
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
        ExitCode::from(EXIT_DRIFT)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_is_the_one_given_else_the_deployed_one_else_the_shipped_one() {
        let check = |given: Option<&str>, deployed_exists: bool, expected: &str| {
            let got = config_path(given.map(PathBuf::from), |p| {
                deployed_exists && p == Path::new(DEPLOYED_CONFIG)
            });
            assert_eq!(got, PathBuf::from(expected), "{given:?} {deployed_exists}");
        };
        check(Some("/etc/o.toml"), true, "/etc/o.toml");
        check(Some("/etc/o.toml"), false, "/etc/o.toml");
        check(None, true, "state/origin.toml");
        check(None, false, "deploy/origin.toml");
    }

    #[test]
    fn usage_errors_exit_64_and_help_exits_0() {
        let check = |args: &[&str], usage_error: bool| {
            let e = Cli::try_parse_from(args).map(|_| ()).unwrap_err();
            assert_eq!(e.use_stderr(), usage_error, "{args:?}: {e}");
        };
        check(&["origin", "reconcile"], true);
        check(&["origin", "reconcile", "--sale", "x"], true);
        check(&["origin", "--help"], false);
    }
}
