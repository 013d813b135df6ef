//! The stack on a real Redis Cluster (three primaries, each with a replica; see
//! `tests/src/redis_cluster.rs`): every script keeps its keys in one slot, so no CROSSSLOT error
//! can reach a user; a primary killed mid-crowd is replaced by its replica and buying goes on, with
//! no oversell, one order per user, every `reserved` answer backed by its order, and the books
//! balanced by themselves afterwards; and the sales held by the other primaries never notice.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "integration tests: a failed unwrap is a failed test, with its message"
)]

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
        EdgeProcess::start(
            edge_binary!(),
            &self.cluster.target(),
            &[self.origin.url()],
            &EdgeOptions {
                levels: vec![(0, 6, false)],
                ..EdgeOptions::default()
            },
        )
        .await
        .unwrap()
    }

    /// What a crowd needs of the world: the origin's address.
    fn shop(&self) -> Shop {
        Shop {
            http: self.http.clone(),
            origin: self.origin.url(),
        }
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

/// One buyer's answer, and when it came.
#[derive(Debug, Clone)]
struct Answer {
    uid: String,
    status: u16,
    code: String,
    at: Instant,
}

impl Answer {
    fn reserved(&self) -> bool {
        self.status == 200
    }
    /// The stack turned the buyer away for a failure of its own (503, or no answer).
    fn failed(&self) -> bool {
        !matches!(self.status, 200 | 409 | 410)
    }
}

/// A crowd on `sale`: `WORKERS` buyers, each with new uids one after another, one attempt per
/// uid, until every worker has met a sold-out answer or `stop` turns true. `reserved` counts the
/// units taken so far.
async fn crowd(
    shop: Shop,
    sale: i64,
    stop: Arc<AtomicBool>,
    reserved: Arc<AtomicUsize>,
) -> Vec<Answer> {
    let workers = (0..WORKERS).map(|w| {
        let shop = shop.clone();
        let stop = stop.clone();
        let reserved = reserved.clone();
        tokio::spawn(async move {
            let mut answers = Vec::new();
            for n in 0.. {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let uid = format!("s{sale}-w{w}-{n}");
                let (status, body) = shop.reserve(sale, &uid).await;
                let answer = Answer {
                    uid,
                    status,
                    code: body["error"].as_str().unwrap_or_default().to_string(),
                    at: Instant::now(),
                };
                if answer.reserved() {
                    reserved.fetch_add(1, Ordering::Relaxed);
                }
                let sold_out = status == 410;
                if answer.failed() {
                    // A failed attempt is asked again after a short pause, as a page does.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                answers.push(answer);
                if sold_out {
                    break;
                }
            }
            answers
        })
    });
    let mut all = Vec::new();
    for worker in workers {
        all.extend(worker.await.expect("a crowd worker runs to its end"));
    }
    all
}

/// Seconds between the first and the last failed answer (0 when none failed).
fn failing_seconds(answers: &[Answer]) -> f64 {
    let failed: Vec<Instant> = answers
        .iter()
        .filter(|a| a.failed())
        .map(|a| a.at)
        .collect();
    match (failed.iter().min(), failed.iter().max()) {
        (Some(first), Some(last)) => (*last - *first).as_secs_f64(),
        _ => 0.0,
    }
}

/// Checks what must hold after any crowd: the books balance (drift 0, no oversell, one order per
/// user, no doubled or lost order) and every buyer told `reserved` has a live order.
async fn assert_books(world: &World, sale: i64, answers: &[Answer]) -> Books {
    let books = world.wait_balanced(sale).await;
    let live = world.live_buyers(sale).await;
    let told: HashSet<&str> = answers
        .iter()
        .filter(|a| a.reserved())
        .map(|a| a.uid.as_str())
        .collect();
    let missing: Vec<&&str> = told.iter().filter(|uid| !live.contains(**uid)).collect();
    assert!(
        missing.is_empty(),
        "buyers told reserved without a live order: {missing:?}; {books:?}"
    );
    books
}

#[tokio::test(flavor = "multi_thread")]
async fn every_script_keeps_its_keys_in_one_slot() {
    let cluster = RedisCluster::start().await.expect("a cluster starts");
    let timeout = Duration::from_secs(5);
    let redis = cluster.handle(timeout).await.expect("the cluster handle");
    let reservations = Reservations::new(redis.clone(), Duration::ZERO);
    reservations.preload().await.expect("every script loads");
    let uid_limiter = UidLimiter::new(redis.clone());
    uid_limiter.preload().await.expect("admit.lua loads");
    let global = GlobalLimiter::new(redis.clone());
    global.preload().await.expect("global_lease.lua loads");

    let mut covered: HashSet<&str> = HashSet::new();
    let mut primaries = HashSet::new();
    // Sales 1..=12 land on every primary: each script runs where its sale is.
    for sale in 1..=12 {
        primaries.insert(
            cluster
                .primary_of(&SaleKeys::new(sale).stock())
                .await
                .expect("a primary")
                .port,
        );
        let uid = format!("buyer/{{x}}{sale}");
        assert!(reservations.open_stock(sale, 5).await.unwrap());
        covered.insert("open_stock.lua");
        reservations.mark_active(sale).await.unwrap();
        covered.insert("mark_active.lua");
        let Reservation::Reserved { fence, .. } = reservations
            .reserve(&Gid::new(sale, &uid), 0)
            .await
            .unwrap()
        else {
            panic!("sale {sale}: a unit is reserved");
        };
        covered.insert("reserve.lua");
        let claim = reservations
            .claim_due(sale, Duration::from_secs(1), Duration::from_secs(4), 10)
            .await
            .unwrap();
        assert_eq!(claim.in_flight, 1, "sale {sale}: {claim:?}");
        covered.insert("claim.lua");
        let completion = reservations
            .complete(&Gid::new(sale, &uid), false, sale * 100, true)
            .await
            .unwrap();
        assert!(
            matches!(completion, Completion::Completed { .. }),
            "{completion:?}"
        );
        covered.insert("complete.lua");
        assert!(reservations.restock(sale, sale * 100).await.unwrap());
        covered.insert("restock.lua");
        let seen = reservations.stock_snapshot(sale).await.unwrap();
        assert_eq!(seen.stock, Some(5), "sale {sale}: {seen:?}");
        let repair = reservations.repair_stock(sale, 5, &seen).await.unwrap();
        assert!(matches!(repair, StockRepair::Repaired { .. }), "{repair:?}");
        covered.insert("repair_stock.lua");
        let lock = Duration::from_secs(10);
        let HealStart::Started { restocks } = reservations
            .heal_begin(
                sale,
                "healer",
                lock,
                Loss::RepeatedFence {
                    epoch: fence.div_euclid(origin::reservations::FENCE_EPOCH),
                },
            )
            .await
            .unwrap()
        else {
            panic!("sale {sale}: the heal lock is taken");
        };
        covered.insert("heal_begin.lua");
        let orders = [HealedOrder {
            gid: Gid::new(sale, &uid).to_string(),
            rejected: false,
            order_id: sale * 100,
        }];
        let written = reservations
            .heal_keys(sale, "healer", lock, 0, &orders, &[sale * 100])
            .await
            .unwrap();
        assert!(written.is_some(), "sale {sale}: the lock is held");
        covered.insert("heal_keys.lua");
        let finish = reservations
            .heal_finish(sale, "healer", 4, restocks)
            .await
            .unwrap();
        assert_eq!(finish, HealFinish::Healed { stock: 4 }, "sale {sale}");
        covered.insert("heal_finish.lua");

        let rate = RateConfig {
            per_second: 10.0,
            burst: 10,
            dry_run: false,
        };
        let admission = uid_limiter.admit(sale, &uid, "jti-1", &rate, 60).await;
        assert!(
            admission.is_ok_and(|a| a.passes()),
            "sale {sale}: admit.lua runs on the sale's node"
        );
        covered.insert("admit.lua");
        let lease = global
            .acquire(
                sale,
                &GlobalConfig {
                    per_second: 100,
                    lease: 10,
                    dry_run: false,
                },
            )
            .await;
        assert!(
            lease.is_ok_and(|d| d.is_allowed()),
            "sale {sale}: global_lease.lua runs on the sale's node"
        );
        covered.insert("global_lease.lua");
    }
    assert_eq!(primaries.len(), 3, "the sales covered every primary");
    let active = reservations
        .active_sales(Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(active.sales.len(), 12, "{active:?}");
    covered.insert("active_sales.lua");

    let scripts: HashSet<String> =
        std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../lua"))
            .expect("lua/ is readable")
            .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
            .filter(|name| name.ends_with(".lua"))
            .collect();
    let missing: Vec<&String> = scripts
        .iter()
        .filter(|name| !covered.contains(name.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "scripts not run on the cluster by this test: {missing:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_primary_killed_mid_crowd_fails_over_and_the_books_balance_by_themselves() {
    let mut world = World::start().await;
    let edge = world.edge().await;
    let stock = 300;
    let sale = world.create_sale(stock).await;
    let primary = world.primary_of(sale).await;
    assert_eq!(
        buy_through_edge(&world.http, &edge.url(), sale, "edge-before").await,
        200,
        "a buy through the edge on the cluster"
    );
    let stop = Arc::new(AtomicBool::new(false));
    let reserved = Arc::new(AtomicUsize::new(0));
    let buyers = tokio::spawn(crowd(world.shop(), sale, stop.clone(), reserved.clone()));
    wait::until("a third of the stock sold", CROWD_DEADLINE, || {
        let reserved = reserved.clone();
        async move { Ok(reserved.load(Ordering::Relaxed) >= 100) }
    })
    .await
    .unwrap();

    let killed_at = Instant::now();
    world.cluster.kill(primary).unwrap();
    let failover = world
        .cluster
        .wait_failover(&SaleKeys::new(sale).stock(), primary)
        .await
        .unwrap();
    let promoted = world.primary_of(sale).await;
    assert_ne!(promoted, primary, "the sale moved to the promoted replica");
    // The edge follows too: its limits and pass tokens of the sale are on the promoted node now.
    let edge_after = buy_through_edge(&world.http, &edge.url(), sale, "edge-after").await;
    assert!(
        edge_after == 200 || edge_after == 410,
        "a buy through the edge after the failover: {edge_after}\nedge log:\n{}",
        edge.log_tail()
    );

    let answers = tokio::time::timeout(CROWD_DEADLINE, buyers)
        .await
        .expect("the crowd sells the sale out after the failover")
        .expect("the crowd runs to its end");
    let after_kill: Vec<&Answer> = answers.iter().filter(|a| a.at > killed_at).collect();
    assert!(
        after_kill.iter().any(|a| a.reserved()),
        "buying went on after the failover"
    );
    let books = assert_books(&world, sale, &answers).await;
    let live = world.live_buyers(sale).await;
    assert!(
        live.contains("edge-before"),
        "the edge's buyer has an order"
    );
    if edge_after == 200 {
        assert!(live.contains("edge-after"), "the edge's buyer has an order");
    }
    assert_eq!(
        books.live(),
        stock,
        "every unit sold exactly once: {books:?}"
    );
    let failed: Vec<&Answer> = answers.iter().filter(|a| a.failed()).collect();
    let codes: HashSet<&str> = failed.iter().map(|a| a.code.as_str()).collect();
    eprintln!(
        "failover of the sale's primary: promoted in {:.2} s; buys failing for {:.2} s \
         ({} answers, codes {codes:?}); {} reserved after the kill; heals {:.0}, losses noticed {:.0}",
        failover.as_secs_f64(),
        failing_seconds(&answers),
        failed.len(),
        after_kill.iter().filter(|a| a.reserved()).count(),
        world.metric("origin_heals_total").await,
        world.metric("origin_redis_losses_total").await,
    );
    assert!(
        failed.iter().all(|a| a.status == 503),
        "a failover answers 503 (try again), never an error of another kind: {failed:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_sales_of_the_other_primaries_never_notice_a_failover() {
    let mut world = World::start().await;
    let stock = 150;
    // Sales until every primary holds one.
    let mut by_primary = std::collections::BTreeMap::new();
    while by_primary.len() < 3 {
        let sale = world.create_sale(stock).await;
        by_primary
            .entry(world.primary_of(sale).await)
            .or_insert(sale);
        assert!(sale < 64, "64 sales never covered three primaries");
    }
    let sales: Vec<(u16, i64)> = by_primary.into_iter().collect();
    let (victim_primary, victim) = sales[0];
    let stop = Arc::new(AtomicBool::new(false));
    let counters: Vec<Arc<AtomicUsize>> = sales.iter().map(|_| Arc::default()).collect();
    let crowds: Vec<_> = sales
        .iter()
        .zip(&counters)
        .map(|((_, sale), reserved)| {
            tokio::spawn(crowd(world.shop(), *sale, stop.clone(), reserved.clone()))
        })
        .collect();
    wait::until("a third of the victim's stock sold", CROWD_DEADLINE, || {
        let reserved = counters[0].clone();
        async move { Ok(reserved.load(Ordering::Relaxed) >= 50) }
    })
    .await
    .unwrap();
    world.cluster.kill(victim_primary).unwrap();
    world
        .cluster
        .wait_failover(&SaleKeys::new(victim).stock(), victim_primary)
        .await
        .unwrap();

    for (((_, sale), crowd), _) in sales.iter().zip(crowds).zip(&counters) {
        let answers = tokio::time::timeout(CROWD_DEADLINE, crowd)
            .await
            .expect("every crowd sells its sale out")
            .expect("the crowd runs to its end");
        let books = assert_books(&world, *sale, &answers).await;
        assert_eq!(books.live(), stock, "sale {sale} sold out: {books:?}");
        let failed: Vec<&Answer> = answers.iter().filter(|a| a.failed()).collect();
        eprintln!(
            "sale {sale} ({}): {} failed answers over {:.2} s",
            if *sale == victim {
                "on the killed primary"
            } else {
                "elsewhere"
            },
            failed.len(),
            failing_seconds(&answers)
        );
        if *sale != victim {
            assert!(
                failed.is_empty(),
                "sale {sale}, on a primary that kept running, noticed the failover: {:?}",
                &failed[..failed.len().min(5)]
            );
        }
    }
}

/// The port of the node the edge's event stream last subscribed on (its log says).
fn listening_on(edge: &EdgeProcess) -> u16 {
    let log = edge.log();
    let line = log
        .lines()
        .rfind(|line| line.contains("subscribed to sale events"))
        .expect("the edge subscribed");
    let node = line
        .split_once("node=redis://127.0.0.1:")
        .expect("the subscription names its node")
        .1;
    node.split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|port| port.parse().ok())
        .expect("a port")
}

/// The sold-out events an edge has heard (`edge_sale_events_total{name="sold_out"}`).
async fn sold_out_events(http: &reqwest::Client, edge: &EdgeProcess) -> anyhow::Result<f64> {
    let text = metrics::scrape(http, &edge.metrics_url()).await?;
    Ok(metrics::sample_sum(
        &text,
        "edge_sale_events_total",
        &[("name", "sold_out")],
    ))
}

#[tokio::test(flavor = "multi_thread")]
async fn sale_events_reach_every_edge_whichever_node_holds_the_sale() {
    let mut world = World::start().await;
    // Two edges, each listening on a node of its own choice.
    let mut edges = Vec::new();
    for _ in 0..2 {
        edges.push(
            EdgeProcess::start(
                edge_binary!(),
                &world.cluster.target(),
                &[world.origin.url()],
                &EdgeOptions::default(),
            )
            .await
            .unwrap(),
        );
    }
    let subscriptions =
        |edge: &EdgeProcess| edge.log().matches("subscribed to sale events").count();
    for edge in &edges {
        wait::until("the edge subscribed", BALANCE_DEADLINE, || async {
            Ok(subscriptions(edge) >= 1)
        })
        .await
        .unwrap();
    }
    let shop = world.shop();
    let mut by_primary = std::collections::BTreeMap::new();
    while by_primary.len() < 3 {
        let sale = world.create_sale(1).await;
        by_primary
            .entry(world.primary_of(sale).await)
            .or_insert(sale);
        assert!(sale < 64, "64 sales never covered three primaries");
    }
    // One sale per primary and each edge on one node: every edge hears sales held elsewhere.
    let mut heard = 0.0;
    for (primary, sale) in &by_primary {
        let (status, body) = shop.reserve(*sale, &format!("only-{sale}")).await;
        assert_eq!(status, 200, "{body}");
        let sold_at = Instant::now();
        heard += 1.0;
        for edge in &edges {
            wait::until(
                "the sold-out event on the edge",
                BALANCE_DEADLINE,
                || async { Ok(sold_out_events(&world.http, edge).await? >= heard) },
            )
            .await
            .unwrap();
        }
        eprintln!(
            "sale {sale} on the primary at :{primary}: both edges had its sold-out event {:.1} ms after the last unit's answer",
            sold_at.elapsed().as_secs_f64() * 1000.0
        );
    }

    // The node the first edge listens on dies: it listens on the next seed, and hears again.
    let listened = listening_on(&edges[0]);
    world.cluster.kill(listened).unwrap();
    wait::until(
        "the edge listens on another node",
        BALANCE_DEADLINE,
        || async { Ok(subscriptions(&edges[0]) >= 2) },
    )
    .await
    .unwrap();
    for sale in by_primary.values() {
        if world.primary_of(*sale).await == listened {
            world
                .cluster
                .wait_failover(&SaleKeys::new(*sale).stock(), listened)
                .await
                .unwrap();
        }
    }
    let sale = world.create_sale(1).await;
    let heard_before = sold_out_events(&world.http, &edges[0]).await.unwrap();
    wait::until(
        "a unit reserved after the node died",
        BALANCE_DEADLINE,
        || {
            let shop = shop.clone();
            async move {
                let (status, _) = shop.reserve(sale, "after-the-kill").await;
                Ok(status == 200 || status == 409)
            }
        },
    )
    .await
    .unwrap();
    wait::until(
        "the event heard on the new node",
        BALANCE_DEADLINE,
        || async { Ok(sold_out_events(&world.http, &edges[0]).await? > heard_before) },
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn wait_replicas_holds_the_answer_until_the_replica_has_the_reservation() {
    let world = World::start_with(&OriginOptions {
        wait_replicas: 1,
        ..OriginOptions::default()
    })
    .await;
    let sale = world.create_sale(10).await;
    let shop = world.shop();
    let waits = |outcome: &'static str| {
        let world = &world;
        async move {
            world
                .metric_with("origin_replica_waits_total", &[("outcome", outcome)])
                .await
        }
    };
    assert_eq!(shop.reserve(sale, "first").await.0, 200);
    assert_eq!(waits("acked").await, 1.0, "the replica acknowledged");

    // The sale's replica frozen: the reservation is answered all the same, after the wait
    // timeout, counted as short.
    let primary = world.primary_of(sale).await;
    let mut replica = None;
    for port in world.cluster.ports() {
        if world.cluster.role(port).await.unwrap() == (Role::Replica { of: primary }) {
            replica = world.cluster.pid(port);
        }
    }
    let replica = nix::unistd::Pid::from_raw(
        i32::try_from(replica.expect("the sale's primary has a replica")).unwrap(),
    );
    nix::sys::signal::kill(replica, nix::sys::signal::Signal::SIGSTOP).unwrap();
    let (status, body) = shop.reserve(sale, "second").await;
    nix::sys::signal::kill(replica, nix::sys::signal::Signal::SIGCONT).unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (waits("acked").await, waits("short").await),
        (1.0, 1.0),
        "the frozen replica made the wait short"
    );
    assert_eq!(world.live_buyers(sale).await.len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restocked_event_lost_by_the_cluster_cannot_keep_a_sale_closed() {
    let world = World::start().await;
    let edge = world.edge().await;
    let sale = world.create_sale(1).await;
    assert_eq!(
        buy_through_edge(&world.http, &edge.url(), sale, "first").await,
        200
    );
    wait::until(
        "the edge flags the sale sold out",
        BALANCE_DEADLINE,
        || async { Ok(sold_out_events(&world.http, &edge).await? >= 1.0) },
    )
    .await
    .unwrap();
    assert_eq!(
        buy_through_edge(&world.http, &edge.url(), sale, "second").await,
        410
    );

    // A unit comes back and its event is lost (the node died before passing it on): here, the
    // first order cancelled in PostgreSQL and the stock raised on the sale's primary, with no
    // PUBLISH.
    let db = world.postgres.client().await.unwrap();
    db.execute(
        "UPDATE orders SET status = 'cancelled' WHERE sale_id = $1 AND uid = 'first'",
        &[&sale],
    )
    .await
    .unwrap();
    db.execute("UPDATE sales SET sold = sold - 1 WHERE id = $1", &[&sale])
        .await
        .unwrap();
    let primary = world.primary_of(sale).await;
    let mut node = world.cluster.node_connection(primary).await.unwrap();
    let () = redis::cmd("SET")
        .arg(SaleKeys::new(sale).stock())
        .arg(1)
        .query_async(&mut node)
        .await
        .unwrap();
    // The sale facts the edge fetches for the status polls find the unit and re-open the sale.
    let status_url = format!("{}/api/sales/{sale}/status", edge.url());
    wait::until("the edge re-opens the sale", BALANCE_DEADLINE, || {
        let req = world.http.get(&status_url).send();
        async move {
            let status: Value = req.await?.json().await?;
            Ok(status["state"] == "live")
        }
    })
    .await
    .unwrap();
    assert_eq!(
        buy_through_edge(&world.http, &edge.url(), sale, "second").await,
        200,
        "the unit that came back is sold\nedge log:\n{}",
        edge.log_tail()
    );
}
