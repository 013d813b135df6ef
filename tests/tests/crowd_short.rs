//! A short flash crowd with bots, played in-process by `flash_tests::crowd` through a real edge in
//! front of a real origin, Redis and PostgreSQL: 2000 users (20% bots of every kind) for 1200 units.
//! Correctness only, no timing: the stock sells out exactly, no bot gets a unit beyond one honest
//! purchase per identity, every forged identity is refused with 401, and the books balance
//! (conservation, reconcile drift 0).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "integration tests: a failed unwrap is a failed test, with its message"
)]

use std::time::Duration;

use flash_tests::{
    crowd::{self, report::KindReport, BotKind, CrowdConfig},
    edge_process::{EdgeOptions, USER_JWT_SECRET},
    front,
    front::EdgeStack,
};

/// Below the honest users alone (1600), so the crowd always sells it out, but high enough that
/// most bots attack while the sale is still on rather than meeting `410 sold_out`.
const STOCK: i64 = 1200;

/// The shipped limits (docs/API.md, deploy/edge.toml), a little tighter per uid, and an easy
/// proof of work: honest users (one buy each, each from its own address) never meet a limit; a
/// swarm behind one address and a hammering uid do.
fn realistic_limits() -> EdgeOptions {
    EdgeOptions {
        ip_per_second: 2.0,
        ip_burst: 5,
        uid_per_second: 1.0,
        uid_burst: 3,
        global_per_second: 5000,
        global_lease: 50,
        levels: vec![(0, 6, false)],
        ..EdgeOptions::default()
    }
}

/// Buys of `kind` that met the sale while it was on (answered anything but `410 sold_out`).
fn live_buys_of(kind: &KindReport) -> u64 {
    kind.answers
        .iter()
        .filter(|(k, _)| k.starts_with("buy ") && *k != "buy 410 sold_out")
        .map(|(_, n)| n)
        .sum()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crowd_with_bots_buys_the_stock_exactly_and_bots_get_nothing_extra() {
    let limits = realistic_limits();
    let EdgeStack { stack, edge } = front!().edge(limits.clone()).start_edge().await.unwrap();
    let sale = stack.create_sale(STOCK).await.unwrap();

    let mut config = CrowdConfig::new(edge.url(), sale, Some(USER_JWT_SECRET.into()));
    config.users = 2000;
    config.concurrency = 64;
    config.bots = 0.2;
    config.seed = 42;
    let report = crowd::run(config).await.unwrap();
    println!("{}", report.table());
    for line in report.json_lines() {
        println!("{line}");
    }
    let summary = &report.summary;

    // Every kind played, and nobody was left without an answer.
    assert_eq!(report.kinds.len(), BotKind::ALL.len());
    assert_eq!(summary.no_answer, 0, "requests without an answer");
    assert_eq!(summary.image_required, 0, "no image level configured");

    // The crowd is bigger than the stock: it sells out, exactly (the books below). A buy the edge
    // answered 503 because the origin was slow (a loaded machine) has an unknown outcome to its
    // client: its unit may be sold. So the units answered 200 are at most the stock, and with the
    // unknown outcomes at least the stock.
    let stock = u64::try_from(STOCK).unwrap();
    let unknown: u64 = report
        .kinds
        .iter()
        .flat_map(|k| k.answers.iter())
        .filter(|(answer, _)| answer.starts_with("buy 503 "))
        .map(|(_, n)| n)
        .sum();
    assert!(summary.units_sold <= stock, "{summary:?}");
    assert!(summary.units_sold + unknown >= stock, "{summary:?}");
    assert!(summary.max_units_per_identity <= 1, "{summary:?}");
    assert!(summary.violations.is_empty(), "{:?}", summary.violations);

    // Bots get nothing beyond one honest purchase per identity.
    assert_eq!(summary.bot_units, 0, "{summary:?}");
    for kind in &report.kinds {
        let name = kind.kind.as_str();
        assert_eq!(kind.extra_units, 0, "{name}: {kind:?}");
        assert!(kind.max_units_per_identity <= 1, "{name}: {kind:?}");
    }
    for forbidden in [
        BotKind::NoPass,
        BotKind::OtherUidPass,
        BotKind::ForgedNone,
        BotKind::ForgedKey,
        BotKind::Expired,
        BotKind::Malformed,
    ] {
        let kind = report.kind(forbidden).unwrap();
        assert_eq!(kind.units, 0, "{forbidden}: {kind:?}");
    }

    // Forged identities are refused as such: 401 (or the sold-out answer that comes first).
    for forged in [BotKind::ForgedNone, BotKind::ForgedKey, BotKind::Expired] {
        let kind = report.kind(forged).unwrap();
        let stopped: u64 = kind.stopped_by.values().sum();
        assert_eq!(
            stopped, kind.sent,
            "{forged}: every request refused: {kind:?}"
        );
        assert!(
            kind.stopped_by
                .keys()
                .all(|k| k.starts_with("401 ") || k == "410 sold_out"),
            "{forged}: {kind:?}"
        );
        assert!(
            kind.stopped_by.keys().any(|k| k.starts_with("401 ")),
            "{forged}: {kind:?}"
        );
    }

    // The swarm's simultaneous buys from one address meet the per-IP limit while the sale is on.
    let swarm = report.kind(BotKind::IpSwarm).unwrap();
    if live_buys_of(swarm) > u64::from(limits.ip_burst) {
        assert!(swarm.stopped_by.contains_key("429 ip"), "{swarm:?}");
    }

    // The hammer's simultaneous buys (fresh passes, rotating addresses) meet the per-uid limit.
    let hammer = report.kind(BotKind::UidHammer).unwrap();
    if live_buys_of(hammer) > u64::from(limits.uid_burst) {
        assert!(hammer.stopped_by.contains_key("429 uid"), "{hammer:?}");
    }

    // The books: every unit sold is a live order, nothing in flight, drift 0.
    let books = stack
        .wait_balanced(sale, Duration::from_secs(20))
        .await
        .unwrap();
    assert_eq!(books.live(), STOCK, "{books:?}");
    assert_eq!(books.redis_remaining, 0, "{books:?}");
    let (ok, reconcile) = stack.reconcile(sale, false).await.unwrap();
    assert!(ok, "{reconcile}");
    assert_eq!(reconcile["drift"], 0, "{reconcile}");
}
