//! The origin under a crowd, duplicates and bad input, against real Redis and PostgreSQL:
//! invariants I1 (no oversell), I2 (conservation), I3 (one per user), I4 (nothing lost, nothing
//! doubled) and I5 (no false promise), the Redis round trips a reservation costs, and reconcile.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "integration tests: a failed unwrap is a failed test, with its message"
)]

use flash_tests::origin_binary;
use std::{collections::HashSet, path::Path, sync::Arc};

use flash_tests::{
    metrics, origin_process::OriginOptions, redis_server::BOOKKEEPING_COMMANDS, stack::Stack, wait,
};
use origin::{
    branches::{self, Branch},
    database::Database,
    reconcile,
    reservations::{Reservations, StockRepair},
};
use redis::AsyncCommands;
use serde_json::{json, Value};

async fn stack(options: OriginOptions) -> Stack {
    Stack::start(origin_binary!(), options).await.unwrap()
}

/// Users whose answer was 200 `reserved`.
fn winners(answers: &[(String, u16, Value)]) -> HashSet<String> {
    answers
        .iter()
        .filter(|(_, status, body)| *status == 200 && body["status"] == "reserved")
        .map(|(uid, _, _)| uid.clone())
        .collect()
}

/// I5: every user told "reserved" has a live order.
async fn assert_every_winner_has_an_order(stack: &Stack, sale: i64, winners: &HashSet<String>) {
    let db = stack.postgres.client().await.unwrap();
    let rows = db
        .query(
            "SELECT uid FROM orders WHERE sale_id = $1 AND status IN ('pending', 'paid')",
            &[&sale],
        )
        .await
        .unwrap();
    let ordered: HashSet<String> = rows.iter().map(|r| r.get(0)).collect();
    let missing: Vec<_> = winners.difference(&ordered).collect();
    assert!(
        missing.is_empty(),
        "I5: told reserved but no order: {missing:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn i1_i2_i3_i4_crowd_of_2000_requests_from_1000_users_sells_exactly_the_stock() {
    let stack = Arc::new(stack(OriginOptions::default()).await);
    let sale = stack.create_sale(100).await.unwrap();

    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..2000 {
        let stack = stack.clone();
        tasks.spawn(async move {
            let uid = format!("user-{}", i % 1000);
            let (status, body) = stack.reserve(sale, &uid).await.unwrap();
            (uid, status, body)
        });
    }
    let answers: Vec<_> = tasks.join_all().await;

    let reserved = answers.iter().filter(|a| a.1 == 200).count();
    let sold_out = answers.iter().filter(|a| a.1 == 410).count();
    let duplicates = answers.iter().filter(|a| a.1 == 409).count();
    println!("crowd: {reserved} reserved, {sold_out} sold out, {duplicates} duplicates");
    assert_eq!(reserved, 100, "exactly the stock is sold");
    assert_eq!(
        reserved + sold_out + duplicates,
        2000,
        "every answer is one of the three"
    );
    // A winner's answer says whether its order exists yet: confirmed with its id, or (when the
    // database was too slow for this request: a loaded machine) unconfirmed, the order left to
    // recovery. Either way it has an order once recovery has run (checked below, I5).
    let mut unconfirmed = 0;
    for (uid, _, body) in answers.iter().filter(|a| a.1 == 200) {
        match (body["confirmed"].as_bool(), body["order_id"].is_i64()) {
            (Some(true), true) => {}
            (Some(false), false) => unconfirmed += 1,
            _ => panic!("{uid}: inconsistent answer {body}"),
        }
    }
    println!("{unconfirmed} winners answered before their order was written");

    stack
        .wait_quiet(sale, std::time::Duration::from_secs(30))
        .await
        .unwrap();
    let books = stack.books(sale).await.unwrap();
    books.check().unwrap();
    assert_eq!((books.redis_remaining, books.live()), (0, 100));
    assert_every_winner_has_an_order(&stack, sale, &winners(&answers)).await;
    assert_reconcile_balances(&stack, sale).await;
}

/// `origin reconcile --json` exits 0 with drift 0.
async fn assert_reconcile_balances(stack: &Stack, sale: i64) {
    let (ok, report) = stack.reconcile(sale, false).await.unwrap();
    assert!(
        ok && report["drift"] == 0 && report["in_flight"] == 0,
        "{report}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn i3_one_uid_sending_50_concurrent_requests_gets_one_order() {
    let stack = Arc::new(stack(OriginOptions::default()).await);
    let sale = stack.create_sale(10).await.unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..50 {
        let stack = stack.clone();
        tasks.spawn(async move { stack.reserve(sale, "greedy").await.unwrap() });
    }
    let answers = tasks.join_all().await;
    let reserved = answers.iter().filter(|a| a.0 == 200).count();
    let duplicates: Vec<_> = answers.iter().filter(|a| a.0 == 409).collect();
    assert_eq!((reserved, duplicates.len()), (1, 49), "{answers:?}");
    assert!(duplicates.iter().all(|d| d.1["error"] == "duplicate"));

    stack
        .wait_quiet(sale, std::time::Duration::from_secs(30))
        .await
        .unwrap();
    let books = stack.books(sale).await.unwrap();
    books.check().unwrap();
    assert_eq!((books.live(), books.redis_remaining), (1, 9));
    assert_reconcile_balances(&stack, sale).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn i2_a_duplicate_arriving_after_sell_out_never_costs_a_unit() {
    let stack = stack(OriginOptions::default()).await;
    let sale = stack.create_sale(2).await.unwrap();
    let (status, first) = stack.reserve(sale, "alice").await.unwrap();
    assert_eq!(status, 200, "{first}");
    assert_eq!(stack.reserve(sale, "bob").await.unwrap().0, 200);
    assert_eq!(stack.reserve(sale, "carol").await.unwrap().0, 410);

    // Alice retries after sell-out: she is told about her own order, not "sold out", and
    // nothing moves.
    let (status, again) = stack.reserve(sale, "alice").await.unwrap();
    assert_eq!(status, 409, "{again}");
    assert_eq!(again["error"], "duplicate");
    assert_eq!(again["state"], "succeeded");
    assert_eq!(again["order_id"], first["order_id"]);

    let books = stack.books(sale).await.unwrap();
    books.check().unwrap();
    assert_eq!((books.live(), books.redis_remaining), (2, 0));
    assert_reconcile_balances(&stack, sale).await;
}

/// Lower-case names of the commands the scripts in `lua/` call.
fn commands_inside_scripts() -> HashSet<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../lua");
    let mut commands = HashSet::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        for call in text.split("redis.call('").skip(1) {
            let name = call.split('\'').next().unwrap();
            commands.insert(name.to_lowercase());
        }
    }
    assert!(commands.contains("decr"), "{commands:?}");
    commands
}

// The commands one run of a script path executes inside Redis, as written in `lua/`: INFO
// commandstats counts them like commands sent by a client, so the round-trip test needs them to
// tell the two apart. A script change that changes a path fails that test until its path here is
// updated.
/// `reserve.lua` for a winner (plus a `publish` when it takes the last unit): the barrier and the
/// heal lock checked, the stock read and taken, the fence moved, the restock count kept in the
/// record.
const RESERVE_WON: &[&str] = &[
    "exists", "exists", "get", "decr", "incr", "time", "set", "get", "hset", "zadd",
];
/// `reserve.lua` after sell-out.
const RESERVE_SOLD_OUT: &[&str] = &["exists", "exists", "get"];
/// `reserve.lua` for a user who has a transaction already.
const RESERVE_DUPLICATE: &[&str] = &["exists", "hmget"];
/// `complete.lua` for a `pending` order.
const COMPLETE_PENDING: &[&str] = &["hget", "hset", "zrem"];
/// `claim.lua` with nothing due.
const CLAIM_NOTHING_DUE: &[&str] = &["time", "zrangebyscore", "zcard", "zrange"];
/// `mark_active.lua`: a sale marked active before its reservation (once per 5 s per sale).
const MARK_ACTIVE: &[&str] = &["time", "zadd"];
/// `active_sales.lua` on an index that has its epoch: the recovery poller's one read per poll.
const INDEX_READ: &[&str] = &["time", "zremrangebyscore", "zrange"];

/// The calls INFO commandstats should show for `runs` (script path, how many runs): one
/// EVALSHA per run plus what each path executes inside Redis.
fn expected_calls(runs: &[(&[&str], u64)]) -> std::collections::BTreeMap<String, u64> {
    let inside = commands_inside_scripts();
    let mut calls = std::collections::BTreeMap::new();
    for (path, n) in runs {
        for command in *path {
            assert!(inside.contains(*command), "{command} is in no script");
            *calls.entry(command.to_string()).or_insert(0) += n;
        }
    }
    calls.retain(|_, n| *n > 0);
    calls
}

/// INFO commandstats without the harness's own commands (INFO, CONFIG RESETSTAT, the handshake).
async fn origin_calls(stack: &Stack) -> std::collections::BTreeMap<String, u64> {
    let mut stats = stack.redis.command_stats().await.unwrap();
    stats.retain(|cmd, _| !BOOKKEEPING_COMMANDS.contains(&cmd.as_str()));
    stats
}

/// The scripts the origin runs besides the reservations' own, counted by its metrics: the
/// recovery poller's claims and index reads, and the sales marked active.
#[derive(Debug, Clone, Copy, Default)]
struct Background {
    claims: u64,
    index_reads: u64,
    marks: u64,
}

impl Background {
    async fn read(stack: &Stack) -> Self {
        let text = metrics::scrape(&stack.http, &format!("{}/metrics", stack.origin.url()))
            .await
            .unwrap();
        let count = |name| metrics::sample_sum(&text, name, &[]) as u64;
        Self {
            claims: count("origin_recovery_claims_total"),
            index_reads: count("origin_recovery_index_reads_total"),
            marks: count("origin_activity_marks_total"),
        }
    }

    fn since(self, before: Self) -> Self {
        Self {
            claims: self.claims - before.claims,
            index_reads: self.index_reads - before.index_reads,
            marks: self.marks - before.marks,
        }
    }

    fn evalsha(self) -> u64 {
        self.claims + self.index_reads + self.marks
    }

    /// The script paths they ran (nothing due, the index with its epoch).
    fn paths(self) -> [(&'static [&'static str], u64); 3] {
        [
            (CLAIM_NOTHING_DUE, self.claims),
            (INDEX_READ, self.index_reads),
            (MARK_ACTIVE, self.marks),
        ]
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_round_trips_one_per_loser_at_most_two_per_winner() {
    // A poll interval longer than the test keeps the recovery poller out of the counts but for
    // its first poll (the full pass at start, awaited below). The sale is marked active once per
    // 5 s, not per attempt: the marks, like the poller's scripts, are counted by the origin's
    // metrics and are not the reservations' round trips.
    let options = OriginOptions {
        poll_interval_ms: 60_000,
        ..OriginOptions::default()
    };
    let stack = stack(options).await;
    wait::until(
        "the poller's first full pass",
        std::time::Duration::from_secs(30),
        || async {
            let text =
                metrics::scrape(&stack.http, &format!("{}/metrics", stack.origin.url())).await?;
            Ok(metrics::sample_sum(&text, "origin_recovery_full_passes_total", &[]) >= 1.0)
        },
    )
    .await
    .unwrap();
    let sale = stack.create_sale(5).await.unwrap();

    // Every call INFO commandstats shows is either an EVALSHA (a round trip) or a command a
    // script ran inside Redis; the second kind must be exactly what the scripts' paths run, so
    // that a plain command sent by the origin (even one the scripts also use) shows up.
    stack.redis.reset_stats().await.unwrap();
    let before = Background::read(&stack).await;
    let mut confirmed = 0;
    for i in 0..5 {
        let (status, body) = stack.reserve(sale, &format!("w{i}")).await.unwrap();
        assert_eq!(status, 200, "{body}");
        confirmed += u64::from(body["confirmed"] == true);
    }
    let stats = origin_calls(&stack).await;
    let background = Background::read(&stack).await.since(before);
    let evalsha = stats.get("evalsha").copied().unwrap_or(0);
    let winners = evalsha - background.evalsha();
    let mut runs = vec![
        (RESERVE_WON, 5),
        (&["publish"][..], 1),
        (COMPLETE_PENDING, confirmed),
    ];
    runs.extend(background.paths());
    let mut expected = expected_calls(&runs);
    expected.insert("evalsha".into(), 5 + confirmed + background.evalsha());
    println!("winners' commandstats: {stats:?} ({background:?}, {confirmed} confirmed)");
    assert!(
        background.marks >= 1,
        "the sale is marked before its first reservation"
    );
    assert!(winners <= 2 * 5, "{winners} EVALSHA for 5 winners");
    assert_eq!(
        stats, expected,
        "only EVALSHA and what the scripts run inside"
    );

    stack.redis.reset_stats().await.unwrap();
    let before = Background::read(&stack).await;
    for i in 0..20 {
        assert_eq!(stack.reserve(sale, &format!("l{i}")).await.unwrap().0, 410);
    }
    for i in 0..5 {
        assert_eq!(stack.reserve(sale, &format!("w{i}")).await.unwrap().0, 409);
    }
    let stats = origin_calls(&stack).await;
    let background = Background::read(&stack).await.since(before);
    let losers = stats.get("evalsha").copied().unwrap_or(0) - background.evalsha();
    let mut runs = vec![(RESERVE_SOLD_OUT, 20), (RESERVE_DUPLICATE, 5)];
    runs.extend(background.paths());
    let mut expected = expected_calls(&runs);
    expected.insert("evalsha".into(), 25 + background.evalsha());
    println!("losers' commandstats: {stats:?} ({background:?})");
    println!("redis round trips: {winners} for 5 winners, {losers} for 25 losers");
    assert_eq!(losers, 25, "one EVALSHA per losing attempt");
    assert_eq!(
        stats, expected,
        "only EVALSHA and what the scripts run inside"
    );

    // The scripts survive a SCRIPT FLUSH: EVALSHA fails with NOSCRIPT, the script is loaded again.
    let mut conn = stack.redis.connection().await.unwrap();
    let _: () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut conn)
        .await
        .unwrap();
    let sale2 = stack.create_sale(1).await.unwrap();
    assert_eq!(stack.reserve(sale2, "after-flush").await.unwrap().0, 200);
    stack.books(sale2).await.unwrap().check().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_gets_a_clear_json_error_and_changes_nothing() {
    let stack = stack(OriginOptions::default()).await;
    let sale = stack.create_sale(3).await.unwrap();
    let mut conn = stack.redis.connection().await.unwrap();
    let keys_before: i64 = redis::cmd("DBSIZE").query_async(&mut conn).await.unwrap();
    let books_before = stack.books(sale).await.unwrap();
    let url = stack.origin.url();
    let reserve = format!("/v1/sales/{sale}/reserve");
    let huge_uid = "u".repeat(129);
    let oversized = format!("{{\"uid\": \"{}\"}}", "x".repeat(5000));

    let cases: Vec<(&str, &str, String, u16, &str)> = vec![
        ("POST", &reserve, "{\"uid\": ".into(), 400, "malformed_json"),
        ("POST", &reserve, "[1,2]".into(), 400, "invalid_body"),
        ("POST", &reserve, "{}".into(), 400, "invalid_body"),
        ("POST", &reserve, "{\"uid\": 7}".into(), 400, "invalid_body"),
        (
            "POST",
            &reserve,
            "{\"uid\": \"\"}".into(),
            400,
            "invalid_uid",
        ),
        (
            "POST",
            &reserve,
            json!({"uid": huge_uid}).to_string(),
            400,
            "invalid_uid",
        ),
        (
            "POST",
            &reserve,
            "{\"uid\": \"a\\u0000b\"}".into(),
            400,
            "invalid_uid",
        ),
        ("POST", &reserve, oversized, 413, "body_too_large"),
        (
            "POST",
            "/v1/sales/999999/reserve",
            "{\"uid\": \"u\"}".into(),
            404,
            "unknown_sale",
        ),
        (
            "POST",
            "/v1/sales/abc/reserve",
            "{\"uid\": \"u\"}".into(),
            400,
            "invalid_sale_id",
        ),
        (
            "POST",
            "/v1/sales/-3/reserve",
            "{\"uid\": \"u\"}".into(),
            400,
            "invalid_sale_id",
        ),
        (
            "GET",
            "/v1/sales/999999",
            String::new(),
            404,
            "unknown_sale",
        ),
        (
            "POST",
            "/v1/sales",
            json!({"name": "x", "stock": -1}).to_string(),
            400,
            "invalid_stock",
        ),
        (
            "POST",
            "/v1/sales",
            json!({"name": "x", "stock": 1e12}).to_string(),
            400,
            "invalid_body",
        ),
        (
            "POST",
            "/v1/sales",
            json!({"name": "x", "stock": 100_000_000}).to_string(),
            400,
            "invalid_stock",
        ),
        (
            "POST",
            "/v1/sales",
            json!({"name": "", "stock": 1}).to_string(),
            400,
            "invalid_name",
        ),
        (
            "POST",
            "/v1/sales",
            json!({"name": "x", "stock": 1, "hold_seconds": 0}).to_string(),
            400,
            "invalid_hold",
        ),
        (
            "POST",
            "/v1/sales",
            json!({"name": "x", "stock": 1, "starts_at": "tomorrow"}).to_string(),
            400,
            "invalid_body",
        ),
        (
            "POST",
            "/v1/sales",
            json!({"name": "x", "stock": 1, "colour": "red"}).to_string(),
            400,
            "invalid_body",
        ),
        ("GET", "/nowhere", String::new(), 404, "not_found"),
        ("DELETE", &reserve, String::new(), 405, "method_not_allowed"),
    ];
    for (method, path, body, status, code) in cases {
        let resp = stack
            .http
            .request(method.parse().unwrap(), format!("{url}{path}"))
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        let got = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        let json: Value = serde_json::from_str(&text)
            .unwrap_or_else(|_| panic!("{method} {path} {body:.60}: not JSON: {text}"));
        assert_eq!(
            (got, json["error"].as_str()),
            (status, Some(code)),
            "{method} {path} {body:.60}: {text}"
        );
        assert!(
            json["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{text}"
        );
    }

    // Without the JSON content type.
    let resp = stack
        .http
        .post(format!("{url}{reserve}"))
        .body("{\"uid\": \"u\"}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);

    let keys_after: i64 = redis::cmd("DBSIZE").query_async(&mut conn).await.unwrap();
    assert_eq!(keys_before, keys_after, "bad input wrote to Redis");
    assert_eq!(
        stack.books(sale).await.unwrap(),
        books_before,
        "bad input changed the books"
    );
    let sales: i64 = stack
        .postgres
        .client()
        .await
        .unwrap()
        .query_one("SELECT count(*) FROM sales", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(sales, 1, "a refused sale was created");
}

#[tokio::test(flavor = "multi_thread")]
async fn i4_reconcile_reports_zero_drift_then_a_hand_made_drift_and_repairs_it() {
    let stack = stack(OriginOptions::default()).await;
    let sale = stack.create_sale(3).await.unwrap();
    for uid in ["a", "b"] {
        assert_eq!(stack.reserve(sale, uid).await.unwrap().0, 200);
    }
    let (ok, report) = stack.reconcile(sale, false).await.unwrap();
    assert!(ok, "{report}");
    assert_eq!(
        (
            &report["stock"],
            &report["redis_remaining"],
            &report["live_orders"],
            &report["in_flight"],
            &report["drift"]
        ),
        (&json!(3), &json!(1), &json!(2), &json!(0), &json!(0)),
        "{report}"
    );

    // Redis "forgets" two sales (as after a data loss): it now has more units than the database.
    let mut conn = stack.redis.connection().await.unwrap();
    let _: () = conn.set(format!("{{s:{sale}}}:stock"), 3).await.unwrap();
    let run = stack.reconcile_run(sale, false).await.unwrap();
    assert_eq!((run.code, &run.report["drift"]), (1, &json!(-2)), "{run:?}");

    // A failure (here an unknown sale) is not a drift: exit 2, no report.
    let run = stack.reconcile_run(sale + 1000, false).await.unwrap();
    assert_eq!((run.code, &run.report), (2, &Value::Null), "{run:?}");
    assert!(run.stderr.contains("no sale"), "{run:?}");

    // Units the database no longer has: Redis grants one, PostgreSQL refuses it: a `rejected`
    // row records it (I4) and the stock in Redis closes at what PostgreSQL has left, none, so the
    // next buyer is refused by Redis without reaching the database.
    assert_eq!(stack.reserve(sale, "c").await.unwrap().0, 200);
    let (status, body) = stack.reserve(sale, "d").await.unwrap();
    assert_eq!(
        (status, body["error"].as_str()),
        (410, Some("sold_out")),
        "{body}"
    );
    let books = stack.books(sale).await.unwrap();
    assert_eq!(
        (books.live(), books.rejected, books.redis_remaining),
        (3, 1, 0),
        "{books:?}"
    );

    // The repair has nothing left to do, and says so.
    let run = stack.reconcile_run(sale, true).await.unwrap();
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        (&run.report["redis_remaining"], &run.report["drift"]),
        (&json!(0), &json!(0))
    );
    assert!(run.stderr.contains("nothing to repair"), "{run:?}");
    stack.books(sale).await.unwrap().check().unwrap();
}

/// Group commit: one transaction for many branches gives each gid what a branch of its own would
/// give. A repeat reads the earlier order, a gid queued twice is written once, and beyond the
/// database's units the rest are `rejected`, in queue order.
#[tokio::test(flavor = "multi_thread")]
async fn a_batch_of_branches_gives_each_gid_its_own_outcome() {
    let stack = stack(OriginOptions::default()).await;
    let sale = stack.create_sale(3).await.unwrap();
    let db =
        Database::connect(&stack.postgres.url(), 2, std::time::Duration::from_secs(5)).unwrap();
    let branch = |uid: &str| Branch {
        sale,
        uid: uid.to_string(),
        gid: format!("{sale}/{uid}"),
    };

    let first = branches::write_batch(&db, &[branch("u0")]).await.unwrap();
    assert!(first[0].fresh && !first[0].rejected, "{first:?}");

    let batch = ["u1", "u2", "u3", "u1", "u0", "u4"].map(branch);
    let out = branches::write_batch(&db, &batch).await.unwrap();
    let summary: Vec<(bool, bool)> = out.iter().map(|o| (o.fresh, o.rejected)).collect();
    assert_eq!(
        summary,
        [
            (true, false),  // u1: a unit
            (true, false),  // u2: the last unit
            (true, true),   // u3: none left, rejected
            (false, false), // u1 again: the same order, not written twice
            (false, false), // u0: written by the first batch
            (true, true),   // u4: rejected
        ],
        "{out:?}"
    );
    assert_eq!(out[3].order_id, out[0].order_id);
    assert_eq!(out[4].order_id, first[0].order_id);

    // Running the whole batch again changes nothing and answers the same orders.
    let again = branches::write_batch(&db, &batch).await.unwrap();
    assert!(again.iter().all(|o| !o.fresh), "{again:?}");
    let ids = |v: &[branches::BranchOutcome]| v.iter().map(|o| o.order_id).collect::<Vec<_>>();
    assert_eq!(ids(&again), ids(&out));

    let pg = stack.postgres.client().await.unwrap();
    let sold: i32 = pg
        .query_one("SELECT sold FROM sales WHERE id = $1", &[&sale])
        .await
        .unwrap()
        .get(0);
    let orders: i64 = pg
        .query_one("SELECT count(*) FROM orders WHERE sale_id = $1", &[&sale])
        .await
        .unwrap()
        .get(0);
    assert_eq!((sold, orders), (3, 5));
}

/// A crowd of winners the database has too few units for (Redis holds more than it should): the
/// winners' branches are written in batches, the database's units go to exactly that many, every
/// other one is rejected, and no rejected unit goes back to Redis: PostgreSQL is the truth, so the
/// stock in Redis closes at 0 and later buyers are refused there.
#[tokio::test(flavor = "multi_thread")]
async fn i1_i4_batched_winners_beyond_the_database_s_units_are_rejected_and_the_stock_closes() {
    let stack = Arc::new(stack(OriginOptions::default()).await);
    let sale = stack.create_sale(20).await.unwrap();
    let mut conn = stack.redis.connection().await.unwrap();
    let _: () = conn.set(format!("{{s:{sale}}}:stock"), 50).await.unwrap();

    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..50 {
        let stack = stack.clone();
        tasks.spawn(async move { stack.reserve(sale, &format!("b{i}")).await.unwrap() });
    }
    let answers = tasks.join_all().await;
    let ok = answers.iter().filter(|(s, _)| *s == 200).count();
    let refused = answers
        .iter()
        .filter(|(s, b)| *s == 410 && b["error"] == "sold_out")
        .count();
    assert_eq!(ok + refused, 50, "{answers:?}");

    stack
        .wait_quiet(sale, std::time::Duration::from_secs(30))
        .await
        .unwrap();
    let books = stack.books(sale).await.unwrap();
    assert_eq!(
        (books.live(), books.rejected, books.redis_remaining),
        (20, 30, 0),
        "{books:?}"
    );
    let text = metrics::scrape(&stack.http, &format!("{}/metrics", stack.origin.url()))
        .await
        .unwrap();
    let batches = metrics::sample_sum(&text, "origin_branch_batches_total", &[]);
    let branches = metrics::sample_sum(&text, "origin_branch_batch_size_sum", &[]);
    println!("{branches} branches in {batches} database transactions");
    assert_eq!(branches, 50.0, "every winner's branch went through a batch");
}

/// The database guards its own stock: a batch's `sold` update is `sold + k <= total` and must
/// change exactly the sale's row. Here a trigger makes PostgreSQL skip that update (0 rows): the
/// batch fails whole (no barrier, no order, nothing sold), the gid's branch is left to recovery,
/// and once the update goes through again the order is written, once.
#[tokio::test(flavor = "multi_thread")]
async fn i1_a_branch_whose_guarded_sold_update_changes_no_row_writes_nothing() {
    let stack = stack(OriginOptions::default()).await;
    let sale = stack.create_sale(2).await.unwrap();
    let db =
        Database::connect(&stack.postgres.url(), 2, std::time::Duration::from_secs(5)).unwrap();
    let pg = stack.postgres.client().await.unwrap();
    pg.batch_execute(
        "CREATE FUNCTION skip_sold() RETURNS trigger LANGUAGE plpgsql AS
           $$ BEGIN RETURN NULL; END $$;
         CREATE TRIGGER skip_sold BEFORE UPDATE OF sold ON sales
           FOR EACH ROW EXECUTE FUNCTION skip_sold();",
    )
    .await
    .unwrap();
    let branch = |uid: &str| Branch {
        sale,
        uid: uid.to_string(),
        gid: format!("{sale}/{uid}"),
    };
    let batch = [branch("g1"), branch("g2")];
    let refused = branches::write_batch(&db, &batch).await;
    assert!(
        matches!(
            refused,
            Err(origin::error::Error::StockGuard { rows: 0, .. })
        ),
        "{refused:?}"
    );
    let count = |sql: &'static str| {
        let pg = &pg;
        async move { pg.query_one(sql, &[]).await.unwrap().get::<_, i64>(0) }
    };
    assert_eq!(
        (
            count("SELECT count(*) FROM barriers").await,
            count("SELECT count(*) FROM orders").await,
            count("SELECT sum(sold)::bigint FROM sales").await,
        ),
        (0, 0, 0),
        "a refused batch writes nothing"
    );

    // Through the service: the winner is told `reserved`, unconfirmed; the order waits.
    let (status, body) = stack.reserve(sale, "w").await.unwrap();
    assert_eq!((status, &body["confirmed"]), (200, &json!(false)), "{body}");
    assert_eq!(count("SELECT count(*) FROM orders").await, 0);

    pg.batch_execute("DROP TRIGGER skip_sold ON sales")
        .await
        .unwrap();
    let books = stack
        .wait_balanced(sale, std::time::Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!((books.live(), books.sold, books.redis_remaining), (1, 1, 1));
}

/// The Redis side of a sale that `--repair` looks at: stock, restock count, due set.
async fn redis_side(stack: &Stack, sale: i64) -> (Option<i64>, Option<i64>, Vec<String>) {
    let mut conn = stack.redis.connection().await.unwrap();
    let stock: Option<i64> = conn.get(format!("{{s:{sale}}}:stock")).await.unwrap();
    let restocks: Option<i64> = conn.get(format!("{{s:{sale}}}:restocks")).await.unwrap();
    (stock, restocks, stack.books_redis_due(sale).await.unwrap())
}

/// `--repair` while a transaction is in flight (the origin died after taking its unit in Redis,
/// before its branch): refused, nothing changed, though the books drift; once recovery has
/// finished the transaction, the same command repairs.
#[tokio::test(flavor = "multi_thread")]
async fn i2_reconcile_repair_refuses_while_a_transaction_is_in_flight_and_changes_nothing() {
    let mut stack = stack(OriginOptions::default()).await;
    let sale = stack.create_sale(5).await.unwrap();
    assert_eq!(stack.reserve(sale, "a").await.unwrap().0, 200);
    stack.origin.restart(Some("after_reserve")).await.unwrap();
    assert!(
        stack.reserve(sale, "b").await.is_err(),
        "the crash point cuts the request off"
    );
    stack
        .origin
        .wait_exit(std::time::Duration::from_secs(30))
        .await
        .unwrap();
    // A drift to repair: Redis "forgets" a unit sold. Made once no origin runs, so that no
    // origin's own books check heals it first.
    let mut conn = stack.redis.connection().await.unwrap();
    let _: () = conn.set(format!("{{s:{sale}}}:stock"), 4).await.unwrap();
    let redis_before = redis_side(&stack, sale).await;
    assert_eq!(redis_before.2, [format!("{sale}/b")], "b is in flight");
    let books_before = stack.books(sale).await.unwrap();

    let run = stack.reconcile_run(sale, true).await.unwrap();
    assert!(
        run.stderr
            .contains("not repaired: 1 transactions in flight"),
        "{run:?}"
    );
    assert_eq!(
        (run.code, &run.report["in_flight"], &run.report["drift"]),
        (1, &json!(1), &json!(-1)),
        "{run:?}"
    );
    assert_eq!(
        redis_side(&stack, sale).await,
        redis_before,
        "Redis changed"
    );
    assert_eq!(
        stack.books(sale).await.unwrap(),
        books_before,
        "the books changed"
    );

    // Recovery finishes b; the repair goes through.
    stack.origin.restart(None).await.unwrap();
    stack
        .wait_quiet(sale, std::time::Duration::from_secs(30))
        .await
        .unwrap();
    let run = stack.reconcile_run(sale, true).await.unwrap();
    assert!(run.stderr.contains("repaired sale"), "{run:?}");
    assert_eq!((run.code, &run.report["drift"]), (0, &json!(0)), "{run:?}");
    let books = stack.books(sale).await.unwrap();
    books.check().unwrap();
    assert_eq!((books.live(), books.redis_remaining), (2, 3));
}

/// The race `--repair` closes: it reads Redis, then PostgreSQL, then writes Redis. Here a
/// purchase completes between the first two reads and a hold's unit comes back between the last
/// two: the stock is back to what the snapshot saw, but PostgreSQL was read with the cancelled
/// order still live, so writing `stock - live` would lose a unit. The restock count moved, and
/// the script refuses; a repair run afresh writes the right stock.
#[tokio::test(flavor = "multi_thread")]
async fn i2_reconcile_repair_refuses_when_a_purchase_and_a_return_land_between_its_reads() {
    let stack = stack(OriginOptions::default()).await;
    let sale = stack.create_sale(5).await.unwrap();
    let (status, first) = stack.reserve(sale, "a").await.unwrap();
    assert_eq!(status, 200, "{first}");
    let quiet = std::time::Duration::from_secs(30);
    stack.wait_quiet(sale, quiet).await.unwrap();
    assert_eq!(stack.books(sale).await.unwrap().live(), 1);
    let timeout = std::time::Duration::from_secs(5);
    let redis = Reservations::new(stack.redis.handle(timeout).await.unwrap(), timeout);
    let db = Database::connect(&stack.postgres.url(), 2, timeout).unwrap();

    let seen = redis.stock_snapshot(sale).await.unwrap();
    assert_eq!((seen.stock, seen.in_flight), (Some(4), 0), "{seen:?}");

    assert_eq!(stack.reserve(sale, "b").await.unwrap().0, 200);
    stack.wait_quiet(sale, quiet).await.unwrap();

    let held = db.units_held(sale).await.unwrap();
    assert_eq!((held.live, held.returning), (2, 0));

    let order_id = db_order_id(&stack, sale, "a").await;
    let resp = stack
        .http
        .delete(format!("{}/v1/orders/{order_id}?uid=a", stack.origin.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status().as_u16(),
        200,
        "{}",
        resp.text().await.unwrap()
    );
    stack.wait_quiet(sale, quiet).await.unwrap();
    assert_eq!(redis.remaining(sale).await.unwrap(), seen.stock, "an ABA");

    let wrong = 5 - held.live;
    let out = redis.repair_stock(sale, wrong, &seen).await.unwrap();
    assert_eq!(out, StockRepair::Moved);
    let books = stack.books(sale).await.unwrap();
    books.check().unwrap();
    assert_eq!((books.live(), books.redis_remaining), (1, 4));

    let again = reconcile::repair(&redis, &db, sale).await.unwrap();
    assert_eq!(
        again,
        reconcile::Repair::Repaired {
            from: Some(4),
            to: 4
        }
    );
    stack.books(sale).await.unwrap().check().unwrap();
}

/// The id of `uid`'s order in `sale`.
async fn db_order_id(stack: &Stack, sale: i64, uid: &str) -> i64 {
    stack
        .postgres
        .client()
        .await
        .unwrap()
        .query_one(
            "SELECT id FROM orders WHERE sale_id = $1 AND uid = $2",
            &[&sale, &uid],
        )
        .await
        .unwrap()
        .get(0)
}

/// A sale whose stock key Redis lost answers `503 stock_unavailable` (not `410`: nothing was
/// sold, yet the sale is not unknown) and heals by itself, with no operator: its stock is
/// rebuilt from PostgreSQL, and the earlier buyer, whose barrier is written back, is told
/// `duplicate` with their order; an id nobody knows stays 404. A creation whose Redis step fails
/// leaves no sale.
#[tokio::test(flavor = "multi_thread")]
async fn a_sale_whose_redis_stock_is_lost_is_503_then_heals_and_an_unknown_one_is_404() {
    let mut stack = stack(OriginOptions::default()).await;
    let sale = stack.create_sale(3).await.unwrap();
    let (_, first) = stack.reserve(sale, "a").await.unwrap();
    let order = first["order_id"].as_i64().unwrap();
    let mut conn = stack.redis.connection().await.unwrap();
    let keys: Vec<String> = conn.keys(format!("{{s:{sale}}}:*")).await.unwrap();
    let _: () = conn.del(keys).await.unwrap();

    let (status, body) = stack.reserve(sale, "b").await.unwrap();
    assert_eq!(
        (status, body["error"].as_str()),
        (503, Some("stock_unavailable")),
        "{body}"
    );
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
    let (status, body) = stack.reserve(sale + 1000, "b").await.unwrap();
    assert_eq!(
        (status, body["error"].as_str()),
        (404, Some("unknown_sale")),
        "{body}"
    );
    let healed = wait::until(
        "the sale healed",
        std::time::Duration::from_secs(10),
        || async { Ok(stack.reserve(sale, "b").await?.0 == 200) },
    )
    .await;
    assert!(healed.is_ok(), "{}", stack.origin.log_tail());
    assert!(
        stack
            .origin
            .log_tail()
            .contains("sale healed from PostgreSQL"),
        "{}",
        stack.origin.log_tail()
    );
    let (status, again) = stack.reserve(sale, "a").await.unwrap();
    assert_eq!(
        (status, again["error"].as_str(), again["order_id"].as_i64()),
        (409, Some("duplicate"), Some(order)),
        "{again}"
    );
    let books = stack
        .wait_balanced(sale, std::time::Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!((books.live(), books.redis_remaining), (2, 1), "{books:?}");
    let run = stack.reconcile_run(sale, false).await.unwrap();
    assert_eq!(run.code, 0, "no drift left: {run:?}");

    // Creating a sale while Redis is down: 503 and no sale row; once Redis is back, 201.
    let pg = stack.postgres.client().await.unwrap();
    let sales = || async {
        pg.query_one("SELECT count(*) FROM sales", &[])
            .await
            .unwrap()
            .get::<_, i64>(0)
    };
    stack.redis.kill();
    let (status, body) = stack
        .post("/v1/sales", &json!({"name": "Lost", "stock": 4}))
        .await
        .unwrap();
    assert_eq!(status, 503, "{body}");
    assert_eq!(sales().await, 1, "a sale without stock was left behind");
    stack.redis.restart().await.unwrap();
    let next = stack.create_sale(4).await.unwrap();
    assert_eq!(stack.reserve(next, "c").await.unwrap().0, 200);
    stack.books(next).await.unwrap().check().unwrap();
}
