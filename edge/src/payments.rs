//! The payment webhook as the edge sees it: the name of its signature header, passed through to
//! the origin (which alone verifies it, with `payments.webhook_secret`), and, for dev mode only,
//! the signer with which `POST /api/dev/pay` plays the payment service: `t=<unix>,v1=<hex
//! HMAC-SHA256 of "<t>.<body>">`, the scheme of the origin's `payments.rs` (docs/API.md).

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The header carrying a webhook's signature.
pub const SIGNATURE_HEADER: &str = "payment-signature";

/// The `Payment-Signature` value for `body` signed at `timestamp` with `secret`.
#[allow(clippy::expect_used, reason = "HMAC takes keys of any length")]
pub fn sign(secret: &str, timestamp: u64, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("t={timestamp},v1={hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dev_signature_is_the_documented_hmac() {
        // `printf '1800000000.{}' | openssl dgst -sha256 -hmac 0123456789abcdef0123456789abcdef`:
        // the scheme any payment service implements, which the origin verifies.
        assert_eq!(
            sign("0123456789abcdef0123456789abcdef", 1_800_000_000, b"{}"),
            "t=1800000000,v1=a8471f58daa469f8073cbebd823830f85e8942f4bbc0acd2ef47c28edc8c488e"
        );
    }
}
