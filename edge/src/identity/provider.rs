//! The shop's identity provider's keys: its JWKS fetched from `jwks_url`, held, and fetched
//! again when the set is older than `jwks_refresh_seconds` (in the background: the request that
//! notices is served from the keys held) or when a token names a `kid` the set lacks (that
//! request waits for the fetch). Every fetch, whatever asked for it, waits `jwks_refetch_seconds`
//! after the previous one, so a flood of made-up `kid`s costs the provider one request per
//! interval. A fetch that fails (unreachable, an error status, a document refused by `jwks`)
//! keeps the keys held, is logged and counted by reason.

use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use arc_swap::ArcSwap;
use prometheus_client::metrics::{counter::Counter, family::Family, gauge::Gauge};
use tokio::sync::Mutex;

use super::{
    jwks::{JwksError, KeySet},
    keys::ClaimRules,
};
use crate::config::JwksConfig;

/// The counters of the provider's fetches, registered with the edge's metrics.
#[derive(Clone, Default)]
pub struct JwksMetrics {
    /// Fetches by result: `ok` or the reason of the failure.
    pub fetches: Family<ResultLabel, Counter>,
    /// Keys held now.
    pub keys: Gauge,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub struct ResultLabel {
    pub result: &'static str,
}

/// Why a fetch of the key set failed.
#[derive(Debug, thiserror::Error)]
enum FetchError {
    #[error("unreachable: {0}")]
    Unreachable(reqwest::Error),
    #[error("answered {0}")]
    Status(reqwest::StatusCode),
    #[error("refused: {0}")]
    Refused(#[from] JwksError),
}

impl FetchError {
    fn reason(&self) -> &'static str {
        match self {
            Self::Unreachable(_) => "unreachable",
            Self::Status(_) => "status",
            Self::Refused(e) => e.reason(),
        }
    }
}

pub struct ProviderKeys {
    config: JwksConfig,
    rules: ClaimRules,
    client: reqwest::Client,
    set: ArcSwap<KeySet>,
    /// The clock of the two instants below (milliseconds since `epoch`; `NEVER`: not yet).
    epoch: Instant,
    /// When the keys held were fetched.
    fetched_ms: AtomicU64,
    /// When the last fetch started.
    attempt_ms: AtomicU64,
    /// Held while a fetch runs, so that fetches never overlap and a request that needs the
    /// fetch under way waits for it.
    fetching: Mutex<()>,
    metrics: JwksMetrics,
}

const NEVER: u64 = u64::MAX;

impl ProviderKeys {
    pub fn new(config: JwksConfig, rules: ClaimRules, metrics: JwksMetrics) -> Arc<Self> {
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .redirect(reqwest::redirect::Policy::none())
            // A fetch every few minutes: a fresh connection each time, none held open.
            .pool_max_idle_per_host(0)
            .build()
            .unwrap_or_default();
        Arc::new(Self {
            config,
            rules,
            client,
            set: ArcSwap::from_pointee(KeySet::empty()),
            epoch: Instant::now(),
            fetched_ms: AtomicU64::new(NEVER),
            attempt_ms: AtomicU64::new(NEVER),
            fetching: Mutex::new(()),
            metrics,
        })
    }

    /// Whether these keys were built from the same settings (kept across a reload).
    pub fn same(&self, config: &JwksConfig, rules: &ClaimRules) -> bool {
        &self.config == config && &self.rules == rules
    }

    /// The keys held now.
    pub fn keys(&self) -> arc_swap::Guard<Arc<KeySet>> {
        self.set.load()
    }

    /// Starts a fetch in the background when the keys held are older than the refresh period
    /// and no fetch started within the refetch interval.
    pub fn refresh_if_stale(self: &Arc<Self>) {
        if self.older_than(&self.fetched_ms, self.config.refresh) && self.due() {
            let keys = self.clone();
            tokio::spawn(async move { keys.fetch_if_due().await });
        }
    }

    /// Fetches the set unless a fetch started within the refetch interval; a fetch under way is
    /// waited for. Afterwards `keys` holds the newest set this edge could get.
    pub async fn fetch_if_due(&self) {
        let _one_at_a_time = self.fetching.lock().await;
        if !self.due() {
            return;
        }
        self.attempt_ms.store(self.now_ms(), Ordering::Relaxed);
        match self.fetch().await {
            Ok(set) => {
                tracing::info!(url = %self.config.url, keys = set.len(), "jwks fetched");
                self.metrics.keys.set(set.len() as i64);
                self.metrics
                    .fetches
                    .get_or_create(&ResultLabel { result: "ok" })
                    .inc();
                self.set.store(Arc::new(set));
                self.fetched_ms.store(self.now_ms(), Ordering::Relaxed);
            }
            Err(error) => {
                tracing::warn!(
                    url = %self.config.url,
                    reason = error.reason(),
                    %error,
                    kept = self.set.load().len(),
                    "jwks fetch failed: the keys held are kept"
                );
                self.metrics
                    .fetches
                    .get_or_create(&ResultLabel {
                        result: error.reason(),
                    })
                    .inc();
            }
        }
    }

    /// No fetch started within the refetch interval.
    fn due(&self) -> bool {
        self.older_than(&self.attempt_ms, self.config.refetch)
    }

    fn older_than(&self, at_ms: &AtomicU64, age: Duration) -> bool {
        match at_ms.load(Ordering::Relaxed) {
            NEVER => true,
            at => self.now_ms().saturating_sub(at) >= age.as_millis() as u64,
        }
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    async fn fetch(&self) -> Result<KeySet, FetchError> {
        let limit = self.config.max_bytes;
        let mut response = self
            .client
            .get(self.config.url.clone())
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(FetchError::Unreachable)?;
        if !response.status().is_success() {
            return Err(FetchError::Status(response.status()));
        }
        if response.content_length().is_some_and(|n| n > limit as u64) {
            return Err(JwksError::TooLarge { limit }.into());
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(FetchError::Unreachable)? {
            if body.len() + chunk.len() > limit {
                return Err(JwksError::TooLarge { limit }.into());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(KeySet::parse(&body, limit, &self.rules)?)
    }
}
