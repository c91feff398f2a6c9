//! The live window: per stream and track, the init segment and the last N segments with their
//! parts, plus a notifier that wakes waiting requests the moment a part lands.
//!
//! Memory is bounded by N complete segments (plus the one being written) per track; an
//! evicted segment is gone (HTTP answers 404). Readers take the lock only to copy out
//! `Bytes` handles or render a playlist; nothing holds it across an `.await`.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use media::{TrackInfo, TrackKind};
use tokio::sync::watch;

#[derive(Clone, Debug)]
pub struct WindowConfig {
    /// Complete segments kept per track.
    pub segments: usize,
    pub segment_target: Duration,
    pub part_target: Duration,
    /// Viewers need a signed playback token (the HTTP server checks it); the Redis mirror and
    /// the archive carry the flag, so edges and archives know it too.
    pub signed: bool,
}

impl Default for WindowConfig {
    fn default() -> Self {
        Self {
            segments: 10,
            segment_target: Duration::from_secs(2),
            part_target: Duration::from_millis(167),
            signed: false,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Part {
    pub data: Bytes,
    pub duration: Duration,
    pub independent: bool,
    /// No media for this track in the part's time range.
    pub gap: bool,
    /// Samples in the part.
    pub samples: u32,
}

#[derive(Clone, Debug)]
pub struct Segment {
    pub msn: u64,
    pub parts: Vec<Part>,
    pub complete: bool,
    /// The packager expects this segment to end after its last part so far.
    pub end_expected: bool,
    pub discontinuity: bool,
    /// Where the segment starts on the stream timeline (its first part's start).
    pub start: Duration,
    /// The length the segment was announced to have when it started ([`PartIn::announced`]).
    pub announced: Option<Duration>,
    /// Where the segment's DASH Period began: the msn and start of its first segment. A
    /// segment continues its predecessor's Period when it starts where that one was listed
    /// to end ([`Segment::listed_length`]) and no discontinuity comes between; otherwise it
    /// begins a Period. Kept per segment, so a Period keeps its start and id after its first
    /// segments leave the window. (The MPD follows the leading track's.)
    pub period: (u64, Duration),
    /// Wall-clock time of the segment's first sample.
    pub program_date_time: SystemTime,
    /// What the timeline left out of the wall clock before this segment ([`PartIn::wall_offset`]):
    /// its wall-clock time, and its program date time, is `started + start + wall_offset`. The
    /// MPD's Periods start there. In HLS the pause a publisher's reconnect took out is listed
    /// as segments without media (`EXT-X-GAP`: [`Segment::is_gap`]), so the playlist's length
    /// runs with the program date time and the wall clock.
    pub wall_offset: Duration,
    /// The sum of the parts so far.
    pub duration: Duration,
    pub samples: u32,
    pub bytes: usize,
}

impl Segment {
    /// No media in it for its track: a pause in the source (a publisher's reconnect), or a
    /// track that sent nothing for all of it. Listed with `EXT-X-GAP` in HLS (never loaded),
    /// left out of the MPD and the archive.
    pub fn is_gap(&self) -> bool {
        !self.parts.is_empty() && self.parts.iter().all(|p| p.gap)
    }

    /// The length the MPD lists the segment with: the announced one, else (once complete)
    /// its own.
    pub fn listed_length(&self) -> Option<Duration> {
        self.announced.or(self.complete.then_some(self.duration))
    }

    /// The segment's bytes as the chunks they were produced in (served without copying).
    pub fn chunks(&self) -> Vec<Bytes> {
        self.parts
            .iter()
            .filter(|p| !p.gap)
            .map(|p| p.data.clone())
            .collect()
    }
}

#[derive(Debug)]
pub struct TrackWindow {
    pub info: TrackInfo,
    /// Path component of this rendition (`video`, `audio`).
    pub rendition: String,
    pub init: Bytes,
    pub segments: VecDeque<Segment>,
    /// Largest complete-segment bitrate seen, bits/s.
    pub peak_bitrate: u64,
    pub total_bytes: u64,
    /// Media time packaged since the start.
    pub total_duration: Duration,
    pub total_samples: u64,
    pub total_parts: u64,
    /// EXT-X-DISCONTINUITY-SEQUENCE: discontinuities that slid out of the playlist.
    pub discontinuity_sequence: u64,
}

impl TrackWindow {
    /// (msn, part index) of the last part that exists, if any.
    pub fn last_part(&self) -> Option<(u64, u32)> {
        let seg = self.segments.back()?;
        if seg.parts.is_empty() {
            return None;
        }
        Some((seg.msn, seg.parts.len() as u32 - 1))
    }

    /// The (msn, part) that the next part will have: what the preload hint names.
    pub fn next_part(&self) -> (u64, u32) {
        match self.segments.back() {
            None => (0, 0),
            Some(s) if s.complete || s.end_expected => (s.msn + 1, 0),
            Some(s) => (s.msn, s.parts.len() as u32),
        }
    }

    /// The msn of the segment being written (or the next one if all are complete).
    pub fn open_msn(&self) -> u64 {
        match self.segments.back() {
            None => 0,
            Some(s) if s.complete => s.msn + 1,
            Some(s) => s.msn,
        }
    }

    pub fn segment(&self, msn: u64) -> Option<&Segment> {
        let first = self.segments.front()?.msn;
        let seg = self.segments.get(msn.checked_sub(first)? as usize)?;
        debug_assert_eq!(seg.msn, msn);
        Some(seg)
    }

    pub fn part(&self, msn: u64, index: u32) -> Option<&Part> {
        self.segment(msn)?.parts.get(index as usize)
    }

    /// Average bitrate over the window, bits/s.
    pub fn average_bitrate(&self) -> u64 {
        let (bytes, secs) = self
            .segments
            .iter()
            .filter(|s| s.complete)
            .fold((0usize, 0f64), |(b, d), s| {
                (b + s.bytes, d + s.duration.as_secs_f64())
            });
        let total = self.total_duration.as_secs_f64();
        if secs > 0.0 {
            (bytes as f64 * 8.0 / secs) as u64
        } else if total > 0.0 {
            (self.total_bytes as f64 * 8.0 / total) as u64
        } else {
            0
        }
    }

    pub fn frame_rate(&self) -> Option<f64> {
        if self.info.kind() != TrackKind::Video {
            return None;
        }
        let total = self.total_duration.as_secs_f64();
        if total > 0.5 {
            return Some(self.total_samples as f64 / total);
        }
        self.info.frame_rate_hint
    }
}

#[derive(Debug)]
pub struct WindowState {
    /// Bumped on every change; rendered playlists are cached against it.
    pub version: u64,
    pub tracks: Vec<TrackWindow>,
    /// The stream has ended: playlists carry EXT-X-ENDLIST and nothing more will come.
    pub ended: bool,
    /// EXT-X-TARGETDURATION in seconds, fixed by the packager when the first segment ended
    /// and never changed after.
    pub target_duration: Option<u64>,
}

impl WindowState {
    /// Whether playlists may be served: the target duration is fixed and every track has a
    /// complete segment, so the first playlist a player sees already has everything a full
    /// one must (a segment, a date, reports with their last part) and never changes its
    /// target duration. Until then, 404.
    pub fn published(&self) -> bool {
        self.target_duration.is_some()
            && self
                .tracks
                .iter()
                .all(|t| t.segments.iter().any(|s| s.complete))
    }
}

/// `t` without its fraction of a millisecond. A stream starts on a whole millisecond, so the
/// program date times written from it (to the millisecond, as players read them) are its media
/// times as exactly as they can be: a player such as Shaka places each segment by its program
/// date time and moves its buffer's timestamp offset (dropping frames up to the next keyframe)
/// when that disagrees with the media by a millisecond or more.
fn whole_millisecond(t: SystemTime) -> SystemTime {
    let since = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    SystemTime::UNIX_EPOCH + Duration::from_millis(since.as_millis() as u64)
}

/// One live stream's window.
pub struct StreamWindow {
    pub name: String,
    /// Distinguishes one publish session from the next in segment URLs, so caches never mix
    /// two sessions' bytes under one URL.
    pub session: String,
    pub config: WindowConfig,
    pub started: SystemTime,
    state: Mutex<WindowState>,
    version: watch::Sender<u64>,
    /// Rendered responses (playlists) by caller-chosen key, valid for one state version.
    rendered: Mutex<HashMap<u64, (u64, Bytes)>>,
    /// Frames the stream's consumers dropped to stay real time (a transcoder or the packager
    /// falling behind skips to the next keyframe), as the broadcast counts them.
    pub skipped: std::sync::atomic::AtomicU64,
    /// How long the packager took to publish each part ([`crate::delay`]).
    pub publish_delay: crate::delay::DelayHistogram,
    /// Per track: where parts go when shared-memory parts are on ([`crate::shm`]).
    slabs: Vec<crate::shm::SlabWriter>,
}

/// What a packager hands the window.
#[derive(Clone, Debug, PartialEq)]
pub struct PartIn {
    pub track: usize,
    pub msn: u64,
    pub index: u32,
    pub data: Bytes,
    pub duration: Duration,
    pub independent: bool,
    pub gap: bool,
    pub last_in_segment: bool,
    /// The segment is expected to end after this part.
    pub end_expected: bool,
    pub discontinuity: bool,
    /// Position of the part's start on the stream timeline.
    pub start: Duration,
    pub samples: u32,
    /// The target duration in seconds, once the packager has fixed it.
    pub target_duration: Option<u64>,
    /// How long the part's segment was announced to last when it started.
    pub announced: Option<Duration>,
    /// The segment's Period ([`Segment::period`]) when another node worked it out (an edge
    /// replaying the origin's window); `None`: worked out here.
    pub period: Option<(u64, Duration)>,
    /// How much wall-clock time the timeline left out before this part (a publisher's pauses:
    /// [`crate::segmenter::Segmenter::removed`]).
    pub wall_offset: Duration,
}

/// Ticks of `scale` at stream time `d`, rounded (the MPD's numbers and the Period test use
/// the same).
pub fn ticks(d: Duration, scale: u32) -> u64 {
    ((d.as_nanos() * scale as u128 + 500_000_000) / 1_000_000_000) as u64
}

/// Whether `start` is `prev`'s listed end, to the tick of `scale`.
/// Each track's rendition name, its path component: `video`, `video2`, …, `audio`, `audio2`, ….
pub fn rendition_names<'a>(tracks: impl Iterator<Item = &'a TrackInfo>) -> Vec<String> {
    let (mut video, mut audio) = (0, 0);
    tracks
        .map(|info| {
            let (kind, n) = match info.kind() {
                TrackKind::Video => ("video", &mut video),
                TrackKind::Audio => ("audio", &mut audio),
            };
            *n += 1;
            if *n == 1 {
                kind.to_string()
            } else {
                format!("{kind}{n}")
            }
        })
        .collect()
}

fn continues(prev: &Segment, msn: u64, start: Duration, scale: u32) -> bool {
    prev.msn + 1 == msn
        && prev
            .listed_length()
            .is_some_and(|l| ticks(prev.start + l, scale) == ticks(start, scale))
}

impl StreamWindow {
    pub fn new(
        name: &str,
        session: String,
        config: WindowConfig,
        tracks: Vec<(TrackInfo, Bytes)>,
    ) -> Self {
        let names = rendition_names(tracks.iter().map(|(info, _)| info));
        let tracks: Vec<TrackWindow> = tracks
            .into_iter()
            .zip(names)
            .map(|((info, init), rendition)| TrackWindow {
                info,
                rendition,
                init,
                segments: VecDeque::new(),
                peak_bitrate: 0,
                total_bytes: 0,
                total_duration: Duration::ZERO,
                total_samples: 0,
                total_parts: 0,
                discontinuity_sequence: 0,
            })
            .collect();
        let (version, _) = watch::channel(0);
        let slabs = (0..tracks.len())
            .map(|_| crate::shm::SlabWriter::default())
            .collect();
        StreamWindow {
            name: name.to_string(),
            session,
            config,
            started: whole_millisecond(SystemTime::now()),
            state: Mutex::new(WindowState {
                version: 0,
                tracks,
                ended: false,
                target_duration: None,
            }),
            version,
            rendered: Mutex::new(HashMap::new()),
            skipped: std::sync::atomic::AtomicU64::new(0),
            publish_delay: Default::default(),
            slabs,
        }
    }

    /// The same window as another node's (an edge replaying the origin's): its start time, so
    /// program date times match.
    pub fn with_started(mut self, started: SystemTime) -> Self {
        self.started = whole_millisecond(started);
        self
    }

    /// Runs `f` with the state locked. Keep `f` short: no I/O, no awaiting.
    pub fn read<R>(&self, f: impl FnOnce(&WindowState) -> R) -> R {
        f(&self.state.lock().unwrap())
    }

    /// `render(state)` for the current state, computed once per state version and `key`:
    /// every viewer woken by the same part gets the same bytes without re-rendering.
    pub fn rendered(&self, key: u64, render: impl FnOnce(&WindowState) -> Bytes) -> Bytes {
        let st = self.state.lock().unwrap();
        let mut cache = self.rendered.lock().unwrap();
        if let Some((v, b)) = cache.get(&key) {
            if *v == st.version {
                return b.clone();
            }
        }
        let b = render(&st);
        cache.insert(key, (st.version, b.clone()));
        b
    }

    /// A receiver that changes whenever a part lands or the stream ends.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.version.subscribe()
    }

    pub fn push_part(&self, mut p: PartIn) {
        // Into shared memory (when on) before the lock: the one copy a part gets.
        if let Some(slab) = self.slabs.get(p.track) {
            p.data = slab.place(std::mem::take(&mut p.data));
        }
        {
            let mut st = self.state.lock().unwrap();
            let keep = self.config.segments.max(1);
            if st.target_duration.is_none() {
                st.target_duration = p.target_duration;
            }
            let Some(track) = st.tracks.get_mut(p.track) else {
                return;
            };
            let open = track
                .segments
                .back()
                .is_some_and(|s| !s.complete && s.msn == p.msn);
            if !open {
                let pdt = self
                    .started
                    .checked_add(p.start + p.wall_offset)
                    .unwrap_or(self.started);
                let scale = track.info.timescale.0;
                let period = p.period.unwrap_or_else(|| match track.segments.back() {
                    Some(prev) if !p.discontinuity && continues(prev, p.msn, p.start, scale) => {
                        prev.period
                    }
                    _ => (p.msn, p.start),
                });
                track.segments.push_back(Segment {
                    msn: p.msn,
                    parts: Vec::new(),
                    complete: false,
                    end_expected: false,
                    discontinuity: p.discontinuity,
                    start: p.start,
                    announced: p.announced,
                    period,
                    program_date_time: pdt,
                    wall_offset: p.wall_offset,
                    duration: Duration::ZERO,
                    samples: 0,
                    bytes: 0,
                });
            }
            let seg = track.segments.back_mut().expect("just ensured");
            seg.duration += p.duration;
            seg.samples += p.samples;
            seg.bytes += p.data.len();
            seg.end_expected = p.end_expected;
            track.total_bytes += p.data.len() as u64;
            seg.parts.push(Part {
                data: p.data,
                duration: p.duration,
                independent: p.independent,
                gap: p.gap,
                samples: p.samples,
            });
            track.total_duration += p.duration;
            track.total_samples += p.samples as u64;
            track.total_parts += 1;
            if p.last_in_segment {
                Self::complete(&mut st, p.track, p.msn, keep);
            }
            st.version += 1;
        }
        self.version.send_modify(|v| *v += 1);
    }

    /// Segment `msn` of `track` is complete (its last part came earlier); `target_duration`
    /// as in [`PartIn::target_duration`].
    pub fn complete_segment(&self, track: usize, msn: u64, target_duration: Option<u64>) {
        {
            let mut st = self.state.lock().unwrap();
            if st.target_duration.is_none() {
                st.target_duration = target_duration;
            }
            Self::complete(&mut st, track, msn, self.config.segments.max(1));
            st.version += 1;
        }
        self.version.send_modify(|v| *v += 1);
    }

    fn complete(st: &mut WindowState, track: usize, msn: u64, keep: usize) {
        let Some(t) = st.tracks.get_mut(track) else {
            return;
        };
        let Some(seg) = t
            .segments
            .back_mut()
            .filter(|s| s.msn == msn && !s.complete)
        else {
            return;
        };
        seg.complete = true;
        let d = seg.duration;
        if !d.is_zero() {
            let bitrate = seg.bytes as f64 * 8.0 / d.as_secs_f64();
            t.peak_bitrate = t.peak_bitrate.max(bitrate as u64);
        }
        while t.segments.iter().filter(|s| s.complete).count() > keep {
            t.segments.pop_front();
            // The new first segment's tag is no longer written: count it instead.
            if t.segments.front().is_some_and(|s| s.discontinuity) {
                t.discontinuity_sequence += 1;
            }
        }
    }

    /// No more parts will come; playlists end with EXT-X-ENDLIST.
    pub fn end(&self) {
        {
            let mut st = self.state.lock().unwrap();
            st.ended = true;
            st.version += 1;
        }
        self.version.send_modify(|v| *v += 1);
    }

    pub fn is_ended(&self) -> bool {
        self.state.lock().unwrap().ended
    }

    /// EXT-X-TARGETDURATION in seconds: as the packager fixed it (before that, which only
    /// unpublished windows see, the configured target). The packager cuts every segment so
    /// that its EXTINF, rounded to the nearest integer, does not exceed it (RFC 8216bis
    /// §4.4.3.1).
    pub fn target_duration(&self, st: &WindowState) -> u64 {
        st.target_duration
            .unwrap_or_else(|| (self.config.segment_target.as_secs_f64().round() as u64).max(1))
    }
}

/// Every live (and recently ended) stream's window, by public name.
#[derive(Clone)]
pub struct Windows {
    map: Arc<Mutex<HashMap<String, Arc<StreamWindow>>>>,
    /// Bumped whenever a window comes or goes, for what follows the set (the Redis mirror).
    changed: watch::Sender<u64>,
}

impl Default for Windows {
    fn default() -> Self {
        Windows {
            map: Arc::default(),
            changed: watch::channel(0).0,
        }
    }
}

impl Windows {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn get(&self, name: &str) -> Option<Arc<StreamWindow>> {
        self.map.lock().unwrap().get(name).cloned()
    }

    pub fn insert(&self, w: Arc<StreamWindow>) {
        let old = self.map.lock().unwrap().insert(w.name.clone(), w);
        if let Some(old) = old {
            old.end();
        }
        self.changed.send_modify(|v| *v += 1);
    }

    /// Removes `w` if it is still the window registered under its name.
    pub fn remove(&self, w: &Arc<StreamWindow>) {
        let removed = {
            let mut map = self.map.lock().unwrap();
            let current = map.get(&w.name).is_some_and(|cur| Arc::ptr_eq(cur, w));
            current && map.remove(&w.name).is_some()
        };
        if removed {
            self.changed.send_modify(|v| *v += 1);
        }
    }

    pub fn all(&self) -> Vec<Arc<StreamWindow>> {
        let mut v: Vec<_> = self.map.lock().unwrap().values().cloned().collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// A receiver that changes whenever a window is added or removed.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }
}

/// For tests of what renders windows: `complete` whole segments of six 1/3 s parts in each of
/// two tracks, then `open_parts` parts of one more; segment `disc` follows a discontinuity.
#[cfg(test)]
pub(crate) fn fill_for_tests(w: &StreamWindow, complete: u64, open_parts: u32, disc: Option<u64>) {
    for msn in 0..=complete {
        let parts = if msn == complete { open_parts } else { 6 };
        for i in 0..parts {
            for track in 0..2 {
                w.push_part(PartIn {
                    track,
                    msn,
                    index: i,
                    data: Bytes::from(vec![0u8; 1000]),
                    duration: Duration::from_secs(1) / 3,
                    independent: i == 0 || track == 1,
                    gap: false,
                    last_in_segment: i == 5,
                    end_expected: false,
                    discontinuity: disc == Some(msn) && i == 0,
                    start: Duration::from_secs(msn * 2) + Duration::from_secs(i as u64) / 3,
                    samples: 10,
                    target_duration: (msn > 0 || i == 5).then_some(2),
                    announced: (msn > 0).then_some(Duration::from_secs(2)),
                    period: None,
                    wall_offset: Duration::ZERO,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use media::CodecConfig;

    fn part(msn: u64, index: u32, last: bool) -> PartIn {
        PartIn {
            track: 0,
            msn,
            index,
            data: Bytes::from(vec![0u8; 1000]),
            duration: Duration::from_millis(500),
            independent: index == 0,
            gap: false,
            last_in_segment: last,
            end_expected: false,
            discontinuity: false,
            start: Duration::from_millis(msn * 2000 + index as u64 * 500),
            samples: 15,
            target_duration: Some(2),
            announced: None,
            period: None,
            wall_offset: Duration::ZERO,
        }
    }

    #[test]
    fn bounded_and_404_after_eviction() {
        let info = TrackInfo::video(CodecConfig::H264 { avcc: Bytes::new() });
        let cfg = WindowConfig {
            segments: 3,
            ..Default::default()
        };
        let w = StreamWindow::new("s", "x".into(), cfg, vec![(info, Bytes::new())]);
        let mut rx = w.subscribe();
        for msn in 0..20 {
            for i in 0..4 {
                w.push_part(part(msn, i, i == 3));
            }
        }
        w.push_part(part(20, 0, false));
        assert!(rx.has_changed().unwrap());
        rx.borrow_and_update();
        w.read(|st| {
            let t = &st.tracks[0];
            assert_eq!(t.segments.len(), 4, "3 complete + the open one");
            assert!(t.segment(16).is_none());
            assert_eq!(t.segment(17).unwrap().parts.len(), 4);
            assert_eq!(t.last_part(), Some((20, 0)));
            assert_eq!(t.next_part(), (20, 1));
            assert_eq!(t.average_bitrate(), 16_000);
            assert_eq!(w.target_duration(st), 2);
        });
    }
}
