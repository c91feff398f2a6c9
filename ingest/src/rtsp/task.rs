//! One task per camera: connect, play, hand frames through the adapter to the camera's
//! [`Publisher`], and reconnect with backoff when the camera goes away.

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use media::{Hub, Timescale, Timestamp};
use retina::client::{PlayOptions, SessionOptions, SetupOptions, TcpTransportOptions, Transport};
use retina::codec::{CodecItem, FrameFormat};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::adapter::{Kind, RtspAdapter};
use super::{
    camera_url, has_random_access, redacted, track_info, PullConfig, PullError, RtspTransport,
};
use crate::publisher::{Protocol, Publisher};

const BACKOFF_START: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// A connection that delivers nothing for this long is dropped and retried.
const STALL: Duration = Duration::from_secs(10);

/// Pulls one camera until `cancel`.
pub async fn run(config: PullConfig, hub: Hub, cancel: CancellationToken) {
    let (url, creds) = match camera_url(&config) {
        Ok(v) => v,
        Err(e) => {
            warn!(stream = %config.name, error = %e, "RTSP pull disabled");
            return;
        }
    };
    let shown = redacted(&url);
    let mut st = PullState::new(&hub, &config.name);
    let mut backoff = BACKOFF_START;
    let mut away_since: Option<Instant> = None;
    // Arrival times across connections are on this one clock.
    let epoch = Instant::now();
    loop {
        st.played = false;
        let result = tokio::select! {
            _ = cancel.cancelled() => break,
            r = pull_once(&url, creds.clone(), &config, epoch, &mut st) => r,
        };
        let err = match result {
            Ok(()) => PullError::Ended,
            Err(e) => e,
        };
        if st.publisher.is_live() {
            warn!(stream = %config.name, camera = %shown, error = %err, "RTSP camera lost; reconnecting (the stream stays live)");
        } else {
            warn!(stream = %config.name, camera = %shown, error = %err, retry_in = ?backoff, "RTSP camera unreachable");
        }
        if st.played {
            // It had been working: retry soon, and the grace period starts now.
            backoff = BACKOFF_START;
            away_since = None;
        }
        let since = *away_since.get_or_insert_with(Instant::now);
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
        if st.publisher.is_live() && since.elapsed() > config.reconnect_grace {
            info!(stream = %config.name, "RTSP camera away longer than the grace period; ending the stream");
            let fresh = PullState {
                udp_fallback: st.udp_fallback,
                ..PullState::new(&hub, &config.name)
            };
            std::mem::replace(&mut st, fresh).publisher.end();
        }
        if !st.publisher.is_live() {
            away_since = None;
        }
    }
}

/// What outlives one connection to the camera.
struct PullState {
    adapter: RtspAdapter,
    /// Claims the stream name when the camera's media starts (nobody else is refused meanwhile:
    /// a camera is not a publisher that could be turned away).
    publisher: Publisher,
    /// The last connection delivered media.
    played: bool,
    /// In `Auto`, the camera refused TCP: use UDP from now on.
    udp_fallback: bool,
}

impl PullState {
    fn new(hub: &Hub, name: &str) -> Self {
        PullState {
            adapter: RtspAdapter::new(),
            publisher: Publisher::unclaimed(hub, name, Protocol::Rtsp),
            played: false,
            udp_fallback: false,
        }
    }
}

/// One connection: returns when the camera goes away (or never came).
async fn pull_once(
    url: &url::Url,
    creds: Option<retina::client::Credentials>,
    config: &PullConfig,
    epoch: Instant,
    st: &mut PullState,
) -> Result<(), PullError> {
    let PullState {
        adapter,
        publisher,
        played,
        ..
    } = st;
    let mut session = tokio::time::timeout(
        STALL,
        retina::client::Session::describe(
            url.clone(),
            SessionOptions::default()
                .creds(creds)
                .user_agent(format!("Estuary/{}", env!("CARGO_PKG_VERSION"))),
        ),
    )
    .await
    .map_err(|_| PullError::Stalled(STALL))??;
    let video = session
        .streams()
        .iter()
        .position(|s| s.media() == "video" && matches!(s.encoding_name(), "h264" | "h265"));
    let audio = session
        .streams()
        .iter()
        .position(|s| s.media() == "audio" && s.encoding_name() == "mpeg4-generic");
    if video.is_none() && audio.is_none() {
        let offered: Vec<String> = session
            .streams()
            .iter()
            .map(|s| format!("{}/{}", s.media(), s.encoding_name()))
            .collect();
        return Err(PullError::NoStreams(offered.join(", ")));
    }
    let udp = match config.transport {
        RtspTransport::Auto => st.udp_fallback,
        RtspTransport::Tcp => false,
        RtspTransport::Udp => true,
    };
    let transport = if udp {
        Transport::Udp(Default::default())
    } else {
        Transport::Tcp(TcpTransportOptions::default())
    };
    for i in [video, audio].into_iter().flatten() {
        let setup = session
            .setup(
                i,
                SetupOptions::default()
                    .transport(transport.clone())
                    .frame_format(FrameFormat::MP4),
            )
            .await;
        if let Err(e) = setup {
            if config.transport == RtspTransport::Auto && !udp && is_unsupported_transport(&e) {
                info!(stream = %config.name, "the camera refuses RTP over TCP (461); using UDP");
                st.udp_fallback = true;
            }
            return Err(e.into());
        }
    }
    let mut session = session
        .play(
            PlayOptions::default()
                .initial_timestamp(retina::client::InitialTimestampPolicy::Permissive),
        )
        .await?
        .demuxed()?;
    info!(stream = %config.name, camera = %redacted(url), video = video.map(|i| session.streams()[i].encoding_name().to_string()), audio = audio.is_some(), "RTSP camera playing");
    adapter.connect(video.is_some(), audio.is_some());
    for (kind, i) in [(Kind::Video, video), (Kind::Audio, audio)] {
        if let Some(info) = i.and_then(|i| track_info(session.streams()[i].parameters())) {
            adapter.params(kind, info);
        }
    }
    loop {
        let item = match tokio::time::timeout(STALL, session.next()).await {
            Err(_) => return Err(PullError::Stalled(STALL)),
            Ok(None) => return Ok(()),
            Ok(Some(item)) => item?,
        };
        let arrival = Timestamp::from_duration(epoch.elapsed(), Timescale::MICROS);
        *played = true;
        match item {
            CodecItem::VideoFrame(f) if Some(f.stream_id()) == video => {
                if f.has_new_parameters() {
                    if let Some(info) = track_info(session.streams()[f.stream_id()].parameters()) {
                        adapter.params(Kind::Video, info);
                    }
                }
                let elapsed = rtp_elapsed(f.timestamp());
                let hevc = session.streams()[f.stream_id()].encoding_name() == "h265";
                let keyframe = f.is_random_access_point() || has_random_access(f.data(), hevc);
                let loss = f.loss() > 0;
                adapter.video(elapsed, keyframe, loss, Bytes::from(f.into_data()), arrival);
            }
            CodecItem::AudioFrame(f) if Some(f.stream_id()) == audio => {
                let elapsed = rtp_elapsed(f.timestamp());
                adapter.audio(elapsed, Bytes::copy_from_slice(f.data()), arrival);
            }
            _ => continue,
        }
        publisher
            .drain(|| adapter.pull())
            .map_err(|_| PullError::NameTaken(config.name.clone()))?;
    }
}

/// RTP time since the connection started, in the stream's clock.
fn rtp_elapsed(t: retina::Timestamp) -> Timestamp {
    Timestamp::new(t.elapsed(), Timescale(t.clock_rate().get()))
}

/// A SETUP refused with `461 Unsupported Transport` (retina reports the status first).
fn is_unsupported_transport(e: &retina::Error) -> bool {
    let msg = e.to_string();
    msg.starts_with("461 ") || msg.contains(" 461 ")
}
