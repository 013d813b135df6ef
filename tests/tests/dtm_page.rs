//! The sale page selling through a real dtm v1.19.0 server: the whole front (nginx → edge →
//! origin with `[coordinator] kind = "dtm"`, dtm's store in a Redis of its own), headless
//! Chromium pressing Buy. The shopper sees their order, dtm ran the message (prepare, submit, the
//! branch called back) and the books balance.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "integration tests: a failed unwrap is a failed test, with its message"
)]

use std::time::Duration;

use flash_tests::{
    browser::{Browser, Chromedriver},
    dtm_server::{DtmServer, DtmSettings},
    edge_process::EdgeOptions,
    front,
    front::Front,
    metrics,
    origin_process::{DtmCoordinator, OriginOptions},
    redis_server::RedisServer,
};
use serde_json::json;
use time::{format_description::well_known::Rfc3339, OffsetDateTime};

const WAIT: Duration = Duration::from_secs(30);

/// Waits until `script` (a function body) returns true in `browser`, naming `what`.
async fn until(browser: &Browser, dtm: &DtmServer, what: &str, script: &str) {
    browser
        .until(what, WAIT, script)
        .await
        .unwrap_or_else(|e| panic!("{e:#}\ndtm log:\n{}", dtm.log()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_sale_page_sells_through_a_real_dtm_server() {
    let store = RedisServer::start().await.unwrap();
    let dtm = DtmServer::start(DtmSettings::new(store.port(), "{dtm}"))
        .await
        .unwrap();
    let Front {
        stack,
        nginx,
        edge: _edge,
    } = front!()
        .origin(OriginOptions {
            dtm: Some(DtmCoordinator {
                dtm_url: dtm.url(),
                timeout_to_fail_seconds: 3,
                retry_interval_seconds: 0,
            }),
            ..OriginOptions::default()
        })
        .edge(EdgeOptions {
            levels: vec![(0, 10, false)],
            ..EdgeOptions::default()
        })
        .start(&front::static_root().unwrap())
        .await
        .unwrap();
    let starts_at = OffsetDateTime::now_utc().format(&Rfc3339).unwrap();
    let (status, body) = stack
        .post(
            "/v1/sales",
            &json!({"name": "Trail runner sneakers", "stock": 2, "starts_at": starts_at,
                    "price_cents": 12900, "currency": "EUR"}),
        )
        .await
        .unwrap();
    assert_eq!(status, 201, "{body}");
    let sale = body["id"].as_i64().unwrap();

    let driver = Chromedriver::start().await.unwrap();
    let browser = driver.session().await.unwrap();
    browser
        .goto(&format!("{}/sale/{sale}", nginx.url()))
        .await
        .unwrap();
    until(
        &browser,
        &dtm,
        "Buy enabled",
        r#"const buy = document.getElementById("buy"); return !!buy && !buy.hidden && !buy.disabled;"#,
    )
    .await;
    browser.click("#buy").await.unwrap();
    until(
        &browser,
        &dtm,
        "the order shown",
        r#"return document.getElementById("result").textContent.includes("You got it");"#,
    )
    .await;

    // dtm ran the message: prepared and submitted by the origin, its branch called back.
    let calls = |call: &'static str| {
        let stack = &stack;
        async move {
            let text = metrics::scrape(&stack.http, &format!("{}/metrics", stack.origin.url()))
                .await
                .unwrap();
            metrics::sample_sum(
                &text,
                "origin_dtm_calls_total",
                &[("call", call), ("outcome", "ok")],
            )
        }
    };
    stack.wait_quiet(sale, WAIT).await.unwrap();
    for call in ["prepare", "submit", "branch"] {
        assert_eq!(calls(call).await, 1.0, "{call}");
    }
    let books = stack.books(sale).await.unwrap();
    books.check().unwrap();
    assert_eq!((books.live(), books.in_flight), (1, 0), "{books:?}");
    assert_eq!(stack.live_buyers(sale).await.unwrap().len(), 1);
    browser.close().await.unwrap();
}
