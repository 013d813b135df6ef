//! Stopping a PostgreSQL the hard way: a postmaster killed with its backends (which would
//! otherwise outlive it and keep its shared memory, stopping the next start), and the System V
//! shared memory segment a killed postmaster leaves behind.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{self, Signal};
use tokio::process::Child;

use super::pid_of;
use crate::processes::{children_of, is_dead};
use crate::wait;

/// How long killed processes may take to die.
const REAP_DEADLINE: Duration = Duration::from_secs(10);

/// A postmaster that exits cleanly removes `postmaster.pid`; one that was killed leaves it, and
/// its System V shared memory segment, named on line 7 (`key id`). Removes that segment.
pub fn remove_leftover_shared_memory(data: &Path, port: u16) {
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

/// Kills a postmaster and the backends it forked, and reaps it. Backends outlive a killed
/// postmaster for a moment and keep its shared memory, which would stop the next start; so the
/// postmaster is frozen (it cannot fork then), its children are killed and awaited, then it is.
pub fn kill_tree(child: &mut Child, port: u16) {
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
