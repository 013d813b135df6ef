//! Unit tests of user JWT verification: the happy path under each algorithm, and each known
//! attack (`alg: none`, key confusion, wrong key, tampering, missing claims) refused by reason.

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use jsonwebtoken::{Algorithm as Jwa, EncodingKey, Header};
use serde_json::{json, Value};

use super::*;

const NOW: u64 = 1_700_000_000;
const SECRET: &str = "test-user-jwt-secret-0123456789abcdef";

fn config(algorithm: Algorithm, key: &str) -> IdentityConfig {
    IdentityConfig {
        algorithm,
        key: Some(KeySource::Inline(key.to_string())),
        issuer: None,
        leeway_seconds: 5,
    }
}

fn verifier(algorithm: Algorithm, key: &str) -> Verifier {
    Verifier::from_config(&config(algorithm, key)).unwrap()
}

fn sign(alg: Jwa, key: &EncodingKey, claims: &Value) -> String {
    jsonwebtoken::encode(&Header::new(alg), claims, key).unwrap()
}

fn hs(alg: Jwa, secret: &[u8], claims: &Value) -> String {
    sign(alg, &EncodingKey::from_secret(secret), claims)
}

fn b64(text: &str) -> String {
    URL_SAFE_NO_PAD.encode(text)
}

/// A token put together by hand: any header, any claims, any signature.
fn forged(header: &str, claims: &Value, signature: &str) -> String {
    format!("{}.{}.{signature}", b64(header), b64(&claims.to_string()))
}

fn good() -> Value {
    json!({"sub": "u1", "exp": NOW + 60})
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// Verifies `header` at `NOW` and compares the uid or the refusal reason.
fn check(verifier: &Verifier, header: Option<&str>, expected: Result<&str, &str>) {
    let got = verifier.verify_at(header, NOW);
    let got = got.as_ref().map(Uid::as_str).map_err(IdentityError::reason);
    assert_eq!(got, expected, "header {header:?}");
}

fn check_token(verifier: &Verifier, token: &str, expected: Result<&str, &str>) {
    check(verifier, Some(&bearer(token)), expected);
}

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

#[test]
fn issuer_is_checked_when_configured() {
    let mut cfg = config(Algorithm::HS256, SECRET);
    cfg.issuer = Some("https://shop.example".into());
    let v = Verifier::from_config(&cfg).unwrap();
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
        let err = Verifier::from_config(&cfg).err().unwrap().to_string();
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
    neither.key = None;
    check(neither, "exactly one");
    let mut missing = config(Algorithm::HS256, SECRET);
    missing.key = Some(KeySource::File("/nonexistent/user-jwt.pem".into()));
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
        let mut cfg = config(algorithm, "");
        cfg.key = Some(KeySource::File(path.to_path_buf()));
        Verifier::from_config(&cfg).unwrap()
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
    let v = Verifier::from_config(&cfg).unwrap();
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

#[test]
fn verify_uses_the_system_clock() {
    let cfg = config(Algorithm::HS256, SECRET);
    let v = Verifier::from_config(&cfg).unwrap();
    let fresh = mint_dev_token(&cfg, "u1", 60, crate::clock::unix_now()).unwrap();
    assert_eq!(v.verify(Some(&bearer(&fresh))).unwrap().as_str(), "u1");
    let stale = mint_dev_token(&cfg, "u1", 60, crate::clock::unix_now() - 3600).unwrap();
    assert_eq!(v.verify(Some(&bearer(&stale))), Err(IdentityError::Expired));
}

fn rsa_private() -> EncodingKey {
    EncodingKey::from_rsa_pem(RSA_PRIVATE.as_bytes()).unwrap()
}

// Throwaway keys made for these tests with openssl (genrsa -traditional 2048, genpkey P-256
// and ED25519); they sign nothing else.

const RSA_PRIVATE: &str = "-----BEGIN RSA PRIVATE KEY-----
MIIEpAIBAAKCAQEAvsTv5XN9Httmxg/Igp5b7OPrjo5f0+uiReBCVyzx87IB3HIW
leOydBWasu26hIY07xreRKRENjlyD+uHUJbcUtj3Vt53TjdCvcM4O5GTF2JA0a5Q
V0KCd3+m1004P5G4yih7rI5DGF7wuoWroanwhZ4OOZTbQ0jccpV/DeliVT7YuLVs
qz1SkIAiUa/8kN4/0hQmfHkCLmQvYwmNKVSzhJMZmUCq4CSaAgCw7vL/MXW/FU3e
HjPIe8MsoH1G9mko0d7qCr9aecvfcCQ9o1OMvUGa9vnvb6ec5gcN7dw6PzMrC0t2
FgqS8StNKF/tnMXL2f2npY6ZeM8QzfUfc/bwPQIDAQABAoIBAAGp3vutv6QSvrkw
bwuwjNWqgSXbmPtUnTQlyf5PnoaFAV4mQospEqfPfmtcBlncf76sCc8obY3Zf2Sj
Jaluv1obmUCRLRIqCjN0bdubH+C+0xjg/8NbCZ84JkDPZBOt1iIxKy7siKpAPbIq
sz30KOxJXg9jfGwASSfYpOR+qgRbRZWC2m4O86mJJ24KZynXAxnBVsExGtOAUjKE
P2Fp46z934Gk8/1skPHcGlE9lbKhu6iNcxvK5uGRRAJieZPb6lfT8rwhYHiXnyRH
epyimhmEeJqa9pbAcJclsoq8e6lkZYbZISns8Qi+8uIKvXzGDmiY3vaGwVguPh6q
EC4UQ3ECgYEA6NGejMrwAim1HEQ9LyZCxLM+r4SUnwA24ACTfMjC7zTAm3v1P6fO
Pwb9rP/EGOerlcUxVog855If3OlHGCMWKiQUareNoyIgik1Fr352QQ8fc7JitGN/
K8karVKiZeQ7FR3etWDPClv7ORtBRfUG5+0inw3VhvxK/mTgv5LRRHUCgYEA0cOB
gvel6HvtwTS36xiOEbvdhfXweU5c7VuK8IBApiD9fwCk8o3eltBvj/yqVfQKFl8R
tPGQcg9sZ2OtWlm15mGCkv/Tmj1sSqdoH3NiAX3ynfBY4SNwLwCS7YOymJxXwg1h
/yvj+oAkX8IIsUekYUfjEdJOS6DCpkYO2FAJ46kCgYBsUKms4vVKbFEAN5cnimth
y+qMCeiDGLxu9pWnZleapjY9oCv3U4CWvg/jHpMC6zVe1oEfuv5q1gbQ5g7XYet7
65E8HO1eShBNh6m1/eXSWtDNKN7XAbs2ibdJj7pSIR6DsoPcao+oSCbW6KEzhM2T
tTV4Ph1rUZEqTZBqUEnfyQKBgQCES06CQBhF8Os5QDuCrWDktFx5IWyBxTd8h5Cw
L+MWI5ZdJBXj2C/7ZAgIgq0XOqumAl2Thgq4tRuEdWweoJfFbdhBR9G35GdJCh30
P/wevsVmcPBNReF58123KKlZ8Li0bWZR3eeR1IGcVy7OSEXXCNSgJ8gzkHdTELpK
GOizyQKBgQCsmZClF6BinnPUIx/diUXwy2jfc41ueZbADTpYL1c12Q8LF6dcO90E
WYjVcYDNXl/W6JMAbfxnGX8lAHNb7gssZrKrQ8SC53LhqiLDxWcy4xAQCx652FKD
KN0ZyXkSrY0Gty9YapnssxdohTrHidCAmC15cX2W/COxpOjhEXZ13w==
-----END RSA PRIVATE KEY-----
";

const RSA_PUBLIC: &str = "-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAvsTv5XN9Httmxg/Igp5b
7OPrjo5f0+uiReBCVyzx87IB3HIWleOydBWasu26hIY07xreRKRENjlyD+uHUJbc
Utj3Vt53TjdCvcM4O5GTF2JA0a5QV0KCd3+m1004P5G4yih7rI5DGF7wuoWroanw
hZ4OOZTbQ0jccpV/DeliVT7YuLVsqz1SkIAiUa/8kN4/0hQmfHkCLmQvYwmNKVSz
hJMZmUCq4CSaAgCw7vL/MXW/FU3eHjPIe8MsoH1G9mko0d7qCr9aecvfcCQ9o1OM
vUGa9vnvb6ec5gcN7dw6PzMrC0t2FgqS8StNKF/tnMXL2f2npY6ZeM8QzfUfc/bw
PQIDAQAB
-----END PUBLIC KEY-----
";

const EC_PRIVATE: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQghI7Z0w260kd0RwTo
mjMNL/mxeFc1mQYM/5+djSo/lgyhRANCAASO6ZNpaBQJ8kgGZwVrvaZq5Bx5itfB
gn/jxcuerPpsTvwLv5QBs7CXHTYC7cT9/c5CGxDm/zWRteLajpuXxND/
-----END PRIVATE KEY-----
";

const EC_PUBLIC: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEjumTaWgUCfJIBmcFa72mauQceYrX
wYJ/48XLnqz6bE78C7+UAbOwlx02Au3E/f3OQhsQ5v81kbXi2o6bl8TQ/w==
-----END PUBLIC KEY-----
";

const ED_PRIVATE: &str = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIHuxExkuhVelnL0Aa3j9DP2Wkj8E0p7GeKCbgvGsGUj7
-----END PRIVATE KEY-----
";

const ED_PUBLIC: &str = "-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEAeMJfRm4m6AWd+XqV/oD0KOfNzy7rayhb0ZTYo3a17ZM=
-----END PUBLIC KEY-----
";
