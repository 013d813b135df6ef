//! Finding 3, the edge's half: one client flooding the challenge cannot raise the captcha level for
//! everyone.

use super::*;

#[tokio::test(flavor = "multi_thread")]
async fn finding_3_one_client_cannot_raise_the_captcha_level() {
    let shipped = edge::config::Config::default().limits.captcha;
    let options = EdgeOptions {
        levels: vec![(0, 4, false), (50, 8, false)],
        captcha_window_seconds: 5,
        captcha_ip: (shipped.ip.per_second, shipped.ip.burst),
        captcha_uid: (shipped.uid.per_second, shipped.uid.burst),
        // A thousand challenges at once on a loaded machine: the sale's facts, fetched from the
        // origin when the edge's copy expires, must not time out for some of them.
        origin_timeout_ms: 5000,
        ..EdgeOptions::default()
    };
    let world = World::start(options.clone()).await;
    let sale = world.sale(5, Duration::ZERO).await;
    // The level rises at 50 distinct users a second over 5 s: 250 user-seconds.

    // 1,100 challenge requests from one /64 (its addresses in turn) with one token, at once.
    let bot = vec![shopper::jwt("bot").unwrap()];
    // What the per-IP limit lets through in `took`: its burst, then its rate.
    let allowed = |took: Duration| {
        shipped.ip.burst as usize + (shipped.ip.per_second * took.as_secs_f64()).ceil() as usize
    };
    let block: Vec<String> = (1..=60).map(|i| format!("2001:db8:1:2::{i:x}")).collect();
    let started = std::time::Instant::now();
    let (statuses, levels) = flood(&world, sale, &bot, &block, 1100).await;
    let through = statuses.iter().filter(|&&s| s != 429).count();
    assert!(
        through <= allowed(started.elapsed()),
        "{through} of 1100 let through in {:?}: {statuses:?}",
        started.elapsed()
    );
    assert!(levels.iter().all(|&l| l == 0), "{levels:?}");
    // The 10,000-in-5-s variant, scaled down: 2,000 from another /64 with five tokens.
    let bots: Vec<String> = (0..5)
        .map(|i| shopper::jwt(&format!("bot-{i}")).unwrap())
        .collect();
    let block: Vec<String> = (1..=60).map(|i| format!("2001:db8:9:9::{i:x}")).collect();
    let started = std::time::Instant::now();
    let (statuses, levels) = flood(&world, sale, &bots, &block, 2000).await;
    let through = statuses.iter().filter(|&&s| s != 429).count();
    assert!(
        through <= allowed(started.elapsed()),
        "{through} of 2000 let through in {:?}",
        started.elapsed()
    );
    assert!(levels.iter().all(|&l| l == 0), "{levels:?}");
    // Another user is not pushed to a higher level.
    let (status, _, body) = world
        .challenge(&shopper::jwt("carol").unwrap(), sale, "10.1.0.1")
        .await;
    assert_eq!((status, body["level"].as_u64()), (200, Some(0)), "{body}");

    // Without the limits (a client that spread its requests over enough addresses and
    // edges), one token's 1,100 requests still count as one user a second.
    world
        .edge
        .write_config(&EdgeOptions {
            captcha_ip: (10_000.0, 10_000),
            captcha_uid: (10_000.0, 10_000),
            ..options
        })
        .unwrap();
    world.edge.sighup().unwrap();
    world
        .edge
        .await_reloads(&world.http, "applied", 1)
        .await
        .unwrap();
    let (statuses, levels) = flood(&world, sale, &bot, &block, 1100).await;
    assert!(statuses.iter().all(|&s| s == 200), "{statuses:?}");
    assert!(levels.iter().all(|&l| l == 0), "{levels:?}");

    // Many distinct users, each once, from their own addresses, do raise it.
    let users: Vec<String> = (0..300)
        .map(|i| shopper::jwt(&format!("user-{i}")).unwrap())
        .collect();
    let ips: Vec<String> = (0..300)
        .map(|i| format!("10.2.{}.{}", i / 200, i % 200 + 1))
        .collect();
    let (statuses, _) = flood(&world, sale, &users, &ips, 300).await;
    assert!(statuses.iter().all(|&s| s == 200), "{statuses:?}");
    let (status, _, body) = world
        .challenge(&shopper::jwt("dave").unwrap(), sale, "10.3.0.1")
        .await;
    assert_eq!((status, body["level"].as_u64()), (200, Some(1)), "{body}");
}
