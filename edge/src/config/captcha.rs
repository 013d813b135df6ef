//! `[captcha]`: the HMAC secrets of challenges and pass tokens, their lifetimes, the difficulty
//! levels by live rate, and the pool of image captchas.

use serde::Deserialize;
use service::config::Problems;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Level {
    /// Distinct users asking for challenges per second (all sales, this edge; each user counts
    /// once a second) from which this level applies.
    pub from_rate: u32,
    /// Leading zero bits the proof of work must find.
    pub difficulty: u8,
    /// Whether an image captcha (with audio) must be solved too.
    pub image: bool,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CaptchaConfig {
    /// HMAC key of challenges, image handles and pass tokens (at least 32 bytes), the same on
    /// every edge. New ones are signed with it only.
    pub secret: String,
    /// Earlier secrets, still accepted on what they signed until it expires (a rotation: add the
    /// old secret here on every edge, then change `secret` edge by edge).
    pub previous_secrets: Vec<String>,
    /// How long a challenge may be solved.
    pub challenge_ttl_seconds: u64,
    /// How long a pass token may be spent (at most 120).
    pub pass_ttl_seconds: u64,
    /// Difficulty levels by live request rate, lowest first; the first must start at 0.
    pub levels: Vec<Level>,
    /// Window over which the live rate of distinct users is measured.
    pub window_seconds: u64,
    /// How long the rate must stay below a level's threshold before the level drops.
    pub cooldown_seconds: u64,
    /// Image captchas kept drawn; each lives `image_slots / images_per_second` seconds.
    pub image_slots: usize,
    /// Image captchas drawn per second at most (about 4 ms of CPU each).
    pub images_per_second: u32,
    /// Challenges one image is handed to at most; then its slot is due for a redraw.
    pub image_serves: u32,
    /// An image is handed out for at most this long after its first challenge, then its slot is
    /// due for a redraw.
    pub image_max_age_seconds: u64,
}

impl Default for CaptchaConfig {
    fn default() -> Self {
        let level = |from_rate, difficulty, image| Level {
            from_rate,
            difficulty,
            image,
        };
        Self {
            secret: String::new(),
            previous_secrets: Vec::new(),
            challenge_ttl_seconds: 120,
            pass_ttl_seconds: 60,
            levels: vec![
                level(0, 12, false),
                level(200, 16, false),
                level(2000, 18, true),
            ],
            window_seconds: 5,
            cooldown_seconds: 30,
            image_slots: 512,
            images_per_second: 10,
            image_serves: 200,
            image_max_age_seconds: 60,
        }
    }
}

impl CaptchaConfig {
    pub(super) fn validate(&self, problems: &mut Problems) {
        problems.check(
            self.secret.len() >= 32,
            "captcha.secret",
            "must be at least 32 bytes",
        );
        for (i, previous) in self.previous_secrets.iter().enumerate() {
            problems.check(
                previous.len() >= 32,
                &format!("captcha.previous_secrets[{i}]"),
                "must be at least 32 bytes",
            );
        }
        problems.range(
            "captcha.challenge_ttl_seconds",
            self.challenge_ttl_seconds,
            5..=3600,
        );
        problems.range("captcha.pass_ttl_seconds", self.pass_ttl_seconds, 1..=120);
        let levels = &self.levels;
        problems.check(
            levels.first().is_some_and(|l| l.from_rate == 0)
                && levels.windows(2).all(|w| w[0].from_rate < w[1].from_rate),
            "captcha.levels",
            "must start at from_rate = 0 and rise strictly",
        );
        for (i, level) in levels.iter().enumerate() {
            let field = format!("captcha.levels[{i}].difficulty");
            problems.range(&field, level.difficulty, 1..=28);
        }
        problems.range("captcha.window_seconds", self.window_seconds, 1..=600);
        problems.range("captcha.image_slots", self.image_slots, 1..=100_000);
        problems.range(
            "captcha.images_per_second",
            self.images_per_second,
            1..=1000,
        );
        problems.range("captcha.image_serves", self.image_serves, 1..=1_000_000);
        problems.range(
            "captcha.image_max_age_seconds",
            self.image_max_age_seconds,
            1..=86_400,
        );
        problems.at_most("captcha.cooldown_seconds", self.cooldown_seconds, 3600);
    }
}
