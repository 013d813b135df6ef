//! A heal seen by the fleet: the edges' sold-out flags follow it, and two origins meeting one
//! loss heal it once.

use super::*;

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
            front::start_edge(edge_binary, &stack, &EdgeOptions::default())
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
    let other = front::start_origin(origin_binary!(), &stack).await.unwrap();
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
