//! WHIP ingest (RFC 9725): browsers and OBS publish over WebRTC.
//!
//! The HTTP side (`POST /whip`, `DELETE` on the session URL) is the HTTP server's; the binary
//! connects it to [`Whip::publish`] / [`Whip::end`]. The WebRTC side is str0m, a sans-IO WebRTC stack:
//! one task owns one UDP socket (a single muxed port, easy to open in a firewall or map through
//! NAT) and every session's `Rtc`, routes each datagram to the session whose ICE credentials or
//! remote address it matches, and feeds timers. Estuary is an ICE-lite endpoint with host
//! candidates on that port (announced addresses are configurable for servers behind NAT).
//!
//! Media: str0m reorders packets (its depacketizing buffer is the jitter buffer), sends NACKs,
//! and reassembles frames; [`adapter::WhipAdapter`] maps them onto one timeline using RTCP
//! sender reports and asks for keyframes (PLI) on join and after loss.

pub mod adapter;
pub mod sdp;
mod task;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use media::{Hub, HubError};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::Authorizer;
use crate::publisher::{Protocol, Publisher};
pub use sdp::OfferError;

#[derive(Clone)]
pub struct WhipConfig {
    pub auth: Arc<Authorizer>,
    pub hub: Hub,
    /// UDP address for all WebRTC media (one muxed port).
    pub listen: SocketAddr,
    /// Addresses to offer as ICE candidates (a public IP behind NAT). Empty: the listen
    /// address, or every interface's address when listening on 0.0.0.0 / [::].
    pub announce: Vec<IpAddr>,
    /// A session whose ICE/DTLS has not completed by then is dropped.
    pub connect_timeout: Duration,
    /// A connected session that sends no media for this long is ended.
    pub idle_timeout: Duration,
    pub max_sessions: usize,
    /// Browsers send a keyframe only when asked: one is requested (PLI) when this much time
    /// has passed since the last, so segments can be cut at the segment target.
    pub keyframe_interval: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum WhipError {
    #[error("missing or unknown stream key")]
    Unauthorized,
    #[error("stream {0:?} is already live")]
    AlreadyLive(String),
    #[error("{0}")]
    Offer(#[from] OfferError),
    #[error("the SDP offer could not be used: {0}")]
    Sdp(String),
    #[error("too many WHIP sessions")]
    Busy,
    #[error("WHIP ingest is shutting down")]
    Closed,
}

/// A session that was created: the SDP answer and the id its resource URL carries.
#[derive(Debug)]
pub struct Created {
    pub id: String,
    pub name: String,
    pub answer: String,
}

// One `Create` per publish, at most a channel's worth (64) in flight: not worth a box.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Command {
    Create {
        offer: str0m::change::SdpOffer,
        sections: Vec<sdp::Section>,
        publisher: Publisher,
        peer: SocketAddr,
        reply: oneshot::Sender<Result<Created, WhipError>>,
    },
    End {
        id: String,
        reply: oneshot::Sender<bool>,
    },
}

/// Handle to the WHIP ingest: cheap to clone, used by the HTTP routes.
#[derive(Clone)]
pub struct Whip {
    tx: mpsc::Sender<Command>,
    auth: Arc<Authorizer>,
    hub: Hub,
    local: SocketAddr,
    sessions: Arc<std::sync::atomic::AtomicUsize>,
}

impl Whip {
    /// Binds the media socket and starts the session task on `tasks`; it ends (every session
    /// with it) on `cancel`.
    pub async fn start(
        config: WhipConfig,
        tasks: &TaskTracker,
        cancel: CancellationToken,
    ) -> std::io::Result<Whip> {
        let socket = tokio::net::UdpSocket::bind(config.listen).await?;
        let local = socket.local_addr()?;
        let candidates = candidate_addrs(&config, local);
        tracing::info!(%local, candidates = ?candidates, "WHIP media listening (udp, ICE-lite)");
        let (tx, rx) = mpsc::channel(64);
        let whip = Whip {
            tx,
            auth: config.auth.clone(),
            hub: config.hub.clone(),
            local,
            sessions: Arc::default(),
        };
        let sessions = whip.sessions.clone();
        tasks.spawn(task::run(socket, candidates, config, rx, sessions, cancel));
        Ok(whip)
    }

    /// WebRTC sessions open now.
    pub fn sessions(&self) -> usize {
        self.sessions.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The UDP address media arrives on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Takes a publisher's offer: checks the key and the codecs, claims the stream name and
    /// answers. `peer` is the HTTP client, for logs.
    pub async fn publish(
        &self,
        key: &str,
        offer: &str,
        peer: SocketAddr,
    ) -> Result<Created, WhipError> {
        let name = match self.auth.authorize(Protocol::Whip, key, peer).await {
            Ok(name) => name,
            Err(denied) => {
                tracing::warn!(%peer, "WHIP publish refused: {denied}");
                return Err(WhipError::Unauthorized);
            }
        };
        let sections = sdp::check_offer(offer).inspect_err(|e| {
            tracing::warn!(%peer, stream = %name, error = %e, "WHIP offer refused");
        })?;
        let parsed = str0m::change::SdpOffer::from_sdp_string(offer).map_err(|e| {
            tracing::warn!(%peer, stream = %name, error = %e, "WHIP offer does not parse");
            WhipError::Sdp(e.to_string())
        })?;
        let publisher =
            Publisher::reserve(&self.hub, &name, Protocol::Whip).map_err(|e| match e {
                HubError::AlreadyLive(n) | HubError::Kicked(n) => {
                    tracing::warn!(%peer, stream = %n, "WHIP publish refused: stream already live");
                    WhipError::AlreadyLive(n)
                }
            })?;
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::Create {
                offer: parsed,
                sections,
                publisher,
                peer,
                reply,
            })
            .await
            .map_err(|_| WhipError::Closed)?;
        rx.await.map_err(|_| WhipError::Closed)?
    }

    /// Ends a session (the publisher's `DELETE`). False when there is no such session.
    pub async fn end(&self, id: &str) -> bool {
        let (reply, rx) = oneshot::channel();
        if self
            .tx
            .send(Command::End {
                id: id.to_string(),
                reply,
            })
            .await
            .is_err()
        {
            return false;
        }
        rx.await.unwrap_or(false)
    }
}

/// How every WHIP session's WebRTC stack is set up: an ICE-lite endpoint that receives the
/// codecs of [`sdp::VIDEO_CODECS`] and [`sdp::AUDIO_CODECS`].
pub fn rtc_config(crypto: Arc<str0m::crypto::CryptoProvider>) -> str0m::RtcConfig {
    str0m::RtcConfig::new()
        .set_crypto_provider(crypto)
        .set_ice_lite(true)
        .clear_codecs()
        .enable_h264(true)
        .enable_av1(true)
        .enable_vp9(true)
        .enable_opus(true, false)
}

fn candidate_addrs(config: &WhipConfig, local: SocketAddr) -> Vec<SocketAddr> {
    if !config.announce.is_empty() {
        return config
            .announce
            .iter()
            .map(|ip| SocketAddr::new(*ip, local.port()))
            .collect();
    }
    if !local.ip().is_unspecified() {
        return vec![local];
    }
    let v6 = local.is_ipv6();
    let mut out: Vec<SocketAddr> = if_addrs::get_if_addrs()
        .unwrap_or_default()
        .into_iter()
        .map(|i| i.ip())
        .filter(|ip| match ip {
            IpAddr::V4(_) => true,
            // Link-local addresses need a scope id a browser cannot use.
            IpAddr::V6(a) => v6 && (a.segments()[0] & 0xffc0) != 0xfe80,
        })
        .map(|ip| SocketAddr::new(ip, local.port()))
        .collect();
    if out.is_empty() {
        out.push(SocketAddr::new([127, 0, 0, 1].into(), local.port()));
    }
    out
}
