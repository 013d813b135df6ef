//! dtm's own flash-sale bench server (`dtm-bench redis`, the package `helper/bench` of dtm
//! v1.19.0): a dtm server and the bench's routes in one process, on a Redis of its own. Its
//! `benchFlashSalesReset` runs `FLUSHALL` on that Redis and sets the stock to 0; each
//! `benchFlashSales` is one two-phase message (prepare at dtm, a stock deduction in Redis that
//! fails, abort), answered 409 `FAILURE` on stock 0.
//!
//! Two of its ports cannot be chosen: its client side sends its messages to
//! `http://localhost:36789/api/dtmsvr` (dtm's `DefaultHTTPServer`, a constant) and its stock lives
//! in the Redis at `localhost:6379` (a constant of dtm's test code). So its dtm listens on
//! [`BENCH_DTM_PORT`], it gets a `redis-server` of its own on [`BENCH_REDIS_PORT`], and one
//! [`DtmBench`] at a time runs on the machine: each holds an exclusive lock on [`LOCK_PATH`] for
//! as long as it lives, and the next one waits for it. Its gRPC and bench ports are free ports.
//!
//! The binary is the path in `DTM_BENCH_BIN` (`./deploy/test` installs it), else `dtm-bench` on
//! `PATH`.

use std::fs::File;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, ensure, Context};
use nix::fcntl::{Flock, FlockArg};
use tempfile::TempDir;
use tokio::process::Child;

use super::{api_url, process, DtmSettings};
use crate::redis_server::RedisServer;
use crate::{net, wait};

/// The port of the bench's dtm: its client is built with this one.
pub const BENCH_DTM_PORT: u16 = 36789;
/// The port of the bench's Redis: its stock is read and written there.
pub const BENCH_REDIS_PORT: u16 = 6379;
/// The lock a running [`DtmBench`] holds (fixed: one per machine, whatever `TMPDIR` says).
pub const LOCK_PATH: &str = "/tmp/flash-dtm-bench.lock";
/// How long [`DtmBench::start`] waits for another bench server to finish.
const LOCK_DEADLINE: Duration = Duration::from_secs(300);

/// A running dtm bench server on a Redis of its own, both killed when dropped.
pub struct DtmBench {
    child: Option<Child>,
    bench_port: u16,
    grpc_port: u16,
    redis: RedisServer,
    dir: TempDir,
    _lock: Flock<File>,
}

impl DtmBench {
    /// Waits until no other bench server runs, starts its Redis on [`BENCH_REDIS_PORT`] and the
    /// bench server (store in that Redis, dtm's defaults and `LOG_LEVEL=fatal`, as dtm's own
    /// `test-flash-sales.sh` runs it), and waits until both its dtm and its routes answer.
    pub async fn start() -> anyhow::Result<Self> {
        let lock = lock().await?;
        // Its dtm would log the bind error and run on: its client would talk to whatever holds
        // the port.
        if std::net::TcpStream::connect(("127.0.0.1", BENCH_DTM_PORT)).is_ok() {
            bail!(
                "port {BENCH_DTM_PORT} is taken: dtm's bench server needs it (its client is fixed \
                 to it); stop what listens there"
            );
        }
        let redis = RedisServer::start_on(BENCH_REDIS_PORT)
            .await
            .with_context(|| format!("the bench's Redis needs port {BENCH_REDIS_PORT}"))?;
        let dir = tempfile::Builder::new()
            .prefix("flash-dtm-bench-")
            .tempdir()
            .context("creating the temp dir of dtm-bench")?;
        let mut bench = Self {
            child: None,
            bench_port: net::free_port(),
            grpc_port: net::free_port(),
            redis,
            dir,
            _lock: lock,
        };
        bench.run().await?;
        Ok(bench)
    }

    /// `http://127.0.0.1:{port}/api/busi_bench`: `benchFlashSalesReset`, `benchFlashSales`, ...
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/api/busi_bench", self.bench_port)
    }

    /// The URL of one flash-sale attempt (what dtm's article measured with `ab -c 20`).
    pub fn flash_sales_url(&self) -> String {
        format!("{}/benchFlashSales", self.url())
    }

    /// The API of the dtm inside it.
    pub fn dtm_url(&self) -> String {
        api_url(BENCH_DTM_PORT)
    }

    /// Its Redis (stock and dtm's store).
    pub fn redis(&self) -> &RedisServer {
        &self.redis
    }

    /// The pid of the bench process (its dtm runs inside it).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("dtm-bench.log")
    }

    /// `benchFlashSalesReset`: `FLUSHALL` on its Redis, then the stock set to 0.
    pub async fn reset(&self) -> anyhow::Result<()> {
        let url = format!("{}/benchFlashSalesReset", self.url());
        let answer = reqwest::get(&url).await?;
        let status = answer.status();
        ensure!(
            status.is_success(),
            "{url}: {status} {}",
            answer.text().await?
        );
        Ok(())
    }

    async fn run(&mut self) -> anyhow::Result<()> {
        // dtm's defaults, as its own bench script runs it.
        let settings = DtmSettings {
            store_port: BENCH_REDIS_PORT,
            redis_prefix: "{a}".to_owned(),
            cron_interval_secs: 3,
        };
        let mut env = settings.env(BENCH_DTM_PORT, self.grpc_port);
        env.extend([
            ("BENCH_PORT".to_owned(), self.bench_port.to_string()),
            ("LOG_LEVEL".to_owned(), "fatal".to_owned()),
        ]);
        let launch = process::Launch {
            binary: process::binary("DTM_BENCH_BIN", "dtm-bench")?,
            args: vec!["redis".to_owned()],
            env,
            log: self.log_path(),
        };
        let child = self.child.insert(launch.spawn()?);
        let probe = format!("{}/newGid", api_url(BENCH_DTM_PORT));
        let ports = [self.grpc_port, self.bench_port];
        process::until_up("dtm-bench", child, &probe, &ports, &launch.log).await
    }
}

impl Drop for DtmBench {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            process::kill(&mut child);
        }
    }
}

/// The exclusive lock on [`LOCK_PATH`], once the bench server holding it is gone.
async fn lock() -> anyhow::Result<Flock<File>> {
    let mut held = None;
    wait::until(
        "the other dtm bench server to finish",
        LOCK_DEADLINE,
        || {
            let attempt = File::options()
                .create(true)
                .truncate(false)
                .write(true)
                .open(LOCK_PATH)
                .with_context(|| format!("opening {LOCK_PATH}"))
                .map(|file| Flock::lock(file, FlockArg::LockExclusiveNonblock));
            let got = match attempt {
                Ok(Ok(lock)) => {
                    held = Some(lock);
                    Ok(true)
                }
                Ok(Err((_, errno))) => Err(anyhow::anyhow!("{LOCK_PATH} is locked: {errno}")),
                Err(error) => Err(error),
            };
            async move { got }
        },
    )
    .await?;
    held.context("wait::until returned Ok only once the lock was taken")
}
