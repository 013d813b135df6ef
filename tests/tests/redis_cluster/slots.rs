//! Every script keeps its keys in one slot: no CROSSSLOT error can reach a user.

use super::*;
use origin::dtm::MessageGid;

#[tokio::test(flavor = "multi_thread")]
async fn every_script_keeps_its_keys_in_one_slot() {
    let cluster = RedisCluster::start().await.expect("a cluster starts");
    let timeout = Duration::from_secs(5);
    let redis = cluster.handle(timeout).await.expect("the cluster handle");
    let reservations = Reservations::new(redis.clone(), Duration::ZERO);
    reservations.preload().await.expect("every script loads");
    let uid_limiter = UidLimiter::new(redis.clone());
    uid_limiter.preload().await.expect("admit.lua loads");
    let global = GlobalLimiter::new(redis.clone());
    global.preload().await.expect("global_lease.lua loads");

    let mut covered: HashSet<&str> = HashSet::new();
    let mut primaries = HashSet::new();
    // Sales 1..=12 land on every primary: each script runs where its sale is.
    for sale in 1..=12 {
        primaries.insert(
            cluster
                .primary_of(&SaleKeys::new(sale).stock())
                .await
                .expect("a primary")
                .port,
        );
        let uid = format!("buyer/{{x}}{sale}");
        assert!(reservations.open_stock(sale, 5).await.unwrap());
        covered.insert("open_stock.lua");
        reservations.mark_active(sale).await.unwrap();
        covered.insert("mark_active.lua");
        let Reservation::Reserved { fence, .. } = reservations
            .reserve(&Gid::new(sale, &uid), 0)
            .await
            .unwrap()
        else {
            panic!("sale {sale}: a unit is reserved");
        };
        covered.insert("reserve.lua");
        let message = MessageGid::new(Gid::new(sale, format!("{uid}-dtm")));
        assert!(!reservations.query_prepared(&message, 0).await.unwrap());
        assert_eq!(
            reservations.reserve_message(&message, 0).await.unwrap(),
            Reservation::Refused
        );
        covered.insert("dtm_query.lua");
        let claim = reservations
            .claim_due(sale, Duration::from_secs(1), Duration::from_secs(4), 10)
            .await
            .unwrap();
        assert_eq!(claim.in_flight, 1, "sale {sale}: {claim:?}");
        covered.insert("claim.lua");
        let completion = reservations
            .complete(&Gid::new(sale, &uid), false, sale * 100, true)
            .await
            .unwrap();
        assert!(
            matches!(completion, Completion::Completed { .. }),
            "{completion:?}"
        );
        covered.insert("complete.lua");
        assert!(reservations.restock(sale, sale * 100).await.unwrap());
        covered.insert("restock.lua");
        let seen = reservations.stock_snapshot(sale).await.unwrap();
        assert_eq!(seen.stock, Some(5), "sale {sale}: {seen:?}");
        let repair = reservations.repair_stock(sale, 5, &seen).await.unwrap();
        assert!(matches!(repair, StockRepair::Repaired { .. }), "{repair:?}");
        covered.insert("repair_stock.lua");
        let lock = Duration::from_secs(10);
        let HealStart::Started { restocks } = reservations
            .heal_begin(
                sale,
                "healer",
                lock,
                Loss::RepeatedFence {
                    epoch: fence.div_euclid(origin::reservations::FENCE_EPOCH),
                },
            )
            .await
            .unwrap()
        else {
            panic!("sale {sale}: the heal lock is taken");
        };
        covered.insert("heal_begin.lua");
        let orders = [HealedOrder {
            gid: Gid::new(sale, &uid).to_string(),
            rejected: false,
            order_id: sale * 100,
        }];
        let written = reservations
            .heal_keys(sale, "healer", lock, 0, &orders, &[sale * 100])
            .await
            .unwrap();
        assert!(written.is_some(), "sale {sale}: the lock is held");
        covered.insert("heal_keys.lua");
        let finish = reservations
            .heal_finish(sale, "healer", 4, restocks)
            .await
            .unwrap();
        assert_eq!(finish, HealFinish::Healed { stock: 4 }, "sale {sale}");
        covered.insert("heal_finish.lua");

        let rate = RateConfig {
            per_second: 10.0,
            burst: 10,
            dry_run: false,
        };
        let admission = uid_limiter.admit(sale, &uid, "jti-1", &rate, 60).await;
        assert!(
            admission.is_ok_and(|a| a.passes()),
            "sale {sale}: admit.lua runs on the sale's node"
        );
        covered.insert("admit.lua");
        let lease = global
            .acquire(
                sale,
                &GlobalConfig {
                    per_second: 100,
                    lease: 10,
                    dry_run: false,
                },
            )
            .await;
        assert!(
            lease.is_ok_and(|d| d.is_allowed()),
            "sale {sale}: global_lease.lua runs on the sale's node"
        );
        covered.insert("global_lease.lua");
    }
    assert_eq!(primaries.len(), 3, "the sales covered every primary");
    let active = reservations
        .active_sales(Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(active.sales.len(), 12, "{active:?}");
    covered.insert("active_sales.lua");

    let scripts: HashSet<String> =
        std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../lua"))
            .expect("lua/ is readable")
            .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
            .filter(|name| name.ends_with(".lua"))
            .collect();
    let missing: Vec<&String> = scripts
        .iter()
        .filter(|name| !covered.contains(name.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "scripts not run on the cluster by this test: {missing:?}"
    );
}
