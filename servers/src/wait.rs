//! Waiting with a deadline instead of sleeping: poll a condition until it holds, or wait for a
//! child process to exit, and fail with a message naming what was awaited and the last error seen.
//! Also reads the tail of a server's log, which is what those messages need when a server does
//! not come up.

use std::future::Future;
use std::path::Path;
use std::process::ExitStatus;
use std::time::Duration;

use anyhow::{anyhow, Context};
use tokio::process::Child;

/// How often [`until`] and [`until_blocking`] poll their condition.
pub const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// Polls `condition` every [`POLL_INTERVAL`] until it returns `Ok(true)`, and returns how long
/// that took.
///
/// `Ok(false)` and `Err(_)` both mean "not yet": a server that is still starting refuses
/// connections, which is expected. The last error is kept and becomes the cause of the timeout
/// error, whose message names `what`. A single poll that hangs is cut off at the deadline too.
///
/// Uses tokio's clock: under `tokio::time::pause()` the deadline passes in virtual time, so do not
/// wait on a real process with the clock paused.
pub async fn until<F, Fut>(
    what: &str,
    deadline: Duration,
    mut condition: F,
) -> anyhow::Result<Duration>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<bool>>,
{
    let start = tokio::time::Instant::now();
    let mut last_error = None;
    loop {
        match tokio::time::timeout_at(start + deadline, condition()).await {
            Ok(Ok(true)) => return Ok(start.elapsed()),
            Ok(Ok(false)) => {}
            Ok(Err(error)) => last_error = Some(error),
            Err(_elapsed) => {
                let error = anyhow!("the last check was still running at the deadline");
                return Err(timed_out(what, deadline, Some(error)));
            }
        }
        if start.elapsed() >= deadline {
            return Err(timed_out(what, deadline, last_error));
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// [`until`] for code that cannot await, such as `Drop`: blocks the thread between polls.
///
/// Meant for short waits (a killed process being reaped); on a runtime thread it stalls the other
/// tasks of that thread for as long as it waits.
pub fn until_blocking<F>(
    what: &str,
    deadline: Duration,
    mut condition: F,
) -> anyhow::Result<Duration>
where
    F: FnMut() -> anyhow::Result<bool>,
{
    let start = std::time::Instant::now();
    let mut last_error = None;
    loop {
        match condition() {
            Ok(true) => return Ok(start.elapsed()),
            Ok(false) => {}
            Err(error) => last_error = Some(error),
        }
        if start.elapsed() >= deadline {
            return Err(timed_out(what, deadline, last_error));
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

fn timed_out(what: &str, deadline: Duration, last_error: Option<anyhow::Error>) -> anyhow::Error {
    let message = format!("timed out after {deadline:?} waiting for {what}");
    match last_error {
        Some(error) => error.context(message),
        None => anyhow!("{message} (the condition stayed false)"),
    }
}

/// Sends SIGKILL to `child` unless it has already exited, and reaps it, blocking the thread until
/// it is gone or `deadline` passes. Returns its exit status.
///
/// Reaping through the tokio `Child` (not `waitpid` on its pid) keeps tokio's view of the child
/// right, so a later `kill_on_drop` cannot signal a recycled pid.
pub fn kill_and_reap(child: &mut Child, deadline: Duration) -> anyhow::Result<ExitStatus> {
    if child.try_wait()?.is_none() {
        // Fails only when the child exited between the two calls; the wait below reaps it then.
        let _ = child.start_kill();
    }
    let mut status = None;
    until_blocking("a killed child process to exit", deadline, || {
        status = child.try_wait()?;
        Ok(status.is_some())
    })?;
    status.context("until_blocking returned Ok only once try_wait gave a status")
}

/// The last `lines` lines of the log at `path`, framed with its path, for an error message.
/// Never fails: an unreadable log is reported in the text.
pub fn log_tail(path: &Path, lines: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            let tail = &all[all.len().saturating_sub(lines)..];
            format!(
                "--- last {} lines of {} ---\n{}\n--- end of log ---",
                tail.len(),
                path.display(),
                tail.join("\n")
            )
        }
        Err(error) => format!("--- could not read {}: {error} ---", path.display()),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use anyhow::anyhow;

    use super::{log_tail, until, until_blocking};

    #[tokio::test]
    async fn until_returns_once_the_condition_holds() -> anyhow::Result<()> {
        let mut polls = 0;
        until("three polls", Duration::from_secs(5), || {
            polls += 1;
            let done = polls >= 3;
            async move { Ok(done) }
        })
        .await?;
        assert_eq!(polls, 3);
        Ok(())
    }

    #[tokio::test]
    async fn until_names_what_and_the_last_error_on_timeout() {
        let error = until("the moon", Duration::from_millis(60), || async {
            Err::<bool, _>(anyhow!("connection refused"))
        })
        .await
        .err()
        .map(|e| format!("{e:#}"));
        let error = error.unwrap_or_default();
        assert!(error.contains("waiting for the moon"), "{error}");
        assert!(error.contains("connection refused"), "{error}");
    }

    #[tokio::test]
    async fn until_cuts_off_a_hanging_check() {
        let result = until("a hang", Duration::from_millis(50), || {
            std::future::pending::<anyhow::Result<bool>>()
        })
        .await;
        assert!(result.is_err());
    }

    #[test]
    fn until_blocking_says_when_the_condition_stayed_false() {
        let error = until_blocking("never", Duration::from_millis(30), || Ok(false))
            .err()
            .map(|e| format!("{e:#}"))
            .unwrap_or_default();
        assert!(error.contains("stayed false"), "{error}");
    }

    #[test]
    fn log_tail_keeps_the_last_lines() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("server.log");
        std::fs::write(&path, "one\ntwo\nthree\nfour\n")?;
        let tail = log_tail(&path, 2);
        assert!(tail.contains("three\nfour"), "{tail}");
        assert!(!tail.contains("two"), "{tail}");
        assert!(log_tail(&dir.path().join("missing.log"), 2).contains("could not read"));
        Ok(())
    }
}
