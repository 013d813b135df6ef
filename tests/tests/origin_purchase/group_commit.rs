//! Group commit of branches: each gid its own outcome in a batch, winners beyond the database's
//! units rejected and the stock closed (I1, I4), a guarded `sold` update that changes no row
//! writes nothing (I1).

use super::*;

/// Group commit: one transaction for many branches gives each gid what a branch of its own would
/// give. A repeat reads the earlier order, a gid queued twice is written once, and beyond the
/// database's units the rest are `rejected`, in queue order.
#[tokio::test(flavor = "multi_thread")]
async fn a_batch_of_branches_gives_each_gid_its_own_outcome() {
    let stack = stack(OriginOptions::default()).await;
    let sale = stack.create_sale(3).await.unwrap();
    let db =
        Database::connect(&stack.postgres.url(), 2, std::time::Duration::from_secs(5)).unwrap();
    let branch = |uid: &str| Branch {
        sale,
        uid: uid.to_string(),
        gid: format!("{sale}/{uid}"),
    };

    let first = branches::write_batch(&db, &[branch("u0")]).await.unwrap();
    assert!(first[0].fresh && !first[0].rejected, "{first:?}");

    let batch = ["u1", "u2", "u3", "u1", "u0", "u4"].map(branch);
    let out = branches::write_batch(&db, &batch).await.unwrap();
    let summary: Vec<(bool, bool)> = out.iter().map(|o| (o.fresh, o.rejected)).collect();
    assert_eq!(
        summary,
        [
            (true, false),  // u1: a unit
            (true, false),  // u2: the last unit
            (true, true),   // u3: none left, rejected
            (false, false), // u1 again: the same order, not written twice
            (false, false), // u0: written by the first batch
            (true, true),   // u4: rejected
        ],
        "{out:?}"
    );
    assert_eq!(out[3].order_id, out[0].order_id);
    assert_eq!(out[4].order_id, first[0].order_id);

    // Running the whole batch again changes nothing and answers the same orders.
    let again = branches::write_batch(&db, &batch).await.unwrap();
    assert!(again.iter().all(|o| !o.fresh), "{again:?}");
    let ids = |v: &[branches::BranchOutcome]| v.iter().map(|o| o.order_id).collect::<Vec<_>>();
    assert_eq!(ids(&again), ids(&out));

    let pg = stack.postgres.client().await.unwrap();
    let sold: i32 = pg
        .query_one("SELECT sold FROM sales WHERE id = $1", &[&sale])
        .await
        .unwrap()
        .get(0);
    let orders: i64 = pg
        .query_one("SELECT count(*) FROM orders WHERE sale_id = $1", &[&sale])
        .await
        .unwrap()
        .get(0);
    assert_eq!((sold, orders), (3, 5));
}

/// A crowd of winners the database has too few units for (Redis holds more than it should): the
/// winners' branches are written in batches, the database's units go to exactly that many, every
/// other one is rejected, and no rejected unit goes back to Redis: PostgreSQL is the truth, so the
/// stock in Redis closes at 0 and later buyers are refused there.
#[tokio::test(flavor = "multi_thread")]
async fn i1_i4_batched_winners_beyond_the_database_s_units_are_rejected_and_the_stock_closes() {
    let stack = Arc::new(stack(OriginOptions::default()).await);
    let sale = stack.create_sale(20).await.unwrap();
    let mut conn = stack.redis.connection().await.unwrap();
    let _: () = conn.set(format!("{{s:{sale}}}:stock"), 50).await.unwrap();

    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..50 {
        let stack = stack.clone();
        tasks.spawn(async move { stack.reserve(sale, &format!("b{i}")).await.unwrap() });
    }
    let answers = tasks.join_all().await;
    let ok = answers.iter().filter(|(s, _)| *s == 200).count();
    let refused = answers
        .iter()
        .filter(|(s, b)| *s == 410 && b["error"] == "sold_out")
        .count();
    assert_eq!(ok + refused, 50, "{answers:?}");

    stack
        .wait_quiet(sale, std::time::Duration::from_secs(30))
        .await
        .unwrap();
    let books = stack.books(sale).await.unwrap();
    assert_eq!(
        (books.live(), books.rejected, books.redis_remaining),
        (20, 30, 0),
        "{books:?}"
    );
    let text = metrics::scrape(&stack.http, &format!("{}/metrics", stack.origin.url()))
        .await
        .unwrap();
    let batches = metrics::sample_sum(&text, "origin_branch_batches_total", &[]);
    let branches = metrics::sample_sum(&text, "origin_branch_batch_size_sum", &[]);
    println!("{branches} branches in {batches} database transactions");
    assert_eq!(branches, 50.0, "every winner's branch went through a batch");
}

/// The database guards its own stock: a batch's `sold` update is `sold + k <= total` and must
/// change exactly the sale's row. Here a trigger makes PostgreSQL skip that update (0 rows): the
/// batch fails whole (no barrier, no order, nothing sold), the gid's branch is left to recovery,
/// and once the update goes through again the order is written, once.
#[tokio::test(flavor = "multi_thread")]
async fn i1_a_branch_whose_guarded_sold_update_changes_no_row_writes_nothing() {
    let stack = stack(OriginOptions::default()).await;
    let sale = stack.create_sale(2).await.unwrap();
    let db =
        Database::connect(&stack.postgres.url(), 2, std::time::Duration::from_secs(5)).unwrap();
    let pg = stack.postgres.client().await.unwrap();
    pg.batch_execute(
        "CREATE FUNCTION skip_sold() RETURNS trigger LANGUAGE plpgsql AS
           $$ BEGIN RETURN NULL; END $$;
         CREATE TRIGGER skip_sold BEFORE UPDATE OF sold ON sales
           FOR EACH ROW EXECUTE FUNCTION skip_sold();",
    )
    .await
    .unwrap();
    let branch = |uid: &str| Branch {
        sale,
        uid: uid.to_string(),
        gid: format!("{sale}/{uid}"),
    };
    let batch = [branch("g1"), branch("g2")];
    let refused = branches::write_batch(&db, &batch).await;
    assert!(
        matches!(
            refused,
            Err(origin::error::Error::StockGuard { rows: 0, .. })
        ),
        "{refused:?}"
    );
    let count = |sql: &'static str| {
        let pg = &pg;
        async move { pg.query_one(sql, &[]).await.unwrap().get::<_, i64>(0) }
    };
    assert_eq!(
        (
            count("SELECT count(*) FROM barriers").await,
            count("SELECT count(*) FROM orders").await,
            count("SELECT sum(sold)::bigint FROM sales").await,
        ),
        (0, 0, 0),
        "a refused batch writes nothing"
    );

    // Through the service: the winner is told `reserved`, unconfirmed; the order waits.
    let (status, body) = stack.reserve(sale, "w").await.unwrap();
    assert_eq!((status, &body["confirmed"]), (200, &json!(false)), "{body}");
    assert_eq!(count("SELECT count(*) FROM orders").await, 0);

    pg.batch_execute("DROP TRIGGER skip_sold ON sales")
        .await
        .unwrap();
    let books = stack
        .wait_balanced(sale, std::time::Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!((books.live(), books.sold, books.redis_remaining), (1, 1, 1));
}
