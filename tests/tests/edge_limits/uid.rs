//! The per-UID GCRA and its pass-token spending in one EVALSHA, on two limiters sharing one
//! Redis: the burst, a limited attempt keeping its token, the dry run, the cost.

use super::*;

#[tokio::test(flavor = "multi_thread")]
async fn uid_burst_is_admitted_then_limited_by_the_same_limit_on_two_edges() {
    let redis = RedisServer::start().await.unwrap();
    let edges = [uid_limiter(&redis).await, uid_limiter(&redis).await];
    // One request per 10 s, five at once: the test's own pace cannot refill it.
    let rate = rate(0.1, 5, false);

    let mut seen = Vec::new();
    for n in 0..5 {
        let edge = &edges[n % 2];
        let admission = edge
            .admit(SALE, "alice", &format!("a{n}"), &rate, PASS_TTL)
            .await;
        seen.push(remaining(admission.unwrap()));
    }
    assert_eq!(
        seen,
        [Ok(4), Ok(3), Ok(2), Ok(1), Ok(0)],
        "burst over two edges"
    );

    for (n, edge) in edges.iter().enumerate() {
        let jti = format!("over{n}");
        let admission = edge
            .admit(SALE, "alice", &jti, &rate, PASS_TTL)
            .await
            .unwrap();
        let Admission::Limited { retry_after, quota } = admission else {
            panic!("the 6th request of the burst must be limited on edge {n}");
        };
        assert!(
            retry_after > Duration::from_secs(8) && retry_after <= Duration::from_secs(10),
            "retry_after {retry_after:?} should be about one interval (10 s)"
        );
        assert_eq!((quota.limit, quota.remaining), (5, 0));
        assert!(quota.reset >= Duration::from_secs(40), "{quota:?}");
    }

    let other = edges[1]
        .admit(SALE, "bob", "b0", &rate, PASS_TTL)
        .await
        .unwrap();
    assert_eq!(remaining(other), Ok(4), "another uid is unaffected");
}

#[tokio::test(flavor = "multi_thread")]
async fn uid_limited_attempt_keeps_its_token_and_a_replay_is_refused() {
    let redis = RedisServer::start().await.unwrap();
    let edge = uid_limiter(&redis).await;
    let strict = rate(0.1, 1, false);
    let mut conn = redis.connection().await.unwrap();

    let first = edge
        .admit(SALE, "carol", "t1", &strict, PASS_TTL)
        .await
        .unwrap();
    assert_eq!(remaining(first), Ok(0));
    let ttl: i64 = conn
        .ttl(UserKeys::new(SALE, "carol").spent("t1"))
        .await
        .unwrap();
    assert!(
        ttl > 0 && ttl <= 60,
        "spent token remembered for the pass TTL, got {ttl}"
    );

    let replay = edge
        .admit(SALE, "carol", "t1", &strict, PASS_TTL)
        .await
        .unwrap();
    assert_eq!(replay, Admission::Replayed, "a spent token is a replay");

    let limited = edge
        .admit(SALE, "carol", "t2", &strict, PASS_TTL)
        .await
        .unwrap();
    assert!(matches!(limited, Admission::Limited { .. }), "{limited:?}");
    let spent: bool = conn
        .exists(UserKeys::new(SALE, "carol").spent("t2"))
        .await
        .unwrap();
    assert!(!spent, "a limited attempt must not spend its token");

    // The same token passes once the limit allows it (here: a looser limit).
    let looser = rate(0.1, 3, false);
    let later = edge
        .admit(SALE, "carol", "t2", &looser, PASS_TTL)
        .await
        .unwrap();
    assert_eq!(remaining(later), Ok(1));
}

#[tokio::test(flavor = "multi_thread")]
async fn uid_dry_run_admits_and_spends_but_does_not_advance_the_limit() {
    let redis = RedisServer::start().await.unwrap();
    let edge = uid_limiter(&redis).await;
    let mut conn = redis.connection().await.unwrap();
    let dry = rate(0.1, 1, true);

    assert_eq!(
        remaining(
            edge.admit(SALE, "dave", "d1", &dry, PASS_TTL)
                .await
                .unwrap()
        ),
        Ok(0)
    );
    for jti in ["d2", "d3", "d4"] {
        let would = edge.admit(SALE, "dave", jti, &dry, PASS_TTL).await.unwrap();
        assert!(matches!(would, Admission::WouldLimit { .. }), "{would:?}");
        assert!(would.passes());
        let spent: bool = conn
            .exists(UserKeys::new(SALE, "dave").spent(jti))
            .await
            .unwrap();
        assert!(spent, "a dry run spends the token of what it lets through");
    }
    let enforced = rate(0.1, 1, false);
    let admission = edge
        .admit(SALE, "dave", "d5", &enforced, PASS_TTL)
        .await
        .unwrap();
    let Admission::Limited { retry_after, .. } = admission else {
        panic!("over the limit once enforced");
    };
    assert!(
        retry_after <= Duration::from_secs(10),
        "dry-run refusals must not push the limit further ({retry_after:?})"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn uid_admit_costs_one_evalsha() {
    let redis = RedisServer::start().await.unwrap();
    let edge = uid_limiter(&redis).await;
    redis.reset_stats().await.unwrap();

    let rate = rate(0.1, 3, false);
    let mut outcomes = Vec::new();
    for n in 0..10 {
        // Admitted, admitted, admitted, then limited; every other one a replay of the first.
        let jti = if n % 2 == 1 {
            "e0".to_string()
        } else {
            format!("e{n}")
        };
        outcomes.push(
            edge.admit(SALE, "erin", &jti, &rate, PASS_TTL)
                .await
                .unwrap(),
        );
    }
    assert!(outcomes.contains(&Admission::Replayed));
    assert!(outcomes
        .iter()
        .any(|o| matches!(o, Admission::Limited { .. })));

    let stats = redis.command_stats().await.unwrap();
    assert_eq!(
        stats.get("evalsha"),
        Some(&10),
        "one EVALSHA per admit: {stats:?}"
    );
    for absent in ["eval", "script|load"] {
        assert!(
            !stats.contains_key(absent),
            "{absent} after preload: {stats:?}"
        );
    }
}
