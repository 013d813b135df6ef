//! The strength check of a service's secrets (HMAC keys: the edge's user JWT key and captcha
//! secret, the origin's payment webhook secret). With dev mode off a weak secret is a config
//! problem naming its field (the service exits 64); with dev mode on it is allowed, with a loud
//! warning at start.
//!
//! Weak: unset; containing a marker of the shipped placeholders (`change-me`, `dev-only`, ...) or
//! of a made-up value (`secret`, `password`, `0123456789`, ...); shorter than [`MIN_BYTES`];
//! with whitespace (words, not random bytes); mostly runs of neighbouring characters (`abcd`,
//! `4321`); or whose characters carry less than [`MIN_BITS`] by a Shannon estimate (length ×
//! entropy of the character frequencies: 32 random bytes as base64 score ~200, as hex ~245; a
//! repeated or two-letter value scores far below). An estimate cannot see that a random-looking
//! value was typed by hand: make secrets with `openssl rand -base64 48`.

use crate::config::Problems;

/// Shortest secret accepted, in bytes.
pub const MIN_BYTES: usize = 32;
/// Least estimated entropy accepted, in bits (see the module's text).
pub const MIN_BITS: f64 = 160.0;

/// Markers of the shipped placeholders and of made-up values, matched without case.
const MARKERS: &[&str] = &[
    "change-me",
    "change_me",
    "changeme",
    "dev-only",
    "dev_only",
    "placeholder",
    "replace-me",
    "example",
    "secret",
    "password",
    "passwd",
    "0123456789",
    "abcdefgh",
    "qwerty",
];

/// Why a secret is weak.
#[derive(Debug, Clone, PartialEq)]
pub enum Weakness {
    Unset,
    Placeholder { marker: &'static str },
    TooShort { bytes: usize },
    Whitespace,
    Sequential,
    LowEntropy { bits: f64 },
}

impl std::fmt::Display for Weakness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unset => write!(f, "is not set"),
            Self::Placeholder { marker } => {
                write!(
                    f,
                    "is a placeholder or made-up value (contains \"{marker}\")"
                )
            }
            Self::TooShort { bytes } => {
                write!(
                    f,
                    "is {bytes} bytes, at least {MIN_BYTES} random bytes are needed"
                )
            }
            Self::Whitespace => write!(f, "contains whitespace (words, not random bytes)"),
            Self::Sequential => write!(f, "is mostly runs of neighbouring characters"),
            Self::LowEntropy { bits } => write!(
                f,
                "looks like about {bits:.0} bits of randomness, at least {MIN_BITS:.0} are needed"
            ),
        }
    }
}

/// What is wrong with `value` as a secret, or `None` when it looks strong.
pub fn weakness(value: &str) -> Option<Weakness> {
    if value.is_empty() {
        return Some(Weakness::Unset);
    }
    let lower = value.to_ascii_lowercase();
    if let Some(marker) = MARKERS.iter().find(|m| lower.contains(*m)) {
        return Some(Weakness::Placeholder { marker });
    }
    if value.len() < MIN_BYTES {
        return Some(Weakness::TooShort { bytes: value.len() });
    }
    let bytes = value.as_bytes();
    if bytes.iter().any(u8::is_ascii_whitespace) {
        return Some(Weakness::Whitespace);
    }
    // Runs of three such as `abc`, `321` or `aaa`: about 1 position in 80 of random hex, and
    // fewer in base64.
    let in_runs = bytes
        .windows(3)
        .filter(|w| {
            let step = i16::from(w[1]) - i16::from(w[0]);
            step.abs() <= 1 && i16::from(w[2]) - i16::from(w[1]) == step
        })
        .count();
    if in_runs * 4 > bytes.len() {
        return Some(Weakness::Sequential);
    }
    let bits = estimated_bits(bytes);
    if bits < MIN_BITS {
        return Some(Weakness::LowEntropy { bits });
    }
    None
}

/// Length times the Shannon entropy of the byte frequencies.
fn estimated_bits(bytes: &[u8]) -> f64 {
    let mut counts = [0u32; 256];
    for &b in bytes {
        counts[usize::from(b)] += 1;
    }
    let n = bytes.len() as f64;
    let per_byte: f64 = counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f64::from(c) / n;
            -p * p.log2()
        })
        .sum();
    per_byte * n
}

/// For a config's `validate()`: with dev mode off, a weak secret is a problem
/// "`field`: <why>; make one with `openssl rand -base64 48`". With dev mode on, nothing (the
/// service warns at start with [`warn_if_weak`]).
pub fn check(problems: &mut Problems, field: &str, value: &str, dev_mode: bool) {
    if dev_mode {
        return;
    }
    if let Some(weakness) = weakness(value) {
        problems.push(
            field,
            &format!("{weakness}; set a random one (openssl rand -base64 48)"),
        );
    }
}

/// At start, with dev mode on: a loud warning for a weak secret that dev mode lets through.
pub fn warn_if_weak(field: &str, value: &str) {
    if let Some(weakness) = weakness(value) {
        tracing::warn!(
            field,
            %weakness,
            "WEAK SECRET allowed because dev mode is on: never run this config in production"
        );
    }
}

#[cfg(test)]
mod tests;
