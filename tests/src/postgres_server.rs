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

use std::fs::{File, Permissions};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use nix::sys::signal::{self, Signal};
use nix::unistd::{Pid, User};
use tempfile::TempDir;
use tokio::process::{Child, Command};
use tokio_postgres::NoTls;

use crate::{net, wait};

/// How long a start may take, crash recovery included.
const START_DEADLINE: Duration = Duration::from_secs(60);
/// How long a fast shutdown may take.
const STOP_DEADLINE: Duration = Duration::from_secs(30);
/// How long killed processes may take to die.
const REAP_DEADLINE: Duration = Duration::from_secs(10);
/// How long an immediate shutdown may take before the server is killed instead.
const QUIT_DEADLINE: Duration = Duration::from_secs(5);
/// Ports tried by [`PostgresServer::start`] when another process takes the free port first.
const PORT_ATTEMPTS: usize = 3;
/// Log lines quoted in an error.
const LOG_TAIL_LINES: usize = 30;
/// The superuser created by initdb.
const USER: &str = "flash";
/// The database [`PostgresServer::url`] and [`PostgresServer::client`] use.
const DATABASE: &str = "flash";

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

/// A postmaster that exits cleanly removes `postmaster.pid`; one that was killed leaves it, and
/// its System V shared memory segment, named on line 7 (`key id`). Removes that segment.
fn remove_leftover_shared_memory(data: &Path, port: u16) {
    let Ok(pid_file) = std::fs::read_to_string(data.join("postmaster.pid")) else {
        return;
    };
    let Some(id) = pid_file
        .lines()
        .nth(6)
        .and_then(|line| line.split_whitespace().nth(1))
    else {
        return;
    };
    let removed = std::process::Command::new("ipcrm")
        .args(["-m", id])
        .stderr(Stdio::null())
        .status();
    if !removed.is_ok_and(|status| status.success()) {
        tracing::debug!(
            port,
            id,
            "could not remove the shared memory of a killed postgres"
        );
    }
}

/// Connects as `flash` over TCP and spawns the connection task.
async fn connect(port: u16, database: &str) -> anyhow::Result<tokio_postgres::Client> {
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

/// Kills a postmaster and the backends it forked, and reaps it. Backends outlive a killed
/// postmaster for a moment and keep its shared memory, which would stop the next start; so the
/// postmaster is frozen (it cannot fork then), its children are killed and awaited, then it is.
fn kill_tree(child: &mut Child, port: u16) {
    if let Some(pid) = child.id() {
        let children = pid_of(pid).and_then(|postmaster| {
            // Fails only if it already exited; then it has no children left to fork.
            let _ = signal::kill(postmaster, Signal::SIGSTOP);
            children_of(pid)
        });
        let killed = children.and_then(|children| {
            for &child in &children {
                // Fails only for a backend that already exited.
                let _ = signal::kill(child, Signal::SIGKILL);
            }
            wait::until_blocking("postgres backends to die", REAP_DEADLINE, || {
                Ok(children.iter().all(|&child| is_dead(child)))
            })
        });
        if let Err(error) = killed {
            tracing::warn!(port, error = %format!("{error:#}"), "postgres backends not killed");
        }
    }
    if let Err(error) = wait::kill_and_reap(child, REAP_DEADLINE) {
        tracing::warn!(port, error = %format!("{error:#}"), "postgres not reaped");
    }
}

fn pid_of(pid: u32) -> anyhow::Result<Pid> {
    Ok(Pid::from_raw(i32::try_from(pid)?))
}

/// The processes whose parent is `parent`, from `/proc/*/stat`.
fn children_of(parent: u32) -> anyhow::Result<Vec<Pid>> {
    let mut children = Vec::new();
    for entry in std::fs::read_dir("/proc").context("listing /proc")? {
        let name = entry?.file_name();
        let Some(pid) = name.to_str().and_then(|name| name.parse::<i32>().ok()) else {
            continue;
        };
        // A process that exited since the listing has no stat any more: not a child then.
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        if parse_stat(&stat).is_some_and(|(_, ppid)| ppid == parent) {
            children.push(Pid::from_raw(pid));
        }
    }
    Ok(children)
}

/// Gone, or a zombie (dead, waiting for its parent to reap it).
fn is_dead(pid: Pid) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => parse_stat(&stat).is_none_or(|(state, _)| matches!(state, 'Z' | 'X')),
        Err(_) => true,
    }
}

/// State and parent pid from a `/proc/{pid}/stat` line: `pid (comm) state ppid ...`, where
/// `comm` may itself contain spaces and parentheses.
fn parse_stat(stat: &str) -> Option<(char, u32)> {
    let after_comm = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_comm.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((state, ppid))
}

/// Where the PostgreSQL binaries are, and their major version.
#[derive(Clone)]
struct Install {
    bin: PathBuf,
    major: u32,
}

/// The install found by the first start in this process.
static INSTALL: tokio::sync::OnceCell<Install> = tokio::sync::OnceCell::const_new();

impl Install {
    async fn find() -> anyhow::Result<Self> {
        INSTALL.get_or_try_init(Self::search).await.cloned()
    }

    async fn search() -> anyhow::Result<Self> {
        let bin = match std::env::var_os("PG_BIN") {
            Some(bin) => PathBuf::from(bin),
            None => match pg_config_bindir().await {
                Some(bin) => bin,
                None => newest_debian_bindir()?,
            },
        };
        let postgres = bin.join("postgres");
        let output = Command::new(&postgres)
            .arg("--version")
            .output()
            .await
            .with_context(|| format!("running {} --version", postgres.display()))?;
        let version = String::from_utf8_lossy(&output.stdout);
        let major = parse_major(&version).with_context(|| {
            format!(
                "no major version in {version:?} from {}",
                postgres.display()
            )
        })?;
        Ok(Install { bin, major })
    }
}

async fn pg_config_bindir() -> Option<PathBuf> {
    let output = Command::new("pg_config")
        .arg("--bindir")
        .output()
        .await
        .ok()?;
    let bin = PathBuf::from(String::from_utf8(output.stdout).ok()?.trim());
    (output.status.success() && bin.join("postgres").is_file()).then_some(bin)
}

fn newest_debian_bindir() -> anyhow::Result<PathBuf> {
    let root = Path::new("/usr/lib/postgresql");
    let bin = |major: u32| root.join(major.to_string()).join("bin");
    let newest = std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&major| bin(major).join("postgres").is_file())
        .max();
    newest.map(bin).context(
        "no PostgreSQL found: set PG_BIN, put pg_config on PATH or install it under /usr/lib/postgresql",
    )
}

/// The major version in `postgres (PostgreSQL) 15.14 (Debian 15.14-0+deb12u1)`.
fn parse_major(version: &str) -> Option<u32> {
    let number = version
        .split("(PostgreSQL)")
        .nth(1)?
        .split_whitespace()
        .next()?;
    number
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// The unprivileged user that runs initdb and postgres when the tests run as root.
#[derive(Clone, Copy)]
struct Owner {
    uid: u32,
    gid: u32,
}

impl Owner {
    /// `None` when not root: then PostgreSQL runs as the current user.
    fn for_this_process() -> anyhow::Result<Option<Self>> {
        if !nix::unistd::geteuid().is_root() {
            return Ok(None);
        }
        for name in ["postgres", "nobody"] {
            if let Some(user) = User::from_name(name)? {
                let (uid, gid) = (user.uid.as_raw(), user.gid.as_raw());
                return Ok(Some(Owner { uid, gid }));
            }
        }
        bail!("running as root, and there is no `postgres` or `nobody` user to run PostgreSQL as")
    }

    fn chown(self, path: &Path) -> anyhow::Result<()> {
        std::os::unix::fs::lchown(path, Some(self.uid), Some(self.gid))
            .with_context(|| format!("chown {}:{} {}", self.uid, self.gid, path.display()))
    }

    fn chown_tree(self, path: &Path) -> anyhow::Result<()> {
        self.chown(path)?;
        if std::fs::symlink_metadata(path)?.is_dir() {
            for entry in std::fs::read_dir(path)? {
                self.chown_tree(&entry?.path())?;
            }
        }
        Ok(())
    }
}

/// Serialises template making within this process; across processes the rename does.
static TEMPLATE_LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The initdb'd template dir, made first if missing.
async fn template(install: &Install, owner: Option<Owner>) -> anyhow::Result<PathBuf> {
    let _one_at_a_time = TEMPLATE_LOCK.lock().await;
    let parent = std::env::var_os("CARGO_TARGET_TMPDIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let name = format!("flash-pg-template-{}", install.major);
    let template = parent.join(&name);
    if template.join("PG_VERSION").is_file() {
        return Ok(template);
    }
    let staging = tempfile::Builder::new()
        .prefix(&format!("{name}.initdb-"))
        .tempdir_in(&parent)
        .with_context(|| format!("creating a staging dir in {}", parent.display()))?;
    if let Some(owner) = owner {
        owner.chown(staging.path())?;
    }
    let program = install.bin.join("initdb");
    let mut initdb = Command::new(&program);
    initdb
        .arg("-D")
        .arg(staging.path())
        .args([
            "-A",
            "trust",
            "-U",
            USER,
            "--no-sync",
            "-E",
            "UTF8",
            "--locale=C",
        ])
        .current_dir(staging.path())
        .stdin(Stdio::null())
        .kill_on_drop(true);
    if let Some(owner) = owner {
        initdb.uid(owner.uid).gid(owner.gid);
    }
    let started = tokio::time::Instant::now();
    let output = initdb
        .output()
        .await
        .with_context(|| format!("running {}", program.display()))?;
    if !output.status.success() {
        bail!(
            "initdb failed with {}:\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    tracing::debug!(elapsed = ?started.elapsed(), template = %template.display(), "initdb done");
    match std::fs::rename(staging.path(), &template) {
        // Now at its new name, the staging dir must not be cleaned up.
        Ok(()) => drop(staging.keep()),
        // Another process won the race; dropping `staging` removes ours.
        Err(_) if template.join("PG_VERSION").is_file() => {}
        Err(error) => {
            return Err(error).with_context(|| {
                format!(
                    "renaming the initdb result to {} (remove it if it is a leftover)",
                    template.display()
                )
            })
        }
    }
    Ok(template)
}

/// `cp -a` of the template to `data`, owned by the user that runs postgres, mode 0700.
async fn copy_data_dir(template: &Path, data: &Path, owner: Option<Owner>) -> anyhow::Result<()> {
    let output = Command::new("cp")
        .arg("-a")
        .arg(template)
        .arg(data)
        .output()
        .await
        .context("running cp -a")?;
    if !output.status.success() {
        bail!(
            "cp -a {} {} failed with {}: {}",
            template.display(),
            data.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    if let Some(owner) = owner {
        // cp -a as root keeps the template's owner, which is the right one unless the template
        // was made by another user.
        if std::fs::metadata(data)?.uid() != owner.uid {
            owner.chown_tree(data)?;
        }
    }
    std::fs::set_permissions(data, Permissions::from_mode(0o700))
        .with_context(|| format!("chmod 0700 {}", data.display()))
}

#[cfg(test)]
mod tests {
    use super::{parse_major, parse_stat};

    #[test]
    fn major_versions_are_parsed() {
        let check = |version: &str, expected: Option<u32>| {
            assert_eq!(parse_major(version), expected, "{version}");
        };
        check(
            "postgres (PostgreSQL) 15.14 (Debian 15.14-0+deb12u1)\n",
            Some(15),
        );
        check("postgres (PostgreSQL) 17.2\n", Some(17));
        check("postgres (PostgreSQL) 18beta1\n", Some(18));
        check("postgres 15\n", None);
    }

    #[test]
    fn proc_stat_lines_are_parsed() {
        let check = |stat: &str, expected: Option<(char, u32)>| {
            assert_eq!(parse_stat(stat), expected, "{stat}");
        };
        check("4242 (postgres) S 4200 4242 4242 0 -1", Some(('S', 4200)));
        check("4243 (postgres: a) b) Z 4242 1 2", Some(('Z', 4242)));
        check("garbage", None);
    }
}
