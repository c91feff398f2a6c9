//! The SRT listener and one task per publisher: the stream id's key checked in the handshake,
//! then the connection's payloads through the demuxer and the adapter to its [`Publisher`].
//!
//! Admission happens in the handshake, before any media flows: the stream id must name a
//! publish key from `[[streams]]` (`publish:KEY`, `#!::r=KEY,m=publish`, or a bare `KEY`), the
//! stream must not already be live, and the caller's encryption must match the configured
//! passphrase. A refused caller gets an SRT reject reason and a log line naming it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use media::Hub;
use srt_protocol::settings::KeySettings;
use srt_tokio::access::{RejectReason, ServerRejectReason};
use srt_tokio::options::{KeySize, Passphrase};
use srt_tokio::{ConnectionRequest, SrtIncoming, SrtListener, SrtSocket};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn, Instrument};

use super::adapter::{TsAdapter, TsAdapterError};
use super::ts::TsDemuxer;
use crate::auth::Authorizer;
use crate::publisher::{Protocol, Publisher};

#[derive(Debug, thiserror::Error)]
pub enum SrtError {
    #[error("socket: {0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Ts(#[from] TsAdapterError),
    #[error("{0}")]
    Hub(#[from] media::HubError),
    #[error("no data for {0:?}")]
    Idle(Duration),
}

#[derive(Clone)]
pub struct SrtConfig {
    pub auth: Arc<Authorizer>,
    pub hub: Hub,
    /// TSBPD latency (receiver buffer) negotiated with callers.
    pub latency: Duration,
    /// When set, callers must encrypt with this passphrase (AES-128/192/256, their choice).
    pub passphrase: Option<String>,
    /// A publisher that sends nothing for this long is dropped (some callers leave without
    /// closing).
    pub idle_timeout: Duration,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StreamIdError {
    #[error("no stream id")]
    Missing,
    #[error("stream id asks to {0:?}; only publishing is offered over SRT")]
    NotPublish(String),
    #[error("stream id has no key")]
    NoKey,
}

/// The publish key in an SRT stream id. A stream id that arrives percent-encoded in one of
/// the forms below (`publish%3AKEY`, `%23%21%3A%3Ar%3DKEY%2Cm%3Dpublish`: ffmpeg passes an SRT
/// URL's text as it is, and the `#!::` form has to be encoded in a URL) is decoded first.
pub fn parse_stream_id(id: Option<&str>) -> Result<String, StreamIdError> {
    let id = id
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or(StreamIdError::Missing)?;
    let decoded = percent_encoding::percent_decode_str(id).decode_utf8_lossy();
    let forms = ["#!::", "publish:", "read:", "request:", "play:"];
    let id = if id.contains('%') && forms.iter().any(|f| decoded.starts_with(f)) {
        decoded.as_ref()
    } else {
        id
    };
    if let Some(acl) = id.strip_prefix("#!::") {
        // SRT access control (github.com/Haivision/srt/blob/master/docs/features/access-control.md).
        let mut key = None;
        for pair in acl.split(',') {
            match pair.split_once('=') {
                Some(("r", v)) => key = Some(v.to_string()),
                Some(("m", "publish")) => {}
                Some(("m", other)) => return Err(StreamIdError::NotPublish(other.to_string())),
                _ => {}
            }
        }
        return key.filter(|k| !k.is_empty()).ok_or(StreamIdError::NoKey);
    }
    if let Some(rest) = id.strip_prefix("publish:") {
        // MediaMTX-style `publish:KEY` (a path with further `:user:pass` is not ours).
        let key = rest.split(':').next().unwrap_or_default();
        return if key.is_empty() {
            Err(StreamIdError::NoKey)
        } else {
            Ok(key.to_string())
        };
    }
    if let Some((mode, _)) = id.split_once(':') {
        if matches!(mode, "read" | "request" | "play") {
            return Err(StreamIdError::NotPublish(mode.to_string()));
        }
    }
    Ok(id.to_string())
}

/// Binds the SRT listener (UDP).
pub async fn bind(
    addr: SocketAddr,
    latency: Duration,
) -> std::io::Result<(SrtListener, SrtIncoming)> {
    SrtListener::builder().latency(latency).bind(addr).await
}

/// Accepts SRT callers until `cancel` fires.
pub async fn serve(
    bound: (SrtListener, SrtIncoming),
    config: SrtConfig,
    cancel: CancellationToken,
) {
    let (mut listener, mut incoming) = bound;
    let tracker = TaskTracker::new();
    loop {
        let request = tokio::select! {
            _ = cancel.cancelled() => break,
            r = incoming.incoming().next() => match r {
                Some(r) => r,
                None => break,
            },
        };
        let peer = request.remote();
        let config = config.clone();
        let cancel = cancel.clone();
        let span = tracing::info_span!("srt", %peer);
        tracker.spawn(
            async move {
                let Some((socket, mut publisher)) = admit(request, &config).await else {
                    return;
                };
                let result = tokio::select! {
                    r = receive(socket, &mut publisher, &config) => r,
                    _ = cancel.cancelled() => Ok(()),
                };
                let name = publisher.name().to_string();
                match result {
                    // SRT has no "stop publishing": a closed connection is a publisher that
                    // left, and the stream waits its reconnect grace.
                    Ok(()) => info!(stream = %name, "publisher closed the connection"),
                    Err(e) => warn!(stream = %name, error = %e, "connection closed with error"),
                }
            }
            .instrument(span),
        );
    }
    tracker.close();
    tracker.wait().await;
    listener.close().await;
}

/// Why a caller is refused, and what SRT reject reason it gets.
struct Refusal(String, ServerRejectReason);

async fn admit(request: ConnectionRequest, config: &SrtConfig) -> Option<(SrtSocket, Publisher)> {
    let decision = decide(&request, config).await;
    let (key_settings, publisher) = match decision {
        Ok(d) => d,
        Err(Refusal(why, reason)) => {
            warn!(reason = ?reason, "refused: {why}");
            if let Err(e) = request.reject(RejectReason::Server(reason)).await {
                debug!(error = %e, "could not send the rejection");
            }
            return None;
        }
    };
    match request.accept(key_settings).await {
        Ok(socket) => Some((socket, publisher)),
        Err(e) => {
            // srt-tokio reports a wrong passphrase here.
            warn!(stream = %publisher.name(), error = %e, "handshake failed (wrong passphrase?)");
            None
        }
    }
}

/// The caller's stream id and key checked (a refusal comes after the address's delay) and its
/// stream claimed.
async fn decide(
    request: &ConnectionRequest,
    config: &SrtConfig,
) -> Result<(Option<KeySettings>, Publisher), Refusal> {
    let key = parse_stream_id(request.stream_id().map(|s| s.as_str())).map_err(|e| {
        let reason = match e {
            StreamIdError::NotPublish(_) => ServerRejectReason::BadMode,
            _ => ServerRejectReason::Unauthorized,
        };
        Refusal(e.to_string(), reason)
    })?;
    let name = config
        .auth
        .authorize(Protocol::Srt, &key, request.remote())
        .await
        .map_err(|denied| Refusal(denied.to_string(), ServerRejectReason::Forbidden))?;
    let key_settings = match (&config.passphrase, request.key_size()) {
        (None, KeySize::Unspecified) => None,
        (None, _) => {
            return Err(Refusal(
                format!("stream {name:?}: caller encrypts but no passphrase is configured"),
                ServerRejectReason::BadRequest,
            ))
        }
        (Some(_), KeySize::Unspecified) => {
            return Err(Refusal(
                format!("stream {name:?}: a passphrase is required"),
                ServerRejectReason::Unauthorized,
            ))
        }
        (Some(p), size) => {
            let passphrase = Passphrase::try_from(p.clone()).map_err(|e| {
                Refusal(
                    format!("configured passphrase unusable: {e}"),
                    ServerRejectReason::InternalServerError,
                )
            })?;
            Some(KeySettings {
                key_size: size,
                passphrase,
            })
        }
    };
    let publisher = Publisher::reserve(&config.hub, &name, Protocol::Srt)
        .map_err(|e| Refusal(e.to_string(), ServerRejectReason::Conflict))?;
    Ok((key_settings, publisher))
}

async fn receive(
    mut socket: SrtSocket,
    publisher: &mut Publisher,
    config: &SrtConfig,
) -> Result<(), SrtError> {
    let mut demux = TsDemuxer::new();
    let mut adapter = TsAdapter::new();
    let mut reported_errors = 0;
    loop {
        let Ok(next) = tokio::time::timeout(config.idle_timeout, socket.next()).await else {
            return Err(SrtError::Idle(config.idle_timeout));
        };
        let Some(item) = next else {
            // The caller closed: pass on what is buffered, then end.
            demux.finish();
            drain(&mut demux, &mut adapter, publisher)?;
            return Ok(());
        };
        let (_, payload) = item?;
        demux.push(&payload);
        drain(&mut demux, &mut adapter, publisher)?;
        let errors = demux.stats.cc_errors + demux.stats.dropped_pes;
        if errors > reported_errors {
            debug!(stream = %publisher.name(), cc_errors = demux.stats.cc_errors, dropped_pes = demux.stats.dropped_pes, resync_bytes = demux.stats.resync_bytes, "loss in the transport stream");
            reported_errors = errors;
        }
    }
}

fn drain(
    demux: &mut TsDemuxer,
    adapter: &mut TsAdapter,
    publisher: &mut Publisher,
) -> Result<(), SrtError> {
    while let Some(ev) = demux.pull() {
        adapter.push(ev)?;
        publisher.drain(|| adapter.pull())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_id_forms() {
        assert_eq!(parse_stream_id(Some("publish:abc")), Ok("abc".into()));
        assert_eq!(
            parse_stream_id(Some("#!::r=abc,m=publish")),
            Ok("abc".into())
        );
        assert_eq!(
            parse_stream_id(Some("#!::m=publish,r=abc")),
            Ok("abc".into())
        );
        assert_eq!(parse_stream_id(Some("abc")), Ok("abc".into()));
        assert_eq!(
            parse_stream_id(Some("#!::r=abc,m=request")),
            Err(StreamIdError::NotPublish("request".into()))
        );
        assert_eq!(
            parse_stream_id(Some("read:abc")),
            Err(StreamIdError::NotPublish("read".into()))
        );
        assert_eq!(parse_stream_id(None), Err(StreamIdError::Missing));
        // As ffmpeg passes them when the URL carries them encoded.
        assert_eq!(parse_stream_id(Some("publish%3Aabc")), Ok("abc".into()));
        assert_eq!(
            parse_stream_id(Some("%23%21%3A%3Ar%3Dabc%2Cm%3Dpublish")),
            Ok("abc".into())
        );
        assert_eq!(
            parse_stream_id(Some("%23%21%3A%3Ar%3Dabc%2Cm%3Drequest")),
            Err(StreamIdError::NotPublish("request".into()))
        );
        // A key that happens to hold a `%` is taken as it is.
        assert_eq!(parse_stream_id(Some("ab%41cd")), Ok("ab%41cd".into()));
        assert_eq!(
            parse_stream_id(Some("#!::m=publish")),
            Err(StreamIdError::NoKey)
        );
    }
}
