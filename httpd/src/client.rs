//! The HTTP client this server uses for its own requests (an edge's fetches from origins, a
//! JWKS document): HTTP/1.1 over TCP, or over TLS (rustls, ring) trusting the system's roots
//! and any extra CA certificates the operator names.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Empty;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

/// A client for `http://` and `https://` URLs, sending bodies of type `B`.
pub type Client<B> = hyper_util::client::legacy::Client<HttpsConnector<HttpConnector>, B>;
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
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(Some(Duration::from_secs(2)));
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
