//! A response body made of `Bytes` chunks: a segment is served as the parts it was written
//! in, a part or playlist as one chunk. Nothing is copied. A segment still being written is a
//! streamed body: its parts are sent as they land (chunked transfer encoding on HTTP/1.1), and
//! if it can never be finished the body fails, so the connection is cut rather than a
//! truncated segment looking complete to a cache.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Frame, SizeHint};

#[derive(Debug, Default)]
pub struct Body {
    chunks: VecDeque<Bytes>,
    remaining: u64,
    /// Further chunks of a streamed body; `Err` aborts the response.
    stream: Option<tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>>,
}

impl Body {
    pub fn empty() -> Self {
        Self::default()
    }

    pub fn chunks(chunks: impl IntoIterator<Item = Bytes>) -> Self {
        let chunks: VecDeque<Bytes> = chunks.into_iter().filter(|c| !c.is_empty()).collect();
        let remaining = chunks.iter().map(|c| c.len() as u64).sum();
        Self {
            chunks,
            remaining,
            stream: None,
        }
    }

    /// A body whose length is not known yet: chunks arrive on `rx` until it closes.
    pub fn streamed(rx: tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>) -> Self {
        Self {
            chunks: VecDeque::new(),
            remaining: 0,
            stream: Some(rx),
        }
    }

    pub fn len(&self) -> u64 {
        self.remaining
    }

    pub fn is_empty(&self) -> bool {
        self.remaining == 0
    }
}

impl From<Bytes> for Body {
    fn from(b: Bytes) -> Self {
        Body::chunks([b])
    }
}

impl From<String> for Body {
    fn from(s: String) -> Self {
        Body::chunks([Bytes::from(s)])
    }
}

impl From<&'static str> for Body {
    fn from(s: &'static str) -> Self {
        Body::chunks([Bytes::from_static(s.as_bytes())])
    }
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        if let Some(c) = self.chunks.pop_front() {
            self.remaining -= c.len() as u64;
            return Poll::Ready(Some(Ok(Frame::data(c))));
        }
        let Some(rx) = self.stream.as_mut() else {
            return Poll::Ready(None);
        };
        match rx.poll_recv(cx) {
            Poll::Ready(Some(Ok(c))) => Poll::Ready(Some(Ok(Frame::data(c)))),
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e))),
            Poll::Ready(None) => {
                self.stream = None;
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.chunks.is_empty() && self.stream.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        if self.stream.is_some() {
            let mut h = SizeHint::new();
            h.set_lower(self.remaining);
            return h;
        }
        SizeHint::with_exact(self.remaining)
    }
}
