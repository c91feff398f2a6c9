//! The segmenter's unit tests: cutting, parts, gaps, caps and lag, with made-up frames.
use super::*;
use bytes::Bytes;
use media::{CodecConfig, Timestamp};
use proptest::prelude::*;

fn tracks() -> Vec<TrackInfo> {
    vec![
        TrackInfo::video(CodecConfig::H264 { avcc: Bytes::new() }),
        TrackInfo::audio(
            CodecConfig::Aac {
                asc: Bytes::from_static(&[0x11, 0x90]),
            },
            48000,
            2,
        ),
    ]
}

/// 2 s segments of parts of a third of a second: ten frames at 30 fps, as the tests count them.
fn config() -> SegmenterConfig {
    SegmenterConfig {
        segment_target: Duration::from_secs(2),
        part_target: Duration::from_millis(334),
    }
}

fn v(t: i64, key: bool) -> Frame {
    let ts = Timestamp::new(t, Timescale::VIDEO);
    Frame {
        track: 0,
        dts: ts,
        pts: ts,
        keyframe: key,
        data: Bytes::from_static(b"v"),
    }
}

fn a(t: i64) -> Frame {
    let ts = Timestamp::new(t, Timescale(48000));
    Frame {
        track: 1,
        dts: ts,
        pts: ts,
        keyframe: true,
        data: Bytes::from_static(b"a"),
    }
}

/// Feeds `secs` of 30 fps video with a keyframe every `gop` frames, and 48 kHz AAC.
fn feed(s: &mut Segmenter, secs: i64, gop: i64) {
    let mut next_audio = 0i64;
    for n in 0..secs * 30 {
        let t = n * 3000;
        s.push(v(t, n % gop == 0));
        while next_audio * 90_000 / 48000 <= t {
            s.push(a(next_audio));
            next_audio += 1024;
        }
    }
    s.finish();
}

/// Parts, and (track, msn) of every segment end, however it was reported.
fn collect(s: &mut Segmenter) -> (Vec<PartOut>, Vec<(usize, u64)>) {
    let mut parts = vec![];
    let mut ends = vec![];
    while let Some(o) = s.pull() {
        match o {
            Output::Part(p) => {
                if p.last_in_segment {
                    ends.push((p.track, p.msn));
                }
                parts.push(p);
            }
            Output::SegmentEnd { track, msn, .. } => ends.push((track, msn)),
            Output::Capped { .. } | Output::Behind { .. } => {}
        }
    }
    (parts, ends)
}

#[test]
fn parts_and_segments_line_up() {
    let mut s = Segmenter::new(&tracks(), config());
    feed(&mut s, 10, 60);
    let (parts, ends) = collect(&mut s);
    let video: Vec<&PartOut> = parts.iter().filter(|p| p.track == 0).collect();
    let audio: Vec<&PartOut> = parts.iter().filter(|p| p.track == 1).collect();
    assert_eq!(video.len(), audio.len());
    // 2 s segments of six 1/3 s parts; every track hears of every segment end once.
    let video_ends: Vec<u64> = ends.iter().filter(|e| e.0 == 0).map(|e| e.1).collect();
    let audio_ends: Vec<u64> = ends.iter().filter(|e| e.0 == 1).map(|e| e.1).collect();
    assert_eq!(video_ends, vec![0, 1, 2, 3, 4]);
    assert_eq!(audio_ends, video_ends);
    assert_eq!(video.len(), 30);
    assert!(video.iter().all(|p| p.ticks() == 30_000));
    for (v, a) in video.iter().zip(&audio) {
        assert_eq!((v.msn, v.index), (a.msn, a.index));
        let vs = v.start.as_secs_f64();
        let as_ = a.start.as_secs_f64();
        assert!(
            (vs - as_).abs() < 0.03,
            "audio part starts within one AAC frame"
        );
    }
    assert!(video.iter().filter(|p| p.index == 0).all(|p| p.independent));
    assert!(video
        .iter()
        .filter(|p| p.index == 5)
        .all(|p| p.end_expected));
}

#[test]
fn a_part_is_out_when_its_last_frame_arrives() {
    let mut s = Segmenter::new(&tracks()[..1], config());
    for n in 0..10 {
        s.push(v(n * 3000, n == 0));
    }
    let Some(Output::Part(p)) = s.pull() else {
        panic!("part not closed on its last frame")
    };
    assert_eq!(
        (p.msn, p.index, p.samples.len(), p.ticks()),
        (0, 0, 10, 30_000)
    );
}

#[test]
fn millisecond_jitter_keeps_parts_contiguous() {
    // RTMP's 33/34 ms timestamps at 90 kHz, with B-frame composition offsets.
    let mut s = Segmenter::new(&tracks()[..1], config());
    let mut ms = 0i64;
    for n in 0..300 {
        let dts = Timestamp::new(ms * 90, Timescale::VIDEO);
        let pts = Timestamp::new((ms + 67) * 90, Timescale::VIDEO);
        s.push(Frame {
            track: 0,
            dts,
            pts,
            keyframe: n % 60 == 0,
            data: Bytes::from_static(b"v"),
        });
        ms += if n % 3 == 2 { 34 } else { 33 };
    }
    s.finish();
    let (parts, ends) = collect(&mut s);
    assert_eq!(ends.len(), 5);
    // Jitter must not cut parts short: six parts of ten frames per 2 s segment.
    assert_eq!(
        parts.len(),
        30,
        "{:?}",
        parts.iter().map(|p| p.samples.len()).collect::<Vec<_>>()
    );
    assert!(parts.iter().all(|p| p.samples.len() == 10));
    let mut end = 0;
    for p in &parts {
        assert_eq!(p.start.ticks, end, "contiguous");
        end += p.ticks();
        // Presentation times are kept even where a decode time was moved by a millisecond.
        assert!(p
            .samples
            .iter()
            .all(|x| (x.cts_offset - 67 * 90).abs() <= 90));
    }
}

#[test]
fn follower_backlog_is_bounded_when_the_leader_stalls() {
    let mut s = Segmenter::new(&tracks(), config());
    s.push(v(0, true));
    for n in 0..5000 {
        s.push(a(n * 1024));
    }
    assert!(s.tracks[1].pending.len() <= MAX_PENDING);
    assert_eq!(s.dropped, 5000 - MAX_PENDING as u64);
}

/// Audio that stops while video goes on for a minute: its parts become gaps, the
/// boundaries kept for it stay few, and it picks up again when it is back.
#[test]
fn a_silent_follower_gets_gaps_and_holds_nothing() {
    let mut s = Segmenter::new(&tracks(), config());
    let mut next_audio = 0i64;
    let mut most = 0;
    for n in 0..90 * 30 {
        let t = n * 3000;
        s.push(v(t, n % 60 == 0));
        // Audio for the first 10 s and the last 20 s only.
        while next_audio * 90_000 / 48000 <= t {
            if !(10 * 48000..70 * 48000).contains(&next_audio) {
                s.push(a(next_audio));
            }
            next_audio += 1024;
        }
        most = most.max(s.boundaries.len());
    }
    s.finish();
    assert!(
        most <= (FOLLOWER_LAG_TARGETS as usize + 1) * 7,
        "{most} boundaries kept"
    );
    let mut silent = 0;
    let mut audio = vec![];
    while let Some(o) = s.pull() {
        match o {
            Output::Behind { track } => {
                assert_eq!(track, 1);
                silent += 1;
            }
            Output::Part(p) if p.track == 1 => audio.push(p),
            _ => {}
        }
    }
    assert_eq!(silent, 1, "said once");
    let at = |secs: i64| {
        audio
            .iter()
            .find(|p| p.start.ticks >= secs * 48000)
            .unwrap()
    };
    assert!(at(30).samples.is_empty(), "a gap while silent");
    assert!(!at(80).samples.is_empty(), "back with the audio");
    assert_eq!(audio.len(), 90 * 3, "one audio part per video part");
}

/// A track that never sends anything holds at most [`MAX_BEHIND`] boundaries.
#[test]
fn a_follower_that_never_sends_is_bounded() {
    let mut s = Segmenter::new(&tracks(), config());
    let mut most = 0;
    for n in 0..200 * 30 {
        s.push(v(n * 3000, n % 60 == 0));
        most = most.max(s.boundaries.len());
    }
    assert!(most as u64 <= MAX_BEHIND + 1, "{most} boundaries");
    let behind = std::iter::from_fn(|| s.pull())
        .filter(|o| matches!(o, Output::Behind { track: 1 }))
        .count();
    assert_eq!(behind, 1);
}

/// Audio that keeps coming but five seconds behind the video (a big sync offset at the
/// encoder) is waited for, not cut into gaps.
#[test]
fn a_late_follower_is_waited_for() {
    let mut s = Segmenter::new(&tracks(), config());
    let mut next_audio = 0i64;
    for n in 0..40 * 30 {
        let t = n * 3000;
        s.push(v(t, n % 60 == 0));
        while next_audio * 90_000 / 48000 <= t - 5 * 90_000 {
            s.push(a(next_audio));
            next_audio += 1024;
        }
    }
    let mut audio = vec![];
    while let Some(o) = s.pull() {
        match o {
            Output::Behind { .. } => panic!("a late track is not cut"),
            Output::Part(p) if p.track == 1 => audio.push(p),
            _ => {}
        }
    }
    assert!(audio.len() >= 3 * 34, "{} audio parts", audio.len());
    assert!(audio.iter().all(|p| !p.samples.is_empty()), "no gaps");
    assert_eq!(s.dropped, 0);
}

/// An encoder that sends one keyframe and then none for a minute: the segment is closed
/// at the cap, nothing more is held, and the next keyframe starts a segment again.
#[test]
fn a_segment_without_a_keyframe_is_capped() {
    let mut s = Segmenter::new(&tracks(), config());
    let mut next_audio = 0i64;
    let mut held = 0;
    for n in 0..62 * 30 {
        let t = n * 3000;
        // Keyframes at 0 s and at 60 s only.
        s.push(v(t, n == 0 || n == 60 * 30));
        while next_audio * 90_000 / 48000 <= t {
            s.push(a(next_audio));
            next_audio += 1024;
        }
        held = held.max(s.tracks.iter().map(|t| t.pending.len()).sum::<usize>());
    }
    s.finish();
    let (mut capped, mut parts) = (vec![], vec![]);
    while let Some(o) = s.pull() {
        match o {
            Output::Capped { msn, length } => capped.push((msn, length)),
            Output::Part(p) if p.track == 0 => parts.push(p),
            _ => {}
        }
    }
    assert_eq!(capped, vec![(0, Duration::from_secs(20))]);
    let first: i64 = parts.iter().filter(|p| p.msn == 0).map(|p| p.ticks()).sum();
    assert_eq!(first, 20 * 90_000, "closed at ten segment targets");
    let after: Vec<&PartOut> = parts.iter().filter(|p| p.msn == 1).collect();
    assert!(after[0].independent && after[0].discontinuity);
    assert_eq!(
        after[0].start.ticks,
        60 * 90_000,
        "resumes at the next keyframe"
    );
    assert!(
        held < 250,
        "{held} frames held: about the follower lag's worth"
    );
}

proptest! {
    #[test]
    fn invariants(gop in 1i64..200, secs in 1i64..12, part_ms in 100u64..1000, seg_ms in 500u64..4000) {
        // Keyframes come before the cap (what happens past it has a test of its own).
        prop_assume!(gop * 3000 < seg_ms as i64 * 90 * SEGMENT_CAP_TARGETS);
        let cfg = SegmenterConfig {
            segment_target: Duration::from_millis(seg_ms),
            part_target: Duration::from_millis(part_ms),
        };
        let mut s = Segmenter::new(&tracks(), cfg);
        feed(&mut s, secs, gop);
        let (parts, ends) = collect(&mut s);
        let video: Vec<&PartOut> = parts.iter().filter(|p| p.track == 0).collect();
        let mut expected_start = 0;
        let mut last = (0u64, 0u32);
        for (i, p) in video.iter().enumerate() {
            // Parts are contiguous, durations add up, sample durations sum to the part's.
            prop_assert_eq!(p.start.ticks, expected_start);
            expected_start += p.ticks();
            let sum: i64 = p.samples.iter().map(|s| s.duration as i64).sum();
            prop_assert_eq!(sum, p.ticks());
            // Segments start on keyframes.
            if p.index == 0 {
                prop_assert!(p.samples[0].keyframe);
                prop_assert!(p.independent);
            }
            // Parts respect the target (one frame of slack when the target is below a frame).
            prop_assert!(p.ticks() <= (part_ms as i64 * 90).max(3000) + 1);
            // Numbering only increases.
            if i > 0 {
                prop_assert!((p.msn, p.index) > last);
            }
            last = (p.msn, p.index);
        }
        prop_assert_eq!(expected_start, secs * 30 * 3000);
        let audio = parts.iter().filter(|p| p.track == 1).count();
        prop_assert_eq!(audio, video.len());
        // Every segment ends exactly once per track, in order, and the next part after a
        // segment end starts the next segment.
        for track in 0..2 {
            let e: Vec<u64> = ends.iter().filter(|e| e.0 == track).map(|e| e.1).collect();
            let want: Vec<u64> = (0..e.len() as u64).collect();
            prop_assert_eq!(e, want);
        }
        let segments = video.last().map(|p| p.msn + 1).unwrap_or(0);
        prop_assert_eq!(ends.iter().filter(|e| e.0 == 0).count() as u64, segments);
    }
}

/// Video at 30 fps stamped in whole milliseconds (as RTMP does), a keyframe every `gop`
/// frames, no B-frames; AAC beside it, stamped the same way.
fn feed_ms(s: &mut Segmenter, frames: i64, gop: i64) {
    let mut next_audio = 0i64;
    for n in 0..frames {
        let ms = n * 1000 / 30;
        s.push(v(ms * 90, n % gop == 0));
        while next_audio * 1000 / 48000 <= ms {
            let a_ms = next_audio * 1000 / 48000;
            s.push(a(a_ms * 48));
            next_audio += 1024;
        }
    }
}

#[test]
fn millisecond_stamps_make_even_samples_without_composition_offsets() {
    let mut s = Segmenter::new(&tracks(), config());
    feed_ms(&mut s, 300, 60);
    s.finish();
    let (parts, _) = collect(&mut s);
    let video: Vec<&Sample> = parts
        .iter()
        .filter(|p| p.track == 0)
        .flat_map(|p| &p.samples)
        .collect();
    assert!(video.len() > 250);
    assert!(
        video.iter().all(|s| s.cts_offset == 0),
        "no B-frames, no offsets"
    );
    assert!(
        video.iter().all(|s| s.duration == 3000),
        "{:?}",
        video.iter().map(|s| s.duration).collect::<Vec<_>>()
    );
    let audio: Vec<&Sample> = parts
        .iter()
        .filter(|p| p.track == 1)
        .flat_map(|p| &p.samples)
        .collect();
    assert!(audio.iter().all(|s| s.duration == 1024));
}

#[test]
fn the_target_duration_is_fixed_by_the_first_segment_and_announced_lengths_hold() {
    // x264's default keyframe interval: 250 frames, 8.33 s.
    let mut s = Segmenter::new(&tracks(), config());
    feed_ms(&mut s, 30 * 40, 250);
    let (parts, ends) = collect(&mut s);
    let video: Vec<&PartOut> = parts.iter().filter(|p| p.track == 0).collect();
    assert!(video
        .iter()
        .filter(|p| p.msn == 0)
        .all(|p| p.announced.is_none()));
    assert!(ends.iter().filter(|e| e.0 == 0).count() >= 4);
    for msn in 1..4 {
        let seg: Vec<&&PartOut> = video.iter().filter(|p| p.msn == msn).collect();
        assert_eq!(seg[0].target_duration, Some(8));
        let length: i64 = seg.iter().map(|p| p.ticks()).sum();
        assert_eq!(length, 250 * 3000, "segment {msn}");
        assert_eq!(
            seg[0].announced,
            Some(Duration::from_nanos(250 * 1_000_000_000 / 30)),
            "announced as long as the one before, and as long as it is"
        );
        assert!(seg[0].independent);
    }
}

#[test]
fn a_segment_that_would_round_above_the_target_is_cut_without_a_keyframe() {
    // A 2 s first segment fixes the target at 2 s; then the keyframes stop coming every 2 s.
    let mut s = Segmenter::new(&tracks()[..1], config());
    for n in 0..30 * 12 {
        s.push(v(n * 3000, n == 0 || n == 60 || n == 300));
    }
    let (parts, _) = collect(&mut s);
    let mut lengths = std::collections::BTreeMap::<u64, i64>::new();
    for p in &parts {
        *lengths.entry(p.msn).or_default() += p.ticks();
        assert!(p.target_duration.is_none_or(|td| td == 2));
    }
    lengths.pop_last();
    assert!(lengths.len() >= 4, "{lengths:?}");
    for (msn, l) in &lengths {
        assert!(
            *l < 225_000,
            "segment {msn} is {l} ticks: EXTINF rounds above 2"
        );
    }
    let first_parts: Vec<bool> = parts
        .iter()
        .filter(|p| p.index == 0)
        .map(|p| p.independent)
        .collect();
    assert!(
        first_parts.contains(&false),
        "cut without a keyframe: {first_parts:?}"
    );
}

#[test]
fn follower_parts_close_with_the_frame_that_reaches_the_boundary() {
    let mut s = Segmenter::new(&tracks(), config());
    // Two video frames of part 0 and the audio up to 0.3 s.
    for n in 0..10 {
        s.push(v(n * 3000, n == 0));
    }
    let (parts, _) = collect(&mut s);
    assert!(parts.iter().any(|p| p.track == 0), "video part 0 is out");
    // The boundary less half a video frame (the leader's snap), in audio ticks.
    let end = (30_000 - 1500) * 48_000 / 90_000;
    let mut t = 0;
    while t + 1024 < end {
        s.push(a(t));
        t += 1024;
    }
    assert!(collect(&mut s).0.is_empty(), "audio short of the boundary");
    // The frame that reaches 1/3 s closes audio's part 0 at once.
    s.push(a(t));
    let (parts, _) = collect(&mut s);
    assert_eq!(parts.len(), 1, "{parts:?}");
    assert_eq!((parts[0].track, parts[0].msn, parts[0].index), (1, 0, 0));
}

#[test]
fn a_long_first_segment_sets_a_longer_target() {
    let mut s = Segmenter::new(&tracks()[..1], config());
    for n in 0..120 {
        s.push(v(n * 3000, n == 0 || n == 83));
    }
    let (parts, _) = collect(&mut s);
    let tds: Vec<Option<u64>> = parts.iter().map(|p| p.target_duration).collect();
    assert!(tds.iter().flatten().all(|td| *td == 3), "{tds:?}");
    assert!(tds.contains(&Some(3)), "{tds:?}");
}

proptest! {
    /// Whatever the frame timing (a browser's encoder, a camera's clock) and wherever the
    /// keyframes fall, every segment rounds to no more than the target duration the parts
    /// carry, which never changes once set.
    #[test]
    fn segments_never_round_above_the_target(
        intervals in proptest::collection::vec(1i64..80, 50..600),
        keys in proptest::collection::vec(any::<bool>(), 50..600),
        key_every in 1usize..200,
    ) {
        let mut s = Segmenter::new(&tracks()[..1], config());
        let mut t = 0;
        for (i, ms) in intervals.iter().enumerate() {
            let key = i == 0 || (i % key_every == 0 && keys.get(i).copied().unwrap_or(false));
            s.push(v(t, key));
            t += ms * 90;
        }
        let (parts, _) = collect(&mut s);
        let td = parts.iter().find_map(|p| p.target_duration);
        prop_assert!(parts.iter().all(|p| p.target_duration.is_none_or(|d| Some(d) == td)));
        let mut lengths = std::collections::BTreeMap::<u64, i64>::new();
        let mut end = None;
        for p in &parts {
            // Parts go forward and follow each other (a bursty source included).
            prop_assert!(p.ticks() > 0, "{:?}", p);
            prop_assert!(end.is_none_or(|e| p.start.ticks >= e), "{:?} {:?}", end, p);
            end = Some(p.end.ticks);
            *lengths.entry(p.msn).or_default() += p.ticks();
        }
        if let Some(td) = td {
            for (msn, l) in lengths {
                prop_assert!(
                    ((l as f64 / 90_000.0).round() as u64) <= td,
                    "segment {} lasts {} ticks, target {}: {:?}", msn, l, td,
                    parts.iter().filter(|p| p.msn == msn).map(|p| (p.start.ticks, p.end.ticks)).collect::<Vec<_>>()
                );
            }
        }
    }
}

#[test]
fn the_end_of_a_long_segment_is_expected_where_it_was_announced() {
    // 8.33 s keyframe intervals: after the first segment, no part expects the segment to end
    // at the 2 s target (a preload hint would name a part of the next segment for 6 s).
    let mut s = Segmenter::new(&tracks()[..1], config());
    for n in 0..30 * 30 {
        s.push(v(n * 3000, n % 250 == 0));
    }
    let (parts, _) = collect(&mut s);
    let expecting: Vec<(u64, u32)> = parts
        .iter()
        .filter(|p| p.msn > 0 && p.end_expected)
        .map(|p| (p.msn, p.index))
        .collect();
    assert_eq!(expecting, [(1, 24), (2, 24)], "{expecting:?}");
}

#[test]
fn a_restarted_source_continues_where_the_last_part_ended() {
    let mut s = Segmenter::new(&tracks(), config());
    // 3.5 s of a 2 s GOP, then a pause of 1.7 s (the hub's timeline moves on by it) and the
    // source again from a keyframe, its audio a little ahead of its video.
    let push = |s: &mut Segmenter, from: i64, frames: i64, audio_from: i64| {
        let mut next_audio = audio_from;
        for n in 0..frames {
            let t = from + n * 3000;
            while next_audio * 90_000 / 48000 <= t {
                s.push(a(next_audio));
                next_audio += 1024;
            }
            s.push(v(t, n % 60 == 0));
        }
    };
    push(&mut s, 0, 105, 0);
    let before = collect(&mut s).0;
    s.restarted();
    let (closed, _) = collect(&mut s);
    // Where a track's parts ended before the restart.
    let ended = |track: usize| {
        closed
            .iter()
            .chain(&before)
            .filter(|p| p.track == track)
            .map(|p| p.end.ticks)
            .max()
            .unwrap()
    };
    let end = ended(0);
    let resumed = 105 * 3000 + 153_000;
    push(&mut s, resumed, 90, (resumed - 900) * 48000 / 90_000);
    s.finish();
    let (after, _) = collect(&mut s);
    // First the pause, as a segment without media in every track: 1.7 s (under the 2 s target
    // duration: one segment) after the last segment, counting what was left out before it.
    let last_msn = before.iter().chain(&closed).map(|p| p.msn).max().unwrap();
    let gaps: Vec<PartOut> = after
        .iter()
        .take_while(|p| p.samples.is_empty())
        .cloned()
        .collect();
    assert_eq!(gaps.len(), 2, "{gaps:?}");
    for g in &gaps {
        assert!(
            g.discontinuity && g.last_in_segment && g.msn == last_msn + 1,
            "{g:?}"
        );
    }
    assert_eq!(
        (gaps[0].start.ticks, gaps[0].end.ticks),
        (end, end + 153_000)
    );
    assert_eq!(gaps[0].wall_offset, Some(Duration::ZERO));
    assert_eq!(
        gaps[1].ticks(),
        1700 * 48,
        "the same pause in audio's ticks"
    );
    let after: Vec<PartOut> = after.into_iter().skip(gaps.len()).collect();
    let video: Vec<&PartOut> = after.iter().filter(|p| p.track == 0).collect();
    assert_eq!(video[0].msn, last_msn + 2);
    assert!(video[0].discontinuity && video[0].independent);
    assert_eq!(video[0].start.ticks, end, "no hole in the video");
    for w in video.windows(2) {
        assert_eq!(w[0].end.ticks, w[1].start.ticks);
    }
    // Announced as long as the last whole segment (2 s), not the one the pause cut short, so
    // its parts are cut as usual.
    assert_eq!(video[0].announced, Some(Duration::from_secs(2)));
    assert!(
        video.iter().take(6).all(|p| p.ticks() == 30_000),
        "{video:?}"
    );
    // What was taken out is the pause: 1.7 s.
    assert_eq!(s.removed(), Duration::from_millis(1700));
    // Audio never goes back before where it stopped, and stays within a frame of the video.
    let audio_before = ended(1);
    let audio: Vec<&PartOut> = after
        .iter()
        .filter(|p| p.track == 1 && !p.samples.is_empty())
        .collect();
    assert!(audio[0].start.ticks >= audio_before);
    let video_start = end * 48000 / 90_000;
    assert!(
        (audio[0].start.ticks - video_start).abs() <= 1024 * 2,
        "{audio:?}"
    );
}
