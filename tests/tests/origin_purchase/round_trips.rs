//! The Redis round trips a reservation costs, counted by INFO commandstats against what the
//! scripts of `lua/` execute: one per loser, at most two per winner.

use super::*;

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
