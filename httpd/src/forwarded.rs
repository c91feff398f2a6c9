//! Who a request is from, and which host and scheme it asked for, when proxies (a load
//! balancer, a CDN, an edge in front of its origin) stand between: `X-Forwarded-For`,
//! `X-Forwarded-Host` and `X-Forwarded-Proto` are believed only when the connection comes
//! from an address in `[http] trusted_proxies`; from anyone else they are ignored.

use std::net::IpAddr;

use http::HeaderMap;
use ipnet::IpNet;

/// The addresses whose `X-Forwarded-*` headers are believed.
#[derive(Clone, Debug, Default)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// From `10.0.0.0/8`, `192.168.1.7`, `::1` entries.
    pub fn parse(entries: &[String]) -> Result<Self, String> {
        entries
            .iter()
            .map(|e| {
                e.parse::<IpNet>()
                    .or_else(|_| e.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| format!("{e:?}: give an address or a network (10.0.0.0/8)"))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(TrustedProxies)
    }

    pub fn trusts(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|n| n.contains(&ip))
    }

    /// The client: `peer`, or, when `peer` is a trusted proxy, the nearest address in
    /// `X-Forwarded-For` that is not one (the proxies append, so it is read from the right).
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        if !self.trusts(peer) {
            return peer;
        }
        let hops: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect();
        let mut client = peer;
        for hop in hops.into_iter().rev() {
            // What cannot be read stops the walk: entries left of it are not vouched for.
            let Ok(ip) = hop.parse::<IpAddr>() else {
                break;
            };
            client = ip;
            if !self.trusts(ip) {
                break;
            }
        }
        client
    }

    /// `X-Forwarded-Host` and `X-Forwarded-Proto` (first values), when `peer` is trusted.
    pub fn forwarded<'h>(
        &self,
        peer: IpAddr,
        headers: &'h HeaderMap,
    ) -> (Option<&'h str>, Option<&'h str>) {
        if !self.trusts(peer) {
            return (None, None);
        }
        let first = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split(',').next())
                .map(str::trim)
                .filter(|v| !v.is_empty())
        };
        (first("x-forwarded-host"), first("x-forwarded-proto"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn only_trusted_peers_are_believed() {
        let t = TrustedProxies::parse(&["10.0.0.0/8".into(), "192.168.1.7".into()]).unwrap();
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            HeaderValue::from_static("6.6.6.6, 203.0.113.9, 10.1.2.3"),
        );
        h.insert(
            "x-forwarded-host",
            HeaderValue::from_static("cdn.example.com"),
        );
        h.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        let lb: IpAddr = [10, 0, 0, 5].into();
        let stranger: IpAddr = [198, 51, 100, 1].into();
        // A spoofed first entry is not believed: the nearest untrusted hop is the client.
        assert_eq!(t.client(lb, &h), IpAddr::from([203, 0, 113, 9]));
        assert_eq!(t.client(stranger, &h), stranger);
        assert_eq!(
            t.forwarded(lb, &h),
            (Some("cdn.example.com"), Some("https"))
        );
        assert_eq!(t.forwarded(stranger, &h), (None, None));
        assert!(t.trusts("::ffff:192.168.1.7".parse().unwrap()));
        let mut odd = HeaderMap::new();
        odd.insert(
            "x-forwarded-for",
            HeaderValue::from_static("6.6.6.6, unknown, 10.1.2.3"),
        );
        assert_eq!(
            t.client(lb, &odd),
            IpAddr::from([10, 1, 2, 3]),
            "not past what it cannot read"
        );
        assert!(TrustedProxies::parse(&["nope".into()]).is_err());
    }
}
