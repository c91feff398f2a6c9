//! Low-latency DASH (ISO/IEC 23009-1, DASH-IF low-latency guidelines, DVB low-latency
//! signalling): a dynamic MPD over the same CMAF segments the LL-HLS playlists list, rendered
//! from the window.
//!
//! One AdaptationSet per track kind; each Representation's id is its rendition name, so the
//! `SegmentTemplate` URLs (`$RepresentationID$/{session}/$Number$.m4s`) are the HLS segment
//! URLs and `$Number$` is the HLS media sequence number.
//!
//! Timing, by the DASH timing model's rules:
//!
//! - Segments start on keyframes, and every track is cut at the leading track's boundaries,
//!   so the MPD describes all AdaptationSets with the leading track's segments (and its
//!   timescale).
//! - A Period is a run of segments of one length: each segment is announced, when it starts,
//!   to last as long as the one before ([`crate::window::Segment::announced`]), and a segment
//!   that starts where the one before was announced to end continues its Period. So while
//!   live a Period's `SegmentTemplate` gives that length as `@duration` (DASH-IF's "simple
//!   live" addressing, which DVB recommends for low latency): a player computes which segment
//!   is available from the clock alone, without reloading the MPD at every segment boundary,
//!   and may fetch a segment as soon as its first part exists (`availabilityTimeOffset`,
//!   always present while live, with `availabilityTimeComplete="false"`); the server sends it
//!   part by part as it grows.
//! - Nothing published changes: where a segment ends elsewhere than announced (a keyframe
//!   early or late) or a publisher reconnects, a new Period starts at the next segment, and
//!   the Period before keeps what it said (its last segment may reach past its end, which the
//!   model allows). A Period keeps its id (`p{msn}` of its first segment) and start after its
//!   first segments leave the window.
//! - Each AdaptationSet's `ProducerReferenceTime` ties the Period's start to the wall clock,
//!   and the `ServiceDescription`'s latency target refers to it.
//!
//! When the stream ends the MPD becomes static.

use std::fmt::Write;
use std::time::{Duration, SystemTime};

use media::{CodecConfig, TrackKind};

use crate::hls::rfc3339;
use crate::window::{ticks, StreamWindow, TrackWindow, WindowState};

/// The latency a player should aim for, in part targets: the same as LL-HLS's PART-HOLD-BACK
/// (three PART-TARGETs), so DASH and HLS viewers of a stream sit equally far behind.
const TARGET_LATENCY_PARTS: f64 = 3.0;

/// One segment as the MPD lists it: where it starts and the length it was listed with.
#[derive(Clone, Copy, Debug)]
struct Listed {
    msn: u64,
    start: Duration,
    length: Duration,
}

/// A run of segments with a continuous timeline: (msn, start) of its first segment, and the
/// segments of it still in the window.
struct Period {
    id: (u64, Duration),
    /// What the timeline left out of the wall clock before it ([`crate::window::Segment::wall_offset`]).
    wall_offset: Duration,
    segments: Vec<Listed>,
    /// Where its media ends (its last segment's end, as far as it is known).
    end: Duration,
}

impl Period {
    /// Where its media starts: the presentation time offset.
    fn start(&self) -> Duration {
        self.id.1
    }

    /// Where it starts on the MPD's timeline, which runs with the wall clock from
    /// `availabilityStartTime`: a publisher's pauses are in it, not in the media.
    fn presentation_start(&self) -> Duration {
        self.id.1 + self.wall_offset
    }

    /// The length of its segments (all the same: see the module's notes).
    fn length(&self) -> Duration {
        self.segments[0].length
    }

    /// Its `@duration` when its media ends before `next` starts (a publisher's pause between
    /// them): without it a player would ask for segments of this Period in the pause.
    fn duration_before(&self, next: Option<&Period>) -> Option<Duration> {
        let media = self.end.saturating_sub(self.start());
        let next = next?.presentation_start();
        (next > self.presentation_start() + media + Duration::from_millis(1)).then_some(media)
    }
}

/// The leading track's segments as the MPD lists them, in their Periods (an open segment
/// only while live and once announced).
fn periods(leader: &TrackWindow, live: bool) -> Vec<Period> {
    let mut out: Vec<Period> = Vec::new();
    // A segment without media (a publisher's pause) is in no Period: the next Period starts
    // that much later on the MPD's timeline.
    for s in leader.segments.iter().filter(|s| !s.is_gap()) {
        let Some(length) = s
            .listed_length()
            .filter(|l| !l.is_zero() && (s.complete || live))
        else {
            continue;
        };
        let l = Listed {
            msn: s.msn,
            start: s.start,
            length,
        };
        let end = s.start + if s.complete { s.duration } else { length };
        match out.last_mut() {
            Some(p) if p.id == s.period => {
                p.segments.push(l);
                p.end = end;
            }
            _ => out.push(Period {
                id: s.period,
                wall_offset: s.wall_offset,
                segments: vec![l],
                end,
            }),
        }
    }
    out
}

/// An MPD for the window. `time_url` is the absolute URL of the UTC time endpoint.
pub fn mpd(w: &StreamWindow, st: &WindowState, now: SystemTime, time_url: &str) -> String {
    let part = w.config.part_target.as_secs_f64();
    let live = !st.ended;
    let leader = st
        .tracks
        .iter()
        .position(|t| t.info.kind() == TrackKind::Video)
        .unwrap_or(0);
    let periods = st
        .tracks
        .get(leader)
        .map(|t| periods(t, live))
        .unwrap_or_default();
    let scale = st
        .tracks
        .get(leader)
        .map_or(media::Timescale::VIDEO.0, |t| t.info.timescale.0);
    let time_url = xml_escape(time_url);
    let mut out = String::with_capacity(4096);
    out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = write!(
        out,
        "<MPD xmlns=\"urn:mpeg:dash:schema:mpd:2011\" profiles=\"urn:mpeg:dash:profile:isoff-live:2011,urn:mpeg:dash:profile:cmaf:2019,http://www.dashif.org/guidelines/low-latency-live-v5\" minBufferTime=\"{}\"",
        duration(part * 2.0)
    );
    let window_start = periods
        .first()
        .map_or(Duration::ZERO, Period::presentation_start);
    let window_end = st
        .tracks
        .get(leader)
        .and_then(|t| t.segments.back())
        .map_or(Duration::ZERO, |s| s.start + s.duration + s.wall_offset);
    if live {
        let _ = writeln!(
            out,
            " type=\"dynamic\" availabilityStartTime=\"{}\" publishTime=\"{}\" minimumUpdatePeriod=\"{}\" timeShiftBufferDepth=\"{}\" maxSegmentDuration=\"{}\">",
            rfc3339(w.started),
            rfc3339(now),
            duration(part.max(0.2) * 2.0),
            duration(
                (window_end.saturating_sub(window_start))
                    .as_secs_f64()
                    .max(w.config.segment_target.as_secs_f64())
            ),
            duration(w.target_duration(st) as f64),
        );
        let latency =
            (crate::hls::part_target(w, st) * TARGET_LATENCY_PARTS * 1000.0).round() as u64;
        let _ = writeln!(
            out,
            "  <ServiceDescription id=\"0\"><Scope schemeIdUri=\"urn:dvb:dash:lowlatency:scope:2019\"/><Latency referenceId=\"0\" target=\"{latency}\" min=\"{}\" max=\"{}\"/><PlaybackRate min=\"0.96\" max=\"1.04\"/></ServiceDescription>",
            latency * 2 / 3,
            latency * 3
        );
    } else {
        let _ = writeln!(
            out,
            " type=\"static\" mediaPresentationDuration=\"{}\">",
            duration(window_end.as_secs_f64())
        );
    }
    for (i, period) in periods.iter().enumerate() {
        let _ = write!(
            out,
            "  <Period id=\"p{}\" start=\"{}\"",
            period.id.0,
            duration(period.presentation_start().as_secs_f64())
        );
        if let Some(d) = period.duration_before(periods.get(i + 1)) {
            let _ = write!(out, " duration=\"{}\"", duration(d.as_secs_f64()));
        }
        out.push_str(">\n");
        for (set, kind) in [TrackKind::Video, TrackKind::Audio].into_iter().enumerate() {
            let tracks: Vec<&TrackWindow> =
                st.tracks.iter().filter(|t| t.info.kind() == kind).collect();
            if tracks.is_empty() {
                continue;
            }
            let (content, mime) = match kind {
                TrackKind::Video => ("video", "video/mp4"),
                TrackKind::Audio => ("audio", "audio/mp4"),
            };
            // Whether every listed segment starts with a keyframe (one cut at the target
            // duration without one does not).
            let sap = period.segments.iter().all(|l| {
                tracks.iter().all(|t| {
                    t.segment(l.msn)
                        .and_then(|s| s.parts.first())
                        .is_none_or(|p| p.independent || p.gap)
                })
            });
            let _ = write!(
                out,
                "    <AdaptationSet id=\"{set}\" contentType=\"{content}\" mimeType=\"{mime}\" segmentAlignment=\"true\""
            );
            if sap {
                out.push_str(" startWithSAP=\"1\"");
            }
            out.push_str(">\n");
            let pto = ticks(period.start(), scale);
            if live {
                out.push_str("      <SupplementalProperty schemeIdUri=\"urn:dvb:dash:lowlatency:critical:2019\" value=\"true\"/>\n");
                let _ = writeln!(
                    out,
                    "      <ProducerReferenceTime id=\"{set}\" type=\"encoder\" wallClockTime=\"{}\" presentationTime=\"{pto}\"><UTCTiming schemeIdUri=\"urn:mpeg:dash:utc:http-iso:2014\" value=\"{time_url}\"/></ProducerReferenceTime>",
                    rfc3339(w.started + period.presentation_start()),
                );
            }
            template(&mut out, w, period, scale, live, part);
            for t in tracks {
                representation(&mut out, t);
            }
            out.push_str("    </AdaptationSet>\n");
        }
        out.push_str("  </Period>\n");
    }
    let _ = writeln!(
        out,
        "  <UTCTiming schemeIdUri=\"urn:mpeg:dash:utc:http-iso:2014\" value=\"{time_url}\"/>"
    );
    out.push_str("</MPD>\n");
    out
}

/// The Period's `SegmentTemplate` for one AdaptationSet, timed in the leading track's `scale`
/// (an MPD's timescale need not be the media's): `@duration` addressing while live, the
/// segments in the window as a `SegmentTimeline` once the stream has ended.
fn template(
    out: &mut String,
    w: &StreamWindow,
    period: &Period,
    scale: u32,
    live: bool,
    part: f64,
) {
    let _ = write!(
        out,
        "      <SegmentTemplate timescale=\"{scale}\" presentationTimeOffset=\"{}\" initialization=\"$RepresentationID$/{}/init.mp4\" media=\"$RepresentationID$/{}/$Number$.m4s\"",
        ticks(period.start(), scale),
        w.session,
        w.session,
    );
    if live {
        // Numbered from the Period's first segment, wherever the window starts now.
        let _ = writeln!(
            out,
            " startNumber=\"{}\" duration=\"{}\" availabilityTimeOffset=\"{:.3}\" availabilityTimeComplete=\"false\"/>",
            period.id.0,
            ticks(period.length(), scale),
            (period.length().as_secs_f64() - part).max(0.0)
        );
        return;
    }
    let _ = writeln!(
        out,
        " startNumber=\"{}\">\n        <SegmentTimeline>",
        period.segments[0].msn
    );
    for l in &period.segments {
        let t = ticks(l.start, scale);
        let d = ticks(l.start + l.length, scale) - t;
        let _ = writeln!(out, "          <S t=\"{t}\" d=\"{d}\"/>");
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
            m.contains("<Latency referenceId=\"0\" target=\"567\""),
            "{m}"
        );
        // Video and audio alike, in the video's 90 kHz: 2 s segments numbered from 0, each
        // available once its first part is.
        assert_eq!(
            m.matches("<SegmentTemplate timescale=\"90000\" presentationTimeOffset=\"0\" initialization=\"$RepresentationID$/abc/init.mp4\" media=\"$RepresentationID$/abc/$Number$.m4s\" startNumber=\"0\" duration=\"180000\" availabilityTimeOffset=\"1.833\" availabilityTimeComplete=\"false\"/>").count(),
            2,
            "{m}"
        );
        assert!(!m.contains("SegmentTimeline"), "{m}");
        assert!(
            m.contains("<Representation id=\"video\" codecs=\"avc1.64001f\""),
            "{m}"
        );
        assert!(m.contains("audioSamplingRate=\"48000\""));
        assert!(m.contains("value=\"http://h/api/v1/time\""));
        // One Period from the start; the latency target refers to a producer reference time.
        assert_eq!(m.matches("<Period ").count(), 1);
        assert!(m.contains("<Period id=\"p0\" start=\"PT0.000S\">"), "{m}");
        assert!(
            m.contains("<ProducerReferenceTime id=\"0\" type=\"encoder\""),
            "{m}"
        );
        assert!(m.contains("<Scope schemeIdUri=\"urn:dvb:dash:lowlatency:scope:2019\"/>"));
        assert_eq!(
            m.matches("urn:dvb:dash:lowlatency:critical:2019").count(),
            2,
            "both AdaptationSets"
        );
        assert_eq!(m.matches("availabilityTimeOffset=").count(), 2, "{m}");
    }

    /// A window of both tracks keeping `keep` segments, with nothing in it yet.
    fn empty(keep: usize) -> StreamWindow {
        StreamWindow::new(
            "s",
            "abc".into(),
            WindowConfig {
                segments: keep,
                ..Default::default()
            },
            window(0, 0).read(|st| {
                st.tracks
                    .iter()
                    .map(|t| (t.info.clone(), Bytes::new()))
                    .collect()
            }),
        )
    }

    /// Pushes one segment of six parts for both tracks, announced as `announced`.
    fn segment(
        w: &StreamWindow,
        msn: u64,
        start: Duration,
        length: Duration,
        announced: Option<Duration>,
        disc: bool,
    ) {
        segment_after_pause(w, msn, start, length, announced, disc, Duration::ZERO);
    }

    /// As [`segment`], after pauses of `wall_offset` in all taken out of the timeline.
    fn segment_after_pause(
        w: &StreamWindow,
        msn: u64,
        start: Duration,
        length: Duration,
        announced: Option<Duration>,
        disc: bool,
        wall_offset: Duration,
    ) {
        for i in 0..6u32 {
            for track in 0..2 {
                w.push_part(crate::window::PartIn {
                    track,
                    msn,
                    index: i,
                    data: Bytes::from(vec![0u8; 100]),
                    duration: length / 6,
                    independent: i == 0 || track == 1,
                    gap: false,
                    last_in_segment: i == 5,
                    end_expected: false,
                    discontinuity: disc && i == 0,
                    start: start + length / 6 * i,
                    samples: 10,
                    target_duration: Some(2),
                    announced,
                    period: None,
                    wall_offset,
                });
            }
        }
    }

    #[test]
    fn a_segment_that_ends_off_its_announcement_starts_a_period_and_nothing_published_changes() {
        let w = empty(3);
        let s = Duration::from_secs;
        let ms = Duration::from_millis;
        segment(&w, 0, s(0), s(2), None, false);
        segment(&w, 1, s(2), s(2), Some(s(2)), false);
        // Announced at 2 s, but a keyframe came at 1.5 s.
        segment(&w, 2, s(4), ms(1500), Some(s(2)), false);
        segment(&w, 3, ms(5500), ms(1500), Some(ms(1500)), false);
        let now = SystemTime::now();
        let m = w.read(|st| mpd(&w, st, now, "http://h/t"));
        assert!(m.contains("<Period id=\"p0\" start=\"PT0.000S\">"), "{m}");
        assert!(m.contains("<Period id=\"p3\" start=\"PT5.500S\">"), "{m}");
        assert!(
            m.contains("presentationTimeOffset=\"0\" initialization=\"$RepresentationID$/abc/init.mp4\" media=\"$RepresentationID$/abc/$Number$.m4s\" startNumber=\"0\" duration=\"180000\""),
            "segment 2 keeps the length it was listed with: {m}"
        );
        assert!(
            m.contains("presentationTimeOffset=\"495000\" initialization=\"$RepresentationID$/abc/init.mp4\" media=\"$RepresentationID$/abc/$Number$.m4s\" startNumber=\"3\" duration=\"135000\""),
            "{m}"
        );
        // A reconnect: a new Period too. Then the window slides past both breaks' first
        // segments; the Periods keep their ids and starts.
        segment(&w, 4, s(10), ms(1500), Some(ms(1500)), true);
        segment(&w, 5, ms(11_500), ms(1500), Some(ms(1500)), false);
        segment(&w, 6, s(13), ms(1500), Some(ms(1500)), false);
        let m = w.read(|st| mpd(&w, st, now, "http://h/t"));
        assert_eq!(m.matches("<Period ").count(), 1, "{m}");
        assert!(m.contains("<Period id=\"p4\" start=\"PT10.000S\">"), "{m}");
        assert!(m.contains("startNumber=\"4\""), "{m}");
        segment(&w, 7, ms(14_500), ms(1500), Some(ms(1500)), false);
        let m = w.read(|st| mpd(&w, st, now, "http://h/t"));
        assert!(m.contains("<Period id=\"p4\" start=\"PT10.000S\">"), "{m}");
        assert!(m.contains("presentationTimeOffset=\"900000\""), "{m}");
        assert!(
            m.contains("startNumber=\"4\""),
            "numbered from the Period's start: {m}"
        );
        // Once ended: static, the window's segments listed as they were.
        w.end();
        let m = w.read(|st| mpd(&w, st, now, "http://h/t"));
        assert!(m.contains("startNumber=\"5\">"), "{m}");
        assert!(m.contains("<S t=\"1035000\" d=\"135000\"/>"), "{m}");
    }

    /// A publisher away for 1.5 s after 4 s of media: a segment without media stands for the
    /// pause (as the segmenter makes it), and the media goes on where it stopped. The MPD
    /// leaves the gap out: the first Period ends where its media does, the next starts the
    /// pause later; HLS lists the gap with EXT-X-GAP, and the program date times keep the
    /// wall clock.
    #[test]
    fn a_pause_is_a_gap_in_hls_and_between_periods_in_dash() {
        let w = empty(WindowConfig::default().segments);
        let s = Duration::from_secs;
        let ms = Duration::from_millis;
        segment(&w, 0, s(0), s(2), None, false);
        segment(&w, 1, s(2), s(2), Some(s(2)), false);
        for track in 0..2 {
            w.push_part(crate::window::PartIn {
                track,
                msn: 2,
                index: 0,
                data: Bytes::new(),
                duration: ms(1500),
                independent: false,
                gap: true,
                last_in_segment: true,
                end_expected: false,
                discontinuity: true,
                start: s(4),
                samples: 0,
                target_duration: Some(2),
                announced: None,
                period: None,
                wall_offset: Duration::ZERO,
            });
        }
        segment_after_pause(&w, 3, s(4), s(2), Some(s(2)), true, ms(1500));
        let m = w.read(|st| mpd(&w, st, SystemTime::now(), "http://h/t"));
        assert!(
            m.contains("<Period id=\"p0\" start=\"PT0.000S\" duration=\"PT4.000S\">"),
            "{m}"
        );
        assert!(m.contains("<Period id=\"p3\" start=\"PT5.500S\">"), "{m}");
        assert!(
            m.contains("presentationTimeOffset=\"360000\"") && m.contains("startNumber=\"3\""),
            "{m}"
        );
        assert_eq!(
            m.matches("<Period ").count(),
            2,
            "no Period for the gap: {m}"
        );
        let p = w.read(|st| crate::hls::media_playlist(&w, st, 0, crate::hls::Skip::No));
        assert!(
            p.contains("#EXT-X-GAP\n#EXTINF:1.500000,\nabc/2.m4s\n"),
            "{p}"
        );
        assert!(!p.contains("abc/2.0.m4s"), "no parts for the gap: {p}");
        let dates = crate::hls::program_date_time(w.started + s(4));
        let media = crate::hls::program_date_time(w.started + ms(5500));
        assert!(
            p.contains(&format!(
                "#EXT-X-DISCONTINUITY\n#EXT-X-PROGRAM-DATE-TIME:{dates}\n#EXT-X-GAP"
            )),
            "{p}"
        );
        assert!(
            p.contains(&format!(
                "#EXT-X-DISCONTINUITY\n#EXT-X-PROGRAM-DATE-TIME:{media}\n"
            )),
            "{p}"
        );
    }

    #[test]
    fn a_stream_without_a_complete_segment_has_no_period_and_is_not_published() {
        let w = window(0, 3);
        let m = w.read(|st| mpd(&w, st, SystemTime::now(), "http://h/t"));
        assert!(!m.contains("<Period"), "{m}");
        assert!(!w.read(|st| st.published()));
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
