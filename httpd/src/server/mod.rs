//! The HTTP listener: one task per connection, HTTP/1.1 or HTTP/2 chosen per connection (ALPN
//! over TLS, the connection preface in cleartext), admission bounded by a semaphore, graceful
//! shutdown on cancel. Connections are served on worker threads of their own ([`serve_tls`]);
//! cleartext ones send parts kept in shared memory with `sendfile` ([`sendfile`]). What one
//! client may hold ([`limits`]): connections per address, a deadline for its first bytes and
//! each request's headers (hyper's header timeout, also the keep-alive idle time), and HTTP/2
//! pings and a stream cap.

pub mod limits;
#[cfg(target_os = "linux")]
pub mod sendfile;
pub mod tls;

use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, error, warn};

use crate::service::Service;
use limits::{FirstBytes, PerIp};

/// Who may take a connection slot: at most `max_connections` at once (more wait in the accept
/// queue), and at most the per-address cap from one address (more are closed at once).
#[derive(Clone)]
struct Admission {
    permits: Arc<Semaphore>,
    per_ip: Arc<PerIp>,
}

/// The HTTP listener, with an accept queue long enough for a crowd of viewers (re)connecting
/// at once (the kernel caps it at `net.core.somaxconn`); tokio's default is 1024.
pub fn bind(addr: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(8192)
}

/// Serves HTTP on `listener` until `cancel` fires. Open connections get a few seconds to
/// finish what they are sending.
pub async fn serve(listener: TcpListener, service: Service, cancel: CancellationToken) {
    serve_tls(listener, None, service, cancel).await
}

/// As [`serve`], over TLS when an acceptor is given.
///
/// With `workers` > 0 in the config, connections are served on that many threads of their own,
/// each a single-threaded runtime accepting from the same listener (as nginx's worker
/// processes do): a connection's requests never cross threads, and the caller's runtime
/// (ingest, packaging) is left alone. With 0 they are served on the caller's runtime (as they
/// are if no worker can start). Returns once every worker has stopped accepting and its
/// connections are done or given up on; the worker threads stay until the process exits.
pub async fn serve_tls(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    service: Service,
    cancel: CancellationToken,
) {
    let admission = Admission {
        permits: Arc::new(Semaphore::new(service.config().max_connections.max(1))),
        per_ip: PerIp::new(service.config().max_connections_per_ip),
    };
    let workers = service.config().workers;
    if workers == 0 {
        accept_loop(listener, tls, service, cancel, admission).await;
        return;
    }
    let listener = match listener.into_std() {
        Ok(l) => l,
        Err(e) => {
            error!(error = %e, "http listener lost: cannot hand it to the workers");
            return;
        }
    };
    let mut starting = Vec::new();
    for i in 0..workers {
        let listener = match listener.try_clone() {
            Ok(l) => l,
            Err(e) => {
                warn!(error = %e, "http listener cannot be shared with more workers");
                break;
            }
        };
        let (ready_tx, ready_rx) = oneshot::channel::<()>();
        let (stopped_tx, stopped_rx) = oneshot::channel::<()>();
        let (tls, service, cancel, admission) = (
            tls.clone(),
            service.clone(),
            cancel.clone(),
            admission.clone(),
        );
        let spawned = std::thread::Builder::new()
            .name(format!("http-{i}"))
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(r) => r,
                    Err(e) => {
                        warn!(error = %e, "http worker runtime failed to start");
                        return;
                    }
                };
                runtime.block_on(async move {
                    let listener = match TcpListener::from_std(listener) {
                        Ok(l) => l,
                        Err(e) => {
                            warn!(error = %e, "http worker cannot listen");
                            return;
                        }
                    };
                    let _ = ready_tx.send(());
                    accept_loop(listener, tls, service, cancel, admission).await;
                    drop(stopped_tx);
                    // Clients shared with the rest of the process (Redis, the origins, object
                    // storage) may keep connection tasks on this runtime that the rest of the
                    // shutdown (archive uploads, say) still uses: drive them until the process
                    // exits.
                    std::future::pending::<()>().await
                });
            });
        match spawned {
            Ok(_) => starting.push((ready_rx, stopped_rx)),
            Err(e) => warn!(error = %e, "http worker thread failed to start"),
        }
    }
    let mut running = Vec::new();
    for (ready, stopped) in starting {
        if ready.await.is_ok() {
            running.push(stopped);
        }
    }
    if running.is_empty() {
        warn!("no http worker started; serving on the main runtime");
        match TcpListener::from_std(listener) {
            Ok(l) => accept_loop(l, tls, service, cancel, admission).await,
            Err(e) => error!(error = %e, "http listener lost"),
        }
        return;
    }
    for stopped in running {
        let _ = stopped.await;
        if !cancel.is_cancelled() {
            error!("an http worker stopped unexpectedly; the others go on serving");
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    service: Service,
    cancel: CancellationToken,
    admission: Admission,
) {
    let tracker = TaskTracker::new();
    let first_bytes = service.config().header_timeout;
    loop {
        let permit = tokio::select! {
            _ = cancel.cancelled() => break,
            p = admission.permits.clone().acquire_owned() => p.expect("semaphore never closed"),
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
        let Some(counted) = admission.per_ip.admit(peer.ip()) else {
            debug!(%peer, "connection refused: too many from this address");
            continue;
        };
        let _ = socket.set_nodelay(true);
        let service = service.clone();
        // A token of its own: a connection checks it each time it wakes, and one shared by
        // every connection would be a lock both cores take on every request.
        let cancel = cancel.child_token();
        let tls = tls.clone();
        tracker.spawn(async move {
            match tls {
                #[cfg(target_os = "linux")]
                None if packager::shm::enabled() => {
                    let io = FirstBytes::new(sendfile::SendfileIo::new(socket), first_bytes);
                    connection(io, service, cancel, peer).await
                }
                None => {
                    let io = FirstBytes::new(socket, first_bytes);
                    connection(io, service, cancel, peer).await
                }
                Some(acceptor) => {
                    match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(socket))
                        .await
                    {
                        Ok(Ok(stream)) => {
                            let io = FirstBytes::new(stream, first_bytes);
                            connection(io, service, cancel, peer).await
                        }
                        Ok(Err(e)) => debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => debug!(%peer, "TLS handshake timed out"),
                    }
                }
            }
            drop((permit, counted));
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
    let config = service.config().clone();
    let svc = service_fn(move |req| {
        let service = service.clone();
        async move { Ok::<_, std::convert::Infallible>(service.handle(req, peer).await) }
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // Queue body chunks for vectored writes instead of flattening them into hyper's buffer:
    // a part or segment goes from the window to the socket without being copied. A request's
    // headers must arrive within the header timeout, counted from the connection's start or the
    // end of the previous response (so it is the keep-alive idle time too).
    builder
        .http1()
        .writev(true)
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_timeout);
    // HTTP/2: pings find dead peers; a cap on the streams one connection may hold open.
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(config.http2_keepalive)
        .keep_alive_timeout(config.http2_keepalive)
        .max_concurrent_streams(config.http2_max_streams);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::HttpConfig;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    /// Sends one keep-alive GET and reads its answer (a body ending in "ok\n").
    async fn healthz(c: &mut TcpStream) -> String {
        c.write_all(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")
            .await
            .unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 1024];
        while !got.ends_with(b"\r\n\r\nok\n") {
            let n = c.read(&mut buf).await.unwrap();
            assert!(
                n > 0,
                "closed before the answer: {:?}",
                String::from_utf8_lossy(&got)
            );
            got.extend_from_slice(&buf[..n]);
        }
        String::from_utf8(got).unwrap()
    }

    /// Worker threads answer many connections at once, and all of them stop on cancel, closing
    /// the connections they hold.
    #[tokio::test]
    async fn workers_serve_connections_and_stop_on_cancel() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let config = HttpConfig {
            workers: 3,
            ..Default::default()
        };
        let service = Service::new(packager::Windows::new(), config);
        let cancel = CancellationToken::new();
        let server = tokio::spawn(serve(listener, service, cancel.clone()));

        let clients: Vec<_> = (0..40)
            .map(|_| {
                tokio::spawn(async move {
                    let mut c = TcpStream::connect(addr).await.unwrap();
                    let first = healthz(&mut c).await;
                    let second = healthz(&mut c).await;
                    (first, second)
                })
            })
            .collect();
        for c in clients {
            let (first, second) = c.await.unwrap();
            assert!(first.starts_with("HTTP/1.1 200 OK\r\n"), "{first}");
            assert!(second.starts_with("HTTP/1.1 200 OK\r\n"), "{second}");
        }

        // Served by the workers: three threads of their own. A thread names itself when it
        // first runs, which on a loaded machine can be after the others served every client.
        #[cfg(target_os = "linux")]
        {
            let workers = || {
                std::fs::read_dir("/proc/self/task")
                    .unwrap()
                    .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
                    .filter(|name| name.starts_with("http-"))
                    .count()
            };
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while workers() < 3 && std::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            assert_eq!(workers(), 3, "worker threads");
        }

        let mut held = TcpStream::connect(addr).await.unwrap();
        healthz(&mut held).await;
        cancel.cancel();
        tokio::time::timeout(Duration::from_secs(10), server)
            .await
            .expect("every worker stops within the grace period")
            .unwrap();
        let mut buf = [0u8; 16];
        let n = tokio::time::timeout(Duration::from_secs(5), held.read(&mut buf))
            .await
            .expect("the held connection is closed")
            .unwrap_or(0);
        assert_eq!(n, 0, "the held keep-alive connection is closed");
        assert!(
            TcpStream::connect(addr).await.is_err(),
            "nobody listens any more"
        );
    }
}
