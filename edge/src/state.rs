//! What the handlers share. `Runtime` is everything built from the config file, swapped as a
//! whole on SIGHUP (`reload`); the IP limiter and the origin pool are carried over when their
//! part of the config did not change, so their state survives. `Shared` lives as long as the
//! process: the Redis-backed limits, the sold-out flags, the sale directory, metrics.

use std::{
    path::PathBuf,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
};

use arc_swap::ArcSwap;
use redis_layer::Redis;

use crate::{
    bought::Bought,
    captcha::{distinct::DistinctUsers, level::Difficulty, pool::ImagePool, pow::PowSigner},
    client_ip::TrustedProxies,
    config::Config,
    forward::Origins,
    identity::Verifier,
    limits::{
        global::GlobalLimiter,
        ip::{IpLimiter, UserLimiter},
        uid::UidLimiter,
    },
    metrics::Metrics,
    pass::PassTokens,
    sales::{self, SaleDirectory},
    soldout::SoldOut,
};

/// Everything built from one config file.
pub struct Runtime {
    pub config: Config,
    pub trusted: TrustedProxies,
    pub verifier: Verifier,
    pub pass: PassTokens,
    pub pow: PowSigner,
    pub ip: Arc<IpLimiter>,
    /// The limits of the captcha endpoints, per IP and per user.
    pub captcha_ip: Arc<IpLimiter>,
    pub captcha_uid: Arc<UserLimiter>,
    pub origins: Arc<Origins>,
}

impl Runtime {
    /// Builds from `config`, keeping `previous`'s IP limiter, origin pool and identity
    /// provider's keys when their config is unchanged.
    pub fn build(
        config: Config,
        previous: Option<&Runtime>,
        metrics: &Metrics,
    ) -> Result<Self, String> {
        let verifier = Verifier::from_config(
            &config.identity,
            previous.map(|p| &p.verifier),
            &metrics.jwks,
        )
        .map_err(|e| format!("identity: {e}"))?;
        let secret = config.captcha.secret.as_bytes();
        let ip = match previous {
            Some(p) if p.ip.same_quota(&config.limits.ip) => p.ip.clone(),
            _ => {
                Arc::new(IpLimiter::new(&config.limits.ip).map_err(|e| format!("limits.ip: {e}"))?)
            }
        };
        let captcha = &config.limits.captcha;
        let captcha_ip = match previous {
            Some(p) if p.captcha_ip.same_quota(&captcha.ip) => p.captcha_ip.clone(),
            _ => Arc::new(
                IpLimiter::new(&captcha.ip).map_err(|e| format!("limits.captcha.ip: {e}"))?,
            ),
        };
        let captcha_uid = match previous {
            Some(p) if p.captcha_uid.same_quota(&captcha.uid) => p.captcha_uid.clone(),
            _ => Arc::new(
                UserLimiter::new(&captcha.uid).map_err(|e| format!("limits.captcha.uid: {e}"))?,
            ),
        };
        let origins = match previous {
            Some(p) if p.config.origin == config.origin => p.origins.clone(),
            _ => Arc::new(Origins::new(&config.origin)),
        };
        Ok(Self {
            trusted: TrustedProxies::new(&config.http.trusted_proxies),
            pass: PassTokens::new(secret, config.captcha.pass_ttl_seconds)
                .accepting(&config.captcha.previous_secrets),
            pow: PowSigner::new(secret).accepting(&config.captcha.previous_secrets),
            verifier,
            ip,
            captcha_ip,
            captcha_uid,
            origins,
            config,
        })
    }
}

pub struct Shared {
    pub runtime: ArcSwap<Runtime>,
    pub config_path: Option<PathBuf>,
    pub difficulty: Difficulty,
    /// Who counted towards the difficulty this second.
    pub distinct: DistinctUsers,
    pub images: Arc<ImagePool>,
    pub uid: UidLimiter,
    pub global: GlobalLimiter,
    pub soldout: SoldOut,
    pub bought: Bought,
    pub sales: SaleDirectory,
    pub redis: Redis,
    pub metrics: Metrics,
    request_ids: AtomicU64,
}

pub type AppState = Arc<Shared>;

impl Shared {
    /// Connects what outlives reloads, around the first runtime.
    pub fn new(
        runtime: Runtime,
        config_path: Option<PathBuf>,
        redis: Redis,
        metrics: Metrics,
    ) -> Self {
        let config = &runtime.config;
        let soldout = SoldOut::default();
        Self {
            difficulty: Difficulty::new(&config.captcha),
            distinct: DistinctUsers::new(&config.captcha),
            images: Arc::new(ImagePool::new(config.captcha.image_slots)),
            uid: UidLimiter::new(redis.clone()),
            global: GlobalLimiter::new(redis.clone())
                .counting_calls_in(metrics.redis_counter("global_lease")),
            soldout: soldout.clone(),
            bought: Bought::default(),
            sales: SaleDirectory::new(sales::FACTS_TTL)
                .counting_lookups_in(metrics.origin_counter("sale_lookup"))
                .reopening(soldout),
            redis,
            metrics,
            request_ids: AtomicU64::new(1),
            config_path,
            runtime: ArcSwap::from_pointee(runtime),
        }
    }

    /// A request id for a request that came without one.
    pub fn next_request_id(&self) -> String {
        format!("edge-{}", self.request_ids.fetch_add(1, Ordering::Relaxed))
    }
}
