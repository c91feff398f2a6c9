//! RTSP pull: IP cameras configured as `[[pull]]` entries are pulled continuously as live
//! streams, on retina (RTSP/RTP client and depacketizers for H.264, H.265 and AAC).
//!
//! One task per camera: DESCRIBE, SETUP the first H.264/H.265 video and AAC audio streams
//! (RTP interleaved over the RTSP connection by default, or UDP), PLAY, and hand frames to
//! [`adapter::RtspAdapter`]. When the camera goes away the task reconnects with backoff (1 s
//! doubling to 30 s); the broadcast stays live for `reconnect_grace`, so the playlist
//! continues across the reconnect with an EXT-X-DISCONTINUITY instead of ending.

pub mod adapter;

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use media::{CodecConfig, Hub, Published, TrackInfo};
use retina::client::{PlayOptions, SessionOptions, SetupOptions, TcpTransportOptions, Transport};
use retina::codec::{CodecItem, FrameFormat, ParametersRef};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::AdapterEvent;
use adapter::{Kind, RtspAdapter};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum RtspTransport {
    /// TCP, and UDP when the camera refuses TCP (`461 Unsupported Transport`, as VLC's RTSP
    /// server does).
    #[default]
    Auto,
    /// RTP interleaved on the RTSP TCP connection: works through NAT and firewalls.
    Tcp,
    /// RTP over UDP (LAN cameras; retina has no reorder buffer for it).
    Udp,
}

#[derive(Clone, Debug)]
pub struct PullConfig {
    /// Public stream name (`/live/{name}/...`).
    pub name: String,
    /// `rtsp://host[:port]/path`; credentials may be in the URL or below.
    pub url: String,
    pub username: Option<String>,
    pub password: Option<String>,
    pub transport: RtspTransport,
    /// How long the stream stays live while the camera is away.
    pub reconnect_grace: Duration,
}

const BACKOFF_START: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// A connection that delivers nothing for this long is dropped and retried.
const STALL: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum PullError {
    #[error("bad camera URL: {0}")]
    Url(String),
    #[error("{0}")]
    Rtsp(#[from] retina::Error),
    #[error("the camera offers no H.264/H.265 video or AAC audio (offered: {0})")]
    NoStreams(String),
    #[error("no media for {0:?}")]
    Stalled(Duration),
    #[error("the camera ended the stream")]
    Ended,
    #[error("stream name {0:?} is already live from another publisher")]
    NameTaken(String),
}

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
    let mut st = PullState::default();
    let mut backoff = BACKOFF_START;
    let mut away_since: Option<Instant> = None;
    // Arrival times across connections are on this one clock.
    let epoch = Instant::now();
    loop {
        st.played = false;
        let result = tokio::select! {
            _ = cancel.cancelled() => break,
            r = pull_once(&url, creds.clone(), &config, &hub, epoch, &mut st) => r,
        };
        let err = match result {
            Ok(()) => PullError::Ended,
            Err(e) => e,
        };
        if st.published.is_some() {
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
        if st.published.is_some() && since.elapsed() > config.reconnect_grace {
            info!(stream = %config.name, "RTSP camera away longer than the grace period; ending the stream");
            if let Some(p) = st.published.take() {
                p.end();
            }
            st = PullState {
                udp_fallback: st.udp_fallback,
                ..Default::default()
            };
        }
        if st.published.is_none() {
            away_since = None;
        }
    }
}

/// What outlives one connection to the camera.
#[derive(Default)]
struct PullState {
    adapter: RtspAdapter,
    published: Option<Published>,
    /// The last connection delivered media.
    played: bool,
    /// In `Auto`, the camera refused TCP: use UDP from now on.
    udp_fallback: bool,
}

/// One connection: returns when the camera goes away (or never came).
async fn pull_once(
    url: &url::Url,
    creds: Option<retina::client::Credentials>,
    config: &PullConfig,
    hub: &Hub,
    epoch: Instant,
    st: &mut PullState,
) -> Result<(), PullError> {
    let PullState {
        adapter,
        published,
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
        let arrival_us = epoch.elapsed().as_micros() as i64;
        *played = true;
        match item {
            CodecItem::VideoFrame(f) if Some(f.stream_id()) == video => {
                if f.has_new_parameters() {
                    if let Some(info) = track_info(session.streams()[f.stream_id()].parameters()) {
                        adapter.params(Kind::Video, info);
                    }
                }
                let ts = f.timestamp();
                let (elapsed, clock) = (ts.elapsed(), ts.clock_rate().get());
                let hevc = session.streams()[f.stream_id()].encoding_name() == "h265";
                let keyframe = f.is_random_access_point() || has_random_access(f.data(), hevc);
                let loss = f.loss() > 0;
                adapter.video(
                    elapsed,
                    clock,
                    keyframe,
                    loss,
                    Bytes::from(f.into_data()),
                    arrival_us,
                );
            }
            CodecItem::AudioFrame(f) if Some(f.stream_id()) == audio => {
                let ts = f.timestamp();
                adapter.audio(
                    ts.elapsed(),
                    ts.clock_rate().get(),
                    Bytes::copy_from_slice(f.data()),
                    arrival_us,
                );
            }
            _ => continue,
        }
        while let Some(ev) = adapter.pull() {
            match ev {
                AdapterEvent::Start(tracks) => {
                    let codecs: Vec<String> =
                        tracks.iter().map(|t| t.codec.codec_string()).collect();
                    // A new broadcast (first connection, or the camera's parameters changed).
                    if let Some(p) = published.take() {
                        p.end();
                    }
                    let p = hub
                        .publish(&config.name, tracks)
                        .map_err(|_| PullError::NameTaken(config.name.clone()))?;
                    info!(stream = %config.name, ?codecs, "RTSP stream live");
                    *published = Some(p);
                }
                AdapterEvent::Discontinuity => {
                    if let Some(p) = published.as_ref() {
                        info!(stream = %config.name, "RTSP camera back; the stream continues");
                        p.discontinuity();
                    }
                }
                AdapterEvent::Frame(f) => {
                    if let Some(p) = published.as_ref() {
                        p.push(f);
                    }
                }
                AdapterEvent::Notice(n) => warn!(stream = %config.name, "{n}"),
            }
        }
    }
}

/// A SETUP refused with `461 Unsupported Transport` (retina reports the status first).
fn is_unsupported_transport(e: &retina::Error) -> bool {
    let msg = e.to_string();
    msg.starts_with("461 ") || msg.contains(" 461 ")
}

/// Whether length-prefixed NAL units hold an IDR (H.264) or IRAP (H.265) picture. Some
/// encoders' keyframes (x265's) are not flagged by the depacketizer, so we look ourselves.
pub fn has_random_access(data: &[u8], hevc: bool) -> bool {
    media::h264::length_prefixed_nals(data).any(|nal| match nal.first() {
        Some(_) if hevc => media::h265::is_irap(media::h265::nal_type(nal)),
        Some(&h) => h & 0x1f == 5,
        None => false,
    })
}

fn track_info(p: Option<ParametersRef<'_>>) -> Option<TrackInfo> {
    match p? {
        ParametersRef::Video(v) => {
            let extra = Bytes::copy_from_slice(v.extra_data());
            let codec = if v.rfc6381_codec().starts_with("avc1") {
                CodecConfig::H264 { avcc: extra }
            } else {
                CodecConfig::H265 { hvcc: extra }
            };
            let mut info = TrackInfo::video(codec);
            let (w, h) = v.pixel_dimensions();
            if info.width == 0 {
                (info.width, info.height) = (w, h);
            }
            info.frame_rate_hint = v.frame_rate().map(|(n, d)| d as f64 / n.max(1) as f64);
            Some(info)
        }
        ParametersRef::Audio(a) => {
            let asc = Bytes::copy_from_slice(a.extra_data());
            let c = media::codec::AacConfig::parse(&asc)?;
            Some(TrackInfo::audio(
                CodecConfig::Aac { asc },
                c.sample_rate,
                a.channels().get(),
            ))
        }
        _ => None,
    }
}

/// The URL without credentials, and the credentials from the config or the URL.
fn camera_url(
    config: &PullConfig,
) -> Result<(url::Url, Option<retina::client::Credentials>), PullError> {
    let mut url = url::Url::parse(&config.url).map_err(|e| PullError::Url(e.to_string()))?;
    if url.scheme() != "rtsp" {
        return Err(PullError::Url(format!(
            "{}: only rtsp:// is supported",
            url.scheme()
        )));
    }
    let from_url = (!url.username().is_empty()).then(|| {
        let decode = |s: &str| {
            url::form_urlencoded::parse(format!("x={s}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        };
        (decode(url.username()), decode(url.password().unwrap_or("")))
    });
    let _ = url.set_username("");
    let _ = url.set_password(None);
    let creds = match (&config.username, from_url) {
        (Some(u), _) => Some(retina::client::Credentials {
            username: u.clone(),
            password: config.password.clone().unwrap_or_default(),
        }),
        (None, Some((username, password))) => {
            Some(retina::client::Credentials { username, password })
        }
        (None, None) => None,
    };
    Ok((url, creds))
}

fn redacted(url: &url::Url) -> String {
    let mut u = url.clone();
    let _ = u.set_password(None);
    u.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(url: &str, user: Option<&str>) -> PullConfig {
        PullConfig {
            name: "cam".into(),
            url: url.into(),
            username: user.map(String::from),
            password: Some("secret".into()),
            transport: RtspTransport::Auto,
            reconnect_grace: Duration::from_secs(30),
        }
    }

    #[test]
    fn finds_random_access_pictures_in_length_prefixed_nals() {
        let h264 = [0, 0, 0, 2, 0x06, 0x05, 0, 0, 0, 2, 0x65, 0x88];
        assert!(has_random_access(&h264, false));
        assert!(!has_random_access(&[0, 0, 0, 2, 0x41, 0x9a], false));
        // HEVC: a CRA (type 21) after an SEI (type 39).
        let hevc = [0, 0, 0, 2, 39 << 1, 1, 0, 0, 0, 2, 21 << 1, 1];
        assert!(has_random_access(&hevc, true));
        assert!(!has_random_access(&[0, 0, 0, 2, 1 << 1, 1], true));
        assert!(!has_random_access(&[0, 0, 0, 9, 0x65], false), "truncated");
    }

    #[test]
    fn credentials_come_from_the_config_or_the_url() {
        let (u, c) = camera_url(&cfg("rtsp://admin:p%40ss@10.0.0.9/stream1", None)).unwrap();
        assert_eq!(u.as_str(), "rtsp://10.0.0.9/stream1");
        let c = c.unwrap();
        assert_eq!(
            (c.username.as_str(), c.password.as_str()),
            ("admin", "p@ss")
        );
        let (_, c) = camera_url(&cfg("rtsp://10.0.0.9/s", Some("op"))).unwrap();
        assert_eq!(c.unwrap().password, "secret");
        assert!(camera_url(&cfg("http://10.0.0.9/s", None)).is_err());
        assert!(camera_url(&cfg("not a url", None)).is_err());
    }
}
