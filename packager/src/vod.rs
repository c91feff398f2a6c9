//! On-demand playlists over finished segments: a media playlist (EVENT while a live archive
//! grows, VOD once it is complete), the multivariant playlist and a static MPD. Shared by the
//! live [`crate::archive`] and by uploaded files packaged as they are ([`crate::file`]), so both
//! play alike: `{rendition}/index.m3u8` with `init.mp4` and `{msn}.m4s` beside it.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use media::{Timestamp, TrackInfo, TrackKind};

use crate::hls;

/// One finished segment of a rendition.
#[derive(Clone, Debug, PartialEq)]
pub struct Segment {
    pub msn: u64,
    /// Where it starts on the presentation's timeline (its first sample's decode time).
    pub start: Duration,
    pub duration: Duration,
    /// Its timeline does not continue the previous segment's (a publisher came back).
    pub discontinuity: bool,
    /// Wall-clock time of its start (a live recording's `EXT-X-PROGRAM-DATE-TIME`).
    pub date: Option<SystemTime>,
}

/// One rendition with its segments.
#[derive(Clone, Debug)]
pub struct Rendition {
    /// Its path component (`video`, `audio`).
    pub name: String,
    pub info: TrackInfo,
    /// Bits per second: the largest segment's rate and the whole rendition's.
    pub peak: u64,
    pub average: u64,
    pub frame_rate: Option<f64>,
    pub segments: Vec<Segment>,
}

/// `EXT-X-TARGETDURATION`: the longest segment rounded to the nearest second (RFC 8216bis
/// §4.4.3.1: no EXTINF may round to more), at least 1.
pub fn target_duration(segments: &[Segment]) -> u64 {
    segments
        .iter()
        .map(|s| (s.duration.as_millis() as u64 + 500) / 1000)
        .max()
        .map(|longest| longest.max(1))
        .unwrap_or(1)
}

/// A media playlist over `segments` (`{msn}.m4s`, `init.mp4` beside it): EVENT while more may
/// come, VOD with `EXT-X-ENDLIST` once `ended`.
pub fn media_playlist(segments: &[Segment], target_duration: u64, ended: bool) -> String {
    let mut p = String::from("#EXTM3U\n#EXT-X-VERSION:6\n");
    let _ = writeln!(p, "#EXT-X-TARGETDURATION:{target_duration}");
    let kind = if ended { "VOD" } else { "EVENT" };
    let _ = writeln!(p, "#EXT-X-PLAYLIST-TYPE:{kind}");
    let first = segments.first().map_or(0, |s| s.msn);
    let _ = writeln!(p, "#EXT-X-MEDIA-SEQUENCE:{first}");
    p.push_str("#EXT-X-INDEPENDENT-SEGMENTS\n#EXT-X-MAP:URI=\"init.mp4\"\n");
    for (k, s) in segments.iter().enumerate() {
        if k > 0 && s.discontinuity {
            p.push_str("#EXT-X-DISCONTINUITY\n");
        }
        if let Some(date) = s.date.filter(|_| k == 0 || s.discontinuity) {
            let _ = writeln!(
                p,
                "#EXT-X-PROGRAM-DATE-TIME:{}",
                hls::program_date_time(date)
            );
        }
        let _ = writeln!(p, "#EXTINF:{},\n{}.m4s", hls::seconds(s.duration), s.msn);
    }
    if ended {
        p.push_str("#EXT-X-ENDLIST\n");
    }
    p
}

/// The multivariant playlist of `renditions`.
pub fn multivariant(renditions: &[Rendition]) -> String {
    let variants: Vec<hls::Variant> = renditions
        .iter()
        .map(|r| hls::Variant {
            rendition: &r.name,
            info: &r.info,
            peak: r.peak.max(r.average).max(1),
            average: r.average.max(1),
            frame_rate: r.frame_rate,
        })
        .collect();
    hls::multivariant_of(&variants)
}

/// A static MPD over `renditions` (the same files as the playlists). Each adaptation set's
/// timeline is its first representation's.
pub fn static_mpd(renditions: &[Rendition]) -> String {
    let total = renditions
        .first()
        .and_then(|r| r.segments.last().map(|l| l.start + l.duration))
        .unwrap_or_default()
        .as_secs_f64();
    let mut out = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<MPD xmlns=\"urn:mpeg:dash:schema:mpd:2011\" profiles=\"urn:mpeg:dash:profile:isoff-live:2011\" type=\"static\" mediaPresentationDuration=\"PT{total:.3}S\" minBufferTime=\"PT2S\">\n  <Period id=\"0\" start=\"PT0S\">\n"
    );
    for (set, kind) in [TrackKind::Video, TrackKind::Audio].into_iter().enumerate() {
        let members: Vec<&Rendition> = renditions
            .iter()
            .filter(|r| r.info.kind() == kind)
            .collect();
        let Some(first) = members.first() else {
            continue;
        };
        let (content, mime) = match kind {
            TrackKind::Video => ("video", "video/mp4"),
            TrackKind::Audio => ("audio", "audio/mp4"),
        };
        let scale = first.info.timescale;
        let _ = write!(
            out,
            "    <AdaptationSet id=\"{set}\" contentType=\"{content}\" mimeType=\"{mime}\" segmentAlignment=\"true\" startWithSAP=\"1\">\n      <SegmentTemplate timescale=\"{}\" initialization=\"$RepresentationID$/init.mp4\" media=\"$RepresentationID$/$Number$.m4s\" startNumber=\"{}\">\n        <SegmentTimeline>\n",
            scale.0,
            first.segments.first().map_or(0, |s| s.msn)
        );
        for s in &first.segments {
            let _ = writeln!(
                out,
                "          <S t=\"{}\" d=\"{}\"/>",
                Timestamp::from_duration(s.start, scale).ticks,
                Timestamp::from_duration(s.duration, scale).ticks
            );
        }
        out.push_str("        </SegmentTimeline>\n      </SegmentTemplate>\n");
        for r in members {
            let _ = write!(
                out,
                "      <Representation id=\"{}\" codecs=\"{}\" bandwidth=\"{}\"",
                r.name,
                r.info.codec.codec_string(),
                r.peak.max(r.average).max(1)
            );
            if r.info.width > 0 {
                let _ = write!(
                    out,
                    " width=\"{}\" height=\"{}\"",
                    r.info.width, r.info.height
                );
            }
            if kind == TrackKind::Audio {
                let _ = write!(out, " audioSamplingRate=\"{}\"", r.info.sample_rate);
            }
            out.push_str("/>\n");
        }
        out.push_str("    </AdaptationSet>\n");
    }
    out.push_str("  </Period>\n</MPD>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(msn: u64, start_ms: u64, ms: u64) -> Segment {
        Segment {
            msn,
            start: Duration::from_millis(start_ms),
            duration: Duration::from_millis(ms),
            discontinuity: false,
            date: None,
        }
    }

    #[test]
    fn a_vod_playlist_lists_every_segment_under_its_target() {
        let segs = [seg(0, 0, 6006), seg(1, 6006, 5994), seg(2, 12000, 1000)];
        assert_eq!(target_duration(&segs), 6, "6.006 s rounds to 6");
        assert_eq!(target_duration(&[seg(0, 0, 6500)]), 7);
        let p = media_playlist(&segs, target_duration(&segs), true);
        assert!(p.contains("#EXT-X-PLAYLIST-TYPE:VOD\n"), "{p}");
        assert!(p.contains("#EXTINF:6.006000,\n0.m4s\n"), "{p}");
        assert!(p.ends_with("2.m4s\n#EXT-X-ENDLIST\n"), "{p}");
        assert!(!p.contains("PROGRAM-DATE-TIME"), "no dates for a file: {p}");
        let growing = media_playlist(&segs[..1], 7, false);
        assert!(growing.contains("EVENT") && !growing.contains("ENDLIST"));
    }
}
