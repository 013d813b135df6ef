//! The challenge's canonical form, its nonces, malformed tokens refused before their signature,
//! the leading-zero count and the solver.

use super::*;

#[test]
fn the_token_has_the_documented_canonical_form() {
    let c = issue(8, Some("k7 np3"));
    let parts: Vec<&str> = c.token.split('.').collect();
    assert_eq!(parts.len(), 9);
    assert_eq!(&parts[..2], ["v1", "42"]);
    assert_eq!(URL_SAFE_NO_PAD.decode(parts[2]).unwrap(), b"alice");
    assert_eq!(&parts[3..6], ["8", &(NOW + TTL).to_string(), "1"]);
    assert_eq!(parts[6].len(), 22);
    assert_eq!(parts[7], c.id);
    assert_eq!(c.token, resign(&parts[..8].join(".")));
    assert_eq!((c.difficulty, c.expires_at, c.image), (8, NOW + TTL, true));
    let plain = issue(8, None);
    assert_eq!(plain.token.split('.').nth(5), Some("0"));
    assert_eq!(plain.token.split('.').nth(6), Some("-"));
    assert!(!plain.image);
    assert_ne!(plain.id, issue(8, None).id, "ids are random");
    // The longest uid and the smallest sale still fit the bound.
    let uid = "é".repeat(64);
    let long = signer().issue(
        &uid,
        i64::MIN,
        &level(28, true),
        Some("ACEFHJ"),
        u64::MAX - 1,
        TTL,
    );
    assert!(long.token.len() <= MAX_TOKEN_BYTES, "{}", long.token.len());
    assert_eq!(long.expires_at, u64::MAX);
}

#[test]
fn nonces_are_one_to_twenty_digits() {
    // Difficulty 0: every well-formed nonce solves it, so only the format decides.
    let c = issue(0, None);
    let cases: &[(&str, Result<(), &str>)] = &[
        ("0", Ok(())),
        ("18446744073709551615", Ok(())),
        ("00000000000000000000", Ok(())),
        ("99999999999999999999", Ok(())),
        ("", Err("bad_solution")),
        ("123456789012345678901", Err("bad_solution")),
        ("abc", Err("bad_solution")),
        ("12a", Err("bad_solution")),
        ("-1", Err("bad_solution")),
        ("+1", Err("bad_solution")),
        (" 1", Err("bad_solution")),
        ("1 ", Err("bad_solution")),
        ("1.5", Err("bad_solution")),
        ("0x10", Err("bad_solution")),
        ("١٢", Err("bad_solution")),
        ("１２", Err("bad_solution")),
    ];
    for (nonce, expected) in cases {
        check(Try::new(&c.token, nonce), *expected);
    }
}

#[test]
fn malformed_tokens_are_refused_before_their_signature() {
    let c = issue(0, None);
    let f: Vec<&str> = c.token.split('.').collect();
    let body = |i: usize, v: &str| {
        let mut parts = f[..8].to_vec();
        parts[i] = v;
        parts.join(".")
    };
    let answer = "A".repeat(22);
    let cases = [
        String::new(),
        "v1".into(),
        "x".repeat(MAX_TOKEN_BYTES + 1),
        format!("{}.{}", c.token, "A".repeat(43)),
        f[1..].join("."),
        format!("{}.", f[..8].join(".")),
        format!("{}.{}", f[..8].join("."), "A".repeat(42)),
        format!("{}.{}", f[..8].join("."), "!".repeat(43)),
        // Well signed but not canonical.
        resign(&body(0, "v2")),
        resign(&body(1, "4x2")),
        resign(&body(1, "99999999999999999999")),
        resign(&body(2, "a+b/")),
        resign(&body(3, "256")),
        resign(&body(3, "1000")),
        resign(&body(4, "-1")),
        resign(&body(4, "99999999999999999999")),
        resign(&body(5, "2")),
        resign(&body(5, "1")),
        resign(&format!("{}.0.{answer}.{}", f[..5].join("."), f[7])),
        resign(&format!("{}.1.{}.{}", f[..5].join("."), &answer[1..], f[7])),
        resign(&body(7, "short")),
        resign(&body(7, "")),
        resign(&format!("{}.extra", f[..8].join("."))),
    ];
    for token in &cases {
        check(Try::new(token, "0"), Err("malformed"));
    }
    check(Try::new(&resign(&f[..8].join(".")), "0"), Ok(()));
}

#[test]
fn leading_zero_bits_and_the_solver() {
    let cases: &[(&[u8], u32)] = &[
        (&[], 0),
        (&[0xff], 0),
        (&[0x80], 0),
        (&[0x7f], 1),
        (&[0x0f], 4),
        (&[0x01], 7),
        (&[0x00], 8),
        (&[0x00, 0x01], 15),
        (&[0x00, 0x00, 0x80], 16),
        (&[0x00, 0x00, 0x00, 0x00], 32),
        (&[0x00, 0x40, 0x00], 9),
    ];
    for (hash, expected) in cases {
        assert_eq!(leading_zero_bits(hash), *expected, "{hash:?}");
    }
    assert_eq!(solve("anything", 0), "0");
    for difficulty in [1, 4, 8, 12] {
        let c = issue(difficulty, None);
        let nonce = solve(&c.token, difficulty);
        assert!(leading_zero_bits(&work(&c.token, &nonce)) >= u32::from(difficulty));
        check(Try::new(&c.token, &nonce), Ok(()));
    }
    let mut buf = [0u8; MAX_NONCE_DIGITS];
    for n in [0, 7, 10, 12_345, u64::MAX] {
        assert_eq!(decimal_digits(n, &mut buf), n.to_string().as_bytes());
    }
}
