//! A sale whose Redis stock is lost: 503, then healed by itself; an unknown sale stays 404.

use super::*;

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
