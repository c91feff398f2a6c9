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

    fn sendfile(
        &self,
        cx: &mut Context<'_>,
        fd: i32,
        offset: u64,
        len: usize,
    ) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.inner.poll_write_ready(cx))?;
            let sent = self.inner.try_io(Interest::WRITABLE, || {
                let mut off = offset as libc::off_t;
                // SAFETY: both fds are open (the slab outlives the slice being written); the
                // kernel reads from the memfd at `off`.
                let n = unsafe { libc::sendfile(self.inner.as_raw_fd(), fd, &mut off, len) };
                if n < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(n as usize)
                }
            });
            match sent {
                Ok(n) => return Poll::Ready(Ok(n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl SendfileIo {
    fn send_more(&self, cx: &mut Context<'_>, bufs: &[IoSlice<'_>]) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.inner.poll_write_ready(cx))?;
            let sent = self.inner.try_io(Interest::WRITABLE, || {
                // SAFETY: the iovecs point at `bufs`, alive for the call; msghdr is zeroed
                // apart from them.
                let n = unsafe {
                    let mut msg: libc::msghdr = std::mem::zeroed();
                    msg.msg_iov = bufs.as_ptr() as *mut libc::iovec;
                    msg.msg_iovlen = bufs.len().min(libc::UIO_MAXIOV as usize) as _;
                    libc::sendmsg(
                        self.inner.as_raw_fd(),
                        &msg,
                        libc::MSG_MORE | libc::MSG_NOSIGNAL,
                    )
                };
                if n < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(n as usize)
                }
            });
            match sent {
                Ok(n) => return Poll::Ready(Ok(n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
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
                return self.sendfile(cx, fd, offset, buf.len());
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
            return self.sendfile(cx, fd, offset, bufs[first].len());
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
