//! What every actor of one run shares: the HTTP client, the config, the sale's paths, and how an
//! actor gets its identity (uid, user JWT) and its client address. User JWTs are minted locally
//! with `edge::identity::mint_dev_token` from the secret, or fetched from `POST /api/dev/token`
//! (dev mode). Addresses are documentation ranges: each honest user and each bot hop gets its own
//! /64 of 2001:db8::/32 (the edge keys IPv6 by /64); the `ip_swarm` shares 203.0.113.7.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use edge::config::{IdentityConfig, Keys};
use serde_json::json;

use super::{
    client::{Call, Http},
    config::CrowdConfig,
    roster::Role,
    tally::{answer_key, Route, Tally},
};

/// Lifetime of the user JWTs minted for a run.
pub const TOKEN_TTL_SECONDS: u64 = 3600;

/// The one address of every `ip_swarm` uid (TEST-NET-3).
pub const SWARM_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7));

#[derive(Debug)]
pub struct Scene {
    pub http: Http,
    config: CrowdConfig,
    identity: Option<IdentityConfig>,
}

impl Scene {
    pub fn new(config: CrowdConfig) -> anyhow::Result<Self> {
        // Bots fire bursts on top of the users in flight: keep that many connections alive.
        let idle = config.concurrency + config.replay_buys.max(config.hammer_buys);
        let http = Http::new(&config.base_url, idle, config.request_timeout)?;
        let identity = config.jwt_secret.as_ref().map(|secret| IdentityConfig {
            keys: Some(Keys::hs256(secret)),
            ..IdentityConfig::default()
        });
        Ok(Self {
            http,
            config,
            identity,
        })
    }

    pub fn config(&self) -> &CrowdConfig {
        &self.config
    }

    pub fn sale(&self) -> i64 {
        self.config.sale
    }

    /// The uid of crowd position `i`.
    pub fn uid(&self, i: usize) -> String {
        format!("u-{}-{i}", self.config.run_id)
    }

    pub fn status_path(&self) -> String {
        format!("/api/sales/{}/status", self.config.sale)
    }

    pub fn captcha_path(&self) -> String {
        format!("/api/captcha?sale={}", self.config.sale)
    }

    pub fn buy_path(&self) -> String {
        format!("/api/sales/{}/buy", self.config.sale)
    }

    /// The address of honest user `i`, or none when addresses are not spread.
    pub fn human_ip(&self, i: usize) -> Option<IpAddr> {
        self.config
            .spread_ips
            .then(|| documentation_ip(u32::try_from(i).unwrap_or(u32::MAX) & 0x7fff_ffff))
    }

    /// The address of hop `hop` (0 to 127) of bot `i`: a proxy of the bot's pool.
    pub fn bot_ip(&self, i: usize, hop: usize) -> Option<IpAddr> {
        let i = u32::try_from(i).unwrap_or(u32::MAX) & 0x00ff_ffff;
        let hop = u32::try_from(hop).unwrap_or(0) & 0x7f;
        self.config
            .spread_ips
            .then(|| documentation_ip(0x8000_0000 | (hop << 24) | i))
    }

    /// A user JWT for `uid` issued at `iat`, valid `ttl` seconds: signed with the provider's key
    /// when there is one, else minted from the HS256 secret.
    pub fn mint(&self, uid: &str, iat: u64, ttl: u64) -> Option<String> {
        match (&self.config.signer, &self.identity) {
            (Some(key), _) => key
                .sign(&json!({"sub": uid, "iat": iat, "exp": iat + ttl}))
                .ok(),
            (None, Some(cfg)) => edge::identity::mint_dev_token(cfg, uid, ttl, iat).ok(),
            (None, None) => None,
        }
    }

    /// A user JWT for `uid`: minted, or fetched from the dev endpoint (counted as `token`).
    /// `None` when it could not be had; the reason is counted as the actor's ending.
    pub async fn user_token(&self, tally: &mut Tally, role: Role, uid: &str) -> Option<String> {
        if !self.config.dev_token {
            return match self.mint(uid, unix_now(), TOKEN_TTL_SECONDS) {
                Some(token) => Some(token),
                None => {
                    tally.ending(role, "token mint_failed");
                    None
                }
            };
        }
        let body = json!({ "uid": uid }).to_string();
        let answer = self
            .http
            .send(Call::post(Route::Token, "/api/dev/token".into(), body))
            .await;
        tally.answer(role, &answer);
        match answer.field("token") {
            Some(token) if answer.status == 200 => Some(token.to_string()),
            _ => {
                tally.ending(role, format!("token {}", answer_key(&answer)));
                None
            }
        }
    }
}

/// The /64 of 2001:db8::/32 numbered `n`, as an address.
fn documentation_ip(n: u32) -> IpAddr {
    let hi = u16::try_from(n >> 16).unwrap_or(u16::MAX);
    let lo = u16::try_from(n & 0xffff).unwrap_or(u16::MAX);
    IpAddr::V6(Ipv6Addr::new(0x2001, 0x0db8, hi, lo, 0, 0, 0, 1))
}

/// Seconds since the Unix epoch, for the `iat`/`exp` of minted tokens.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
