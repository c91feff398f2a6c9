//! Low-latency DASH (ISO/IEC 23009-1, DASH-IF low-latency guidelines): a dynamic MPD over the
//! same CMAF segments the LL-HLS playlists list, rendered from the window.
//!
//! One AdaptationSet per track kind; each Representation's id is its rendition name, so the
//! `SegmentTemplate` URLs (`$RepresentationID$/{session}/$Number$.m4s`) are the HLS segment
//! URLs and `$Number$` is the HLS media sequence number. Segments start on keyframes, so their
//! durations vary: a `SegmentTimeline` lists them, including the segment being written (with
//! its expected duration), which a player may fetch before it is complete
//! (`availabilityTimeOffset`, `availabilityTimeComplete="false"`): the server sends it with
//! chunked transfer encoding, part by part, as it grows. When the stream ends the MPD becomes
//! static.

use std::fmt::Write;
use std::time::SystemTime;

use media::{CodecConfig, TrackKind};

use crate::hls::rfc3339;
use crate::window::{StreamWindow, TrackWindow, WindowState};

/// The latency a player should aim for, in part targets: LL-HLS's PART-HOLD-BACK (three).
const TARGET_LATENCY_PARTS: f64 = 3.0;

/// An MPD for the window. `time_url` is the absolute URL of the UTC time endpoint.
pub fn mpd(w: &StreamWindow, st: &WindowState, now: SystemTime, time_url: &str) -> String {
    let part = w.config.part_target.as_secs_f64();
    let target = w.config.segment_target.as_secs_f64();
    let live = !st.ended;
    let mut out = String::with_capacity(4096);
    out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = write!(
        out,
        "<MPD xmlns=\"urn:mpeg:dash:schema:mpd:2011\" profiles=\"urn:mpeg:dash:profile:isoff-live:2011,urn:mpeg:dash:profile:cmaf:2019\" minBufferTime=\"{}\"",
        duration(part * 2.0)
    );
    let window_secs: f64 = st
        .tracks
        .first()
        .map(|t| t.segments.iter().map(|s| s.duration.as_secs_f64()).sum())
        .unwrap_or(0.0);
    if live {
        let _ = writeln!(
            out,
            " type=\"dynamic\" availabilityStartTime=\"{}\" publishTime=\"{}\" minimumUpdatePeriod=\"{}\" timeShiftBufferDepth=\"{}\" maxSegmentDuration=\"{}\">",
            rfc3339(w.started),
            rfc3339(now),
            duration(part.max(0.2) * 2.0),
            duration(window_secs.max(target)),
            duration(w.target_duration(st) as f64),
        );
        let latency = (part * TARGET_LATENCY_PARTS * 1000.0).round() as u64;
        let _ = writeln!(
            out,
            "  <ServiceDescription id=\"0\"><Latency referenceId=\"0\" target=\"{latency}\" min=\"{}\" max=\"{}\"/><PlaybackRate min=\"0.96\" max=\"1.04\"/></ServiceDescription>",
            latency * 2 / 3,
            latency * 3
        );
    } else {
        let end = st
            .tracks
            .first()
            .and_then(|t| t.segments.back())
            .map(|s| secs_since(w, s.program_date_time) + s.duration.as_secs_f64())
            .unwrap_or(0.0);
        let _ = writeln!(
            out,
            " type=\"static\" mediaPresentationDuration=\"{}\">",
            duration(end)
        );
    }
    out.push_str("  <Period id=\"0\" start=\"PT0S\">\n");
    for (set, kind) in [TrackKind::Video, TrackKind::Audio].into_iter().enumerate() {
        let tracks: Vec<&TrackWindow> =
            st.tracks.iter().filter(|t| t.info.kind() == kind).collect();
        let Some(first) = tracks.first() else {
            continue;
        };
        let (content, mime) = match kind {
            TrackKind::Video => ("video", "video/mp4"),
            TrackKind::Audio => ("audio", "audio/mp4"),
        };
        let _ = writeln!(
            out,
            "    <AdaptationSet id=\"{set}\" contentType=\"{content}\" mimeType=\"{mime}\" segmentAlignment=\"true\" startWithSAP=\"1\">"
        );
        template(&mut out, w, first, live, part, target);
        for t in tracks {
            representation(&mut out, t);
        }
        out.push_str("    </AdaptationSet>\n");
    }
    out.push_str("  </Period>\n");
    let _ = writeln!(
        out,
        "  <UTCTiming schemeIdUri=\"urn:mpeg:dash:utc:http-iso:2014\" value=\"{}\"/>",
        xml_escape(time_url)
    );
    out.push_str("</MPD>\n");
    out
}

fn secs_since(w: &StreamWindow, t: SystemTime) -> f64 {
    t.duration_since(w.started)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn template(
    out: &mut String,
    w: &StreamWindow,
    t: &TrackWindow,
    live: bool,
    part: f64,
    target: f64,
) {
    let scale = t.info.timescale.0 as f64;
    let first_msn = t.segments.front().map(|s| s.msn).unwrap_or(0);
    // The segment being written is announced with the duration it is expected to reach.
    let open = t.segments.back().filter(|s| live && !s.complete);
    let expected = open.map(|s| target.max(s.duration.as_secs_f64() + part));
    let _ = write!(
        out,
        "      <SegmentTemplate timescale=\"{}\" initialization=\"$RepresentationID$/{}/init.mp4\" media=\"$RepresentationID$/{}/$Number$.m4s\" startNumber=\"{first_msn}\"",
        t.info.timescale.0, w.session, w.session
    );
    if let Some(d) = expected {
        // Available once its first part is: the rest arrives as it is written.
        let _ = write!(
            out,
            " availabilityTimeOffset=\"{:.3}\" availabilityTimeComplete=\"false\"",
            (d - part).max(0.0)
        );
    }
    out.push_str(">\n        <SegmentTimeline>\n");
    for s in &t.segments {
        if !s.complete && open.is_none() {
            continue;
        }
        let start = (secs_since(w, s.program_date_time) * scale).round() as u64;
        let d = if s.complete {
            s.duration.as_secs_f64()
        } else {
            expected.unwrap_or(target)
        };
        let _ = writeln!(
            out,
            "          <S t=\"{start}\" d=\"{}\"/>",
            (d * scale).round() as u64
        );
    }
    out.push_str("        </SegmentTimeline>\n      </SegmentTemplate>\n");
}

fn representation(out: &mut String, t: &TrackWindow) {
    let bandwidth = t.peak_bitrate.max(t.average_bitrate()).max(1);
    let codecs = t.info.codec.codec_string();
    let _ = write!(
        out,
        "      <Representation id=\"{}\" codecs=\"{}\" bandwidth=\"{bandwidth}\"",
        xml_escape(&t.rendition),
        xml_escape(&codecs)
    );
    match t.info.kind() {
        TrackKind::Video => {
            if t.info.width > 0 {
                let _ = write!(
                    out,
                    " width=\"{}\" height=\"{}\"",
                    t.info.width, t.info.height
                );
            }
            if let Some(fps) = t.frame_rate() {
                let _ = write!(out, " frameRate=\"{}\"", frame_rate(fps));
            }
            out.push_str("/>\n");
        }
        TrackKind::Audio => {
            let _ = write!(out, " audioSamplingRate=\"{}\">", t.info.sample_rate);
            let channels = match &t.info.codec {
                CodecConfig::Opus { channels, .. } => *channels as u16,
                _ => t.info.channels,
            };
            let _ = writeln!(
                out,
                "<AudioChannelConfiguration schemeIdUri=\"urn:mpeg:mpegB:cicp:ChannelConfiguration\" value=\"{channels}\"/></Representation>"
            );
        }
    }
}

/// `frameRate` as DASH writes it: an integer, or `30000/1001`-style for NTSC rates.
fn frame_rate(fps: f64) -> String {
    let rounded = fps.round();
    if (fps - rounded).abs() < 0.01 {
        return format!("{}", rounded as u64);
    }
    let ntsc = (fps * 1.001).round();
    if (fps - ntsc / 1.001).abs() < 0.01 {
        return format!("{}/1001", ntsc as u64 * 1000);
    }
    format!("{}/1000", (fps * 1000.0).round() as u64)
}

/// An xs:duration (`PT2.000S`).
fn duration(secs: f64) -> String {
    format!("PT{:.3}S", secs.max(0.0))
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::window::WindowConfig;
    use bytes::Bytes;
    use media::TrackInfo;
    use std::time::Duration;

    fn window(segments: u64, open_parts: u32) -> StreamWindow {
        let v = TrackInfo::video(CodecConfig::H264 {
            avcc: Bytes::from_static(&[1, 0x64, 0, 0x1f, 0xff]),
        });
        let a = TrackInfo::audio(
            CodecConfig::Aac {
                asc: Bytes::from_static(&[0x11, 0x90]),
            },
            48_000,
            2,
        );
        let w = StreamWindow::new(
            "s",
            "abc".into(),
            WindowConfig::default(),
            vec![(v, Bytes::new()), (a, Bytes::new())],
        );
        crate::window::fill_for_tests(&w, segments, open_parts, None);
        w
    }

    #[test]
    fn live_mpd_lists_complete_segments_and_the_one_being_written() {
        let w = window(3, 2);
        let now = w.started + Duration::from_secs(7);
        let m = w.read(|st| mpd(&w, st, now, "http://h/api/v1/time"));
        assert!(m.contains("type=\"dynamic\""), "{m}");
        assert!(m.contains(&format!("availabilityStartTime=\"{}\"", rfc3339(w.started))));
        assert!(m.contains(&format!("publishTime=\"{}\"", rfc3339(now))));
        assert!(
            m.contains("<Latency referenceId=\"0\" target=\"1002\""),
            "{m}"
        );
        assert!(m.contains("media=\"$RepresentationID$/abc/$Number$.m4s\" startNumber=\"0\""));
        assert!(
            m.contains("availabilityTimeOffset=\"1.666\" availabilityTimeComplete=\"false\""),
            "{m}"
        );
        // Video at 90 kHz: three 2 s segments and the open one, expected to last 2 s.
        for t in [0, 180_000, 360_000, 540_000] {
            assert!(
                m.contains(&format!("<S t=\"{t}\" d=\"180000\"/>")),
                "{t}: {m}"
            );
        }
        assert!(
            m.contains("<S t=\"288000\" d=\"96000\"/>"),
            "audio at 48 kHz: {m}"
        );
        assert!(
            m.contains("<Representation id=\"video\" codecs=\"avc1.64001f\""),
            "{m}"
        );
        assert!(m.contains("audioSamplingRate=\"48000\""));
        assert!(m.contains("value=\"http://h/api/v1/time\""));
    }

    #[test]
    fn ended_stream_gets_a_static_mpd() {
        let w = window(3, 0);
        w.end();
        let m = w.read(|st| mpd(&w, st, SystemTime::now(), "http://h/t"));
        assert!(
            m.contains("type=\"static\" mediaPresentationDuration=\"PT6.000S\""),
            "{m}"
        );
        assert!(!m.contains("availabilityTimeComplete"), "{m}");
        assert!(!m.contains("minimumUpdatePeriod"));
    }

    #[test]
    fn frame_rates() {
        assert_eq!(frame_rate(30.0), "30");
        assert_eq!(frame_rate(29.97), "30000/1001");
        assert_eq!(frame_rate(18.773), "18773/1000");
    }
}
