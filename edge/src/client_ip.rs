//! The client's IP address: the peer's, unless the peer is a trusted proxy (nginx, the CDN), in
//! which case `X-Forwarded-For` is read from the right, skipping trusted hops, so a client cannot
//! choose its own address by sending the header itself.

use std::net::IpAddr;

use http::HeaderMap;
use ipnet::IpNet;

/// Trusted proxy blocks, from `http.trusted_proxies`.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// The CIDR blocks of `http.trusted_proxies`.
    pub fn new(blocks: &[IpNet]) -> Self {
        Self(blocks.to_vec())
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client address of a request from `peer` with `headers`.
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        if !self.trusts(peer) {
            return peer;
        }
        let hops: Vec<IpAddr> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|s| s.trim().parse().ok())
            .collect();
        hops.iter()
            .rev()
            .find(|ip| !self.trusts(**ip))
            .or(hops.first())
            .copied()
            .unwrap_or(peer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_peers() {
        let trusted = TrustedProxies::new(&[
            "127.0.0.1/32".parse().unwrap(),
            "10.0.0.0/8".parse().unwrap(),
        ]);
        let check = |peer: &str, xff: Option<&str>, expected: &str| {
            let mut headers = HeaderMap::new();
            if let Some(v) = xff {
                headers.insert("x-forwarded-for", v.parse().unwrap());
            }
            let got = trusted.client_ip(peer.parse().unwrap(), &headers);
            assert_eq!(got, expected.parse::<IpAddr>().unwrap(), "{peer} {xff:?}");
        };
        check("203.0.113.9", Some("1.2.3.4"), "203.0.113.9");
        check("127.0.0.1", Some("1.2.3.4"), "1.2.3.4");
        check("127.0.0.1", Some("6.6.6.6, 1.2.3.4, 10.0.0.7"), "1.2.3.4");
        check("127.0.0.1", None, "127.0.0.1");
        check("127.0.0.1", Some("junk"), "127.0.0.1");
        check("127.0.0.1", Some("10.1.1.1"), "10.1.1.1");
    }
}
