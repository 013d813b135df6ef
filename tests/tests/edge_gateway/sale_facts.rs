//! What an edge knows of a sale, as processes: the sold-out short circuit (no Redis command, no
//! origin request, on both edges) and the restock that reopens them, the status's caching, and a
//! crowd asking about one sale costing the origin one lookup.

use std::time::Duration;

use flash_tests::{edge_process::EdgeOptions, gateway::World, origin_process::OriginOptions, wait};
use serde_json::{json, Value};
use tokio::time::Instant;

use crate::{buy, jwt, pass, start, start_with};

/// The `state` of a sale's status on `edge` and the answer's `Cache-Control`.
async fn status_and_cache(world: &World, edge: usize, sale: i64) -> (String, String) {
    let url = format!("{}/api/sales/{sale}/status", world.edge(edge).url());
    let resp = world.http().get(url).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let cache = resp.headers()["cache-control"]
        .to_str()
        .unwrap()
        .to_string();
    let body: Value = resp.json().await.unwrap();
    (body["state"].as_str().unwrap().to_string(), cache)
}

/// Sums every sample of a Prometheus counter family whose line starts with `prefix`.
async fn counter_sum(http: &reqwest::Client, url: &str, prefix: &str) -> f64 {
    let text = http.get(url).send().await.unwrap().text().await.unwrap();
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread")]
async fn sold_out_is_answered_from_memory_and_a_restock_reopens_both_edges() {
    // A poll interval longer than the test keeps the origin's recovery poller out of the counts.
    let origin = OriginOptions {
        poll_interval_ms: 60_000,
        ..OriginOptions::default()
    };
    let world = start_with(2, EdgeOptions::default(), origin).await;
    let sale = world.stack.create_sale(1).await.unwrap();
    assert_eq!(
        status_and_cache(&world, 0, sale).await,
        (
            "live".into(),
            "public, max-age=1, stale-while-revalidate=5".into()
        ),
        "a live sale's status is cached a second, served stale while it is fetched again"
    );
    let alice = jwt("alice");
    let pass_a = pass(&world, 0, &alice, sale).await;
    assert_eq!(buy(&world, 0, Some(&alice), sale, &pass_a).await.0, 200);

    // The last unit published `sold_out`: both edges learn it without any buy reaching them.
    for edge in 0..2 {
        let url = format!("{}/api/sales/{sale}/buy", world.edge(edge).url());
        let http = world.http().clone();
        wait::until(
            "the edge answers sold out from memory",
            Duration::from_secs(10),
            || {
                let req = http.post(&url).json(&json!({"pass_token": "x"})).send();
                async move { Ok(req.await?.status() == 410) }
            },
        )
        .await
        .unwrap();
    }

    for edge in 0..2 {
        assert_eq!(
            status_and_cache(&world, edge, sale).await,
            ("sold_out".into(), "public, max-age=5".into()),
            "a sold-out status is cached longer"
        );
    }

    let bob = jwt("bob");
    let pass_b = pass(&world, 1, &bob, sale).await;
    let origin_metrics = format!("{}/metrics", world.stack.origin.url());
    let origin_before =
        counter_sum(world.http(), &origin_metrics, "origin_reservations_total").await;
    world.stack.redis.reset_stats().await.unwrap();
    let started = Instant::now();
    for i in 0..1000 {
        let (status, body) = buy(&world, i % 2, Some(&bob), sale, &pass_b).await;
        assert_eq!((status, body["error"].as_str()), (410, Some("sold_out")));
    }
    let elapsed = started.elapsed();
    let stats = world.stack.redis.command_stats().await.unwrap();
    let redis_calls: u64 = stats
        .iter()
        .filter(|(cmd, _)| !matches!(cmd.as_str(), "config|resetstat" | "info"))
        .map(|(_, n)| n)
        .sum();
    let origin_after =
        counter_sum(world.http(), &origin_metrics, "origin_reservations_total").await;
    println!(
        "1000 sold-out buys in {elapsed:?}: {redis_calls} Redis commands, {} origin requests ({stats:?})",
        origin_after - origin_before
    );
    assert_eq!(
        redis_calls, 0,
        "the sold-out path must not touch Redis: {stats:?}"
    );
    assert!(
        (origin_after - origin_before).abs() < f64::EPSILON,
        "the sold-out path must not reach the origin"
    );

    // A unit comes back (the origin publishes `restocked`): both edges re-open.
    let mut conn = world.stack.redis.connection().await.unwrap();
    let _: i64 = redis::cmd("PUBLISH")
        .arg(format!("{{s:{sale}}}:events"))
        .arg("restocked")
        .query_async(&mut conn)
        .await
        .unwrap();
    for edge in 0..2 {
        let url = format!("{}/api/sales/{sale}/buy", world.edge(edge).url());
        let http = world.http().clone();
        wait::until(
            "the edge re-opens the sale",
            Duration::from_secs(10),
            || {
                let req = http.post(&url).json(&json!({"pass_token": "x"})).send();
                // Re-opened: the request goes on to the identity check (401) instead of 410.
                async move { Ok(req.await?.status() == 401) }
            },
        )
        .await
        .unwrap();
    }
}

/// A crowd asking about a sale whose facts the edge does not hold (never fetched, or expired)
/// costs the origin one lookup: one request fetches, the others wait for its answer.
#[tokio::test(flavor = "multi_thread")]
async fn a_crowd_asking_about_one_sale_costs_the_origin_one_lookup() {
    let world = start(1, EdgeOptions::default()).await;
    let sale = world.stack.create_sale(5).await.unwrap();
    let clock = world.stack.create_sale(5).await.unwrap();
    let edge = world.edge(0);
    let lookups = || async {
        edge.metric(
            world.http(),
            "edge_origin_requests_total",
            &[("name", "sale_lookup")],
        )
        .await
        .unwrap()
    };
    let status = |sale: i64| {
        let request = world
            .http()
            .get(format!("{}/api/sales/{sale}/status", edge.url()))
            .send();
        async move { request.await.unwrap().status().as_u16() }
    };
    let crowd = |when: &'static str| async move {
        let before = lookups().await;
        let started = Instant::now();
        let answers = futures_util::future::join_all((0..500).map(|_| status(sale))).await;
        let took = started.elapsed();
        let asked = lookups().await - before;
        println!(
            "500 status requests at once ({when}) cost the origin {asked} lookups in {took:?}"
        );
        assert!(answers.iter().all(|&s| s == 200), "{answers:?}");
        // One; two only when the facts expired again in the middle of a crowd slower than that.
        assert!(
            asked == 1.0 || (asked == 2.0 && took >= edge::sales::FACTS_TTL),
            "{asked} lookups for one sale in {took:?} ({when})"
        );
    };
    crowd("facts never fetched").await;

    // The sale's facts expire before the clock sale's, fetched after them: once a status of the
    // clock sale costs a lookup again, the sale's facts have expired.
    assert_eq!(status(clock).await, 200);
    wait::until(
        "the clock sale's facts expire",
        Duration::from_secs(10),
        || async {
            let before = lookups().await;
            assert_eq!(status(clock).await, 200);
            Ok(lookups().await > before)
        },
    )
    .await
    .unwrap();
    crowd("facts expired").await;
}
