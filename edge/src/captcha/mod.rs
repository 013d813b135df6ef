//! The captcha in front of every buy, without server state until the very end:
//!
//! 1. `GET /api/captcha?sale=ID` (a signed-in user, within the captcha limits, for a sale that
//!    has started): `level::Difficulty` counts the user once a second (`distinct`) and names
//!    the level; `pow::PowSigner::issue` signs a challenge bound to the user, the sale, the
//!    level's difficulty and an expiry. When the level says `image`, a drawn image of `pool` is
//!    handed out through a signed `handle` (its PNG and the WAV reading it out are fetched with
//!    the handle and the user's token), and the challenge carries an HMAC of its answer.
//! 2. The browser solves it: a nonce such that SHA-256(`challenge:nonce`) starts with
//!    `difficulty` zero bits (`pow::solve` is the reference), and, if asked, types the answer.
//! 3. `POST /api/captcha {challenge, nonce, answer?}`: `PowSigner::verify` checks the format,
//!    the signature, the expiry, the binding, the work and the answer, all in CPU on any edge;
//!    the route then spends the challenge id once (Redis `SET NX EX`).
//! 4. A pass token (`crate::pass`) is issued: a JWT for this user and sale, carrying the level
//!    it was earned at, good for at most 120 s, spent once by the buy (which refuses it once
//!    the level has risen above it).
//!
//! Everything signed (challenges, image handles, passes) verifies under `captcha.secret` or one
//! of `captcha.previous_secrets`, and is signed with `secret` only.

pub mod distinct;
pub mod handle;
pub mod image;
pub mod level;
pub mod pool;
pub mod pow;

pub use image::{ImageCaptcha, ImageError};
pub use level::Difficulty;
pub use pow::{leading_zero_bits, solve, CaptchaError, Challenge, PowSigner, VerifiedChallenge};
