//! Creating a cluster from six new nodes with `redis-cli --cluster create`: the first three get the
//! slots, the other three become their replicas.

use std::process::Stdio;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use tokio::process::Command;

/// How long `redis-cli --cluster create` may take.
const CREATE_DEADLINE: Duration = Duration::from_secs(30);

/// Runs `redis-cli --cluster create` over the nodes on `ports` (127.0.0.1), one replica each;
/// its output.
pub async fn create(ports: &[u16]) -> anyhow::Result<String> {
    let program = std::env::var_os("REDIS_CLI").unwrap_or_else(|| "redis-cli".into());
    let addresses = ports.iter().map(|port| format!("127.0.0.1:{port}"));
    let run = Command::new(&program)
        .arg("--cluster")
        .arg("create")
        .args(addresses)
        .args(["--cluster-replicas", "1", "--cluster-yes"])
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(CREATE_DEADLINE, run)
        .await
        .map_err(|_| anyhow!("redis-cli --cluster create still ran after {CREATE_DEADLINE:?}"))?
        .with_context(|| format!("running {}", program.to_string_lossy()))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    if !output.status.success() {
        bail!(
            "redis-cli --cluster create failed with {}\n{text}",
            output.status
        );
    }
    Ok(text)
}
