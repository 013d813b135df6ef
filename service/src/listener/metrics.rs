//! Connection counters of a service's listeners: opened, closed by reason, open now, and the
//! waits at the connection cap, by listener name.

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct ListenerLabel {
    pub(super) listener: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClosedLabels {
    listener: &'static str,
    reason: &'static str,
}

/// Connection counters of a service's listeners, by listener name.
#[derive(Debug, Clone, Default)]
pub struct ConnectionMetrics {
    pub(super) opened: Family<ListenerLabel, Counter>,
    closed: Family<ClosedLabels, Counter>,
    pub(super) open: Family<ListenerLabel, Gauge>,
    pub(super) waited: Family<ListenerLabel, Counter>,
}

impl ConnectionMetrics {
    /// Adds the counters to a service's registry (names under its prefix).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "connections_opened",
            "Connections accepted, by listener",
            self.opened.clone(),
        );
        registry.register(
            "connections_closed",
            "Connections closed, by listener and reason (closed, header_timeout, idle_timeout, \
             header_too_large, error)",
            self.closed.clone(),
        );
        registry.register(
            "connections_open",
            "Connections open now, by listener",
            self.open.clone(),
        );
        registry.register(
            "connections_waited",
            "Times the listener stopped accepting because max_connections were open",
            self.waited.clone(),
        );
    }

    pub(super) fn closed(&self, listener: &'static str, reason: &'static str) {
        self.closed
            .get_or_create(&ClosedLabels { listener, reason })
            .inc();
        self.open.get_or_create(&ListenerLabel { listener }).dec();
    }
}
