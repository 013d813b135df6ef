//! I2 through a seeded random mix of buys, payments, cancels and expiries.

use super::*;

/// A small deterministic generator (SplitMix64), so a failing sequence can be replayed.
struct Seeded(u64);

impl Seeded {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn i2_conservation_through_a_seeded_mix_of_buys_payments_cancels_and_expiries() {
    const SEED: u64 = 0x5EED_2026;
    const OPS: usize = 3000;
    // Extensions of 2 s: an extended hold of this 1 s sale still lapses within the final wait.
    let options = OriginOptions {
        extend_seconds: 2,
        ..OriginOptions::default()
    };
    let stack = Arc::new(Stack::start(origin_binary!(), options).await.unwrap());
    let sale = sale(&stack, 60, 1).await;
    let mut rng = Seeded(SEED);
    let mut orders: Vec<(i64, String)> = Vec::new();
    let mut counts = std::collections::BTreeMap::<&str, usize>::new();
    let started = Instant::now();
    for batch in 0..(OPS / 20) {
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..20 {
            let op = rng.below(10);
            let pick = (!orders.is_empty())
                .then(|| orders[rng.below(orders.len() as u64) as usize].clone());
            let uid = format!("u{}", rng.below(400));
            let stack = stack.clone();
            let kind = match (op, &pick) {
                (0..=4, _) | (_, None) => "buy",
                (5..=6, Some(_)) => "pay",
                (7, Some(_)) => "cancel",
                (8, Some(_)) => "extend",
                _ => "read",
            };
            *counts.entry(kind).or_default() += 1;
            tasks.spawn(async move {
                match (kind, pick) {
                    ("buy", _) => {
                        let (status, body) = stack.reserve(sale, &uid).await.unwrap();
                        (status == 200).then(|| (body["order_id"].as_i64().unwrap_or(0), uid))
                    }
                    ("pay", Some((order, owner))) => {
                        pay(&stack, order, &owner, &format!("p-{order}")).await;
                        None
                    }
                    ("cancel", Some((order, owner))) => {
                        let url = format!("{}/v1/orders/{order}?uid={owner}", stack.origin.url());
                        stack.http.delete(url).send().await.unwrap();
                        None
                    }
                    ("extend", Some((order, owner))) => {
                        stack
                            .post(
                                &format!("/v1/orders/{order}/extend"),
                                &json!({"uid": owner}),
                            )
                            .await
                            .unwrap();
                        None
                    }
                    (_, Some((order, owner))) => {
                        let url = format!("{}/v1/orders/{order}?uid={owner}", stack.origin.url());
                        stack.http.get(url).send().await.unwrap();
                        None
                    }
                    _ => None,
                }
            });
        }
        for new in tasks.join_all().await.into_iter().flatten() {
            orders.push(new);
        }
        // A quiet point every 30 batches: nothing in flight, the books balance.
        if batch % 30 == 29 {
            stack.wait_balanced(sale, DEADLINE).await.unwrap();
        } else {
            stack.books(sale).await.unwrap().check_safety().unwrap();
        }
    }
    // The end: every hold settles (paid, or expired and returned).
    let db = stack.postgres.client().await.unwrap();
    let db = &db;
    wait::until(
        "every hold settled",
        Duration::from_secs(60),
        || async move {
            let n: i64 = db
                .query_one(
                    "SELECT count(*) FROM orders WHERE sale_id = $1 AND status = 'pending'",
                    &[&sale],
                )
                .await?
                .get(0);
            Ok(n == 0)
        },
    )
    .await
    .unwrap();
    let books = stack.wait_balanced(sale, DEADLINE).await.unwrap();
    println!(
        "seed {SEED:#x}: {OPS} operations {counts:?} in {:.1} s; final books {books:?}",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(books.redis_remaining + books.paid, 60, "{books:?}");
    let (ok, report) = stack.reconcile(sale, false).await.unwrap();
    assert!(ok && report["drift"] == 0, "{report}");
}
