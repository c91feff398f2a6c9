//! The RTMP (or RTMPS) listener and one task per publisher connection: the socket around our
//! sans-IO [`Handshake`] and [`Session`], the session's events through the adapter to the
//! connection's [`Publisher`].
//!
//! Lifecycle: (RTMPS: TLS handshake) → handshake → `connect` (app must be the configured one, `live`) → `publish` with
//! a stream key from `[[streams]]` → audio/video until `deleteStream`, EOF, an idle timeout or
//! a protocol error. Until the publish is accepted the connection has a deadline
//! (`publish_timeout`) and small message limits. A refused or broken connection gets an
//! `onStatus` error where RTMP has one, a log line naming the peer and stream (and, for a
//! protocol error, the chunk stream, message type and offset), and is closed; other connections
//! never notice.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use media::Hub;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn, Instrument};

use super::adapter::{Adapter, PublishHints};
use super::amf0::Amf0;
use super::flv::FlvError;
use super::handshake::{Handshake, HandshakeError};
use super::session::{Event, Session, SessionError};
use crate::auth::Authorizer;
use crate::publisher::{Protocol, Publisher};

#[derive(Debug, thiserror::Error)]
pub enum RtmpError {
    #[error("socket: {0}")]
    Io(#[from] std::io::Error),
    #[error("handshake: {0}")]
    Handshake(#[from] HandshakeError),
    #[error("RTMP: {0}")]
    Session(#[from] SessionError),
    #[error("malformed media message on stream {stream:?}: {source}")]
    Media { stream: String, source: FlvError },
    #[error("refused: {0}")]
    Refused(String),
    #[error("{0}")]
    Hub(#[from] media::HubError),
    #[error("no data for {0:?}")]
    Idle(Duration),
    #[error("did not publish within {0:?}")]
    NoPublish(Duration),
    #[error("TLS: {0}")]
    Tls(std::io::Error),
}

#[derive(Clone)]
pub struct RtmpConfig {
    pub auth: Arc<Authorizer>,
    pub hub: Hub,
    /// The RTMP application publishers must connect to (`rtmp://HOST/live`).
    pub app: String,
    /// A publisher that sends nothing for this long is disconnected.
    pub idle_timeout: Duration,
    /// A connection that has not been let publish this long after it was accepted is closed.
    pub publish_timeout: Duration,
    /// Connections beyond this wait in the accept queue.
    pub max_connections: usize,
}

/// Accepts RTMP connections until `cancel` fires, then waits for open connections to close.
/// With `tls`, each connection is RTMPS: its TLS handshake comes first, within the publish
/// deadline.
pub async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    config: RtmpConfig,
    cancel: CancellationToken,
) {
    let tracker = TaskTracker::new();
    let permits = Arc::new(Semaphore::new(config.max_connections.max(1)));
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
                    warn!(error = %e, "rtmp accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let config = config.clone();
        let cancel = cancel.clone();
        let tls = tls.clone();
        let span = match tls {
            Some(_) => tracing::info_span!("rtmps", %peer),
            None => tracing::info_span!("rtmp", %peer),
        };
        tracker.spawn(
            async move {
                debug!("connected");
                let _ = socket.set_nodelay(true);
                let deadline = Instant::now() + config.publish_timeout;
                match tls {
                    None => connection(Connection::new(socket, peer, config, deadline), cancel).await,
                    Some(tls) => {
                        let accepted = tokio::select! {
                            r = tokio::time::timeout_at(deadline, tls.accept(socket)) => r,
                            _ = cancel.cancelled() => return,
                        };
                        match accepted {
                            Ok(Ok(stream)) => {
                                connection(Connection::new(stream, peer, config, deadline), cancel).await
                            }
                            Ok(Err(e)) => warn!(error = %RtmpError::Tls(e), "connection closed with error"),
                            Err(_) => {
                                let e = RtmpError::NoPublish(config.publish_timeout);
                                warn!(error = %e, "connection closed with error (in the TLS handshake)");
                            }
                        }
                    }
                }
                drop(permit);
            }
            .instrument(span),
        );
    }
    tracker.close();
    tracker.wait().await;
}

/// Runs one connection until it ends or `cancel` fires, and logs how it ended.
async fn connection<S: AsyncRead + AsyncWrite + Unpin>(
    mut conn: Connection<S>,
    cancel: CancellationToken,
) {
    let result = tokio::select! {
        r = conn.run() => r,
        _ = cancel.cancelled() => Ok(()),
    };
    match result {
        Ok(()) => info!(stream = conn.stream_name(), "connection closed"),
        Err(e) => {
            warn!(stream = conn.stream_name(), error = %e, "connection closed with error");
            conn.send_error_status(&e).await;
        }
    }
}

struct Connection<S> {
    socket: S,
    peer: SocketAddr,
    config: RtmpConfig,
    session: Session,
    stream_name: Option<String>,
    /// Where this connection's media goes, from an accepted `publish` until it finishes.
    publisher: Option<Publisher>,
    adapter: Adapter,
    /// Until a publish is accepted, the connection must get there by this time.
    deadline: Option<Instant>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Connection<S> {
    fn new(socket: S, peer: SocketAddr, config: RtmpConfig, deadline: Instant) -> Self {
        let deadline = Some(deadline);
        Self {
            socket,
            peer,
            config,
            session: Session::new(),
            stream_name: None,
            publisher: None,
            adapter: Adapter::new(),
            deadline,
        }
    }

    fn stream_name(&self) -> &str {
        self.stream_name.as_deref().unwrap_or("-")
    }

    /// Reads what comes, within the idle timeout and (before publishing) the deadline.
    async fn read_some(&mut self, buf: &mut [u8]) -> Result<usize, RtmpError> {
        let idle = self.config.idle_timeout;
        let until = Instant::now() + idle;
        let (until, err) = match self.deadline {
            Some(d) if d < until => (d, RtmpError::NoPublish(self.config.publish_timeout)),
            _ => (until, RtmpError::Idle(idle)),
        };
        match tokio::time::timeout_at(until, self.socket.read(buf)).await {
            // Over TLS, a client that closes without close_notify (most do) is just closing.
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(0),
            Ok(r) => Ok(r?),
            Err(_) => Err(err),
        }
    }

    async fn run(&mut self) -> Result<(), RtmpError> {
        let mut buf = vec![0u8; 64 * 1024];
        let mut handshake = Handshake::new();
        let mut out = Vec::new();
        let first_chunks = loop {
            let n = self.read_some(&mut buf).await?;
            if n == 0 {
                return Ok(());
            }
            let rest = handshake.push(&buf[..n], &mut out)?;
            if !out.is_empty() {
                self.write(&out).await?;
                out.clear();
            }
            if let Some(rest) = rest {
                break rest;
            }
        };
        self.input(&first_chunks).await?;
        loop {
            let n = self.read_some(&mut buf).await?;
            if n == 0 {
                return Ok(());
            }
            // After a publisher finishes (deleteStream, FCUnpublish) the connection stays until
            // the client closes it (GStreamer's rtmp2sink takes an early close for an error),
            // or the idle timeout.
            self.input(&buf[..n]).await?;
        }
    }

    /// Takes bytes from the peer: the session's events handled, its answers sent.
    async fn input(&mut self, bytes: &[u8]) -> Result<(), RtmpError> {
        let r = self.session.push(bytes).map_err(RtmpError::from);
        let r = match r {
            Ok(()) => self.events().await,
            Err(e) => Err(e),
        };
        self.flush().await?;
        r
    }

    async fn flush(&mut self) -> Result<(), RtmpError> {
        let out = self.session.take_output();
        if !out.is_empty() {
            self.write(&out).await?;
        }
        Ok(())
    }

    /// Sends `bytes` now (a TLS stream holds them until flushed).
    async fn write(&mut self, bytes: &[u8]) -> Result<(), RtmpError> {
        self.socket.write_all(bytes).await?;
        self.socket.flush().await?;
        Ok(())
    }

    async fn events(&mut self) -> Result<(), RtmpError> {
        while let Some(ev) = self.session.pull() {
            match ev {
                Event::Connect { app } => {
                    let app = app.trim_matches('/').to_string();
                    if app != self.config.app {
                        let msg = format!(
                            "unknown application {app:?}; publish to rtmp://HOST/{}",
                            self.config.app
                        );
                        self.session.reject_connect(&msg);
                        return Err(RtmpError::Refused(msg));
                    }
                    self.session.accept_connect()?;
                }
                Event::Publish { key } => self.publish(&key).await?,
                Event::Metadata(meta) => {
                    debug!(?meta, "metadata");
                    self.adapter.hints(hints_from(&meta));
                }
                Event::Video { timestamp, data } => self.media(true, timestamp, &data)?,
                Event::Audio { timestamp, data } => self.media(false, timestamp, &data)?,
                Event::Unpublish => {
                    // Stopped on purpose (OBS "Stop Streaming"): the stream ends without
                    // waiting for a reconnect.
                    if let Some(p) = self.publisher.take() {
                        p.end();
                    }
                }
                Event::PlayRefused => debug!("a client asked to play; refused"),
            }
        }
        Ok(())
    }

    /// An audio or video message through the adapter to the publisher.
    fn media(&mut self, video: bool, timestamp: u32, data: &bytes::Bytes) -> Result<(), RtmpError> {
        let Some(publisher) = self.publisher.as_mut() else {
            return Ok(());
        };
        let r = if video {
            self.adapter.video(timestamp, data)
        } else {
            self.adapter.audio(timestamp, data)
        };
        if let Err(source) = r {
            let stream = publisher.name().to_string();
            return Err(RtmpError::Media { stream, source });
        }
        let adapter = &mut self.adapter;
        publisher.drain(|| adapter.pull())?;
        Ok(())
    }

    /// A `publish` (each connection's first): the key is checked (a refusal comes after the
    /// address's delay, within the publish deadline) and the stream name claimed.
    async fn publish(&mut self, stream_key: &str) -> Result<(), RtmpError> {
        // OBS and ffmpeg may append a query string to the key.
        let key = stream_key.split('?').next().unwrap_or_default();
        let decision = self.config.auth.authorize(Protocol::Rtmp, key, self.peer);
        let decision = match self.deadline {
            Some(d) => tokio::time::timeout_at(d, decision)
                .await
                .map_err(|_| RtmpError::NoPublish(self.config.publish_timeout))?,
            None => decision.await,
        };
        let name = match decision {
            Ok(name) => name,
            Err(denied) => {
                self.session
                    .reject_publish("NetStream.Publish.BadName", "publish refused");
                return Err(RtmpError::Refused(denied.to_string()));
            }
        };
        self.stream_name = Some(name.clone());
        let publisher = match Publisher::reserve(&self.config.hub, &name, Protocol::Rtmp) {
            Ok(p) => p,
            Err(e) => {
                self.session.reject_publish(
                    "NetStream.Publish.BadName",
                    "stream is already being published",
                );
                return Err(RtmpError::Refused(e.to_string()));
            }
        };
        self.publisher = Some(publisher);
        self.adapter = Adapter::new();
        self.deadline = None;
        self.session.accept_publish()?;
        Ok(())
    }

    /// Tells the peer why we are closing, where RTMP has a way to say it.
    async fn send_error_status(&mut self, error: &RtmpError) {
        let RtmpError::Media { source, .. } = error else {
            return;
        };
        self.session
            .error_status("NetStream.Publish.Failed", &source.to_string());
        let _ = tokio::time::timeout(Duration::from_secs(1), self.flush()).await;
    }
}

/// What the publisher announced in `onMetaData`.
fn hints_from(meta: &Amf0) -> PublishHints {
    let number = |k: &str| meta.get(k).and_then(Amf0::as_number);
    let present = |k: &str| {
        meta.get(k)
            .is_some_and(|v| !matches!(v, Amf0::Null | Amf0::Undefined))
    };
    PublishHints {
        // onMetaData lists videocodecid when there is video; metadata without it (but with
        // audio) announces an audio-only stream.
        has_video: match (
            present("videocodecid"),
            present("width"),
            present("audiocodecid"),
        ) {
            (false, false, false) => None,
            (false, false, true) => Some(false),
            _ => Some(true),
        },
        video_kbps: number("videodatarate")
            .filter(|k| *k > 0.0 && *k < 1e7)
            .map(|k| k as u32),
        audio_kbps: number("audiodatarate")
            .filter(|k| *k > 0.0 && *k < 1e7)
            .map(|k| k as u32),
        frame_rate: number("framerate").filter(|f| *f > 0.0 && *f < 1000.0),
    }
}
