//! Payment against expiry and cancellation: racing expiry never both wins, a payment after expiry
//! is refused and the unit is not sold twice, paying a cancelled or rejected order is 409.

use super::*;

/// Holds raced by their payments, one race each.
const RACERS: usize = 62;

#[tokio::test(flavor = "multi_thread")]
async fn payment_racing_expiry_never_both_wins() {
    let stack = Arc::new(stack().await);
    let sale = sale(&stack, RACERS as i64, 1).await;
    let mut orders = Vec::new();
    for i in 0..RACERS {
        let uid = format!("racer-{i}");
        orders.push((reserve(&stack, sale, &uid).await, uid));
    }
    // Each payment is aimed at its hold's expiry, from 150 ms before to 150 ms after in steps of
    // 10 ms (the sweeper polls every 100 ms), so that some land before and some after the
    // sweeper's cancel, many right at it: the race, run once per racer. Whatever the timing,
    // exactly one may win.
    let db = stack.postgres.client().await.unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for (i, (order, uid)) in orders.iter().cloned().enumerate() {
        let expires_at: time::OffsetDateTime = db
            .query_one("SELECT expires_at FROM orders WHERE id = $1", &[&order])
            .await
            .unwrap()
            .get(0);
        let offset_ms = i64::try_from(i % 31).unwrap() * 10 - 150;
        let stack = stack.clone();
        tasks.spawn(async move {
            let aim = expires_at + time::Duration::milliseconds(offset_ms)
                - time::OffsetDateTime::now_utc();
            let aim = Duration::try_from(aim).unwrap_or(Duration::ZERO);
            tokio::time::sleep(aim).await;
            let (status, body) = pay(&stack, order, &uid, &format!("pay-{order}")).await;
            (order, status, body)
        });
    }
    let answers = tasks.join_all().await;
    stack.wait_quiet(sale, DEADLINE).await.unwrap();
    // Let the sweeper pass over every expired hold.
    for (order, _) in &orders {
        let db = &db;
        let order = *order;
        wait::until("every hold settled", DEADLINE, || async move {
            let status: String = db
                .query_one("SELECT status FROM orders WHERE id = $1", &[&order])
                .await?
                .get(0);
            Ok(status != "pending")
        })
        .await
        .unwrap();
    }
    let (mut paid, mut expired) = (0, 0);
    for (order, status, body) in &answers {
        let now = order_status(&stack, *order).await;
        match status {
            200 => {
                assert_eq!(now, "paid", "order {order} was paid but is {now}");
                paid += 1;
            }
            409 => {
                assert_eq!(body["error"], "hold_expired", "{body}");
                assert_eq!(
                    now, "cancelled",
                    "order {order} refused payment but is {now}"
                );
                expired += 1;
            }
            other => panic!("order {order}: {other} {body}"),
        }
    }
    println!("race: {paid} paid, {expired} expired first");
    assert!(
        paid > 0 && expired > 0,
        "the payments must straddle the expiry for this to be a race: {paid} paid, {expired} expired"
    );
    stack.wait_quiet(sale, DEADLINE).await.unwrap();
    let books = stack.books(sale).await.unwrap();
    books.check().unwrap();
    assert_eq!(books.paid, paid);
    assert_eq!(
        books.redis_remaining, expired,
        "every expired hold's unit is back, once"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_payment_after_expiry_is_refused_and_the_unit_is_not_sold_twice() {
    let stack = stack().await;
    let sale = sale(&stack, 1, 1).await;
    let order = reserve(&stack, sale, "late").await;
    wait_status(&stack, order, "cancelled").await;
    let (status, body) = pay(&stack, order, "late", "pay-late").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (409, Some("hold_expired")),
        "{body}"
    );
    let again = reserve(&stack, sale, "next").await;
    let (status, body) = pay(&stack, again, "next", "pay-next").await;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("paid")),
        "{body}"
    );
    // The same payment id again: the same answer.
    let (status, _) = pay(&stack, again, "next", "pay-next").await;
    assert_eq!(status, 200);
    stack.wait_quiet(sale, DEADLINE).await.unwrap();
    let books = stack.books(sale).await.unwrap();
    books.check().unwrap();
    assert_eq!(
        (books.paid, books.cancelled, books.redis_remaining),
        (1, 1, 0)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn paying_a_cancelled_or_rejected_order_is_409_with_its_state() {
    let stack = stack().await;
    let sale = sale(&stack, 1, 600).await;
    // A hold its user cancelled.
    let order = reserve(&stack, sale, "quitter").await;
    let resp = stack
        .http
        .delete(format!(
            "{}/v1/orders/{order}?uid=quitter",
            stack.origin.url()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    let (status, body) = pay(&stack, order, "quitter", "pay-cancelled").await;
    assert_eq!(
        (status, body["error"].as_str(), body["status"].as_str()),
        (409, Some("order_cancelled"), Some("cancelled")),
        "{body}"
    );
    stack.wait_quiet(sale, DEADLINE).await.unwrap();

    // A unit Redis granted that the database no longer had (Redis given one unit too many, as
    // after a data loss): the order is `rejected`.
    let taker = reserve(&stack, sale, "taker").await;
    let mut conn = stack.redis.connection().await.unwrap();
    let _: () = conn.incr(format!("{{s:{sale}}}:stock"), 1).await.unwrap();
    let (status, body) = stack.reserve(sale, "unlucky").await.unwrap();
    assert_eq!(
        (status, body["error"].as_str()),
        (410, Some("sold_out")),
        "the database refused the unit: {body}"
    );
    let rejected = body["order_id"].as_i64().expect("the rejected order's id");
    stack.wait_quiet(sale, DEADLINE).await.unwrap();
    assert_eq!(order_status(&stack, rejected).await, "rejected");
    let (status, body) = pay(&stack, rejected, "unlucky", "pay-rejected").await;
    assert_eq!(
        (status, body["error"].as_str(), body["status"].as_str()),
        (409, Some("order_rejected"), Some("rejected")),
        "{body}"
    );
    // Neither refusal touched the books: the taker's hold is the one live order.
    assert_eq!(order_status(&stack, taker).await, "pending");
    let books = stack.books(sale).await.unwrap();
    assert_eq!(
        (books.live(), books.cancelled, books.rejected, books.paid),
        (1, 1, 1, 0),
        "{books:?}"
    );
}
