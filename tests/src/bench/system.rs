//! What the benchmark reads off the machine and its processes: cores, CPU model, server versions,
//! a process's resident memory, and Redis's command counts (round trips only: commands a script
//! runs inside Redis are counted by `INFO commandstats` too, and are left out here).

use std::{collections::BTreeMap, collections::HashSet, path::Path};

use serde_json::{json, Value};

use crate::{redis_cluster::CLUSTER_BOOKKEEPING_COMMANDS, redis_server::BOOKKEEPING_COMMANDS};

/// Cores, CPU model and the versions of Redis, PostgreSQL and nginx.
pub async fn machine() -> Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|l| l.trim_start_matches([' ', '\t', ':']).to_string())
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    json!({
        "cores": cores,
        "cpu": model,
        "redis": version("redis-server", &["--version"]).await,
        "postgres": version(&pg_binary("postgres"), &["--version"]).await,
        "nginx": version(&crate::nginx_server::nginx_binary().to_string_lossy(), &["-v"]).await,
    })
}

fn pg_binary(name: &str) -> String {
    std::env::var("PG_BIN")
        .map(|dir| format!("{dir}/{name}"))
        .unwrap_or_else(|_| name.to_string())
}

async fn version(bin: &str, args: &[&str]) -> String {
    match tokio::process::Command::new(bin).args(args).output().await {
        Ok(out) => {
            let text = String::from_utf8_lossy(&out.stdout).to_string()
                + &String::from_utf8_lossy(&out.stderr);
            text.lines().next().unwrap_or_default().trim().to_string()
        }
        Err(e) => format!("unknown ({e})"),
    }
}

/// Resident and peak resident memory of `pid`, in MiB: (VmRSS, VmHWM).
pub fn rss_mb(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Lower-case names of the commands the scripts in `lua/` call.
pub fn commands_inside_scripts(lua_dir: &Path) -> HashSet<String> {
    let mut commands = HashSet::new();
    for entry in std::fs::read_dir(lua_dir).into_iter().flatten().flatten() {
        let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
        for call in text.split("redis.call('").skip(1) {
            if let Some(name) = call.split('\'').next() {
                commands.insert(name.to_lowercase());
            }
        }
    }
    commands
}

/// Round trips in `stats` (an `INFO commandstats` reading): every command but those scripts run
/// inside Redis, the benchmark's own bookkeeping and, on a cluster, the harness's questions and
/// the replicas' replication traffic (a client's `CLUSTER SLOTS` is counted).
pub fn round_trips(stats: &BTreeMap<String, u64>, inside: &HashSet<String>) -> u64 {
    stats
        .iter()
        .filter(|(cmd, _)| {
            !inside.contains(cmd.as_str())
                && !BOOKKEEPING_COMMANDS.contains(&cmd.as_str())
                && !CLUSTER_BOOKKEEPING_COMMANDS.contains(&cmd.as_str())
                && cmd.as_str() != "ping"
        })
        .map(|(_, n)| n)
        .sum()
}

/// The median of `values` (0 when empty).
pub fn median(values: &mut [f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 0 {
        (values[mid - 1] + values[mid]) / 2.0
    } else {
        values[mid]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_round_trips() {
        assert!((median(&mut [3.0, 1.0, 2.0]) - 2.0).abs() < 1e-9);
        assert!((median(&mut [4.0, 1.0, 2.0, 3.0]) - 2.5).abs() < 1e-9);
        assert!(median(&mut []).abs() < 1e-9);
        let inside: HashSet<String> = ["decr".to_string()].into();
        let stats: BTreeMap<String, u64> = [
            ("evalsha".into(), 3),
            ("decr".into(), 3),
            ("info".into(), 1),
        ]
        .into();
        assert_eq!(round_trips(&stats, &inside), 3);
    }
}
