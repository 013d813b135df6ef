//! The origin's whole world for one test: a real Redis (one server by default, or a cluster: see
//! [`RedisUnderTest`]), a real PostgreSQL and an origin process, with the calls tests make (create
//! a sale, reserve, reconcile) and the books of a sale read straight from both stores, checked
//! against the invariants of DESIGN.md.

use std::{
    collections::{BTreeMap, HashSet},
    path::Path,
    time::Duration,
};

use anyhow::{ensure, Context};
use redis::AsyncCommands;
use serde_json::{json, Value};

use crate::{
    origin_process::{OriginOptions, OriginProcess},
    postgres_server::PostgresServer,
    redis_server::RedisServer,
    redis_under_test::RedisUnderTest,
    wait,
};

pub struct Stack<R = RedisServer> {
    pub redis: R,
    pub postgres: PostgresServer,
    pub origin: OriginProcess,
    pub http: reqwest::Client,
}

/// A sale's books, read from Redis and PostgreSQL at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Books {
    pub total: i64,
    /// `sales.sold` in PostgreSQL.
    pub sold: i64,
    pub redis_remaining: i64,
    pub pending: i64,
    pub paid: i64,
    pub rejected: i64,
    pub cancelled: i64,
    /// Transactions not completed (the due set).
    pub in_flight: i64,
    /// Units of cancelled holds not yet back in Redis.
    pub returning: i64,
    /// Transaction records in Redis, by state.
    pub tx_states: BTreeMap<String, i64>,
    /// Order rows per gid, most seen.
    pub max_orders_per_gid: i64,
    /// Live orders per (sale, uid), most seen.
    pub max_live_per_user: i64,
    /// Order rows whose gid has no transaction record in Redis.
    pub orders_without_tx: i64,
}

impl Books {
    pub fn live(&self) -> i64 {
        self.pending + self.paid
    }

    /// The invariants that hold at every moment, even read while purchases run (the books are
    /// not one snapshot of both stores): I1, I3, and no doubled order.
    pub fn check_safety(&self) -> anyhow::Result<()> {
        ensure!(self.live() <= self.total, "I1 oversell: {self:?}");
        ensure!(
            self.redis_remaining >= 0,
            "I1 Redis stock below 0: {self:?}"
        );
        ensure!(
            self.max_live_per_user <= 1,
            "I3 two live orders for one user: {self:?}"
        );
        ensure!(self.max_orders_per_gid <= 1, "I4 doubled order: {self:?}");
        Ok(())
    }

    /// Checks I1, I3 and I4 and, once nothing is in flight, I2. Read the books at a quiet
    /// moment (no request running) for the whole check to hold.
    pub fn check(&self) -> anyhow::Result<()> {
        ensure!(self.live() <= self.total, "I1 oversell: {self:?}");
        ensure!(
            self.redis_remaining >= 0,
            "I1 Redis stock below 0: {self:?}"
        );
        ensure!(
            self.sold == self.live(),
            "sales.sold != live orders: {self:?}"
        );
        ensure!(
            self.max_live_per_user <= 1,
            "I3 two live orders for one user: {self:?}"
        );
        ensure!(self.max_orders_per_gid <= 1, "I4 doubled order: {self:?}");
        ensure!(
            self.orders_without_tx == 0,
            "I4 order without a transaction: {self:?}"
        );
        if self.in_flight == 0 && self.returning == 0 {
            let granted: i64 = self.tx_states.values().sum();
            let orders = self.live() + self.rejected + self.cancelled;
            ensure!(
                granted == orders,
                "I4 lost order: {granted} transactions, {orders} orders: {self:?}"
            );
            ensure!(
                self.redis_remaining + self.live() == self.total,
                "I2 conservation: {} remaining + {} live != {} stock: {self:?}",
                self.redis_remaining,
                self.live(),
                self.total
            );
        }
        Ok(())
    }
}

/// What one `origin reconcile` run came to.
#[derive(Debug, Clone)]
pub struct Reconciled {
    /// 0 books balance, 1 drift, 2 failure.
    pub code: i32,
    /// The JSON report; `Value::Null` when the command failed before printing it.
    pub report: Value,
    pub stderr: String,
}

impl Stack {
    /// Starts one Redis server, PostgreSQL and the origin `binary` with `options`.
    pub async fn start(binary: &Path, options: OriginOptions) -> anyhow::Result<Self> {
        let (redis, postgres) = tokio::try_join!(RedisServer::start(), PostgresServer::start())?;
        Stack::on(redis, postgres, binary, &options).await
    }
}

impl<R: RedisUnderTest> Stack<R> {
    /// Starts the origin `binary` with `options` on `redis` and `postgres`, both running.
    pub async fn on(
        redis: R,
        postgres: PostgresServer,
        binary: &Path,
        options: &OriginOptions,
    ) -> anyhow::Result<Self> {
        let origin =
            OriginProcess::start(binary, &redis.target(), &postgres.url(), options, None).await?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()?;
        Ok(Self {
            redis,
            postgres,
            origin,
            http,
        })
    }

    pub async fn create_sale(&self, stock: i64) -> anyhow::Result<i64> {
        let (status, body) = self
            .post(
                "/v1/sales",
                &json!({"name": "Test sneakers", "stock": stock}),
            )
            .await?;
        ensure!(status == 201, "create sale: {status} {body}");
        body["id"].as_i64().context("sale id")
    }

    /// POSTs JSON to the origin: (status, body).
    pub async fn post(&self, path: &str, body: &Value) -> anyhow::Result<(u16, Value)> {
        post_json(&self.http, &format!("{}{path}", self.origin.url()), body).await
    }

    pub async fn reserve(&self, sale: i64, uid: &str) -> anyhow::Result<(u16, Value)> {
        self.post(&format!("/v1/sales/{sale}/reserve"), &json!({"uid": uid}))
            .await
    }

    /// The uids with a live order (pending or paid) of `sale`.
    pub async fn live_buyers(&self, sale: i64) -> anyhow::Result<HashSet<String>> {
        let db = self.postgres.client().await?;
        Ok(db
            .query(
                "SELECT uid FROM orders WHERE sale_id = $1 AND status IN ('pending', 'paid')",
                &[&sale],
            )
            .await?
            .iter()
            .map(|row| row.get(0))
            .collect())
    }

    /// Branch runs the origin made so far (`origin_branches_total`): every attempt that reached
    /// PostgreSQL.
    pub async fn branch_runs(&self) -> anyhow::Result<f64> {
        let text =
            crate::metrics::scrape(&self.http, &format!("{}/metrics", self.origin.url())).await?;
        Ok(crate::metrics::sample_sum(
            &text,
            "origin_branches_total",
            &[],
        ))
    }

    /// Waits until `sale` has at least `at_least` orders in PostgreSQL (a crash mid-sale).
    pub async fn wait_orders(
        &self,
        sale: i64,
        at_least: i64,
        deadline: Duration,
    ) -> anyhow::Result<Duration> {
        let db = self.postgres.client().await?;
        let db = &db;
        let what = format!("{at_least} orders of sale {sale}");
        wait::until(&what, deadline, || async move {
            let n: i64 = db
                .query_one("SELECT count(*) FROM orders WHERE sale_id = $1", &[&sale])
                .await?
                .get(0);
            Ok(n >= at_least)
        })
        .await
    }

    /// Waits until no transaction of `sale` is in flight and no unit is on its way back;
    /// returns how long it took.
    pub async fn wait_quiet(&self, sale: i64, deadline: Duration) -> anyhow::Result<Duration> {
        let conn = self.redis.sale_connection(sale).await?;
        let db = self.postgres.client().await?;
        let db = &db;
        let due = format!("{{s:{sale}}}:due");
        wait::until("no transaction in flight", deadline, || {
            let mut conn = conn.clone();
            let due = due.clone();
            async move {
                let n: i64 = conn.zcard(&due).await?;
                Ok(n == 0 && units_returning(db, sale).await? == 0)
            }
        })
        .await
        .map_err(|e| e.context(format!("origin log:\n{}", self.origin.log_tail())))
    }

    /// Transactions of `sale` in flight, read from Redis alone (PostgreSQL may be down).
    pub async fn books_redis_in_flight(&self, sale: i64) -> anyhow::Result<i64> {
        let mut conn = self.redis.sale_connection(sale).await?;
        Ok(conn.zcard(format!("{{s:{sale}}}:due")).await?)
    }

    /// The gids of `sale`'s transactions not completed yet (its due set).
    pub async fn books_redis_due(&self, sale: i64) -> anyhow::Result<Vec<String>> {
        let mut conn = self.redis.sale_connection(sale).await?;
        Ok(conn.zrange(format!("{{s:{sale}}}:due"), 0, -1).await?)
    }

    /// Waits until the books of `sale`, read at one moment, pass every check. Two stores cannot
    /// be read in one snapshot, so a read that overlaps a background step (the sweeper's cancel
    /// and return) can see a unit in neither; a real drift stays and fails at the deadline,
    /// with the last books read.
    pub async fn wait_balanced(&self, sale: i64, deadline: Duration) -> anyhow::Result<Books> {
        self.wait_quiet(sale, deadline).await?;
        wait::until("the books balance", deadline, || async move {
            let books = self.books(sale).await?;
            books.check()?;
            Ok(true)
        })
        .await?;
        self.books(sale).await
    }

    /// Reads the books of `sale` from both stores.
    pub async fn books(&self, sale: i64) -> anyhow::Result<Books> {
        let mut conn = self.redis.sale_connection(sale).await?;
        read_books(&mut conn, &self.postgres, sale).await
    }

    /// Runs `origin reconcile --sale N --json [--repair]`: its exit code, the report when it
    /// printed one (`Value::Null` otherwise) and what it said on stderr.
    pub async fn reconcile_run(&self, sale: i64, repair: bool) -> anyhow::Result<Reconciled> {
        let sale = sale.to_string();
        let mut args = vec!["reconcile", "--sale", sale.as_str(), "--json"];
        if repair {
            args.push("--repair");
        }
        let (status, stdout, stderr) = self.origin.run_command_status(&args).await?;
        let code = status
            .code()
            .with_context(|| format!("reconcile killed by a signal: {status}; stderr {stderr}"))?;
        let report = match stdout.trim() {
            "" => Value::Null,
            text => serde_json::from_str(text)
                .with_context(|| format!("reconcile output {stdout:?}, stderr {stderr}"))?,
        };
        Ok(Reconciled {
            code,
            report,
            stderr,
        })
    }

    /// Runs `origin reconcile --sale N --json`: (exit success, the report).
    pub async fn reconcile(&self, sale: i64, repair: bool) -> anyhow::Result<(bool, Value)> {
        let sale = sale.to_string();
        let mut args = vec!["reconcile", "--sale", sale.as_str(), "--json"];
        if repair {
            args.push("--repair");
        }
        let (ok, stdout, stderr) = self.origin.run_command(&args).await?;
        let report: Value = serde_json::from_str(stdout.trim())
            .with_context(|| format!("reconcile output {stdout:?}, stderr {stderr}"))?;
        Ok((ok, report))
    }
}

/// Reads the books of `sale`: its Redis side through `conn`, a connection to the node holding
/// the sale (one server, or the primary of the sale's slot in a cluster: every key of a sale is
/// there), and its PostgreSQL side.
pub async fn read_books(
    conn: &mut redis::aio::MultiplexedConnection,
    postgres: &PostgresServer,
    sale: i64,
) -> anyhow::Result<Books> {
    let remaining: Option<i64> = conn.get(format!("{{s:{sale}}}:stock")).await?;
    let in_flight: i64 = conn.zcard(format!("{{s:{sale}}}:due")).await?;
    let prefix = format!("{{s:{sale}}}:tx:");
    let keys: Vec<String> = {
        let mut iter: redis::AsyncIter<String> =
            conn.scan_match(format!("{{s:{sale}}}:tx:*")).await?;
        let mut keys = Vec::new();
        while let Some(key) = iter.next_item().await {
            keys.push(key?);
        }
        keys
    };
    let mut tx_states = BTreeMap::new();
    let mut tx_gids = Vec::new();
    for key in &keys {
        let state: Option<String> = conn.hget(key, "state").await?;
        *tx_states.entry(state.unwrap_or_default()).or_insert(0) += 1;
        tx_gids.push(key.trim_start_matches(&prefix).to_string());
    }

    let db = postgres.client().await?;
    let sale_row = db
        .query_one("SELECT total, sold FROM sales WHERE id = $1", &[&sale])
        .await?;
    let mut by_status = BTreeMap::new();
    for row in db
        .query(
            "SELECT status, count(*) FROM orders WHERE sale_id = $1 GROUP BY status",
            &[&sale],
        )
        .await?
    {
        by_status.insert(row.get::<_, String>(0), row.get::<_, i64>(1));
    }
    let max_per_gid: i64 = db
        .query_one(
            "SELECT coalesce(max(n), 0) FROM (SELECT count(*) AS n FROM orders
             WHERE sale_id = $1 GROUP BY gid) t",
            &[&sale],
        )
        .await?
        .get(0);
    let max_live_per_user: i64 = db
        .query_one(
            "SELECT coalesce(max(n), 0) FROM (SELECT count(*) AS n FROM orders
             WHERE sale_id = $1 AND status IN ('pending', 'paid') GROUP BY uid) t",
            &[&sale],
        )
        .await?
        .get(0);
    let orders_without_tx: i64 = db
        .query_one(
            "SELECT count(*) FROM orders WHERE sale_id = $1 AND NOT (gid = ANY($2))",
            &[&sale, &tx_gids],
        )
        .await?
        .get(0);
    let returning = units_returning(&db, sale).await?;
    let count = |s: &str| by_status.get(s).copied().unwrap_or(0);
    Ok(Books {
        total: i64::from(sale_row.get::<_, i32>(0)),
        sold: i64::from(sale_row.get::<_, i32>(1)),
        redis_remaining: remaining.unwrap_or(-1),
        pending: count("pending"),
        paid: count("paid"),
        rejected: count("rejected"),
        cancelled: count("cancelled"),
        in_flight,
        returning,
        tx_states,
        max_orders_per_gid: max_per_gid,
        max_live_per_user,
        orders_without_tx,
    })
}

/// Units of cancelled holds of `sale` not back in Redis yet (returns not done).
async fn units_returning(db: &tokio_postgres::Client, sale: i64) -> anyhow::Result<i64> {
    Ok(db
        .query_one(
            "SELECT count(*) FROM returns WHERE sale_id = $1 AND done_at IS NULL",
            &[&sale],
        )
        .await?
        .get(0))
}

/// POSTs `body` as JSON to `url`: (status, body).
pub async fn post_json(
    http: &reqwest::Client,
    url: &str,
    body: &Value,
) -> anyhow::Result<(u16, Value)> {
    let resp = http.post(url).json(body).send().await?;
    let status = resp.status().as_u16();
    Ok((status, resp.json().await?))
}
