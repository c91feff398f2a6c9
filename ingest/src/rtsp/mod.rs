//! RTSP pull: IP cameras configured as `[[pull]]` entries are pulled continuously as live
//! streams, on retina (RTSP/RTP client and depacketizers for H.264, H.265 and AAC: the sans-IO
//! part is retina's).
//!
//! One task per camera ([`task::run`]): DESCRIBE, SETUP the first H.264/H.265 video and AAC
//! audio streams (RTP interleaved over the RTSP connection by default, or UDP), PLAY, and hand
//! frames to [`adapter::RtspAdapter`], whose output goes to the camera's publisher. When the
//! camera goes away the task reconnects with backoff (1 s doubling to 30 s); the broadcast
//! stays live for `reconnect_grace`, so the playlist continues across the reconnect with an
//! EXT-X-DISCONTINUITY instead of ending.

pub mod adapter;
pub mod task;

use std::time::Duration;

use bytes::Bytes;
use media::{CodecConfig, TrackInfo};
use retina::codec::ParametersRef;

pub use task::run;

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

/// Whether length-prefixed NAL units hold an IDR (H.264) or IRAP (H.265) picture. Some
/// encoders' keyframes (x265's) are not flagged by the depacketizer, so we look ourselves.
pub fn has_random_access(data: &[u8], hevc: bool) -> bool {
    media::h264::length_prefixed_nals(data).any(|nal| match nal.first() {
        Some(_) if hevc => media::h265::is_irap(media::h265::nal_type(nal)),
        Some(&h) => h & 0x1f == 5,
        None => false,
    })
}

/// A stream's track, from the parameters retina has for it.
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

/// The URL as logs may show it (no password).
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
