//! dtm's calls to the origin (`POST /v1/dtm/branch`, `GET /v1/dtm/query`), driven through the
//! origin's router in memory on a real Redis and PostgreSQL, as a dtm v1.19 server makes them:
//! a branch called twice writes one order, a back-check before the reservation fails the message
//! for good (the marker refuses the late reservation), the recovery poller leaves dtm's
//! transactions to dtm, and an error of the origin's own is a 5xx, never a 200. The reservations
//! are the origin's own (`Reservations::reserve_message`, as a purchase with `kind = "dtm"` makes
//! them after its prepare); the process tests with a real dtm server are `dtm_server*`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "integration tests: a failed unwrap is a failed test, with its message"
)]

use std::time::Duration;

use flash_tests::{
    edge_router::Answer,
    origin_router::{self, OriginRouter},
    postgres_server::PostgresServer,
    redis_server::RedisServer,
    stack::read_books,
    wait,
};
use origin::{
    dtm::MessageGid,
    gid::Gid,
    reservations::{Reservation, Reservations},
    server,
};
use redis::AsyncCommands;
use serde_json::json;

struct Setup {
    redis: RedisServer,
    postgres: PostgresServer,
    origin: OriginRouter,
    reservations: Reservations,
    sale: i64,
}

async fn setup(stock: u32) -> Setup {
    let (redis, postgres) =
        tokio::try_join!(RedisServer::start(), PostgresServer::start()).unwrap();
    let config = origin_router::config(&redis.url(), &postgres.url());
    let (reservations, _) = server::connect(&config).await.unwrap();
    let origin = OriginRouter::start_with(config).await.unwrap();
    let created = origin
        .send(
            "POST",
            "/v1/sales",
            json!({"name": "Test sneakers", "stock": stock}).to_string(),
            true,
        )
        .await
        .unwrap();
    assert_eq!(created.status, 201, "create sale: {}", created.text);
    let sale = created.json["id"].as_i64().expect("sale id");
    Setup {
        redis,
        postgres,
        origin,
        reservations,
        sale,
    }
}

fn branch_path(message: &MessageGid) -> String {
    format!("/v1/dtm/branch?gid={message}&trans_type=msg&branch_id=01&op=action")
}

fn query_path(message: &MessageGid) -> String {
    format!("/v1/dtm/query?gid={message}&trans_type=msg&branch_id=00&op=msg")
}

/// The payload dtm sends with the branch, as the origin put it into the message.
fn payload(message: &MessageGid) -> String {
    json!({"sale": message.gid.sale, "uid": message.gid.uid}).to_string()
}

/// dtm reads a 200 as success only when the body holds neither FAILURE nor ONGOING.
fn assert_success(answer: &Answer, what: &str) {
    assert_eq!(answer.status, 200, "{what}: {}", answer.text);
    assert!(
        !answer.text.contains("FAILURE") && !answer.text.contains("ONGOING"),
        "{what}: {}",
        answer.text
    );
}

fn assert_failure(answer: &Answer, what: &str) {
    assert_eq!(answer.status, 409, "{what}: {}", answer.text);
    assert_eq!(
        answer.json["dtm_result"], "FAILURE",
        "{what}: {}",
        answer.text
    );
}

/// The books balance with one order of a sale of three units, nothing in flight.
async fn assert_one_order_of_three(s: &Setup) {
    let mut conn = s.redis.connection().await.unwrap();
    let books = read_books(&mut conn, &s.postgres, s.sale).await.unwrap();
    books.check().unwrap();
    let counts = (
        books.pending,
        books.sold,
        books.redis_remaining,
        books.in_flight,
    );
    assert_eq!(counts, (1, 1, 2, 0), "{books:?}");
}

async fn reserved(s: &Setup, uid: &str) -> MessageGid {
    let message = MessageGid::new(Gid::new(s.sale, uid));
    let reservation = s.reservations.reserve_message(&message, 0).await.unwrap();
    assert!(
        matches!(reservation, Reservation::Reserved { .. }),
        "{uid}: {reservation:?}"
    );
    message
}

#[tokio::test(flavor = "multi_thread")]
async fn a_branch_called_twice_writes_one_order_and_the_back_check_finds_its_reservation() {
    let s = setup(3).await;
    let message = reserved(&s, "alice").await;
    let back_check = s
        .origin
        .send("GET", &query_path(&message), String::new(), false)
        .await
        .unwrap();
    assert_success(&back_check, "back-check");

    let first = s
        .origin
        .send("POST", &branch_path(&message), payload(&message), true)
        .await
        .unwrap();
    assert_success(&first, "first branch");
    let again = s
        .origin
        .send("POST", &branch_path(&message), payload(&message), true)
        .await
        .unwrap();
    assert_success(&again, "second branch");
    assert_eq!(first.json["order_id"], again.json["order_id"]);

    assert_one_order_of_three(&s).await;
    s.origin.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_back_check_before_the_reservation_fails_the_message_and_refuses_it_later() {
    let s = setup(3).await;
    let message = MessageGid::new(Gid::new(s.sale, "bob"));
    let path = query_path(&message);
    assert_failure(
        &s.origin
            .send("GET", &path, String::new(), false)
            .await
            .unwrap(),
        "back-check before the reservation",
    );
    let late = s.reservations.reserve_message(&message, 0).await.unwrap();
    assert_eq!(late, Reservation::Refused);
    assert_failure(
        &s.origin
            .send("GET", &path, String::new(), false)
            .await
            .unwrap(),
        "back-check again",
    );
    let mut conn = s.redis.connection().await.unwrap();
    let books = read_books(&mut conn, &s.postgres, s.sale).await.unwrap();
    books.check().unwrap();
    assert_eq!(
        (books.redis_remaining, books.in_flight),
        (3, 0),
        "{books:?}"
    );

    let metrics = s.origin.metrics();
    let counted = r#"origin_dtm_calls_total{call="query",outcome="failure"} 2"#;
    assert!(metrics.contains(counted), "{metrics}");

    // The buyer's next attempt is a message of its own, and is not refused.
    let next = reserved(&s, "bob").await;
    assert_ne!(next, message);
    s.origin.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_dtm_calls_get_a_400_and_a_wrong_payload_a_failure() {
    let s = setup(3).await;
    let message = reserved(&s, "carol").await;
    let gid = message.to_string();
    let cases = [
        (
            "POST",
            "/v1/dtm/branch?trans_type=msg&branch_id=01&op=action".to_string(),
        ),
        (
            "POST",
            format!("/v1/dtm/branch?gid={gid}&trans_type=saga&branch_id=01&op=action"),
        ),
        (
            "POST",
            format!("/v1/dtm/branch?gid={gid}&trans_type=msg&branch_id=01&op=compensate"),
        ),
        (
            "POST",
            format!("/v1/dtm/branch?gid={gid}&trans_type=msg&branch_id=00&op=action"),
        ),
        (
            "POST",
            "/v1/dtm/branch?gid=7/u&trans_type=msg&branch_id=01&op=action".to_string(),
        ),
        (
            "GET",
            format!("/v1/dtm/query?gid={gid}&branch_id=00&op=msg"),
        ),
        (
            "GET",
            format!("/v1/dtm/query?gid={gid}&trans_type=msg&branch_id=00&op=action"),
        ),
        (
            "GET",
            "/v1/dtm/query?trans_type=msg&branch_id=00&op=msg".to_string(),
        ),
    ];
    for (method, path) in cases {
        let answer = s
            .origin
            .send(method, &path, payload(&message), true)
            .await
            .unwrap();
        assert_eq!(answer.status, 400, "{method} {path}: {}", answer.text);
        assert_eq!(answer.json["error"], "invalid_dtm_call", "{path}");
    }
    for body in ["", "{}", r#"{"sale": 999999, "uid": "carol"}"#] {
        let answer = s
            .origin
            .send("POST", &branch_path(&message), body.to_string(), true)
            .await
            .unwrap();
        assert_failure(&answer, body);
    }
    let mut conn = s.redis.connection().await.unwrap();
    let books = read_books(&mut conn, &s.postgres, s.sale).await.unwrap();
    assert_eq!((books.pending, books.in_flight), (0, 1), "{books:?}");
    s.origin.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_recovery_poller_leaves_a_dtm_transaction_to_dtm() {
    let s = setup(3).await;
    s.reservations.mark_active(s.sale).await.unwrap();
    let message = reserved(&s, "dtm-buyer").await;
    // An embedded transaction beside it, which the poller finishes: proof that it polled.
    let embedded = s
        .reservations
        .reserve(&Gid::new(s.sale, "embedded-buyer"), 0)
        .await
        .unwrap();
    assert!(
        matches!(embedded, Reservation::Reserved { .. }),
        "{embedded:?}"
    );
    let mut conn = s.redis.connection().await.unwrap();
    let due = format!("{{s:{}}}:due", s.sale);
    let first_score: f64 = conn.zscore(&due, message.gid.to_string()).await.unwrap();
    wait::until(
        "the poller finishes the embedded one and passes the dtm one",
        Duration::from_secs(20),
        || {
            let (mut conn, due, gid) = (conn.clone(), due.clone(), message.gid.to_string());
            let postgres = &s.postgres;
            async move {
                let books = read_books(&mut conn, postgres, s.sale).await?;
                let score: Option<f64> = conn.zscore(&due, &gid).await?;
                Ok(books.pending == 1 && score.is_some_and(|score| score > first_score))
            }
        },
    )
    .await
    .unwrap();
    let tx = format!("{{s:{}}}:tx:{}", s.sale, message.gid);
    let (state, attempts): (String, i64) = redis::cmd("HMGET")
        .arg(&tx)
        .arg("state")
        .arg("attempts")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!((state.as_str(), attempts), ("submitted", 0));
    let books = read_books(&mut conn, &s.postgres, s.sale).await.unwrap();
    assert_eq!((books.pending, books.in_flight), (1, 1), "{books:?}");
    s.origin.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_error_of_the_origin_is_a_5xx_and_the_retry_of_dtm_completes_once() {
    let mut s = setup(3).await;
    let message = reserved(&s, "dave").await;
    let branch = branch_path(&message);

    s.postgres.stop().await.unwrap();
    let answer = s
        .origin
        .send("POST", &branch, payload(&message), true)
        .await
        .unwrap();
    assert_eq!(answer.status, 503, "PostgreSQL away: {}", answer.text);
    s.postgres.start_again().await.unwrap();

    s.redis.kill();
    let answer = s
        .origin
        .send("POST", &branch, payload(&message), true)
        .await
        .unwrap();
    assert_eq!(
        answer.status, 503,
        "Redis away, order written: {}",
        answer.text
    );
    let query = query_path(&MessageGid::new(Gid::new(s.sale, "erin")));
    let answer = s
        .origin
        .send("GET", &query, String::new(), false)
        .await
        .unwrap();
    assert_eq!(answer.status, 503, "Redis away: {}", answer.text);
    s.redis.restart().await.unwrap();

    let answer = wait::until(
        "Redis is back for the origin",
        Duration::from_secs(20),
        || {
            let origin = &s.origin;
            let (branch, body) = (branch.clone(), payload(&message));
            async move { Ok(origin.send("POST", &branch, body, true).await?.status != 503) }
        },
    );
    answer.await.unwrap();
    assert_one_order_of_three(&s).await;
    s.origin.stop().await;
}
