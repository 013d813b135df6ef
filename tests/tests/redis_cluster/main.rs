//! The stack on a real Redis Cluster (three primaries, each with a replica; see
//! `tests/src/redis_cluster.rs`): every script keeps its keys in one slot, so no CROSSSLOT error
//! can reach a user; a primary killed mid-crowd is replaced by its replica and buying goes on, with
//! no oversell, one order per user, every `reserved` answer backed by its order, and the books
//! balanced by themselves afterwards; and the sales held by the other primaries never notice.
//! One test binary: `slots`, `failover`, `events`, `wait_replicas`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "integration tests: a failed unwrap is a failed test, with its message"
)]

mod events;
mod failover;
mod slots;
mod wait_replicas;

use flash_tests::{edge_binary, origin_binary};
use std::{
    collections::HashSet,
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use edge::{
    config::{GlobalConfig, RateConfig},
    limits::{global::GlobalLimiter, uid::UidLimiter},
};
use flash_tests::{
    edge_process::{EdgeOptions, EdgeProcess},
    metrics,
    origin_process::{OriginOptions, OriginProcess},
    postgres_server::PostgresServer,
    redis_cluster::{RedisCluster, Role},
    shopper,
    stack::{post_json, read_books, Books},
    wait,
};
use origin::gid::Gid;
use origin::reservations::{
    Completion, HealFinish, HealStart, HealedOrder, Loss, Reservation, Reservations, SaleKeys,
    StockRepair,
};
use serde_json::{json, Value};
use tokio::time::Instant;

/// How long the books may take to balance after the crowd (a heal included).
const BALANCE_DEADLINE: Duration = Duration::from_secs(30);
/// How long a crowd may take to sell a sale out, a failover included.
const CROWD_DEADLINE: Duration = Duration::from_secs(60);
/// Buyers asking at once, per sale.
const WORKERS: usize = 8;

/// One buy through the edge at `base` by a new user `uid`: a pass token earned, then Buy, asked
/// again after each 503 until `deadline`. The last status.
async fn buy_through_edge(http: &reqwest::Client, base: &str, sale: i64, uid: &str) -> u16 {
    let jwt = shopper::jwt(uid).unwrap();
    let started = Instant::now();
    loop {
        let status = match shopper::pass_token(http, base, &jwt, sale, None).await {
            Ok(pass) => http
                .post(format!("{base}/api/sales/{sale}/buy"))
                .bearer_auth(&jwt)
                .json(&json!({"pass_token": pass}))
                .send()
                .await
                .map_or(0, |resp| resp.status().as_u16()),
            Err(_) => 503,
        };
        if status != 503 || started.elapsed() > CROWD_DEADLINE {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A cluster, PostgreSQL and one origin on the cluster.
struct World {
    cluster: RedisCluster,
    postgres: PostgresServer,
    origin: OriginProcess,
    http: reqwest::Client,
}

impl World {
    async fn start() -> Self {
        Self::start_with(&OriginOptions::default()).await
    }

    async fn start_with(options: &OriginOptions) -> Self {
        let (cluster, postgres) = tokio::try_join!(RedisCluster::start(), PostgresServer::start())
            .expect("a cluster and PostgreSQL start");
        let origin = OriginProcess::start(
            origin_binary!(),
            &cluster.target(),
            &postgres.url(),
            options,
            None,
        )
        .await
        .expect("the origin starts on the cluster");
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("an HTTP client");
        Self {
            cluster,
            postgres,
            origin,
            http,
        }
    }

    async fn create_sale(&self, stock: i64) -> i64 {
        let (status, body) = post_json(
            &self.http,
            &format!("{}/v1/sales", self.origin.url()),
            &json!({"name": "Cluster sneakers", "stock": stock}),
        )
        .await
        .expect("the origin answers");
        assert_eq!(status, 201, "{body}");
        body["id"].as_i64().expect("a sale id")
    }

    /// An edge on the cluster, its captcha an easy proof of work.
    async fn edge(&self) -> EdgeProcess {
        self.edge_with(&EdgeOptions {
            levels: vec![(0, 6, false)],
            ..EdgeOptions::default()
        })
        .await
    }

    /// An edge on the cluster with `options`.
    async fn edge_with(&self, options: &EdgeOptions) -> EdgeProcess {
        EdgeProcess::start(
            edge_binary!(),
            &self.cluster.target(),
            &[self.origin.url()],
            options,
        )
        .await
        .unwrap()
    }

    /// The port of the primary holding `sale` now.
    async fn primary_of(&self, sale: i64) -> u16 {
        self.cluster
            .primary_of(&SaleKeys::new(sale).stock())
            .await
            .expect("the cluster names the sale's primary")
            .port
    }

    /// The books of `sale`, its Redis side read on the primary holding it.
    async fn books(&self, sale: i64) -> anyhow::Result<Books> {
        let port = self
            .cluster
            .primary_of(&SaleKeys::new(sale).stock())
            .await?
            .port;
        let mut conn = self.cluster.node_connection(port).await?;
        read_books(&mut conn, &self.postgres, sale).await
    }

    /// Waits until the books of `sale` pass every check with nothing in flight (I2 included:
    /// the drift is 0).
    async fn wait_balanced(&self, sale: i64) -> Books {
        wait::until("the books balance", BALANCE_DEADLINE, || async move {
            let books = self.books(sale).await?;
            Ok(books.in_flight == 0 && books.returning == 0 && books.check().is_ok())
        })
        .await
        .unwrap_or_else(|e| {
            panic!("{e:#}\norigin log:\n{}", self.origin.log_tail());
        });
        self.books(sale).await.expect("the books read")
    }

    async fn live_buyers(&self, sale: i64) -> HashSet<String> {
        let db = self.postgres.client().await.expect("PostgreSQL answers");
        db.query(
            "SELECT uid FROM orders WHERE sale_id = $1 AND status IN ('pending', 'paid')",
            &[&sale],
        )
        .await
        .expect("orders read")
        .iter()
        .map(|row| row.get(0))
        .collect()
    }

    async fn metric(&self, name: &str) -> f64 {
        self.metric_with(name, &[]).await
    }

    async fn metric_with(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let text = metrics::scrape(&self.http, &format!("{}/metrics", self.origin.url()))
            .await
            .unwrap_or_default();
        metrics::sample_sum(&text, name, labels) + 0.0
    }
}

impl World {
    /// What a crowd needs of the world: the origin's address.
    fn shop(&self) -> Shop {
        Shop {
            http: self.http.clone(),
            origin: self.origin.url(),
        }
    }
}

/// The origin as buyers reach it.
#[derive(Clone)]
struct Shop {
    http: reqwest::Client,
    origin: String,
}

impl Shop {
    /// A reservation: (status, body); status 0 when no answer came.
    async fn reserve(&self, sale: i64, uid: &str) -> (u16, Value) {
        let sent = self
            .http
            .post(format!("{}/v1/sales/{sale}/reserve", self.origin))
            .json(&json!({"uid": uid}))
            .send()
            .await;
        match sent {
            Ok(resp) => {
                let status = resp.status().as_u16();
                (status, resp.json().await.unwrap_or(Value::Null))
            }
            Err(_) => (0, Value::Null),
        }
    }
}
