//! The launcher's PostgreSQL (`./deploy/up`): a durable cluster in a state folder (`data/`, the
//! Unix socket in `sock/`), made once with initdb, on a fixed port, kept running after the
//! launcher exits, with the database `flash`; found again by its `postmaster.pid` and stopped
//! with a fast shutdown.

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context};
use nix::sys::signal::Signal;
use tokio::process::Command;

use super::install::Install;
use super::owner::Owner;
use super::template::{initdb, Sync};
use super::{connect, DATABASE};
use crate::kept::{self, Stopped};
use crate::processes;

/// How long a start (crash recovery included) or a fast shutdown may take.
const DEADLINE: Duration = Duration::from_secs(60);
/// Room for a Unix socket path: `{sock}/.s.PGSQL.{port}` within 107 bytes.
const SOCKET_PATH_ROOM: usize = 107 - 18;

/// What [`start_kept`] found and did.
#[derive(Debug, Clone)]
pub struct KeptPostgres {
    pub pid: u32,
    /// It ran already: left as it was.
    pub reused: bool,
    /// initdb made the cluster now.
    pub initdb: bool,
    /// The database `flash` was created now.
    pub created_database: bool,
    /// The user it runs as, when this process is root.
    pub user: Option<String>,
}

/// The postmaster's pid while a server runs on `data` (its `postmaster.pid`).
pub fn running_pid(data: &Path) -> Option<u32> {
    let text = std::fs::read_to_string(data.join("postmaster.pid")).ok()?;
    let pid = text.lines().next()?.trim().parse().ok()?;
    kept::alive(pid, "postgres").then_some(pid)
}

/// Fast shutdown (SIGINT) of the server running on `data`, if any, waiting until it exited.
pub async fn stop_kept(data: &Path) -> anyhow::Result<Option<Stopped>> {
    match running_pid(data) {
        Some(pid) => Ok(Some(kept::stop(pid, Signal::SIGINT, DEADLINE).await?)),
        None => Ok(None),
    }
}

/// Starts (or finds running) the server of the folder `dir` on `port`, its output appended to
/// `log`: initdb first when `dir/data` holds no cluster; as root, everything owned by and run as
/// the data folder's owner (else `postgres`, else `nobody`), who must be able to reach `dir`.
pub async fn start_kept(dir: &Path, port: u16, log: &Path) -> anyhow::Result<KeptPostgres> {
    let (data, sock) = (dir.join("data"), dir.join("sock"));
    if sock.as_os_str().len() > SOCKET_PATH_ROOM {
        bail!(
            "postgres: socket folder {} is too long for a Unix socket: choose a shorter STATE_DIR",
            sock.display()
        );
    }
    std::fs::create_dir_all(&sock).with_context(|| format!("creating {}", sock.display()))?;
    let install = Install::find().await?;
    let owner = Owner::for_data(&data)?;
    if let Some(owner) = owner {
        std::fs::File::options()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("creating {}", log.display()))?;
        for path in [dir, &sock, log] {
            owner.chown(path)?;
        }
        if data.exists() {
            owner.chown_tree(&data)?;
        }
        if !processes::user_can(owner.uid, owner.gid, "-w", dir) {
            bail!(
                "postgres: user {} cannot reach {} (a parent folder is closed to it): open the \
                 parents to it (chmod o+x), or choose a state folder it can reach, e.g. \
                 STATE_DIR=/var/tmp/flash-state",
                owner.name(),
                dir.display()
            );
        }
    }
    let fresh = !data.join("PG_VERSION").is_file();
    if fresh {
        if data.exists() {
            std::fs::remove_dir_all(&data)
                .with_context(|| format!("removing {}", data.display()))?;
        }
        initdb(&install, owner, &data, Sync::Yes).await?;
    }
    let user = owner.map(Owner::name);
    if let Some(pid) = running_pid(&data) {
        let created_database = ensure_database(port).await?;
        let (reused, initdb) = (true, false);
        return Ok(KeptPostgres {
            pid,
            reused,
            initdb,
            created_database,
            user,
        });
    }
    let mut command = Command::new(install.bin.join("postgres"));
    command
        .arg("-D")
        .arg(&data)
        .args(["-p", &port.to_string()])
        .arg("-k")
        .arg(&sock)
        .args(["-c", "listen_addresses=127.0.0.1"])
        .current_dir("/");
    kept::keep(&mut command, log)?;
    if let Some(owner) = owner {
        command.uid(owner.uid).gid(owner.gid);
    }
    let mut child = command.spawn().context("spawning postgres")?;
    let pid = child.id().context("a child just spawned has a pid")?;
    kept::until_ready(
        "postgres to accept connections",
        &mut child,
        DEADLINE,
        log,
        || async move { connect(port, "postgres").await.map(|_client| true) },
    )
    .await
    .with_context(|| format!("postgres on port {port} did not start"))?;
    let created_database = ensure_database(port).await?;
    Ok(KeptPostgres {
        pid,
        reused: false,
        initdb: fresh,
        created_database,
        user,
    })
}

/// Creates the database `flash` unless it exists; whether it did.
async fn ensure_database(port: u16) -> anyhow::Result<bool> {
    let client = connect(port, "postgres").await?;
    let exists = client
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&DATABASE])
        .await
        .context("looking for the database flash")?
        .is_some();
    if !exists {
        client
            .batch_execute(&format!("CREATE DATABASE {DATABASE}"))
            .await
            .context("creating the database flash")?;
    }
    Ok(!exists)
}
