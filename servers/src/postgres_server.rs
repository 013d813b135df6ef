//! A real PostgreSQL for one test: a free loopback port, a temp dir holding the data dir, the
//! Unix socket and `postgres.log`, durability switched off for speed (`fsync`,
//! `synchronous_commit`, `full_page_writes`), user `flash` with trust auth and a database `flash`.
//! It can be stopped (fast shutdown) or killed (SIGKILL, a crash) and started again on the same
//! port and data.
//!
//! `initdb` runs once per machine and PostgreSQL major: its result is kept as a template dir
//! (`flash-pg-template-{major}` in `CARGO_TARGET_TMPDIR` if set, else the system temp dir) and
//! copied for each server. Concurrent test processes each initdb into a staging dir and rename it
//! into place; the loser of the rename uses the winner's.
//!
//! PostgreSQL refuses to run as root: then initdb and postgres run as `postgres` (or `nobody`),
//! who owns the temp dir. The binaries come from `PG_BIN`, else `pg_config --bindir`, else the
//! newest `/usr/lib/postgresql/*/bin`.

use std::fs::File;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{anyhow, Context};
use nix::sys::signal::{self, Signal};
use nix::unistd::Pid;
use tempfile::TempDir;
use tokio::process::{Child, Command};
use tokio_postgres::NoTls;

use crate::{net, wait};

mod install;
mod kept;
mod owner;
mod stop;
mod template;

use install::Install;
use owner::Owner;
use stop::{kill_tree, remove_leftover_shared_memory};
use template::{copy_data_dir, template};

pub use kept::{running_pid, start_kept, stop_kept, KeptPostgres};

/// How long a start may take, crash recovery included.
const START_DEADLINE: Duration = Duration::from_secs(60);
/// How long a fast shutdown may take.
const STOP_DEADLINE: Duration = Duration::from_secs(30);
/// How long an immediate shutdown may take before the server is killed instead.
const QUIT_DEADLINE: Duration = Duration::from_secs(5);
/// Ports tried by [`PostgresServer::start`] when another process takes the free port first.
const PORT_ATTEMPTS: usize = 3;
/// Log lines quoted in an error.
const LOG_TAIL_LINES: usize = 30;
/// The superuser created by initdb.
pub(crate) const USER: &str = "flash";
/// The database [`PostgresServer::url`] and [`PostgresServer::client`] use.
pub(crate) const DATABASE: &str = "flash";

/// A running PostgreSQL, killed with its backends and reaped when dropped; its temp dir goes
/// with it.
pub struct PostgresServer {
    port: u16,
    /// The postmaster; `None` after [`PostgresServer::stop`] or [`PostgresServer::kill`].
    child: Option<Child>,
    install: Install,
    owner: Option<Owner>,
    dir: TempDir,
}

impl PostgresServer {
    /// Copies the initdb template (making it first if this machine has none), starts postgres on
    /// a free port, waits until it accepts connections and creates the database `flash`. On
    /// failure the error quotes the end of the server's log.
    pub async fn start() -> anyhow::Result<Self> {
        let install = Install::find().await?;
        let owner = Owner::for_this_process()?;
        let template = template(&install, owner).await?;
        let dir = tempfile::Builder::new()
            .prefix("flash-pg-")
            .tempdir()
            .context("creating the temp dir of postgres")?;
        if let Some(owner) = owner {
            owner.chown(dir.path())?;
        }
        copy_data_dir(&template, &dir.path().join("data"), owner).await?;
        let mut server = PostgresServer {
            port: net::free_port(),
            child: None,
            install,
            owner,
            dir,
        };
        let mut attempt = 1;
        loop {
            match server.run().await {
                Ok(()) => break,
                Err(error) if attempt < PORT_ATTEMPTS && server.port_was_taken() => {
                    attempt += 1;
                    tracing::debug!(port = server.port, %error, "postgres port taken, trying another");
                    server.port = net::free_port();
                    let log = server.log_path();
                    match std::fs::remove_file(&log) {
                        Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
                            return Err(error).context(format!("removing {}", log.display()));
                        }
                        _ => {}
                    }
                }
                Err(error) => return Err(error),
            }
        }
        connect(server.port, "postgres")
            .await?
            .batch_execute(&format!("CREATE DATABASE {DATABASE}"))
            .await
            .context("creating the database flash")?;
        Ok(server)
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `postgres://flash@127.0.0.1:{port}/flash`.
    pub fn url(&self) -> String {
        format!("postgres://{USER}@127.0.0.1:{}/{DATABASE}", self.port)
    }

    /// The temp dir holding `data/`, `postgres.log` and the Unix socket.
    pub fn dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    /// The server's log: stdout and stderr of every run.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("postgres.log")
    }

    /// The pid of the postmaster, `None` while stopped or killed.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// A new client on the database `flash`; its connection runs in a spawned task.
    pub async fn client(&self) -> anyhow::Result<tokio_postgres::Client> {
        connect(self.port, DATABASE).await
    }

    /// Fast shutdown (SIGINT to the postmaster), waiting until it has exited. Does nothing if
    /// the server is not running.
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        if let Some(pid) = child.id() {
            signal::kill(pid_of(pid)?, Signal::SIGINT).context("sending SIGINT to postgres")?;
        }
        match tokio::time::timeout(STOP_DEADLINE, child.wait()).await {
            Ok(Ok(status)) if status.success() => Ok(()),
            Ok(Ok(status)) => Err(anyhow!("postgres exited with {status} on fast shutdown")),
            Ok(Err(error)) => Err(anyhow!("waiting on postgres: {error}")),
            Err(_elapsed) => {
                kill_tree(&mut child, self.port);
                Err(anyhow!(
                    "postgres did not stop within {STOP_DEADLINE:?}; killed it"
                ))
            }
        }
        .map_err(|error| error.context(wait::log_tail(&self.log_path(), LOG_TAIL_LINES)))
    }

    /// Starts postgres again on the same port and data dir and waits until it accepts
    /// connections (after crash recovery, if it was killed). Stops the running server first, if
    /// any.
    pub async fn start_again(&mut self) -> anyhow::Result<()> {
        self.stop().await?;
        self.run().await
    }

    /// Kills the postmaster and its backends with SIGKILL, like a crash, and reaps the
    /// postmaster. Does nothing if the server is not running. With `synchronous_commit=off`
    /// the last commits may be lost: a test that needs them after a kill sets
    /// `synchronous_commit = on` in its session.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill_tree(&mut child, self.port);
        }
    }

    /// Spawns postgres and waits until it is ready; kills it if it is not.
    async fn run(&mut self) -> anyhow::Result<()> {
        let child = self.spawn()?;
        let child = self.child.insert(child);
        let port = self.port;
        let ready = tokio::select! {
            waited = wait::until("postgres to accept connections", START_DEADLINE, || async move {
                connect(port, "postgres").await.map(|_client| true)
            }) => waited.map(|elapsed| tracing::debug!(port, ?elapsed, "postgres ready")),
            status = child.wait() => match status {
                Ok(status) => Err(anyhow!("postgres exited with {status} before it was ready")),
                Err(error) => Err(anyhow!("waiting on postgres: {error}")),
            },
        };
        ready.map_err(|error| {
            self.kill();
            error.context(format!(
                "postgres on port {port} did not start\n{}",
                wait::log_tail(&self.log_path(), LOG_TAIL_LINES)
            ))
        })
    }

    fn spawn(&self) -> anyhow::Result<Child> {
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.log_path())
            .context("opening the log of postgres")?;
        let program = self.install.bin.join("postgres");
        let mut command = Command::new(&program);
        command
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-k")
            .arg(self.dir.path())
            .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"])
            .args(["-c", "synchronous_commit=off", "-c", "full_page_writes=off"])
            .args(["-c", "max_connections=200"])
            // Dynamic shared memory as files in the data dir, not in /dev/shm: a killed server
            // leaves none behind once its temp dir is gone, and a small /dev/shm (64 MB in
            // Docker) is not exhausted by many servers.
            .args(["-c", "dynamic_shared_memory_type=mmap"])
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true);
        if let Some(owner) = self.owner {
            command.uid(owner.uid).gid(owner.gid);
        }
        command
            .spawn()
            .with_context(|| format!("spawning {}", program.display()))
    }

    /// Whether the last run failed because another process had bound the port.
    fn port_was_taken(&self) -> bool {
        std::fs::read_to_string(self.log_path())
            .is_ok_and(|log| log.contains("Address already in use"))
    }
}

impl Drop for PostgresServer {
    /// Immediate shutdown, which stops the backends and frees the shared memory; SIGKILL if
    /// that takes too long. Then frees the shared memory a killed server left behind.
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if let Some(Ok(pid)) = child.id().map(pid_of) {
                // Both fail only if it already exited: then there is nothing to shut down.
                let _ = signal::kill(pid, Signal::SIGQUIT);
                // In case a test froze it with SIGSTOP.
                let _ = signal::kill(pid, Signal::SIGCONT);
            }
            let exited = wait::until_blocking("postgres immediate shutdown", QUIT_DEADLINE, || {
                Ok(child.try_wait()?.is_some())
            });
            if exited.is_err() {
                kill_tree(&mut child, self.port);
            }
        }
        remove_leftover_shared_memory(&self.dir.path().join("data"), self.port);
    }
}

/// Connects as `flash` over TCP and spawns the connection task.
pub(crate) async fn connect(port: u16, database: &str) -> anyhow::Result<tokio_postgres::Client> {
    let (client, connection) = tokio_postgres::Config::new()
        .host("127.0.0.1")
        .port(port)
        .user(USER)
        .dbname(database)
        .connect_timeout(Duration::from_secs(5))
        .connect(NoTls)
        .await
        .with_context(|| format!("connecting to postgres on port {port}, database {database}"))?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!(port, %error, "postgres connection ended");
        }
    });
    Ok(client)
}

pub(crate) fn pid_of(pid: u32) -> anyhow::Result<Pid> {
    Ok(Pid::from_raw(i32::try_from(pid)?))
}
