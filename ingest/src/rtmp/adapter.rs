//! Turns parsed RTMP audio/video messages into the media model: tracks once the decoder
//! configurations are known, then frames with timestamps in each track's timescale.
//!
//! Push/pull contract: call `video`/`audio`/`hints`, then `pull` until `None`.
//! The broadcast starts on the first video keyframe after the video sequence header (with the
//! audio track if its AudioSpecificConfig came first, as every encoder we know sends it), or
//! audio-only when the publisher says it has no video or sends none for a while.

use std::collections::VecDeque;

use bytes::Bytes;
use media::codec::AacConfig;
use media::time::Unwrapper32;
use media::{CodecConfig, Frame, Timescale, Timestamp, TrackInfo};

use super::flv::{self, AudioMessage, FlvError, FlvVideoCodec, VideoMessage};
use crate::{AdapterEvent, SampleClock};

/// What the publisher announced in `@setDataFrame`/`onMetaData`.
#[derive(Clone, Debug, Default)]
pub struct PublishHints {
    pub has_video: Option<bool>,
    pub video_kbps: Option<u32>,
    pub audio_kbps: Option<u32>,
    pub frame_rate: Option<f64>,
}

/// Audio frames dropped while waiting for video before going audio-only (about 3 s of AAC).
const AUDIO_ONLY_AFTER: u32 = 140;
const AAC_FRAME_SAMPLES: i64 = 1024;

#[derive(Default)]
pub struct Adapter {
    hints: PublishHints,
    video_config: Option<CodecConfig>,
    audio_config: Option<(CodecConfig, AacConfig)>,
    video_track: Option<usize>,
    audio_track: Option<usize>,
    started: bool,
    base_ms: i64,
    video_clock: Unwrapper32,
    audio_clock: Unwrapper32,
    audio_samples: SampleClock,
    audio_waiting: u32,
    noticed_no_config: bool,
    out: VecDeque<AdapterEvent>,
}

impl Adapter {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn hints(&mut self, hints: PublishHints) {
        self.hints = hints;
    }

    pub fn pull(&mut self) -> Option<AdapterEvent> {
        self.out.pop_front()
    }

    pub fn video(&mut self, timestamp_ms: u32, body: &Bytes) -> Result<(), FlvError> {
        match flv::parse_video(body)? {
            VideoMessage::SequenceHeader { codec, config } => {
                let cfg = match codec {
                    FlvVideoCodec::H264 => {
                        media::h264::AvcConfig::parse(&config)
                            .ok_or(FlvError::BadConfig("avcC"))?;
                        CodecConfig::H264 { avcc: config }
                    }
                    FlvVideoCodec::H265 => {
                        if config.len() < 23 {
                            return Err(FlvError::BadConfig("hvcC"));
                        }
                        CodecConfig::H265 { hvcc: config }
                    }
                    FlvVideoCodec::Av1 => {
                        if config.len() < 4 || config[0] != 0x81 {
                            return Err(FlvError::BadConfig("av1C"));
                        }
                        CodecConfig::Av1 { av1c: config }
                    }
                };
                if self.started && self.video_config.as_ref() != Some(&cfg) {
                    self.out.push_back(AdapterEvent::Notice(
                        "video configuration changed mid-stream; keeping the first one".into(),
                    ));
                    return Ok(());
                }
                self.video_config = Some(cfg);
            }
            VideoMessage::Frame {
                keyframe,
                cts,
                data,
                ..
            } => {
                if self.video_config.is_none() {
                    if !self.noticed_no_config {
                        self.noticed_no_config = true;
                        self.out.push_back(AdapterEvent::Notice(
                            "video frame before its sequence header; dropped".into(),
                        ));
                    }
                    return Ok(());
                }
                let ms = self.video_clock.unwrap(timestamp_ms);
                if !self.started {
                    if !keyframe {
                        return Ok(());
                    }
                    self.start(ms);
                }
                let Some(track) = self.video_track else {
                    return Ok(());
                };
                let dts_ms = ms - self.base_ms;
                if dts_ms < 0 {
                    return Ok(());
                }
                let dts = Timestamp::new(dts_ms * 90, Timescale::VIDEO);
                let pts = Timestamp::new((dts_ms + cts as i64) * 90, Timescale::VIDEO);
                self.out.push_back(AdapterEvent::Frame(Frame {
                    track,
                    dts,
                    pts,
                    keyframe,
                    data,
                }));
            }
            VideoMessage::EndOfSequence | VideoMessage::Ignored => {}
        }
        Ok(())
    }

    pub fn audio(&mut self, timestamp_ms: u32, body: &Bytes) -> Result<(), FlvError> {
        match flv::parse_audio(body)? {
            AudioMessage::AacConfig(asc) => {
                let parsed =
                    AacConfig::parse(&asc).ok_or(FlvError::BadConfig("AudioSpecificConfig"))?;
                if parsed.sample_rate == 0 {
                    return Err(FlvError::BadConfig("AudioSpecificConfig"));
                }
                let cfg = CodecConfig::Aac { asc };
                if self.started {
                    if self.audio_config.as_ref().map(|c| &c.0) != Some(&cfg) {
                        self.out.push_back(AdapterEvent::Notice(
                            "audio configuration changed or arrived after the start; ignored"
                                .into(),
                        ));
                    }
                    return Ok(());
                }
                self.audio_config = Some((cfg, parsed));
            }
            AudioMessage::AacFrame(data) => {
                let Some((_, aac)) = self.audio_config else {
                    return Ok(());
                };
                let ms = self.audio_clock.unwrap(timestamp_ms);
                if !self.started {
                    let video_expected = self.hints.has_video != Some(false);
                    self.audio_waiting += 1;
                    if video_expected && self.audio_waiting < AUDIO_ONLY_AFTER {
                        return Ok(());
                    }
                    if video_expected {
                        self.out.push_back(AdapterEvent::Notice(
                            "no video after 3 s of audio; publishing audio only".into(),
                        ));
                        self.video_config = None;
                    }
                    self.start(ms);
                }
                let Some(track) = self.audio_track else {
                    return Ok(());
                };
                let ms = ms - self.base_ms;
                if ms < 0 {
                    return Ok(());
                }
                // RTMP rounds to milliseconds: keep the exact sample clock.
                let stamped = Timescale(aac.sample_rate).convert(ms, Timescale::MILLIS);
                let ticks = self
                    .audio_samples
                    .place(stamped, aac.sample_rate, AAC_FRAME_SAMPLES);
                let ts = Timestamp::new(ticks, Timescale(aac.sample_rate));
                self.out.push_back(AdapterEvent::Frame(Frame {
                    track,
                    dts: ts,
                    pts: ts,
                    keyframe: true,
                    data,
                }));
            }
        }
        Ok(())
    }

    fn start(&mut self, base_ms: i64) {
        self.started = true;
        self.base_ms = base_ms;
        let mut tracks = Vec::new();
        if let Some(cfg) = self.video_config.clone() {
            let mut t = TrackInfo::video(cfg);
            t.bitrate_hint = self.hints.video_kbps.map(|k| k * 1000);
            t.frame_rate_hint = self.hints.frame_rate;
            self.video_track = Some(tracks.len());
            tracks.push(t);
        }
        if let Some((cfg, aac)) = self.audio_config.clone() {
            let mut t = TrackInfo::audio(cfg, aac.sample_rate, aac.channels.max(1) as u16);
            t.bitrate_hint = self.hints.audio_kbps.map(|k| k * 1000);
            self.audio_track = Some(tracks.len());
            tracks.push(t);
        }
        self.out.push_back(AdapterEvent::Start(tracks));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // x264 1280x720 high@3.1 avcC, from mp4-atom's h264 fixture.
    const AVCC: &[u8] = &[
        1, 100, 0, 31, 0xff, 0xe1, 0, 28, 103, 100, 0, 31, 172, 217, 128, 80, 5, 187, 1, 106, 2, 2,
        2, 128, 0, 0, 3, 0, 128, 0, 0, 30, 7, 140, 24, 205, 1, 0, 5, 104, 233, 123, 44, 139,
    ];

    fn video_header() -> Bytes {
        let mut b = vec![0x17, 0, 0, 0, 0];
        b.extend_from_slice(AVCC);
        b.into()
    }

    #[test]
    fn starts_on_keyframe_with_audio() {
        let mut a = Adapter::new();
        a.audio(0, &Bytes::from_static(&[0xaf, 0, 0x12, 0x10]))
            .unwrap();
        a.video(0, &video_header()).unwrap();
        a.video(
            0,
            &Bytes::from_static(&[0x27, 1, 0, 0, 0, 0, 0, 0, 1, 0x41]),
        )
        .unwrap();
        assert_eq!(a.pull(), None, "waits for a keyframe");
        a.video(
            40,
            &Bytes::from_static(&[0x17, 1, 0, 0, 40, 0, 0, 0, 1, 0x65]),
        )
        .unwrap();
        a.audio(63, &Bytes::from_static(&[0xaf, 1, 0x21])).unwrap();
        a.audio(86, &Bytes::from_static(&[0xaf, 1, 0x21])).unwrap();
        let Some(AdapterEvent::Start(tracks)) = a.pull() else {
            panic!()
        };
        assert_eq!(tracks.len(), 2);
        assert_eq!((tracks[0].width, tracks[0].height), (1280, 720));
        assert_eq!(tracks[1].timescale, Timescale(44100));
        let Some(AdapterEvent::Frame(v)) = a.pull() else {
            panic!()
        };
        assert_eq!((v.dts.ticks, v.pts.ticks, v.keyframe), (0, 3600, true));
        let Some(AdapterEvent::Frame(a1)) = a.pull() else {
            panic!()
        };
        let Some(AdapterEvent::Frame(a2)) = a.pull() else {
            panic!()
        };
        assert_eq!(a1.dts.ticks, 1014);
        assert_eq!(
            a2.dts.ticks - a1.dts.ticks,
            1024,
            "sample clock, not rounded ms"
        );
    }

    #[test]
    fn audio_only_when_announced() {
        let mut a = Adapter::new();
        a.hints(PublishHints {
            has_video: Some(false),
            ..Default::default()
        });
        a.audio(0, &Bytes::from_static(&[0xaf, 0, 0x11, 0x90]))
            .unwrap();
        a.audio(0, &Bytes::from_static(&[0xaf, 1, 0x21])).unwrap();
        let Some(AdapterEvent::Start(tracks)) = a.pull() else {
            panic!()
        };
        assert_eq!(tracks.len(), 1);
        assert!(matches!(a.pull(), Some(AdapterEvent::Frame(_))));
    }

    #[test]
    fn bad_config_is_an_error() {
        let mut a = Adapter::new();
        assert!(a
            .video(0, &Bytes::from_static(&[0x17, 0, 0, 0, 0, 9]))
            .is_err());
        assert!(a.audio(0, &Bytes::from_static(&[0xaf, 0])).is_err());
    }
}
