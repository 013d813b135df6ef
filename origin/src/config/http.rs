//! `[http]`: the origin's internal HTTP API, its body and uid limits, and its connections.

use std::net::SocketAddr;

use serde::Deserialize;
use service::{config::Problems, listener::ConnectionConfig};

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Address of the internal HTTP API.
    pub listen: SocketAddr,
    /// Largest request body accepted, in bytes.
    pub body_limit_bytes: usize,
    /// Longest uid accepted, in bytes.
    pub max_uid_bytes: usize,
    /// Slow clients and the connection cap (`[http.connections]`).
    pub connections: ConnectionConfig,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8082)),
            body_limit_bytes: 4096,
            max_uid_bytes: 128,
            connections: ConnectionConfig::default(),
        }
    }
}

impl HttpConfig {
    pub(super) fn validate(&self, problems: &mut Problems) {
        problems.range("http.body_limit_bytes", self.body_limit_bytes, 64..=1 << 20);
        problems.range("http.max_uid_bytes", self.max_uid_bytes, 1..=1024);
        self.connections.validate("http.connections", problems);
    }
}
