//! Redis loses writes and PostgreSQL stays the truth, against real redis-server and PostgreSQL:
//! a Redis started again from an older copy of its AOF (the lost tail of a failover to a lagging
//! replica, or of a restore), and a Redis restarted with no data (a node replaced). Each heals by
//! itself, with nobody running reconcile, and each ends with the invariants: live orders within
//! the stock, at most one live order per gid, every `reserved` answer has its order, drift 0,
//! and the gate held: the attempts that reached PostgreSQL after the loss are bounded by the
//! units left, the units lost and a small constant.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "integration tests: a failed unwrap is a failed test, with its message"
)]

use flash_tests::{edge_binary, origin_binary};
use std::{
    collections::HashSet,
    sync::Arc,
    time::{Duration, Instant},
};

use flash_tests::{
    edge_process::{EdgeOptions, EdgeProcess},
    metrics,
    origin_process::{OriginOptions, OriginProcess},
    stack::Stack,
    wait,
};
use redis::AsyncCommands;
use serde_json::Value;

/// Attempts beyond the units left and the units lost that may reach PostgreSQL after a loss:
/// the reservations handed out between the loss and the moment an origin notices it (the very
/// reservation that hands a repeated fence out is one of them) and those racing the heal.
const GATE_SLACK: f64 = 8.0;

/// How long a loss may take to heal in these tests.
const HEAL_DEADLINE: Duration = Duration::from_secs(20);

async fn stack() -> Stack {
    Stack::start(origin_binary!(), OriginOptions::default())
        .await
        .unwrap()
}

/// Times a buyer asks again after a `503` (the shop busy, or the sale being healed).
const RETRIES: usize = 50;
/// A buyer's pause before asking again after a `503`.
const RETRY_PAUSE: Duration = Duration::from_millis(100);

/// `uids` buy at once, each asking again after a `503` as the page does; their last answers.
async fn crowd(stack: &Arc<Stack>, sale: i64, uids: Vec<String>) -> Vec<(String, u16, Value)> {
    crowd_of(stack, sale, uids, usize::MAX).await
}

/// [`crowd`] with at most `at_once` buyers asking at a time.
async fn crowd_of(
    stack: &Arc<Stack>,
    sale: i64,
    uids: Vec<String>,
    at_once: usize,
) -> Vec<(String, u16, Value)> {
    let slots = Arc::new(tokio::sync::Semaphore::new(
        at_once.min(tokio::sync::Semaphore::MAX_PERMITS),
    ));
    let mut tasks = tokio::task::JoinSet::new();
    for uid in uids {
        let stack = stack.clone();
        let slots = slots.clone();
        tasks.spawn(async move {
            let _slot = slots.acquire_owned().await.unwrap();
            let mut answer = stack.reserve(sale, &uid).await.unwrap();
            for _ in 0..RETRIES {
                if answer.0 != 503 {
                    break;
                }
                tokio::time::sleep(RETRY_PAUSE).await;
                answer = stack.reserve(sale, &uid).await.unwrap();
            }
            (uid, answer.0, answer.1)
        });
    }
    tasks.join_all().await
}

fn uids(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i}")).collect()
}

/// Users told `reserved`.
fn reserved(answers: &[(String, u16, Value)]) -> HashSet<String> {
    answers
        .iter()
        .filter(|(_, status, body)| *status == 200 && body["status"] == "reserved")
        .map(|(uid, _, _)| uid.clone())
        .collect()
}

/// The first answer to `uid` that is not a `503` (the origin's connection to a restarted Redis is
/// made again on the first command that fails).
async fn answered(stack: &Stack, sale: i64, uid: &str) -> u16 {
    let status = std::sync::Mutex::new(0);
    wait::until(
        "an answer other than 503",
        Duration::from_secs(5),
        || async {
            let (got, _) = stack.reserve(sale, uid).await?;
            *status.lock().unwrap() = got;
            Ok(got != 503)
        },
    )
    .await
    .unwrap();
    status.into_inner().unwrap()
}

/// The invariants every scenario ends with, drift 0 reached without reconcile's repair.
async fn assert_healed(stack: &Stack, sale: i64, told_reserved: &HashSet<String>) -> Duration {
    let started = Instant::now();
    let drift = wait::until("drift 0 without a repair", HEAL_DEADLINE, || async {
        let run = stack.reconcile_run(sale, false).await?;
        Ok(run.code == 0 && run.report["drift"] == 0)
    })
    .await;
    assert!(drift.is_ok(), "{drift:?}\n{}", stack.origin.log_tail());
    let books = stack.wait_balanced(sale, HEAL_DEADLINE).await.unwrap();
    books.check().unwrap();
    let live = stack.live_buyers(sale).await.unwrap();
    let missing: Vec<_> = told_reserved.difference(&live).collect();
    assert!(
        missing.is_empty(),
        "told reserved, no live order: {missing:?}"
    );
    println!("books after the heal: {books:?}");
    started.elapsed()
}

/// The lost tail, made for real: 30 buyers buy 30 of 40 units at once, and a copy of the
/// AOF is taken while they do; Redis is stopped and started again from that copy, so it has
/// forgotten the reservations made after it, whose orders PostgreSQL has (more stock than the 10
/// units left, their barriers gone). Then 60 newcomers and the 30 earlier buyers try to buy: the
/// origin notices the loss, heals the sale from PostgreSQL, every earlier buyer is told
/// `duplicate` with their order (or in flight, for a purchase the copy caught between its two
/// phases; or, while the heal runs, `sold_out`; never a second unit),
/// exactly the 10 units left are sold, and at most 10 + the units lost + a few attempts reach
/// PostgreSQL.
#[tokio::test(flavor = "multi_thread")]
async fn a_lost_tail_heals_by_itself_and_the_gate_holds() {
    let mut stack = Arc::new(stack().await);
    let sale = stack.create_sale(40).await.unwrap();
    let buying = tokio::spawn({
        let stack = stack.clone();
        // Two at a time, so that the crowd is still buying when the copy is taken.
        async move { crowd_of(&stack, sale, uids("early", 30), 2).await }
    });
    let db = stack.postgres.client().await.unwrap();
    wait::until("a third of the crowd's orders", HEAL_DEADLINE, || async {
        let n: i64 = db
            .query_one("SELECT count(*) FROM orders WHERE sale_id = $1", &[&sale])
            .await?
            .get(0);
        Ok(n >= 10)
    })
    .await
    .unwrap();
    let copy = stack.redis.copy_aof().unwrap();
    let early = buying.await.unwrap();
    assert_eq!(reserved(&early).len(), 30, "{early:?}");
    stack.wait_quiet(sale, HEAL_DEADLINE).await.unwrap();

    let restored = Instant::now();
    Arc::get_mut(&mut stack)
        .unwrap()
        .redis
        .restart_from(&copy)
        .await
        .unwrap();
    let mut conn = stack.redis.connection().await.unwrap();
    let stock: i64 = conn.get(format!("{{s:{sale}}}:stock")).await.unwrap();
    let lost = stock - 10;
    let mut forgotten = HashSet::new();
    for (uid, _, _) in &early {
        let barrier = format!("{{s:{sale}}}:b:{sale}/{uid}");
        if !conn.exists::<_, bool>(&barrier).await.unwrap() {
            forgotten.insert(uid.clone());
        }
    }
    println!(
        "the restored Redis has {stock} units for the 10 left ({lost} lost), and has forgotten {} buyers",
        forgotten.len()
    );
    assert!(lost >= 1, "the copy is older than the crowd's end");

    let before = stack.branch_runs().await.unwrap();
    let mut late = uids("newcomer", 60);
    late.extend(uids("early", 30));
    let answers = crowd(&stack, sale, late).await;
    let mut told = reserved(&early);
    told.extend(reserved(&answers));
    let healed_in = assert_healed(&stack, sale, &told).await;
    let reached = stack.branch_runs().await.unwrap() - before;
    let took = restored.elapsed();

    let newcomers: Vec<_> = answers
        .iter()
        .filter(|(uid, _, _)| uid.starts_with("newcomer"))
        .collect();
    let won = newcomers
        .iter()
        .filter(|(_, status, body)| *status == 200 && body["status"] == "reserved")
        .count();
    let live = stack.live_buyers(sale).await.unwrap();
    let newcomers_live = live.iter().filter(|u| u.starts_with("newcomer")).count();
    println!(
        "after the restore: {won} newcomers told reserved, {newcomers_live} hold a unit; \
         {reached} attempts reached PostgreSQL for 10 units left and {lost} lost; healed {took:?} \
         after the restart (drift 0 seen {healed_in:?} after the crowd)"
    );
    assert_eq!(live.len(), 40, "the sale sells out exactly");
    assert_eq!(
        newcomers_live, 10,
        "exactly the units left went to newcomers"
    );
    assert!(won <= 10, "{won} newcomers told reserved");
    // An earlier buyer asking while the sale heals may be refused from memory (their barrier is
    // not written back yet); once healed, every one is told about the order they have, and none
    // got a second unit.
    let ordered: std::collections::HashMap<&str, &Value> = early
        .iter()
        .map(|(uid, _, body)| (uid.as_str(), &body["order_id"]))
        .collect();
    for (uid, status, body) in answers.iter().filter(|(u, _, _)| u.starts_with("early")) {
        // In flight when the copy was taken: the restored record says so, recovery finishes it.
        let in_flight = body["state"] == "submitted";
        let told_order =
            *status == 409 && (body["order_id"] == *ordered[uid.as_str()] || in_flight);
        let refused = *status == 410 && body["error"] == "sold_out" && forgotten.contains(uid);
        assert!(
            told_order || refused,
            "{uid} during the heal: {status} {body}"
        );
        let (status, again) = stack.reserve(sale, uid).await.unwrap();
        assert_eq!(
            (status, &again["error"], &again["order_id"]),
            (409, &Value::from("duplicate"), ordered[uid.as_str()]),
            "{uid} after the heal: {again}"
        );
    }
    for (uid, status, body) in &newcomers {
        assert!(matches!(*status, 200 | 410), "{uid}: {status} {body}");
    }
    assert!(
        reached <= 10.0 + lost as f64 + GATE_SLACK,
        "{reached} attempts reached PostgreSQL"
    );
    let text = metrics::scrape(&stack.http, &format!("{}/metrics", stack.origin.url()))
        .await
        .unwrap();
    let heals = metrics::sample_sum(&text, "origin_heals_total", &[("outcome", "healed")]);
    assert_eq!(heals, 1.0, "healed once");
}

/// A node replaced by an empty one mid-sale: 4 of 10 units sold, then Redis restarts with no
/// data. The first buyer after it gets a `503` (never a wrong answer), the origin
/// heals the sale from PostgreSQL by itself, the 4 earlier buyers are told `duplicate` with their
/// order, and 6 newcomers buy the 6 units left, with no more attempts reaching PostgreSQL than
/// those 6 and a few.
#[tokio::test(flavor = "multi_thread")]
async fn redis_restarted_empty_mid_sale_heals_by_itself() {
    let mut stack = Arc::new(stack().await);
    let sale = stack.create_sale(10).await.unwrap();
    let first = crowd(&stack, sale, uids("early", 4)).await;
    assert_eq!(reserved(&first).len(), 4, "{first:?}");
    stack.wait_quiet(sale, HEAL_DEADLINE).await.unwrap();

    let emptied = Instant::now();
    Arc::get_mut(&mut stack)
        .unwrap()
        .redis
        .restart_empty()
        .await
        .unwrap();
    let before = stack.branch_runs().await.unwrap();
    // The first answer after the restart: the origin's connection to Redis is being made again,
    // or the sale is being healed; nothing is taken either way.
    let (status, body) = stack.reserve(sale, "newcomer-x").await.unwrap();
    let unavailable = status == 503
        && (body["error"] == "stock_unavailable" || body["error"] == "redis_unavailable");
    assert!(unavailable || status == 200, "{status} {body}");
    let healed = wait::until("the sale to sell again", HEAL_DEADLINE, || async {
        let (status, _) = stack.reserve(sale, "newcomer-x").await?;
        Ok(status == 200 || status == 409)
    })
    .await;
    assert!(healed.is_ok(), "{}", stack.origin.log_tail());
    let took = emptied.elapsed();

    for (uid, _, body) in &first {
        let (status, again) = stack.reserve(sale, uid).await.unwrap();
        assert_eq!(
            (status, &again["error"], &again["order_id"]),
            (409, &Value::from("duplicate"), &body["order_id"]),
            "{uid}: {again}"
        );
    }
    let late = crowd(&stack, sale, uids("newcomer", 20)).await;
    let reached = stack.branch_runs().await.unwrap() - before;
    let mut told = reserved(&first);
    told.extend(reserved(&late));
    assert_healed(&stack, sale, &told).await;
    let live = stack.live_buyers(sale).await.unwrap();
    println!("healed {took:?} after the empty restart; {reached} attempts reached PostgreSQL for 6 units left");
    assert_eq!(live.len(), 10, "{live:?}");
    assert!(
        reached <= 6.0 + GATE_SLACK,
        "{reached} attempts reached PostgreSQL"
    );
}

/// A loss no reservation meets: a returned unit Redis forgot. 3 units sold out, a copy of the
/// AOF taken, then a buyer cancels and their unit goes back (the sale re-opens); Redis is started
/// from the copy, so it has forgotten the return: stock 0, the sale sold out for nothing, and no
/// buyer's attempt can tell (every one is refused from memory). The origins' look at the books,
/// every few seconds off the hot path, finds the drift at a quiet moment and heals the sale: the
/// unit is sold again, and the return is not counted twice.
#[tokio::test(flavor = "multi_thread")]
async fn a_forgotten_return_is_found_by_the_books_and_healed() {
    let mut stack = Arc::new(stack().await);
    let sale = stack.create_sale(3).await.unwrap();
    let first = crowd(&stack, sale, uids("early", 3)).await;
    assert_eq!(reserved(&first).len(), 3, "{first:?}");
    stack.wait_quiet(sale, HEAL_DEADLINE).await.unwrap();
    let copy = stack.redis.copy_aof().unwrap();
    let (quitter, _, body) = &first[0];
    let order = body["order_id"].as_i64().unwrap();
    let cancelled = stack
        .http
        .delete(format!(
            "{}/v1/orders/{order}?uid={quitter}",
            stack.origin.url()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(cancelled.status(), 200);
    stack.wait_quiet(sale, HEAL_DEADLINE).await.unwrap();

    Arc::get_mut(&mut stack)
        .unwrap()
        .redis
        .restart_from(&copy)
        .await
        .unwrap();
    let restored = Instant::now();
    assert_eq!(
        answered(&stack, sale, "late-0").await,
        410,
        "sold out for nothing"
    );
    let sold = wait::until("the returned unit sold again", HEAL_DEADLINE, || async {
        Ok(stack.reserve(sale, "late-1").await?.0 == 200)
    })
    .await;
    assert!(sold.is_ok(), "{}", stack.origin.log_tail());
    println!(
        "the forgotten return was healed and sold {:?} after the restore",
        restored.elapsed()
    );
    let text = metrics::scrape(&stack.http, &format!("{}/metrics", stack.origin.url()))
        .await
        .unwrap();
    let noticed = metrics::sample_sum(&text, "origin_redis_losses_total", &[("outcome", "drift")]);
    assert_eq!(noticed, 1.0, "noticed by the books, once");
    let mut told = reserved(&first);
    told.remove(quitter);
    told.insert("late-1".into());
    assert_healed(&stack, sale, &told).await;
    assert_eq!(
        stack.reserve(sale, "late-2").await.unwrap().0,
        410,
        "one unit came back, once"
    );
}

/// The edges' sold-out flags follow a heal. A sale of 3 sells out (both edges flag it); Redis is
/// started from a copy taken before any sale, so it has the 3 units again and the edges, on
/// their new subscription, clear their flags. The next buyer meets the loss: the sale heals to
/// what PostgreSQL has left, none, and `sold_out` reaches both edges, which then refuse from
/// memory without asking an origin.
#[tokio::test(flavor = "multi_thread")]
async fn a_healed_full_sale_turns_sold_out_on_every_edge() {
    let mut stack = stack().await;
    let edge_binary = edge_binary!();
    let mut edges = Vec::new();
    for _ in 0..2 {
        edges.push(
            EdgeProcess::start(
                edge_binary,
                &stack.redis.url(),
                &[stack.origin.url()],
                &EdgeOptions::default(),
            )
            .await
            .unwrap(),
        );
    }
    let sold_out_events = |edge: &EdgeProcess| {
        let http = stack.http.clone();
        let url = edge.metrics_url();
        async move {
            let text = metrics::scrape(&http, &url).await?;
            anyhow::Ok(metrics::sample_sum(
                &text,
                "edge_sale_events_total",
                &[("name", "sold_out")],
            ))
        }
    };
    let subscriptions =
        |edge: &EdgeProcess| edge.log().matches("subscribed to sale events").count();
    let sale = stack.create_sale(3).await.unwrap();
    for edge in &edges {
        wait::until("the edge subscribed", HEAL_DEADLINE, || async {
            Ok(subscriptions(edge) >= 1)
        })
        .await
        .unwrap();
    }
    let copy = stack.redis.copy_aof().unwrap();
    for uid in ["a", "b", "c"] {
        assert_eq!(stack.reserve(sale, uid).await.unwrap().0, 200);
    }
    for edge in &edges {
        wait::until("the sale sold out on the edge", HEAL_DEADLINE, || async {
            Ok(sold_out_events(edge).await? >= 1.0)
        })
        .await
        .unwrap();
    }
    stack.wait_quiet(sale, HEAL_DEADLINE).await.unwrap();

    stack.redis.restart_from(&copy).await.unwrap();
    for edge in &edges {
        wait::until("the edge subscribed again", HEAL_DEADLINE, || async {
            Ok(subscriptions(edge) >= 2)
        })
        .await
        .unwrap();
    }
    let mut before = Vec::new();
    for edge in &edges {
        before.push(sold_out_events(edge).await.unwrap());
    }
    let (status, body) = stack.reserve(sale, "newcomer").await.unwrap();
    assert!(matches!(status, 410 | 503), "{status} {body}");
    let noticed = Instant::now();
    for (edge, before) in edges.iter().zip(before) {
        wait::until(
            "sold_out on the edge after the heal",
            HEAL_DEADLINE,
            || async { Ok(sold_out_events(edge).await? > before) },
        )
        .await
        .unwrap();
    }
    println!(
        "both edges had sold_out {:?} after the first buyer met the loss",
        noticed.elapsed()
    );
    assert_healed(&stack, sale, &["a", "b", "c"].map(String::from).into()).await;
    for edge in &edges {
        let asked = edge
            .metric(&stack.http, "edge_origin_requests_total", &[])
            .await
            .unwrap();
        let answer = stack
            .http
            .post(format!("{}/api/sales/{sale}/buy", edge.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 410, "the edge refuses from its flag");
        let asked_after = edge
            .metric(&stack.http, "edge_origin_requests_total", &[])
            .await
            .unwrap();
        assert_eq!(asked, asked_after, "no origin was asked");
    }
}

/// `POST /v1/sales/{sale}/reserve` at the origin at `url`.
async fn reserve_at(http: &reqwest::Client, url: &str, sale: i64, uid: &str) -> (u16, Value) {
    let answer = http
        .post(format!("{url}/v1/sales/{sale}/reserve"))
        .json(&serde_json::json!({"uid": uid}))
        .send()
        .await
        .unwrap();
    (answer.status().as_u16(), answer.json().await.unwrap())
}

/// Two origins meet one loss: both sold units of the sale (so both saw its fences), Redis is
/// started from an older copy, and newcomers buy through both. Whichever notices first heals;
/// the other finds the heal under way or done: the sale is healed once, and sells out exactly.
#[tokio::test(flavor = "multi_thread")]
async fn two_origins_meeting_one_loss_heal_it_once() {
    let mut stack = stack().await;
    let other = OriginProcess::start(
        origin_binary!(),
        &stack.redis.url(),
        &stack.postgres.url(),
        &OriginOptions::default(),
        None,
    )
    .await
    .unwrap();
    let origins = [stack.origin.url(), other.url()];
    let sale = stack.create_sale(30).await.unwrap();
    for i in 0..10 {
        let (status, body) =
            reserve_at(&stack.http, &origins[i % 2], sale, &format!("early-{i}")).await;
        assert_eq!(status, 200, "{body}");
    }
    stack.wait_quiet(sale, HEAL_DEADLINE).await.unwrap();
    let copy = stack.redis.copy_aof().unwrap();
    for i in 10..20 {
        let (status, body) =
            reserve_at(&stack.http, &origins[i % 2], sale, &format!("early-{i}")).await;
        assert_eq!(status, 200, "{body}");
    }
    stack.wait_quiet(sale, HEAL_DEADLINE).await.unwrap();
    stack.redis.restart_from(&copy).await.unwrap();

    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..40 {
        let (http, url) = (stack.http.clone(), origins[i % 2].clone());
        tasks.spawn(async move {
            let uid = format!("newcomer-{i}");
            let mut answer = reserve_at(&http, &url, sale, &uid).await;
            for _ in 0..RETRIES {
                if answer.0 != 503 {
                    break;
                }
                tokio::time::sleep(RETRY_PAUSE).await;
                answer = reserve_at(&http, &url, sale, &uid).await;
            }
            (uid, answer.0, answer.1)
        });
    }
    let answers = tasks.join_all().await;
    let mut told: HashSet<String> = (0..20).map(|i| format!("early-{i}")).collect();
    told.extend(reserved(&answers));
    assert_healed(&stack, sale, &told).await;
    assert_eq!(stack.live_buyers(sale).await.unwrap().len(), 30);
    let mut by_outcome = std::collections::BTreeMap::new();
    for url in &origins {
        let text = metrics::scrape(&stack.http, &format!("{url}/metrics"))
            .await
            .unwrap();
        for outcome in ["healed", "busy", "already_healed", "lost_lock", "error"] {
            *by_outcome.entry(outcome).or_insert(0.0) +=
                metrics::sample_sum(&text, "origin_heals_total", &[("outcome", outcome)]);
        }
    }
    println!("heals of the two origins by outcome: {by_outcome:?}");
    assert_eq!(by_outcome["healed"], 1.0, "{by_outcome:?}");
    assert_eq!(
        by_outcome["lost_lock"] + by_outcome["error"],
        0.0,
        "{by_outcome:?}"
    );
}

/// A sale that ended longer than `redis.keys_retention_seconds` ago is not brought back: its
/// keys gone from Redis, the origins' look at the books notices the missing stock, and the heal
/// declines (`expired`), writing nothing.
#[tokio::test(flavor = "multi_thread")]
async fn a_sale_ended_beyond_the_key_retention_is_not_healed_back() {
    let stack = Stack::start(
        origin_binary!(),
        OriginOptions {
            keys_retention_seconds: 60,
            ..OriginOptions::default()
        },
    )
    .await
    .unwrap();
    let sale = stack.create_sale(5).await.unwrap();
    for uid in ["a", "b"] {
        assert_eq!(stack.reserve(sale, uid).await.unwrap().0, 200);
    }
    stack.wait_quiet(sale, HEAL_DEADLINE).await.unwrap();
    let db = stack.postgres.client().await.unwrap();
    db.execute(
        "UPDATE sales SET starts_at = now() - interval '3 minutes',
                          ends_at = now() - interval '2 minutes' WHERE id = $1",
        &[&sale],
    )
    .await
    .unwrap();
    let mut conn = stack.redis.connection().await.unwrap();
    let keys: Vec<String> = conn.keys(format!("{{s:{sale}}}:*")).await.unwrap();
    let _: () = conn.del(keys).await.unwrap();

    let declined = wait::until("the heal declined", HEAL_DEADLINE, || async {
        let text = metrics::scrape(&stack.http, &format!("{}/metrics", stack.origin.url())).await?;
        Ok(metrics::sample_sum(&text, "origin_heals_total", &[("outcome", "expired")]) >= 1.0)
    })
    .await;
    assert!(declined.is_ok(), "{}", stack.origin.log_tail());
    let left: Vec<String> = conn.keys(format!("{{s:{sale}}}:*")).await.unwrap();
    assert!(left.is_empty(), "keys brought back: {left:?}");
}
