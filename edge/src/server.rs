//! The HTTP listener: one task per connection, HTTP/1.1 or HTTP/2 chosen per connection (ALPN
//! over TLS, the connection preface in cleartext), admission bounded by a semaphore, graceful
//! shutdown on cancel.

use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};

use crate::routes::Service;

/// Serves HTTP on `listener` until `cancel` fires. Open connections get a few seconds to
/// finish what they are sending.
pub async fn serve(listener: TcpListener, service: Service, cancel: CancellationToken) {
    serve_tls(listener, None, service, cancel).await
}

/// As [`serve`], over TLS when an acceptor is given.
pub async fn serve_tls(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    service: Service,
    cancel: CancellationToken,
) {
    let tracker = TaskTracker::new();
    let permits = Arc::new(Semaphore::new(service.config().max_connections.max(1)));
    loop {
        let permit = tokio::select! {
            _ = cancel.cancelled() => break,
            p = permits.clone().acquire_owned() => p.expect("semaphore never closed"),
        };
        let (socket, peer) = tokio::select! {
            _ = cancel.cancelled() => break,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    warn!(error = %e, "http accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = socket.set_nodelay(true);
        let service = service.clone();
        let cancel = cancel.clone();
        let tls = tls.clone();
        tracker.spawn(async move {
            match tls {
                #[cfg(target_os = "linux")]
                None if packager::shm::enabled() => {
                    let io = crate::sendfile::SendfileIo::new(socket);
                    connection(io, service, cancel, peer).await
                }
                None => connection(socket, service, cancel, peer).await,
                Some(acceptor) => {
                    match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(socket))
                        .await
                    {
                        Ok(Ok(stream)) => connection(stream, service, cancel, peer).await,
                        Ok(Err(e)) => debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => debug!(%peer, "TLS handshake timed out"),
                    }
                }
            }
            drop(permit);
        });
    }
    tracker.close();
    let _ = tokio::time::timeout(Duration::from_secs(5), tracker.wait()).await;
}

async fn connection<IO>(
    io: IO,
    service: Service,
    cancel: CancellationToken,
    peer: std::net::SocketAddr,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let svc = service_fn(move |req| {
        let service = service.clone();
        async move { Ok::<_, std::convert::Infallible>(service.handle(req, peer).await) }
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // Queue body chunks for vectored writes instead of flattening them into hyper's buffer:
    // a part or segment goes from the window to the socket without being copied.
    builder.http1().writev(true);
    let conn = builder.serve_connection(TokioIo::new(io), svc);
    tokio::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        _ = cancel.cancelled() => {
            conn.as_mut().graceful_shutdown();
            match tokio::time::timeout(Duration::from_secs(3), conn.as_mut()).await {
                Ok(r) => r,
                Err(_) => Ok(()),
            }
        }
    };
    if let Err(e) = result {
        debug!(%peer, error = %e, "http connection ended with an error");
    }
}
