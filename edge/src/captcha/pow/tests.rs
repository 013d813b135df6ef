//! Unit tests of proof-of-work challenges: the canonical format, every refusal by reason and
//! in the documented order, splicing of two valid challenges, nonce formats, the image answer.

use hmac::Mac;

use super::*;

const NOW: u64 = 1_700_000_000;
const TTL: u64 = 120;
const SECRET: &[u8] = b"test-captcha-secret-0123456789abcdef";

fn signer() -> PowSigner {
    PowSigner::new(SECRET)
}

fn level(difficulty: u8, image: bool) -> Level {
    Level {
        from_rate: 0,
        difficulty,
        image,
    }
}

/// A challenge for alice on sale 42, with an image answer if given.
fn issue(difficulty: u8, answer: Option<&str>) -> Challenge {
    signer().issue(
        "alice",
        42,
        &level(difficulty, answer.is_some()),
        answer,
        NOW,
        TTL,
    )
}

/// `body` signed as the module signs (for tokens the signer would never make).
fn resign(body: &str) -> String {
    let mut mac = HmacSha256::new_from_slice(SECRET).unwrap();
    mac.update(body.as_bytes());
    format!(
        "{body}.{}",
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    )
}

/// A nonce that does NOT solve `token` at `difficulty`.
fn wrong_nonce(token: &str, difficulty: u8) -> String {
    (0u64..)
        .map(|n| n.to_string())
        .find(|n| leading_zero_bits(&work(token, n)) < u32::from(difficulty))
        .unwrap()
}

struct Try<'a> {
    token: &'a str,
    uid: &'a str,
    sale: i64,
    nonce: &'a str,
    answer: Option<&'a str>,
    at: u64,
}

impl<'a> Try<'a> {
    /// alice, sale 42, now, no answer.
    fn new(token: &'a str, nonce: &'a str) -> Self {
        Self {
            token,
            uid: "alice",
            sale: 42,
            nonce,
            answer: None,
            at: NOW,
        }
    }
}

fn check(t: Try<'_>, expected: Result<(), &str>) {
    let got = signer().verify(t.token, t.uid, t.sale, t.nonce, t.answer, t.at);
    assert_eq!(
        got.as_ref().map(|_| ()).map_err(CaptchaError::reason),
        expected,
        "{} for {}/{} nonce {:?} answer {:?} at {}",
        t.token,
        t.uid,
        t.sale,
        t.nonce,
        t.answer,
        t.at
    );
}

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
fn a_solved_challenge_verifies() {
    let c = issue(8, None);
    let nonce = solve(&c.token, 8);
    let verified = signer()
        .verify(&c.token, "alice", 42, &nonce, None, NOW)
        .unwrap();
    assert_eq!(
        verified,
        VerifiedChallenge {
            id: c.id,
            expires_at: NOW + TTL,
            difficulty: 8,
            image: false,
        }
    );
    // An answer given to a challenge without image is ignored.
    check(
        Try {
            answer: Some("anything"),
            ..Try::new(&c.token, &nonce)
        },
        Ok(()),
    );
    let negative = signer().issue("bob", -3, &level(4, false), None, NOW, TTL);
    let nonce = solve(&negative.token, 4);
    check(
        Try {
            uid: "bob",
            sale: -3,
            ..Try::new(&negative.token, &nonce)
        },
        Ok(()),
    );
}

#[test]
fn each_refusal_has_its_reason() {
    let c = issue(8, None);
    let (token, nonce) = (c.token.as_str(), solve(&c.token, 8));
    let bad = wrong_nonce(token, 8);
    let other = PowSigner::new(b"another-captcha-secret-0123456789ab").issue(
        "alice",
        42,
        &level(8, false),
        None,
        NOW,
        TTL,
    );
    let other_nonce = solve(&other.token, 8);
    check(
        Try {
            at: NOW + TTL - 1,
            ..Try::new(token, &nonce)
        },
        Ok(()),
    );
    check(
        Try {
            at: NOW + TTL,
            ..Try::new(token, &nonce)
        },
        Err("expired"),
    );
    check(
        Try {
            at: u64::MAX,
            ..Try::new(token, &nonce)
        },
        Err("expired"),
    );
    check(
        Try {
            uid: "bob",
            ..Try::new(token, &nonce)
        },
        Err("wrong_user"),
    );
    check(
        Try {
            uid: "Alice",
            ..Try::new(token, &nonce)
        },
        Err("wrong_user"),
    );
    check(
        Try {
            uid: "",
            ..Try::new(token, &nonce)
        },
        Err("wrong_user"),
    );
    check(
        Try {
            sale: 43,
            ..Try::new(token, &nonce)
        },
        Err("wrong_sale"),
    );
    check(
        Try {
            sale: -42,
            ..Try::new(token, &nonce)
        },
        Err("wrong_sale"),
    );
    check(Try::new(token, &bad), Err("bad_solution"));
    check(Try::new(&other.token, &other_nonce), Err("bad_signature"));
}

#[test]
fn checks_run_in_the_documented_order() {
    let c = issue(8, Some("K7NP3"));
    let (token, nonce) = (c.token.as_str(), solve(&c.token, 8));
    let bad = wrong_nonce(token, 8);
    let tampered = token.replacen(".8.", ".1.", 1);
    // signature before expiry, expiry before user, user before sale, sale before work,
    // work before answer.
    check(
        Try {
            at: NOW + TTL,
            ..Try::new(&tampered, &nonce)
        },
        Err("bad_signature"),
    );
    check(
        Try {
            at: NOW + TTL,
            uid: "bob",
            ..Try::new(token, &nonce)
        },
        Err("expired"),
    );
    check(
        Try {
            uid: "bob",
            sale: 1,
            ..Try::new(token, &nonce)
        },
        Err("wrong_user"),
    );
    check(
        Try {
            sale: 1,
            ..Try::new(token, &bad)
        },
        Err("wrong_sale"),
    );
    check(
        Try {
            answer: Some("WRONG"),
            ..Try::new(token, &bad)
        },
        Err("bad_solution"),
    );
    check(Try::new(token, &nonce), Err("answer_required"));
}

#[test]
fn the_image_answer_is_bound_without_state() {
    let c = issue(6, Some("K7NP3"));
    let nonce = solve(&c.token, 6);
    let cases: &[(Option<&str>, Result<(), &str>)] = &[
        (Some("K7NP3"), Ok(())),
        (Some("k7np3"), Ok(())),
        (Some(" k7 Np\t3\n"), Ok(())),
        (Some("K7NP4"), Err("wrong_answer")),
        (Some("K7NP"), Err("wrong_answer")),
        (Some("K7NP33"), Err("wrong_answer")),
        (Some(&"K".repeat(MAX_ANSWER_BYTES + 1)), Err("wrong_answer")),
        (None, Err("answer_required")),
        (Some(""), Err("answer_required")),
        (Some(" \t "), Err("answer_required")),
    ];
    for (answer, expected) in cases {
        check(
            Try {
                answer: *answer,
                ..Try::new(&c.token, &nonce)
            },
            *expected,
        );
    }
    // The same answer on another challenge has another MAC (it is bound to the id).
    let again = issue(6, Some("K7NP3"));
    assert_ne!(c.token.split('.').nth(6), again.token.split('.').nth(6));
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
fn spliced_challenges_are_refused() {
    // Two valid challenges that differ in every field.
    let a = issue(8, None);
    let b = signer().issue("bob", 43, &level(9, true), Some("ACE"), NOW + 1, TTL);
    let fa: Vec<&str> = a.token.split('.').collect();
    let fb: Vec<&str> = b.token.split('.').collect();
    for field in 1..8 {
        for (mac, uid, sale) in [(fa[8], "alice", 42), (fb[8], "bob", 43)] {
            let mut parts = fa.clone();
            parts[field] = fb[field];
            parts[8] = mac;
            let spliced = parts.join(".");
            let nonce = solve(&spliced, 9);
            let got = signer().verify(&spliced, uid, sale, &nonce, Some("ACE"), NOW);
            assert!(
                matches!(
                    got,
                    Err(CaptchaError::BadSignature | CaptchaError::Malformed)
                ),
                "field {field} of b into a: {got:?}"
            );
        }
    }
    // Fields moved to another place: sale and difficulty swapped, both decimal.
    let moved = [
        fa[0], fa[3], fa[2], fa[1], fa[4], fa[5], fa[6], fa[7], fa[8],
    ]
    .join(".");
    let nonce = solve(&moved, 8);
    check(
        Try {
            sale: 8,
            ..Try::new(&moved, &nonce)
        },
        Err("bad_signature"),
    );
    // A later expiry under the old MAC.
    let later = a
        .token
        .replacen(&(NOW + TTL).to_string(), &(NOW + 9999).to_string(), 1);
    check(
        Try {
            at: NOW + TTL,
            ..Try::new(&later, &solve(&later, 8))
        },
        Err("bad_signature"),
    );
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

#[test]
fn a_previous_secret_verifies_what_it_signed_and_signs_nothing_new() {
    const OLD: &[u8] = b"the-old-captcha-secret-0123456789abcdef";
    let old = PowSigner::new(OLD);
    let rotated = PowSigner::new(SECRET).accepting(&[OLD]);
    // A challenge handed out before the rotation, with its image answer, still solves.
    let before = old.issue("alice", 42, &level(4, true), Some("AC3X9"), NOW, TTL);
    let nonce = solve(&before.token, 4);
    let verified = rotated
        .verify(&before.token, "alice", 42, &nonce, Some("ac3x9"), NOW)
        .unwrap();
    assert_eq!((verified.difficulty, verified.image), (4, true));
    assert_eq!(
        rotated.verify(&before.token, "alice", 42, &nonce, Some("AC3X7"), NOW),
        Err(CaptchaError::WrongAnswer),
        "the answer is checked under the secret that signed the challenge"
    );
    // ... until it expires, like any challenge.
    assert_eq!(
        rotated.verify(&before.token, "alice", 42, &nonce, Some("AC3X9"), NOW + TTL),
        Err(CaptchaError::Expired)
    );
    // New challenges are signed with the current secret only: the old one alone refuses them.
    let after = rotated.issue("alice", 42, &level(4, false), None, NOW, TTL);
    let nonce = solve(&after.token, 4);
    assert!(PowSigner::new(SECRET)
        .verify(&after.token, "alice", 42, &nonce, None, NOW)
        .is_ok());
    assert_eq!(
        old.verify(&after.token, "alice", 42, &nonce, None, NOW),
        Err(CaptchaError::BadSignature)
    );
    // Once the old secret is dropped from previous_secrets, what it signed is refused.
    let nonce = solve(&before.token, 4);
    assert_eq!(
        PowSigner::new(SECRET).verify(&before.token, "alice", 42, &nonce, Some("AC3X9"), NOW),
        Err(CaptchaError::BadSignature)
    );
}
