//! The captcha levels of an edge process: an image level hands out a picture and its audio and
//! checks the answer; the level gauge falls after the cool-down without a challenge.

use std::time::Duration;

use flash_tests::{edge_process::EdgeOptions, wait};
use serde_json::{json, Value};

use crate::{jwt, post, start};

#[tokio::test(flavor = "multi_thread")]
async fn image_level_hands_out_a_picture_and_its_audio_and_checks_the_answer() {
    let options = EdgeOptions {
        levels: vec![(0, 8, true)],
        ..EdgeOptions::default()
    };
    let world = start(1, options).await;
    let sale = world.stack.create_sale(5).await.unwrap();
    let url = world.edge(0).url();
    let alice = jwt("alice");
    // The pool draws its first images at `images_per_second`: until then, 503 captcha_busy.
    let served = std::sync::Mutex::new(Value::Null);
    wait::until("an image challenge", Duration::from_secs(10), || async {
        let resp = world
            .http()
            .get(format!("{url}/api/captcha?sale={sale}"))
            .bearer_auth(&alice)
            .send()
            .await?;
        let ok = resp.status() == 200;
        *served.lock().unwrap() = resp.json().await?;
        Ok(ok)
    })
    .await
    .unwrap();
    let challenge = served.into_inner().unwrap();
    let png = challenge["image"]["png"].as_str().unwrap();
    let audio = challenge["image"]["audio"].as_str().unwrap();
    for (path, mime, magic) in [
        (png, "image/png", &b"\x89PNG"[..]),
        (audio, "audio/wav", b"RIFF"),
    ] {
        let resp = world
            .http()
            .get(format!("{url}{path}"))
            .bearer_auth(&alice)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        assert_eq!(resp.headers()["content-type"], mime);
        assert!(resp.bytes().await.unwrap().starts_with(magic), "{path}");
    }
    let gone = world
        .http()
        .get(format!("{url}/api/captcha/image/0/999999999"))
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), 404);

    let token = challenge["challenge"].as_str().unwrap();
    let nonce = edge::captcha::pow::solve(token, 8);
    let solve_url = format!("{url}/api/captcha");
    let without = json!({"sale": sale, "challenge": token, "nonce": nonce});
    let (status, body) = post(&world, &solve_url, Some(&alice), without).await;
    assert_eq!(
        (status, body["reason"].as_str()),
        (403, Some("answer_required")),
        "{body}"
    );
    let wrong = json!({"sale": sale, "challenge": token, "nonce": nonce, "answer": "00000"});
    let (status, body) = post(&world, &solve_url, Some(&alice), wrong).await;
    assert_eq!(
        (status, body["reason"].as_str()),
        (403, Some("wrong_answer")),
        "{body}"
    );
}

/// An origin that accepts connections and never answers (a hung server), counting the

#[tokio::test(flavor = "multi_thread")]
async fn the_captcha_level_gauge_falls_after_the_cool_down_without_a_challenge() {
    // Level 1 from 3 users a second, measured over 1 s, left after 1 calm second.
    let options = EdgeOptions {
        levels: vec![(0, 8, false), (3, 9, false)],
        captcha_window_seconds: 1,
        captcha_cooldown_seconds: 1,
        ..EdgeOptions::default()
    };
    let world = start(1, options).await;
    let sale = world.stack.create_sale(5).await.unwrap();
    let edge = world.edge(0);
    let users: Vec<String> = (0..10).map(|i| jwt(&format!("user-{i}"))).collect();
    let level = || async {
        edge.metric(world.http(), "edge_captcha_level", &[])
            .await
            .unwrap()
    };
    wait::until(
        "a burst raises the level",
        Duration::from_secs(10),
        || async {
            let mut top = 0;
            for user in &users {
                let challenge: Value = world
                    .http()
                    .get(format!("{}/api/captcha?sale={sale}", edge.url()))
                    .bearer_auth(user)
                    .send()
                    .await?
                    .json()
                    .await?;
                top = top.max(challenge["level"].as_u64().unwrap_or(0));
            }
            Ok(top == 1)
        },
    )
    .await
    .unwrap();
    assert!(
        (level().await - 1.0).abs() < f64::EPSILON,
        "the gauge shows level 1"
    );
    let fell = wait::until(
        "the gauge falls back to level 0",
        Duration::from_secs(15),
        || async { Ok(level().await == 0.0) },
    )
    .await
    .unwrap();
    println!("captcha level gauge back to 0 after {fell:?} of quiet");
}
