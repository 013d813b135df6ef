//! Prometheus metrics of the edge, served at `/metrics` on the admin port: requests by route,
//! outcome and reason (which limit, which captcha failure, sold out, forwarded, origin errors),
//! latency histograms per route, the captcha level, origin and Redis calls, events, reloads.

use std::sync::Arc;

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{exponential_buckets, Histogram},
    },
    registry::Registry,
};

use crate::identity::provider::JwksMetrics;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub route: &'static str,
    pub outcome: &'static str,
    pub reason: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabel {
    pub route: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NameLabel {
    pub name: String,
}

#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabel, Histogram>,
    captcha_level: Gauge,
    origin: Family<NameLabel, Counter>,
    redis: Family<NameLabel, Counter>,
    events: Family<NameLabel, Counter>,
    reloads: Family<NameLabel, Counter>,
    dry_run: Family<NameLabel, Counter>,
    /// The listeners' connections (`service::listener`).
    pub connections: service::listener::ConnectionMetrics,
    /// The identity provider's key fetches (`identity::provider`).
    pub jwks: JwksMetrics,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("edge");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<RouteLabel, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.000_05, 2.0, 18))
        });
        let captcha_level = Gauge::default();
        let origin = Family::<NameLabel, Counter>::default();
        let redis = Family::<NameLabel, Counter>::default();
        let events = Family::<NameLabel, Counter>::default();
        let reloads = Family::<NameLabel, Counter>::default();
        let dry_run = Family::<NameLabel, Counter>::default();
        registry.register(
            "requests",
            "Requests by route, outcome (forwarded, refused, failed, served) and reason",
            requests.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "Time to answer, by route",
            latency.clone(),
        );
        registry.register(
            "captcha_level",
            "Current captcha difficulty level (index into captcha.levels)",
            captcha_level.clone(),
        );
        registry.register(
            "origin_requests",
            "Requests sent to origins, by result",
            origin.clone(),
        );
        registry.register(
            "redis_calls",
            "Redis round trips, by purpose",
            redis.clone(),
        );
        registry.register(
            "sale_events",
            "Sale events received, by kind",
            events.clone(),
        );
        registry.register(
            "config_reloads",
            "SIGHUP reloads, by result",
            reloads.clone(),
        );
        registry.register(
            "dry_run_refusals",
            "Requests a limit in dry-run mode would have refused, by limit",
            dry_run.clone(),
        );
        let connections = service::listener::ConnectionMetrics::default();
        connections.register(&mut registry);
        let jwks = JwksMetrics::default();
        registry.register(
            "jwks_fetches",
            "Fetches of the identity provider's key set, by result (ok or why it failed)",
            jwks.fetches.clone(),
        );
        registry.register(
            "jwks_keys",
            "Keys of the identity provider held now",
            jwks.keys.clone(),
        );
        Self {
            registry: Arc::new(registry),
            requests,
            latency,
            captcha_level,
            origin,
            redis,
            events,
            reloads,
            dry_run,
            connections,
            jwks,
        }
    }
}

fn name(s: &str) -> NameLabel {
    NameLabel {
        name: s.to_string(),
    }
}

impl Metrics {
    pub fn request(&self, route: &'static str, outcome: &'static str, reason: &'static str) {
        self.requests
            .get_or_create(&RequestLabels {
                route,
                outcome,
                reason,
            })
            .inc();
    }
    pub fn latency(&self, route: &'static str, seconds: f64) {
        self.latency
            .get_or_create(&RouteLabel { route })
            .observe(seconds);
    }
    pub fn captcha_level(&self, level: usize) {
        self.captcha_level
            .set(i64::try_from(level).unwrap_or(i64::MAX));
    }
    pub fn origin(&self, result: &str) {
        self.origin.get_or_create(&name(result)).inc();
    }
    pub fn redis(&self, purpose: &str) {
        self.redis.get_or_create(&name(purpose)).inc();
    }
    /// The counter of origin requests named `name`, for a part that counts its own requests.
    pub fn origin_counter(&self, name_: &str) -> Counter {
        self.origin.get_or_create(&name(name_)).clone()
    }
    /// The counter of Redis calls for `purpose`, for a part that counts its own calls.
    pub fn redis_counter(&self, purpose: &str) -> Counter {
        self.redis.get_or_create(&name(purpose)).clone()
    }
    pub fn event(&self, kind: &str) {
        self.events.get_or_create(&name(kind)).inc();
    }
    pub fn reload(&self, result: &str) {
        self.reloads.get_or_create(&name(result)).inc();
    }
    pub fn dry_run(&self, limit: &str) {
        self.dry_run.get_or_create(&name(limit)).inc();
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        service::metrics::exposition(&self.registry)
    }
}
