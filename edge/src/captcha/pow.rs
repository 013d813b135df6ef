//! Proof-of-work challenges, signed so that any edge can verify them without shared state.
//!
//! A challenge token is ASCII, at most 1024 bytes, in exactly this canonical form:
//!
//! ```text
//! v1.<sale>.<uid>.<difficulty>.<expires_at>.<image>.<answer>.<id>.<mac>
//! ```
//!
//! - `sale`: the sale id in decimal (`i64`, as Rust prints it);
//! - `uid`: the user id in unpadded base64url;
//! - `difficulty`: leading zero bits the work must find, decimal `u8`;
//! - `expires_at`: Unix seconds, decimal; the challenge is refused from that second on;
//! - `image`: `1` when an image captcha must be solved too, else `0`;
//! - `answer`: with `image = 1`, the unpadded base64url of the first 16 bytes of
//!   HMAC-SHA256(secret, `v1-answer.<id>.<normalised answer>`), else `-`. The answer is
//!   normalised by dropping whitespace and upper-casing, so the check is case-insensitive;
//! - `id`: 128 random bits in unpadded base64url (22 characters), the key under which the
//!   challenge is spent once (elsewhere, in Redis);
//! - `mac`: unpadded base64url of HMAC-SHA256(secret, everything before the last `.`).
//!
//! No field may contain `.`, and the MAC covers every field in its place, so changing, moving
//! or splicing any of them breaks the signature. The solver finds a `nonce`, 1 to 20 decimal
//! digits, such that SHA-256(`<token>:<nonce>`) starts with `difficulty` zero bits.
//! `verify` checks, in order: format, signature (constant time), expiry, user and sale, the
//! work, the image answer.

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::config::Level;

#[cfg(test)]
mod tests;
mod work;

#[cfg(test)]
use work::decimal_digits;
use work::work;
pub use work::{leading_zero_bits, solve};

type HmacSha256 = Hmac<Sha256>;

/// Longest challenge token accepted, in bytes.
pub const MAX_TOKEN_BYTES: usize = 1024;
/// Most digits a nonce may have (`u64::MAX` has 20).
pub const MAX_NONCE_DIGITS: usize = 20;
/// Longest image answer looked at, in bytes; longer answers are wrong.
pub const MAX_ANSWER_BYTES: usize = 64;
const VERSION: &str = "v1";
const ID_CHARS: usize = 22;
const MAC_CHARS: usize = 43;
const ANSWER_MAC_BYTES: usize = 16;
const ANSWER_MAC_CHARS: usize = 22;

/// A challenge handed to the browser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// The signed challenge string; the work is done on it.
    pub token: String,
    /// Its random id, spent once when solved.
    pub id: String,
    pub difficulty: u8,
    /// Unix seconds from which it is refused.
    pub expires_at: u64,
    /// Whether an image captcha must be answered too.
    pub image: bool,
}

/// A challenge whose signature, binding, work and answer all checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedChallenge {
    pub id: String,
    pub expires_at: u64,
    /// The level it was issued at: its work and whether it needed the image answer.
    pub difficulty: u8,
    pub image: bool,
}

/// Why a solution was refused (the client's fault).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
pub enum CaptchaError {
    #[error("challenge is malformed")]
    Malformed,
    #[error("challenge signature does not verify")]
    BadSignature,
    #[error("challenge expired")]
    Expired,
    #[error("challenge belongs to another user")]
    WrongUser,
    #[error("challenge is for another sale")]
    WrongSale,
    #[error("nonce does not solve the challenge")]
    BadSolution,
    #[error("image answer is wrong")]
    WrongAnswer,
    #[error("challenge needs the image answer")]
    AnswerRequired,
}

impl CaptchaError {
    /// A stable snake_case code for metrics and logs.
    pub fn reason(&self) -> &'static str {
        self.into()
    }
}

/// Issues challenges under one secret, and verifies them under it or a previous one (a rotation).
#[derive(Clone)]
pub struct PowSigner {
    /// HMAC keyed once per secret, cloned per use: the current secret first, then the previous
    /// ones.
    keys: Vec<HmacSha256>,
}

/// The fields of a well-formed token, before its signature is checked.
struct Fields<'a> {
    signed: &'a str,
    mac: &'a str,
    sale: i64,
    uid: &'a str,
    difficulty: u8,
    expires_at: u64,
    answer: Option<&'a str>,
    id: &'a str,
}

impl PowSigner {
    /// A signer under `secret` (which signs everything new).
    pub fn new(secret: &[u8]) -> Self {
        Self {
            keys: vec![keyed(secret)],
        }
    }

    /// Also accepts what `previous` secrets signed, until it expires; signs nothing with them.
    pub fn accepting<S: AsRef<[u8]>>(mut self, previous: &[S]) -> Self {
        self.keys
            .extend(previous.iter().map(|secret| keyed(secret.as_ref())));
        self
    }

    /// The HMAC of the current secret, for what is signed now.
    fn current(&self) -> &HmacSha256 {
        &self.keys[0]
    }

    /// The key (current or previous) whose HMAC of `signed` is `tag`, compared in constant time.
    pub(crate) fn key_that_signed(&self, signed: &[u8], tag: &[u8]) -> Option<&HmacSha256> {
        self.keys.iter().find(|key| {
            let mut mac = (*key).clone();
            mac.update(signed);
            mac.verify_slice(tag).is_ok()
        })
    }

    /// The key whose HMAC of `signed` starts with `tag` (truncated MACs), in constant time.
    pub(crate) fn key_that_signed_truncated(
        &self,
        signed: &[u8],
        tag: &[u8],
    ) -> Option<&HmacSha256> {
        self.keys.iter().find(|key| {
            let mut mac = (*key).clone();
            mac.update(signed);
            !tag.is_empty() && mac.verify_truncated_left(tag).is_ok()
        })
    }

    /// HMAC-SHA256 of `signed` under the current secret.
    pub(crate) fn sign(&self, signed: &[u8]) -> [u8; 32] {
        let mut mac = self.current().clone();
        mac.update(signed);
        mac.finalize().into_bytes().into()
    }

    /// A challenge for `uid` on `sale` at `level`'s difficulty. It requires an image answer
    /// exactly when `image_answer` is given (callers pass one when `level.image`).
    pub fn issue(
        &self,
        uid: &str,
        sale: i64,
        level: &Level,
        image_answer: Option<&str>,
        now_unix: u64,
        ttl_seconds: u64,
    ) -> Challenge {
        let id = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 16]>());
        let expires_at = now_unix.saturating_add(ttl_seconds);
        let answer = image_answer.map(|a| {
            let tag = answer_keyed(self.current(), &id, &normalise(a))
                .finalize()
                .into_bytes();
            URL_SAFE_NO_PAD.encode(&tag[..ANSWER_MAC_BYTES])
        });
        let signed = format!(
            "{VERSION}.{sale}.{}.{}.{expires_at}.{}.{}.{id}",
            URL_SAFE_NO_PAD.encode(uid),
            level.difficulty,
            u8::from(answer.is_some()),
            answer.as_deref().unwrap_or("-"),
        );
        let token = format!(
            "{signed}.{}",
            URL_SAFE_NO_PAD.encode(self.sign(signed.as_bytes()))
        );
        Challenge {
            token,
            id,
            difficulty: level.difficulty,
            expires_at,
            image: answer.is_some(),
        }
    }

    /// Checks a solution: format, signature, expiry, user, sale, work, image answer.
    pub fn verify(
        &self,
        token: &str,
        uid: &str,
        sale: i64,
        nonce: &str,
        image_answer: Option<&str>,
        now_unix: u64,
    ) -> Result<VerifiedChallenge, CaptchaError> {
        let fields = parse(token).ok_or(CaptchaError::Malformed)?;
        let tag = URL_SAFE_NO_PAD
            .decode(fields.mac)
            .map_err(|_| CaptchaError::Malformed)?;
        let key = self
            .key_that_signed(fields.signed.as_bytes(), &tag)
            .ok_or(CaptchaError::BadSignature)?;
        if now_unix >= fields.expires_at {
            return Err(CaptchaError::Expired);
        }
        if URL_SAFE_NO_PAD.decode(fields.uid).ok().as_deref() != Some(uid.as_bytes()) {
            return Err(CaptchaError::WrongUser);
        }
        if fields.sale != sale {
            return Err(CaptchaError::WrongSale);
        }
        if !valid_nonce(nonce)
            || leading_zero_bits(&work(token, nonce)) < u32::from(fields.difficulty)
        {
            return Err(CaptchaError::BadSolution);
        }
        if let Some(expected) = fields.answer {
            let given = normalise(image_answer.unwrap_or_default());
            if given.is_empty() {
                return Err(CaptchaError::AnswerRequired);
            }
            let expected = URL_SAFE_NO_PAD
                .decode(expected)
                .map_err(|_| CaptchaError::Malformed)?;
            if given.len() > MAX_ANSWER_BYTES || !answer_matches(key, fields.id, &given, &expected)
            {
                return Err(CaptchaError::WrongAnswer);
            }
        }
        Ok(VerifiedChallenge {
            id: fields.id.to_string(),
            expires_at: fields.expires_at,
            difficulty: fields.difficulty,
            image: fields.answer.is_some(),
        })
    }
}

#[allow(clippy::expect_used, reason = "HMAC takes keys of any length")]
fn keyed(secret: &[u8]) -> HmacSha256 {
    HmacSha256::new_from_slice(secret).expect("HMAC takes keys of any length")
}

/// The answer's MAC under `key`, the secret that signed its challenge.
fn answer_keyed(key: &HmacSha256, id: &str, normalised: &str) -> HmacSha256 {
    let mut mac = key.clone();
    mac.update(b"v1-answer.");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(normalised.as_bytes());
    mac
}

/// Constant-time comparison of the answer's truncated MAC.
fn answer_matches(key: &HmacSha256, id: &str, normalised: &str, expected: &[u8]) -> bool {
    expected.len() == ANSWER_MAC_BYTES
        && answer_keyed(key, id, normalised)
            .verify_truncated_left(expected)
            .is_ok()
}

/// Splits and range-checks a token; `None` when it is not in the canonical shape.
fn parse(token: &str) -> Option<Fields<'_>> {
    if token.len() > MAX_TOKEN_BYTES {
        return None;
    }
    let (signed, mac) = token.rsplit_once('.')?;
    let mut parts = signed.split('.');
    let mut next = || parts.next().filter(|p| !p.is_empty());
    let (version, sale, uid, difficulty, expires_at, image, answer, id) = (
        next()?,
        next()?,
        next()?,
        next()?,
        next()?,
        next()?,
        next()?,
        next()?,
    );
    if parts.next().is_some() || version != VERSION || mac.len() != MAC_CHARS {
        return None;
    }
    let base64url = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    let decimal = |s: &str, max: usize| s.len() <= max && s.bytes().all(|b| b.is_ascii_digit());
    let sale_digits = sale.strip_prefix('-').unwrap_or(sale);
    let well_formed = decimal(sale_digits, 19)
        && decimal(difficulty, 3)
        && decimal(expires_at, 20)
        && base64url(uid)
        && base64url(mac)
        && id.len() == ID_CHARS
        && base64url(id);
    if !well_formed {
        return None;
    }
    let answer = match (image, answer) {
        ("0", "-") => None,
        ("1", a) if a.len() == ANSWER_MAC_CHARS && base64url(a) => Some(a),
        _ => return None,
    };
    Some(Fields {
        signed,
        mac,
        sale: sale.parse().ok()?,
        uid,
        difficulty: difficulty.parse().ok()?,
        expires_at: expires_at.parse().ok()?,
        answer,
        id,
    })
}

/// An answer as compared: no whitespace, upper case.
fn normalise(answer: &str) -> String {
    answer
        .chars()
        .filter(|c| !c.is_whitespace())
        .flat_map(char::to_uppercase)
        .collect()
}

fn valid_nonce(nonce: &str) -> bool {
    (1..=MAX_NONCE_DIGITS).contains(&nonce.len()) && nonce.bytes().all(|b| b.is_ascii_digit())
}
