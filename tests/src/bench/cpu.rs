//! CPU time the stack's processes spend during a measured loop, read from `/proc/<pid>/stat`
//! (user + system, in clock ticks) before and after the loop, and turned into µs of CPU per
//! attempt per process. On a machine of `cores` cores shared by every process of the path, the
//! path cannot go faster than `cores × 10⁶ / total µs per attempt`: the `cpu_bound_rps` beside
//! each measured rate, which says whether a path is CPU-bound and which process spends the CPU.

use std::{collections::HashMap, future::Future, sync::OnceLock, time::Instant};

use serde_json::{json, Map, Value};

use super::world::World;
use crate::redis_under_test::RedisUnderTest;

/// What of a process's CPU time is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The process, every descendant alive at the reading, and every descendant already reaped
    /// (`cutime + cstime`: a child's time is added to its parent's when the parent waits for it).
    /// Between two readings the difference is exact: a child alive at the first reading and
    /// reaped before the second moves from the live sum into `cutime` with the time it spent in
    /// between; a child born and reaped in between is in `cutime` only. This is how postgres's
    /// short-lived backends and nginx's workers are counted. Not counted: a child that exited and
    /// is not reaped yet at the second reading, a few ticks at most.
    Tree,
    /// The process alone, its threads included (the bench client: its tree is the whole stack).
    Own,
    /// Only the children the process reaped (`cutime + cstime`): a tool such as `redis-benchmark`
    /// run and waited for by the bench during the measured window.
    Reaped,
}

/// One process to measure, named in the report.
#[derive(Debug, Clone)]
pub struct Process {
    pub name: &'static str,
    pub pid: u32,
    pub scope: Scope,
}

impl Process {
    pub fn tree(name: &'static str, pid: u32) -> Self {
        Self {
            name,
            pid,
            scope: Scope::Tree,
        }
    }

    /// The bench process itself, without the processes it started.
    pub fn client() -> Self {
        Self {
            name: "client",
            pid: std::process::id(),
            scope: Scope::Own,
        }
    }

    /// The tools the bench process ran and waited for.
    pub fn reaped_tools(name: &'static str) -> Self {
        Self {
            name,
            pid: std::process::id(),
            scope: Scope::Reaped,
        }
    }

    /// The pids counted: the process and, for [`Scope::Tree`], every descendant alive now.
    pub fn pids(&self) -> Vec<u32> {
        let mut out = vec![self.pid];
        if self.scope == Scope::Tree {
            let table = proc_table();
            let mut i = 0;
            while let Some(&pid) = out.get(i) {
                out.extend(table.children.get(&pid).into_iter().flatten());
                i += 1;
            }
        }
        out
    }
}

/// The stack's processes: nginx (master and workers), each edge, the origin, redis-server (every
/// node of a cluster, counted together as `redis`), postgres (postmaster and backends), and the
/// bench client.
pub fn stack_processes<R: RedisUnderTest>(world: &World<R>) -> Vec<Process> {
    const EDGES: [&str; 4] = ["edge_1", "edge_2", "edge_3", "edge_4"];
    let mut out = Vec::new();
    out.extend(world.nginx.pid().map(|p| Process::tree("nginx", p)));
    for (edge, name) in world.edges.iter().zip(EDGES) {
        out.extend(edge.pid().map(|p| Process::tree(name, p)));
    }
    out.extend(world.stack.origin.pid().map(|p| Process::tree("origin", p)));
    out.extend(
        world
            .stack
            .redis
            .pids()
            .into_iter()
            .map(|p| Process::tree("redis", p)),
    );
    let postgres = world.stack.postgres.pid();
    out.extend(postgres.map(|p| Process::tree("postgres", p)));
    out.push(Process::client());
    out
}

/// CPU seconds spent per process over one or more measured windows, and the machine's busy time
/// (every process on it, those of other users included, and interrupt time charged to none).
#[derive(Debug, Clone, Default)]
pub struct Spent {
    pub seconds: Vec<(&'static str, f64)>,
    pub machine_seconds: f64,
    /// Wall time of the windows.
    pub wall_seconds: f64,
}

impl Spent {
    /// Adds another window's figures (the same processes).
    pub fn add(&mut self, other: &Spent) {
        for (name, s) in &other.seconds {
            match self.seconds.iter_mut().find(|(n, _)| n == name) {
                Some((_, total)) => *total += s,
                None => self.seconds.push((name, *s)),
            }
        }
        self.machine_seconds += other.machine_seconds;
        self.wall_seconds += other.wall_seconds;
    }

    /// Total CPU seconds of the measured processes.
    pub fn total(&self) -> f64 {
        self.seconds.iter().map(|(_, s)| s).sum()
    }

    /// µs of CPU per attempt: one key per process, `total` (their sum) and `machine_busy` (the
    /// whole machine's busy time, not in `total`).
    pub fn per_attempt(&self, attempts: u64) -> Value {
        let per = |s: f64| s * 1e6 / attempts.max(1) as f64;
        let mut map = Map::new();
        for (name, s) in &self.seconds {
            map.insert((*name).to_string(), json!(per(*s)));
        }
        map.insert("total".into(), json!(per(self.total())));
        map.insert("machine_busy".into(), json!(per(self.machine_seconds)));
        Value::Object(map)
    }

    /// The rate at which the measured processes would use every core: cores × 10⁶ / total µs
    /// per attempt.
    pub fn cpu_bound_rps(&self, attempts: u64) -> f64 {
        let total = self.total();
        if total > 0.0 {
            cores() * attempts as f64 / total
        } else {
            f64::INFINITY
        }
    }
}

/// Reads the CPU time of a fixed set of processes.
#[derive(Debug, Clone)]
pub struct Meter {
    processes: Vec<Process>,
}

/// One reading: ticks per process (in the meter's order), machine busy ticks, when.
#[derive(Debug, Clone)]
pub struct Reading {
    ticks: Vec<u64>,
    machine: u64,
    at: Instant,
}

impl Meter {
    pub fn new(processes: Vec<Process>) -> Self {
        Self { processes }
    }

    pub fn read(&self) -> Reading {
        let table = proc_table();
        let ticks = self
            .processes
            .iter()
            .map(|p| table.ticks(p.pid, p.scope))
            .collect();
        Reading {
            ticks,
            machine: machine_busy_ticks(),
            at: Instant::now(),
        }
    }

    /// What was spent since `before`, per name (processes of one name, such as a cluster's
    /// nodes, summed).
    pub fn since(&self, before: &Reading) -> Spent {
        let after = self.read();
        let hz = ticks_per_second();
        let mut seconds: Vec<(&'static str, f64)> = Vec::new();
        for (p, (a, b)) in self
            .processes
            .iter()
            .zip(after.ticks.iter().zip(&before.ticks))
        {
            let spent = a.saturating_sub(*b) as f64 / hz;
            match seconds.iter_mut().find(|(name, _)| *name == p.name) {
                Some((_, total)) => *total += spent,
                None => seconds.push((p.name, spent)),
            }
        }
        Spent {
            seconds,
            machine_seconds: after.machine.saturating_sub(before.machine) as f64 / hz,
            wall_seconds: after.at.duration_since(before.at).as_secs_f64(),
        }
    }

    /// Runs `work` between two readings.
    pub async fn measure<T>(
        &self,
        work: impl Future<Output = anyhow::Result<T>>,
    ) -> anyhow::Result<(T, Spent)> {
        let before = self.read();
        let out = work.await?;
        Ok((out, self.since(&before)))
    }
}

/// The cores the machine offers (the CPU-bound rate's numerator).
pub fn cores() -> f64 {
    std::thread::available_parallelism().map_or(1.0, |n| n.get() as f64)
}

/// `sysconf(_SC_CLK_TCK)` by `getconf CLK_TCK` (100 on Linux when it cannot be asked).
fn ticks_per_second() -> f64 {
    static HZ: OnceLock<f64> = OnceLock::new();
    *HZ.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// The `cpu` line of `/proc/stat`: user + nice + system + irq + softirq ticks of all cores.
fn machine_busy_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = stat.lines().find(|l| l.starts_with("cpu ")) else {
        return 0;
    };
    let f: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    [0, 1, 2, 5, 6].iter().filter_map(|&i| f.get(i)).sum()
}

/// From a `/proc/<pid>/stat` line: parent pid, `utime + stime`, `cutime + cstime`. The command
/// name (field 2) may hold spaces and parentheses: fields are counted after its last `)`.
fn parse_stat(line: &str) -> Option<(u32, u64, u64)> {
    let rest = &line[line.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state(3) ppid(4) ... utime(14) stime(15) cutime(16) cstime(17).
    let num = |i: usize| f.get(i - 3)?.parse::<u64>().ok();
    let ppid = u32::try_from(num(4)?).ok()?;
    Some((ppid, num(14)? + num(15)?, num(16)? + num(17)?))
}

/// Every process's stat at one moment.
#[derive(Debug, Default)]
struct ProcTable {
    /// pid -> (own ticks, reaped children's ticks)
    stats: HashMap<u32, (u64, u64)>,
    children: HashMap<u32, Vec<u32>>,
}

fn proc_table() -> ProcTable {
    let mut table = ProcTable::default();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(line) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        if let Some((ppid, own, reaped)) = parse_stat(&line) {
            table.stats.insert(pid, (own, reaped));
            table.children.entry(ppid).or_default().push(pid);
        }
    }
    table
}

impl ProcTable {
    fn ticks(&self, pid: u32, scope: Scope) -> u64 {
        let (own, reaped) = self.stats.get(&pid).copied().unwrap_or_default();
        match scope {
            Scope::Own => own,
            Scope::Reaped => reaped,
            Scope::Tree => {
                let children = self.children.get(&pid).map(Vec::as_slice).unwrap_or(&[]);
                own + reaped
                    + children
                        .iter()
                        .map(|&c| self.ticks(c, Scope::Tree))
                        .sum::<u64>()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// CPU time this thread has run, from the scheduler's own account (`/proc/thread-self/
    /// schedstat`), a source apart from the `stat` files the meter reads.
    fn thread_cpu() -> Duration {
        let text = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap();
        let ns: u64 = text.split_whitespace().next().unwrap().parse().unwrap();
        Duration::from_nanos(ns)
    }

    /// Keeps this thread on a CPU until it has run for `d` (on a loaded machine that takes
    /// longer than `d` of wall time).
    fn spin(d: Duration) {
        let until = thread_cpu() + d;
        while thread_cpu() < until {
            for _ in 0..10_000 {
                std::hint::black_box(0);
            }
        }
    }

    #[test]
    fn stat_lines_with_odd_names() {
        let line = "42 (a) b (c)) S 7 42 42 0 -1 4194560 100 0 0 0 11 22 33 44 20 0 1 0";
        assert_eq!(parse_stat(line), Some((7, 33, 77)));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn own_busy_time_is_seen() {
        let meter = Meter::new(vec![Process::client()]);
        let before = meter.read();
        spin(Duration::from_millis(200));
        let spent = meter.since(&before);
        assert!(spent.total() >= 0.1, "{spent:?}");
        assert!(spent.wall_seconds >= 0.2);
        let per = spent.per_attempt(1000);
        assert!(per["client"].as_f64().unwrap() >= 100.0);
        assert!(per["total"].as_f64().unwrap() >= 100.0);
    }
}
