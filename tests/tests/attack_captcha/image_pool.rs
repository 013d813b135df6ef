//! Finding 2: the image pool cannot be downloaded ahead, and an image serves a bounded number of
//! challenges.

use super::*;

#[tokio::test(flavor = "multi_thread")]
async fn finding_2_the_image_pool_cannot_be_downloaded_ahead() {
    let world = World::start(EdgeOptions {
        levels: vec![(0, 4, true)],
        ..EdgeOptions::default()
    })
    .await;
    let sale = world.sale(5, Duration::ZERO).await;
    let (alice, bob) = (shopper::jwt("alice").unwrap(), shopper::jwt("bob").unwrap());

    // The review's walk: every slot by a global counter, with and without a token.
    for slot in 0..64u64 {
        for path in [
            format!("/api/captcha/image/{slot}/{}", slot + 1),
            format!("/api/captcha/audio/{slot}/{}", slot + 1),
            format!("/api/captcha/image/{slot}"),
        ] {
            for jwt in [None, Some(alice.as_str())] {
                let (status, _) = world.fetch(&path, jwt).await;
                assert_ne!(status, 200, "{path} with {jwt:?}");
            }
        }
    }

    // The holder of a challenge gets its picture and audio, with their own token only.
    wait::until("a drawn image", Duration::from_secs(10), || async {
        Ok(world.challenge(&alice, sale, "10.0.0.1").await.0 == 200)
    })
    .await
    .unwrap();
    let (_, _, body) = world.challenge(&alice, sale, "10.0.0.1").await;
    let image = body["image"].clone();
    let (png, wav) = (
        image["png"].as_str().unwrap(),
        image["audio"].as_str().unwrap(),
    );
    assert_eq!(
        world.fetch(png, Some(&alice)).await,
        (200, "image/png".into())
    );
    assert_eq!(
        world.fetch(wav, Some(&alice)).await,
        (200, "audio/wav".into())
    );
    assert_eq!(world.fetch(png, None).await.0, 401, "no token, no image");
    assert_eq!(world.fetch(wav, None).await.0, 401);
    assert_eq!(
        world.fetch(png, Some(&bob)).await.0,
        404,
        "another user's token"
    );
    assert_eq!(world.fetch(wav, Some(&bob)).await.0, 404);

    // Walking slots and draws from a real handle: the MAC covers them.
    let handle = png.rsplit('/').next().unwrap();
    let fields: Vec<&str> = handle.split('.').collect();
    let (slot, draw): (usize, u64) = (
        fields[0].parse().unwrap(),
        u64::from_str_radix(fields[1], 16).unwrap(),
    );
    for other in 0..64usize {
        let walked = format!("{other}.{}.{}.{}", fields[1], fields[2], fields[3]);
        if other != slot {
            assert_eq!(
                world
                    .fetch(&format!("/api/captcha/image/{walked}"), Some(&alice))
                    .await
                    .0,
                404
            );
        }
        let next = format!(
            "{slot}.{:016x}.{}.{}",
            draw.wrapping_add(other as u64 + 1),
            fields[2],
            fields[3]
        );
        assert_eq!(
            world
                .fetch(&format!("/api/captcha/image/{next}"), Some(&alice))
                .await
                .0,
            404
        );
    }
    // A handle signed with the edges' own secret, for the right image, but expired.
    let signer = PowSigner::new(CAPTCHA_SECRET.as_bytes());
    let at = ImageRef { slot, draw };
    let expired = signer.image_handle("alice", at, now_unix() - 1);
    assert_eq!(
        world
            .fetch(&format!("/api/captcha/image/{expired}"), Some(&alice))
            .await
            .0,
        404
    );
    let fresh = signer.image_handle("alice", at, now_unix() + 60);
    assert_eq!(
        world
            .fetch(&format!("/api/captcha/image/{fresh}"), Some(&alice))
            .await
            .0,
        200,
        "the same image under a live handle: the expiry alone refused it"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn finding_2_an_image_serves_a_bounded_number_of_challenges() {
    let world = World::start(EdgeOptions {
        levels: vec![(0, 4, true)],
        image_serves: 2,
        ..EdgeOptions::default()
    })
    .await;
    let sale = world.sale(5, Duration::ZERO).await;
    let users: Vec<String> = (0..100)
        .map(|i| shopper::jwt(&format!("harvester-{i}")).unwrap())
        .collect();
    let mut served: std::collections::HashMap<String, usize> = Default::default();
    let mut busy = 0;
    // A harvest in waves, while the pool draws: each image is handed to two challenges at most,
    // and a challenge finding every image worn is told to come back (503), never given one.
    for wave in 0..5 {
        let ip = format!("10.7.{wave}.1");
        let answers = join_all(users.iter().map(|jwt| world.challenge(jwt, sale, &ip))).await;
        for (status, headers, body) in answers {
            match status {
                200 => {
                    let png = body["image"]["png"].as_str().unwrap();
                    let handle = png.rsplit('/').next().unwrap();
                    let image: Vec<&str> = handle.split('.').take(2).collect();
                    *served.entry(image.join(".")).or_default() += 1;
                }
                503 => {
                    assert_eq!(body["error"], "captcha_busy", "{body}");
                    assert_eq!(headers["retry-after"], "1");
                    busy += 1;
                }
                other => panic!("{other}: {body}"),
            }
        }
    }
    assert!(!served.is_empty() && busy > 0, "{served:?}, {busy} busy");
    assert!(served.values().all(|&n| n <= 2), "{served:?}");
}
