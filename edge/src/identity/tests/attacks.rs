//! Attacks on the user JWT, each refused by reason: `alg: none`, other algorithms, key
//! confusion, a wrong key and tampering, missing or wrong claims.

use super::*;

#[test]
fn alg_none_is_refused() {
    let v = verifier(Algorithm::HS256, SECRET);
    let real = hs(Jwa::HS256, SECRET.as_bytes(), &good());
    let real_signature = real.rsplit('.').next().unwrap();
    for header in [
        r#"{"alg":"none","typ":"JWT"}"#,
        r#"{"alg":"None"}"#,
        r#"{"alg":"NONE"}"#,
        r#"{"alg":"nOnE"}"#,
    ] {
        check_token(&v, &forged(header, &good(), ""), Err("wrong_algorithm"));
        check_token(
            &v,
            &forged(header, &good(), real_signature),
            Err("wrong_algorithm"),
        );
    }
    check_token(&v, &forged("{}", &good(), ""), Err("malformed_token"));
    check_token(&v, &forged("[1]", &good(), ""), Err("malformed_token"));
}

#[test]
fn other_algorithms_are_refused() {
    let v = verifier(Algorithm::HS256, SECRET);
    for alg in [Jwa::HS384, Jwa::HS512] {
        check_token(
            &v,
            &hs(alg, SECRET.as_bytes(), &good()),
            Err("wrong_algorithm"),
        );
    }
    let rs = sign(Jwa::RS256, &rsa_private(), &good());
    check_token(&v, &rs, Err("wrong_algorithm"));
}

#[test]
fn key_confusion_with_the_public_key_as_hmac_secret_is_refused() {
    for (algorithm, public) in [
        (Algorithm::RS256, RSA_PUBLIC),
        (Algorithm::ES256, EC_PUBLIC),
        (Algorithm::EdDSA, ED_PUBLIC),
    ] {
        let v = verifier(algorithm, public);
        let confused = hs(Jwa::HS256, public.as_bytes(), &good());
        check_token(&v, &confused, Err("wrong_algorithm"));
        let trimmed = hs(Jwa::HS256, public.trim().as_bytes(), &good());
        check_token(&v, &trimmed, Err("wrong_algorithm"));
    }
}

#[test]
fn wrong_key_and_tampering_are_refused() {
    let v = verifier(Algorithm::HS256, SECRET);
    let other = hs(Jwa::HS256, b"another-secret-of-32-bytes-or-more!!", &good());
    check_token(&v, &other, Err("bad_signature"));

    // Payload of one token, signature of another.
    let mine = hs(Jwa::HS256, SECRET.as_bytes(), &good());
    let admin = json!({"sub": "admin", "exp": NOW + 60});
    let (head, rest) = mine.split_once('.').unwrap();
    let signature = rest.split_once('.').unwrap().1;
    let spliced = format!("{head}.{}.{signature}", b64(&admin.to_string()));
    check_token(&v, &spliced, Err("bad_signature"));
    check_token(&v, &format!("{mine}A"), Err("bad_signature"));
    let flipped = format!("{}{}", &mine[..mine.len() - 2], "AA");
    check_token(&v, &flipped, Err("bad_signature"));
}

#[test]
fn claims_are_required_and_checked() {
    let v = verifier(Algorithm::HS256, SECRET);
    let cases: &[(Value, Result<&str, &str>)] = &[
        (json!({"sub": "u1", "exp": NOW + 1}), Ok("u1")),
        // Leeway of 5 s on exp.
        (json!({"sub": "u1", "exp": NOW - 4}), Ok("u1")),
        (json!({"sub": "u1", "exp": NOW - 5}), Err("expired")),
        (json!({"sub": "u1", "exp": NOW - 3600}), Err("expired")),
        (json!({"sub": "u1", "exp": 0}), Err("expired")),
        // Not a NumericDate the library accepts: as good as absent.
        (json!({"sub": "u1", "exp": -1}), Err("missing_claim")),
        (json!({"sub": "u1"}), Err("missing_claim")),
        (json!({"exp": NOW + 60}), Err("missing_claim")),
        (json!({}), Err("missing_claim")),
        (json!({"sub": "u1", "exp": "soon"}), Err("malformed_token")),
        (json!({"sub": 7, "exp": NOW + 60}), Err("malformed_token")),
        (json!({"sub": "", "exp": NOW + 60}), Err("invalid_subject")),
        (
            json!({"sub": "a\nb", "exp": NOW + 60}),
            Err("invalid_subject"),
        ),
        (
            json!({"sub": "a\u{7f}", "exp": NOW + 60}),
            Err("invalid_subject"),
        ),
        (
            json!({"sub": "x".repeat(MAX_UID_BYTES + 1), "exp": NOW + 60}),
            Err("invalid_subject"),
        ),
        (
            json!({"sub": "u1", "exp": NOW + 60, "nbf": NOW + 60}),
            Err("not_yet_valid"),
        ),
        (
            json!({"sub": "u1", "exp": NOW + 60, "nbf": NOW + 4}),
            Ok("u1"),
        ),
        // No audience check on user tokens.
        (
            json!({"sub": "u1", "exp": NOW + 60, "aud": "shop"}),
            Ok("u1"),
        ),
        (
            json!({"sub": "u1", "exp": NOW + 60, "iss": "any"}),
            Ok("u1"),
        ),
    ];
    for (claims, expected) in cases {
        let token = hs(Jwa::HS256, SECRET.as_bytes(), claims);
        check_token(&v, &token, *expected);
    }
    let longest = "é".repeat(MAX_UID_BYTES / 2);
    let token = hs(
        Jwa::HS256,
        SECRET.as_bytes(),
        &json!({"sub": longest, "exp": NOW + 60}),
    );
    check_token(&v, &token, Ok(&longest));
}
