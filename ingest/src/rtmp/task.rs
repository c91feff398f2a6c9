//! The RTMP listener and one task per publisher connection around rml_rtmp's session, handing
//! the adapter's output to the connection's [`Publisher`].
//!
//! Lifecycle: handshake → `connect` (app must be the configured one, `live`) → `publish` with
//! a stream key from `[[streams]]` → audio/video until `deleteStream`, EOF, an idle timeout or
//! a protocol error. A refused or broken connection gets an `onStatus` error, a log line naming
//! the peer and stream, and is closed; other connections never notice.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use media::Hub;
use rml_rtmp::chunk_io::ChunkSerializer;
use rml_rtmp::handshake::{Handshake, HandshakeError, HandshakeProcessResult, PeerType};
use rml_rtmp::messages::RtmpMessage;
use rml_rtmp::rml_amf0::Amf0Value;
use rml_rtmp::sessions::{
    ServerSession, ServerSessionConfig, ServerSessionError, ServerSessionEvent,
    ServerSessionResult, StreamMetadata,
};
use rml_rtmp::time::RtmpTimestamp;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn, Instrument};

use super::adapter::{Adapter, PublishHints};
use super::flv::FlvError;
use crate::publisher::{Protocol, Publisher};
use crate::{redact_key, StreamKeys};

#[derive(Debug, thiserror::Error)]
pub enum RtmpError {
    #[error("socket: {0}")]
    Io(#[from] std::io::Error),
    #[error("handshake: {0}")]
    Handshake(#[from] HandshakeError),
    #[error("RTMP session: {0}")]
    Session(#[from] ServerSessionError),
    #[error("malformed media message on stream {stream:?}: {source}")]
    Media { stream: String, source: FlvError },
    #[error("the RTMP session library panicked on malformed input (a bug; connection closed)")]
    SessionPanic,
    #[error("refused: {0}")]
    Refused(String),
    #[error("{0}")]
    Hub(#[from] media::HubError),
    #[error("no data for {0:?}")]
    Idle(Duration),
}

#[derive(Clone)]
pub struct RtmpConfig {
    pub keys: Arc<StreamKeys>,
    pub hub: Hub,
    /// The RTMP application publishers must connect to (`rtmp://HOST/live`).
    pub app: String,
    /// A publisher that sends nothing for this long is disconnected.
    pub idle_timeout: Duration,
    /// Connections beyond this wait in the accept queue.
    pub max_connections: usize,
}

/// Accepts RTMP connections until `cancel` fires, then waits for open connections to close.
pub async fn serve(listener: TcpListener, config: RtmpConfig, cancel: CancellationToken) {
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
        let span = tracing::info_span!("rtmp", %peer);
        tracker.spawn(
            async move {
                debug!("connected");
                let _ = socket.set_nodelay(true);
                let mut conn = Connection::new(socket, config);
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
                drop(permit);
            }
            .instrument(span),
        );
    }
    tracker.close();
    tracker.wait().await;
}

/// The message stream id rml_rtmp's server session gives the first `createStream`, which is the
/// one every publisher uses.
const PUBLISH_STREAM_ID: u32 = 1;

struct Connection {
    socket: TcpStream,
    config: RtmpConfig,
    session: Option<ServerSession>,
    stream_name: Option<String>,
    /// Where this connection's media goes, from an accepted `publish` until it finishes.
    publisher: Option<Publisher>,
    adapter: Adapter,
    pending: Vec<ServerSessionResult>,
}

impl Connection {
    fn new(socket: TcpStream, config: RtmpConfig) -> Self {
        Self {
            socket,
            config,
            session: None,
            stream_name: None,
            publisher: None,
            adapter: Adapter::new(),
            pending: Vec::new(),
        }
    }

    fn stream_name(&self) -> &str {
        self.stream_name.as_deref().unwrap_or("-")
    }

    async fn read_some(&mut self, buf: &mut [u8]) -> Result<usize, RtmpError> {
        let timeout = self.config.idle_timeout;
        match tokio::time::timeout(timeout, self.socket.read(buf)).await {
            Ok(r) => Ok(r?),
            Err(_) => Err(RtmpError::Idle(timeout)),
        }
    }

    async fn run(&mut self) -> Result<(), RtmpError> {
        let mut buf = vec![0u8; 64 * 1024];
        let mut handshake = Handshake::new(PeerType::Server);
        let remaining = loop {
            let n = self.read_some(&mut buf).await?;
            if n == 0 {
                return Ok(());
            }
            match handshake.process_bytes(&buf[..n])? {
                HandshakeProcessResult::InProgress { response_bytes } => {
                    self.socket.write_all(&response_bytes).await?;
                }
                HandshakeProcessResult::Completed {
                    response_bytes,
                    remaining_bytes,
                } => {
                    self.socket.write_all(&response_bytes).await?;
                    break remaining_bytes;
                }
            }
        };
        let (session, results) = ServerSession::new(ServerSessionConfig::new())?;
        self.session = Some(session);
        self.pending = results;
        self.flush().await?;
        self.input(&remaining).await?;
        loop {
            let n = self.read_some(&mut buf).await?;
            if n == 0 {
                return Ok(());
            }
            self.input(&buf[..n]).await?;
            if self.publisher.is_none() && self.stream_name.is_some() {
                // The publisher finished (deleteStream / FCUnpublish).
                return Ok(());
            }
        }
    }

    async fn input(&mut self, bytes: &[u8]) -> Result<(), RtmpError> {
        if bytes.is_empty() {
            return Ok(());
        }
        let session = self.session.as_mut().expect("session after handshake");
        // rml_rtmp has panicked on malformed AMF0 before (see third_party/rml_rtmp): should it
        // again, that is this connection's error, not the task's death.
        let results =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| session.handle_input(bytes)))
                .map_err(|_| RtmpError::SessionPanic)??;
        self.pending = results;
        self.flush().await
    }

    /// Sends queued responses and handles queued events, in order.
    async fn flush(&mut self) -> Result<(), RtmpError> {
        while !self.pending.is_empty() {
            let batch = std::mem::take(&mut self.pending);
            for result in batch {
                match result {
                    ServerSessionResult::OutboundResponse(packet) => {
                        self.socket.write_all(&packet.bytes).await?;
                    }
                    ServerSessionResult::RaisedEvent(event) => {
                        let more = self.event(event)?;
                        self.pending.extend(more);
                    }
                    ServerSessionResult::UnhandleableMessageReceived(_) => {}
                }
            }
        }
        Ok(())
    }

    fn session(&mut self) -> &mut ServerSession {
        self.session.as_mut().expect("session after handshake")
    }

    fn event(&mut self, event: ServerSessionEvent) -> Result<Vec<ServerSessionResult>, RtmpError> {
        match event {
            ServerSessionEvent::ConnectionRequested {
                request_id,
                app_name,
            } => {
                let app = app_name.trim_matches('/');
                if app != self.config.app {
                    let msg = format!(
                        "unknown application {app:?}; publish to rtmp://HOST/{}",
                        self.config.app
                    );
                    let r = self.session().reject_request(
                        request_id,
                        "NetConnection.Connect.Rejected",
                        &msg,
                    )?;
                    self.write_now(r);
                    return Err(RtmpError::Refused(msg));
                }
                Ok(self.session().accept_request(request_id)?)
            }
            ServerSessionEvent::PublishStreamRequested {
                request_id,
                stream_key,
                ..
            } => {
                // OBS and ffmpeg may append a query string to the key.
                let key = stream_key.split('?').next().unwrap_or_default().to_string();
                let Some(name) = self.config.keys.name_for(&key).map(str::to_string) else {
                    let r = self.session().reject_request(
                        request_id,
                        "NetStream.Publish.BadName",
                        "unknown stream key",
                    )?;
                    self.write_now(r);
                    return Err(RtmpError::Refused(format!(
                        "unknown stream key {}",
                        redact_key(&key)
                    )));
                };
                self.stream_name = Some(name.clone());
                let publisher = match Publisher::reserve(&self.config.hub, &name, Protocol::Rtmp) {
                    Ok(p) => p,
                    Err(e) => {
                        let r = self.session().reject_request(
                            request_id,
                            "NetStream.Publish.BadName",
                            "stream is already being published",
                        )?;
                        self.write_now(r);
                        return Err(RtmpError::Refused(e.to_string()));
                    }
                };
                self.publisher = Some(publisher);
                self.adapter = Adapter::new();
                Ok(self.session().accept_request(request_id)?)
            }
            ServerSessionEvent::StreamMetadataChanged { metadata, .. } => {
                let hints = hints_from(&metadata);
                debug!(?metadata, "metadata");
                self.adapter.hints(hints);
                Ok(vec![])
            }
            ServerSessionEvent::VideoDataReceived {
                data, timestamp, ..
            } => {
                self.media(true, timestamp, data)?;
                Ok(vec![])
            }
            ServerSessionEvent::AudioDataReceived {
                data, timestamp, ..
            } => {
                self.media(false, timestamp, data)?;
                Ok(vec![])
            }
            ServerSessionEvent::PublishStreamFinished { .. } => {
                // Stopped on purpose (OBS "Stop Streaming"): the stream ends without waiting
                // for a reconnect.
                if let Some(p) = self.publisher.take() {
                    p.end();
                }
                Ok(vec![])
            }
            ServerSessionEvent::PlayStreamRequested { request_id, .. } => {
                let r = self.session().reject_request(
                    request_id,
                    "NetStream.Play.Failed",
                    "playback over RTMP is not offered; use HLS",
                )?;
                Ok(r)
            }
            _ => Ok(vec![]),
        }
    }

    /// Queues results produced while handling an event (before an error return).
    fn write_now(&mut self, results: Vec<ServerSessionResult>) {
        self.pending.extend(results);
        // The caller returns an error; deliver what the session wants to say first.
        let bytes: Vec<u8> = self
            .pending
            .drain(..)
            .filter_map(|r| match r {
                ServerSessionResult::OutboundResponse(p) => Some(p.bytes),
                _ => None,
            })
            .flatten()
            .collect();
        if let Err(e) = self.socket.try_write(&bytes) {
            debug!(error = %e, "could not deliver the refusal");
        }
    }

    fn media(&mut self, video: bool, ts: RtmpTimestamp, data: Bytes) -> Result<(), RtmpError> {
        let Some(publisher) = self.publisher.as_mut() else {
            return Ok(());
        };
        let r = if video {
            self.adapter.video(ts.value, &data)
        } else {
            self.adapter.audio(ts.value, &data)
        };
        if let Err(source) = r {
            let stream = publisher.name().to_string();
            return Err(RtmpError::Media { stream, source });
        }
        let adapter = &mut self.adapter;
        publisher.drain(|| adapter.pull())?;
        Ok(())
    }

    /// Tells the peer why we are closing, where RTMP has a way to say it.
    async fn send_error_status(&mut self, error: &RtmpError) {
        let (code, description) = match error {
            RtmpError::Media { source, .. } => ("NetStream.Publish.Failed", source.to_string()),
            _ => return,
        };
        let mut props = std::collections::HashMap::new();
        props.insert("level".to_string(), Amf0Value::Utf8String("error".into()));
        props.insert("code".to_string(), Amf0Value::Utf8String(code.into()));
        props.insert(
            "description".to_string(),
            Amf0Value::Utf8String(description),
        );
        let msg = RtmpMessage::Amf0Command {
            command_name: "onStatus".into(),
            transaction_id: 0.0,
            command_object: Amf0Value::Null,
            additional_arguments: vec![Amf0Value::Object(props)],
        };
        // A fresh serializer writes a self-contained (type 0) chunk; the session's own
        // serializer is mid-stream and we are closing anyway.
        let Ok(payload) = msg.into_message_payload(RtmpTimestamp::new(0), PUBLISH_STREAM_ID) else {
            return;
        };
        if let Ok(packet) = ChunkSerializer::new().serialize(&payload, true, false) {
            let _ =
                tokio::time::timeout(Duration::from_secs(1), self.socket.write_all(&packet.bytes))
                    .await;
        }
    }
}

fn hints_from(m: &StreamMetadata) -> PublishHints {
    PublishHints {
        // onMetaData lists videocodecid when there is video; metadata without it (but with
        // audio) announces an audio-only stream.
        has_video: match (m.video_codec_id, m.video_width, m.audio_codec_id) {
            (None, None, None) => None,
            (None, None, Some(_)) => Some(false),
            _ => Some(true),
        },
        video_kbps: m.video_bitrate_kbps.filter(|k| *k > 0),
        audio_kbps: m.audio_bitrate_kbps.filter(|k| *k > 0),
        frame_rate: m
            .video_frame_rate
            .map(|f| f as f64)
            .filter(|f| *f > 0.0 && *f < 1000.0),
    }
}
