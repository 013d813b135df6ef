//! `origin reconcile`: zero drift reported, a hand-made drift found and repaired (I4); the repair
//! refused while a transaction is in flight and when a purchase and a return land between its
//! reads (I2).

use super::*;

#[tokio::test(flavor = "multi_thread")]
async fn i4_reconcile_reports_zero_drift_then_a_hand_made_drift_and_repairs_it() {
    let stack = stack(OriginOptions::default()).await;
    let sale = stack.create_sale(3).await.unwrap();
    for uid in ["a", "b"] {
        assert_eq!(stack.reserve(sale, uid).await.unwrap().0, 200);
    }
    let (ok, report) = stack.reconcile(sale, false).await.unwrap();
    assert!(ok, "{report}");
    assert_eq!(
        (
            &report["stock"],
            &report["redis_remaining"],
            &report["live_orders"],
            &report["in_flight"],
            &report["drift"]
        ),
        (&json!(3), &json!(1), &json!(2), &json!(0), &json!(0)),
        "{report}"
    );

    // Redis "forgets" two sales (as after a data loss): it now has more units than the database.
    let mut conn = stack.redis.connection().await.unwrap();
    let _: () = conn.set(format!("{{s:{sale}}}:stock"), 3).await.unwrap();
    let run = stack.reconcile_run(sale, false).await.unwrap();
    assert_eq!((run.code, &run.report["drift"]), (1, &json!(-2)), "{run:?}");

    // A failure (here an unknown sale) is not a drift: exit 2, no report.
    let run = stack.reconcile_run(sale + 1000, false).await.unwrap();
    assert_eq!((run.code, &run.report), (2, &Value::Null), "{run:?}");
    assert!(run.stderr.contains("no sale"), "{run:?}");

    // Units the database no longer has: Redis grants one, PostgreSQL refuses it: a `rejected`
    // row records it (I4) and the stock in Redis closes at what PostgreSQL has left, none, so the
    // next buyer is refused by Redis without reaching the database.
    assert_eq!(stack.reserve(sale, "c").await.unwrap().0, 200);
    let (status, body) = stack.reserve(sale, "d").await.unwrap();
    assert_eq!(
        (status, body["error"].as_str()),
        (410, Some("sold_out")),
        "{body}"
    );
    let books = stack.books(sale).await.unwrap();
    assert_eq!(
        (books.live(), books.rejected, books.redis_remaining),
        (3, 1, 0),
        "{books:?}"
    );

    // The repair has nothing left to do, and says so.
    let run = stack.reconcile_run(sale, true).await.unwrap();
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        (&run.report["redis_remaining"], &run.report["drift"]),
        (&json!(0), &json!(0))
    );
    assert!(run.stderr.contains("nothing to repair"), "{run:?}");
    stack.books(sale).await.unwrap().check().unwrap();
}

/// The Redis side of a sale that `--repair` looks at: stock, restock count, due set.
async fn redis_side(stack: &Stack, sale: i64) -> (Option<i64>, Option<i64>, Vec<String>) {
    let mut conn = stack.redis.connection().await.unwrap();
    let stock: Option<i64> = conn.get(format!("{{s:{sale}}}:stock")).await.unwrap();
    let restocks: Option<i64> = conn.get(format!("{{s:{sale}}}:restocks")).await.unwrap();
    (stock, restocks, stack.books_redis_due(sale).await.unwrap())
}

/// `--repair` while a transaction is in flight (the origin died after taking its unit in Redis,
/// before its branch): refused, nothing changed, though the books drift; once recovery has
/// finished the transaction, the same command repairs.
#[tokio::test(flavor = "multi_thread")]
async fn i2_reconcile_repair_refuses_while_a_transaction_is_in_flight_and_changes_nothing() {
    let mut stack = stack(OriginOptions::default()).await;
    let sale = stack.create_sale(5).await.unwrap();
    assert_eq!(stack.reserve(sale, "a").await.unwrap().0, 200);
    stack.origin.restart(Some("after_reserve")).await.unwrap();
    assert!(
        stack.reserve(sale, "b").await.is_err(),
        "the crash point cuts the request off"
    );
    stack
        .origin
        .wait_exit(std::time::Duration::from_secs(30))
        .await
        .unwrap();
    // A drift to repair: Redis "forgets" a unit sold. Made once no origin runs, so that no
    // origin's own books check heals it first.
    let mut conn = stack.redis.connection().await.unwrap();
    let _: () = conn.set(format!("{{s:{sale}}}:stock"), 4).await.unwrap();
    let redis_before = redis_side(&stack, sale).await;
    assert_eq!(redis_before.2, [format!("{sale}/b")], "b is in flight");
    let books_before = stack.books(sale).await.unwrap();

    let run = stack.reconcile_run(sale, true).await.unwrap();
    assert!(
        run.stderr
            .contains("not repaired: 1 transactions in flight"),
        "{run:?}"
    );
    assert_eq!(
        (run.code, &run.report["in_flight"], &run.report["drift"]),
        (1, &json!(1), &json!(-1)),
        "{run:?}"
    );
    assert_eq!(
        redis_side(&stack, sale).await,
        redis_before,
        "Redis changed"
    );
    assert_eq!(
        stack.books(sale).await.unwrap(),
        books_before,
        "the books changed"
    );

    // Recovery finishes b; the repair goes through.
    stack.origin.restart(None).await.unwrap();
    stack
        .wait_quiet(sale, std::time::Duration::from_secs(30))
        .await
        .unwrap();
    let run = stack.reconcile_run(sale, true).await.unwrap();
    assert!(run.stderr.contains("repaired sale"), "{run:?}");
    assert_eq!((run.code, &run.report["drift"]), (0, &json!(0)), "{run:?}");
    let books = stack.books(sale).await.unwrap();
    books.check().unwrap();
    assert_eq!((books.live(), books.redis_remaining), (2, 3));
}

/// The race `--repair` closes: it reads Redis, then PostgreSQL, then writes Redis. Here a
/// purchase completes between the first two reads and a hold's unit comes back between the last
/// two: the stock is back to what the snapshot saw, but PostgreSQL was read with the cancelled
/// order still live, so writing `stock - live` would lose a unit. The restock count moved, and
/// the script refuses; a repair run afresh writes the right stock.
#[tokio::test(flavor = "multi_thread")]
async fn i2_reconcile_repair_refuses_when_a_purchase_and_a_return_land_between_its_reads() {
    let stack = stack(OriginOptions::default()).await;
    let sale = stack.create_sale(5).await.unwrap();
    let (status, first) = stack.reserve(sale, "a").await.unwrap();
    assert_eq!(status, 200, "{first}");
    let quiet = std::time::Duration::from_secs(30);
    stack.wait_quiet(sale, quiet).await.unwrap();
    assert_eq!(stack.books(sale).await.unwrap().live(), 1);
    let timeout = std::time::Duration::from_secs(5);
    let redis = Reservations::new(stack.redis.handle(timeout).await.unwrap(), timeout);
    let db = Database::connect(&stack.postgres.url(), 2, timeout).unwrap();

    let seen = redis.stock_snapshot(sale).await.unwrap();
    assert_eq!((seen.stock, seen.in_flight), (Some(4), 0), "{seen:?}");

    assert_eq!(stack.reserve(sale, "b").await.unwrap().0, 200);
    stack.wait_quiet(sale, quiet).await.unwrap();

    let held = db.units_held(sale).await.unwrap();
    assert_eq!((held.live, held.returning), (2, 0));

    let order_id = db_order_id(&stack, sale, "a").await;
    let resp = stack
        .http
        .delete(format!("{}/v1/orders/{order_id}?uid=a", stack.origin.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status().as_u16(),
        200,
        "{}",
        resp.text().await.unwrap()
    );
    stack.wait_quiet(sale, quiet).await.unwrap();
    assert_eq!(redis.remaining(sale).await.unwrap(), seen.stock, "an ABA");

    let wrong = 5 - held.live;
    let out = redis.repair_stock(sale, wrong, &seen).await.unwrap();
    assert_eq!(out, StockRepair::Moved);
    let books = stack.books(sale).await.unwrap();
    books.check().unwrap();
    assert_eq!((books.live(), books.redis_remaining), (1, 4));

    let again = reconcile::repair(&redis, &db, sale).await.unwrap();
    assert_eq!(
        again,
        reconcile::Repair::Repaired {
            from: Some(4),
            to: 4
        }
    );
    stack.books(sale).await.unwrap().check().unwrap();
}

/// The id of `uid`'s order in `sale`.
async fn db_order_id(stack: &Stack, sale: i64, uid: &str) -> i64 {
    stack
        .postgres
        .client()
        .await
        .unwrap()
        .query_one(
            "SELECT id FROM orders WHERE sale_id = $1 AND uid = $2",
            &[&sale, &uid],
        )
        .await
        .unwrap()
        .get(0)
}
