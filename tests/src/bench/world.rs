//! The benchmark's stack, from release binaries: Redis (one server, or a cluster for
//! `--redis cluster`), PostgreSQL, an origin, two edges and nginx in front, on free loopback ports in temp dirs, configured for load (a low proof-of-work
//! difficulty, limits above the load, so the figures measure the path and not the limits; the
//! crowd phase has its own bots to meet the limits). Plus what the phases need: sales, users with
//! pass tokens, metrics.

use std::path::{Path, PathBuf};

use anyhow::ensure;

use crate::{
    edge_process::{EdgeOptions, EdgeProcess},
    nginx_server::NginxServer,
    origin_process::OriginOptions,
    postgres_server::PostgresServer,
    redis_server::RedisServer,
    redis_under_test::RedisUnderTest,
    shopper,
    stack::Stack,
};

pub struct World<R = RedisServer> {
    pub stack: Stack<R>,
    pub edges: Vec<EdgeProcess>,
    pub nginx: NginxServer,
    pub bin_dir: PathBuf,
    pub repo: PathBuf,
    /// Where to write CPU profiles of the measured loops (`--profile`), if anywhere.
    pub profile_dir: Option<PathBuf>,
    /// The edges' settings (a phase that changes them writes them back).
    pub edge_options: EdgeOptions,
}

/// One user ready to buy: uid, user JWT, pass token.
#[derive(Debug, Clone)]
pub struct Buyer {
    pub uid: String,
    pub jwt: String,
    pub pass: String,
}

pub use crate::shopper::now_unix;

impl World {
    /// Starts everything on one Redis server; binaries are taken from `bin_dir` (target/release).
    pub async fn start(bin_dir: &Path, repo: &Path) -> anyhow::Result<Self> {
        let (redis, postgres) = tokio::try_join!(RedisServer::start(), PostgresServer::start())?;
        World::on(redis, postgres, bin_dir, repo, origin_options()).await
    }
}

/// The origin's settings in the bench: the defaults, at the shipped log level (info), not the
/// tests' debug.
pub fn origin_options() -> OriginOptions {
    OriginOptions {
        log: "info",
        ..OriginOptions::default()
    }
}

impl<R: RedisUnderTest> World<R> {
    /// Starts the origin (with `options`), the edges and nginx on `redis` and `postgres`, both
    /// running; binaries are taken from `bin_dir` (target/release).
    pub async fn on(
        redis: R,
        postgres: PostgresServer,
        bin_dir: &Path,
        repo: &Path,
        options: OriginOptions,
    ) -> anyhow::Result<Self> {
        let origin_bin = bin_dir.join("origin");
        let edge_bin = bin_dir.join("edge");
        ensure!(
            origin_bin.is_file() && edge_bin.is_file(),
            "build first: cargo build --release -p origin -p edge"
        );
        let stack = Stack::on(redis, postgres, &origin_bin, &options).await?;
        let options = EdgeOptions {
            ip_per_second: 1_000_000.0,
            ip_burst: 1_000_000,
            uid_per_second: 1000.0,
            uid_burst: 1000,
            global_per_second: 1_000_000,
            global_lease: 100,
            levels: vec![(0, 4, false)],
            origin_timeout_ms: 5000,
            log: "info",
            ..EdgeOptions::default()
        };
        let mut edges = Vec::new();
        for _ in 0..2 {
            edges.push(
                EdgeProcess::start(
                    &edge_bin,
                    &stack.redis.target(),
                    &[stack.origin.url()],
                    &options,
                )
                .await?,
            );
        }
        let upstreams: Vec<String> = edges
            .iter()
            .map(|e| e.url().trim_start_matches("http://").to_string())
            .collect();
        let nginx = NginxServer::start(&upstreams, &repo.join("static")).await?;
        Ok(Self {
            stack,
            edges,
            nginx,
            bin_dir: bin_dir.to_path_buf(),
            repo: repo.to_path_buf(),
            profile_dir: None,
            edge_options: options,
        })
    }

    pub fn jwt(&self, uid: &str) -> anyhow::Result<String> {
        shopper::jwt(uid)
    }

    pub async fn create_sale(&self, stock: i64) -> anyhow::Result<i64> {
        self.stack.create_sale(stock).await
    }

    /// `n` users of `prefix` with pass tokens for `sale`, made through edge `edge` directly
    /// (not measured), `concurrency` at a time.
    pub async fn buyers(
        &self,
        sale: i64,
        prefix: &str,
        n: usize,
        concurrency: usize,
    ) -> anyhow::Result<Vec<Buyer>> {
        self.buyers_minted(sale, prefix, n, concurrency, |uid| self.jwt(uid))
            .await
    }

    /// As [`World::buyers`], each user's token made by `mint` from their uid.
    pub async fn buyers_minted(
        &self,
        sale: i64,
        prefix: &str,
        n: usize,
        concurrency: usize,
        mint: impl Fn(&str) -> anyhow::Result<String>,
    ) -> anyhow::Result<Vec<Buyer>> {
        let http = self.stack.http.clone();
        let mut out = Vec::with_capacity(n);
        let mut pending = tokio::task::JoinSet::new();
        for i in 0..n {
            let uid = format!("{prefix}-{i}");
            let jwt = mint(&uid)?;
            let url = self.edges[i % self.edges.len()].url();
            let http = http.clone();
            pending.spawn(async move { pass(&http, &url, sale, uid, jwt).await });
            if pending.len() >= concurrency {
                if let Some(done) = pending.join_next().await {
                    out.push(done??);
                }
            }
        }
        while let Some(done) = pending.join_next().await {
            out.push(done??);
        }
        Ok(out)
    }

    pub async fn origin_metrics(&self) -> anyhow::Result<String> {
        let url = format!("{}/metrics", self.stack.origin.url());
        Ok(self.stack.http.get(url).send().await?.text().await?)
    }

    pub fn lua_dir(&self) -> PathBuf {
        self.repo.join("lua")
    }
}

async fn pass(
    http: &reqwest::Client,
    edge: &str,
    sale: i64,
    uid: String,
    jwt: String,
) -> anyhow::Result<Buyer> {
    let pass = shopper::pass_token(http, edge, &jwt, sale, None).await?;
    Ok(Buyer { uid, jwt, pass })
}
