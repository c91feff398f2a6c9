//! The JSON and plain-text APIs under `/api/v1/` (and `/healthz`): live streams, the server's
//! time, managing streams ([`admin`]), the asset catalog ([`assets`]), viewers' resume
//! positions ([`resume`]). The archive listing is [`crate::vod`]'s and an edge's counters are
//! [`crate::edge`]'s.

pub mod admin;
pub mod assets;
pub mod resume;

use std::time::SystemTime;

use http::Response;
use media::TrackKind;
use packager::hls;
use packager::Windows;

use crate::body::Body;
use crate::response::{self, json, Cache};

/// `GET /api/v1/time`: the UTC time, for players' clocks (the MPD's UTCTiming).
pub fn time() -> Response<Body> {
    let now = hls::rfc3339(SystemTime::now());
    response::sized(Body::from(now), response::TEXT, Cache::NoStore)
}

/// `GET /api/v1/streams`: every live stream with its tracks, codecs, bitrates and uptime; and
/// how many requests wait for parts right now (`held_requests`).
pub fn streams(windows: &Windows, started: SystemTime, held: usize) -> Response<Body> {
    let now = SystemTime::now();
    let streams: Vec<serde_json::Value> = windows
        .all()
        .iter()
        .map(|w| {
            w.read(|st| {
                let tracks: Vec<serde_json::Value> = st
                    .tracks
                    .iter()
                    .map(|t| {
                        serde_json::json!({
                            "rendition": t.rendition,
                            "kind": match t.info.kind() { TrackKind::Video => "video", TrackKind::Audio => "audio" },
                            "codec": t.info.codec.codec_string(),
                            "width": (t.info.width > 0).then_some(t.info.width),
                            "height": (t.info.height > 0).then_some(t.info.height),
                            "frame_rate": t.frame_rate().map(|f| (f * 1000.0).round() / 1000.0),
                            "sample_rate": (t.info.sample_rate > 0).then_some(t.info.sample_rate),
                            "channels": (t.info.channels > 0).then_some(t.info.channels),
                            "bitrate": t.average_bitrate(),
                            "last_msn": t.last_part().map(|p| p.0),
                        })
                    })
                    .collect();
                serde_json::json!({
                    "name": w.name,
                    "session": w.session,
                    "live": !st.ended,
                    "started": hls::rfc3339(w.started),
                    "uptime_secs": now.duration_since(w.started).unwrap_or_default().as_secs(),
                    "bitrate": st.tracks.iter().map(|t| t.average_bitrate()).sum::<u64>(),
                    "skipped_frames": w.skipped.load(std::sync::atomic::Ordering::Relaxed),
                    "playback": format!("/live/{}/index.m3u8", w.name),
                    "tracks": tracks,
                })
            })
        })
        .collect();
    json(&serde_json::json!({
        "uptime_secs": now.duration_since(started).unwrap_or_default().as_secs(),
        "held_requests": held,
        "streams": streams,
    }))
}
