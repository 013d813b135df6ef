//! Finding 5: no pass is had before a sale's start, and none is kept past a rise of the level.

use super::*;

#[tokio::test(flavor = "multi_thread")]
async fn finding_5_no_pass_before_the_start_and_none_below_the_level() {
    let world = World::start(EdgeOptions {
        levels: vec![(0, 4, false), (30, 8, false)],
        captcha_window_seconds: 1,
        captcha_cooldown_seconds: 60,
        ..EdgeOptions::default()
    })
    .await;
    let alice = shopper::jwt("alice").unwrap();

    // Three passes taken 20 s before the start: no challenge, no pass.
    let later = world.sale(5, Duration::from_secs(20)).await;
    for i in 0..3 {
        let (status, headers, body) = world.challenge(&alice, later, "10.0.0.1").await;
        assert_eq!(
            (status, body["error"].as_str()),
            (409, Some("sale_not_started")),
            "{i}: {body}"
        );
        assert!(body["starts_at"].as_str().is_some(), "{body}");
        let wait: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
        assert!((15..=21).contains(&wait), "Retry-After {wait}");
        assert!(world.pass(&alice, later, "10.0.0.1").await.is_err());
    }
    // A challenge of another sale does not solve for this one either, and POST is refused too.
    let resp = world
        .http
        .post(format!("{}/api/captcha", world.edge.url()))
        .bearer_auth(&alice)
        .json(&json!({"sale": later, "challenge": "v1.x", "nonce": "1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 409);

    // With a short wait: refused before the start, earned and spent after it.
    let soon = world.sale(5, Duration::from_secs(2)).await;
    let (status, _, _) = world.challenge(&alice, soon, "10.0.0.1").await;
    assert_eq!(status, 409, "still before the start");
    wait::until("the sale started", Duration::from_secs(10), || async {
        Ok(world.challenge(&alice, soon, "10.0.0.1").await.0 == 200)
    })
    .await
    .unwrap();
    let pass = world.pass(&alice, soon, "10.0.0.1").await.unwrap();
    let (status, body) = world.buy(&alice, soon, &pass).await;
    assert_eq!(status, 200, "an honest buyer buys: {body}");

    // A pass earned at level 0 is refused once the level rose; the next one, earned at the new
    // level, buys.
    let open = world.sale(5, Duration::ZERO).await;
    let bob = shopper::jwt("bob").unwrap();
    let cheap = world.pass(&bob, open, "10.0.0.2").await.unwrap();
    let crowd: Vec<String> = (0..60)
        .map(|i| shopper::jwt(&format!("crowd-{i}")).unwrap())
        .collect();
    let ips: Vec<String> = (0..60).map(|i| format!("10.5.0.{}", i + 1)).collect();
    let (statuses, _) = flood(&world, open, &crowd, &ips, 60).await;
    assert!(statuses.iter().all(|&s| s == 200), "{statuses:?}");
    let (status, body) = world.buy(&bob, open, &cheap).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (403, Some("pass_level_too_low")),
        "{body}"
    );
    let earned = world.pass(&bob, open, "10.0.0.2").await.unwrap();
    let (status, body) = world.buy(&bob, open, &earned).await;
    assert_eq!(status, 200, "re-solved at the new level: {body}");
}
