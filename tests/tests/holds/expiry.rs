//! Holds that lapse: the unit goes back and re-opens a sold-out sale on two edges; two origins
//! sweeping the same expired holds cancel each once.

use super::*;

#[tokio::test(flavor = "multi_thread")]
async fn a_lapsed_hold_gives_its_unit_back_and_reopens_the_sale_on_two_edges() {
    let stack = stack().await;
    let edges = [edge(&stack).await, edge(&stack).await];
    let sale = sale(&stack, 1, 2).await;
    let order = reserve(&stack, sale, "alice").await;
    for edge in &edges {
        let http = stack.http.clone();
        wait::until("sold out on the edge", DEADLINE, || {
            let http = http.clone();
            async move { Ok(edge_says_sold_out(&http, edge, sale).await) }
        })
        .await
        .unwrap();
    }

    let expires_at: time::OffsetDateTime = {
        let db = stack.postgres.client().await.unwrap();
        db.query_one("SELECT expires_at FROM orders WHERE id = $1", &[&order])
            .await
            .unwrap()
            .get(0)
    };
    wait_status(&stack, order, "cancelled").await;
    for edge in &edges {
        let http = stack.http.clone();
        wait::until("the edge re-opens the sale", DEADLINE, || {
            let http = http.clone();
            async move { Ok(!edge_says_sold_out(&http, edge, sale).await) }
        })
        .await
        .unwrap();
    }
    let reopened = time::OffsetDateTime::now_utc() - expires_at;
    println!(
        "expiry to buyable again on both edges: {:.2} s",
        reopened.as_seconds_f64()
    );
    // The status JSON, which open pages poll, says live again on both edges.
    for edge in &edges {
        let status = json_of(
            stack
                .http
                .get(format!("{}/api/sales/{sale}/status", edge.url())),
        )
        .await;
        assert_eq!(status["state"], "live", "{status}");
    }
    let books = stack.books(sale).await.unwrap();
    books.check().unwrap();
    assert_eq!(
        (books.redis_remaining, books.cancelled),
        (1, 1),
        "{books:?}"
    );

    // A new buyer gets the unit, through an edge.
    let bob = jwt("bob");
    let url = edges[1].url();
    let pass = flash_tests::shopper::pass_token(&stack.http, &url, &bob, sale, None)
        .await
        .unwrap();
    let buy = format!("{url}/api/sales/{sale}/buy");
    let resp = post_as(&stack, buy, &bob, json!({"pass_token": pass})).await;
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    let books = stack.books(sale).await.unwrap();
    books.check().unwrap();
    assert_eq!((books.redis_remaining, books.live()), (0, 1));
}

#[tokio::test(flavor = "multi_thread")]
async fn two_origins_sweeping_the_same_expired_holds_cancel_each_once() {
    const HOLDS: i64 = 40;
    let stack = stack().await;
    let other = front::start_origin(origin_binary!(), &stack).await.unwrap();
    let sale = sale(&stack, HOLDS, 1).await;
    let mut orders = Vec::new();
    for i in 0..HOLDS {
        orders.push(reserve(&stack, sale, &format!("sleeper-{i}")).await);
    }
    let db = stack.postgres.client().await.unwrap();
    let db = &db;
    wait::until("every hold cancelled", DEADLINE, || async move {
        let n: i64 = db
            .query_one(
                "SELECT count(*) FROM orders WHERE sale_id = $1 AND status = 'cancelled'",
                &[&sale],
            )
            .await?
            .get(0);
        Ok(n == HOLDS)
    })
    .await
    .unwrap();
    stack.wait_quiet(sale, DEADLINE).await.unwrap();
    // However the two sweepers shared the work, together they cancelled each hold once.
    let mut by_origin = Vec::new();
    for url in [stack.origin.url(), other.url()] {
        let text = flash_tests::metrics::scrape(&stack.http, &format!("{url}/metrics"))
            .await
            .unwrap();
        by_origin.push(flash_tests::metrics::sample_sum(
            &text,
            "origin_holds_total",
            &[("outcome", "expired")],
        ) as i64);
    }
    println!("expired holds cancelled by each origin: {by_origin:?}");
    assert_eq!(by_origin.iter().sum::<i64>(), HOLDS, "{by_origin:?}");
    let barriers: i64 = db
        .query_one(
            "SELECT count(*) FROM barriers b JOIN orders o ON o.gid = b.gid \
             WHERE o.sale_id = $1 AND b.op = 'cancel'",
            &[&sale],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(barriers, HOLDS);
    let books = stack.books(sale).await.unwrap();
    books.check().unwrap();
    assert_eq!(
        (books.cancelled, books.redis_remaining, books.live()),
        (HOLDS, HOLDS, 0),
        "every unit back once: {books:?}"
    );
}
