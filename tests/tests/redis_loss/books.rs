//! Losses no reservation meets, found by the origins' look at the books: a returned unit Redis
//! forgot is healed and sold again; a sale ended beyond the key retention is not brought back.

use super::*;

/// A loss no reservation meets: a returned unit Redis forgot. 3 units sold out, a copy of the
/// AOF taken, then a buyer cancels and their unit goes back (the sale re-opens); Redis is started
/// from the copy, so it has forgotten the return: stock 0, the sale sold out for nothing, and no
/// buyer's attempt can tell (every one is refused from memory). The origins' look at the books,
/// every few seconds off the hot path, finds the drift at a quiet moment and heals the sale: the
/// unit is sold again, and the return is not counted twice.
#[tokio::test(flavor = "multi_thread")]
async fn a_forgotten_return_is_found_by_the_books_and_healed() {
    let (mut stack, sale, first) = early_buyers(3, 3).await;
    let copy = stack.redis.copy_aof().unwrap();
    let (quitter, _, body) = &first[0];
    let order = body["order_id"].as_i64().unwrap();
    let cancelled = stack
        .http
        .delete(format!(
            "{}/v1/orders/{order}?uid={quitter}",
            stack.origin.url()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(cancelled.status(), 200);
    stack.wait_quiet(sale, HEAL_DEADLINE).await.unwrap();

    restart_from(&mut stack, &copy).await;
    let restored = Instant::now();
    assert_eq!(
        answered(&stack, sale, "late-0").await,
        410,
        "sold out for nothing"
    );
    let sold = wait::until("the returned unit sold again", HEAL_DEADLINE, || async {
        Ok(stack.reserve(sale, "late-1").await?.0 == 200)
    })
    .await;
    assert!(sold.is_ok(), "{}", stack.origin.log_tail());
    println!(
        "the forgotten return was healed and sold {:?} after the restore",
        restored.elapsed()
    );
    let text = metrics::scrape(&stack.http, &format!("{}/metrics", stack.origin.url()))
        .await
        .unwrap();
    let noticed = metrics::sample_sum(&text, "origin_redis_losses_total", &[("outcome", "drift")]);
    assert_eq!(noticed, 1.0, "noticed by the books, once");
    let mut told = reserved(&first);
    told.remove(quitter);
    told.insert("late-1".into());
    assert_healed(&stack, sale, &told).await;
    assert_eq!(
        stack.reserve(sale, "late-2").await.unwrap().0,
        410,
        "one unit came back, once"
    );
}

/// A sale that ended longer than `redis.keys_retention_seconds` ago is not brought back: its
/// keys gone from Redis, the origins' look at the books notices the missing stock, and the heal
/// declines (`expired`), writing nothing.
#[tokio::test(flavor = "multi_thread")]
async fn a_sale_ended_beyond_the_key_retention_is_not_healed_back() {
    let stack = Stack::start(
        origin_binary!(),
        OriginOptions {
            keys_retention_seconds: 60,
            ..OriginOptions::default()
        },
    )
    .await
    .unwrap();
    let sale = stack.create_sale(5).await.unwrap();
    for uid in ["a", "b"] {
        assert_eq!(stack.reserve(sale, uid).await.unwrap().0, 200);
    }
    stack.wait_quiet(sale, HEAL_DEADLINE).await.unwrap();
    let db = stack.postgres.client().await.unwrap();
    db.execute(
        "UPDATE sales SET starts_at = now() - interval '3 minutes',
                          ends_at = now() - interval '2 minutes' WHERE id = $1",
        &[&sale],
    )
    .await
    .unwrap();
    let mut conn = stack.redis.connection().await.unwrap();
    let keys: Vec<String> = conn.keys(format!("{{s:{sale}}}:*")).await.unwrap();
    let _: () = conn.del(keys).await.unwrap();

    let declined = wait::until("the heal declined", HEAL_DEADLINE, || async {
        let text = metrics::scrape(&stack.http, &format!("{}/metrics", stack.origin.url())).await?;
        Ok(metrics::sample_sum(&text, "origin_heals_total", &[("outcome", "expired")]) >= 1.0)
    })
    .await;
    assert!(declined.is_ok(), "{}", stack.origin.log_tail());
    let left: Vec<String> = conn.keys(format!("{{s:{sale}}}:*")).await.unwrap();
    assert!(left.is_empty(), "keys brought back: {left:?}");
}
