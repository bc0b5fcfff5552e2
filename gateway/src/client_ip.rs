//! Who the client is, for per-client limits and logs.
//!
//! - Without `gateway.trusted_proxies` the TCP peer is the client, and `X-Forwarded-For` is
//!   ignored: anybody can write that header.
//! - Behind trusted proxies (CIDRs), each proxy appends the address it saw to
//!   `X-Forwarded-For`. Reading from the right, every address that is one of our proxies is
//!   skipped; the first one that is not is the client (what a client wrote on the left of it
//!   is never believed). When the peer itself is not a trusted proxy the header is ignored.
//! - Limits key IPv6 clients by their /64: one subscriber (one home or phone network) is
//!   routinely given a whole /64 and can pick any address in it.
//!
//! Resolved once per request, in the listener ([`crate::server`]), before warp runs.

use ipnet::IpNet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use warp::http::HeaderValue;

/// The request's client, put into the request's extensions by the listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr {
    /// The TCP peer.
    pub peer: SocketAddr,
    /// The client per the rules above.
    pub ip: IpAddr,
}

/// The rules: which peers may speak for others.
#[derive(Debug, Clone, Default)]
pub struct ClientIps {
    trusted: Vec<IpNet>,
}

impl ClientIps {
    pub fn new(trusted: Vec<IpNet>) -> Self {
        Self { trusted }
    }

    fn is_trusted(&self, ip: IpAddr) -> bool {
        self.trusted.iter().any(|n| n.contains(&ip))
    }

    /// The client of a request from `peer` carrying these `X-Forwarded-For` values (in the
    /// order received; several header lines count as one comma-separated list).
    pub fn resolve<'a>(
        &self,
        peer: IpAddr,
        forwarded_for: impl DoubleEndedIterator<Item = &'a HeaderValue>,
    ) -> IpAddr {
        let peer = peer.to_canonical();
        if self.trusted.is_empty() || !self.is_trusted(peer) {
            return peer;
        }
        let mut nearest = peer;
        for value in forwarded_for.rev() {
            let Ok(text) = value.to_str() else {
                return nearest;
            };
            for hop in text.rsplit(',') {
                match parse_hop(hop) {
                    Some(ip) if self.is_trusted(ip) => nearest = ip,
                    Some(ip) => return ip,
                    // Garbage where a proxy's entry should be: believe nothing further left.
                    None => return nearest,
                }
            }
        }
        // Only proxies all the way: the left-most one is as close to the client as we know.
        nearest
    }
}

/// One `X-Forwarded-For` entry: an address, possibly with a port (`1.2.3.4:80`, `[::1]:80`).
fn parse_hop(raw: &str) -> Option<IpAddr> {
    let raw = raw.trim();
    raw.parse::<IpAddr>()
        .ok()
        .or_else(|| raw.parse::<SocketAddr>().ok().map(|s| s.ip()))
        .map(|ip| ip.to_canonical())
}

/// The rate-limit key of a client: an IPv4 address, or an IPv6 /64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum IpKey {
    V4(Ipv4Addr),
    /// The upper 64 bits of the address.
    V6(u64),
}

impl From<IpAddr> for IpKey {
    fn from(ip: IpAddr) -> Self {
        match ip.to_canonical() {
            IpAddr::V4(v4) => IpKey::V4(v4),
            IpAddr::V6(v6) => IpKey::V6((u128::from(v6) >> 64) as u64),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ips(trusted: &[&str]) -> ClientIps {
        ClientIps::new(trusted.iter().map(|t| t.parse().unwrap()).collect())
    }
    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }
    fn hv(values: &[&str]) -> Vec<HeaderValue> {
        values
            .iter()
            .map(|v| HeaderValue::from_str(v).unwrap())
            .collect()
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let proxies = ips(&["10.0.0.0/8", "fd00::/8"]);
        let cases: &[(&str, &[&str], &str)] = &[
            // No header: the peer.
            ("10.0.0.1", &[], "10.0.0.1"),
            // Untrusted peer: its header is ignored.
            ("203.0.113.9", &["198.51.100.1"], "203.0.113.9"),
            // One proxy: the address it appended.
            ("10.0.0.1", &["198.51.100.1"], "198.51.100.1"),
            // A forged entry on the left of the real one is never believed.
            ("10.0.0.1", &["6.6.6.6, 198.51.100.1"], "198.51.100.1"),
            // Two proxies: skip the inner one.
            ("10.0.0.1", &["198.51.100.1, 10.0.0.2"], "198.51.100.1"),
            // Several header lines are one list, in order.
            (
                "10.0.0.1",
                &["6.6.6.6", "198.51.100.1, 10.0.0.2"],
                "198.51.100.1",
            ),
            // Ports and brackets.
            ("10.0.0.1", &["198.51.100.1:4711"], "198.51.100.1"),
            ("fd00::1", &["[2001:db8::7]:443"], "2001:db8::7"),
            // Garbage right after a proxy: stop at that proxy.
            (
                "10.0.0.1",
                &["198.51.100.1, nonsense, 10.0.0.2"],
                "10.0.0.2",
            ),
            // Only proxies: the left-most.
            ("10.0.0.1", &["10.0.0.3, 10.0.0.2"], "10.0.0.3"),
            // An IPv4-mapped peer is its IPv4 address.
            ("::ffff:10.0.0.1", &["198.51.100.1"], "198.51.100.1"),
        ];
        for (peer, header, want) in cases {
            let values = hv(header);
            assert_eq!(
                proxies.resolve(ip(peer), values.iter()),
                ip(want),
                "peer {peer}, X-Forwarded-For {header:?}"
            );
        }
        // Nobody trusted: always the peer.
        let values = hv(&["198.51.100.1"]);
        assert_eq!(
            ips(&[]).resolve(ip("10.0.0.1"), values.iter()),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn ipv6_clients_are_keyed_by_their_64() {
        let a = IpKey::from(ip("2001:db8:1:2::1"));
        let b = IpKey::from(ip("2001:db8:1:2:ffff:ffff:ffff:ffff"));
        let other = IpKey::from(ip("2001:db8:1:3::1"));
        assert_eq!(a, b);
        assert_ne!(a, other);
        // 1,000 addresses of one /64: one key.
        let keys: std::collections::HashSet<IpKey> = (0u128..1000)
            .map(|i| {
                IpKey::from(IpAddr::V6(
                    ((0x2001_0db8_0001_0002_u128 << 64) | (i * 7919)).into(),
                ))
            })
            .collect();
        assert_eq!(keys.len(), 1);
        // IPv4 stays per address, mapped or not.
        assert_eq!(
            IpKey::from(ip("::ffff:192.0.2.1")),
            IpKey::from(ip("192.0.2.1"))
        );
        assert_ne!(IpKey::from(ip("192.0.2.1")), IpKey::from(ip("192.0.2.2")));
    }
}
