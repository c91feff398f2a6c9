//! Turns demuxed MPEG-TS (PES packets) into the media model: H.264/HEVC through
//! [`media::annexb`] (length-prefixed NAL units, an `avcC`/`hvcC` from the in-band parameter
//! sets), AAC out of ADTS ([`media::adts`]) with its AudioSpecificConfig, Opus out of its
//! control headers ([`media::opus`]). Timestamps are rebased to the first frame.
//!
//! Push/pull contract: `push(event)` for each [`TsEvent`], then `pull()` until `None`. The
//! broadcast starts on the first video keyframe once every supported stream of the program has
//! its configuration (audio-only programs start on the first audio frame). After data loss on a
//! stream, video restarts at its next keyframe rather than passing on corrupt frames.

use std::collections::VecDeque;

use bytes::Bytes;
use media::annexb::{self, AnnexB};
use media::codec::AacConfig;
use media::{adts, opus, CodecConfig, Frame, Timescale, Timestamp, TrackInfo};

use super::ts::{EsInfo, StreamKind, TsEvent};
use crate::early::Early;
use crate::{AdapterEvent, SampleClock};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TsAdapterError {
    #[error("no stream we can take in the program (found {0})")]
    NoSupportedStreams(String),
}

/// PES packets to wait for every stream's configuration before starting without the missing one.
const MAX_WAIT_PES: u32 = 300;
const AAC_FRAME: i64 = 1024;

struct Video {
    pid: u16,
    stream: AnnexB,
    /// Waiting for a keyframe (after loss).
    need_key: bool,
    track: Option<usize>,
}

struct Audio {
    pid: u16,
    opus: bool,
    /// The track, once the first frame told us its configuration.
    config: Option<TrackInfo>,
    track: Option<usize>,
    clock: SampleClock,
}

/// Media that arrived before the broadcast could start.
enum Waiting {
    Video {
        pts: i64,
        dts: i64,
        keyframe: bool,
        data: Bytes,
    },
    Audio {
        pts: i64,
        frames: Vec<Bytes>,
    },
}

pub struct TsAdapter {
    video: Option<Video>,
    audio: Option<Audio>,
    started: bool,
    /// 90 kHz time of the broadcast's zero.
    base: i64,
    early: Early<Waiting>,
    waited: u32,
    noticed_change: bool,
    out: VecDeque<AdapterEvent>,
}

impl Default for TsAdapter {
    fn default() -> Self {
        TsAdapter {
            video: None,
            audio: None,
            started: false,
            base: 0,
            early: Early::new(true),
            waited: 0,
            noticed_change: false,
            out: VecDeque::new(),
        }
    }
}

impl TsAdapter {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn pull(&mut self) -> Option<AdapterEvent> {
        self.out.pop_front()
    }

    pub fn push(&mut self, ev: TsEvent) -> Result<(), TsAdapterError> {
        match ev {
            TsEvent::Program(es) => self.program(&es),
            TsEvent::Pes {
                pid,
                pts,
                dts,
                data,
                after_loss,
                ..
            } => {
                if self.video.as_ref().is_some_and(|v| v.pid == pid) {
                    self.video_pes(pts, dts, data, after_loss);
                } else if self.audio.as_ref().is_some_and(|a| a.pid == pid) {
                    self.audio_pes(pts, data);
                }
                if !self.started {
                    self.waited += 1;
                    self.try_start();
                }
                Ok(())
            }
        }
    }

    fn program(&mut self, es: &[EsInfo]) -> Result<(), TsAdapterError> {
        if self.started {
            // A new PMT mid-stream (an encoder restart): keep the streams we already carry.
            if !self.noticed_change {
                self.noticed_change = true;
                self.out.push_back(AdapterEvent::Notice(
                    "program changed mid-stream; keeping the first one".into(),
                ));
            }
            return Ok(());
        }
        let video = es
            .iter()
            .find(|e| matches!(e.kind, StreamKind::H264 | StreamKind::H265));
        let audio = es
            .iter()
            .find(|e| matches!(e.kind, StreamKind::AacAdts | StreamKind::Opus));
        if video.is_none() && audio.is_none() {
            let found: Vec<String> = es
                .iter()
                .map(|e| format!("{:?} on PID {}", e.kind, e.pid))
                .collect();
            return Err(TsAdapterError::NoSupportedStreams(if found.is_empty() {
                "nothing".into()
            } else {
                found.join(", ")
            }));
        }
        for e in es {
            if !matches!(
                e.kind,
                StreamKind::H264 | StreamKind::H265 | StreamKind::AacAdts | StreamKind::Opus
            ) {
                self.out.push_back(AdapterEvent::Notice(format!(
                    "ignoring {:?} on PID {} (not supported over SRT yet)",
                    e.kind, e.pid
                )));
            }
        }
        if video.is_none() {
            self.out.push_back(AdapterEvent::Notice(
                "no video in the program; publishing audio only".into(),
            ));
        }
        self.video = video.map(|e| Video {
            pid: e.pid,
            stream: AnnexB::new(if e.kind == StreamKind::H265 {
                annexb::Codec::H265
            } else {
                annexb::Codec::H264
            }),
            need_key: false,
            track: None,
        });
        self.audio = audio.map(|e| Audio {
            pid: e.pid,
            opus: e.kind == StreamKind::Opus,
            config: None,
            track: None,
            clock: SampleClock::default(),
        });
        self.early = Early::new(self.video.is_some());
        Ok(())
    }

    fn video_pes(&mut self, pts: Option<i64>, dts: Option<i64>, data: Bytes, after_loss: bool) {
        let Some(pts) = pts else { return };
        let dts = dts.unwrap_or(pts);
        let v = self.video.as_mut().expect("checked by caller");
        if after_loss {
            v.need_key = true;
        }
        let Some(sample) = v.stream.push(&data) else {
            return;
        };
        if sample.new_picture {
            self.out.push_back(AdapterEvent::Notice(
                "the video's parameter sets changed; the new ones go in-band with each keyframe"
                    .into(),
            ));
        }
        if v.need_key {
            if !sample.keyframe {
                return;
            }
            v.need_key = false;
        }
        let (keyframe, data) = (sample.keyframe, sample.data);
        if !self.started {
            let w = Waiting::Video {
                pts,
                dts,
                keyframe,
                data,
            };
            if keyframe {
                self.early.keyframe(w);
            } else {
                self.early.push(w);
            }
            return;
        }
        self.emit_video(pts, dts, keyframe, data);
    }

    fn emit_video(&mut self, pts: i64, dts: i64, keyframe: bool, data: Bytes) {
        let Some(track) = self.video.as_ref().and_then(|v| v.track) else {
            return;
        };
        let (dts, pts) = (dts - self.base, pts - self.base);
        if dts < 0 {
            return;
        }
        self.out.push_back(AdapterEvent::Frame(Frame {
            track,
            dts: Timestamp::new(dts, Timescale::VIDEO),
            pts: Timestamp::new(pts.max(dts), Timescale::VIDEO),
            keyframe,
            data,
        }));
    }

    fn audio_pes(&mut self, pts: Option<i64>, data: Bytes) {
        let Some(pts) = pts else { return };
        if self.audio.as_ref().is_some_and(|a| a.opus) {
            return self.opus_pes(pts, data);
        }
        let (first, frames) = adts::frames(&data);
        let Some(first) = first else { return };
        let a = self.audio.as_mut().expect("checked by caller");
        if a.config.is_none() {
            let asc = first.audio_specific_config();
            if let Some(parsed) = AacConfig::parse(&asc).filter(|c| c.sample_rate > 0) {
                let codec = CodecConfig::Aac {
                    asc: asc.to_vec().into(),
                };
                a.config = Some(TrackInfo::audio(
                    codec,
                    parsed.sample_rate,
                    parsed.channels.max(1) as u16,
                ));
            }
        }
        self.audio_frames(pts, frames);
    }

    /// Audio frames: emitted once started, kept for the start before that.
    fn audio_frames(&mut self, pts: i64, frames: Vec<Bytes>) {
        if !self.started {
            self.early.push(Waiting::Audio { pts, frames });
            return;
        }
        self.emit_audio(pts, frames);
    }

    /// Opus in MPEG-TS, as ffmpeg writes it; the first start trim is the encoder's pre-skip.
    fn opus_pes(&mut self, pts: i64, data: Bytes) {
        let opus::TsPackets { packets, pre_skip } = opus::ts_packets(&data);
        let Some(channels) = packets.first().and_then(|p| opus::channels(p)) else {
            return;
        };
        let a = self.audio.as_mut().expect("checked by caller");
        if a.config.is_none() {
            let cfg = CodecConfig::Opus {
                channels,
                pre_skip: pre_skip.unwrap_or(312),
                input_sample_rate: 48_000,
            };
            a.config = Some(TrackInfo::audio(cfg, 48_000, channels as u16));
        }
        self.audio_frames(pts, packets);
    }

    fn emit_audio(&mut self, pts: i64, frames: Vec<Bytes>) {
        let base = self.base;
        let Some(a) = self.audio.as_mut() else { return };
        let (Some(track), Some(cfg)) = (a.track, a.config.as_ref()) else {
            return;
        };
        let scale = Timescale(cfg.sample_rate);
        let durations: Vec<i64> = if a.opus {
            frames
                .iter()
                .map(|f| opus::samples(f).unwrap_or(960))
                .collect()
        } else {
            vec![AAC_FRAME; frames.len()]
        };
        let stamped = scale.convert(pts - base, Timescale::VIDEO);
        let mut ticks = a
            .clock
            .place(stamped, cfg.sample_rate, durations.iter().sum());
        for (raw, duration) in frames.into_iter().zip(durations) {
            if ticks >= 0 {
                let ts = Timestamp::new(ticks, scale);
                self.out.push_back(AdapterEvent::Frame(Frame {
                    track,
                    dts: ts,
                    pts: ts,
                    keyframe: true,
                    data: raw,
                }));
            }
            ticks += duration;
        }
    }

    /// Starts the broadcast once every stream that will be in it has its configuration and
    /// there is a keyframe to start on; video that never gets going does not hold audio back
    /// for ever, nor audio the video.
    fn try_start(&mut self) {
        let video_ready = self
            .video
            .as_ref()
            .is_none_or(|v| v.stream.config().is_some())
            && (self.video.is_none()
                || matches!(
                    self.early.first(),
                    Some(Waiting::Video { keyframe: true, .. })
                ));
        let audio_ready = self.audio.as_ref().is_none_or(|a| a.config.is_some());
        let waited_out = self.waited >= MAX_WAIT_PES;
        match (video_ready, audio_ready) {
            (true, true) => {}
            (true, false) if waited_out => {
                self.out.push_back(AdapterEvent::Notice(
                    "no audio configuration yet; publishing video only".into(),
                ));
                self.audio = None;
                self.early.retain(|e| matches!(e, Waiting::Video { .. }));
            }
            (false, true) if waited_out && self.audio.is_some() => {
                self.out.push_back(AdapterEvent::Notice(
                    "no decodable video yet; publishing audio only".into(),
                ));
                self.video = None;
                self.early.retain(|e| matches!(e, Waiting::Audio { .. }));
                self.early.without_video();
            }
            _ => return,
        }
        let Some(at) = self.early.first().map(|e| match e {
            Waiting::Video { dts, .. } => *dts,
            Waiting::Audio { pts, .. } => *pts,
        }) else {
            return;
        };
        self.started = true;
        self.base = at;
        let mut tracks = Vec::new();
        if let Some(v) = self.video.as_mut() {
            let cfg = v.stream.config().cloned().expect("ready");
            v.track = Some(tracks.len());
            tracks.push(TrackInfo::video(cfg));
        }
        if let Some(a) = self.audio.as_mut() {
            let info = a.config.clone().expect("ready");
            a.track = Some(tracks.len());
            tracks.push(info);
        }
        self.out.push_back(AdapterEvent::Start(tracks));
        for e in self.early.take() {
            match e {
                Waiting::Video {
                    pts,
                    dts,
                    keyframe,
                    data,
                } => self.emit_video(pts, dts, keyframe, data),
                Waiting::Audio { pts, frames } => self.emit_audio(pts, frames),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Everything the adapter makes of a whole TS file.
    fn adapt(data: &[u8]) -> Vec<AdapterEvent> {
        let mut demux = super::super::ts::TsDemuxer::new();
        let mut a = TsAdapter::new();
        demux.push(data);
        demux.finish();
        while let Some(ev) = demux.pull() {
            a.push(ev).unwrap();
        }
        std::iter::from_fn(|| a.pull()).collect()
    }

    #[test]
    fn ffmpeg_fixture_becomes_tracks_and_frames() {
        let events = adapt(include_bytes!(
            "../../tests/fixtures/ffmpeg-5.1-h264-aac-160x120.ts"
        ));
        let AdapterEvent::Start(tracks) = &events[0] else {
            panic!("{:?}", events[0])
        };
        assert_eq!(tracks.len(), 2);
        assert_eq!((tracks[0].width, tracks[0].height), (160, 120));
        assert!(tracks[0].codec.codec_string().starts_with("avc1.42"));
        assert_eq!(tracks[1].codec.codec_string(), "mp4a.40.2");
        assert_eq!((tracks[1].sample_rate, tracks[1].channels), (48000, 2));
        let frames: Vec<&Frame> = events
            .iter()
            .filter_map(|e| match e {
                AdapterEvent::Frame(f) => Some(f),
                _ => None,
            })
            .collect();
        let video: Vec<&&Frame> = frames.iter().filter(|f| f.track == 0).collect();
        assert_eq!(video.len(), 60);
        assert!(video[0].keyframe && video[0].dts.ticks == 0);
        assert_eq!(video.iter().filter(|f| f.keyframe).count(), 2);
        // Length-prefixed NAL units, no start codes left.
        let first = &video[1].data;
        let len = u32::from_be_bytes([first[0], first[1], first[2], first[3]]) as usize;
        assert!(len + 4 <= first.len());
        let audio = frames.iter().filter(|f| f.track == 1).count();
        assert!(
            (90..=95).contains(&audio),
            "{audio} AAC frames for 2 s at 48 kHz"
        );
    }

    #[test]
    fn hevc_fixture_gets_an_hvcc_and_its_picture_size() {
        let events = adapt(include_bytes!(
            "../../tests/fixtures/ffmpeg-5.1-hevc-aac-320x240.ts"
        ));
        let AdapterEvent::Start(tracks) = &events[0] else {
            panic!("{:?}", events[0])
        };
        assert_eq!((tracks[0].width, tracks[0].height), (320, 240));
        assert_eq!(tracks[0].codec.codec_string(), "hvc1.1.6.L60.90");
        let video = events
            .iter()
            .filter(|e| matches!(e, AdapterEvent::Frame(f) if f.track == 0))
            .count();
        assert_eq!(video, 60);
    }

    #[test]
    fn opus_in_ts_gets_its_pre_skip_and_sample_clock() {
        let events = adapt(include_bytes!(
            "../../tests/fixtures/ffmpeg-5.1-h264-opus-160x120.ts"
        ));
        let AdapterEvent::Start(tracks) = &events[0] else {
            panic!("{:?}", events[0])
        };
        assert_eq!(tracks.len(), 2);
        assert_eq!(
            tracks[1].codec,
            CodecConfig::Opus {
                channels: 2,
                pre_skip: 312,
                input_sample_rate: 48_000
            }
        );
        assert_eq!(tracks[1].codec.codec_string(), "opus");
        let audio: Vec<i64> = events
            .iter()
            .filter_map(|e| match e {
                AdapterEvent::Frame(f) if f.track == 1 => Some(f.dts.ticks),
                _ => None,
            })
            .collect();
        assert!(audio.len() >= 90, "{} Opus packets for ~2 s", audio.len());
        assert!(
            audio.windows(2).all(|w| w[1] - w[0] == 960),
            "20 ms packets on an exact clock"
        );
    }

    #[test]
    fn program_without_supported_streams_is_an_error() {
        let mut a = TsAdapter::new();
        let e = a.push(TsEvent::Program(vec![EsInfo {
            pid: 256,
            kind: StreamKind::Other(0x02),
        }]));
        assert!(matches!(e, Err(TsAdapterError::NoSupportedStreams(s)) if s.contains("PID 256")));
    }
}
