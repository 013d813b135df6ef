//! The Prometheus text exposition of a service's registry, as `/metrics` serves it.

use prometheus_client::{encoding::text::encode, registry::Registry};

/// The registry in Prometheus' text format (empty if a metric fails to encode, which the
/// registry's own types never do).
pub fn exposition(registry: &Registry) -> String {
    let mut out = String::new();
    if encode(&mut out, registry).is_err() {
        out.clear();
    }
    out
}
