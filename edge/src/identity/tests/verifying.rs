//! What verifies: HS256 and the asymmetric algorithms with their own tokens, the issuer when
//! configured, a bad config refused by name, a key file, dev tokens, the system clock.

use super::*;

#[test]
fn hs256_accepts_good_tokens_and_refuses_bad_headers() {
    let v = verifier(Algorithm::HS256, SECRET);
    let token = hs(Jwa::HS256, SECRET.as_bytes(), &good());
    check(&v, Some(&bearer(&token)), Ok("u1"));
    check(&v, Some(&format!("bearer  {token} ")), Ok("u1"));
    check(&v, None, Err("missing_token"));
    check(&v, Some(""), Err("missing_token"));
    check(&v, Some("  "), Err("missing_token"));
    check(&v, Some(&format!("Basic {token}")), Err("malformed_token"));
    check(&v, Some(&token), Err("malformed_token"));
    check(&v, Some("Bearer"), Err("malformed_token"));
    check(&v, Some("Bearer a.b"), Err("malformed_token"));
    check(&v, Some("Bearer a.b.c.d"), Err("malformed_token"));
    check(&v, Some("Bearer !!.!!.!!"), Err("malformed_token"));
    check(
        &v,
        Some(&format!("Bearer {token} x")),
        Err("malformed_token"),
    );
    let huge = "a".repeat(MAX_TOKEN_BYTES + 1);
    check(&v, Some(&bearer(&huge)), Err("malformed_token"));
}

#[test]
fn issuer_is_checked_when_configured() {
    let mut cfg = config(Algorithm::HS256, SECRET);
    cfg.issuer = Some("https://shop.example".into());
    let v = build(&cfg).unwrap();
    let cases: &[(Value, Result<&str, &str>)] = &[
        (
            json!({"sub": "u1", "exp": NOW + 60, "iss": "https://shop.example"}),
            Ok("u1"),
        ),
        (
            json!({"sub": "u1", "exp": NOW + 60, "iss": "https://evil.example"}),
            Err("wrong_issuer"),
        ),
        (json!({"sub": "u1", "exp": NOW + 60}), Err("missing_claim")),
    ];
    for (claims, expected) in cases {
        check_token(&v, &hs(Jwa::HS256, SECRET.as_bytes(), claims), *expected);
    }
}

#[test]
fn asymmetric_algorithms_verify_their_own_tokens_only() {
    let rsa = verifier(Algorithm::RS256, RSA_PUBLIC);
    let ec = verifier(Algorithm::ES256, EC_PUBLIC);
    let ed = verifier(Algorithm::EdDSA, ED_PUBLIC);
    let rs256 = sign(Jwa::RS256, &rsa_private(), &good());
    let ps256 = sign(Jwa::PS256, &rsa_private(), &good());
    let es256 = sign(
        Jwa::ES256,
        &EncodingKey::from_ec_pem(EC_PRIVATE.as_bytes()).unwrap(),
        &good(),
    );
    let eddsa = sign(
        Jwa::EdDSA,
        &EncodingKey::from_ed_pem(ED_PRIVATE.as_bytes()).unwrap(),
        &good(),
    );
    check_token(&rsa, &rs256, Ok("u1"));
    check_token(&rsa, &ps256, Err("wrong_algorithm"));
    check_token(&rsa, &es256, Err("wrong_algorithm"));
    check_token(&ec, &es256, Ok("u1"));
    check_token(&ec, &eddsa, Err("wrong_algorithm"));
    check_token(&ed, &eddsa, Ok("u1"));
    check_token(&ed, &rs256, Err("wrong_algorithm"));
    let expired = sign(
        Jwa::EdDSA,
        &EncodingKey::from_ed_pem(ED_PRIVATE.as_bytes()).unwrap(),
        &json!({"sub": "u1", "exp": NOW - 60}),
    );
    check_token(&ed, &expired, Err("expired"));
    for (v, token) in [(&rsa, &rs256), (&ec, &es256), (&ed, &eddsa)] {
        let (head, rest) = token.split_once('.').unwrap();
        let signature = rest.split_once('.').unwrap().1;
        let admin = json!({"sub": "admin", "exp": NOW + 60});
        let spliced = format!("{head}.{}.{signature}", b64(&admin.to_string()));
        check_token(v, &spliced, Err("bad_signature"));
    }
}

#[test]
fn bad_config_is_refused_by_name() {
    let check = |cfg: IdentityConfig, expected: &str| {
        let err = build(&cfg).err().unwrap().to_string();
        assert!(err.contains(expected), "{err} should contain {expected}");
    };
    check(config(Algorithm::HS256, "short"), "at least 32 bytes");
    check(
        config(Algorithm::RS256, "not a pem"),
        "not a PEM public key for RS256",
    );
    check(
        config(Algorithm::ES256, RSA_PUBLIC),
        "not a PEM public key for ES256",
    );
    // Both `key` and `key_file` cannot be held by the type: the file is refused as it is read
    // (config::tests).
    let mut neither = config(Algorithm::HS256, SECRET);
    neither.keys = None;
    check(neither, "exactly one");
    let missing = with_key(
        Algorithm::HS256,
        KeySource::File("/nonexistent/user-jwt.pem".into()),
    );
    check(missing, "identity.key_file /nonexistent/user-jwt.pem");
}

#[test]
fn key_file_is_read_without_its_trailing_newline() {
    let dir = std::env::temp_dir().join(format!("edge-identity-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let secret_file = dir.join("secret");
    std::fs::write(&secret_file, format!("{SECRET}\n")).unwrap();
    let pem_file = dir.join("rsa.pem");
    std::fs::write(&pem_file, RSA_PUBLIC).unwrap();
    let from_file = |algorithm, path: &std::path::Path| {
        build(&with_key(algorithm, KeySource::File(path.to_path_buf()))).unwrap()
    };
    let hs256 = from_file(Algorithm::HS256, &secret_file);
    let rs256 = from_file(Algorithm::RS256, &pem_file);
    std::fs::remove_dir_all(&dir).unwrap();
    check_token(
        &hs256,
        &hs(Jwa::HS256, SECRET.as_bytes(), &good()),
        Ok("u1"),
    );
    check_token(&rs256, &sign(Jwa::RS256, &rsa_private(), &good()), Ok("u1"));
}

#[test]
fn dev_tokens_round_trip_under_hs256_only() {
    let mut cfg = config(Algorithm::HS256, SECRET);
    cfg.issuer = Some("dev".into());
    let v = build(&cfg).unwrap();
    let token = mint_dev_token(&cfg, "alice", 60, NOW).unwrap();
    check_token(&v, &token, Ok("alice"));
    assert_eq!(
        v.verify_at(Some(&bearer(&token)), NOW + 65),
        Err(IdentityError::Expired)
    );
    let claims: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(token.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        claims,
        json!({"sub": "alice", "iat": NOW, "exp": NOW + 60, "iss": "dev"})
    );

    for uid in ["", "a\tb", &"x".repeat(MAX_UID_BYTES + 1)] {
        assert!(matches!(
            mint_dev_token(&cfg, uid, 60, NOW),
            Err(IdentityConfigError::DevTokenUid)
        ));
    }
    let err = mint_dev_token(&config(Algorithm::RS256, RSA_PUBLIC), "alice", 60, NOW)
        .err()
        .unwrap();
    assert!(err.to_string().contains("dev tokens need"), "{err}");
}

#[tokio::test]
async fn a_request_is_verified_by_the_system_clock() {
    let cfg = config(Algorithm::HS256, SECRET);
    let v = build(&cfg).unwrap();
    let now = crate::clock::unix_now();
    let user = |token: String| {
        let mut headers = HeaderMap::new();
        headers.insert("authorization", bearer(&token).parse().unwrap());
        headers
    };
    let fresh = mint_dev_token(&cfg, "u1", 60, now).unwrap();
    let got = v.user(&user(fresh), &Method::POST).await.unwrap();
    assert_eq!((got.uid.as_str(), got.via), ("u1", Via::Header));
    assert!((now + 59..=now + 61).contains(&got.expires_at), "{got:?}");
    let stale = mint_dev_token(&cfg, "u1", 60, now - 3600).unwrap();
    assert_eq!(
        v.user(&user(stale), &Method::POST).await,
        Err(IdentityError::Expired)
    );
}
