//! The payment service's webhooks: the only way an order is paid. The service signs each one
//! Stripe-style, `Payment-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">`,
//! with `payments.webhook_secret`; several `v1=` may come (one per key the service signs with
//! during a rotation) and any key of `payments.secrets()` may match, compared in constant time.
//! A `t` further than `payments.tolerance_seconds` from the origin's clock is refused, so a
//! captured webhook cannot be replayed later; within the window a replay is the same payment
//! again, which `holds::Holds::confirm_payment` answers the same without a second effect. Only a
//! verified body is parsed (as a [`PaymentEvent`]). docs/API.md has the scheme.

use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

use crate::error::Error;

/// The header carrying the signature.
pub const SIGNATURE_HEADER: &str = "payment-signature";

/// Longest signature header read, in bytes (room for a few `v1=` values).
const MAX_HEADER_BYTES: usize = 1024;

/// Most `v1=` values looked at.
const MAX_SIGNATURES: usize = 8;

type HmacSha256 = Hmac<Sha256>;

/// A parsed `Payment-Signature` header.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SignatureHeader {
    timestamp: i64,
    signatures: Vec<[u8; 32]>,
}

/// `t=<digits>` once, `v1=<64 hex>` one or more times; other keys (a future `v2=`) are skipped.
fn parse(header: &str) -> Result<SignatureHeader, Error> {
    let malformed = |why: &'static str| Error::SignatureMalformed(why);
    if header.len() > MAX_HEADER_BYTES {
        return Err(malformed("the header is too long"));
    }
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        let (key, value) = part
            .trim()
            .split_once('=')
            .ok_or(malformed("each part is key=value"))?;
        match key {
            "t" => {
                let t = (!value.is_empty()
                    && value.len() <= 12
                    && value.bytes().all(|b| b.is_ascii_digit()))
                .then(|| value.parse::<i64>().ok())
                .flatten()
                .ok_or(malformed("t= must be unix seconds"))?;
                if timestamp.replace(t).is_some() {
                    return Err(malformed("t= must come once"));
                }
            }
            "v1" => {
                let tag = decode_hex(value).ok_or(malformed("v1= must be 64 hex digits"))?;
                if signatures.len() < MAX_SIGNATURES {
                    signatures.push(tag);
                }
            }
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(malformed("t= is missing"))?;
    if signatures.is_empty() {
        return Err(malformed("v1= is missing"));
    }
    Ok(SignatureHeader {
        timestamp,
        signatures,
    })
}

/// Lower-case or upper-case hex of exactly 32 bytes.
fn decode_hex(text: &str) -> Option<[u8; 32]> {
    let digits = text.as_bytes();
    if digits.len() != 64 {
        return None;
    }
    let nibble = |c: u8| {
        char::from(c)
            .to_digit(16)
            .and_then(|d| u8::try_from(d).ok())
    };
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        *byte = nibble(pair[0])? << 4 | nibble(pair[1])?;
    }
    Some(out)
}

#[allow(clippy::expect_used, reason = "HMAC takes keys of any length")]
fn mac(secret: &str, timestamp: i64, body: &[u8]) -> HmacSha256 {
    let mut mac =
        HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The header value signing `body` at `timestamp` with `secret`, as the payment service sends
/// it (for tests and tools; the edge's dev payments sign the same way).
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let tag = mac(secret, timestamp, body).finalize().into_bytes();
    let hex: String = tag.iter().map(|b| format!("{b:02x}")).collect();
    format!("t={timestamp},v1={hex}")
}

/// Checks `header` against `body`: a `v1=` made with one of `secrets`, then `t=` within
/// `tolerance` seconds of `now`. The signature comes first, so an unsigned caller learns nothing
/// else.
pub fn verify<'a>(
    header: Option<&str>,
    body: &[u8],
    secrets: impl Iterator<Item = &'a str> + Clone,
    now: i64,
    tolerance: i64,
) -> Result<(), Error> {
    let header = parse(header.ok_or(Error::SignatureMissing)?)?;
    let signed = header.signatures.iter().any(|tag| {
        secrets.clone().any(|secret| {
            mac(secret, header.timestamp, body)
                .verify_slice(tag)
                .is_ok()
        })
    });
    if !signed {
        return Err(Error::BadSignature);
    }
    let skew = now.saturating_sub(header.timestamp);
    if skew.abs() > tolerance {
        return Err(Error::StaleTimestamp { skew, tolerance });
    }
    Ok(())
}

/// What a webhook says happened, once its signature holds. Fields beyond these are ignored
/// (they are signed, so nobody but the payment service added them).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PaymentEvent {
    #[serde(rename = "type")]
    pub kind: EventKind,
    /// The payment service's id of the payment: each pays one order, once.
    pub payment_id: String,
    pub order_id: i64,
    /// The uid the order was bought for (the shop's checkout knows it).
    pub uid: String,
    /// What was paid, in the currency's minor unit: must be the sale's `price_cents`.
    pub amount_cents: i64,
    /// ISO 4217 code: must be the sale's currency.
    pub currency: String,
}

/// The events the origin acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum EventKind {
    #[serde(rename = "payment.succeeded")]
    PaymentSucceeded,
}

impl PaymentEvent {
    /// Parses a verified body and checks its fields' shapes.
    pub fn parse(body: &[u8], max_uid_bytes: usize) -> Result<Self, Error> {
        let event: Self = serde_json::from_slice(body)
            .map_err(|e| Error::bad_request("invalid_payment", format!("invalid payment: {e}")))?;
        let p = &event.payment_id;
        if p.is_empty() || p.len() > 128 || !p.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(Error::bad_request(
                "invalid_payment",
                "payment_id must be 1 to 128 printable ASCII characters",
            ));
        }
        if event.order_id <= 0 || event.amount_cents < 0 {
            return Err(Error::bad_request(
                "invalid_payment",
                "order_id must be positive and amount_cents at least 0",
            ));
        }
        let uid = &event.uid;
        if uid.is_empty() || uid.len() > max_uid_bytes || uid.chars().any(char::is_control) {
            return Err(Error::bad_request(
                "invalid_payment",
                format!("uid must be 1 to {max_uid_bytes} bytes without control characters"),
            ));
        }
        if event.currency.len() != 3 || !event.currency.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(Error::bad_request(
                "invalid_payment",
                "currency must be an ISO 4217 code such as EUR",
            ));
        }
        Ok(event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "0123456789abcdef0123456789abcdef";
    const OLD: &str = "fedcba9876543210fedcba9876543210";
    const BODY: &[u8] = br#"{"type":"payment.succeeded","order_id":1}"#;

    fn code(result: Result<(), Error>) -> &'static str {
        match result {
            Ok(()) => "ok",
            Err(Error::SignatureMissing) => "signature_missing",
            Err(Error::SignatureMalformed(_)) => "signature_malformed",
            Err(Error::BadSignature) => "bad_signature",
            Err(Error::StaleTimestamp { .. }) => "stale_timestamp",
            Err(e) => panic!("{e}"),
        }
    }

    fn check(header: Option<&str>, body: &[u8], secrets: &[&str], now: i64, expected: &str) {
        let got = code(verify(header, body, secrets.iter().copied(), now, 300));
        assert_eq!(got, expected, "{header:?} at {now}");
    }

    #[test]
    fn a_signature_holds_for_its_body_and_key_within_the_window() {
        let t = 1_800_000_000;
        let good = sign(KEY, t, BODY);
        check(Some(&good), BODY, &[KEY], t, "ok");
        check(Some(&good), BODY, &[KEY], t + 300, "ok");
        check(Some(&good), BODY, &[KEY], t - 300, "ok");
        check(Some(&good), BODY, &[KEY], t + 301, "stale_timestamp");
        check(Some(&good), BODY, &[KEY], t - 301, "stale_timestamp");
        // Another body, another key, another timestamp under the same tag: forged.
        check(Some(&good), b"{}", &[KEY], t, "bad_signature");
        check(Some(&good), BODY, &[OLD], t, "bad_signature");
        let moved = good.replace(&format!("t={t}"), &format!("t={}", t + 1));
        check(Some(&moved), BODY, &[KEY], t, "bad_signature");
        // A stale forgery is told forged: the signature is checked first.
        check(Some(&good), b"{}", &[KEY], t + 10_000, "bad_signature");
    }

    #[test]
    fn a_rotation_accepts_either_key_and_any_v1() {
        let t = 1_800_000_000;
        let old = sign(OLD, t, BODY);
        let new = sign(KEY, t, BODY);
        check(Some(&old), BODY, &[KEY, OLD], t, "ok");
        check(Some(&old), BODY, &[KEY], t, "bad_signature");
        let both = format!("{old},{}", new.split_once(',').unwrap().1);
        check(Some(&both), BODY, &[KEY], t, "ok");
        check(Some(&both), BODY, &[OLD], t, "ok");
        // Upper-case hex, spaces after commas and unknown keys are read.
        let loose = format!(
            "t={t}, v0=zz, v1={}",
            new.split_once("v1=").unwrap().1.to_uppercase()
        );
        check(Some(&loose), BODY, &[KEY], t, "ok");
    }

    #[test]
    fn malformed_headers_are_refused_as_such() {
        let t = 1_800_000_000;
        let hex = "ab".repeat(32);
        check(None, BODY, &[KEY], t, "signature_missing");
        for header in [
            String::new(),
            "garbage".into(),
            format!("v1={hex}"),
            format!("t={t}"),
            format!("t=,v1={hex}"),
            format!("t=-5,v1={hex}"),
            format!("t=1e9,v1={hex}"),
            format!("t={t},t={t},v1={hex}"),
            format!("t={t},v1=abc"),
            format!("t={t},v1={}", "zz".repeat(32)),
            format!("t={t},v1={hex}{}", ",x".repeat(600)),
        ] {
            check(Some(&header), BODY, &[KEY], t, "signature_malformed");
        }
    }

    #[test]
    fn events_are_read_with_their_shapes_checked() {
        let ok = br#"{"type":"payment.succeeded","payment_id":"pi_1","order_id":7,"uid":"alice","amount_cents":12900,"currency":"EUR","extra":1}"#;
        let event = PaymentEvent::parse(ok, 128).unwrap();
        assert_eq!((event.order_id, event.amount_cents), (7, 12900));
        for bad in [
            r#"{"type":"payment.refunded","payment_id":"pi_1","order_id":7,"uid":"a","amount_cents":1,"currency":"EUR"}"#,
            r#"{"type":"payment.succeeded","payment_id":"","order_id":7,"uid":"a","amount_cents":1,"currency":"EUR"}"#,
            r#"{"type":"payment.succeeded","payment_id":"p","order_id":0,"uid":"a","amount_cents":1,"currency":"EUR"}"#,
            r#"{"type":"payment.succeeded","payment_id":"p","order_id":7,"uid":"a","amount_cents":-1,"currency":"EUR"}"#,
            r#"{"type":"payment.succeeded","payment_id":"p","order_id":7,"uid":"","amount_cents":1,"currency":"EUR"}"#,
            r#"{"type":"payment.succeeded","payment_id":"p","order_id":7,"uid":"a","amount_cents":1,"currency":"eur"}"#,
            r#"{"type":"payment.succeeded","payment_id":"p","order_id":7,"uid":"a","amount_cents":1}"#,
            "not json",
        ] {
            let err = PaymentEvent::parse(bad.as_bytes(), 128).unwrap_err();
            assert!(
                matches!(
                    err,
                    Error::BadRequest {
                        code: "invalid_payment",
                        ..
                    }
                ),
                "{bad}: {err}"
            );
        }
    }
}
