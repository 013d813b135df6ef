//! `bench --profile DIR`: where the stack's CPU goes during a measured loop. `perf record` samples
//! nginx (master and workers), the edges, the origin, redis-server and postgres (postmaster and
//! the backends alive at the start) at 999 Hz with DWARF call graphs (the release binaries keep
//! line tables and unwind tables, not frame pointers). A recording leaves `DIR/<name>.perf.data`
//! and `DIR/<name>.roles`, one line per process: its role, then its pids; `deploy/profile` turns
//! them into folded stacks, flame graphs and lists of the functions with the most self time.
//! Perf costs CPU too: the figures of a profiled run are not the benchmark's.

use std::{
    os::unix::process::ExitStatusExt,
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use anyhow::{bail, Context};
use nix::{sys::signal, unistd::Pid};
use tokio::process::{Child, Command};

use super::{cpu, world::World};
use crate::{redis_under_test::RedisUnderTest, wait};

/// Sampling frequency, Hz: not a multiple of the timers' so samples do not beat with them.
const FREQUENCY: &str = "999";
/// How long perf may take to attach, and to write its file once interrupted.
const PERF_DEADLINE: Duration = Duration::from_secs(30);

/// A `perf record` running until [`Recording::stop`].
pub struct Recording {
    child: Child,
    data: PathBuf,
}

/// Starts recording `name` if the world was asked to profile (`--profile`).
pub async fn start<R: RedisUnderTest>(
    world: &World<R>,
    name: &str,
) -> anyhow::Result<Option<Recording>> {
    match &world.profile_dir {
        Some(dir) => Ok(Some(Recording::start(dir, name, world).await?)),
        None => Ok(None),
    }
}

/// Stops a recording started by [`start`], if any.
pub async fn stop(recording: Option<Recording>) -> anyhow::Result<()> {
    match recording {
        Some(r) => r.stop().await,
        None => Ok(()),
    }
}

impl Recording {
    /// Attaches perf to the stack's processes (the bench client left out) and waits until it
    /// samples: its data file is written when it has attached.
    pub async fn start<R: RedisUnderTest>(
        dir: &Path,
        name: &str,
        world: &World<R>,
    ) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let mut roles = String::new();
        let mut pids = Vec::new();
        for process in cpu::stack_processes(world) {
            if process.scope != cpu::Scope::Tree {
                continue;
            }
            let tree = process.pids();
            let role = process
                .name
                .trim_end_matches(|c: char| c == '_' || c.is_ascii_digit());
            let list: Vec<String> = tree.iter().map(u32::to_string).collect();
            roles += &format!("{role} {}\n", list.join(" "));
            pids.extend(list);
        }
        std::fs::write(dir.join(format!("{name}.roles")), roles)?;
        let data = dir.join(format!("{name}.perf.data"));
        let _ = std::fs::remove_file(&data);
        let log = std::fs::File::create(dir.join(format!("{name}.perf.log")))?;
        let child = Command::new("perf")
            .args(["record", "-F", FREQUENCY, "--call-graph", "dwarf", "-p"])
            .arg(pids.join(","))
            .arg("-o")
            .arg(&data)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .context("perf record (is perf installed? apt-get install linux-perf)")?;
        let mut recording = Self { child, data };
        let started = {
            let (data, child) = (&recording.data, &mut recording.child);
            wait::until("perf record attached", PERF_DEADLINE, || {
                let attached = data.metadata().is_ok_and(|m| m.len() > 0);
                let exited = child.try_wait().map(|s| s.is_some());
                async move {
                    if exited? {
                        bail!("perf record exited");
                    }
                    Ok(attached)
                }
            })
            .await
        };
        started.with_context(|| format!("perf record of {name}: see {name}.perf.log"))?;
        Ok(recording)
    }

    /// Interrupts perf (SIGINT, as Ctrl-C) and waits until it has written its file.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        let pid = self.child.id().context("perf already exited")?;
        signal::kill(Pid::from_raw(i32::try_from(pid)?), signal::Signal::SIGINT)?;
        let status = tokio::time::timeout(PERF_DEADLINE, self.child.wait())
            .await
            .context("perf did not stop")??;
        // perf writes its file on SIGINT, then dies of the signal it caught.
        if !status.success() && status.signal() != Some(signal::Signal::SIGINT as i32) {
            bail!("perf record of {}: {status}", self.data.display());
        }
        Ok(())
    }
}
