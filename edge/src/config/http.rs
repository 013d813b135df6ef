//! `[http]` (the public API behind nginx: its limits, the trusted proxies, dev mode, the
//! connections) and `[admin]` (`/metrics`, on loopback only).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use ipnet::IpNet;
use serde::Deserialize;
use service::{
    config::{fields::parsed_list, Problems},
    listener::ConnectionConfig,
};

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Address of the public API (behind nginx). Not reloadable.
    pub listen: SocketAddr,
    /// Largest request body accepted, in bytes.
    pub body_limit_bytes: usize,
    /// Largest total size of the request headers, in bytes (431 above).
    pub max_header_bytes: usize,
    /// Peers whose `X-Forwarded-For` is believed (nginx, the CDN): CIDR blocks.
    #[serde(deserialize_with = "parsed_list")]
    pub trusted_proxies: Vec<IpNet>,
    /// Dev mode: enables `POST /api/dev/token`, which mints user JWTs, and lets weak secrets
    /// through with a warning. Never in production.
    pub dev_mode: bool,
    /// Slow clients and the connection cap (`[http.connections]`). Not reloadable.
    pub connections: ConnectionConfig,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminConfig {
    /// Address of `/metrics`: a loopback address (anything else is refused). Not reloadable.
    pub listen: SocketAddr,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8081)),
            body_limit_bytes: 4096,
            max_header_bytes: 16384,
            trusted_proxies: vec![
                IpNet::from(IpAddr::from(Ipv4Addr::LOCALHOST)),
                IpNet::from(IpAddr::from(Ipv6Addr::LOCALHOST)),
            ],
            dev_mode: false,
            connections: ConnectionConfig::default(),
        }
    }
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 9081)),
        }
    }
}

impl HttpConfig {
    pub(super) fn validate(&self, problems: &mut Problems) {
        problems.range("http.body_limit_bytes", self.body_limit_bytes, 64..=1 << 20);
        problems.range(
            "http.max_header_bytes",
            self.max_header_bytes,
            1024..=1 << 20,
        );
        problems.check(
            self.connections.header_buffer_bytes >= self.max_header_bytes,
            "http.connections.header_buffer_bytes",
            "must be at least http.max_header_bytes (whose 431 is the JSON one)",
        );
        self.connections.validate("http.connections", problems);
    }
}

impl AdminConfig {
    pub(super) fn validate(&self, problems: &mut Problems) {
        problems.check(
            self.listen.ip().is_loopback(),
            "admin.listen",
            "must be a loopback address (127.0.0.1 or ::1): /metrics is for the host only",
        );
    }
}
