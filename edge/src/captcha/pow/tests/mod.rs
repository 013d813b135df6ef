//! Unit tests of proof-of-work challenges, and the helpers they share: the canonical format and
//! the nonces (`format`), verification and every refusal by reason, in the documented order,
//! splicing, the image answer, previous secrets (`verify`).

mod format;
mod verify;

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
