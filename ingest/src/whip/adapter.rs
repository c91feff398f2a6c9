//! Turns depacketized WebRTC frames into the media model.
//!
//! str0m reorders RTP packets and reassembles access units (on the marker bit) and Opus packets;
//! this adapter takes those frames with their RTP times and:
//!
//! - H.264 (Annex B from the depacketizer): through [`media::annexb`], whose rule for changed
//!   parameter sets (a browser lowering its resolution) is every Annex B source's: carried
//!   in-band on each keyframe.
//! - AV1 (OBUs with size fields from the depacketizer): temporal delimiters dropped, the
//!   sequence header also goes into the `av1C`.
//! - VP9: frames (and superframes) pass as they are; a keyframe's header gives the `vpcC`.
//! - Opus: each packet is one frame; the channel count comes from the first packet's TOC byte.
//! - Time: every track's RTP clock is mapped to one wall clock, from the RTCP sender reports
//!   (NTP ↔ RTP pairs) when every track has one by the time the broadcast starts, otherwise from
//!   the arrival time of each track's first frame. The mapping is fixed from then on, so
//!   timestamps advance exactly with the RTP clocks and audio and video stay in sync.
//! - Loss: a video frame that does not continue the previous one (or arrives without its
//!   parameter sets) drops video until the next keyframe and asks for one ([`wants_keyframe`]).
//! - Waiting to start: media is kept in an [`Early`] buffer, from the newest video keyframe.
//!
//! Push/pull contract like the other adapters: [`WhipAdapter::push`] each frame, then
//! [`WhipAdapter::pull`] until `None`.
//!
//! [`wants_keyframe`]: WhipAdapter::wants_keyframe

use std::collections::VecDeque;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use media::annexb::{self, AnnexB};
use media::{av1, opus, vp9, CodecConfig, Frame, Timescale, Timestamp, TrackInfo};

use crate::early::Early;
use crate::AdapterEvent;

/// How long to wait for every track's first sender report before mapping clocks by arrival.
const SR_WAIT: Duration = Duration::from_millis(2500);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WhipCodec {
    H264,
    Av1,
    Vp9,
    Opus,
}

/// A sender report's clock pair: the same instant on the NTP wall clock and on the stream's
/// RTP clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SenderClock {
    /// Since the Unix epoch ([`Timescale::MICROS`]).
    pub ntp: Timestamp,
    /// Extended (unwrapped) RTP time, in the stream's clock.
    pub rtp: Timestamp,
}

/// One reassembled frame as it comes out of the depacketizer.
#[derive(Clone, Debug)]
pub struct RtpFrame {
    pub codec: WhipCodec,
    /// Extended (unwrapped) RTP time; its timescale is the RTP clock rate.
    pub time: Timestamp,
    /// Arrival of the frame's first packet, on any monotonic clock that is the same for all
    /// frames ([`Timescale::MICROS`]).
    pub arrival: Timestamp,
    /// False when packets were lost between the previous frame and this one.
    pub contiguous: bool,
    /// The depacketizer saw a keyframe (AV1: a new coded video sequence).
    pub keyframe: bool,
    pub data: Bytes,
    /// The latest sender report for this frame's stream, if any has arrived.
    pub sender: Option<SenderClock>,
}

#[derive(Debug, Default)]
struct Track {
    codec: Option<WhipCodec>,
    clock: Option<Timescale>,
    sender: Option<SenderClock>,
    /// (RTP time, arrival) of the first frame.
    first: Option<(Timestamp, Timestamp)>,
    info: Option<TrackInfo>,
    /// Index in the broadcast.
    index: Option<usize>,
    /// RTP ticks + offset = track ticks; fixed at start.
    offset: Option<i64>,
    last_ts: Option<i64>,
}

#[derive(Debug)]
enum Slot {
    Video,
    Audio,
}

#[derive(Debug)]
struct Waiting {
    slot: Slot,
    time: Timestamp,
    keyframe: bool,
    data: Bytes,
}

/// The frames of one WHIP session, turned into one broadcast.
#[derive(Debug)]
pub struct WhipAdapter {
    expect_video: bool,
    expect_audio: bool,
    video: Track,
    audio: Track,
    h264: AnnexB,
    /// Video waits for a keyframe (on join, after loss).
    need_key: bool,
    started: bool,
    first_arrival: Option<Timestamp>,
    early: Early<Waiting>,
    keyframe_wanted: bool,
    noticed: u32,
    out: VecDeque<AdapterEvent>,
}

/// A track's clock pair (RTP time, wall time): from its sender report, or its first frame's
/// arrival.
fn anchor(t: &Track, by_reports: bool) -> (Timestamp, Timestamp) {
    match (by_reports, t.sender, t.first) {
        (true, Some(s), _) => (s.rtp, s.ntp),
        (_, _, Some(first)) => first,
        _ => (
            Timestamp::new(0, t.clock.unwrap_or(Timescale::VIDEO)),
            Timestamp::new(0, Timescale::MICROS),
        ),
    }
}

/// Where RTP time `rtp` of track `t` falls on the common wall clock.
fn wall(t: &Track, rtp: Timestamp, by_reports: bool) -> Timestamp {
    let (r, at) = anchor(t, by_reports);
    let since = Timestamp::new(rtp.ticks - r.ticks, rtp.scale).rescale(Timescale::MICROS);
    Timestamp::new(at.ticks + since.ticks, Timescale::MICROS)
}

impl WhipAdapter {
    /// An adapter for a session that negotiated a video track, an audio track, or both.
    pub fn new(expect_video: bool, expect_audio: bool) -> Self {
        WhipAdapter {
            expect_video,
            expect_audio,
            video: Track::default(),
            audio: Track::default(),
            h264: AnnexB::new(annexb::Codec::H264),
            need_key: true,
            started: false,
            first_arrival: None,
            early: Early::new(expect_video),
            keyframe_wanted: expect_video,
            noticed: 0,
            out: VecDeque::new(),
        }
    }

    pub fn pull(&mut self) -> Option<AdapterEvent> {
        self.out.pop_front()
    }

    pub fn is_started(&self) -> bool {
        self.started
    }

    /// Video is waiting for a keyframe (after joining or after loss).
    pub fn waits_for_keyframe(&self) -> bool {
        self.expect_video && self.need_key
    }

    /// True once after video lost its picture (or on join): the session should send a PLI.
    pub fn wants_keyframe(&mut self) -> bool {
        std::mem::take(&mut self.keyframe_wanted)
    }

    /// A periodic tick (on the arrival clock): starts a broadcast that has waited long enough
    /// for sender reports.
    pub fn tick(&mut self, now: Timestamp) {
        if !self.started {
            self.try_start(now);
        }
    }

    pub fn push(&mut self, f: RtpFrame) {
        self.first_arrival.get_or_insert(f.arrival);
        match f.codec {
            WhipCodec::H264 | WhipCodec::Av1 | WhipCodec::Vp9 => self.video_frame(f),
            WhipCodec::Opus => self.audio_frame(f),
        }
    }

    fn notice(&mut self, msg: String) {
        // A broken publisher would otherwise log once per frame.
        if self.noticed < 20 {
            self.noticed += 1;
            self.out.push_back(AdapterEvent::Notice(msg));
        }
    }

    fn track_for(&mut self, slot: &Slot, f: &RtpFrame) -> bool {
        let t = match slot {
            Slot::Video => &mut self.video,
            Slot::Audio => &mut self.audio,
        };
        let clock = Timescale(f.time.scale.0.max(1));
        if t.codec.is_some_and(|c| c != f.codec) || t.clock.is_some_and(|c| c != clock) {
            return false;
        }
        t.codec = Some(f.codec);
        t.clock = Some(clock);
        t.first.get_or_insert((f.time, f.arrival));
        if f.sender.is_some() {
            t.sender = f.sender;
        }
        true
    }

    fn video_frame(&mut self, f: RtpFrame) {
        if !self.track_for(&Slot::Video, &f) {
            self.notice("the video codec changed mid-session; ignoring the new one".into());
            return;
        }
        if !f.contiguous && !self.need_key {
            self.need_key = true;
            self.keyframe_wanted = true;
            self.notice("video packets were lost; waiting for the next keyframe".into());
        }
        let payload = match f.codec {
            WhipCodec::Av1 => self.av1_payload(&f),
            WhipCodec::Vp9 => self.vp9_payload(&f),
            _ => self.h264_payload(&f),
        };
        let Some((data, keyframe)) = payload else {
            return;
        };
        if self.need_key {
            if !keyframe || self.video.info.is_none() {
                return;
            }
            self.need_key = false;
        }
        self.media(Slot::Video, f.time, keyframe, data, f.arrival);
    }

    /// Annex B access unit → length-prefixed NAL units; parameter sets go into `avcC`.
    fn h264_payload(&mut self, f: &RtpFrame) -> Option<(Bytes, bool)> {
        let sample = self.h264.push(&f.data)?;
        if self.video.info.is_none() {
            if let Some(c) = self.h264.config() {
                self.video.info = Some(TrackInfo::video(c.clone()));
            }
        }
        if sample.new_picture {
            self.notice(
                "the video's parameter sets changed (a new picture size?); the new ones go in-band with each keyframe"
                    .into(),
            );
        }
        Some((sample.data, sample.keyframe))
    }

    /// A VP9 frame or superframe goes into a sample as it is; a keyframe's header gives the
    /// `vpcC` and the picture size.
    fn vp9_payload(&mut self, f: &RtpFrame) -> Option<(Bytes, bool)> {
        if f.data.is_empty() {
            return None;
        }
        let key = vp9::Vp9Keyframe::parse(&f.data);
        if let Some(k) = key {
            match &self.video.info {
                None => {
                    let mut info = TrackInfo::video(CodecConfig::Vp9 {
                        vpcc: Bytes::copy_from_slice(&k.vpcc()),
                    });
                    (info.width, info.height) = (k.width, k.height);
                    self.video.info = Some(info);
                }
                Some(info) if (info.width, info.height) != (k.width, k.height) => {
                    let msg = format!(
                        "the VP9 picture changed to {}x{} (the playlist says {}x{})",
                        k.width, k.height, info.width, info.height
                    );
                    self.notice(msg);
                }
                Some(_) => {}
            }
        }
        Some((f.data.clone(), key.is_some()))
    }

    /// A temporal unit of OBUs: temporal delimiters and padding dropped (ISOBMFF samples carry
    /// none); the first sequence header also goes into `av1C`.
    fn av1_payload(&mut self, f: &RtpFrame) -> Option<(Bytes, bool)> {
        let mut out = BytesMut::with_capacity(f.data.len());
        let mut has_sequence_header = false;
        for obu in av1::obus(&f.data) {
            match obu.obu_type {
                av1::OBU_TEMPORAL_DELIMITER | av1::OBU_PADDING => {}
                av1::OBU_SEQUENCE_HEADER => {
                    has_sequence_header = true;
                    if self.video.info.is_none() {
                        if let Some(av1c) = av1::av1c_from(obu.bytes) {
                            self.video.info =
                                Some(TrackInfo::video(CodecConfig::Av1 { av1c: av1c.into() }));
                        }
                    }
                    // A sync sample carries its sequence header (AV1-ISOBMFF §2.4).
                    out.put_slice(obu.bytes);
                }
                _ => out.put_slice(obu.bytes),
            }
        }
        if out.is_empty() {
            return None;
        }
        Some((out.freeze(), f.keyframe && has_sequence_header))
    }

    fn audio_frame(&mut self, f: RtpFrame) {
        if !self.track_for(&Slot::Audio, &f) {
            self.notice("the audio codec changed mid-session; ignoring the new one".into());
            return;
        }
        let Some(channels) = opus::channels(&f.data) else {
            return; // DTX / padding
        };
        if self.audio.info.is_none() {
            self.audio.info = Some(TrackInfo::audio(
                CodecConfig::Opus {
                    channels,
                    pre_skip: 0,
                    input_sample_rate: 48_000,
                },
                48_000,
                channels as u16,
            ));
        }
        self.media(Slot::Audio, f.time, true, f.data, f.arrival);
    }

    fn media(&mut self, slot: Slot, time: Timestamp, keyframe: bool, data: Bytes, now: Timestamp) {
        if self.started {
            self.emit(&slot, time, keyframe, data);
            return;
        }
        let video_key = matches!(slot, Slot::Video) && keyframe;
        let w = Waiting {
            slot,
            time,
            keyframe,
            data,
        };
        if video_key {
            self.early.keyframe(w);
        } else {
            self.early.push(w);
        }
        self.try_start(now);
    }

    fn try_start(&mut self, now: Timestamp) {
        let has_key = self
            .early
            .iter()
            .any(|e| matches!(e.slot, Slot::Video) && e.keyframe);
        let video_ready = !self.expect_video || (has_key && self.video.info.is_some());
        let audio_ready = !self.expect_audio || self.audio.info.is_some();
        if !video_ready || !audio_ready || self.early.is_empty() {
            return;
        }
        let active: Vec<&Track> = [&self.video, &self.audio]
            .into_iter()
            .filter(|t| t.info.is_some())
            .collect();
        let all_reports = active.iter().all(|t| t.sender.is_some());
        let waited = now.since(self.first_arrival.unwrap_or(now));
        if !all_reports && waited < SR_WAIT {
            return;
        }
        // The broadcast's zero: the first media kept (the video keyframe when there is video).
        let zero = self
            .early
            .iter()
            .find(|e| !self.expect_video || matches!(e.slot, Slot::Video))
            .map(|e| match e.slot {
                Slot::Video => wall(&self.video, e.time, all_reports),
                Slot::Audio => wall(&self.audio, e.time, all_reports),
            })
            .unwrap_or(Timestamp::new(0, Timescale::MICROS));
        let mut tracks = Vec::new();
        for t in [&mut self.video, &mut self.audio] {
            let (Some(info), Some(clock)) = (t.info.clone(), t.clock) else {
                continue;
            };
            let (rtp, at) = anchor(t, all_reports);
            // track ticks = (wall - zero) in the track's clock = rtp - anchor rtp + (anchor wall - zero)
            let from_zero = Timestamp::new(at.ticks - zero.ticks, Timescale::MICROS);
            t.offset = Some(from_zero.rescale(clock).ticks - rtp.ticks);
            t.index = Some(tracks.len());
            let mut info = info;
            info.timescale = clock;
            tracks.push(info);
        }
        self.started = true;
        self.out.push_back(AdapterEvent::Start(tracks));
        if !all_reports {
            self.notice(
                "no RTCP sender report for every track yet; audio/video aligned by arrival time"
                    .into(),
            );
        }
        for e in self.early.take() {
            self.emit(&e.slot, e.time, e.keyframe, e.data);
        }
    }

    fn emit(&mut self, slot: &Slot, time: Timestamp, keyframe: bool, data: Bytes) {
        let t = match slot {
            Slot::Video => &mut self.video,
            Slot::Audio => &mut self.audio,
        };
        let (Some(index), Some(offset), Some(clock)) = (t.index, t.offset, t.clock) else {
            return; // a track that appeared after the start
        };
        let ts = time.ticks + offset;
        if ts < 0 || t.last_ts.is_some_and(|l| ts <= l) {
            return; // before the broadcast's zero, or out of order
        }
        t.last_ts = Some(ts);
        let at = Timestamp::new(ts, clock);
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

    // A baseline SPS and its PPS.
    const SPS: &[u8] = &[
        0x67, 0x42, 0xc0, 0x0a, 0xd9, 0x07, 0x3c, 0x04, 0x40, 0x00, 0x00, 0x03, 0x00, 0x40, 0x00,
        0x00, 0x0c, 0x83, 0xc4, 0x89, 0x65, 0x80,
    ];
    const PPS: &[u8] = &[0x68, 0xcb, 0x83, 0xcb, 0x20];

    fn annexb(nals: &[&[u8]]) -> Bytes {
        let mut b = Vec::new();
        for n in nals {
            b.extend_from_slice(&[0, 0, 0, 1]);
            b.extend_from_slice(n);
        }
        b.into()
    }

    fn ms(ms: i64) -> Timestamp {
        Timestamp::new(ms * 1000, Timescale::MICROS)
    }

    fn video(rtp: i64, arrival_ms: i64, key: bool, contiguous: bool) -> RtpFrame {
        let data = if key {
            annexb(&[SPS, PPS, &[0x65, 0x88, 0x84]])
        } else {
            annexb(&[&[0x41, 0x9a, 0x02]])
        };
        RtpFrame {
            codec: WhipCodec::H264,
            time: Timestamp::new(rtp, Timescale::VIDEO),
            arrival: ms(arrival_ms),
            contiguous,
            keyframe: key,
            data,
            sender: None,
        }
    }

    fn opus(rtp: i64, arrival_ms: i64) -> RtpFrame {
        RtpFrame {
            codec: WhipCodec::Opus,
            time: Timestamp::new(rtp, Timescale(48_000)),
            arrival: ms(arrival_ms),
            contiguous: true,
            keyframe: true,
            data: Bytes::from_static(&[0xfc, 1, 2, 3]),
            sender: None,
        }
    }

    fn drain(a: &mut WhipAdapter) -> Vec<AdapterEvent> {
        std::iter::from_fn(|| a.pull()).collect()
    }

    fn frames(ev: &[AdapterEvent]) -> Vec<(usize, i64, bool)> {
        ev.iter()
            .filter_map(|e| match e {
                AdapterEvent::Frame(f) => Some((f.track, f.pts.ticks, f.keyframe)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn sender_reports_align_tracks_and_video_starts_on_a_keyframe() {
        let mut a = WhipAdapter::new(true, true);
        assert!(a.wants_keyframe(), "a PLI on join");
        // Video's RTP clock starts at 1_000_000 and audio's at 7; the reports say video time
        // 1_000_000 and audio time 7 + 4800 (100 ms later) are the same instant.
        let vs = SenderClock {
            ntp: ms(10_000),
            rtp: Timestamp::new(1_000_000, Timescale::VIDEO),
        };
        let au = SenderClock {
            ntp: ms(10_000),
            rtp: Timestamp::new(7 + 4800, Timescale(48_000)),
        };
        let mut f = video(1_000_000 - 3000, 0, false, true);
        f.sender = Some(vs);
        a.push(f); // a delta frame before any keyframe: dropped
        let mut f = video(1_000_000, 33, true, true);
        f.sender = Some(vs);
        a.push(f);
        let mut o = opus(7 + 4800 + 960, 40);
        o.sender = Some(au);
        a.push(o);
        let ev = drain(&mut a);
        let AdapterEvent::Start(tracks) = &ev[0] else {
            panic!("{ev:?}")
        };
        assert_eq!(tracks.len(), 2);
        assert!(tracks[0].width > 0 && tracks[0].height > 0);
        assert!(tracks[0].codec.codec_string().starts_with("avc1.42"));
        assert_eq!(tracks[1].codec.codec_string(), "opus");
        // The keyframe is zero; the Opus packet 20 ms after the matched instant is at 960.
        assert_eq!(frames(&ev), vec![(0, 0, true), (1, 960, true)]);
        let mut f = video(1_000_000 + 3000, 66, false, true);
        f.sender = Some(vs);
        a.push(f);
        assert_eq!(frames(&drain(&mut a)), vec![(0, 3000, false)]);
    }

    #[test]
    fn without_reports_tracks_align_by_arrival_after_a_wait() {
        let mut a = WhipAdapter::new(true, true);
        a.push(video(90_000, 1000, true, true));
        a.push(opus(48_000, 1010));
        assert!(drain(&mut a).is_empty(), "waits for sender reports");
        a.tick(Timestamp::new(
            1_000_000 + SR_WAIT.as_micros() as i64,
            Timescale::MICROS,
        ));
        let ev = drain(&mut a);
        assert!(matches!(ev[0], AdapterEvent::Start(_)));
        // Audio arrived 10 ms after the keyframe: 480 ticks at 48 kHz.
        assert_eq!(frames(&ev), vec![(0, 0, true), (1, 480, true)]);
    }

    #[test]
    fn loss_drops_video_until_the_next_keyframe_and_asks_for_one() {
        let mut a = WhipAdapter::new(true, false);
        a.wants_keyframe();
        a.push(video(0, 0, true, true));
        a.tick(Timestamp::new(
            SR_WAIT.as_micros() as i64,
            Timescale::MICROS,
        ));
        drain(&mut a);
        a.push(video(3000, 33, false, false));
        a.push(video(6000, 66, false, true));
        assert!(a.wants_keyframe());
        assert!(frames(&drain(&mut a)).is_empty());
        a.push(video(9000, 99, true, true));
        assert_eq!(frames(&drain(&mut a)), vec![(0, 9000, true)]);
    }

    #[test]
    fn av1_gets_an_av1c_and_loses_its_temporal_delimiters() {
        // SVT-AV1's temporal delimiter + sequence header (1280x720), then a 2-byte frame OBU.
        let tu: &[u8] = &[
            0x12, 0x00, 0x0a, 0x0b, 0x00, 0x00, 0x00, 0x2d, 0x4c, 0xff, 0xb3, 0xcf, 0xbf, 0x90,
            0x04, 0x32, 0x02, 0xaa, 0xbb,
        ];
        let mut a = WhipAdapter::new(true, false);
        let mut f = video(0, 0, true, true);
        f.codec = WhipCodec::Av1;
        f.data = Bytes::from_static(tu);
        a.push(f);
        a.tick(Timestamp::new(
            SR_WAIT.as_micros() as i64,
            Timescale::MICROS,
        ));
        let ev = drain(&mut a);
        let AdapterEvent::Start(t) = &ev[0] else {
            panic!("{ev:?}")
        };
        assert_eq!((t[0].width, t[0].height), (1280, 720));
        assert!(
            t[0].codec.codec_string().starts_with("av01.0."),
            "{:?}",
            t[0].codec
        );
        let Some(AdapterEvent::Frame(fr)) = ev.iter().find(|e| matches!(e, AdapterEvent::Frame(_)))
        else {
            panic!("{ev:?}")
        };
        assert!(fr.keyframe);
        assert_eq!(&fr.data[..], &tu[2..], "all but the temporal delimiter");
    }

    #[test]
    fn garbage_frames_do_not_start_or_panic() {
        let mut a = WhipAdapter::new(true, true);
        for data in [
            &[][..],
            &[0, 0, 1][..],
            &[0, 0, 0, 1, 0x67][..],
            &[0xff; 9][..],
        ] {
            let mut f = video(0, 0, true, true);
            f.data = Bytes::copy_from_slice(data);
            a.push(f);
            let mut o = opus(0, 0);
            o.data = Bytes::copy_from_slice(data);
            a.push(o);
            let mut v = video(0, 0, true, true);
            v.codec = WhipCodec::Av1;
            v.data = Bytes::copy_from_slice(data);
            a.push(v);
        }
        a.tick(Timestamp::new(i64::MAX / 2, Timescale::MICROS));
        assert!(!a.is_started());
    }
}
