//! The HTTP client this server uses for its own requests (an edge's fetches from origins, a
//! JWKS document, a file an API user names): HTTP/1.1 over TCP, or over TLS (rustls, ring)
//! trusting the system's roots and any extra CA certificates the operator names. For URLs an
//! API user gives, [`guarded`] makes one that connects only to addresses on the public
//! internet (a name is checked as it resolves, so a name that resolves to the server's own
//! network is refused however it was reached).

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Empty;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::dns::{GaiResolver, Name};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

/// A client for `http://` and `https://` URLs, sending bodies of type `B`, that resolves
/// names with `R`.
pub type Client<B, R = GaiResolver> =
    hyper_util::client::legacy::Client<HttpsConnector<HttpConnector<R>>, B>;
/// A client that connects only to public addresses ([`guarded`]).
pub type GuardedClient = Client<Empty<Bytes>, PublicOnly>;
/// ... for requests without a body.
pub type HttpsClient = Client<Empty<Bytes>>;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("reading CA certificates {path}: {source}")]
    Ca {
        path: String,
        source: rustls::pki_types::pem::Error,
    },
    #[error("CA certificate in {0}: {1}")]
    BadCa(String, rustls::Error),
    #[error("TLS client configuration: {0}")]
    Config(#[from] rustls::Error),
}

/// A client trusting the system's roots.
pub fn https() -> HttpsClient {
    build(&[]).expect("the system's roots need no files")
}

/// A client trusting the system's roots and the PEM certificates in `extra_ca` files.
pub fn build<B>(extra_ca: &[&Path]) -> Result<Client<B>, ClientError>
where
    B: http_body::Body + Send + 'static,
    B::Data: Send,
{
    with_resolver(extra_ca, GaiResolver::new(), Duration::from_secs(2))
}

/// A client for URLs an API user gives: it trusts the system's roots and `extra_ca`, and
/// connects only to addresses on the public internet unless `allow_private` (a LAN-only
/// deployment, a test). A URL with an address for its host is for the caller to check
/// ([`is_public`]): only names go through the resolver.
pub fn guarded(extra_ca: &[&Path], allow_private: bool) -> Result<GuardedClient, ClientError> {
    with_resolver(
        extra_ca,
        PublicOnly { allow_private },
        Duration::from_secs(10),
    )
}

fn with_resolver<B, R>(
    extra_ca: &[&Path],
    resolver: R,
    connect_timeout: Duration,
) -> Result<Client<B, R>, ClientError>
where
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    R: tower_service::Service<Name> + Clone + Send + Sync + 'static,
    R::Response: Iterator<Item = SocketAddr>,
    R::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    R::Future: Send,
{
    let mut roots = rustls::RootCertStore::empty();
    // Unreadable system certificates are skipped (a container may have none).
    let native = rustls_native_certs::load_native_certs();
    roots.add_parsable_certificates(native.certs);
    for path in extra_ca {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .and_then(|it| it.collect())
            .map_err(|source| ClientError::Ca {
                path: path.display().to_string(),
                source,
            })?;
        for c in certs {
            roots
                .add(c)
                .map_err(|e| ClientError::BadCa(path.display().to_string(), e))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut http = HttpConnector::new_with_resolver(resolver);
    http.enforce_http(false);
    http.set_connect_timeout(Some(connect_timeout));
    http.set_nodelay(true);
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Ok(
        hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector),
    )
}

/// Resolves names as the system does, keeping only addresses on the public internet (all of
/// them when `allow_private`); a name with none left is an error that says so.
#[derive(Clone, Debug)]
pub struct PublicOnly {
    allow_private: bool,
}

impl tower_service::Service<Name> for PublicOnly {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = std::io::Result<Self::Response>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let kept: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), 0))
                .await?
                .filter(|a| allow_private || is_public(a.ip()))
                .collect();
            if kept.is_empty() {
                // (Which addresses, it does not say: they are of the server's own network.)
                return Err(std::io::Error::new(
                    std::io::ErrorKind::PermissionDenied,
                    format!("{name} resolves only to addresses not on the public internet"),
                ));
            }
            Ok(kept.into_iter())
        })
    }
}

/// Whether `ip` is an address on the public internet: not loopback, private (RFC 1918, shared
/// 100.64/10, unique local fc00::/7), link-local, unspecified, multicast, broadcast,
/// documentation, benchmarking or reserved; an IPv4 address inside IPv6 (mapped, NAT64) is
/// judged as the IPv4 address.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public_v4(v4);
            }
            let s = v6.segments();
            let v4 = |hi: u16, lo: u16| {
                let [a, b] = hi.to_be_bytes();
                let [c, d] = lo.to_be_bytes();
                Ipv4Addr::new(a, b, c, d)
            };
            // NAT64's well-known prefix: the IPv4 address it reaches.
            if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
                return is_public_v4(v4(s[6], s[7]));
            }
            // 6to4: the IPv4 address it is tunnelled to.
            if s[0] == 0x2002 {
                return is_public_v4(v4(s[1], s[2]));
            }
            // Local-use NAT64 (RFC 8215) and SIIT's IPv4-translated addresses reach whatever
            // the operator's translator reaches: not the public internet for sure.
            if (s[0] == 0x64 && s[1] == 0xff9b && s[2] == 1)
                || (s[0..4] == [0, 0, 0, 0] && s[4] == 0xffff && s[5] == 0)
            {
                return false;
            }
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique local
                || (s[0] & 0xffc0) == 0xfe80 // link-local
                || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated)
                || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
                || s[0..6] == [0, 0, 0, 0, 0, 0]) // IPv4-compatible, deprecated
        }
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // shared address space
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || a >= 240) // reserved
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_addresses() {
        for public in [
            "8.8.8.8",
            "1.1.1.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
        ] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "240.0.0.1",
            "198.18.0.1",
            "::1",
            "::",
            "fc00::1",
            "fd12::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a00:1",
            "64:ff9b:1::808:808",
            "2002:a00:1::1",
            "::ffff:0:808:808",
            "::127.0.0.1",
        ] {
            assert!(!is_public(private.parse().unwrap()), "{private}");
        }
    }

    #[tokio::test]
    async fn names_that_resolve_to_private_addresses_are_refused() {
        use tower_service::Service;
        let name: Name = "localhost".parse().unwrap();
        let refused = PublicOnly {
            allow_private: false,
        }
        .call(name.clone())
        .await;
        let e = refused.unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::PermissionDenied);
        assert!(e.to_string().contains("not on the public internet"), "{e}");
        let allowed = PublicOnly {
            allow_private: true,
        }
        .call(name)
        .await
        .unwrap();
        assert!(allowed.count() > 0);
    }
}
