//! The proof of work itself: the hash of a challenge token and a nonce, its leading zero bits,
//! and the reference solver (for tests and the load tool; browsers run the same loop in JS).

use sha2::{Digest, Sha256};

use super::MAX_NONCE_DIGITS;

/// SHA-256(`<token>:<nonce>`).
pub(super) fn work(token: &str, nonce: &str) -> [u8; 32] {
    let mut hash = Sha256::new();
    hash.update(token.as_bytes());
    hash.update(b":");
    hash.update(nonce.as_bytes());
    hash.finalize().into()
}

/// Leading zero bits of `hash`.
pub fn leading_zero_bits(hash: &[u8]) -> u32 {
    let mut bits = 0;
    for &byte in hash {
        bits += byte.leading_zeros();
        if byte != 0 {
            break;
        }
    }
    bits
}

/// The reference solver: the smallest nonce whose work has `difficulty` leading zero bits
/// (about 2^difficulty hashes). For tests and the load tool; browsers run the same loop in JS.
pub fn solve(token: &str, difficulty: u8) -> String {
    let mut prefix = Sha256::new();
    prefix.update(token.as_bytes());
    prefix.update(b":");
    let mut digits = [0u8; MAX_NONCE_DIGITS];
    (0..=u64::MAX)
        .find(|&n| {
            let text = decimal_digits(n, &mut digits);
            let hash = prefix.clone().chain_update(text).finalize();
            leading_zero_bits(&hash) >= u32::from(difficulty)
        })
        .unwrap_or(u64::MAX)
        .to_string()
}

/// `n` in decimal, written at the end of `buf` without allocating.
pub(super) fn decimal_digits(mut n: u64, buf: &mut [u8; MAX_NONCE_DIGITS]) -> &[u8] {
    let mut start = buf.len();
    loop {
        start -= 1;
        buf[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[start..];
        }
    }
}
