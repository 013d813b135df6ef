//! The baselines measured in the same run as the stack: a bare hyper "hello" server, a bare nginx
//! answering `return 200` (same nginx binary, same worker settings as the stack's), and
//! `redis-benchmark` running the project's own reserve script by EVALSHA.

use std::{path::Path, process::Stdio, time::Duration};

use anyhow::{bail, ensure, Context};
use redis::AsyncCommands;
use tempfile::TempDir;
use tokio::process::{Child, Command};

use super::{
    cpu::{Meter, Spent},
    phases::{CONCURRENCY, REDIS_BENCHMARK_REQUESTS},
    world::World,
};
use crate::{net, nginx_server::nginx_binary, redis_under_test::RedisUnderTest, wait};

/// A baseline server process, killed when dropped with its whole process group (nginx's
/// workers outlive a master killed alone).
pub struct Baseline {
    pub url: String,
    child: Child,
    _dir: Option<TempDir>,
}

impl Baseline {
    /// The server's pid (nginx: the master's), while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }
}

impl Drop for Baseline {
    fn drop(&mut self) {
        if let Some(pid) = self.child.id().and_then(|p| i32::try_from(p).ok()) {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let _ = self.child.start_kill();
    }
}

async fn answering(url: &str) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    wait::until(url, Duration::from_secs(20), || {
        let req = http.get(url).send();
        async move { Ok(req.await?.status().is_success()) }
    })
    .await?;
    Ok(())
}

/// `hello-server` from `bin_dir`.
pub async fn hello(bin_dir: &Path) -> anyhow::Result<Baseline> {
    let port = net::free_port();
    let child = Command::new(bin_dir.join("hello-server"))
        .arg("--port")
        .arg(port.to_string())
        .stdin(Stdio::null())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .context("hello-server")?;
    let url = format!("http://127.0.0.1:{port}/");
    answering(&url).await?;
    Ok(Baseline {
        url,
        child,
        _dir: None,
    })
}

/// nginx with one `location / { return 200; }`.
pub async fn nginx_return_200() -> anyhow::Result<Baseline> {
    let dir = tempfile::Builder::new().prefix("nginx-200-").tempdir()?;
    let port = net::free_port();
    let prefix = dir.path().display().to_string();
    let user = if nix::unistd::geteuid().is_root() {
        "user root root;"
    } else {
        ""
    };
    let conf = format!(
        "{user}\nworker_processes auto;\ndaemon off;\npid {prefix}/nginx.pid;\n\
         error_log {prefix}/error.log warn;\nevents {{ worker_connections 4096; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {prefix}/body;\n  proxy_temp_path {prefix}/proxy;\n\
         fastcgi_temp_path {prefix}/fastcgi;\n  uwsgi_temp_path {prefix}/uwsgi;\n  scgi_temp_path {prefix}/scgi;\n\
         keepalive_requests 100000;\n  server {{\n    listen 127.0.0.1:{port};\n\
         location / {{ return 200 \"ok\"; }}\n  }}\n}}\n"
    );
    let path = dir.path().join("nginx.conf");
    std::fs::write(&path, conf)?;
    let child = Command::new(nginx_binary())
        .arg("-p")
        .arg(dir.path())
        .arg("-c")
        .arg(&path)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .context("nginx")?;
    let url = format!("http://127.0.0.1:{port}/");
    answering(&url).await?;
    Ok(Baseline {
        url,
        child,
        _dir: Some(dir),
    })
}

/// The sale the reserve baseline runs on: an id no sale in PostgreSQL will reach, so the origin's
/// recovery poller (which polls the sales PostgreSQL knows) never claims the baseline's fake
/// reservations and runs them into PostgreSQL during later phases.
pub const REDIS_BASELINE_SALE: i64 = 9_000_000_000_000_000_000;

/// Units of the baseline sale's stock: more than any run reserves, so every call is a reserve.
const REDIS_BASELINE_STOCK: i64 = 1_000_000_000;

/// `redis-benchmark` of `reserve.lua` by EVALSHA with random uids, at `concurrency`, on
/// [`REDIS_BASELINE_SALE`] (on a cluster, against the primary of its slot), with the keys the script touches in the live path. The sale's stock
/// key is set before, and every key of its hash tag (stock, barriers, transaction records, due
/// set) deleted after. Requests per second, and the CPU `meter` read over the run of
/// `redis-benchmark` alone.
pub async fn redis_reserve<R: RedisUnderTest>(
    redis: &R,
    lua_dir: &Path,
    concurrency: usize,
    requests: u64,
    meter: &Meter,
) -> anyhow::Result<(f64, Spent)> {
    let sale = REDIS_BASELINE_SALE;
    let tag = format!("{{s:{sale}}}");
    let port = redis.port_of(&format!("{tag}:stock")).await?;
    let mut conn = redis.sale_connection(sale).await?;
    let () = redis::cmd("SET")
        .arg(format!("{tag}:stock"))
        .arg(REDIS_BASELINE_STOCK)
        .query_async(&mut conn)
        .await?;
    let measured = async {
        let sha = load_script(port, lua_dir).await?;
        let mut command = benchmark_command(port, &sha, &tag, sale, concurrency, requests);
        let (out, spent) = meter
            .measure(async { command.output().await.context("redis-benchmark") })
            .await?;
        let text = String::from_utf8_lossy(&out.stdout);
        let said = || format!("{text}{}", String::from_utf8_lossy(&out.stderr));
        let rps = text
            .lines()
            .filter_map(|l| l.split(',').nth(1))
            .filter_map(|v| v.trim_matches('"').parse::<f64>().ok())
            .next()
            .with_context(|| format!("redis-benchmark output: {}", said()))?;
        // A script that errs (its keys or arguments out of step with reserve.lua) is answered
        // as fast as one that reserves: the units taken say which ran.
        let left: i64 = conn.get(format!("{tag}:stock")).await?;
        let taken = u64::try_from(REDIS_BASELINE_STOCK - left)?;
        ensure!(
            taken >= requests * 9 / 10,
            "reserve.lua took {taken} units in {requests} calls: {}",
            said()
        );
        anyhow::Ok((rps, spent))
    }
    .await;
    let deleted = delete_matching(&mut conn, &format!("{tag}:*")).await;
    let measured = measured?;
    deleted.with_context(|| format!("deleting the keys of {tag}"))?;
    Ok(measured)
}

/// `SCRIPT LOAD` of `reserve.lua`: its sha.
async fn load_script(redis_port: u16, lua_dir: &Path) -> anyhow::Result<String> {
    let script = std::fs::read_to_string(lua_dir.join("reserve.lua"))?;
    let load = Command::new("redis-cli")
        .args(["-p", &redis_port.to_string(), "SCRIPT", "LOAD", &script])
        .output()
        .await
        .context("redis-cli")?;
    let sha = String::from_utf8_lossy(&load.stdout).trim().to_string();
    if sha.len() != 40 {
        bail!("SCRIPT LOAD answered {sha:?}");
    }
    Ok(sha)
}

/// `redis-benchmark` of the script `sha` with the keys and arguments the live path gives it
/// (see `lua/reserve.lua`), a random gid per request, CSV output.
fn benchmark_command(
    redis_port: u16,
    sha: &str,
    tag: &str,
    sale: i64,
    concurrency: usize,
    requests: u64,
) -> Command {
    let mut command = Command::new("redis-benchmark");
    command
        .args(["-p", &redis_port.to_string()])
        .args(["-c", &concurrency.to_string()])
        .args(["-n", &requests.to_string()])
        .args(["-r", "1000000000", "--csv", "EVALSHA", sha, "8"])
        .arg(format!("{tag}:stock"))
        .arg(format!("{tag}:b:{sale}/__rand_int__"))
        .arg(format!("{tag}:tx:{sale}/__rand_int__"))
        .arg(format!("{tag}:due"))
        .arg(format!("{tag}:healing"))
        .arg(format!("{tag}:fence"))
        .arg(format!("{tag}:restocks"))
        // No dtm message: the marker's key as the origin names it then (never read).
        .arg(format!("{tag}:m:"))
        .arg(format!("{sale}/__rand_int__"))
        .arg("bench-user")
        .arg("60000")
        .arg(format!("{tag}:events"))
        .arg("0")
        .arg("");
    command
}

/// Deletes every key matching `pattern` (SCAN, then UNLINK a batch at a time); the number deleted.
async fn delete_matching(
    conn: &mut redis::aio::MultiplexedConnection,
    pattern: &str,
) -> anyhow::Result<u64> {
    let mut cursor: u64 = 0;
    let mut deleted = 0;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(10_000)
            .query_async(conn)
            .await?;
        if !keys.is_empty() {
            let n: u64 = redis::cmd("UNLINK").arg(&keys).query_async(conn).await?;
            deleted += n;
        }
        if next == 0 {
            return Ok(deleted);
        }
        cursor = next;
    }
}

/// One `redis-benchmark` run of `reserve.lua` on `world`'s Redis at the phases' concurrency and
/// request count ([`redis_reserve`]): its requests per second, and the CPU `meter` read.
pub(super) async fn redis_reserve_run<R: RedisUnderTest>(
    world: &World<R>,
    meter: &Meter,
) -> anyhow::Result<(f64, Spent)> {
    redis_reserve(
        &world.stack.redis,
        &world.lua_dir(),
        CONCURRENCY,
        REDIS_BENCHMARK_REQUESTS,
        meter,
    )
    .await
}
