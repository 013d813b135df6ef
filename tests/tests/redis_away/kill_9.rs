//! Redis killed with SIGKILL under a crowd of reservations: back from its own AOF, every `reserved`
//! answer has its order and nothing is lost.

use super::*;

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_of_redis_under_load_loses_nothing() {
    const STOCK: i64 = 300;
    const UIDS: usize = 400;
    const AT_ONCE: usize = 48;
    let mut stack = stack().await;
    let mut conn = stack.redis.connection().await.unwrap();
    let fsync: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("appendfsync")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(fsync, ["appendfsync", "everysec"], "the production setting");
    let sale = stack.create_sale(STOCK).await.unwrap();
    let attempts = stack.branch_runs().await.unwrap();

    // Every uid reserves until the origin answers for good; a 503 is retried after its
    // Retry-After with the same uid (a unit it took already answers duplicate).
    let record = Arc::new(Record::default());
    let gate = Arc::new(Semaphore::new(AT_ONCE));
    let mut crowd = tokio::task::JoinSet::new();
    for i in 0..UIDS {
        let (http, url, record, gate) = (
            stack.http.clone(),
            stack.origin.url(),
            record.clone(),
            gate.clone(),
        );
        crowd.spawn(async move {
            let _turn = gate.acquire_owned().await.unwrap();
            let uid = format!("load-{i}");
            loop {
                let answer = send(
                    &record,
                    &uid,
                    "reserve",
                    http.post(format!("{url}/v1/sales/{sale}/reserve"))
                        .json(&json!({"uid": uid})),
                )
                .await;
                match answer.status {
                    200 => {
                        record
                            .reserved
                            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        return;
                    }
                    409 | 410 => return,
                    503 => honour(&answer).await,
                    other => panic!("{uid}: unexpected {other} {:?}", answer.body),
                }
            }
        });
    }

    until_reserved(&record, STOCK / 3, "a third of the stock reserved").await;
    let pid = stack.redis.pid().unwrap();
    stack.redis.kill();
    let killed = Instant::now();
    let before: HashSet<String> = record
        .answers()
        .iter()
        .filter(|a| a.status == 200 && a.sent + a.took <= killed)
        .map(|a| a.uid.clone())
        .collect();
    stack.redis.restart().await.unwrap();
    println!(
        "redis (pid {pid}) killed with SIGKILL after {} reservations answered; back from its AOF \
         in {:.2} s",
        before.len(),
        killed.elapsed().as_secs_f64()
    );

    // Nothing Redis acknowledged is lost: every reservation answered before the kill still has
    // its barrier and its transaction record after the restart.
    let mut conn = stack.redis.connection().await.unwrap();
    for uid in &before {
        let gid = format!("{sale}/{uid}");
        let barrier: bool = conn.exists(format!("{{s:{sale}}}:b:{gid}")).await.unwrap();
        let tx: bool = conn.exists(format!("{{s:{sale}}}:tx:{gid}")).await.unwrap();
        assert!(
            barrier && tx,
            "{gid}: barrier {barrier}, transaction {tx} after the restart"
        );
    }

    while let Some(done) = crowd.join_next().await {
        done.unwrap();
    }
    let answers = record.answers();
    println!("answers: {:#?}", tally(answers.iter()));
    for a in answers.iter().filter(|a| a.status == 503) {
        assert!(AWAY_CODES.contains(&a.code()), "{a:?}");
        assert!(a.retry_after.is_some(), "a 503 without Retry-After: {a:?}");
    }

    assert_balanced_sold_out(&stack, sale, STOCK).await;
    assert_no_drift(&stack, sale).await;
    let reached = stack.branch_runs().await.unwrap() - attempts;
    println!("{reached} attempts reached PostgreSQL for {STOCK} units");
    assert!(
        reached <= STOCK as f64 + AT_ONCE as f64,
        "{reached} attempts reached PostgreSQL"
    );
    let ordered = stack.live_buyers(sale).await.unwrap();
    for uid in answers.iter().filter(|a| a.status == 200).map(|a| &a.uid) {
        assert!(
            ordered.contains(uid),
            "I5: {uid} was told reserved but has no order"
        );
    }
}
