//! The `[http.connections]` table both services read: the listener's timers, its header buffer
//! and its cap on open connections, with nginx's value beside each default.

use std::time::Duration;

use serde::Deserialize;

use crate::config::{fields::millis, Problems};

/// hyper refuses a read buffer smaller than this (`max_buf_size` panics below it).
pub const MIN_HEADER_BUFFER_BYTES: usize = 8192;

/// The `[http.connections]` table of both services (nginx's value beside each default).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConnectionConfig {
    /// `header_timeout_ms`: time allowed for a request head (request line and headers) from its
    /// first byte; on a new connection, from the accept. nginx: `client_header_timeout 5s`.
    #[serde(rename = "header_timeout_ms", with = "millis")]
    pub header_timeout: Duration,
    /// `idle_timeout_ms`: a connection with no request in flight is closed after this long
    /// without a byte read or written. nginx: `keepalive_timeout 15s` towards browsers; here
    /// longer than the pool idle time of this service's own client (nginx keeps upstream
    /// connections 60 s, the edge keeps origin connections 30 s), so that the client, never this
    /// side, closes an idle connection and no request is sent on a connection being closed.
    #[serde(rename = "idle_timeout_ms", with = "millis")]
    pub idle_timeout: Duration,
    /// `body_timeout_ms`: time allowed between two reads of a request body. nginx:
    /// `client_body_timeout 5s`.
    #[serde(rename = "body_timeout_ms", with = "millis")]
    pub body_timeout: Duration,
    /// Largest request head read, in bytes: above it hyper answers 431 and closes, reading no
    /// further. nginx: `large_client_header_buffers 4 8k` (32 KB). At least 8192.
    pub header_buffer_bytes: usize,
    /// Connections open at once; beyond, new ones wait in the listen backlog until one closes.
    /// nginx: `worker_connections 4096`.
    pub max_connections: usize,
}

impl Default for ConnectionConfig {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(75),
            body_timeout: Duration::from_secs(5),
            header_buffer_bytes: 32_768,
            max_connections: 4096,
        }
    }
}

impl ConnectionConfig {
    /// Every bad field, named under `table` (such as `http.connections`).
    pub fn validate(&self, table: &str, problems: &mut Problems) {
        let field = |name: &str| format!("{table}.{name}");
        for (name, value) in [
            ("header_timeout_ms", self.header_timeout),
            ("body_timeout_ms", self.body_timeout),
        ] {
            problems.range(&field(name), value.as_millis(), 100..=600_000);
        }
        problems.range(
            &field("idle_timeout_ms"),
            self.idle_timeout.as_millis(),
            100..=3_600_000,
        );
        problems.range(
            &field("header_buffer_bytes"),
            self.header_buffer_bytes,
            MIN_HEADER_BUFFER_BYTES..=1 << 20,
        );
        problems.range(
            &field("max_connections"),
            self.max_connections,
            1..=1_000_000,
        );
    }
}
