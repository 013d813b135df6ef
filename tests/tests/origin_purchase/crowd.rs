//! Crowds and duplicates at the origin: 2000 requests from 1000 users sell exactly the stock
//! (I1–I4), one uid sending 50 requests at once gets one order (I3), a duplicate after sell-out
//! costs no unit (I2); every winner has its order (I5) and reconcile balances.

use super::*;

/// Reserves for each of `uids` at once: (uid, status, body) per request.
async fn reserve_at_once(
    stack: &Arc<Stack>,
    sale: i64,
    uids: impl Iterator<Item = String>,
) -> Vec<(String, u16, Value)> {
    let mut tasks = tokio::task::JoinSet::new();
    for uid in uids {
        let stack = stack.clone();
        tasks.spawn(async move {
            let (status, body) = stack.reserve(sale, &uid).await.unwrap();
            (uid, status, body)
        });
    }
    tasks.join_all().await
}

/// The books of `sale` once nothing is in flight, checked.
async fn quiet_books(stack: &Stack, sale: i64) -> flash_tests::stack::Books {
    stack
        .wait_quiet(sale, std::time::Duration::from_secs(30))
        .await
        .unwrap();
    let books = stack.books(sale).await.unwrap();
    books.check().unwrap();
    books
}

/// Users whose answer was 200 `reserved`.
fn winners(answers: &[(String, u16, Value)]) -> HashSet<String> {
    answers
        .iter()
        .filter(|(_, status, body)| *status == 200 && body["status"] == "reserved")
        .map(|(uid, _, _)| uid.clone())
        .collect()
}

/// I5: every user told "reserved" has a live order.
async fn assert_every_winner_has_an_order(stack: &Stack, sale: i64, winners: &HashSet<String>) {
    let db = stack.postgres.client().await.unwrap();
    let rows = db
        .query(
            "SELECT uid FROM orders WHERE sale_id = $1 AND status IN ('pending', 'paid')",
            &[&sale],
        )
        .await
        .unwrap();
    let ordered: HashSet<String> = rows.iter().map(|r| r.get(0)).collect();
    let missing: Vec<_> = winners.difference(&ordered).collect();
    assert!(
        missing.is_empty(),
        "I5: told reserved but no order: {missing:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn i1_i2_i3_i4_crowd_of_2000_requests_from_1000_users_sells_exactly_the_stock() {
    let stack = Arc::new(stack(OriginOptions::default()).await);
    let sale = stack.create_sale(100).await.unwrap();

    let answers = reserve_at_once(
        &stack,
        sale,
        (0..2000).map(|i| format!("user-{}", i % 1000)),
    )
    .await;

    let reserved = answers.iter().filter(|a| a.1 == 200).count();
    let sold_out = answers.iter().filter(|a| a.1 == 410).count();
    let duplicates = answers.iter().filter(|a| a.1 == 409).count();
    println!("crowd: {reserved} reserved, {sold_out} sold out, {duplicates} duplicates");
    assert_eq!(reserved, 100, "exactly the stock is sold");
    assert_eq!(
        reserved + sold_out + duplicates,
        2000,
        "every answer is one of the three"
    );
    // A winner's answer says whether its order exists yet: confirmed with its id, or (when the
    // database was too slow for this request: a loaded machine) unconfirmed, the order left to
    // recovery. Either way it has an order once recovery has run (checked below, I5).
    let mut unconfirmed = 0;
    for (uid, _, body) in answers.iter().filter(|a| a.1 == 200) {
        match (body["confirmed"].as_bool(), body["order_id"].is_i64()) {
            (Some(true), true) => {}
            (Some(false), false) => unconfirmed += 1,
            _ => panic!("{uid}: inconsistent answer {body}"),
        }
    }
    println!("{unconfirmed} winners answered before their order was written");

    let books = quiet_books(&stack, sale).await;
    assert_eq!((books.redis_remaining, books.live()), (0, 100));
    assert_every_winner_has_an_order(&stack, sale, &winners(&answers)).await;
    assert_reconcile_balances(&stack, sale).await;
}

/// `origin reconcile --json` exits 0 with drift 0.
async fn assert_reconcile_balances(stack: &Stack, sale: i64) {
    let (ok, report) = stack.reconcile(sale, false).await.unwrap();
    assert!(
        ok && report["drift"] == 0 && report["in_flight"] == 0,
        "{report}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn i3_one_uid_sending_50_concurrent_requests_gets_one_order() {
    let stack = Arc::new(stack(OriginOptions::default()).await);
    let sale = stack.create_sale(10).await.unwrap();
    let answers = reserve_at_once(&stack, sale, (0..50).map(|_| "greedy".to_string())).await;
    let reserved = answers.iter().filter(|a| a.1 == 200).count();
    let duplicates: Vec<_> = answers.iter().filter(|a| a.1 == 409).collect();
    assert_eq!((reserved, duplicates.len()), (1, 49), "{answers:?}");
    assert!(duplicates.iter().all(|d| d.2["error"] == "duplicate"));

    let books = quiet_books(&stack, sale).await;
    assert_eq!((books.live(), books.redis_remaining), (1, 9));
    assert_reconcile_balances(&stack, sale).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn i2_a_duplicate_arriving_after_sell_out_never_costs_a_unit() {
    let stack = stack(OriginOptions::default()).await;
    let sale = stack.create_sale(2).await.unwrap();
    let (status, first) = stack.reserve(sale, "alice").await.unwrap();
    assert_eq!(status, 200, "{first}");
    assert_eq!(stack.reserve(sale, "bob").await.unwrap().0, 200);
    assert_eq!(stack.reserve(sale, "carol").await.unwrap().0, 410);

    // Alice retries after sell-out: she is told about her own order, not "sold out", and
    // nothing moves.
    let (status, again) = stack.reserve(sale, "alice").await.unwrap();
    assert_eq!(status, 409, "{again}");
    assert_eq!(again["error"], "duplicate");
    assert_eq!(again["state"], "succeeded");
    assert_eq!(again["order_id"], first["order_id"]);

    let books = stack.books(sale).await.unwrap();
    books.check().unwrap();
    assert_eq!((books.live(), books.redis_remaining), (2, 0));
    assert_reconcile_balances(&stack, sale).await;
}
