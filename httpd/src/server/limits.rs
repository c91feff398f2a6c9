//! What one client may hold before it is a viewer: connections per address, and the time it
//! gets to start talking.
//!
//! - [`PerIp`] counts open connections per remote address; past the cap a new one is closed at
//!   once (a single host cannot take every connection slot).
//! - [`FirstBytes`] gives a new connection a deadline for its first bytes. hyper's own header
//!   timeout only starts once it knows the protocol, which it learns from those bytes: a peer
//!   that connects and sends nothing (or half an HTTP/2 preface) would otherwise be held until
//!   it hangs up.

use std::collections::HashMap;
use std::future::Future;
use std::io::{self, IoSlice};
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// Open connections per remote address, capped.
#[derive(Debug)]
pub struct PerIp {
    open: Mutex<HashMap<IpAddr, usize>>,
    /// 0: no cap.
    cap: usize,
}

/// One connection counted against its address; uncounted on drop.
pub struct Counted {
    per_ip: Arc<PerIp>,
    ip: IpAddr,
}

impl PerIp {
    pub fn new(cap: usize) -> Arc<PerIp> {
        Arc::new(PerIp {
            open: Mutex::new(HashMap::new()),
            cap,
        })
    }

    /// Counts a new connection from `ip`, unless `ip` already has the cap's worth open.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<Counted> {
        if self.cap == 0 {
            return Some(Counted {
                per_ip: self.clone(),
                ip,
            });
        }
        let mut open = self.open.lock().unwrap();
        let n = open.entry(ip).or_insert(0);
        if *n >= self.cap {
            return None;
        }
        *n += 1;
        Some(Counted {
            per_ip: self.clone(),
            ip,
        })
    }

    /// Connections open from `ip` (counted only with a cap).
    pub fn open(&self, ip: IpAddr) -> usize {
        self.open.lock().unwrap().get(&ip).copied().unwrap_or(0)
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        if self.per_ip.cap == 0 {
            return;
        }
        let mut open = self.per_ip.open.lock().unwrap();
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// Bytes that tell hyper the protocol: the HTTP/2 preface is the longest thing it looks for.
const DETECTED_AFTER: usize = 24;

/// A connection whose reads fail (`TimedOut`) if its first bytes do not come in time; after
/// them it is the connection as it is. Writes pass straight through (vectored writes included,
/// so `sendfile` still sees them).
pub struct FirstBytes<IO> {
    inner: IO,
    deadline: Option<Pin<Box<Sleep>>>,
    read: usize,
}

impl<IO> FirstBytes<IO> {
    pub fn new(inner: IO, within: Duration) -> Self {
        FirstBytes {
            inner,
            deadline: Some(Box::pin(tokio::time::sleep(within))),
            read: 0,
        }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for FirstBytes<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(r) => {
                this.read += buf.filled().len() - before;
                if this.read >= DETECTED_AFTER {
                    this.deadline = None;
                }
                Poll::Ready(r)
            }
            Poll::Pending => {
                let expired = match this.deadline.as_mut() {
                    Some(d) => d.as_mut().poll(cx).is_ready(),
                    None => false,
                };
                if expired {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the client sent nothing usable in time",
                    )));
                }
                Poll::Pending
            }
        }
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for FirstBytes<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn the_cap_counts_per_address_and_frees_on_drop() {
        let per_ip = PerIp::new(2);
        let a: IpAddr = [10, 0, 0, 1].into();
        let b: IpAddr = [10, 0, 0, 2].into();
        let one = per_ip.admit(a).unwrap();
        let _two = per_ip.admit(a).unwrap();
        assert!(per_ip.admit(a).is_none(), "a third from the same address");
        assert!(per_ip.admit(b).is_some(), "another address is not affected");
        drop(one);
        assert_eq!(per_ip.open(a), 1);
        assert!(per_ip.admit(a).is_some());
        let off = PerIp::new(0);
        let kept: Vec<_> = (0..100).map(|_| off.admit(a).unwrap()).collect();
        assert_eq!(kept.len(), 100, "no cap");
    }

    #[tokio::test(start_paused = true)]
    async fn silence_times_out_and_talk_does_not() {
        let (client, server) = tokio::io::duplex(1024);
        let mut silent = FirstBytes::new(server, Duration::from_secs(5));
        let mut buf = [0u8; 64];
        let e = silent.read(&mut buf).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        drop(client);

        let (mut client, server) = tokio::io::duplex(1024);
        let mut talking = FirstBytes::new(server, Duration::from_secs(5));
        client
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let n = talking.read(&mut buf).await.unwrap();
        assert!(n >= DETECTED_AFTER);
        // Past the deadline, a connection that spoke is not cut.
        tokio::time::sleep(Duration::from_secs(10)).await;
        client.write_all(b"x").await.unwrap();
        assert_eq!(talking.read(&mut buf).await.unwrap(), 1);
    }
}
