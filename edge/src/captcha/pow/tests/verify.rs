//! Verification: a solved challenge verifies; each refusal has its reason and the checks run in
//! the documented order; spliced challenges are refused; the image answer is bound without state;
//! a previous secret verifies what it signed and signs nothing new.

use super::*;

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
