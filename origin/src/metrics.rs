//! Prometheus metrics of the origin, served as text at `GET /metrics`: reservations by outcome,
//! branch runs by result, recoveries, holds, transactions in flight, the recovery poller's index
//! of active sales (its reads, full passes, the marks), Redis losses and heals, and the calls
//! to and from a dtm coordinator.

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

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    pub outcome: &'static str,
}

/// A call between this origin and a dtm server, and how it went.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DtmCallLabel {
    pub call: &'static str,
    pub outcome: &'static str,
}

#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    reservations: Family<OutcomeLabel, Counter>,
    branches: Family<OutcomeLabel, Counter>,
    recoveries: Family<OutcomeLabel, Counter>,
    holds: Family<OutcomeLabel, Counter>,
    claims: Counter,
    index_reads: Counter,
    active_sales: Gauge,
    full_passes: Counter,
    activity_marks: Family<OutcomeLabel, Counter>,
    in_flight: Gauge,
    branch_batches: Counter,
    branch_batch_size: Histogram,
    losses: Family<OutcomeLabel, Counter>,
    heals: Family<OutcomeLabel, Counter>,
    heal_seconds: Histogram,
    gate_closures: Counter,
    replica_waits: Family<OutcomeLabel, Counter>,
    dtm_calls: Family<DtmCallLabel, Counter>,
    /// The listeners' connections (`service::listener`).
    pub connections: service::listener::ConnectionMetrics,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("origin");
        let reservations = Family::<OutcomeLabel, Counter>::default();
        let branches = Family::<OutcomeLabel, Counter>::default();
        let recoveries = Family::<OutcomeLabel, Counter>::default();
        let in_flight = Gauge::default();
        let holds = Family::<OutcomeLabel, Counter>::default();
        let claims = Counter::default();
        let index_reads = Counter::default();
        let active_sales = Gauge::default();
        let full_passes = Counter::default();
        let activity_marks = Family::<OutcomeLabel, Counter>::default();
        let branch_batches = Counter::default();
        let branch_batch_size = Histogram::new(exponential_buckets(1.0, 2.0, 10));
        let losses = Family::<OutcomeLabel, Counter>::default();
        let heals = Family::<OutcomeLabel, Counter>::default();
        let heal_seconds = Histogram::new(exponential_buckets(0.005, 2.0, 14));
        let gate_closures = Counter::default();
        let replica_waits = Family::<OutcomeLabel, Counter>::default();
        let dtm_calls = Family::<DtmCallLabel, Counter>::default();
        registry.register(
            "dtm_calls",
            "Calls to a dtm coordinator (prepare, submit, abort: ok, error) and from it (branch: ok, failure, error; query: prepared, failure, error)",
            dtm_calls.clone(),
        );
        registry.register(
            "replica_waits",
            "WAITs for replicas after a winner's reservation (redis.wait_replicas), by outcome (acked, short: fewer replicas than asked within wait_timeout_ms, error)",
            replica_waits.clone(),
        );
        registry.register(
            "redis_losses",
            "Times this origin noticed that Redis lost a sale's data, by how (missing_stock, repeated_fence)",
            losses.clone(),
        );
        registry.register(
            "heals",
            "Heals of a sale's Redis side from PostgreSQL, by outcome (healed, busy, already_healed, lost_lock, expired, error)",
            heals.clone(),
        );
        registry.register(
            "heal_seconds",
            "Time from noticing a loss to the sale healed, by the origin that healed it",
            heal_seconds.clone(),
        );
        registry.register(
            "stock_closed_by_database",
            "Times PostgreSQL refused a unit Redis had handed out and the stock in Redis was set to 0",
            gate_closures.clone(),
        );
        registry.register(
            "branch_batches",
            "Database transactions written by the branch writers (each holds one or more branches)",
            branch_batches.clone(),
        );
        registry.register(
            "branch_batch_size",
            "Branches per database transaction (group commit)",
            branch_batch_size.clone(),
        );
        registry.register(
            "recovery_claims",
            "claim.lua calls made by the recovery poller (one per active sale and poll; one per known sale on a full pass)",
            claims.clone(),
        );
        registry.register(
            "recovery_index_reads",
            "active_sales.lua calls made by the recovery poller (one per poll, whatever the number of sales)",
            index_reads.clone(),
        );
        registry.register(
            "recovery_active_sales",
            "Sales the recovery poller looked at in its last poll: the index's, and the ones this origin marked",
            active_sales.clone(),
        );
        registry.register(
            "recovery_full_passes",
            "Polls that went over every known sale (at start, after a failure to reach Redis, on a new index)",
            full_passes.clone(),
        );
        registry.register(
            "activity_marks",
            "mark_active.lua calls before a reservation or a return (at most one per sale every 5 s), by outcome (marked; lost: the index had lost the sale's recent mark; error)",
            activity_marks.clone(),
        );
        registry.register(
            "holds",
            "Holds by what happened to them (paid, extended, cancelled, expired, returned)",
            holds.clone(),
        );
        registry.register(
            "reservations",
            "Reservation attempts by outcome (reserved, duplicate, sold_out, unknown_sale, stock_unavailable, not_started, ended, error)",
            reservations.clone(),
        );
        registry.register(
            "branches",
            "Database branch runs by result (pending, rejected, repeat, error)",
            branches.clone(),
        );
        registry.register(
            "recoveries",
            "Transactions completed by the recovery poller, and its failures",
            recoveries.clone(),
        );
        registry.register(
            "in_flight_transactions",
            "Transactions reserved in Redis and not yet completed, at the last poll",
            in_flight.clone(),
        );
        let connections = service::listener::ConnectionMetrics::default();
        connections.register(&mut registry);
        Self {
            registry: Arc::new(registry),
            reservations,
            branches,
            recoveries,
            holds,
            claims,
            index_reads,
            active_sales,
            full_passes,
            activity_marks,
            in_flight,
            branch_batches,
            branch_batch_size,
            losses,
            heals,
            heal_seconds,
            gate_closures,
            replica_waits,
            dtm_calls,
            connections,
        }
    }
}

impl Metrics {
    pub fn reservation(&self, outcome: &'static str) {
        self.reservations
            .get_or_create(&OutcomeLabel { outcome })
            .inc();
    }
    pub fn branch(&self, outcome: &'static str) {
        self.branches.get_or_create(&OutcomeLabel { outcome }).inc();
    }
    pub fn recovery(&self, outcome: &'static str) {
        self.recoveries
            .get_or_create(&OutcomeLabel { outcome })
            .inc();
    }
    pub fn hold(&self, outcome: &'static str) {
        self.holds.get_or_create(&OutcomeLabel { outcome }).inc();
    }
    pub fn branch_batch(&self, size: usize) {
        self.branch_batches.inc();
        self.branch_batch_size.observe(size as f64);
    }
    pub fn claim(&self) {
        self.claims.inc();
    }
    pub fn index_read(&self) {
        self.index_reads.inc();
    }
    pub fn set_active_sales(&self, n: usize) {
        self.active_sales.set(i64::try_from(n).unwrap_or(i64::MAX));
    }
    pub fn full_pass(&self) {
        self.full_passes.inc();
    }
    pub fn activity_mark(&self, outcome: &'static str) {
        self.activity_marks
            .get_or_create(&OutcomeLabel { outcome })
            .inc();
    }
    pub fn loss(&self, how: &'static str) {
        self.losses
            .get_or_create(&OutcomeLabel { outcome: how })
            .inc();
    }
    pub fn heal(&self, outcome: &'static str) {
        self.heals.get_or_create(&OutcomeLabel { outcome }).inc();
    }
    pub fn healed_in(&self, seconds: f64) {
        self.heal_seconds.observe(seconds);
    }
    pub fn replica_wait(&self, outcome: &'static str) {
        self.replica_waits
            .get_or_create(&OutcomeLabel { outcome })
            .inc();
    }
    pub fn dtm_call(&self, call: &'static str, outcome: &'static str) {
        self.dtm_calls
            .get_or_create(&DtmCallLabel { call, outcome })
            .inc();
    }
    pub fn gate_closed(&self) {
        self.gate_closures.inc();
    }
    pub fn set_in_flight(&self, n: i64) {
        self.in_flight.set(n);
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        service::metrics::exposition(&self.registry)
    }
}
