//! Cuts tracks into segments and parts at the same boundaries in every track.
//!
//! Push/pull contract: `push(frame)` (and `lagged()` / `finish()`), then `pull()` until
//! `None`. The leading track (video, else the first track) decides the boundaries: a segment
//! starts on a leader keyframe once at least the target duration has passed, and a part holds
//! as many frames as fit in the part target.
//!
//! Latency: a part is closed as soon as its last frame arrives, not when the next frame does.
//! The last sample's duration is then predicted from the frame interval, and the next frame,
//! when it lands within half an interval of the prediction, is placed at the predicted decode
//! time (its presentation time is kept), so the timeline stays contiguous. Whether that next
//! frame starts a new segment is only known when it arrives, so a segment's end can come as
//! its own [`Output::SegmentEnd`] after its last part.
//!
//! Every other track closes its part `k` as soon as it holds a frame at or after boundary `k`
//! (less half a leader interval: the leader's frames are snapped to its predicted grid), so
//! segment N covers the same time in every track. A follower with nothing in a part's time
//! range gets a gap part (no samples) so numbering stays aligned.
//!
//! Timing that players can rely on:
//!
//! - **Frames on their grid**: each track's frames are placed on its frame grid ([`grid`]), so
//!   sample durations do not jitter with the publisher's millisecond clock and composition
//!   offsets stay what the encoder made them (zero without B-frames).
//! - **A fixed target duration**: when the first segment ends, the target duration is fixed
//!   for the life of the stream at the longer of the configured target and that segment's
//!   length, in whole seconds (RFC 8216bis: it MUST NOT change). A later segment that would
//!   round above it is cut there even without a keyframe (its next segment then does not
//!   start with one; [`Output::Part`] says so through `independent`).
//! - **An announced length**: every segment after the first is announced, when it starts, to
//!   last as long as the one before ([`PartOut::announced`]); a DASH timeline can list it
//!   while it is written. A publisher with a steady keyframe interval keeps the promise to the
//!   tick (its keyframes land on the grid); when a segment ends elsewhere, the MPD starts a
//!   new Period there.
//!
//! Bounds (memory never grows with uptime, whatever the publisher sends):
//!
//! - **A follower that goes silent** (audio muted at the source, a dead track) is not waited
//!   for: once it has sent nothing while the leader went on for [`FOLLOWER_LAG_TARGETS`]
//!   segment targets, its parts older than that are closed as gaps. A follower that keeps
//!   sending but late (or has not started yet) is waited for, up to [`MAX_BEHIND`] parts. Either way [`Output::Behind`]
//!   says so once, frames that arrive later for a part already closed are dropped (counted in
//!   `dropped`), and the boundaries kept for a follower stay bounded.
//! - **A leader without keyframes**: a segment that reaches [`SEGMENT_CAP_TARGETS`] segment
//!   targets without a keyframe to start the next one is closed there ([`Output::Capped`]);
//!   leader frames are then dropped until the next keyframe, which starts a segment after a
//!   discontinuity. Every segment still starts on a keyframe, and the open segment is bounded.

mod grid;

use std::collections::VecDeque;
use std::time::Duration;

use grid::Grid;

use media::{Frame, Timescale, Timestamp, TrackInfo, TrackKind};

use crate::cmaf::Sample;

/// Frames a follower track may hold while waiting for the leader's next boundary (about
/// 45 s of AAC); older ones are dropped and counted in `dropped`.
const MAX_PENDING: usize = 2048;
/// A follower that sent nothing while the leader went on for this many segment targets has its
/// older parts closed (as gaps).
pub const FOLLOWER_LAG_TARGETS: i64 = 2;
/// A follower is never waited for more than this many parts (a minute and a half of 1/3 s
/// parts).
pub const MAX_BEHIND: u64 = 256;
/// Before the target duration is fixed (in the first segment), a segment without a keyframe
/// to end it is closed at this many segment targets.
pub const SEGMENT_CAP_TARGETS: i64 = 10;

#[derive(Clone, Copy, Debug)]
pub struct SegmenterConfig {
    pub segment_target: Duration,
    pub part_target: Duration,
}

impl Default for SegmenterConfig {
    fn default() -> Self {
        Self {
            segment_target: Duration::from_secs(2),
            part_target: Duration::from_millis(167),
        }
    }
}

/// One finished part of one track.
#[derive(Clone, Debug)]
pub struct PartOut {
    pub track: usize,
    pub msn: u64,
    pub index: u32,
    /// Starts with a keyframe (always true for audio).
    pub independent: bool,
    /// Known, when the part closed, to be the segment's last.
    pub last_in_segment: bool,
    /// The leader expects the segment to end after this part (the next part will likely be
    /// `(msn + 1, 0)`); used for the preload hint.
    pub end_expected: bool,
    /// The first part of a segment that follows a gap in the source.
    pub discontinuity: bool,
    /// The target duration in whole seconds, once fixed (when the first segment ended).
    pub target_duration: Option<u64>,
    /// How long the segment was announced to last when it started (the previous segment's
    /// length; none for the first).
    pub announced: Option<Duration>,
    /// Decode time of the part's start, in the track's timescale.
    pub start: Timestamp,
    /// Where the part ends (the next part's start), in the track's timescale.
    pub end: Timestamp,
    /// Empty for a gap part.
    pub samples: Vec<Sample>,
    /// What the timeline left out of the wall clock before this part, when it is not
    /// [`Segmenter::removed`] as it stands when the part is pulled: a pause's own gap
    /// segments ([`Segmenter::gap_segments`]) count what was left out before the pause.
    pub wall_offset: Option<Duration>,
}

impl PartOut {
    /// The part's length in ticks of its track's timescale.
    pub fn ticks(&self) -> i64 {
        self.end.ticks - self.start.ticks
    }
}

#[derive(Clone, Debug)]
pub enum Output {
    Part(PartOut),
    /// Segment `msn` of `track` is complete; its last part came earlier.
    SegmentEnd {
        track: usize,
        msn: u64,
        /// As in [`PartOut::target_duration`].
        target_duration: Option<u64>,
    },
    /// Segment `msn` reached the cap without a keyframe and was closed; the leader waits for
    /// its next keyframe.
    Capped {
        msn: u64,
        length: Duration,
    },
    /// Follower `track`'s parts are being closed without waiting for it (it went silent, or
    /// fell [`MAX_BEHIND`] parts behind): gaps where it has nothing, until it is back.
    Behind {
        track: usize,
    },
}

#[derive(Clone, Copy, Debug)]
struct Boundary {
    seq: u64,
    start: i64,
    end: i64,
    msn: u64,
    index: u32,
    ends_segment: bool,
    end_expected: bool,
    discontinuity: bool,
    announced: Option<Duration>,
}

struct TrackState {
    scale: Timescale,
    pending: VecDeque<Frame>,
    /// Sequence number of the next boundary this track has to close.
    next_boundary: u64,
    grid: Grid,
    /// A follower's parts up to here (its ticks) were closed without waiting for it: frames
    /// before it come too late.
    closed_until: Option<i64>,
    /// The leader's newest decode time when this follower's last frame arrived.
    heard: Option<i64>,
    /// A follower told [`Output::Behind`], until a frame of it is taken again.
    behind: bool,
}

pub struct Segmenter {
    segment_target: i64,
    part_target: i64,
    /// [`SEGMENT_CAP_TARGETS`] and [`FOLLOWER_LAG_TARGETS`] in leader ticks.
    segment_cap: i64,
    follower_lag: i64,
    leader: usize,
    leader_scale: Timescale,
    tracks: Vec<TrackState>,
    boundaries: VecDeque<Boundary>,
    next_seq: u64,
    out: VecDeque<Output>,
    msn: u64,
    index: u32,
    seg_start: Option<i64>,
    part_start: i64,
    last_dts: i64,
    /// The open part was closed early at this predicted end; no leader frame since.
    predicted_end: Option<i64>,
    /// The leader already closed a part early expecting this segment to end.
    anticipated: bool,
    discontinuity: bool,
    /// The target duration in leader ticks (whole seconds), fixed when the first segment ends.
    target_duration: Option<i64>,
    /// The last segment's length in leader ticks: what the next one is announced to last.
    last_length: Option<i64>,
    /// The open segment's announced length.
    announced: Option<i64>,
    /// Where the leader's last part ended (its ticks).
    leader_end: i64,
    /// Set by [`Segmenter::restarted`]: the restarted source's first keyframe goes here.
    resume_at: Option<i64>,
    /// Added to every frame's decode and presentation times, in leader ticks (zero or less):
    /// the pauses [`Segmenter::restarted`] took out of the timeline.
    shift: i64,
    /// Frames dropped: leader frames before the first keyframe or out of decode order, and
    /// follower frames beyond the backlog bound.
    pub dropped: u64,
}

impl Segmenter {
    pub fn new(tracks: &[TrackInfo], cfg: SegmenterConfig) -> Segmenter {
        let leader = tracks
            .iter()
            .position(|t| t.kind() == TrackKind::Video)
            .unwrap_or(0);
        let leader_scale = tracks
            .get(leader)
            .map(|t| t.timescale)
            .unwrap_or(Timescale::VIDEO);
        let ticks = |d: Duration| (d.as_secs_f64() * leader_scale.0 as f64).round() as i64;
        let segment_target = ticks(cfg.segment_target);
        Segmenter {
            segment_target,
            part_target: ticks(cfg.part_target),
            segment_cap: segment_target * SEGMENT_CAP_TARGETS,
            follower_lag: segment_target * FOLLOWER_LAG_TARGETS,
            leader,
            leader_scale,
            tracks: tracks
                .iter()
                .map(|t| TrackState {
                    scale: t.timescale,
                    pending: VecDeque::new(),
                    next_boundary: 0,
                    grid: match t.kind() {
                        TrackKind::Audio => Grid::audio(t.timescale.0),
                        TrackKind::Video => Grid::video(t.timescale.0, t.frame_rate_hint),
                    },
                    closed_until: None,
                    heard: None,
                    behind: false,
                })
                .collect(),
            boundaries: VecDeque::new(),
            next_seq: 0,
            out: VecDeque::new(),
            msn: 0,
            index: 0,
            seg_start: None,
            part_start: 0,
            last_dts: 0,
            predicted_end: None,
            anticipated: false,
            discontinuity: false,
            target_duration: None,
            last_length: None,
            announced: None,
            leader_end: 0,
            resume_at: None,
            shift: 0,
            dropped: 0,
        }
    }

    /// How much of the wall clock the timeline leaves out: the pauses of a source that
    /// restarted ([`Segmenter::restarted`]). A part's wall-clock time is its start plus this.
    pub fn removed(&self) -> Duration {
        Timestamp::new(-self.shift, self.leader_scale).as_duration()
    }

    pub fn pull(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    pub fn push(&mut self, mut frame: Frame) {
        if !self.rebase(&mut frame) {
            self.dropped += 1;
            return;
        }
        // The leader waits for a keyframe after a cap or a lag: followers keep only what the
        // next segment may use.
        let waiting = self.seg_start.is_none() && self.next_seq > 0;
        let (lag, leader_scale) = (self.follower_lag, self.leader_scale);
        let leader_now = self.last_dts;
        let Some(track) = self.tracks.get_mut(frame.track) else {
            return;
        };
        if frame.dts.scale != track.scale {
            // Adapters produce frames in their track's timescale; anything else is a bug upstream.
            debug_assert!(false, "frame timescale does not match its track");
            return;
        }
        // On the frame grid, presentation time moved with the decode time.
        let Some(placed) = track.grid.place(frame.dts.ticks) else {
            // Decode order went backwards: not something a decoder can use; drop it.
            self.dropped += 1;
            return;
        };
        frame.shift(placed - frame.dts.ticks);
        if frame.track != self.leader {
            let index = frame.track;
            track.heard = Some(leader_now);
            if track.closed_until.is_some_and(|c| frame.dts.ticks < c) {
                // Its part was closed without it (the track had gone silent or fell behind).
                self.dropped += 1;
                return;
            }
            track.behind = false;
            // Bounded: if the leader stalls, a follower's oldest frames go rather than memory.
            if track.pending.len() >= MAX_PENDING {
                track.pending.pop_front();
                self.dropped += 1;
            }
            if waiting {
                let oldest = frame.dts.ticks - track.scale.convert(lag, leader_scale);
                while track.pending.front().is_some_and(|f| f.dts.ticks < oldest) {
                    track.pending.pop_front();
                    self.dropped += 1;
                }
            }
            track.pending.push_back(frame);
            self.close_follower(index, false);
            return;
        }
        let mut t = frame.dts.ticks;
        let Some(seg_start) = self.seg_start else {
            if !frame.keyframe {
                self.dropped += 1;
                return;
            }
            self.start_segment(t);
            self.part_start = t;
            self.last_dts = t;
            self.tracks[self.leader].pending.push_back(frame);
            self.close_early_if_full(t);
            return;
        };
        if t < self.last_dts {
            // Decode order went backwards: not something a decoder can use; drop it.
            self.dropped += 1;
            return;
        }
        if self.target_duration.is_none() && !frame.keyframe && t - seg_start >= self.segment_cap {
            // No keyframe to start the next segment with: close this one here and wait.
            let msn = self.msn;
            self.end_segment();
            self.discontinuity = true;
            let length = Timestamp::new(t - seg_start, self.leader_scale).as_duration();
            self.out.push_back(Output::Capped { msn, length });
            self.dropped += 1;
            return;
        }
        let est = self.interval();
        let keyframe_cut = frame.keyframe && t - seg_start >= self.segment_target - est / 2;
        match self.predicted_end.take() {
            Some(predicted) => {
                // The open part already closed at `predicted`. Place this frame there if it is
                // close (or early: parts never overlap), so parts stay contiguous; a real gap
                // stays a gap. Its presentation time moves with it.
                let start = if t < predicted || (t - predicted).abs() <= est / 2 {
                    predicted
                } else {
                    t
                };
                if start != t {
                    frame.shift(start - t);
                    // The frames after it go after it.
                    self.tracks[self.leader].grid.moved(start);
                }
                if keyframe_cut || self.over_target(seg_start, start + est) {
                    self.segment_length(seg_start, predicted);
                    self.end_segment_after_last_part();
                    self.start_segment(start);
                }
                self.part_start = start;
                t = start;
            }
            None => {
                if keyframe_cut || self.over_target(seg_start, t + est) {
                    // A frame that came late may leave the segment past its limit: it ends at
                    // the limit. The frame starts the next one there if it is close (its first
                    // part starts with it, so the segment's limit counts from where its parts
                    // do); a real gap stays a gap.
                    let end = self
                        .segment_limit(seg_start)
                        .map_or(t, |limit| t.min(limit));
                    self.segment_length(seg_start, end);
                    self.close_leader(end, true, false);
                    let start = if t - end <= est / 2 { end } else { t };
                    if start != t {
                        frame.shift(start - t);
                        self.tracks[self.leader].grid.moved(start);
                    }
                    self.start_segment(start);
                    self.part_start = start;
                    t = start;
                } else if t - self.part_start + est > self.part_target && t > self.part_start {
                    self.close_leader(t, false, false);
                }
            }
        }
        self.last_dts = t;
        self.tracks[self.leader].pending.push_back(frame);
        self.close_early_if_full(t);
    }

    /// The expected leader frame interval.
    fn interval(&self) -> i64 {
        self.tracks[self.leader].grid.interval()
    }

    /// The latest tick a segment that started at `seg_start` may end at without rounding above
    /// the target duration (once fixed).
    fn segment_limit(&self, seg_start: i64) -> Option<i64> {
        let half_second = self.leader_scale.0 as i64 / 2;
        self.target_duration
            .map(|td| seg_start + td + half_second - 1)
    }

    /// A segment from `seg_start` to `end` would round above the target duration.
    fn over_target(&self, seg_start: i64, end: i64) -> bool {
        self.segment_limit(seg_start)
            .is_some_and(|limit| end > limit)
    }

    /// The segment that started at `seg_start` ends at `end`: the first one fixes the target
    /// duration, and each one's length is what the next is announced to last.
    fn segment_length(&mut self, seg_start: i64, end: i64) {
        let length = end - seg_start;
        if length <= 0 {
            return;
        }
        let second = self.leader_scale.0 as i64;
        if self.target_duration.is_none() {
            let configured = (self.segment_target as f64 / second as f64)
                .round()
                .max(1.0);
            let first = (length as f64 / second as f64).round();
            self.target_duration = Some(configured.max(first) as i64 * second);
        }
        self.last_length = Some(length);
    }

    fn target_duration_secs(&self) -> Option<u64> {
        self.target_duration
            .map(|td| (td / self.leader_scale.0 as i64) as u64)
    }

    fn announced_duration(&self) -> Option<Duration> {
        self.announced
            .map(|a| Timestamp::new(a, self.leader_scale).as_duration())
    }

    /// Closes the open leader part now if one more frame would not fit in it, or if the next
    /// frame is due where a new segment may start.
    fn close_early_if_full(&mut self, t: i64) {
        let est = self.interval();
        let n = self.tracks[self.leader].pending.len() as i64;
        // Count frames rather than add up jittery timestamps: the part holds n frames of `est`
        // each, and is full when one more would not fit.
        let end = (self.part_start + n * est).max(t + est / 2).max(t + 1);
        let Some(seg_start) = self.seg_start else {
            return;
        };
        // Never past the segment's limit (a late frame may have come close to it).
        let end = self
            .segment_limit(seg_start)
            .map_or(end, |limit| end.min(limit).max(t + 1));
        let part_full = (n + 1) * est > self.part_target;
        // A keyframe is expected here (where the segment was announced to end; the first one,
        // at the target), or a frame here would take the segment past its limit.
        let expected = self.announced.unwrap_or(self.segment_target);
        let segment_due = (!self.anticipated && end - seg_start >= expected - est / 2)
            || self.over_target(seg_start, end + est);
        if part_full || segment_due {
            if segment_due {
                self.anticipated = true;
            }
            self.close_leader(end, false, segment_due);
            self.predicted_end = Some(end);
        }
    }

    fn start_segment(&mut self, t: i64) {
        self.seg_start = Some(t);
        self.announced = self.last_length;
        self.anticipated = false;
        if self.discontinuity {
            // After a gap in the leader, what the followers kept from before it has no part to
            // go in.
            let leader_scale = self.leader_scale;
            for (i, st) in self.tracks.iter_mut().enumerate() {
                if i == self.leader {
                    continue;
                }
                let start = st.scale.convert(t, leader_scale);
                let before = st.pending.len();
                let interval = st.grid.interval();
                st.pending.retain(|f| f.dts.ticks >= start - interval);
                self.dropped += (before - st.pending.len()) as u64;
            }
        }
    }

    /// The source restarted after a pause (a publisher that reconnected), its timestamps moved
    /// on by the pause: as [`Segmenter::lagged`], and its first keyframe continues the media's
    /// timeline where the last part ended, every track shifted alike, so the media has no hole
    /// (Shaka on LL-HLS, which places media by the playlist, otherwise puts it a pause later
    /// than its playlist says and drops frames). The pause itself becomes segments without
    /// media ([`Segmenter::gap_segments`]: `EXT-X-GAP` in HLS), so the playlists' length keeps
    /// up with the wall clock (Shaka's live edge on LL-HLS runs on the wall clock from the
    /// moment it loaded, and without them ends a pause beyond the newest media for ever after);
    /// program date times and the MPD's Periods add [`Segmenter::removed`] back.
    pub fn restarted(&mut self) {
        self.lagged();
        if self.next_seq > 0 {
            self.resume_at = Some(self.leader_end);
            let leader_scale = self.leader_scale;
            let end = self.leader_end;
            for (i, t) in self.tracks.iter_mut().enumerate() {
                if i != self.leader {
                    // Nothing before the new start: what came before it ended there.
                    t.closed_until = Some(t.scale.convert(end, leader_scale));
                }
            }
        }
    }

    /// Moves `frame` by what restarts took out; while a restarted source's first keyframe is
    /// awaited, sets the shift from it and drops (false) what comes before it.
    fn rebase(&mut self, frame: &mut Frame) -> bool {
        if self.shift != 0 {
            frame.shift(frame.dts.scale.convert(self.shift, self.leader_scale));
        }
        let Some(at) = self.resume_at else {
            return true;
        };
        if frame.track != self.leader || !frame.keyframe {
            return false;
        }
        // Only ever back: the hub moves a reconnected publisher's timestamps on by the pause. (A
        // source whose timestamps went back is not moved forward; its frames before the last
        // one are dropped as out of order, as before a restart.)
        let by = (at - frame.dts.ticks).min(0);
        self.gap_segments(at, -by);
        self.shift += by;
        frame.shift(by);
        self.resume_at = None;
        true
    }

    /// Segments without media for `pause` leader ticks of wall clock, where the media goes on
    /// after it (`at`): in every track a gap part per segment, each segment no longer than the
    /// target duration. Called before the pause is counted in [`Segmenter::removed`]: they
    /// carry what was left out before it, so their wall-clock time runs from where the pause
    /// began to where the media goes on. (A pause shorter than half a part is left out.)
    fn gap_segments(&mut self, at: i64, pause: i64) {
        if pause < self.part_target / 2 {
            return;
        }
        let most = self.target_duration.unwrap_or(self.segment_target).max(1);
        let n = (pause + most - 1) / most;
        let target_duration = self.target_duration_secs();
        let leader_scale = self.leader_scale;
        let before = self.removed();
        for k in 0..n {
            let start = at + pause * k / n;
            let end = at + pause * (k + 1) / n;
            for (track, t) in self.tracks.iter().enumerate() {
                let scale = t.scale;
                self.out.push_back(Output::Part(PartOut {
                    track,
                    msn: self.msn,
                    index: 0,
                    independent: false,
                    last_in_segment: true,
                    end_expected: false,
                    discontinuity: k == 0,
                    target_duration,
                    announced: None,
                    start: Timestamp::new(scale.convert(start, leader_scale), scale),
                    end: Timestamp::new(scale.convert(end, leader_scale), scale),
                    samples: Vec::new(),
                    wall_offset: Some(before),
                }));
            }
            self.msn += 1;
        }
    }

    /// The source lost frames or restarted: end the segment here; the next one starts on a
    /// keyframe and is marked as a discontinuity.
    pub fn lagged(&mut self) {
        // A segment cut short here says nothing of how long the next will be: it is announced
        // to last as long as the last whole one.
        let whole = self.last_length;
        self.end_segment();
        self.last_length = whole.or(self.last_length);
        for t in &mut self.tracks {
            t.pending.clear();
            t.grid.reset();
        }
        self.discontinuity = true;
    }

    /// The source ended: close everything that is open.
    pub fn finish(&mut self) {
        self.end_segment();
    }

    fn end_segment(&mut self) {
        if let Some(start) = self.seg_start {
            if !self.tracks[self.leader].pending.is_empty() {
                let end = self.last_dts + self.interval();
                let end = self
                    .segment_limit(start)
                    .map_or(end, |l| end.min(l).max(self.last_dts + 1));
                self.segment_length(start, end);
                self.close_leader(end, true, false);
            } else if let Some(end) = self.predicted_end.take() {
                self.segment_length(start, end);
                self.end_segment_after_last_part();
            }
        }
        for i in 0..self.tracks.len() {
            if i != self.leader {
                self.close_follower(i, true);
            }
        }
        self.seg_start = None;
        self.predicted_end = None;
    }

    /// The segment whose last part already went out (closed early) is complete.
    fn end_segment_after_last_part(&mut self) {
        let msn = self.msn;
        let last_seq = self.next_seq.wrapping_sub(1);
        let target_duration = self.target_duration_secs();
        self.out.push_back(Output::SegmentEnd {
            track: self.leader,
            msn,
            target_duration,
        });
        for i in 0..self.tracks.len() {
            if i == self.leader {
                continue;
            }
            if self.tracks[i].next_boundary > last_seq {
                // This follower already closed that part: tell it now.
                self.out.push_back(Output::SegmentEnd {
                    track: i,
                    msn,
                    target_duration,
                });
            }
        }
        if let Some(b) = self.boundaries.iter_mut().find(|b| b.seq == last_seq) {
            b.ends_segment = true;
        }
        self.msn += 1;
        self.index = 0;
        self.discontinuity = false;
    }

    fn close_leader(&mut self, end: i64, ends_segment: bool, end_expected: bool) {
        self.leader_end = end;
        let leader = self.leader;
        let frames: Vec<Frame> = self.tracks[leader].pending.drain(..).collect();
        let samples = samples_from(&frames, end);
        let boundary = Boundary {
            seq: self.next_seq,
            start: self.part_start,
            end,
            msn: self.msn,
            index: self.index,
            ends_segment,
            end_expected,
            discontinuity: self.discontinuity && self.index == 0,
            announced: self.announced_duration(),
        };
        self.next_seq += 1;
        self.out.push_back(Output::Part(PartOut {
            track: leader,
            msn: self.msn,
            index: self.index,
            independent: frames.first().is_some_and(|f| f.keyframe),
            last_in_segment: ends_segment,
            end_expected,
            discontinuity: boundary.discontinuity,
            target_duration: self.target_duration_secs(),
            announced: boundary.announced,
            start: Timestamp::new(self.part_start, self.leader_scale),
            end: Timestamp::new(end, self.leader_scale),
            samples,
            wall_offset: None,
        }));
        self.tracks[leader].next_boundary = self.next_seq;
        if self.tracks.len() > 1 {
            self.boundaries.push_back(boundary);
        }
        if ends_segment {
            self.msn += 1;
            self.index = 0;
            self.discontinuity = false;
        } else {
            self.index += 1;
        }
        self.part_start = end;
        for i in 0..self.tracks.len() {
            if i != leader {
                self.close_follower(i, false);
                self.close_behind(i, end);
            }
        }
        self.forget_closed_boundaries();
    }

    /// Closes follower parts for every boundary it has data past (or all, when `flush`). Like
    /// the leader's, a follower's part closes with the frame that reaches its end (predicted
    /// from the frame interval), not when the next frame arrives.
    fn close_follower(&mut self, track: usize, flush: bool) {
        while let Some(b) = self.next_boundary_of(track) {
            let end = self.follower_end(track, b.end);
            let st = &self.tracks[track];
            let past = st
                .pending
                .back()
                .is_some_and(|f| f.dts.ticks + st.grid.interval() >= end);
            if !past && !flush {
                break;
            }
            self.close_follower_part(track, b);
        }
        self.forget_closed_boundaries();
    }

    /// Closes, without waiting any longer, the parts of a follower that went silent (those
    /// ending more than the follower lag before `leader_end`) or fell more than [`MAX_BEHIND`]
    /// parts behind: gap parts instead of boundaries held for ever.
    fn close_behind(&mut self, track: usize, leader_end: i64) {
        let lag = self.follower_lag;
        // Not heard from at all yet (an encoder may start a track late): only the bound holds.
        let silent = self.tracks[track]
            .heard
            .is_some_and(|heard| leader_end - heard > lag);
        let mut closed = false;
        while let Some(b) = self.next_boundary_of(track) {
            let stale = silent && b.end < leader_end - lag;
            if !stale && self.next_seq - b.seq <= MAX_BEHIND {
                break;
            }
            self.close_follower_part(track, b);
            let end = self.follower_end(track, b.end);
            self.tracks[track].closed_until = Some(end);
            closed = true;
        }
        if closed && !std::mem::replace(&mut self.tracks[track].behind, true) {
            self.out.push_back(Output::Behind { track });
        }
        self.forget_closed_boundaries();
    }

    fn next_boundary_of(&self, track: usize) -> Option<Boundary> {
        let next = self.tracks[track].next_boundary;
        self.boundaries.iter().find(|b| b.seq == next).copied()
    }

    /// The leader snaps its frames onto a predicted grid (by up to half an interval), so a
    /// boundary may sit a little after the leader frame that opened it; a follower frame that
    /// close before it belongs after it (a transcoded rung's keyframe, taken at the leader
    /// keyframe's own time, must open the same segment). A leader time, in the follower's
    /// ticks, less that slack.
    fn follower_end(&self, track: usize, leader_ticks: i64) -> i64 {
        let scale = self.tracks[track].scale;
        let slack = scale.convert(self.interval() / 2, self.leader_scale).max(0);
        scale.convert(leader_ticks, self.leader_scale) - slack
    }

    /// Closes the follower's part for boundary `b` with the frames it has before its end.
    fn close_follower_part(&mut self, track: usize, b: Boundary) {
        let end = self.follower_end(track, b.end);
        let start = self.follower_end(track, b.start);
        let st = &mut self.tracks[track];
        let mut frames = Vec::new();
        while st.pending.front().is_some_and(|f| f.dts.ticks < end) {
            frames.push(st.pending.pop_front().unwrap());
        }
        let last_end = match st.pending.front() {
            Some(next) => next.dts.ticks,
            None => frames
                .last()
                .map(|f| f.dts.ticks + st.grid.interval())
                .unwrap_or(end),
        };
        let (base, part_end, samples) = if frames.is_empty() {
            (start, end, vec![])
        } else {
            let base = frames[0].dts.ticks;
            (base, last_end, samples_from(&frames, last_end))
        };
        st.next_boundary = b.seq + 1;
        let scale = st.scale;
        let target_duration = self.target_duration_secs();
        self.out.push_back(Output::Part(PartOut {
            track,
            msn: b.msn,
            index: b.index,
            // Audio frames all are; a second video track's part starts with a keyframe or not.
            independent: samples.first().is_none_or(|s| s.keyframe),
            last_in_segment: b.ends_segment,
            end_expected: b.end_expected,
            discontinuity: b.discontinuity,
            target_duration,
            announced: b.announced,
            start: Timestamp::new(base, scale),
            end: Timestamp::new(part_end, scale),
            samples,
            wall_offset: None,
        }));
    }

    /// Boundaries every track has closed are not needed any more.
    fn forget_closed_boundaries(&mut self) {
        let min_next = self
            .tracks
            .iter()
            .map(|t| t.next_boundary)
            .min()
            .unwrap_or(0);
        while self.boundaries.front().is_some_and(|b| b.seq < min_next) {
            self.boundaries.pop_front();
        }
    }
}

/// Samples with durations from consecutive decode times; the last one lasts until `end`.
fn samples_from(frames: &[Frame], end: i64) -> Vec<Sample> {
    frames
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let next = frames.get(i + 1).map(|n| n.dts.ticks).unwrap_or(end);
            Sample {
                duration: (next - f.dts.ticks).clamp(0, u32::MAX as i64) as u32,
                cts_offset: (f.pts.ticks - f.dts.ticks).clamp(i32::MIN as i64, i32::MAX as i64)
                    as i32,
                keyframe: f.keyframe,
                data: f.data.clone(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests;
