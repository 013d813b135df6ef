//! One `up` or `down` at a time per state folder: an exclusive flock on `STATE_DIR/.lock`, held
//! until the launcher exits (the kept processes do not inherit it: Rust opens files close-on-exec).

use std::path::Path;

use anyhow::{anyhow, Context};
use nix::fcntl::{Flock, FlockArg};

/// The held lock; released when dropped.
pub type Lock = Flock<std::fs::File>;

/// Takes the lock of `state`, or says who holds it (`shown`: the folder as the user types it).
pub fn take(state: &Path, shown: &str) -> anyhow::Result<Lock> {
    let path = state.join(".lock");
    let file =
        std::fs::File::create(&path).with_context(|| format!("opening {}", path.display()))?;
    Flock::lock(file, FlockArg::LockExclusiveNonblock)
        .map_err(|_| anyhow!("another deploy/up or deploy/down is running on {shown}"))
}
