//! A cleartext TCP connection that sends parts kept in shared memory ([`packager::shm`]) with
//! `sendfile(2)`, which passes page references to the socket instead of copying, as nginx does
//! for files on tmpfs. hyper hands its writes over as vectored slices (response head, then the
//! body's `Bytes`); slices that lie in a part slab go out with `sendfile`, everything else with
//! `writev` as before.

use std::io::{self, IoSlice};
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;

pub struct SendfileIo {
    inner: TcpStream,
}

impl SendfileIo {
    pub fn new(inner: TcpStream) -> Self {
        SendfileIo { inner }
    }

    /// Runs the non-blocking `write` when the socket is writable, until it does not block.
    fn poll_io(
        &self,
        cx: &mut Context<'_>,
        mut write: impl FnMut() -> io::Result<usize>,
    ) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.inner.poll_write_ready(cx))?;
            match self.inner.try_io(Interest::WRITABLE, &mut write) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                r => return Poll::Ready(r),
            }
        }
    }

    /// Sends `slice`, which lies at `offset` in the memfd `fd`.
    fn sendfile(
        &self,
        cx: &mut Context<'_>,
        slice: &[u8],
        fd: i32,
        offset: u64,
    ) -> Poll<io::Result<usize>> {
        let sock = self.inner.as_raw_fd();
        let sent = ready!(self.poll_io(cx, || {
            let mut off = offset as libc::off_t;
            // SAFETY: both fds are open (the slab outlives the slice being written); the kernel
            // reads from the memfd at `off`.
            syscall(unsafe { libc::sendfile(sock, fd, &mut off, slice.len()) })
        }));
        match sent {
            // sendfile refused here (a sandbox, an odd kernel): copy, as without it.
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EINVAL | libc::ENOSYS | libc::EOPNOTSUPP)
                ) =>
            {
                tracing::debug!(error = %e, "sendfile refused; writing instead");
                self.poll_io(cx, || self.inner.try_write(slice))
            }
            r => Poll::Ready(r),
        }
    }

    /// Sends `bufs` with MSG_MORE: more (a part) follows at once.
    fn send_more(&self, cx: &mut Context<'_>, bufs: &[IoSlice<'_>]) -> Poll<io::Result<usize>> {
        let sock = self.inner.as_raw_fd();
        self.poll_io(cx, || {
            // SAFETY: the iovecs point at `bufs`, alive for the call; msghdr is zeroed apart
            // from them.
            syscall(unsafe {
                let mut msg: libc::msghdr = std::mem::zeroed();
                msg.msg_iov = bufs.as_ptr() as *mut libc::iovec;
                msg.msg_iovlen = bufs.len().min(libc::UIO_MAXIOV as usize) as _;
                libc::sendmsg(sock, &msg, libc::MSG_MORE | libc::MSG_NOSIGNAL)
            })
        })
    }
}

/// A byte count from a syscall, or its errno.
fn syscall(n: libc::ssize_t) -> io::Result<usize> {
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

impl AsyncRead for SendfileIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for SendfileIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if !buf.is_empty() {
            if let Some((fd, offset)) = packager::shm::lookup(buf) {
                return self.sendfile(cx, buf, fd, offset);
            }
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let Some(first) = bufs.iter().position(|b| !b.is_empty()) else {
            return Poll::Ready(Ok(0));
        };
        if let Some((fd, offset)) = packager::shm::lookup(&bufs[first]) {
            return self.sendfile(cx, &bufs[first], fd, offset);
        }
        // Everything up to the next slab slice in one writev...
        let end = bufs[first..]
            .iter()
            .position(|b| !b.is_empty() && packager::shm::lookup(b).is_some())
            .map_or(bufs.len(), |k| first + k);
        if end == bufs.len() {
            return Pin::new(&mut self.inner).poll_write_vectored(cx, &bufs[first..end]);
        }
        // ... and when a part follows (a response head before its body), with MSG_MORE so the
        // head goes out in the same packets as the part instead of a small packet of its own.
        self.send_more(cx, &bufs[first..end])
    }

    fn is_write_vectored(&self) -> bool {
        true
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
    use bytes::Bytes;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A response head and a 3 MB part from a slab, through a socket whose send buffer is
    /// small, read slowly: partial sendfiles and sendmsgs, and every byte arrives in order.
    #[tokio::test]
    async fn heads_and_slab_parts_arrive_whole_through_partial_writes() {
        packager::shm::set_enabled(true);
        let slabs = packager::shm::SlabWriter::default();
        let part_bytes: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let part = slabs.place(Bytes::from(part_bytes.clone()));
        assert!(
            packager::shm::lookup(&part).is_some(),
            "the part is in a slab"
        );
        let head = Bytes::from_static(b"HTTP/1.1 200 OK\r\ncontent-length: 3000000\r\n\r\n");

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let reader = tokio::spawn(async move {
            let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
            let mut got = Vec::new();
            let mut buf = vec![0u8; 7_000];
            loop {
                let n = c.read(&mut buf).await.unwrap();
                if n == 0 {
                    return got;
                }
                got.extend_from_slice(&buf[..n]);
                tokio::time::sleep(Duration::from_micros(200)).await;
            }
        });
        let (server, _) = listener.accept().await.unwrap();
        let small: libc::c_int = 8192;
        // SAFETY: setting an int socket option on an open socket.
        unsafe {
            libc::setsockopt(
                server.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_SNDBUF,
                (&small as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
        let mut io = SendfileIo::new(server);
        // As hyper does: vectored writes of what is left, advancing by what each call took.
        let mut chunks = [head.clone(), part.clone()];
        let mut calls = 0;
        while chunks.iter().any(|c| !c.is_empty()) {
            let slices: Vec<IoSlice<'_>> = chunks.iter().map(|c| IoSlice::new(c)).collect();
            let mut n = io.write_vectored(&slices).await.unwrap();
            assert!(n > 0);
            calls += 1;
            for c in chunks.iter_mut() {
                let take = n.min(c.len());
                let _ = c.split_to(take);
                n -= take;
            }
        }
        io.shutdown().await.unwrap();
        drop(io);
        let got = reader.await.unwrap();
        assert!(calls > 2, "partial writes happened ({calls} calls)");
        assert_eq!(got.len(), head.len() + part_bytes.len());
        assert_eq!(&got[..head.len()], &head[..]);
        assert!(
            got[head.len()..] == part_bytes[..],
            "the part's bytes, in order"
        );
    }

    use std::time::Duration;
}
