//! Captcha pass tokens: what a solved challenge buys. A pass token is an HS256 JWT under the
//! captcha secret, `{sub: uid, aud: "<sale id>", jti, exp, iat, dif, img}`, good for one user,
//! one sale and at most `MAX_TTL_SECONDS`; `dif` and `img` are the level it was earned at (the
//! challenge's difficulty and whether it had an image), so that the buy can refuse a pass earned
//! below the level in force now. Verifying it here is pure CPU, under the current secret or a
//! previous one (a rotation); spending it once (its `jti`, `SET NX EX` in Redis) is the buy
//! route's job.

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use jsonwebtoken::{errors::ErrorKind, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::{
    config::Level,
    identity::{check_header_alg, AlgCheck},
};

#[cfg(test)]
mod tests;

/// Longest life of a pass token, in seconds.
pub const MAX_TTL_SECONDS: u64 = 120;
/// Longest pass token accepted, in bytes.
pub const MAX_TOKEN_BYTES: usize = 1024;
/// Length of a `jti`: 128 random bits in unpadded base64url.
const JTI_CHARS: usize = 22;
/// Seconds a spent mark outlives its token's `exp`: the clock skew between edges tolerated (an
/// edge whose clock is behind still takes the token for that long).
pub const SPENT_MARK_SKEW_SECONDS: u64 = 5;

/// The claims a verified pass token carries that the caller needs: `jti` to spend it once,
/// `exp` to bound how long the spent mark must be kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PassClaims {
    pub jti: String,
    pub exp: u64,
    pub earned: Earned,
}

/// The level a pass was earned at: the difficulty of its challenge's work, and whether it had
/// an image to answer. A token without these claims (none is issued so) was earned at none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Earned {
    pub difficulty: u8,
    pub image: bool,
}

impl Earned {
    /// Whether the pass proved at least what `level` asks: as much work, and the image if it
    /// asks for one.
    pub fn meets(&self, level: &Level) -> bool {
        self.difficulty >= level.difficulty && (self.image || !level.image)
    }
}

impl PassClaims {
    /// How long, from `now_unix`, the mark of this spent token must be kept: until the token
    /// expires, plus [`SPENT_MARK_SKEW_SECONDS`]. Read from the token, not from the config, so
    /// a lower `pass_ttl_seconds` (SIGHUP) cannot drop the mark of a token issued before while
    /// it still verifies.
    pub fn spent_mark_ttl(&self, now_unix: u64) -> u64 {
        self.exp
            .saturating_sub(now_unix)
            .min(MAX_TTL_SECONDS)
            .saturating_add(SPENT_MARK_SKEW_SECONDS)
    }
}

/// Why a pass token was refused (or, for `Sign`, could not be made).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
pub enum PassError {
    #[error("pass token is malformed")]
    Malformed,
    #[error("pass token signature does not verify")]
    BadSignature,
    #[error("pass token expired")]
    Expired,
    #[error("pass token belongs to another user")]
    WrongUser,
    #[error("pass token is for another sale")]
    WrongSale,
    #[error("pass token algorithm is not HS256")]
    WrongAlgorithm,
    #[error("signing a pass token: {0}")]
    #[strum(serialize = "sign_failed")]
    Sign(String),
}

impl PassError {
    /// A stable snake_case code for metrics and logs.
    pub fn reason(&self) -> &'static str {
        self.into()
    }
}

#[derive(Serialize, Deserialize)]
struct Claims<'a> {
    sub: std::borrow::Cow<'a, str>,
    aud: String,
    jti: String,
    exp: u64,
    iat: u64,
    #[serde(default)]
    dif: u8,
    #[serde(default)]
    img: bool,
}

/// Issues pass tokens with one secret and lifetime; verifies them under that secret or a
/// previous one.
pub struct PassTokens {
    encoding: EncodingKey,
    /// The current secret first, then the previous ones.
    decoding: Vec<DecodingKey>,
    validation: Validation,
    ttl_seconds: u64,
}

impl PassTokens {
    /// `ttl_seconds` is capped at `MAX_TTL_SECONDS`.
    pub fn new(secret: &[u8], ttl_seconds: u64) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp", "sub", "aud"]);
        // exp (zero leeway), sub and aud are checked in `verify` against the caller's values.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.leeway = 0;
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: vec![DecodingKey::from_secret(secret)],
            validation,
            ttl_seconds: ttl_seconds.min(MAX_TTL_SECONDS),
        }
    }

    /// Also accepts what `previous` secrets signed, until it expires; signs nothing with them.
    pub fn accepting<S: AsRef<[u8]>>(mut self, previous: &[S]) -> Self {
        self.decoding.extend(
            previous
                .iter()
                .map(|secret| DecodingKey::from_secret(secret.as_ref())),
        );
        self
    }

    /// A pass token for `uid` on `sale`, `earned` at a level, valid from `now_unix` for the
    /// configured lifetime.
    pub fn issue(
        &self,
        uid: &str,
        sale: i64,
        earned: Earned,
        now_unix: u64,
    ) -> Result<String, PassError> {
        let claims = Claims {
            sub: uid.into(),
            aud: sale.to_string(),
            jti: URL_SAFE_NO_PAD.encode(rand::random::<[u8; 16]>()),
            exp: now_unix.saturating_add(self.ttl_seconds),
            iat: now_unix,
            dif: earned.difficulty,
            img: earned.image,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| PassError::Sign(e.to_string()))
    }

    /// Checks, in order: shape and algorithm, signature, expiry (no leeway), user, sale.
    pub fn verify(
        &self,
        token: &str,
        uid: &str,
        sale: i64,
        now_unix: u64,
    ) -> Result<PassClaims, PassError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(PassError::Malformed);
        }
        check_header_alg(token, Algorithm::HS256).map_err(|e| match e {
            AlgCheck::Malformed => PassError::Malformed,
            AlgCheck::Wrong => PassError::WrongAlgorithm,
        })?;
        let claims = self.decode(token)?;
        if now_unix >= claims.exp {
            return Err(PassError::Expired);
        }
        if claims.sub != uid {
            return Err(PassError::WrongUser);
        }
        if claims.aud.parse::<i64>() != Ok(sale) {
            return Err(PassError::WrongSale);
        }
        if claims.jti.len() != JTI_CHARS {
            return Err(PassError::Malformed);
        }
        Ok(PassClaims {
            jti: claims.jti,
            exp: claims.exp,
            earned: Earned {
                difficulty: claims.dif,
                image: claims.img,
            },
        })
    }

    /// The claims of `token` under the first secret whose signature it carries.
    fn decode(&self, token: &str) -> Result<Claims<'static>, PassError> {
        let mut refusal = PassError::BadSignature;
        for key in &self.decoding {
            match jsonwebtoken::decode::<Claims>(token, key, &self.validation) {
                Ok(data) => return Ok(data.claims),
                Err(e) => match e.kind() {
                    ErrorKind::InvalidSignature => refusal = PassError::BadSignature,
                    ErrorKind::InvalidAlgorithm => return Err(PassError::WrongAlgorithm),
                    _ => return Err(PassError::Malformed),
                },
            }
        }
        Err(refusal)
    }
}
