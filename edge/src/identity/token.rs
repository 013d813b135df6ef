//! A compact JWT read before and after its signature is checked: the header's `alg` and `kid`
//! (read by hand, so `alg: none` and unknown algorithms are refused as such), the claims the
//! edge reads (`sub`, `exp`, `nbf`, checked against the caller's clock), and the library's
//! errors mapped to the edge's refusal reasons.

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use jsonwebtoken::errors::ErrorKind;
use serde::Deserialize;

use super::{valid_uid, IdentityError, Uid};

/// What the header of a token says, before anything is trusted.
#[derive(Debug, PartialEq, Eq)]
pub struct TokenHeader {
    /// `None`: an algorithm this edge does not know (`none` among them).
    pub alg: Option<jsonwebtoken::Algorithm>,
    pub kid: Option<String>,
}

/// Why a JWT header failed the algorithm check.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum AlgCheck {
    Malformed,
    Wrong,
}

/// Reads the header of a compact JWT (three base64url parts).
pub fn read_header(token: &str) -> Option<TokenHeader> {
    #[derive(Deserialize)]
    struct Fields {
        alg: String,
        kid: Option<String>,
    }
    let mut parts = token.split('.');
    let (Some(header), Some(_), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    let json = URL_SAFE_NO_PAD.decode(header).ok()?;
    let fields: Fields = serde_json::from_slice(&json).ok()?;
    Some(TokenHeader {
        alg: fields.alg.parse().ok(),
        kid: fields.kid,
    })
}

/// Checks the header's `alg` against the pinned one.
pub(crate) fn check_header_alg(
    token: &str,
    expected: jsonwebtoken::Algorithm,
) -> Result<(), AlgCheck> {
    match read_header(token) {
        None => Err(AlgCheck::Malformed),
        Some(TokenHeader { alg: Some(alg), .. }) if alg == expected => Ok(()),
        Some(_) => Err(AlgCheck::Wrong),
    }
}

/// The claims the edge reads; the library checks presence, `iss` and `aud`, the rest is
/// checked in `UserClaims::check`.
#[derive(Deserialize)]
pub struct UserClaims {
    sub: Option<String>,
    exp: Option<f64>,
    nbf: Option<f64>,
}

impl UserClaims {
    /// The uid and the expiry, checked at `now_unix` with `leeway` seconds of skew.
    pub fn check(self, now_unix: u64, leeway: u64) -> Result<(Uid, u64), IdentityError> {
        let exp = self.exp.ok_or(IdentityError::MissingClaim("exp"))?;
        if !exp.is_finite() {
            return Err(IdentityError::InvalidClaim("exp"));
        }
        // Float to integer casts saturate: a negative exp is long past.
        let exp = exp as u64;
        if now_unix >= exp.saturating_add(leeway) {
            return Err(IdentityError::Expired);
        }
        if let Some(nbf) = self.nbf {
            if !nbf.is_finite() {
                return Err(IdentityError::InvalidClaim("nbf"));
            }
            if (nbf as u64) > now_unix.saturating_add(leeway) {
                return Err(IdentityError::NotYetValid);
            }
        }
        let sub = self.sub.ok_or(IdentityError::MissingClaim("sub"))?;
        if !valid_uid(&sub) {
            return Err(IdentityError::InvalidSubject);
        }
        Ok((Uid(sub), exp))
    }
}

pub fn identity_error(kind: &ErrorKind) -> IdentityError {
    match kind {
        ErrorKind::InvalidAlgorithm | ErrorKind::MissingAlgorithm => IdentityError::WrongAlgorithm,
        ErrorKind::InvalidSignature
        | ErrorKind::InvalidEcdsaKey
        | ErrorKind::InvalidEddsaKey
        | ErrorKind::InvalidRsaKey(_)
        | ErrorKind::InvalidKeyFormat => IdentityError::BadSignature,
        ErrorKind::ExpiredSignature => IdentityError::Expired,
        ErrorKind::ImmatureSignature => IdentityError::NotYetValid,
        ErrorKind::InvalidIssuer => IdentityError::WrongIssuer,
        ErrorKind::InvalidAudience => IdentityError::WrongAudience,
        ErrorKind::InvalidSubject => IdentityError::InvalidSubject,
        ErrorKind::MissingRequiredClaim(claim) => IdentityError::MissingClaim(claim_name(claim)),
        ErrorKind::InvalidClaimFormat(claim) => IdentityError::InvalidClaim(claim_name(claim)),
        _ => IdentityError::MalformedToken,
    }
}

fn claim_name(claim: &str) -> &'static str {
    match claim {
        "exp" => "exp",
        "sub" => "sub",
        "iss" => "iss",
        "nbf" => "nbf",
        "aud" => "aud",
        _ => "other",
    }
}
