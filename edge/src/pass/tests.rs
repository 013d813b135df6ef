//! Unit tests of pass tokens: a good token is bound to one user, one sale and a short life;
//! tampering, replaying elsewhere, other keys and other algorithms are refused by reason.

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

use super::*;

const NOW: u64 = 1_700_000_000;
const SECRET: &[u8] = b"test-captcha-secret-0123456789abcdef";
const EARNED: Earned = Earned {
    difficulty: 12,
    image: false,
};

fn tokens() -> PassTokens {
    PassTokens::new(SECRET, 60)
}

/// Verifies `token` for (`uid`, `sale`) at `at` and compares the refusal reason.
fn check(token: &str, uid: &str, sale: i64, at: u64, expected: Result<(), &str>) {
    let got = tokens().verify(token, uid, sale, at);
    assert_eq!(
        got.as_ref().map(|_| ()).map_err(PassError::reason),
        expected,
        "{token} for {uid}/{sale} at {at}: {got:?}"
    );
}

fn signed(alg: Algorithm, secret: &[u8], claims: &Value) -> String {
    jsonwebtoken::encode(&Header::new(alg), claims, &EncodingKey::from_secret(secret)).unwrap()
}

fn b64(text: &str) -> String {
    URL_SAFE_NO_PAD.encode(text)
}

fn claims(uid: &str, aud: &str, exp: u64) -> Value {
    json!({"sub": uid, "aud": aud, "jti": "AAAAAAAAAAAAAAAAAAAAAA", "exp": exp, "iat": NOW})
}

#[test]
fn a_good_token_verifies_with_its_jti_and_expiry() {
    let t = tokens();
    let token = t.issue("u1", 42, EARNED, NOW).unwrap();
    let claims = t.verify(&token, "u1", 42, NOW).unwrap();
    assert_eq!(claims.exp, NOW + 60);
    assert_eq!(claims.jti.len(), 22);
    assert!(URL_SAFE_NO_PAD
        .decode(&claims.jti)
        .is_ok_and(|b| b.len() == 16));
    let other = t
        .verify(&t.issue("u1", 42, EARNED, NOW).unwrap(), "u1", 42, NOW)
        .unwrap();
    assert_ne!(claims.jti, other.jti, "every token has its own jti");
}

#[test]
fn lifetime_is_capped_and_has_no_leeway() {
    let long = PassTokens::new(SECRET, 3600);
    let token = long.issue("u1", 1, EARNED, NOW).unwrap();
    assert_eq!(
        long.verify(&token, "u1", 1, NOW).unwrap().exp,
        NOW + MAX_TTL_SECONDS
    );

    let token = tokens().issue("u1", 1, EARNED, NOW).unwrap();
    check(&token, "u1", 1, NOW + 59, Ok(()));
    check(&token, "u1", 1, NOW + 60, Err("expired"));
    check(&token, "u1", 1, NOW + 3600, Err("expired"));
}

#[test]
fn binding_to_user_and_sale() {
    let token = tokens().issue("u1", 42, EARNED, NOW).unwrap();
    check(&token, "u1", 42, NOW, Ok(()));
    check(&token, "u2", 42, NOW, Err("wrong_user"));
    check(&token, "U1", 42, NOW, Err("wrong_user"));
    check(&token, "", 42, NOW, Err("wrong_user"));
    check(&token, "u1", 43, NOW, Err("wrong_sale"));
    check(&token, "u1", -42, NOW, Err("wrong_sale"));
    let negative = tokens().issue("u1", -7, EARNED, NOW).unwrap();
    check(&negative, "u1", -7, NOW, Ok(()));
}

#[test]
fn tampering_and_other_keys_are_refused() {
    let token = tokens().issue("u1", 42, EARNED, NOW).unwrap();
    let (head, rest) = token.split_once('.').unwrap();
    let (_, signature) = rest.split_once('.').unwrap();
    // Another user's claims under this token's signature.
    let spliced = format!(
        "{head}.{}.{signature}",
        b64(&claims("u2", "42", NOW + 60).to_string())
    );
    check(&spliced, "u2", 42, NOW, Err("bad_signature"));
    let flipped = format!("{}AA", &token[..token.len() - 2]);
    check(&flipped, "u1", 42, NOW, Err("bad_signature"));
    let other_key = signed(
        Algorithm::HS256,
        b"another-secret-0123456789abcdef!!",
        &claims("u1", "42", NOW + 60),
    );
    check(&other_key, "u1", 42, NOW, Err("bad_signature"));
    let good = signed(Algorithm::HS256, SECRET, &claims("u1", "42", NOW + 60));
    check(&good, "u1", 42, NOW, Ok(()));
}

#[test]
fn other_algorithms_and_none_are_refused() {
    let body = claims("u1", "42", NOW + 60);
    for alg in [Algorithm::HS384, Algorithm::HS512] {
        check(
            &signed(alg, SECRET, &body),
            "u1",
            42,
            NOW,
            Err("wrong_algorithm"),
        );
    }
    let real = tokens().issue("u1", 42, EARNED, NOW).unwrap();
    let real_signature = real.rsplit('.').next().unwrap();
    for header in [r#"{"alg":"none","typ":"JWT"}"#, r#"{"alg":"None"}"#] {
        for signature in ["", real_signature] {
            let forged = format!("{}.{}.{signature}", b64(header), b64(&body.to_string()));
            check(&forged, "u1", 42, NOW, Err("wrong_algorithm"));
        }
    }
}

#[test]
fn malformed_tokens_are_refused() {
    let cases = [
        String::new(),
        "garbage".into(),
        "a.b".into(),
        "a.b.c.d".into(),
        "!!.!!.!!".into(),
        "x".repeat(MAX_TOKEN_BYTES + 1),
        // Well signed, but not a pass token: a user JWT without aud or jti.
        signed(
            Algorithm::HS256,
            SECRET,
            &json!({"sub": "u1", "exp": NOW + 60}),
        ),
        signed(
            Algorithm::HS256,
            SECRET,
            &json!({"sub": "u1", "aud": "42", "exp": NOW + 60, "iat": NOW, "jti": "short"}),
        ),
        signed(
            Algorithm::HS256,
            SECRET,
            &json!({"sub": "u1", "aud": 42, "exp": NOW + 60, "iat": NOW, "jti": "AAAAAAAAAAAAAAAAAAAAAA"}),
        ),
    ];
    for token in &cases {
        check(token, "u1", 42, NOW, Err("malformed"));
    }
}

#[test]
fn a_spent_mark_lasts_as_long_as_the_token_plus_the_skew() {
    let check = |exp: u64, now: u64, expected: u64| {
        let claims = PassClaims {
            jti: "j".into(),
            exp,
            earned: EARNED,
        };
        assert_eq!(claims.spent_mark_ttl(now), expected, "exp {exp} at {now}");
    };
    let skew = SPENT_MARK_SKEW_SECONDS;
    check(NOW + 60, NOW, 60 + skew);
    check(NOW + 60, NOW + 59, 1 + skew);
    check(NOW + 60, NOW + 60, skew);
    check(NOW + 60, NOW + 600, skew);
    check(NOW + 100_000, NOW, MAX_TTL_SECONDS + skew);
    // Issued under a 120 s lifetime, verified under a 5 s one: the token's own exp counts.
    let issued = PassTokens::new(SECRET, 120)
        .issue("u1", 7, EARNED, NOW)
        .unwrap();
    let claims = PassTokens::new(SECRET, 5)
        .verify(&issued, "u1", 7, NOW + 10)
        .unwrap();
    assert_eq!(claims.spent_mark_ttl(NOW + 10), 110 + skew);
}

#[test]
fn a_pass_carries_its_level_inside_its_signature() {
    let level = |difficulty, image| Level {
        from_rate: 0,
        difficulty,
        image,
    };
    let t = tokens();
    let earned = Earned {
        difficulty: 16,
        image: false,
    };
    let token = t.issue("u1", 42, earned, NOW).unwrap();
    let verified = t.verify(&token, "u1", 42, NOW).unwrap();
    assert_eq!(verified.earned, earned);
    assert!(earned.meets(&level(12, false)));
    assert!(earned.meets(&level(16, false)));
    assert!(!earned.meets(&level(18, false)), "less work than asked now");
    assert!(
        !earned.meets(&level(16, true)),
        "no image where one is asked now"
    );
    let with_image = Earned {
        difficulty: 18,
        image: true,
    };
    assert!(with_image.meets(&level(18, true)) && with_image.meets(&level(12, false)));
    // Raising the level in the payload breaks the signature.
    let (head, rest) = token.split_once('.').unwrap();
    let (payload, sig) = rest.split_once('.').unwrap();
    let mut raised: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    raised["dif"] = json!(28);
    let forged = format!("{head}.{}.{sig}", b64(&raised.to_string()));
    check(&forged, "u1", 42, NOW, Err("bad_signature"));
    // A token without the claims was earned at no level: it meets none.
    let bare = signed(Algorithm::HS256, SECRET, &claims("u1", "42", NOW + 60));
    let bare = t.verify(&bare, "u1", 42, NOW).unwrap();
    assert!(!bare.earned.meets(&level(1, false)));
}

#[test]
fn a_previous_secret_verifies_what_it_signed_and_signs_nothing_new() {
    const OLD: &[u8] = b"the-old-captcha-secret-0123456789abcdef";
    let old = PassTokens::new(OLD, 60);
    let rotated = PassTokens::new(SECRET, 60).accepting(&[OLD]);
    let before = old.issue("u1", 42, EARNED, NOW).unwrap();
    let verified = rotated.verify(&before, "u1", 42, NOW).unwrap();
    assert_eq!(verified.earned, EARNED);
    assert_eq!(
        rotated.verify(&before, "u1", 42, NOW + 60),
        Err(PassError::Expired),
        "accepted until it expires, no longer"
    );
    assert_eq!(
        rotated.verify(&before, "u2", 42, NOW),
        Err(PassError::WrongUser),
        "still bound to its user"
    );
    let after = rotated.issue("u1", 42, EARNED, NOW).unwrap();
    assert!(tokens().verify(&after, "u1", 42, NOW).is_ok());
    assert_eq!(
        old.verify(&after, "u1", 42, NOW),
        Err(PassError::BadSignature),
        "new passes are signed with the current secret only"
    );
    assert_eq!(
        tokens().verify(&before, "u1", 42, NOW),
        Err(PassError::BadSignature),
        "dropped from previous_secrets, the old secret's passes are refused"
    );
    let other = signed(
        Algorithm::HS256,
        b"neither-secret-0123456789abcdefghij",
        &claims("u1", "42", NOW + 60),
    );
    assert_eq!(
        rotated.verify(&other, "u1", 42, NOW),
        Err(PassError::BadSignature)
    );
}

#[test]
fn every_refusal_has_the_code_the_metrics_name() {
    let codes: Vec<&str> = [
        PassError::Malformed,
        PassError::BadSignature,
        PassError::Expired,
        PassError::WrongUser,
        PassError::WrongSale,
        PassError::WrongAlgorithm,
        PassError::Sign("key".into()),
    ]
    .iter()
    .map(PassError::reason)
    .collect();
    assert_eq!(
        codes,
        [
            "malformed",
            "bad_signature",
            "expired",
            "wrong_user",
            "wrong_sale",
            "wrong_algorithm",
            "sign_failed"
        ]
    );
}
