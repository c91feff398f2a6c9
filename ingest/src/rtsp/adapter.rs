//! Turns an RTSP camera's frames (from retina, over any number of connections) into one
//! broadcast.
//!
//! Each connection starts at a video keyframe once the parameters are known (audio-only
//! cameras at their first frame). Timestamps are retina's per-connection elapsed RTP time,
//! shifted so that the first connection's first keyframe is zero and every later connection
//! continues the timeline after the real time that passed while the camera was away: frames
//! keep increasing, and the gap shows as a discontinuity rather than an end.
//!
//! Events: the first connection gives [`AdapterEvent::Start`]; a reconnect with the same
//! tracks gives [`AdapterEvent::Discontinuity`]; a reconnect whose tracks changed (new
//! resolution, codec) gives a new `Start`, and the caller starts a new broadcast.

use std::collections::VecDeque;

use std::time::Duration;

use bytes::Bytes;
use media::{Frame, Timescale, Timestamp, TrackInfo};

/// A reconnect's first frame goes at least this long after the last frame before it.
const MIN_GAP: Duration = Duration::from_millis(40);

use crate::AdapterEvent;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Video,
    Audio,
}

#[derive(Debug, Default)]
struct Track {
    info: Option<TrackInfo>,
    /// Index in the current broadcast.
    index: Option<usize>,
    /// Track time = elapsed + offset, for this connection.
    offset: i64,
    last: Option<i64>,
}

#[derive(Debug, Default)]
pub struct RtspAdapter {
    expect_video: bool,
    expect_audio: bool,
    video: Track,
    audio: Track,
    /// Tracks of the broadcast now running, if any.
    published: Option<Vec<TrackInfo>>,
    /// This connection has started emitting.
    running: bool,
    need_key: bool,
    /// Arrival of the broadcast's zero.
    zero_arrival: Option<Timestamp>,
    /// The latest frame, on the broadcast's timeline ([`Timescale::MICROS`]).
    last: i64,
    noticed_reorder: bool,
    out: VecDeque<AdapterEvent>,
}

impl RtspAdapter {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn pull(&mut self) -> Option<AdapterEvent> {
        self.out.pop_front()
    }

    /// A new connection to the camera with these streams. Parameters follow via
    /// [`RtspAdapter::params`] (at once when the SDP carries them, else with the first frame).
    pub fn connect(&mut self, video: bool, audio: bool) {
        self.expect_video = video;
        self.expect_audio = audio;
        self.video.info = None;
        self.audio.info = None;
        self.running = false;
        self.need_key = true;
    }

    /// A track's parameters, new or changed. A change mid-connection cannot be followed by
    /// this broadcast: the connection restarts its broadcast at the next keyframe.
    pub fn params(&mut self, kind: Kind, info: TrackInfo) {
        let t = match kind {
            Kind::Video => &mut self.video,
            Kind::Audio => &mut self.audio,
        };
        if t.info.as_ref() == Some(&info) {
            return;
        }
        let changed_live = self.running && t.info.is_some();
        t.info = Some(info);
        if changed_live {
            self.out.push_back(AdapterEvent::Notice(
                "the camera changed its stream parameters; restarting the broadcast".into(),
            ));
            self.running = false;
            self.need_key = true;
        }
    }

    /// A video frame: `elapsed` is RTP time since the connection's start (its timescale the
    /// RTP clock), `data` length-prefixed NAL units; `loss` says packets were lost before it.
    /// `arrival` is on any monotonic clock that is the same for every connection.
    pub fn video(
        &mut self,
        elapsed: Timestamp,
        keyframe: bool,
        loss: bool,
        data: Bytes,
        arrival: Timestamp,
    ) {
        if loss && self.running && !self.need_key {
            self.need_key = true;
            self.out.push_back(AdapterEvent::Notice(
                "packets lost; video waits for the next keyframe".into(),
            ));
        }
        if self.need_key {
            if !keyframe {
                return;
            }
            if !self.running && !self.try_start(elapsed, arrival) {
                return;
            }
            self.need_key = false;
        }
        self.emit(Kind::Video, elapsed, keyframe, data);
    }

    /// An audio frame (a raw AAC access unit), times as for video.
    pub fn audio(&mut self, elapsed: Timestamp, data: Bytes, arrival: Timestamp) {
        if !self.running {
            if self.expect_video || !self.try_start(elapsed, arrival) {
                return;
            }
            self.need_key = false;
        }
        self.emit(Kind::Audio, elapsed, true, data);
    }

    fn try_start(&mut self, elapsed: Timestamp, arrival: Timestamp) -> bool {
        if (self.expect_video && self.video.info.is_none())
            || (self.expect_audio && self.audio.info.is_none())
        {
            return false;
        }
        let tracks: Vec<TrackInfo> = [&self.video, &self.audio]
            .into_iter()
            .filter_map(|t| t.info.clone())
            .collect();
        // Where this connection's first frame goes on the timeline (µs): the real time since
        // the broadcast's zero, and always after everything already emitted.
        let arrival = arrival.rescale(Timescale::MICROS);
        let first = match self.zero_arrival {
            None => {
                self.zero_arrival = Some(arrival);
                0
            }
            Some(zero) if self.published.as_ref() == Some(&tracks) => {
                (arrival.ticks - zero.ticks).max(self.last + MIN_GAP.as_micros() as i64)
            }
            // New tracks: a new broadcast, with its own zero.
            Some(_) => {
                self.zero_arrival = Some(arrival);
                self.last = 0;
                0
            }
        };
        // The timeline at this connection's elapsed zero.
        let at_zero = Timestamp::new(
            first - elapsed.rescale(Timescale::MICROS).ticks,
            Timescale::MICROS,
        );
        let mut index = 0;
        for t in [&mut self.video, &mut self.audio] {
            if let Some(info) = &t.info {
                t.offset = at_zero.rescale(info.timescale).ticks;
                t.index = Some(index);
                index += 1;
                if first == 0 {
                    t.last = None;
                }
            } else {
                t.index = None;
            }
        }
        if self.published.as_ref() == Some(&tracks) && first > 0 {
            self.out.push_back(AdapterEvent::Discontinuity);
        } else {
            self.out.push_back(AdapterEvent::Start(tracks.clone()));
            self.published = Some(tracks);
        }
        self.running = true;
        true
    }

    fn emit(&mut self, kind: Kind, elapsed: Timestamp, keyframe: bool, data: Bytes) {
        let t = match kind {
            Kind::Video => &mut self.video,
            Kind::Audio => &mut self.audio,
        };
        let (Some(index), Some(info)) = (t.index, &t.info) else {
            return;
        };
        let scale = info.timescale;
        let ts = elapsed.rescale(scale).ticks + t.offset;
        if ts < 0 {
            return;
        }
        if t.last.is_some_and(|l| ts <= l) {
            // RTP carries presentation times: a video frame that goes back is a B-frame, which
            // needs decode times RTSP does not give.
            if kind == Kind::Video && !self.noticed_reorder {
                self.noticed_reorder = true;
                self.out.push_back(AdapterEvent::Notice(
                    "video timestamps go back (B-frames?); such frames are dropped: turn B-frames off in the camera".into(),
                ));
            }
            return;
        }
        t.last = Some(ts);
        let at = Timestamp::new(ts, scale);
        self.last = self.last.max(at.rescale(Timescale::MICROS).ticks);
        self.out.push_back(AdapterEvent::Frame(Frame {
            track: index,
            dts: at,
            pts: at,
            keyframe,
            data,
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use media::CodecConfig;

    fn video_info(w: u8) -> TrackInfo {
        let mut t = TrackInfo::video(CodecConfig::H264 {
            avcc: Bytes::from(vec![1, 0x64, 0, 0x1f, w]),
        });
        t.width = w as u32;
        t
    }

    fn aac() -> TrackInfo {
        TrackInfo::audio(
            CodecConfig::Aac {
                asc: Bytes::from_static(&[0x11, 0x90]),
            },
            48_000,
            2,
        )
    }

    fn v(ticks: i64) -> Timestamp {
        Timestamp::new(ticks, Timescale::VIDEO)
    }

    fn au(ticks: i64) -> Timestamp {
        Timestamp::new(ticks, Timescale(48_000))
    }

    fn us(ticks: i64) -> Timestamp {
        Timestamp::new(ticks, Timescale::MICROS)
    }

    fn drain(a: &mut RtspAdapter) -> Vec<AdapterEvent> {
        std::iter::from_fn(|| a.pull()).collect()
    }

    fn summary(ev: &[AdapterEvent]) -> Vec<String> {
        ev.iter()
            .map(|e| match e {
                AdapterEvent::Start(t) => format!("start{}", t.len()),
                AdapterEvent::Discontinuity => "disc".into(),
                AdapterEvent::Frame(f) => format!(
                    "{}@{}{}",
                    f.track,
                    f.pts.ticks,
                    if f.keyframe { "k" } else { "" }
                ),
                AdapterEvent::Notice(_) => "notice".into(),
            })
            .collect()
    }

    #[test]
    fn reconnect_continues_the_timeline_after_the_real_gap() {
        let mut a = RtspAdapter::new();
        a.connect(true, true);
        a.params(Kind::Video, video_info(1));
        a.params(Kind::Audio, aac());
        a.audio(au(0), Bytes::from_static(b"a"), us(0)); // before the keyframe: dropped
        a.video(v(3600), false, false, Bytes::from_static(b"p"), us(0)); // not a keyframe
        a.video(v(7200), true, false, Bytes::from_static(b"k"), us(80_000));
        a.audio(au(3840), Bytes::from_static(b"a"), us(80_000));
        a.video(
            v(10_800),
            false,
            false,
            Bytes::from_static(b"p"),
            us(120_000),
        );
        assert_eq!(
            summary(&drain(&mut a)),
            ["start2", "0@0k", "1@0k", "0@3600"]
        );
        // The camera comes back 5 s after the first keyframe, its clock starting over.
        a.connect(true, true);
        a.params(Kind::Video, video_info(1));
        a.params(Kind::Audio, aac());
        a.video(v(0), true, false, Bytes::from_static(b"k"), us(5_080_000));
        a.audio(au(960), Bytes::from_static(b"a"), us(5_100_000));
        assert_eq!(summary(&drain(&mut a)), ["disc", "0@450000k", "1@240960k"]);
    }

    #[test]
    fn changed_parameters_start_a_new_broadcast() {
        let mut a = RtspAdapter::new();
        a.connect(true, false);
        a.params(Kind::Video, video_info(1));
        a.video(v(0), true, false, Bytes::from_static(b"k"), us(0));
        a.video(v(3600), false, false, Bytes::from_static(b"p"), us(40_000));
        a.connect(true, false);
        a.params(Kind::Video, video_info(2));
        a.video(v(0), true, false, Bytes::from_static(b"k"), us(9_000_000));
        assert_eq!(
            summary(&drain(&mut a)),
            ["start1", "0@0k", "0@3600", "start1", "0@0k"]
        );
    }

    #[test]
    fn loss_waits_for_a_keyframe() {
        let mut a = RtspAdapter::new();
        a.connect(true, false);
        a.params(Kind::Video, video_info(1));
        a.video(v(0), true, false, Bytes::from_static(b"k"), us(0));
        a.video(v(3600), false, true, Bytes::from_static(b"p"), us(40_000));
        a.video(v(7200), false, false, Bytes::from_static(b"p"), us(80_000));
        a.video(
            v(10_800),
            true,
            false,
            Bytes::from_static(b"k"),
            us(120_000),
        );
        assert_eq!(
            summary(&drain(&mut a)),
            ["start1", "0@0k", "notice", "0@10800k"]
        );
    }
}
