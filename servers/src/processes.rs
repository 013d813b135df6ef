//! What `/proc` says about a process: its state and parent (`/proc/{pid}/stat`), its children,
//! whether it is gone or a zombie, and its command line; and running a check as another user.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Stdio;

use anyhow::Context;
use nix::unistd::Pid;

/// The processes whose parent is `parent`, from `/proc/*/stat`.
pub fn children_of(parent: u32) -> anyhow::Result<Vec<Pid>> {
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
pub fn is_dead(pid: Pid) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => parse_stat(&stat).is_none_or(|(state, _)| matches!(state, 'Z' | 'X')),
        Err(_) => true,
    }
}

/// The command line of `pid`, its arguments joined by spaces; `None` when it is gone.
pub fn command_line(pid: u32) -> Option<String> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let args: Vec<String> = raw
        .split(|&byte| byte == 0)
        .filter(|arg| !arg.is_empty())
        .map(|arg| String::from_utf8_lossy(arg).into_owned())
        .collect();
    Some(args.join(" "))
}

/// Whether `test {flag} {path}` (`-w`, `-x`, `-r`) holds for the user `uid`/`gid`: a folder
/// may be closed to a user by one of its parents.
pub fn user_can(uid: u32, gid: u32, flag: &str, path: &Path) -> bool {
    std::process::Command::new("test")
        .arg(flag)
        .arg(path)
        .current_dir("/")
        .uid(uid)
        .gid(gid)
        .stdin(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// State and parent pid from a `/proc/{pid}/stat` line: `pid (comm) state ppid ...`, where
/// `comm` may itself contain spaces and parentheses.
pub fn parse_stat(stat: &str) -> Option<(char, u32)> {
    let after_comm = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_comm.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((state, ppid))
}

#[cfg(test)]
mod tests {
    use super::parse_stat;

    #[test]
    fn proc_stat_lines_are_parsed() {
        let check = |stat: &str, expected: Option<(char, u32)>| {
            assert_eq!(parse_stat(stat), expected, "{stat}");
        };
        check("4242 (postgres) S 4200 4242 4242 0 -1", Some(('S', 4200)));
        check("4243 (postgres: a) b) Z 4242 1 2", Some(('Z', 4242)));
        check("garbage", None);
    }

    #[test]
    fn this_process_is_alive_and_has_a_command_line() {
        let pid = std::process::id();
        assert!(!super::is_dead(nix::unistd::Pid::from_raw(pid as i32)));
        assert!(super::command_line(pid).is_some_and(|line| !line.is_empty()));
    }
}
