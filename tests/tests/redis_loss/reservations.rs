//! Losses a reservation meets: the lost tail of an older AOF, and a Redis restarted empty
//! mid-sale; each healed by the origin that notices it, the gate held.

use super::*;

/// The lost tail, made for real: 30 buyers buy 30 of 40 units at once, and a copy of the
/// AOF is taken while they do; Redis is stopped and started again from that copy, so it has
/// forgotten the reservations made after it, whose orders PostgreSQL has (more stock than the 10
/// units left, their barriers gone). Then 60 newcomers and the 30 earlier buyers try to buy: the
/// origin notices the loss, heals the sale from PostgreSQL, every earlier buyer is told
/// `duplicate` with their order (or in flight, for a purchase the copy caught between its two
/// phases; or, while the heal runs, `sold_out`; never a second unit),
/// exactly the 10 units left are sold, and at most 10 + the units lost + a few attempts reach
/// PostgreSQL.
#[tokio::test(flavor = "multi_thread")]
async fn a_lost_tail_heals_by_itself_and_the_gate_holds() {
    let mut stack = Arc::new(stack().await);
    let sale = stack.create_sale(40).await.unwrap();
    let buying = tokio::spawn({
        let stack = stack.clone();
        // Two at a time, so that the crowd is still buying when the copy is taken.
        async move { crowd_of(&stack, sale, uids("early", 30), 2).await }
    });
    let db = stack.postgres.client().await.unwrap();
    wait::until("a third of the crowd's orders", HEAL_DEADLINE, || async {
        let n: i64 = db
            .query_one("SELECT count(*) FROM orders WHERE sale_id = $1", &[&sale])
            .await?
            .get(0);
        Ok(n >= 10)
    })
    .await
    .unwrap();
    let copy = stack.redis.copy_aof().unwrap();
    let early = buying.await.unwrap();
    assert_eq!(reserved(&early).len(), 30, "{early:?}");
    stack.wait_quiet(sale, HEAL_DEADLINE).await.unwrap();

    let restored = Instant::now();
    restart_from(&mut stack, &copy).await;
    let mut conn = stack.redis.connection().await.unwrap();
    let stock: i64 = conn.get(format!("{{s:{sale}}}:stock")).await.unwrap();
    let lost = stock - 10;
    let mut forgotten = HashSet::new();
    for (uid, _, _) in &early {
        let barrier = format!("{{s:{sale}}}:b:{sale}/{uid}");
        if !conn.exists::<_, bool>(&barrier).await.unwrap() {
            forgotten.insert(uid.clone());
        }
    }
    println!(
        "the restored Redis has {stock} units for the 10 left ({lost} lost), and has forgotten {} buyers",
        forgotten.len()
    );
    assert!(lost >= 1, "the copy is older than the crowd's end");

    let before = stack.branch_runs().await.unwrap();
    let mut late = uids("newcomer", 60);
    late.extend(uids("early", 30));
    let answers = crowd(&stack, sale, late).await;
    let mut told = reserved(&early);
    told.extend(reserved(&answers));
    let healed_in = assert_healed(&stack, sale, &told).await;
    let reached = stack.branch_runs().await.unwrap() - before;
    let took = restored.elapsed();

    let newcomers: Vec<_> = answers
        .iter()
        .filter(|(uid, _, _)| uid.starts_with("newcomer"))
        .collect();
    let won = newcomers
        .iter()
        .filter(|(_, status, body)| *status == 200 && body["status"] == "reserved")
        .count();
    let live = stack.live_buyers(sale).await.unwrap();
    let newcomers_live = live.iter().filter(|u| u.starts_with("newcomer")).count();
    println!(
        "after the restore: {won} newcomers told reserved, {newcomers_live} hold a unit; \
         {reached} attempts reached PostgreSQL for 10 units left and {lost} lost; healed {took:?} \
         after the restart (drift 0 seen {healed_in:?} after the crowd)"
    );
    assert_eq!(live.len(), 40, "the sale sells out exactly");
    assert_eq!(
        newcomers_live, 10,
        "exactly the units left went to newcomers"
    );
    assert!(won <= 10, "{won} newcomers told reserved");
    // An earlier buyer asking while the sale heals may be refused from memory (their barrier is
    // not written back yet); once healed, every one is told about the order they have, and none
    // got a second unit.
    let ordered: std::collections::HashMap<&str, &Value> = early
        .iter()
        .map(|(uid, _, body)| (uid.as_str(), &body["order_id"]))
        .collect();
    for (uid, status, body) in answers.iter().filter(|(u, _, _)| u.starts_with("early")) {
        // In flight when the copy was taken: the restored record says so, recovery finishes it.
        let in_flight = body["state"] == "submitted";
        let told_order =
            *status == 409 && (body["order_id"] == *ordered[uid.as_str()] || in_flight);
        let refused = *status == 410 && body["error"] == "sold_out" && forgotten.contains(uid);
        assert!(
            told_order || refused,
            "{uid} during the heal: {status} {body}"
        );
        let (status, again) = stack.reserve(sale, uid).await.unwrap();
        assert_eq!(
            (status, &again["error"], &again["order_id"]),
            (409, &Value::from("duplicate"), ordered[uid.as_str()]),
            "{uid} after the heal: {again}"
        );
    }
    for (uid, status, body) in &newcomers {
        assert!(matches!(*status, 200 | 410), "{uid}: {status} {body}");
    }
    assert!(
        reached <= 10.0 + lost as f64 + GATE_SLACK,
        "{reached} attempts reached PostgreSQL"
    );
    let text = metrics::scrape(&stack.http, &format!("{}/metrics", stack.origin.url()))
        .await
        .unwrap();
    let heals = metrics::sample_sum(&text, "origin_heals_total", &[("outcome", "healed")]);
    assert_eq!(heals, 1.0, "healed once");
}

/// A node replaced by an empty one mid-sale: 4 of 10 units sold, then Redis restarts with no
/// data. The first buyer after it gets a `503` (never a wrong answer), the origin
/// heals the sale from PostgreSQL by itself, the 4 earlier buyers are told `duplicate` with their
/// order, and 6 newcomers buy the 6 units left, with no more attempts reaching PostgreSQL than
/// those 6 and a few.
#[tokio::test(flavor = "multi_thread")]
async fn redis_restarted_empty_mid_sale_heals_by_itself() {
    let (mut stack, sale, first) = early_buyers(10, 4).await;

    let emptied = Instant::now();
    Arc::get_mut(&mut stack)
        .unwrap()
        .redis
        .restart_empty()
        .await
        .unwrap();
    let before = stack.branch_runs().await.unwrap();
    // The first answer after the restart: the origin's connection to Redis is being made again,
    // or the sale is being healed; nothing is taken either way.
    let (status, body) = stack.reserve(sale, "newcomer-x").await.unwrap();
    let unavailable = status == 503
        && (body["error"] == "stock_unavailable" || body["error"] == "redis_unavailable");
    assert!(unavailable || status == 200, "{status} {body}");
    let healed = wait::until("the sale to sell again", HEAL_DEADLINE, || async {
        let (status, _) = stack.reserve(sale, "newcomer-x").await?;
        Ok(status == 200 || status == 409)
    })
    .await;
    assert!(healed.is_ok(), "{}", stack.origin.log_tail());
    let took = emptied.elapsed();

    for (uid, _, body) in &first {
        let (status, again) = stack.reserve(sale, uid).await.unwrap();
        assert_eq!(
            (status, &again["error"], &again["order_id"]),
            (409, &Value::from("duplicate"), &body["order_id"]),
            "{uid}: {again}"
        );
    }
    let late = crowd(&stack, sale, uids("newcomer", 20)).await;
    let reached = stack.branch_runs().await.unwrap() - before;
    let mut told = reserved(&first);
    told.extend(reserved(&late));
    assert_healed(&stack, sale, &told).await;
    let live = stack.live_buyers(sale).await.unwrap();
    println!("healed {took:?} after the empty restart; {reached} attempts reached PostgreSQL for 6 units left");
    assert_eq!(live.len(), 10, "{live:?}");
    assert!(
        reached <= 6.0 + GATE_SLACK,
        "{reached} attempts reached PostgreSQL"
    );
}
