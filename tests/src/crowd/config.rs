//! What a crowd run is given: where to send it, which sale, how many users and how many of them
//! bots, how identities are obtained, and the sizes of the bots' attacks. [`CrowdConfig::new`]
//! fills the defaults; [`CrowdConfig::validate`] names every bad field at once.

use std::time::Duration;

use super::bots::BotKind;
use crate::jwks_server::SigningKey;

/// One crowd run.
#[derive(Debug, Clone)]
pub struct CrowdConfig {
    /// Where the edge's API is (the edge itself or nginx), e.g. `http://127.0.0.1:8081`.
    pub base_url: String,
    /// The sale to buy from.
    pub sale: i64,
    /// The crowd's size, bots included.
    pub users: usize,
    /// Users (honest or bots) in flight at once.
    pub concurrency: usize,
    /// Share of the crowd that are bots, 0.0 to 1.0.
    pub bots: f64,
    /// Bot kinds, the bots split evenly over them.
    pub bot_kinds: Vec<BotKind>,
    /// The HS256 secret of user JWTs: tokens are minted locally with it. Also needed by the
    /// `expired` bots, whose tokens are real but stale.
    pub jwt_secret: Option<String>,
    /// Sign user JWTs with this key of an identity provider (its `kid` in the header) instead of
    /// the HS256 secret: the edges on the provider's JWKS.
    pub signer: Option<SigningKey>,
    /// Fetch each user's JWT from `POST /api/dev/token` (dev mode) instead of minting it.
    pub dev_token: bool,
    /// Seed of the crowd's mix: the same seed places the same kinds at the same positions.
    pub seed: u64,
    /// The `<run>` of the uids `u-<run>-<i>`, so runs against one sale do not collide.
    pub run_id: String,
    /// Give every honest user (and bot) its own `X-Forwarded-For` address. Off: everyone but the
    /// `ip_swarm` comes from the client's own address.
    pub spread_ips: bool,
    /// `replayed_pass`: buys fired at once with one pass token.
    pub replay_buys: usize,
    /// `uid_hammer`: buys fired at once by one uid, each with a fresh pass token.
    pub hammer_buys: usize,
    /// `ip_swarm`: uids per swarm bot, all from one address.
    pub swarm_size: usize,
    /// Longest wait for one answer; past it the request counts as `no_answer timeout`.
    pub request_timeout: Duration,
}

impl CrowdConfig {
    /// A crowd of 1000 (20% bots of every kind, 64 at once) against `base_url` and `sale`, with
    /// tokens minted from `jwt_secret` and a run id taken from the clock.
    pub fn new(base_url: impl Into<String>, sale: i64, jwt_secret: Option<String>) -> Self {
        let run_id = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() % 100_000_000)
            .to_string();
        Self {
            base_url: base_url.into(),
            sale,
            users: 1000,
            concurrency: 64,
            bots: 0.2,
            bot_kinds: BotKind::ALL.to_vec(),
            jwt_secret,
            signer: None,
            dev_token: false,
            seed: 1,
            run_id,
            spread_ips: true,
            replay_buys: 20,
            hammer_buys: 10,
            swarm_size: 10,
            request_timeout: Duration::from_secs(10),
        }
    }

    /// Every problem with this config, by field name; empty when it can run.
    pub fn validate(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let mut check = |ok: bool, problem: &str| {
            if !ok {
                problems.push(problem.to_string());
            }
        };
        check(
            self.base_url.starts_with("http://"),
            "base_url must be an http:// URL",
        );
        check(self.sale > 0, "sale must be a sale id (> 0)");
        check(self.users > 0, "users must be at least 1");
        check(self.concurrency > 0, "concurrency must be at least 1");
        check(
            (0.0..=1.0).contains(&self.bots),
            "bots must be a fraction from 0 to 1",
        );
        check(
            self.bots == 0.0 || !self.bot_kinds.is_empty(),
            "bot_kinds is empty but bots > 0",
        );
        check(
            self.dev_token || self.jwt_secret.is_some() || self.signer.is_some(),
            "jwt_secret (or signer) is required unless dev_token is on",
        );
        check(
            self.jwt_secret.as_ref().is_none_or(|s| s.len() >= 32),
            "jwt_secret must be at least 32 bytes (HS256)",
        );
        check(
            self.jwt_secret.is_some()
                || self.signer.is_some()
                || !self.bot_kinds.contains(&BotKind::Expired),
            "the expired bots need jwt_secret or signer (a real token gone stale)",
        );
        check(
            !self.run_id.is_empty() && self.run_id.chars().all(|c| c.is_ascii_alphanumeric()),
            "run_id must be ASCII letters and digits",
        );
        check(self.replay_buys >= 2, "replay_buys must be at least 2");
        check(self.hammer_buys >= 2, "hammer_buys must be at least 2");
        check(
            (1..=128).contains(&self.swarm_size),
            "swarm_size must be 1 to 128",
        );
        check(
            self.replay_buys <= 128 && self.hammer_buys <= 128,
            "replay_buys and hammer_buys must be at most 128",
        );
        check(
            !self.request_timeout.is_zero(),
            "request_timeout must be above 0",
        );
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::CrowdConfig;

    #[test]
    fn validate_names_every_bad_field() {
        let good = CrowdConfig::new("http://127.0.0.1:1", 1, Some("x".repeat(32)));
        assert!(good.validate().is_empty(), "{:?}", good.validate());
        let mut bad = good;
        bad.base_url = "ftp://x".into();
        bad.users = 0;
        bad.bots = 1.5;
        bad.jwt_secret = None;
        let problems = bad.validate().join("\n");
        for field in ["base_url", "users", "bots", "jwt_secret", "expired"] {
            assert!(problems.contains(field), "{field} in {problems}");
        }
    }
}
