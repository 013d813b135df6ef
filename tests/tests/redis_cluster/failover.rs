//! A primary killed mid-crowd is replaced by its replica and buying goes on: no oversell, one order
//! per user, every `reserved` answer backed by its order, the books balanced by themselves; the
//! sales held by the other primaries never notice.

use super::*;

/// One buyer's answer, and when it came.
#[derive(Debug, Clone)]
struct Answer {
    uid: String,
    status: u16,
    code: String,
    at: Instant,
}

impl Answer {
    fn reserved(&self) -> bool {
        self.status == 200
    }
    /// The stack turned the buyer away for a failure of its own (503, or no answer).
    fn failed(&self) -> bool {
        !matches!(self.status, 200 | 409 | 410)
    }
}

/// A crowd on `sale`: `WORKERS` buyers, each with new uids one after another, one attempt per
/// uid, until every worker has met a sold-out answer or `stop` turns true. `reserved` counts the
/// units taken so far.
async fn crowd(
    shop: Shop,
    sale: i64,
    stop: Arc<AtomicBool>,
    reserved: Arc<AtomicUsize>,
) -> Vec<Answer> {
    let workers = (0..WORKERS).map(|w| {
        let shop = shop.clone();
        let stop = stop.clone();
        let reserved = reserved.clone();
        tokio::spawn(async move {
            let mut answers = Vec::new();
            for n in 0.. {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let uid = format!("s{sale}-w{w}-{n}");
                let (status, body) = shop.reserve(sale, &uid).await;
                let answer = Answer {
                    uid,
                    status,
                    code: body["error"].as_str().unwrap_or_default().to_string(),
                    at: Instant::now(),
                };
                if answer.reserved() {
                    reserved.fetch_add(1, Ordering::Relaxed);
                }
                let sold_out = status == 410;
                if answer.failed() {
                    // A failed attempt is asked again after a short pause, as a page does.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                answers.push(answer);
                if sold_out {
                    break;
                }
            }
            answers
        })
    });
    let mut all = Vec::new();
    for worker in workers {
        all.extend(worker.await.expect("a crowd worker runs to its end"));
    }
    all
}

/// Seconds between the first and the last failed answer (0 when none failed).
fn failing_seconds(answers: &[Answer]) -> f64 {
    let failed: Vec<Instant> = answers
        .iter()
        .filter(|a| a.failed())
        .map(|a| a.at)
        .collect();
    match (failed.iter().min(), failed.iter().max()) {
        (Some(first), Some(last)) => (*last - *first).as_secs_f64(),
        _ => 0.0,
    }
}

/// Checks what must hold after any crowd: the books balance (drift 0, no oversell, one order per
/// user, no doubled or lost order) and every buyer told `reserved` has a live order.
async fn assert_books(world: &World, sale: i64, answers: &[Answer]) -> Books {
    let books = world.wait_balanced(sale).await;
    let live = world.live_buyers(sale).await;
    let told: HashSet<&str> = answers
        .iter()
        .filter(|a| a.reserved())
        .map(|a| a.uid.as_str())
        .collect();
    let missing: Vec<&&str> = told.iter().filter(|uid| !live.contains(**uid)).collect();
    assert!(
        missing.is_empty(),
        "buyers told reserved without a live order: {missing:?}; {books:?}"
    );
    books
}

#[tokio::test(flavor = "multi_thread")]
async fn a_primary_killed_mid_crowd_fails_over_and_the_books_balance_by_themselves() {
    let mut world = World::start().await;
    let edge = world.edge().await;
    let stock = 300;
    let sale = world.create_sale(stock).await;
    let primary = world.primary_of(sale).await;
    assert_eq!(
        buy_through_edge(&world.http, &edge.url(), sale, "edge-before").await,
        200,
        "a buy through the edge on the cluster"
    );
    let stop = Arc::new(AtomicBool::new(false));
    let reserved = Arc::new(AtomicUsize::new(0));
    let buyers = tokio::spawn(crowd(world.shop(), sale, stop.clone(), reserved.clone()));
    wait::until("a third of the stock sold", CROWD_DEADLINE, || {
        let reserved = reserved.clone();
        async move { Ok(reserved.load(Ordering::Relaxed) >= 100) }
    })
    .await
    .unwrap();

    let killed_at = Instant::now();
    world.cluster.kill(primary).unwrap();
    let failover = world
        .cluster
        .wait_failover(&SaleKeys::new(sale).stock(), primary)
        .await
        .unwrap();
    let promoted = world.primary_of(sale).await;
    assert_ne!(promoted, primary, "the sale moved to the promoted replica");
    // The edge follows too: its limits and pass tokens of the sale are on the promoted node now.
    let edge_after = buy_through_edge(&world.http, &edge.url(), sale, "edge-after").await;
    assert!(
        edge_after == 200 || edge_after == 410,
        "a buy through the edge after the failover: {edge_after}\nedge log:\n{}",
        edge.log_tail()
    );

    let answers = tokio::time::timeout(CROWD_DEADLINE, buyers)
        .await
        .expect("the crowd sells the sale out after the failover")
        .expect("the crowd runs to its end");
    let after_kill: Vec<&Answer> = answers.iter().filter(|a| a.at > killed_at).collect();
    assert!(
        after_kill.iter().any(|a| a.reserved()),
        "buying went on after the failover"
    );
    let books = assert_books(&world, sale, &answers).await;
    let live = world.live_buyers(sale).await;
    assert!(
        live.contains("edge-before"),
        "the edge's buyer has an order"
    );
    if edge_after == 200 {
        assert!(live.contains("edge-after"), "the edge's buyer has an order");
    }
    assert_eq!(
        books.live(),
        stock,
        "every unit sold exactly once: {books:?}"
    );
    let failed: Vec<&Answer> = answers.iter().filter(|a| a.failed()).collect();
    let codes: HashSet<&str> = failed.iter().map(|a| a.code.as_str()).collect();
    eprintln!(
        "failover of the sale's primary: promoted in {:.2} s; buys failing for {:.2} s \
         ({} answers, codes {codes:?}); {} reserved after the kill; heals {:.0}, losses noticed {:.0}",
        failover.as_secs_f64(),
        failing_seconds(&answers),
        failed.len(),
        after_kill.iter().filter(|a| a.reserved()).count(),
        world.metric("origin_heals_total").await,
        world.metric("origin_redis_losses_total").await,
    );
    assert!(
        failed.iter().all(|a| a.status == 503),
        "a failover answers 503 (try again), never an error of another kind: {failed:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_sales_of_the_other_primaries_never_notice_a_failover() {
    let mut world = World::start().await;
    let stock = 150;
    // Sales until every primary holds one.
    let mut by_primary = std::collections::BTreeMap::new();
    while by_primary.len() < 3 {
        let sale = world.create_sale(stock).await;
        by_primary
            .entry(world.primary_of(sale).await)
            .or_insert(sale);
        assert!(sale < 64, "64 sales never covered three primaries");
    }
    let sales: Vec<(u16, i64)> = by_primary.into_iter().collect();
    let (victim_primary, victim) = sales[0];
    let stop = Arc::new(AtomicBool::new(false));
    let counters: Vec<Arc<AtomicUsize>> = sales.iter().map(|_| Arc::default()).collect();
    let crowds: Vec<_> = sales
        .iter()
        .zip(&counters)
        .map(|((_, sale), reserved)| {
            tokio::spawn(crowd(world.shop(), *sale, stop.clone(), reserved.clone()))
        })
        .collect();
    wait::until("a third of the victim's stock sold", CROWD_DEADLINE, || {
        let reserved = counters[0].clone();
        async move { Ok(reserved.load(Ordering::Relaxed) >= 50) }
    })
    .await
    .unwrap();
    world.cluster.kill(victim_primary).unwrap();
    world
        .cluster
        .wait_failover(&SaleKeys::new(victim).stock(), victim_primary)
        .await
        .unwrap();

    for (((_, sale), crowd), _) in sales.iter().zip(crowds).zip(&counters) {
        let answers = tokio::time::timeout(CROWD_DEADLINE, crowd)
            .await
            .expect("every crowd sells its sale out")
            .expect("the crowd runs to its end");
        let books = assert_books(&world, *sale, &answers).await;
        assert_eq!(books.live(), stock, "sale {sale} sold out: {books:?}");
        let failed: Vec<&Answer> = answers.iter().filter(|a| a.failed()).collect();
        eprintln!(
            "sale {sale} ({}): {} failed answers over {:.2} s",
            if *sale == victim {
                "on the killed primary"
            } else {
                "elsewhere"
            },
            failed.len(),
            failing_seconds(&answers)
        );
        if *sale != victim {
            assert!(
                failed.is_empty(),
                "sale {sale}, on a primary that kept running, noticed the failover: {:?}",
                &failed[..failed.len().min(5)]
            );
        }
    }
}
