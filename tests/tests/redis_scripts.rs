//! The Lua scripts' paths that keep Redis behind PostgreSQL, each run against a real
//! redis-server through the origin's own calls: the reply it gives and what it leaves in Redis.
//! The fence and the heal lock in `reserve.lua`; `complete.lua` closing the stock on a refusal
//! and giving back the unit of a repeated order; the heal's three steps with their guards; the
//! bench's `redis-benchmark` baseline calling `reserve.lua` as the origin does.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "integration tests: a failed unwrap is a failed test, with its message"
)]

use std::{path::Path, time::Duration};

use flash_tests::{
    bench::{baselines::redis_reserve, cpu::Meter},
    redis_server::RedisServer,
};
use futures_util::StreamExt;
use origin::gid::Gid;
use origin::reservations::{
    Completion, HealFinish, HealStart, HealedOrder, Loss, Reservation, Reservations, SaleKeys,
    FENCE_EPOCH,
};
use redis::AsyncCommands;

const SALE: i64 = 7;
const LOCK: Duration = Duration::from_secs(10);

/// Redis with sale 7 opened at `stock` units; recovery may take a transaction over at once.
async fn redis_with(stock: u32) -> (RedisServer, Reservations, redis::aio::MultiplexedConnection) {
    let server = RedisServer::start().await.unwrap();
    let timeout = Duration::from_secs(5);
    let redis = Reservations::new(server.handle(timeout).await.unwrap(), Duration::ZERO);
    assert!(redis.open_stock(SALE, stock).await.unwrap());
    let raw = server.connection().await.unwrap();
    (server, redis, raw)
}

async fn int(conn: &mut redis::aio::MultiplexedConnection, key: String) -> Option<i64> {
    conn.get(key).await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn reserve_hands_out_unique_fences_and_nothing_while_a_heal_holds_the_lock() {
    let (_server, redis, mut conn) = redis_with(2).await;
    let keys = SaleKeys::new(SALE);
    let check = |got: Reservation, expected: Reservation| assert_eq!(got, expected);
    check(
        redis.reserve(&Gid::new(SALE, "a"), 0).await.unwrap(),
        Reservation::Reserved { left: 1, fence: 1 },
    );
    let _: () = conn.set(keys.healing(), "someone").await.unwrap();
    check(
        redis.reserve(&Gid::new(SALE, "b"), 0).await.unwrap(),
        Reservation::Healing,
    );
    assert_eq!(int(&mut conn, keys.stock()).await, Some(1), "nothing taken");
    assert!(!conn
        .exists::<_, bool>(keys.barrier(&Gid::new(SALE, "b")))
        .await
        .unwrap());
    // A buyer with a barrier is told so even during a heal.
    assert!(matches!(
        redis.reserve(&Gid::new(SALE, "a"), 0).await.unwrap(),
        Reservation::Duplicate(_)
    ));
    let _: () = conn.del(keys.healing()).await.unwrap();
    // The barrier and the record expire when asked to.
    let expire_at = 4_102_444_800_000; // 2100-01-01
    check(
        redis
            .reserve(&Gid::new(SALE, "b"), expire_at)
            .await
            .unwrap(),
        Reservation::Reserved { left: 0, fence: 2 },
    );
    for key in [
        keys.barrier(&Gid::new(SALE, "b")),
        keys.tx(&Gid::new(SALE, "b")),
    ] {
        let at: i64 = redis::cmd("PEXPIRETIME")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(at, expire_at, "{key}");
    }
    let at: i64 = redis::cmd("PEXPIRETIME")
        .arg(keys.barrier(&Gid::new(SALE, "a")))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(at, -1, "0 means no expiry");
}

#[tokio::test(flavor = "multi_thread")]
async fn complete_closes_the_stock_on_a_refusal_unless_a_unit_came_back_since() {
    let (_server, redis, mut conn) = redis_with(5).await;
    let keys = SaleKeys::new(SALE);
    // Refused by PostgreSQL, nothing returned since the reservation: the stock closes.
    redis.reserve(&Gid::new(SALE, "a"), 0).await.unwrap();
    assert_eq!(
        redis
            .complete(&Gid::new(SALE, "a"), true, 1, true)
            .await
            .unwrap(),
        Completion::Completed {
            returned: false,
            closed: true
        }
    );
    assert_eq!(int(&mut conn, keys.stock()).await, Some(0));
    // A second completion changes nothing.
    assert_eq!(
        redis
            .complete(&Gid::new(SALE, "a"), true, 1, true)
            .await
            .unwrap(),
        Completion::Already
    );

    // A unit came back between the reservation and the refusal: it may be real, the stock stays.
    let _: () = conn.set(keys.stock(), 3).await.unwrap();
    redis.reserve(&Gid::new(SALE, "b"), 0).await.unwrap();
    assert!(redis.restock(SALE, 99).await.unwrap());
    assert_eq!(
        redis
            .complete(&Gid::new(SALE, "b"), true, 2, true)
            .await
            .unwrap(),
        Completion::Completed {
            returned: false,
            closed: false
        }
    );
    assert_eq!(
        int(&mut conn, keys.stock()).await,
        Some(3),
        "3 - 1 taken + 1 back"
    );

    // A live order keeps its unit.
    redis.reserve(&Gid::new(SALE, "c"), 0).await.unwrap();
    assert_eq!(
        redis
            .complete(&Gid::new(SALE, "c"), false, 3, true)
            .await
            .unwrap(),
        Completion::Completed {
            returned: false,
            closed: false
        }
    );
    assert_eq!(int(&mut conn, keys.stock()).await, Some(2));
}

#[tokio::test(flavor = "multi_thread")]
async fn complete_gives_back_the_unit_of_an_order_older_than_the_transaction() {
    let (_server, redis, mut conn) = redis_with(5).await;
    let keys = SaleKeys::new(SALE);
    // Redis had forgotten the buyer: the reservation took a unit, PostgreSQL had the order.
    redis.reserve(&Gid::new(SALE, "a"), 0).await.unwrap();
    assert_eq!(
        redis
            .complete(&Gid::new(SALE, "a"), false, 1, false)
            .await
            .unwrap(),
        Completion::Completed {
            returned: true,
            closed: false
        }
    );
    assert_eq!(int(&mut conn, keys.stock()).await, Some(5));
    assert_eq!(int(&mut conn, keys.restocks()).await, Some(1));

    // Recovery running a transaction again (claimed once) finds its own order: the unit stays.
    redis.reserve(&Gid::new(SALE, "b"), 0).await.unwrap();
    let claim = redis
        .claim_due(SALE, Duration::from_secs(5), Duration::from_secs(5), 10)
        .await
        .unwrap();
    assert_eq!(claim.claimed, vec![(Gid::new(SALE, "b").to_string(), 1)]);
    assert_eq!(
        redis
            .complete(&Gid::new(SALE, "b"), false, 2, false)
            .await
            .unwrap(),
        Completion::Completed {
            returned: false,
            closed: false
        }
    );
    assert_eq!(int(&mut conn, keys.stock()).await, Some(4));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_heal_starts_once_per_loss_writes_only_what_is_missing_and_moves_the_fence() {
    let (_server, redis, mut conn) = redis_with(10).await;
    let keys = SaleKeys::new(SALE);
    redis.reserve(&Gid::new(SALE, "kept"), 0).await.unwrap();

    // heal_begin: a loss healed already is left alone; the lock is taken once.
    let check = |got: HealStart, expected: HealStart| assert_eq!(got, expected);
    check(
        redis
            .heal_begin(SALE, "t1", LOCK, Loss::MissingStock)
            .await
            .unwrap(),
        HealStart::Healed,
    );
    check(
        redis
            .heal_begin(SALE, "t1", LOCK, Loss::RepeatedFence { epoch: 1 })
            .await
            .unwrap(),
        HealStart::Healed,
    );
    check(
        redis
            .heal_begin(SALE, "t1", LOCK, Loss::Overcount { epoch: 0 })
            .await
            .unwrap(),
        HealStart::Started { restocks: 0 },
    );
    check(
        redis
            .heal_begin(SALE, "t2", LOCK, Loss::RepeatedFence { epoch: 0 })
            .await
            .unwrap(),
        HealStart::Busy,
    );

    // heal_keys: not the lock's holder, nothing; else the missing keys only.
    let orders = [
        HealedOrder {
            gid: Gid::new(SALE, "kept").to_string(),
            rejected: false,
            order_id: 1,
        },
        HealedOrder {
            gid: Gid::new(SALE, "lost").to_string(),
            rejected: false,
            order_id: 2,
        },
        HealedOrder {
            gid: Gid::new(SALE, "refused").to_string(),
            rejected: true,
            order_id: 3,
        },
    ];
    assert_eq!(
        redis
            .heal_keys(SALE, "t2", LOCK, 0, &orders, &[2])
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        redis
            .heal_keys(SALE, "t1", LOCK, 0, &orders, &[2])
            .await
            .unwrap(),
        Some((2, 1))
    );
    let kept: Option<String> = conn
        .hget(keys.tx(&Gid::new(SALE, "kept")), "state")
        .await
        .unwrap();
    assert_eq!(
        kept.as_deref(),
        Some("submitted"),
        "a transaction in flight keeps its record"
    );
    let refused: Vec<Option<String>> = redis::cmd("HMGET")
        .arg(keys.tx(&Gid::new(SALE, "refused")))
        .arg(&["state", "outcome", "order"])
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        refused,
        vec![
            Some("succeeded".into()),
            Some("rejected".into()),
            Some("3".into())
        ]
    );
    assert!(
        matches!(
            redis.reserve(&Gid::new(SALE, "lost"), 0).await.unwrap(),
            Reservation::Duplicate(ref earlier) if earlier.order_id == Some(2)
        ),
        "the forgotten buyer is told about their order, even during the heal"
    );
    assert!(
        !redis.restock(SALE, 2).await.unwrap(),
        "a returned unit is not returned twice"
    );

    // heal_finish: guarded by the lock and by the restock count.
    assert_eq!(
        redis.heal_finish(SALE, "t2", 4, 0).await.unwrap(),
        HealFinish::Lost
    );
    assert!(redis.restock(SALE, 50).await.unwrap());
    assert_eq!(
        redis.heal_finish(SALE, "t1", 4, 0).await.unwrap(),
        HealFinish::Moved { restocks: 1 }
    );
    assert_eq!(
        redis.heal_finish(SALE, "t1", -3, 1).await.unwrap(),
        HealFinish::Healed { stock: 0 }
    );
    assert_eq!(int(&mut conn, keys.stock()).await, Some(0), "never below 0");
    assert_eq!(int(&mut conn, keys.fence()).await, Some(FENCE_EPOCH));
    assert_eq!(int(&mut conn, keys.restocks()).await, Some(2));
    assert!(!conn.exists::<_, bool>(keys.healing()).await.unwrap());
    let _: () = conn.set(keys.stock(), 1).await.unwrap();
    assert_eq!(
        redis.reserve(&Gid::new(SALE, "after"), 0).await.unwrap(),
        Reservation::Reserved {
            left: 0,
            fence: FENCE_EPOCH + 1
        }
    );
}

/// The edges learn what a heal decided: `restocked` when the rebuilt stock has units (a sold-out
/// flag clears), `sold_out` when it has none.
#[tokio::test(flavor = "multi_thread")]
async fn a_heal_tells_the_edges_whether_the_sale_has_units() {
    let (server, redis, _conn) = redis_with(0).await;
    let keys = SaleKeys::new(SALE);
    let client = redis::Client::open(server.url()).unwrap();
    let mut events = client.get_async_pubsub().await.unwrap();
    events.subscribe(keys.events()).await.unwrap();
    let mut messages = events.on_message();
    for (token, stock, told) in [("t1", 2, "restocked"), ("t2", 0, "sold_out")] {
        let loss = Loss::Drift { drift: 1 };
        let HealStart::Started { restocks } =
            redis.heal_begin(SALE, token, LOCK, loss).await.unwrap()
        else {
            panic!("the lock is free");
        };
        assert_eq!(
            redis
                .heal_finish(SALE, token, stock, restocks)
                .await
                .unwrap(),
            HealFinish::Healed { stock }
        );
        let message = tokio::time::timeout(Duration::from_secs(5), messages.next())
            .await
            .expect("an event within 5 s")
            .unwrap();
        let payload: String = message.get_payload().unwrap();
        assert_eq!(payload, told, "a heal to {stock} units");
    }
}

/// `./deploy/bench` sets the live path beside `redis-benchmark` running `reserve.lua` by EVALSHA;
/// a script erring on keys or arguments out of step with the origin's would be answered as fast
/// as one that reserves, so the baseline checks the units it took (every call a reservation).
#[tokio::test(flavor = "multi_thread")]
async fn the_benchs_redis_benchmark_baseline_reserves_with_every_call() {
    let server = RedisServer::start().await.unwrap();
    let lua = Path::new(env!("CARGO_MANIFEST_DIR")).join("../lua");
    let (rps, _) = redis_reserve(&server, &lua, 4, 2_000, &Meter::new(vec![]))
        .await
        .unwrap();
    assert!(rps > 0.0, "{rps}");
}
