//! The sale page in a real Chromium, its Buy pressed while Redis is away: it tells the shop is busy
//! in words, tries again no sooner than `Retry-After` asks, and buys once Redis is back.

use super::*;

/// The sale page's purchase requests so far (the captcha solution's POST and the buy), by the
/// Resource Timing API: their start times in ms of the page's clock, in order.
async fn page_purchase_fetches(browser: &Browser) -> Vec<f64> {
    let starts = browser
        .run(
            r#"return performance.getEntriesByType("resource")
                   .filter(e => { const u = new URL(e.name);
                                  return (u.pathname === "/api/captcha" && u.search === "")
                                      || u.pathname.endsWith("/buy"); })
                   .map(e => e.startTime).sort((a, b) => a - b);"#,
            vec![],
        )
        .await
        .unwrap();
    starts
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect()
}

/// nginx → edge → origin → Redis and PostgreSQL, as browser_sale/ starts it, the shipped Redis
/// timeouts; Redis is stopped while a visitor presses Buy on the sale page.
#[tokio::test(flavor = "multi_thread")]
async fn the_page_tells_the_shop_is_busy_waits_retry_after_and_buys_once_redis_is_back() {
    let static_root = front::static_root().unwrap();
    let (front, driver) = tokio::join!(shipped_front(10).start(&static_root), async {
        Chromedriver::start().await.unwrap()
    });
    let Front {
        mut stack,
        edge: _edge,
        nginx,
    } = front.unwrap();
    let browser = driver.session().await.unwrap();
    let sale = stack.create_sale(3).await.unwrap();
    browser
        .goto(&format!("{}/sale/{sale}", nginx.url()))
        .await
        .unwrap();
    let page = |what: &'static str, deadline: Duration, check: fn(&str, bool, &str) -> bool| {
        let browser = &browser;
        async move {
            flash_tests::sale_page::until(browser, what, deadline, check)
                .await
                .unwrap_or_else(|e| panic!("{e:#}"))
        }
    };
    page(
        "the live sale",
        Duration::from_secs(20),
        |countdown, enabled, _| countdown.starts_with("The sale is live. 3 left.") && enabled,
    )
    .await;

    // Redis away; the page still shows the live sale (the status goes without the count).
    stack.redis.kill();
    page(
        "the live sale without its count",
        Duration::from_secs(15),
        |countdown, enabled, _| countdown == "The sale is live." && enabled,
    )
    .await;

    // Buy: the check is solved, its solution refused for Redis's absence (503, Retry-After 2).
    browser.click("#buy").await.unwrap();
    page(
        "the busy message",
        Duration::from_secs(20),
        |_, enabled, result| {
            result.starts_with("The shop is busy, trying again in ")
                && result.ends_with(" s…")
                && !enabled
        },
    )
    .await;
    let told = browser.text("#result").await.unwrap();
    println!("the page says: {told}");
    wait::until(
        "three purchase requests",
        Duration::from_secs(20),
        || async { Ok(page_purchase_fetches(&browser).await.len() >= 3) },
    )
    .await
    .unwrap();

    // Redis back: the page's next try goes through, by itself.
    stack.redis.restart().await.unwrap();
    page(
        "the order, without a press",
        Duration::from_secs(30),
        |_, enabled, result| result.starts_with("You got it: order ") && !enabled,
    )
    .await;
    println!("then: {}", browser.text("#result").await.unwrap());

    // Never sooner than Retry-After (2 s) between two tries, and no more tries than the wait
    // allows.
    let starts = page_purchase_fetches(&browser).await;
    let gaps: Vec<f64> = starts.windows(2).map(|w| w[1] - w[0]).collect();
    println!("purchase requests at {starts:?} ms: gaps {gaps:?}");
    assert!(starts.len() >= 4, "tries and the buy: {starts:?}");
    let away_gaps = &gaps[..gaps.len() - 1]; // the last: the pass's solution, then its buy
    for gap in away_gaps {
        assert!(*gap >= 2000.0, "a try {gap:.0} ms after the last: {gaps:?}");
    }
    assert!(
        starts.len() <= 7,
        "at most 5 tries of the solution, then the buy: {starts:?}"
    );

    let books = stack
        .wait_balanced(sale, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(books.live(), 1, "{books:?}");
    let entries = browser.console().await.unwrap();
    let unexpected: Vec<_> = entries
        .iter()
        .filter(|e| e.level == "SEVERE" || e.level == "WARNING")
        .filter(|e| !(e.source == "network" && e.message.contains("status of 503 ")))
        .collect();
    assert!(unexpected.is_empty(), "console: {unexpected:#?}");
}
