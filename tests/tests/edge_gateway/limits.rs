//! The edge's limits with processes in front of one origin: the per-UID limit across two edges
//! (sparing other users), refused buys giving their global admission back, and the IP and global
//! dry runs that count and log but let requests through.

use flash_tests::edge_process::EdgeOptions;
use serde_json::{json, Value};

use crate::{buy, jwt, pass, start};

#[tokio::test(flavor = "multi_thread")]
async fn uid_limit_holds_across_two_edges_and_spares_other_users() {
    let options = EdgeOptions {
        uid_per_second: 0.05,
        uid_burst: 3,
        ..EdgeOptions::default()
    };
    let world = start(2, options).await;
    let sale = world.stack.create_sale(10).await.unwrap();
    let alice = jwt("alice");
    let mut statuses = Vec::new();
    let mut limited = None;
    for i in 0..5 {
        let edge = i % 2;
        let pass = pass(&world, edge, &alice, sale).await;
        let url = format!("{}/api/sales/{sale}/buy", world.edge(edge).url());
        let resp = world
            .http()
            .post(url)
            .bearer_auth(&alice)
            .json(&json!({"pass_token": pass}))
            .send()
            .await
            .unwrap();
        statuses.push(resp.status().as_u16());
        if resp.status() == 429 && limited.is_none() {
            limited = Some(resp.headers().clone());
        }
    }
    // Burst of 3 across both edges: the first buys, two duplicates, then 429s.
    assert_eq!(statuses, [200, 409, 409, 429, 429]);
    let headers = limited.unwrap();
    let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=20).contains(&retry), "Retry-After {retry}");
    assert_eq!(headers["ratelimit-limit"], "3");
    assert_eq!(headers["ratelimit-remaining"], "0");
    assert!(headers.contains_key("ratelimit-reset"));

    let bob = jwt("bob");
    let pass = pass(&world, 1, &bob, sale).await;
    assert_eq!(
        buy(&world, 1, Some(&bob), sale, &pass).await.0,
        200,
        "another uid is unaffected"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn refused_buys_give_their_global_admission_back() {
    // Two admissions a second for the sale, leased one at a time; one purchase per 20 s per
    // user, two at once.
    let options = EdgeOptions {
        global_per_second: 2,
        global_lease: 1,
        uid_per_second: 0.05,
        uid_burst: 2,
        ..EdgeOptions::default()
    };
    let world = start(1, options).await;
    let sale = world.stack.create_sale(10).await.unwrap();
    let (alice, bob) = (jwt("alice"), jwt("bob"));
    let mut alice_passes = Vec::new();
    for _ in 0..3 {
        alice_passes.push(pass(&world, 0, &alice, sale).await);
    }
    let bob_pass = pass(&world, 0, &bob, sale).await;

    let mut seen = Vec::new();
    for pass_token in &alice_passes {
        let (status, body) = buy(&world, 0, Some(&alice), sale, pass_token).await;
        seen.push((
            status,
            body["error"].as_str().map(str::to_string),
            body["limit"].clone(),
        ));
    }
    assert_eq!(
        seen,
        [
            (200, None, Value::Null),
            (409, Some("duplicate".into()), Value::Null),
            (429, Some("rate_limited".into()), json!("uid")),
        ],
        "bought; a duplicate this edge knows; over the uid limit"
    );
    // The spent pass replayed from many addresses.
    let url = format!("{}/api/sales/{sale}/buy", world.edge(0).url());
    for i in 0..20 {
        let resp = world
            .http()
            .post(&url)
            .bearer_auth(&alice)
            .header("x-forwarded-for", format!("198.51.100.{i}"))
            .json(&json!({"pass_token": alice_passes[0]}))
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.unwrap();
        assert_eq!(
            (status, body["error"].as_str()),
            (403, Some("pass_token_spent")),
            "replay {i} is refused as spent, not by an exhausted global limit: {body}"
        );
    }
    let (status, body) = buy(&world, 0, Some(&bob), sale, &bob_pass).await;
    assert_eq!(
        status, 200,
        "the budget is still there for a real buyer: {body}"
    );
    let leases = world
        .edge(0)
        .metric(
            world.http(),
            "edge_redis_calls_total",
            &[("name", "global_lease")],
        )
        .await
        .unwrap();
    println!("25 buy attempts, 2 forwarded: {leases} global lease calls");
    assert!(
        leases <= 2.0,
        "only the two forwarded buys spend the budget: {leases} leases"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn ip_and_global_dry_runs_count_and_log_but_let_requests_through() {
    let options = EdgeOptions {
        ip_per_second: 0.01,
        ip_burst: 1,
        ip_dry_run: true,
        global_per_second: 1,
        global_lease: 1,
        global_dry_run: true,
        ..EdgeOptions::default()
    };
    let world = start(1, options).await;
    let sale = world.stack.create_sale(10).await.unwrap();
    let edge = world.edge(0);
    let http = world.http();
    let dry_runs = |limit: &'static str| async move {
        edge.metric(http, "edge_dry_run_refusals_total", &[("name", limit)])
            .await
            .unwrap()
    };

    // Per IP: one at once, then one per 100 s, but only counted.
    for i in 0..4 {
        let (status, body) = buy(&world, 0, None, sale, "x").await;
        assert_eq!(
            status, 401,
            "request {i} goes on to the identity check: {body}"
        );
    }
    assert!((dry_runs("ip").await - 3.0).abs() < f64::EPSILON);

    // Global: one admission a second for the sale, but only counted.
    let mut passes = Vec::new();
    for i in 0..3 {
        let token = jwt(&format!("dry{i}"));
        let pass = pass(&world, 0, &token, sale).await;
        passes.push((token, pass));
    }
    for (token, pass) in &passes {
        let (status, body) = buy(&world, 0, Some(token), sale, pass).await;
        assert_eq!(
            status, 200,
            "the global dry run lets the buy through: {body}"
        );
    }
    let global = dry_runs("global").await;
    println!("dry runs: ip {}, global {global}", dry_runs("ip").await);
    assert!(global >= 1.0, "the global dry run counted {global}");
    let log = edge.log();
    for limit in ["limit=\"ip\"", "limit=\"global\""] {
        assert!(
            log.lines()
                .any(|l| l.contains("dry run: would be rate limited") && l.contains(limit)),
            "the dry run logs what it lets through ({limit})"
        );
    }
}
