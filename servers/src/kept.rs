//! Processes kept running after the program that started them exits (the launcher,
//! `src/bin/stack/`): spawned in their own process group, never killed on drop, their output
//! appended to a log; the pid files that record them, the check that a recorded pid is still the
//! process it was (alive, not a zombie, its command line naming what it was started with), and the
//! stop by pid: a signal, up to [`STOP_DEADLINE`] to exit, then SIGKILL to it and its children.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{anyhow, Context};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::process::{Child, Command};

use crate::{processes, wait};

/// How long a signalled process may take to exit before it is killed.
pub const STOP_DEADLINE: Duration = Duration::from_secs(10);
/// How long a service may take to become ready.
pub const START_DEADLINE: Duration = Duration::from_secs(30);
/// Log lines quoted in an error.
const LOG_TAIL_LINES: usize = 40;

/// A file holding the pid of a kept process.
#[derive(Debug, Clone)]
pub struct PidFile {
    path: PathBuf,
}

impl PidFile {
    pub fn new(path: PathBuf) -> Self {
        Self { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn write(&self, pid: u32) -> anyhow::Result<()> {
        std::fs::write(&self.path, format!("{pid}\n"))
            .with_context(|| format!("writing {}", self.path.display()))
    }

    /// The recorded pid while that process is [`alive`] with `expect` in its command line (a pid
    /// reused by another process after a reboot is not taken for ours).
    pub fn live(&self, expect: &str) -> Option<u32> {
        let text = std::fs::read_to_string(&self.path).ok()?;
        let pid = text.lines().next()?.trim().parse().ok()?;
        alive(pid, expect).then_some(pid)
    }

    pub fn exists(&self) -> bool {
        self.path.exists()
    }

    pub fn remove(&self) -> anyhow::Result<()> {
        crate::redis_process::remove_if_present(&self.path)
    }
}

/// Whether `pid` runs (not a zombie) and its command line contains `expect`.
pub fn alive(pid: u32, expect: &str) -> bool {
    let Ok(raw) = i32::try_from(pid) else {
        return false;
    };
    !processes::is_dead(Pid::from_raw(raw))
        && processes::command_line(pid).is_some_and(|line| line.contains(expect))
}

/// Makes `command` a kept process: its own process group (a Ctrl-C in the terminal of the
/// launcher does not reach it), not killed when its `Child` is dropped, stdin closed, stdout and
/// stderr appended to `log`, `NO_COLOR=1` for plain text logs.
pub fn keep(command: &mut Command, log: &Path) -> anyhow::Result<()> {
    let output = File::options()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("opening {}", log.display()))?;
    command
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(output.try_clone()?)
        .stderr(output)
        .process_group(0)
        .kill_on_drop(false);
    Ok(())
}

/// Waits until `ready` holds, for up to `deadline`, while `child` runs; `what` names it in the
/// error, which quotes the end of `log`. A child that does not become ready is stopped: a failed
/// start leaves nothing running that no pid file records.
pub async fn until_ready<F, Fut>(
    what: &str,
    child: &mut Child,
    deadline: Duration,
    log: &Path,
    ready: F,
) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<bool>>,
{
    let waited = tokio::select! {
        waited = wait::until(what, deadline, ready) => waited.map(|_| ()),
        status = child.wait() => match status {
            Ok(status) => Err(anyhow!("exited with {status} while starting")),
            Err(error) => Err(anyhow!("waiting on it: {error}")),
        },
    };
    if let (Err(_), Some(pid)) = (&waited, child.id()) {
        // Reaped by the wait below or gone already: either way it no longer runs.
        let _ = stop(pid, Signal::SIGTERM, STOP_DEADLINE).await;
        let _ = child.wait().await;
    }
    waited.map_err(|error| error.context(wait::log_tail(log, LOG_TAIL_LINES)))
}

/// A service to start kept: `binary --config {config} {args}`.
#[derive(Debug, Clone, Copy)]
pub struct Service<'a> {
    pub binary: &'a Path,
    pub config: &'a Path,
    pub args: &'a [&'a str],
    pub log: &'a Path,
    /// Answers 2xx once the service is ready.
    pub health: &'a str,
}

/// Starts `service` kept, its pid recorded in `pid_file` at once, and waits until its health URL
/// answers 2xx; its pid.
pub async fn start_service(service: Service<'_>, pid_file: &PidFile) -> anyhow::Result<u32> {
    let Service {
        binary,
        config,
        args,
        log,
        health,
    } = service;
    let mut command = Command::new(binary);
    command.arg("--config").arg(config).args(args);
    keep(&mut command, log)?;
    let mut child = command
        .spawn()
        .with_context(|| format!("spawning {}", binary.display()))?;
    let pid = child.id().context("a child just spawned has a pid")?;
    pid_file.write(pid)?;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()?;
    until_ready(health, &mut child, START_DEADLINE, log, || {
        let request = client.get(health).send();
        async move { Ok(request.await?.status().is_success()) }
    })
    .await?;
    Ok(pid)
}

/// How [`stop`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// Exited after the signal.
    Exited,
    /// Still ran after [`STOP_DEADLINE`]: killed with its children.
    Killed,
}

/// Sends `signal` to `pid`, waits up to `deadline` for it to exit, then sends SIGKILL to it and
/// to its own children (nginx's workers, postgres's backends: found by parent pid).
pub async fn stop(pid: u32, signal: Signal, deadline: Duration) -> anyhow::Result<Stopped> {
    let target = Pid::from_raw(i32::try_from(pid)?);
    // Fails only when it exited already; the wait below sees that.
    let _ = kill(target, signal);
    let exited = wait::until(&format!("pid {pid} to exit"), deadline, || async move {
        Ok(processes::is_dead(target))
    })
    .await;
    if exited.is_ok() {
        return Ok(Stopped::Exited);
    }
    for child in processes::children_of(pid)? {
        let _ = kill(child, Signal::SIGKILL);
    }
    let _ = kill(target, Signal::SIGKILL);
    wait::until(&format!("pid {pid} to die"), deadline, || async move {
        Ok(processes::is_dead(target))
    })
    .await?;
    Ok(Stopped::Killed)
}
