//! The launcher behind `./deploy/up` and `./deploy/down`: the whole stack on loopback, every
//! process kept running in a state folder by the server types of this crate.
#![forbid(unsafe_code)]

mod configs;
mod demo;
mod down;
mod dtm;
mod lock;
mod say;
mod settings;
mod summary;
mod up;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    about = "Starts and stops the flash-sale stack (settings: environment variables, see README.md)"
)]
struct Cli {
    /// The repository (deploy/, nginx/, static/).
    #[arg(long)]
    root: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Starts what does not run yet, creates the demo sale, prints every URL.
    Up,
    /// Stops what `up` started, by pid.
    Down {
        /// Also deletes the state folder.
        #[arg(long)]
        purge: bool,
    },
    /// Renders the nginx config as `up` does and checks it with `nginx -t`.
    NginxCheck,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let (script, result) = match cli.command {
        Command::Up => ("deploy/up", up::run(cli.root).await),
        Command::Down { purge } => ("deploy/down", down::run(cli.root, purge).await),
        Command::NginxCheck => ("deploy/test", up::nginx_check(cli.root).await),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("{script}: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
