//! Config reload on SIGHUP, on an edge process: a changed limit applies, an unchanged one keeps
//! its limiter's state, a broken file is refused by name and the running config stays; a spent
//! pass stays spent until it expires even after `pass_ttl_seconds` is lowered.

use base64::Engine;
use edge::limits::uid::UserKeys;
use flash_tests::edge_process::EdgeOptions;
use serde_json::{json, Value};

use crate::{buy, jwt, pass, start};

#[tokio::test(flavor = "multi_thread")]
async fn sighup_applies_a_changed_limit_keeps_limiter_state_and_refuses_a_broken_file() {
    let world = start(1, EdgeOptions::default()).await;
    let sale = world.stack.create_sale(5).await.unwrap();
    let edge = world.edge(0);
    let url = format!("{}/api/sales/{sale}/buy", edge.url());
    let statuses = |n: usize| {
        let http = world.http().clone();
        let url = url.clone();
        async move {
            let mut out = Vec::new();
            for _ in 0..n {
                out.push(
                    http.post(&url)
                        .json(&json!({"pass_token": "x"}))
                        .send()
                        .await
                        .unwrap()
                        .status()
                        .as_u16(),
                );
            }
            out
        }
    };
    // Generous IP limit: anonymous requests reach the identity check.
    assert_eq!(statuses(3).await, [401, 401, 401]);

    let tight = EdgeOptions {
        ip_per_second: 0.01,
        ip_burst: 2,
        ..EdgeOptions::default()
    };
    edge.write_config(&tight).unwrap();
    edge.sighup().unwrap();
    edge.await_reloads(world.http(), "applied", 1)
        .await
        .unwrap();
    assert_eq!(
        statuses(3).await,
        [401, 401, 429],
        "the new IP limit applies"
    );

    // An unrelated change: the IP limiter keeps its state, this address stays limited.
    let unrelated = EdgeOptions {
        uid_burst: 7,
        ..tight.clone()
    };
    edge.write_config(&unrelated).unwrap();
    edge.sighup().unwrap();
    edge.await_reloads(world.http(), "applied", 2)
        .await
        .unwrap();
    assert_eq!(
        statuses(1).await,
        [429],
        "limiter state survives a reload that keeps its quota"
    );

    // A value of the wrong type: refused, the message names its key, the old limit stays.
    let mut wrong_type = std::fs::read_to_string(edge.config_path()).unwrap();
    wrong_type = wrong_type.replace("per_second = 0.01", "per_second = \"x\"");
    edge.write_raw_config(&wrong_type).unwrap();
    edge.sighup().unwrap();
    edge.await_reloads(world.http(), "refused", 1)
        .await
        .unwrap();
    let refusal = edge
        .log()
        .lines()
        .rfind(|l| l.contains("config reload refused"))
        .unwrap()
        .to_string();
    assert!(
        refusal.contains("limits.ip.per_second"),
        "the log names the field: {refusal}"
    );
    assert_eq!(statuses(1).await, [429], "the running limit stays");

    edge.write_raw_config("[limits.ip]\nper_second = 1.0\nbrust = 3\n")
        .unwrap();
    edge.sighup().unwrap();
    edge.await_reloads(world.http(), "refused", 2)
        .await
        .unwrap();
    assert!(edge.log().contains("brust"), "the log names the bad field");
    assert_eq!(statuses(1).await, [429], "the running limit stays");
}

fn jti_of(pass: &str) -> String {
    let payload = pass.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    claims["jti"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_spent_pass_stays_spent_until_it_expires_even_after_pass_ttl_is_lowered() {
    let world = start(1, EdgeOptions::default()).await;
    let sale = world.stack.create_sale(5).await.unwrap();
    let alice = jwt("alice");
    // Issued for 60 s; then the lifetime is lowered to 2 s by SIGHUP.
    let pass_a = pass(&world, 0, &alice, sale).await;
    let edge = world.edge(0);
    let short = EdgeOptions {
        pass_ttl_seconds: 2,
        ..EdgeOptions::default()
    };
    edge.write_config(&short).unwrap();
    edge.sighup().unwrap();
    edge.await_reloads(world.http(), "applied", 1)
        .await
        .unwrap();

    assert_eq!(buy(&world, 0, Some(&alice), sale, &pass_a).await.0, 200);
    let mut conn = world.stack.redis.connection().await.unwrap();
    let key = UserKeys::new(sale, "alice").spent(&jti_of(&pass_a));
    let ttl: i64 = redis::cmd("TTL")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
    println!("spent mark of a 60 s pass under pass_ttl_seconds = 2: TTL {ttl} s");
    assert!(
        (50..=65).contains(&ttl),
        "the spent mark must last until the pass expires (about 60 s + 5 s), not 2 s: {ttl}"
    );
    let (status, body) = buy(&world, 0, Some(&alice), sale, &pass_a).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (403, Some("pass_token_spent")),
        "{body}"
    );
}
