//! `stack down`: stops what `up` started, in the reverse order (the front first, so nothing is left
//! calling a stopped service), each process by the pid `up` recorded and only while its command
//! line still names what `up` gave it: nginx (SIGQUIT, its graceful stop), the edge, the origin,
//! dtm, Redis and every node of a cluster (SIGTERM, the nodes all at once), PostgreSQL (SIGINT,
//! its fast shutdown); up to 10 s each, then SIGKILL. `--purge` then deletes the state folder.

use std::path::PathBuf;

use anyhow::{bail, Context};
use flash_servers::kept::{self, PidFile, Stopped};
use flash_servers::postgres_server;
use futures_util::future::try_join_all;
use nix::sys::signal::Signal;

use crate::lock;
use crate::say::{say, warn};
use crate::settings::Settings;

const SCRIPT: &str = "deploy/down";

pub async fn run(root: PathBuf, purge: bool) -> anyhow::Result<()> {
    let settings = Settings::load(root)?;
    let state = &settings.state;
    let shown = settings.show(state);
    if !state.is_dir() {
        say(SCRIPT, format!("nothing to stop: {shown} does not exist"));
        return Ok(());
    }
    let empty = std::fs::read_dir(state)?.next().is_none();
    if !settings.mark().exists() && !empty {
        bail!("{shown} was not made by deploy/up (no .flash-state): left untouched");
    }
    let lock = lock::take(state, &shown)?;

    let pids = settings.pids();
    let services = [
        (
            "nginx",
            "nginx.pid",
            settings.nginx_dir().join("nginx.conf"),
            Signal::SIGQUIT,
        ),
        ("edge", "edge.pid", state.join("edge.toml"), Signal::SIGTERM),
        (
            "origin",
            "origin.pid",
            state.join("origin.toml"),
            Signal::SIGTERM,
        ),
        (
            "dtm",
            "dtm.pid",
            crate::dtm::config_path(&settings),
            Signal::SIGTERM,
        ),
        (
            "redis",
            "redis.pid",
            PathBuf::from("redis-server"),
            Signal::SIGTERM,
        ),
    ];
    for (name, file, expect, signal) in services {
        let file = PidFile::new(pids.join(file));
        let Some(pid) = file.live(&expect.to_string_lossy()) else {
            not_running(name, &file)?;
            continue;
        };
        say(
            SCRIPT,
            format!("{name}: stopping pid {pid} ({})", signal.as_str()),
        );
        stopped(
            name,
            pid,
            kept::stop(pid, signal, kept::STOP_DEADLINE).await?,
        );
        file.remove()?;
        say(SCRIPT, format!("{name}: stopped"));
    }
    stop_cluster(&settings).await?;

    let data = settings.pg_dir().join("data");
    if !data.join("PG_VERSION").is_file() {
        say(SCRIPT, "postgres: no cluster");
    } else if let Some(pid) = postgres_server::running_pid(&data) {
        say(
            SCRIPT,
            format!("postgres: stopping pid {pid} (SIGINT, a fast shutdown)"),
        );
        if let Some(how) = postgres_server::stop_kept(&data).await? {
            stopped("postgres", pid, how);
        }
        say(SCRIPT, "postgres: stopped");
    } else {
        say(SCRIPT, "postgres: not running");
    }
    PidFile::new(pids.join("postgres.pid")).remove()?;

    if purge {
        // Release the lock before the folder that holds it goes.
        drop(lock);
        std::fs::remove_dir_all(state).with_context(|| format!("deleting {shown}"))?;
        say(SCRIPT, format!("purged {shown}"));
    } else {
        say(
            SCRIPT,
            format!(
                "stopped; data kept in {shown}/ ({} --purge deletes it)",
                settings.command("down")
            ),
        );
    }
    Ok(())
}

fn not_running(name: &str, file: &PidFile) -> anyhow::Result<()> {
    if file.exists() {
        file.remove()?;
        say(
            SCRIPT,
            format!("{name}: not running (stale pid file removed)"),
        );
    } else {
        say(SCRIPT, format!("{name}: not running"));
    }
    Ok(())
}

fn stopped(name: &str, pid: u32, how: Stopped) {
    if how == Stopped::Killed {
        warn(
            SCRIPT,
            format!("{name}: pid {pid} still running after 10 s: SIGKILL"),
        );
    }
}

/// Every node `up` recorded (`pids/redis-cluster-<port>.pid`, whatever REDIS_CLUSTER says now),
/// all signalled at once, so that no replica outlives its primary long enough to take its place.
async fn stop_cluster(settings: &Settings) -> anyhow::Result<()> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(settings.pids())?
        .map(|entry| entry.map(|entry| entry.path()))
        .collect::<Result<_, _>>()?;
    files.sort();
    let mut nodes = Vec::new();
    for path in files {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let Some(port) = name
            .strip_prefix("redis-cluster-")
            .and_then(|n| n.strip_suffix(".pid"))
        else {
            continue;
        };
        let (port, file) = (port.to_owned(), PidFile::new(path.clone()));
        match file.live("redis-server") {
            Some(pid) => {
                say(
                    SCRIPT,
                    format!("redis cluster: stopping node {port}, pid {pid} (SIGTERM)"),
                );
                nodes.push((port, pid, file));
            }
            None => {
                file.remove()?;
                say(
                    SCRIPT,
                    format!("redis cluster: node {port} not running (stale pid file removed)"),
                );
            }
        }
    }
    let stops = nodes
        .iter()
        .map(|(_, pid, _)| kept::stop(*pid, Signal::SIGTERM, kept::STOP_DEADLINE));
    let outcomes = try_join_all(stops).await?;
    for ((port, pid, file), how) in nodes.iter().zip(outcomes) {
        stopped(&format!("redis cluster node {port}"), *pid, how);
        file.remove()?;
    }
    if !nodes.is_empty() {
        say(
            SCRIPT,
            format!("redis cluster: stopped ({} nodes)", nodes.len()),
        );
    }
    Ok(())
}
