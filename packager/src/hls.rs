//! LL-HLS playlists (RFC 8216bis with the low-latency extensions), rendered from a window.
//!
//! URLs are relative: the multivariant playlist at `/live/{name}/index.m3u8` links
//! `{rendition}/index.m3u8`; a media playlist links `{session}/init.mp4`,
//! `{session}/{msn}.m4s` and `{session}/{msn}.{part}.m4s`, and reports the other renditions as
//! `../{rendition}/index.m3u8`.

use std::fmt::Write;
use std::time::{Duration, SystemTime};

use media::{TrackInfo, TrackKind};

use crate::window::{StreamWindow, TrackWindow, WindowState};

/// Parts are listed for segments within this many target durations of the live edge
/// (RFC 8216bis §4.4.4.9 says they should go once older than 3).
const PART_LISTING_TARGETS: f64 = 3.0;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Skip {
    #[default]
    No,
    /// `_HLS_skip=YES`
    Segments,
    /// `_HLS_skip=v2`: also skips date ranges. We write none, so the answer's
    /// `RECENTLY-REMOVED-DATERANGES` list is empty.
    SegmentsAndDateRanges,
}

/// CAN-SKIP-UNTIL in target durations (the spec's minimum is six).
pub const SKIP_UNTIL_TARGETS: u64 = 6;

/// PART-TARGET, the same in every media playlist of the stream (RFC 8216bis §6.2.4 asks for
/// identical PART-TARGET and SERVER-CONTROL across renditions). The leading track (video) is
/// cut at the configured target; another track's part ends with the frame that reaches the
/// leader's boundary, so it can run over by up to one of its frames (an audio frame; a video
/// rung's frame when its rate is below the leader's), which the target allows for.
pub fn part_target(w: &StreamWindow, st: &WindowState) -> f64 {
    let base = w.config.part_target.as_secs_f64();
    let leader = st
        .tracks
        .iter()
        .position(|t| t.info.kind() == TrackKind::Video)
        .unwrap_or(0);
    let video_frame = |info: &media::TrackInfo| 1.0 / info.frame_rate_hint.unwrap_or(30.0).max(1.0);
    let leader_frame = st.tracks.get(leader).map_or(0.0, |t| video_frame(&t.info));
    let over = st
        .tracks
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != leader)
        .map(|(_, t)| match t.info.codec {
            media::CodecConfig::Aac { .. } => 1024.0 / t.info.sample_rate.max(1) as f64,
            media::CodecConfig::Opus { .. } => 0.020,
            _ => (video_frame(&t.info) - leader_frame).max(0.0),
        })
        .fold(0.0, f64::max);
    ((base + over) * 1000.0).ceil() / 1000.0
}

/// The multivariant playlist: one variant per video rendition, an audio group shared by all.
/// Every variant says `CLOSED-CAPTIONS=NONE`: the renditions carry no CEA-608/708 captions we
/// announce (without it, Shaka probes segments for captions, the one being written included).
/// No tag in it needs a protocol version above 1, so it has no EXT-X-VERSION; whether segments
/// start independently is said by each media playlist, as it can change.
pub fn multivariant(_w: &StreamWindow, st: &WindowState) -> String {
    let variants: Vec<Variant> = st
        .tracks
        .iter()
        .map(|t| {
            let (peak, average) = bandwidth(t);
            Variant {
                rendition: &t.rendition,
                info: &t.info,
                peak,
                average,
                frame_rate: t.frame_rate(),
            }
        })
        .collect();
    multivariant_of(&variants)
}

/// One rendition as the multivariant playlist shows it.
pub struct Variant<'a> {
    pub rendition: &'a str,
    pub info: &'a TrackInfo,
    /// Bits per second.
    pub peak: u64,
    pub average: u64,
    pub frame_rate: Option<f64>,
}

/// The multivariant playlist of `variants` (a live window's or an on-demand asset's).
pub fn multivariant_of(variants: &[Variant]) -> String {
    let mut out = String::from("#EXTM3U\n");
    let audio: Vec<&Variant> = variants
        .iter()
        .filter(|t| t.info.kind() == TrackKind::Audio)
        .collect();
    let video: Vec<&Variant> = variants
        .iter()
        .filter(|t| t.info.kind() == TrackKind::Video)
        .collect();
    let audio_peak = audio.iter().map(|t| t.peak).max().unwrap_or(0);
    let audio_avg = audio.iter().map(|t| t.average).max().unwrap_or(0);
    for (i, a) in audio.iter().enumerate() {
        let _ = writeln!(
            out,
            "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"audio\",NAME=\"{}\",LANGUAGE=\"und\",DEFAULT={},AUTOSELECT=YES,CHANNELS=\"{}\",URI=\"{}/index.m3u8\"",
            a.rendition,
            if i == 0 { "YES" } else { "NO" },
            a.info.channels.max(1),
            a.rendition
        );
    }
    let audio_codec = audio.first().map(|a| a.info.codec.codec_string());
    for v in &video {
        let mut codecs = v.info.codec.codec_string();
        if let Some(a) = &audio_codec {
            codecs = format!("{codecs},{a}");
        }
        let _ = write!(
            out,
            "#EXT-X-STREAM-INF:BANDWIDTH={},AVERAGE-BANDWIDTH={},CODECS=\"{}\",CLOSED-CAPTIONS=NONE",
            v.peak + audio_peak,
            v.average + audio_avg,
            codecs
        );
        if v.info.width > 0 && v.info.height > 0 {
            let _ = write!(out, ",RESOLUTION={}x{}", v.info.width, v.info.height);
        }
        if let Some(fps) = v.frame_rate {
            let _ = write!(out, ",FRAME-RATE={fps:.3}");
        }
        if !audio.is_empty() {
            out.push_str(",AUDIO=\"audio\"");
        }
        let _ = writeln!(out, "\n{}/index.m3u8", v.rendition);
    }
    // An audio-only variant for viewers whose bandwidth fits no video (Apple's authoring
    // guidelines; hls.js leaves it out while it has video levels).
    if let (false, Some(a)) = (video.is_empty(), audio.first()) {
        let _ = writeln!(
            out,
            "#EXT-X-STREAM-INF:BANDWIDTH={audio_peak},AVERAGE-BANDWIDTH={audio_avg},CODECS=\"{}\",CLOSED-CAPTIONS=NONE,AUDIO=\"audio\"\n{}/index.m3u8",
            a.info.codec.codec_string(),
            a.rendition
        );
    }
    if video.is_empty() {
        // Audio-only: the audio rendition is the variant.
        if let Some(a) = audio.first() {
            let _ = writeln!(
                out,
                "#EXT-X-STREAM-INF:BANDWIDTH={},AVERAGE-BANDWIDTH={},CODECS=\"{}\",CLOSED-CAPTIONS=NONE\n{}/index.m3u8",
                a.peak,
                a.average,
                a.info.codec.codec_string(),
                a.rendition
            );
        }
    }
    out
}

/// (peak, average) bits/s: measured over the window when a segment is complete, otherwise
/// what the publisher announced, otherwise a conservative guess.
fn bandwidth(t: &TrackWindow) -> (u64, u64) {
    let avg = t.average_bitrate();
    let peak = t.peak_bitrate.max(avg);
    if peak > 0 {
        return (peak, avg.max(1));
    }
    let guess = t
        .info
        .bitrate_hint
        .map(u64::from)
        .unwrap_or(match t.info.kind() {
            TrackKind::Video => 2_500_000,
            TrackKind::Audio => 128_000,
        });
    (guess, guess)
}

/// The protocol version a media playlist needs (RFC 8216bis §8): 6 for EXT-X-MAP without
/// EXT-X-I-FRAMES-ONLY, 9 with EXT-X-SKIP, 10 when the skip also stands for date ranges.
fn version(skipped: usize, skip: Skip) -> u8 {
    match (skipped, skip) {
        (0, _) | (_, Skip::No) => 6,
        (_, Skip::Segments) => 9,
        (_, Skip::SegmentsAndDateRanges) => 10,
    }
}

/// A media playlist for one track, optionally as a delta update.
pub fn media_playlist(w: &StreamWindow, st: &WindowState, track: usize, skip: Skip) -> String {
    let t = &st.tracks[track];
    let td = w.target_duration(st);
    let pt = part_target(w, st);

    // Time from each segment's start to the live edge decides skipping and part listing.
    let total: f64 = t.segments.iter().map(|s| s.duration.as_secs_f64()).sum();
    let skip_until = (td * SKIP_UNTIL_TARGETS) as f64;
    let mut skipped = 0;
    if skip != Skip::No {
        let mut before_edge = total;
        for s in &t.segments {
            if !s.complete || before_edge - 0.001 <= skip_until {
                break;
            }
            // A segment may be skipped only if it starts more than the skip boundary from the end.
            before_edge -= s.duration.as_secs_f64();
            skipped += 1;
        }
    }

    let mut out = String::with_capacity(4096);
    let _ = write!(
        out,
        "#EXTM3U\n#EXT-X-VERSION:{}\n#EXT-X-TARGETDURATION:{td}\n\
         #EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL={:.1},CAN-SKIP-DATERANGES=YES,PART-HOLD-BACK={:.3}\n\
         #EXT-X-PART-INF:PART-TARGET={pt:.3}\n",
        version(skipped, skip),
        skip_until,
        pt * 3.0,
    );
    // Every segment listed starts with a keyframe (one cut at the target duration without one
    // does not).
    let independent = t
        .segments
        .iter()
        .all(|s| s.parts.first().is_none_or(|p| p.independent || p.gap));
    if independent {
        out.push_str("#EXT-X-INDEPENDENT-SEGMENTS\n");
    }
    let first_msn = t.segments.front().map(|s| s.msn).unwrap_or(0);
    let _ = writeln!(out, "#EXT-X-MEDIA-SEQUENCE:{first_msn}");
    if t.discontinuity_sequence > 0 {
        let _ = writeln!(
            out,
            "#EXT-X-DISCONTINUITY-SEQUENCE:{}",
            t.discontinuity_sequence
        );
    }
    let _ = writeln!(out, "#EXT-X-MAP:URI=\"{}/init.mp4\"", w.session);
    if skipped > 0 {
        let _ = write!(out, "#EXT-X-SKIP:SKIPPED-SEGMENTS={skipped}");
        if skip == Skip::SegmentsAndDateRanges {
            out.push_str(",RECENTLY-REMOVED-DATERANGES=\"\"");
        }
        out.push('\n');
    }

    let mut elapsed = 0.0;
    let mut pdt_written = false;
    for (i, s) in t.segments.iter().enumerate() {
        let starts_before_edge = total - elapsed;
        elapsed += s.duration.as_secs_f64();
        if i < skipped {
            continue;
        }
        if s.discontinuity && i > 0 {
            out.push_str("#EXT-X-DISCONTINUITY\n");
            pdt_written = false;
        }
        if !pdt_written {
            let _ = writeln!(
                out,
                "#EXT-X-PROGRAM-DATE-TIME:{}",
                program_date_time(s.program_date_time)
            );
            pdt_written = true;
        }
        // A complete segment without media (a publisher's pause): never loaded, no parts.
        let gap = s.complete && s.is_gap();
        let list_parts = !gap
            && (!s.complete
                || starts_before_edge
                    <= PART_LISTING_TARGETS * td as f64 + s.duration.as_secs_f64());
        if list_parts {
            for (p_idx, p) in s.parts.iter().enumerate() {
                let _ = write!(
                    out,
                    "#EXT-X-PART:DURATION={},URI=\"{}/{}.{}.m4s\"",
                    seconds(p.duration),
                    w.session,
                    s.msn,
                    p_idx
                );
                if p.independent && !p.gap {
                    out.push_str(",INDEPENDENT=YES");
                }
                if p.gap {
                    out.push_str(",GAP=YES");
                }
                out.push('\n');
            }
        }
        if s.complete {
            if gap {
                out.push_str("#EXT-X-GAP\n");
            }
            let _ = writeln!(
                out,
                "#EXTINF:{},\n{}/{}.m4s",
                seconds(s.duration),
                w.session,
                s.msn
            );
        }
    }
    if st.ended {
        out.push_str("#EXT-X-ENDLIST\n");
        return out;
    }
    if !t.segments.is_empty() {
        let (msn, part) = t.next_part();
        let _ = writeln!(
            out,
            "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"{}/{}.{}.m4s\"",
            w.session, msn, part
        );
    }
    for (j, other) in st.tracks.iter().enumerate() {
        if j == track {
            continue;
        }
        let _ = write!(
            out,
            "#EXT-X-RENDITION-REPORT:URI=\"../{}/index.m3u8\"",
            other.rendition
        );
        if let Some((msn, part)) = other.last_part() {
            let _ = write!(out, ",LAST-MSN={msn},LAST-PART={part}");
        }
        out.push('\n');
    }
    out
}

/// A segment's EXT-X-PROGRAM-DATE-TIME, rounded up to the millisecond, and a duration
/// (EXTINF, a part's DURATION) rounded up to the microsecond: a playlist never places media
/// earlier than it is. Shaka Player sets its buffer's timestamp offset to where the playlist
/// places a segment minus the segment's own decode time, adds a millisecond to that offset when
/// it is negative, and then, seeing the offset a millisecond off on the next append, resets its
/// buffer, which drops every frame up to the next keyframe: with times rounded down, that was
/// the last parts of every segment that did not last a whole number of milliseconds.
pub fn program_date_time(t: SystemTime) -> String {
    rfc3339(t + Duration::from_nanos(999_999))
}

/// `d` in seconds, rounded up to the microsecond (see [`program_date_time`]).
pub fn seconds(d: Duration) -> String {
    let micros = d.as_nanos().div_ceil(1000);
    format!("{}.{:06}", micros / 1_000_000, micros % 1_000_000)
}

/// `2026-11-21T22:09:36.123Z` (the millisecond `t` is in).
pub fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let millis = d.subsec_millis();
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + if month <= 2 { 1 } else { 0 };
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::window::WindowConfig;
    use bytes::Bytes;
    use media::{CodecConfig, TrackInfo};
    use std::time::Duration;

    const AVCC: &[u8] = &[
        1, 100, 0, 31, 0xff, 0xe1, 0, 28, 103, 100, 0, 31, 172, 217, 128, 80, 5, 187, 1, 106, 2, 2,
        2, 128, 0, 0, 3, 0, 128, 0, 0, 30, 7, 140, 24, 205, 1, 0, 5, 104, 233, 123, 44, 139,
    ];

    fn window(segments: u64) -> StreamWindow {
        window_with(segments, 20, None)
    }

    /// `segments` segments of six parts in a window keeping `keep`; segment `disc` (if any)
    /// starts after a discontinuity.
    fn window_with(segments: u64, keep: usize, disc: Option<u64>) -> StreamWindow {
        let v = TrackInfo::video(CodecConfig::H264 {
            avcc: Bytes::from_static(AVCC),
        });
        let a = TrackInfo::audio(
            CodecConfig::Aac {
                asc: Bytes::from_static(&[0x12, 0x10]),
            },
            44100,
            2,
        );
        let cfg = WindowConfig {
            segments: keep,
            ..Default::default()
        };
        let w = StreamWindow::new(
            "s",
            "abc".into(),
            cfg,
            vec![(v, Bytes::new()), (a, Bytes::new())],
        );
        crate::window::fill_for_tests(&w, segments, 0, disc);
        w
    }

    #[test]
    fn a_discontinuity_is_tagged_then_counted_once_it_slides_out() {
        let w = window_with(6, 4, Some(3));
        let p = w.read(|st| media_playlist(&w, st, 0, Skip::No));
        assert!(!p.contains("#EXT-X-DISCONTINUITY-SEQUENCE"), "{p}");
        let before = p.split("#EXT-X-DISCONTINUITY\n").next().unwrap();
        assert!(before.contains("abc/2.m4s\n"), "tag before segment 3:\n{p}");
        assert!(p
            .split("#EXT-X-DISCONTINUITY\n")
            .nth(1)
            .unwrap()
            .contains("abc/3.m4s"));
        // Segment 3 becomes the first one listed: its tag is gone and counted instead.
        let w = window_with(8, 5, Some(3));
        let p = w.read(|st| media_playlist(&w, st, 0, Skip::No));
        assert!(
            p.contains("#EXT-X-MEDIA-SEQUENCE:3\n#EXT-X-DISCONTINUITY-SEQUENCE:1\n"),
            "{p}"
        );
        assert!(!p.contains("#EXT-X-DISCONTINUITY\n"), "{p}");
    }

    #[test]
    fn media_playlist_tags() {
        let w = window(8);
        let p = w.read(|st| media_playlist(&w, st, 0, Skip::No));
        assert!(p.starts_with("#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-TARGETDURATION:2\n"));
        // One PART-TARGET for every rendition: the leader's, plus the AAC frame audio may run
        // over by.
        assert!(p.contains(
            "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL=12.0,CAN-SKIP-DATERANGES=YES,PART-HOLD-BACK=0.573\n"
        ), "{p}");
        assert!(p.contains("#EXT-X-PART-INF:PART-TARGET=0.191\n#EXT-X-INDEPENDENT-SEGMENTS\n"));
        let audio = w.read(|st| media_playlist(&w, st, 1, Skip::No));
        assert_eq!(
            audio.lines().take(5).collect::<Vec<_>>(),
            p.lines().take(5).collect::<Vec<_>>()
        );
        assert!(p.contains(
            "#EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-MAP:URI=\"abc/init.mp4\"\n#EXT-X-PROGRAM-DATE-TIME:"
        ));
        assert!(p.contains("#EXT-X-PART:DURATION=0.333334,URI=\"abc/7.0.m4s\",INDEPENDENT=YES\n"));
        assert!(p.contains("#EXT-X-PART:DURATION=0.333334,URI=\"abc/7.1.m4s\"\n"));
        assert!(!p.contains("abc/0.0.m4s"), "old parts are not listed");
        assert!(p.contains("#EXTINF:2.000000,\nabc/7.m4s\n"));
        assert!(p.contains("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"abc/8.0.m4s\"\n"));
        assert!(p.contains(
            "#EXT-X-RENDITION-REPORT:URI=\"../audio/index.m3u8\",LAST-MSN=7,LAST-PART=5\n"
        ));
        assert!(!p.contains("ENDLIST"));
    }

    #[test]
    fn delta_update_skips_old_segments() {
        let w = window(10);
        let p = w.read(|st| media_playlist(&w, st, 0, Skip::Segments));
        // 20 s in the playlist, skip boundary 12 s: segments starting before 12 s from the end go.
        assert!(p.contains("#EXT-X-SKIP:SKIPPED-SEGMENTS=4\n"), "{p}");
        assert!(p.contains("#EXT-X-VERSION:9\n"), "{p}");
        assert!(!p.contains("\nabc/3.m4s"));
        assert!(p.contains("\nabc/4.m4s"));
        let v2 = w.read(|st| media_playlist(&w, st, 0, Skip::SegmentsAndDateRanges));
        assert!(v2.contains("#EXT-X-VERSION:10\n"));
        assert!(
            v2.contains("#EXT-X-SKIP:SKIPPED-SEGMENTS=4,RECENTLY-REMOVED-DATERANGES=\"\"\n"),
            "{v2}"
        );
        // Nothing old enough to skip: a full playlist, version 6.
        let w = window(3);
        let v2 = w.read(|st| media_playlist(&w, st, 0, Skip::SegmentsAndDateRanges));
        assert!(
            v2.contains("#EXT-X-VERSION:6\n") && !v2.contains("EXT-X-SKIP"),
            "{v2}"
        );
    }

    #[test]
    fn multivariant_lists_codecs_and_audio_group() {
        let w = window(2);
        let m = w.read(|st| multivariant(&w, st));
        assert!(m.contains("#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"audio\",NAME=\"audio\",LANGUAGE=\"und\",DEFAULT=YES,AUTOSELECT=YES,CHANNELS=\"2\",URI=\"audio/index.m3u8\"\n"), "{m}");
        assert!(m.contains("CODECS=\"avc1.64001f,mp4a.40.2\",CLOSED-CAPTIONS=NONE,RESOLUTION=1280x720,FRAME-RATE=30.000,AUDIO=\"audio\"\nvideo/index.m3u8\n"), "{m}");
        let variants = m.matches("#EXT-X-STREAM-INF:").count();
        assert_eq!(
            m.matches("CLOSED-CAPTIONS=NONE").count(),
            variants,
            "every variant says it: {m}"
        );
        assert!(
            m.contains("BANDWIDTH=48000,AVERAGE-BANDWIDTH=48000,"),
            "{m}"
        );
        assert!(
            m.contains(
                ",CODECS=\"mp4a.40.2\",CLOSED-CAPTIONS=NONE,AUDIO=\"audio\"\naudio/index.m3u8\n"
            ),
            "an audio-only variant: {m}"
        );
    }

    #[test]
    fn ended_playlist() {
        let w = window(2);
        w.end();
        let p = w.read(|st| media_playlist(&w, st, 1, Skip::No));
        assert!(p.contains("#EXT-X-PART-INF:PART-TARGET=0.191\n"));
        assert!(p.ends_with("#EXTINF:2.000000,\nabc/1.m4s\n#EXT-X-ENDLIST\n"));
        assert!(!p.contains("PRELOAD-HINT"));
    }

    #[test]
    fn dates() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_795_298_976_123);
        assert_eq!(rfc3339(t), "2026-11-21T22:09:36.123Z");
        assert_eq!(program_date_time(t), "2026-11-21T22:09:36.123Z");
        let later = t + Duration::from_nanos(1);
        assert_eq!(rfc3339(later), "2026-11-21T22:09:36.123Z");
        assert_eq!(program_date_time(later), "2026-11-21T22:09:36.124Z");
    }

    #[test]
    fn durations_round_up_to_the_microsecond() {
        assert_eq!(seconds(Duration::from_secs(2)), "2.000000");
        assert_eq!(seconds(Duration::from_nanos(333_333_333)), "0.333334");
        assert_eq!(seconds(Duration::from_nanos(8_333_333_333)), "8.333334");
        assert_eq!(seconds(Duration::from_micros(341_333)), "0.341333");
    }
}
