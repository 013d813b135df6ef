//! Bad input at the origin: each a clear JSON error, and nothing written to Redis or PostgreSQL.
//! The table is driven through the origin's router in memory (`OriginRouter`), on a real Redis
//! and PostgreSQL.

use std::time::Duration;

use flash_tests::{
    origin_router::OriginRouter, postgres_server::PostgresServer, redis_server::RedisServer,
    stack::read_books, wait,
};
use origin::reservations::ACTIVE_SALES_KEY;
use redis::AsyncCommands;
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_gets_a_clear_json_error_and_changes_nothing() {
    let (redis, postgres) =
        tokio::try_join!(RedisServer::start(), PostgresServer::start()).unwrap();
    let origin = OriginRouter::start(&redis.url(), &postgres.url())
        .await
        .unwrap();
    let created = origin
        .send(
            "POST",
            "/v1/sales",
            json!({"name": "Test sneakers", "stock": 3}).to_string(),
            true,
        )
        .await
        .unwrap();
    assert_eq!(created.status, 201, "create sale: {}", created.text);
    let sale = created.json["id"].as_i64().expect("sale id");
    let mut conn = redis.connection().await.unwrap();
    // The recovery poller's first read puts the epoch of its index: the keys are counted after.
    wait::until("the poller's first read", Duration::from_secs(10), || {
        let mut conn = conn.clone();
        async move { Ok(conn.exists::<_, bool>(ACTIVE_SALES_KEY).await?) }
    })
    .await
    .unwrap();
    let keys_before: i64 = redis::cmd("DBSIZE").query_async(&mut conn).await.unwrap();
    let books_before = read_books(&mut conn, &postgres, sale).await.unwrap();
    let reserve = format!("/v1/sales/{sale}/reserve");
    let huge_uid = "u".repeat(129);
    let oversized = format!("{{\"uid\": \"{}\"}}", "x".repeat(5000));

    let cases: Vec<(&str, &str, String, u16, &str)> = vec![
        ("POST", &reserve, "{\"uid\": ".into(), 400, "malformed_json"),
        ("POST", &reserve, "[1,2]".into(), 400, "invalid_body"),
        ("POST", &reserve, "{}".into(), 400, "invalid_body"),
        ("POST", &reserve, "{\"uid\": 7}".into(), 400, "invalid_body"),
        (
            "POST",
            &reserve,
            "{\"uid\": \"\"}".into(),
            400,
            "invalid_uid",
        ),
        (
            "POST",
            &reserve,
            json!({"uid": huge_uid}).to_string(),
            400,
            "invalid_uid",
        ),
        (
            "POST",
            &reserve,
            "{\"uid\": \"a\\u0000b\"}".into(),
            400,
            "invalid_uid",
        ),
        ("POST", &reserve, oversized, 413, "body_too_large"),
        (
            "POST",
            "/v1/sales/999999/reserve",
            "{\"uid\": \"u\"}".into(),
            404,
            "unknown_sale",
        ),
        (
            "POST",
            "/v1/sales/abc/reserve",
            "{\"uid\": \"u\"}".into(),
            400,
            "invalid_sale_id",
        ),
        (
            "POST",
            "/v1/sales/-3/reserve",
            "{\"uid\": \"u\"}".into(),
            400,
            "invalid_sale_id",
        ),
        (
            "GET",
            "/v1/sales/999999",
            String::new(),
            404,
            "unknown_sale",
        ),
        (
            "POST",
            "/v1/sales",
            json!({"name": "x", "stock": -1}).to_string(),
            400,
            "invalid_stock",
        ),
        (
            "POST",
            "/v1/sales",
            json!({"name": "x", "stock": 1e12}).to_string(),
            400,
            "invalid_body",
        ),
        (
            "POST",
            "/v1/sales",
            json!({"name": "x", "stock": 100_000_000}).to_string(),
            400,
            "invalid_stock",
        ),
        (
            "POST",
            "/v1/sales",
            json!({"name": "", "stock": 1}).to_string(),
            400,
            "invalid_name",
        ),
        (
            "POST",
            "/v1/sales",
            json!({"name": "x", "stock": 1, "hold_seconds": 0}).to_string(),
            400,
            "invalid_hold",
        ),
        (
            "POST",
            "/v1/sales",
            json!({"name": "x", "stock": 1, "starts_at": "tomorrow"}).to_string(),
            400,
            "invalid_body",
        ),
        (
            "POST",
            "/v1/sales",
            json!({"name": "x", "stock": 1, "colour": "red"}).to_string(),
            400,
            "invalid_body",
        ),
        ("GET", "/nowhere", String::new(), 404, "not_found"),
        ("DELETE", &reserve, String::new(), 405, "method_not_allowed"),
    ];
    for (method, path, body, status, code) in cases {
        let answer = origin.send(method, path, body.clone(), true).await.unwrap();
        let text = &answer.text;
        assert!(
            answer.json.is_object(),
            "{method} {path} {body:.60}: not JSON: {text}"
        );
        assert_eq!(
            (answer.status, answer.json["error"].as_str()),
            (status, Some(code)),
            "{method} {path} {body:.60}: {text}"
        );
        assert!(
            answer.json["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{text}"
        );
    }

    // Without the JSON content type.
    let answer = origin
        .send("POST", &reserve, "{\"uid\": \"u\"}".into(), false)
        .await
        .unwrap();
    assert_eq!(answer.status, 400);

    let keys_after: i64 = redis::cmd("DBSIZE").query_async(&mut conn).await.unwrap();
    assert_eq!(keys_before, keys_after, "bad input wrote to Redis");
    assert_eq!(
        read_books(&mut conn, &postgres, sale).await.unwrap(),
        books_before,
        "bad input changed the books"
    );
    let sales: i64 = postgres
        .client()
        .await
        .unwrap()
        .query_one("SELECT count(*) FROM sales", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(sales, 1, "a refused sale was created");
    origin.stop().await;
}
