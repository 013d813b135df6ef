//! The strength check against the shipped placeholders, made-up values and real random ones.

use base64::Engine;
use rand::RngCore;

use super::*;

fn check_weak(value: &str, expected: Weakness) {
    assert_eq!(weakness(value), Some(expected), "{value:?}");
}

#[test]
fn the_shipped_placeholders_and_made_up_values_are_weak() {
    let placeholder = |marker| Weakness::Placeholder { marker };
    check_weak("", Weakness::Unset);
    // What deploy/edge.toml used to ship, and what the tests' edges use.
    check_weak(
        "dev-only-user-jwt-secret-change-me-0123456789",
        placeholder("change-me"),
    );
    check_weak(
        "dev-only-captcha-secret-change-me-0123456789",
        placeholder("change-me"),
    );
    check_weak(
        "test-user-jwt-secret-0123456789-abcdefghij",
        placeholder("secret"),
    );
    check_weak(
        "0123456789abcdef0123456789abcdef",
        placeholder("0123456789"),
    );
    check_weak(
        "CHANGEME-kwXa7qdT53uYkzE5dFshI7OzT9hk",
        placeholder("changeme"),
    );
    check_weak(
        "my-Password-is-long-enough-for-you!!",
        placeholder("password"),
    );
    check_weak("kwXa7qdT53uYkzE5dFshI7", Weakness::TooShort { bytes: 22 });
    check_weak(
        "correct horse battery staple and friends",
        Weakness::Whitespace,
    );
    check_weak("KLMNOPQRSTUVWXYZklmnopqrstuvwxyz1234", Weakness::Sequential);
    check_weak(&"a".repeat(64), Weakness::Sequential);
    assert!(
        matches!(
            weakness(&"Xk9#".repeat(16)),
            Some(Weakness::LowEntropy { bits }) if bits < 140.0
        ),
        "a repeated short value"
    );
    assert!(
        matches!(
            weakness("18b9e457efc5348e390b04bed1172b58"),
            Some(Weakness::LowEntropy { .. })
        ),
        "16 random bytes as hex"
    );
}

#[test]
fn random_secrets_of_32_bytes_and_more_are_strong() {
    let mut rng = rand::rng();
    for _ in 0..2000 {
        let mut bytes = [0u8; 48];
        rng.fill_bytes(&mut bytes);
        let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
        assert_eq!(weakness(&b64), None, "openssl rand -base64 48: {b64}");
        // ./deploy/up's: base64 without / + =.
        let stripped: String = b64.chars().filter(|c| c.is_ascii_alphanumeric()).collect();
        assert_eq!(weakness(&stripped), None, "deploy/up: {stripped}");
        let hex: String = bytes[..32].iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(weakness(&hex), None, "openssl rand -hex 32: {hex}");
        let b64_32 = base64::engine::general_purpose::STANDARD.encode(&bytes[..32]);
        assert_eq!(weakness(&b64_32), None, "openssl rand -base64 32: {b64_32}");
    }
}

#[test]
fn dev_mode_turns_a_weak_secret_from_a_problem_into_nothing_for_validate() {
    let problems = |value: &str, dev_mode: bool| {
        let mut problems = crate::config::Problems::default();
        check(&mut problems, "captcha.secret", value, dev_mode);
        problems.into_vec()
    };
    let weak = "dev-only-change-me-0123456789-xxxxxxx";
    assert!(problems(weak, true).is_empty());
    let refused = problems(weak, false);
    assert_eq!(refused.len(), 1);
    assert!(refused[0].starts_with("captcha.secret: "), "{refused:?}");
    let strong = "kwXa7qdT53uYkzE5dFshI7OzT9hkie2aN06jd83EjIYc0/IwimVmdKTLSXyC1SE+";
    assert!(
        problems(strong, false).is_empty(),
        "a strong secret is no problem"
    );
}
