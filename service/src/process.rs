//! How both binaries start and stop: the command line (a usage error exits 64, `EX_USAGE`; help
//! and version exit 0), tracing to stderr filtered by `<NAME>_LOG`, the config file (a bad one is
//! printed, naming every bad field, and exits 64), the tokio runtime, and the shutdown signal
//! (SIGTERM or SIGINT).

use std::{future::Future, io::IsTerminal, path::Path, process::ExitCode};

use crate::config::ConfigFile;

/// Exit code for bad usage or config (sysexits' EX_USAGE).
pub const EX_USAGE: u8 = 64;

/// What every binary does first: the command line `C`, tracing (`log_env`), then the config
/// file at `config_path(&cli)`; or the exit code (64 for bad usage or a bad config).
pub fn start<C: clap::Parser, F: ConfigFile>(
    name: &str,
    log_env: &str,
    config_path: impl FnOnce(&C) -> std::path::PathBuf,
) -> Result<(C, F), ExitCode> {
    let cli = parse_args::<C>()?;
    init_tracing(log_env);
    let config = load_config(name, &config_path(&cli))?;
    Ok((cli, config))
}

/// The command line, or the exit code: 64 for a usage error, 0 after help or version.
fn parse_args<C: clap::Parser>() -> Result<C, ExitCode> {
    C::try_parse().map_err(|e| {
        let _ = e.print();
        // Help and version go to stdout and are no error; clap's own code for a usage error is
        // 2, which the origin's commands use for a failure.
        if e.use_stderr() {
            ExitCode::from(EX_USAGE)
        } else {
            ExitCode::SUCCESS
        }
    })
}

/// Logs to stderr at the level of the `env` variable (`info` without it); colours for a
/// terminal only, so a log file or journal gets plain text.
fn init_tracing(env: &str) {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env(env)
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

/// The config file at `path`, or exit 64 with `name: config PATH: problems` on stderr.
fn load_config<C: ConfigFile>(name: &str, path: &Path) -> Result<C, ExitCode> {
    tracing::debug!(config = %path.display(), "reading config");
    C::load(path).map_err(|e| {
        eprintln!("{name}: {e}");
        ExitCode::from(EX_USAGE)
    })
}

/// Runs `main` on a multi-threaded runtime: its exit code, or `failed` when it fails (logged,
/// and printed as `name: error`).
pub fn block_on<E: std::fmt::Display>(
    name: &str,
    failed: ExitCode,
    main: impl Future<Output = Result<ExitCode, E>>,
) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("{name}: tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(main) {
        Ok(code) => code,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "{name} failed");
            eprintln!("{name}: {e:#}");
            failed
        }
    }
}

/// Resolves at the first SIGTERM or SIGINT.
pub async fn shutdown_signal() {
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
