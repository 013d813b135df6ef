//! The status poll: its JSON comes from nginx's cache, and a run of failed polls (404s, refused
//! connections, 503s) leaves Buy enabled while the page backs off and comes back (finding 1).

use super::*;

#[tokio::test(flavor = "multi_thread")]
async fn the_status_json_is_served_from_nginx_s_cache() {
    let world = World::start().await;
    let (sale, _) = world.create_sale(5, Duration::ZERO).await;
    let url = format!("{}/api/sales/{sale}/status", world.front.nginx.url());
    let before = world.edge_status_requests().await;
    let mut cache = Vec::new();
    let started = tokio::time::Instant::now();
    for _ in 0..10 {
        let resp = world.http().get(&url).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        cache.push(
            resp.headers()
                .get("x-cache-status")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-")
                .to_string(),
        );
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["state"], "live", "{body}");
    }
    let took = started.elapsed();
    let answered = world.edge_status_requests().await - before;
    println!("10 status fetches through nginx in {took:?}: X-Cache-Status {cache:?}; the edge answered {answered}");
    assert!(cache.iter().any(|c| c == "HIT"), "{cache:?}");
    assert!(answered < 10, "the edge answered {answered} of 10");
}

/// Watches the page for `window`: the status fetches it made meanwhile, and whether Buy stayed
/// enabled at every look (four a second).
async fn watch_buy(browser: &Browser, window: Duration) -> (u64, bool) {
    let before = page_status_fetches(browser).await;
    let started = tokio::time::Instant::now();
    let mut always_enabled = true;
    let mut looks = tokio::time::interval(Duration::from_millis(250));
    while started.elapsed() < window {
        looks.tick().await;
        always_enabled &= browser.enabled("#buy").await.unwrap();
    }
    (page_status_fetches(browser).await - before, always_enabled)
}

/// Finding 1's last layer, the page: a run of `404`s on the status poll, then a run of refused
/// connections and `503`s, never disables Buy nor gives up on the sale. The page says it is
/// checking the sale again, asks with a growing backoff instead of its live pace, and comes
/// back by itself once the status answers again. Every failure is real: the sale's row set
/// aside in PostgreSQL (origin, edge and nginx's cache all answer `404 unknown_sale`), then the
/// origin killed and nginx restarted with an empty cache (no stale copy stands in for it).
#[tokio::test(flavor = "multi_thread")]
async fn finding_1_the_page_keeps_buy_through_failed_status_answers() {
    let (world, driver) = tokio::join!(World::start(), async {
        Chromedriver::start().await.unwrap()
    });
    let mut world = world;
    let browser = driver.session().await.unwrap();
    let (sale, _) = world.create_sale(5, Duration::ZERO).await;
    let status_url = format!("{}/api/sales/{sale}/status", world.front.nginx.url());
    browser
        .goto(&format!("{}/sale/{sale}", world.front.nginx.url()))
        .await
        .unwrap();
    let healthy = |countdown: &str, enabled: bool, _: &str| {
        countdown.starts_with("The sale is live") && !countdown.contains("Checking") && enabled
    };
    let troubled = |countdown: &str, enabled: bool, _: &str| {
        countdown.starts_with("The sale is live")
            && countdown.contains("Checking the sale again")
            && enabled
    };
    until_page(&browser, "the live sale", Duration::from_secs(20), healthy).await;

    // A run of 404s.
    let db = world.front.stack.postgres.client().await.unwrap();
    db.batch_execute(&format!(
        "CREATE TABLE sale_away AS SELECT * FROM sales WHERE id = {sale};
         DELETE FROM sales WHERE id = {sale};"
    ))
    .await
    .unwrap();
    until_page(
        &browser,
        "the page to tell the 404s",
        Duration::from_secs(10),
        troubled,
    )
    .await;
    let answer = world.http().get(&status_url).send().await.unwrap();
    assert_eq!(
        answer.status(),
        404,
        "nginx answers the page's poll with a 404"
    );
    let (asked, always_enabled) = watch_buy(&browser, Duration::from_secs(8)).await;
    println!("through 8 s of 404s the page asked {asked} times");
    assert!(always_enabled, "Buy was disabled during the 404s");
    // At its live pace (700 ms) the page would ask about 11 times in 8 s; backing off (2 s, 4 s,
    // 8 s, each ±30 %) it asks 1 to 3 times.
    assert!(
        (1..=4).contains(&asked),
        "{asked} status fetches in 8 s of 404s"
    );
    db.batch_execute(
        "INSERT INTO sales OVERRIDING SYSTEM VALUE SELECT * FROM sale_away; DROP TABLE sale_away;",
    )
    .await
    .unwrap();
    let back = until_page(
        &browser,
        "the page back after the 404s",
        Duration::from_secs(25),
        healthy,
    )
    .await;
    println!("the page was back {back:?} after the sale's row was");

    // A run of refused connections and 503s.
    world.front.stack.origin.kill().await.unwrap();
    // Once the edge no longer answers from what it remembers of the sale (a second), nginx
    // forgets its copy.
    let at_edge = format!("{}/api/sales/{sale}/status", world.front.edge.url());
    wait::until(
        "the edge to answer 503",
        Duration::from_secs(10),
        || async { Ok(world.http().get(&at_edge).send().await?.status() == 503) },
    )
    .await
    .unwrap();
    world.front.nginx.restart_cold().await.unwrap();
    until_page(
        &browser,
        "the page to tell the 503s",
        Duration::from_secs(15),
        troubled,
    )
    .await;
    let answer = world.http().get(&status_url).send().await.unwrap();
    assert_eq!(answer.status(), 503, "nginx has no stale copy to stand in");
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body["error"], "origin_unavailable", "{body}");
    let (asked, always_enabled) = watch_buy(&browser, Duration::from_secs(8)).await;
    println!("through 8 s of 503s the page asked {asked} times");
    assert!(always_enabled, "Buy was disabled during the 503s");
    assert!(asked <= 4, "{asked} status fetches in 8 s of 503s");
    world.front.stack.origin.restart(None).await.unwrap();
    let back = until_page(
        &browser,
        "the page back after the 503s",
        Duration::from_secs(25),
        healthy,
    )
    .await;
    println!("the page was back {back:?} after the origin was");
    let shown = browser.text("#result").await.unwrap();
    assert!(
        !shown.contains("does not exist"),
        "the page gave up: {shown}"
    );
}
