//! Turns demuxed MPEG-TS (PES packets) into the media model: H.264/HEVC from Annex B into
//! length-prefixed NAL units with an `avcC`/`hvcC` built from the in-band parameter sets, AAC
//! from ADTS into raw frames with an AudioSpecificConfig, Opus out of its control headers.
//! Timestamps are rebased to the first frame.
//!
//! Push/pull contract: `push(event)` for each [`TsEvent`], then `pull()` until `None`. The
//! broadcast starts on the first video keyframe once every supported stream of the program has
//! its configuration (audio-only programs start on the first audio frame). After data loss on a
//! stream, video restarts at its next keyframe rather than passing on corrupt frames.

use std::collections::VecDeque;

use bytes::{BufMut, Bytes, BytesMut};
use media::codec::AacConfig;
use media::{h264, h265, CodecConfig, Frame, Timescale, Timestamp, TrackInfo};

use super::ts::{EsInfo, StreamKind, TsEvent};
use crate::{AdapterEvent, SampleClock};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TsAdapterError {
    #[error("no stream we can take in the program (found {0})")]
    NoSupportedStreams(String),
}

/// PES packets to wait for every stream's configuration before starting without the missing one.
const MAX_WAIT_PES: u32 = 300;
/// Media kept while waiting to start (a pathological GOP is dropped rather than kept).
const MAX_EARLY: usize = 4096;
const AAC_FRAME: i64 = 1024;

struct Video {
    pid: u16,
    hevc: bool,
    vps: Option<Vec<u8>>,
    sps: Option<Vec<u8>>,
    pps: Option<Vec<u8>>,
    config: Option<CodecConfig>,
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

/// Media that arrived before the broadcast could start, from the latest video keyframe on.
enum Early {
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

#[derive(Default)]
pub struct TsAdapter {
    video: Option<Video>,
    audio: Option<Audio>,
    started: bool,
    /// 90 kHz time of the broadcast's zero.
    base: i64,
    early: Vec<Early>,
    waited: u32,
    noticed_change: bool,
    out: VecDeque<AdapterEvent>,
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
                    if self.early.len() > MAX_EARLY {
                        self.early.clear();
                    }
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
            hevc: e.kind == StreamKind::H265,
            vps: None,
            sps: None,
            pps: None,
            config: None,
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
        self.early.clear();
        Ok(())
    }

    fn video_pes(&mut self, pts: Option<i64>, dts: Option<i64>, data: Bytes, after_loss: bool) {
        let Some(pts) = pts else { return };
        let dts = dts.unwrap_or(pts);
        let v = self.video.as_mut().expect("checked by caller");
        if after_loss {
            v.need_key = true;
        }
        let mut keyframe = false;
        let mut out = BytesMut::with_capacity(data.len() + 16);
        for nal in h264::annexb_nals(&data) {
            // Parameter sets go into the configuration record, delimiters nowhere.
            let carried = if v.hevc {
                match h265::nal_type(nal) {
                    h265::NAL_VPS => keep(&mut v.vps, nal),
                    h265::NAL_SPS => keep(&mut v.sps, nal),
                    h265::NAL_PPS => keep(&mut v.pps, nal),
                    h265::NAL_AUD => {}
                    t => {
                        keyframe |= h265::is_irap(t);
                        out.put_u32(nal.len() as u32);
                        out.put_slice(nal);
                    }
                }
                continue;
            } else {
                nal[0] & 0x1f
            };
            match carried {
                7 => keep(&mut v.sps, nal),
                8 => keep(&mut v.pps, nal),
                9 => {}
                t => {
                    keyframe |= t == 5;
                    out.put_u32(nal.len() as u32);
                    out.put_slice(nal);
                }
            }
        }
        if v.config.is_none() {
            v.config = match (v.hevc, &v.vps, &v.sps, &v.pps) {
                (false, _, Some(sps), Some(pps)) => {
                    h264::avcc_from(sps, pps).map(|a| CodecConfig::H264 { avcc: a.into() })
                }
                (true, Some(vps), Some(sps), Some(pps)) => {
                    h265::hvcc_from(vps, sps, pps).map(|h| CodecConfig::H265 { hvcc: h.into() })
                }
                _ => None,
            };
        }
        if out.is_empty() {
            return;
        }
        if v.need_key {
            if !keyframe {
                return;
            }
            v.need_key = false;
        }
        let data = out.freeze();
        if !self.started {
            if keyframe {
                // Start from the newest keyframe: older media cannot be decoded from here.
                self.early.clear();
            }
            if keyframe || !self.early.is_empty() {
                self.early.push(Early::Video {
                    pts,
                    dts,
                    keyframe,
                    data,
                });
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
        let mut frames = Vec::new();
        let mut first = None;
        let mut rest = &data[..];
        while rest.len() >= 7 {
            let Some(h) = Adts::parse(rest) else { break };
            if h.frame_len > rest.len() || h.frame_len < h.header_len {
                break;
            }
            first.get_or_insert(h);
            frames.push(data.slice_ref(&rest[h.header_len..h.frame_len]));
            rest = &rest[h.frame_len..];
        }
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
            if self.video.is_none() || !self.early.is_empty() {
                self.early.push(Early::Audio { pts, frames });
            }
            return;
        }
        self.emit_audio(pts, frames);
    }

    /// Opus in MPEG-TS, as ffmpeg writes it: each access unit is preceded by an
    /// `opus_control_header` (0x7FE0 prefix, size bytes, optional trims); the first start trim
    /// is the encoder's pre-skip.
    fn opus_pes(&mut self, pts: i64, data: Bytes) {
        let mut frames = Vec::new();
        let mut pre_skip = None;
        let mut rest = &data[..];
        while rest.len() >= 3 && rest[0] == 0x7f && rest[1] & 0xe0 == 0xe0 {
            let flags = rest[1];
            let mut pos = 2;
            let mut size = 0usize;
            loop {
                let Some(&b) = rest.get(pos) else { return };
                pos += 1;
                size += b as usize;
                if b != 0xff {
                    break;
                }
            }
            if flags & 0x10 != 0 {
                let Some(t) = rest.get(pos..pos + 2) else {
                    return;
                };
                pre_skip.get_or_insert(u16::from_be_bytes([t[0], t[1]]));
                pos += 2;
            }
            if flags & 0x08 != 0 {
                pos += 2;
            }
            if flags & 0x04 != 0 {
                let Some(&len) = rest.get(pos) else { return };
                pos += 1 + len as usize;
            }
            let Some(au) = rest.get(pos..pos + size) else {
                return;
            };
            if !au.is_empty() {
                frames.push(data.slice_ref(au));
            }
            rest = &rest[pos + size..];
        }
        let Some(first) = frames.first() else { return };
        let a = self.audio.as_mut().expect("checked by caller");
        if a.config.is_none() {
            let channels = if first[0] & 0x04 != 0 { 2 } else { 1 };
            let cfg = CodecConfig::Opus {
                channels,
                pre_skip: pre_skip.unwrap_or(312),
                input_sample_rate: 48_000,
            };
            a.config = Some(TrackInfo::audio(cfg, 48_000, channels as u16));
        }
        self.audio_frames(pts, frames);
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
                .map(|f| opus_samples(f).unwrap_or(960))
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
        let video_ready = self.video.as_ref().is_none_or(|v| v.config.is_some())
            && (self.video.is_none()
                || matches!(
                    self.early.first(),
                    Some(Early::Video { keyframe: true, .. })
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
                self.early.retain(|e| matches!(e, Early::Video { .. }));
            }
            (false, true) if waited_out && self.audio.is_some() => {
                self.out.push_back(AdapterEvent::Notice(
                    "no decodable video yet; publishing audio only".into(),
                ));
                self.video = None;
                self.early.retain(|e| matches!(e, Early::Audio { .. }));
            }
            _ => return,
        }
        let Some(at) = self.early.first().map(|e| match e {
            Early::Video { dts, .. } => *dts,
            Early::Audio { pts, .. } => *pts,
        }) else {
            return;
        };
        self.started = true;
        self.base = at;
        let mut tracks = Vec::new();
        if let Some(v) = self.video.as_mut() {
            let cfg = v.config.clone().expect("ready");
            v.track = Some(tracks.len());
            tracks.push(TrackInfo::video(cfg));
        }
        if let Some(a) = self.audio.as_mut() {
            let info = a.config.clone().expect("ready");
            a.track = Some(tracks.len());
            tracks.push(info);
        }
        self.out.push_back(AdapterEvent::Start(tracks));
        for e in std::mem::take(&mut self.early) {
            match e {
                Early::Video {
                    pts,
                    dts,
                    keyframe,
                    data,
                } => self.emit_video(pts, dts, keyframe, data),
                Early::Audio { pts, frames } => self.emit_audio(pts, frames),
            }
        }
    }
}

/// Stores a parameter set; encoders repeat them before every keyframe, so copy only a change.
fn keep(slot: &mut Option<Vec<u8>>, nal: &[u8]) {
    if slot.as_deref() != Some(nal) {
        *slot = Some(nal.to_vec());
    }
}

/// Samples (at 48 kHz) in an Opus packet, from its TOC byte (RFC 6716 §3.1).
fn opus_samples(packet: &[u8]) -> Option<i64> {
    let toc = *packet.first()?;
    let config = toc >> 3;
    let per_frame = match config {
        0..=11 => [480, 960, 1920, 2880][(config % 4) as usize],
        12..=15 => [480, 960][(config % 2) as usize],
        _ => [120, 240, 480, 960][(config % 4) as usize],
    };
    let frames = match toc & 3 {
        0 => 1,
        1 | 2 => 2,
        _ => (*packet.get(1)? & 0x3f) as i64,
    };
    Some(per_frame * frames)
}

/// An ADTS header (ISO 14496-3 §1.A.2.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Adts {
    object_type: u8,
    freq_index: u8,
    channels: u8,
    header_len: usize,
    frame_len: usize,
}

impl Adts {
    fn parse(b: &[u8]) -> Option<Adts> {
        if b.len() < 7 || b[0] != 0xff || b[1] & 0xf6 != 0xf0 {
            return None;
        }
        let protection_absent = b[1] & 1 == 1;
        let object_type = ((b[2] >> 6) & 3) + 1;
        let freq_index = (b[2] >> 2) & 0x0f;
        let channels = ((b[2] & 1) << 2) | (b[3] >> 6);
        let frame_len =
            (((b[3] & 3) as usize) << 11) | ((b[4] as usize) << 3) | ((b[5] >> 5) as usize);
        if freq_index > 12 {
            return None;
        }
        Some(Adts {
            object_type,
            freq_index,
            channels,
            header_len: if protection_absent { 7 } else { 9 },
            frame_len,
        })
    }

    fn audio_specific_config(&self) -> [u8; 2] {
        let v: u16 = (self.object_type as u16) << 11
            | (self.freq_index as u16) << 7
            | (self.channels as u16) << 3;
        v.to_be_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adts_header() {
        // AAC-LC, 48 kHz (index 3), stereo, 371-byte frame, no CRC.
        let h = [0xff, 0xf1, 0x4c, 0x80, 0x2e, 0x7f, 0xfc];
        let a = Adts::parse(&h).unwrap();
        assert_eq!(
            (
                a.object_type,
                a.freq_index,
                a.channels,
                a.header_len,
                a.frame_len
            ),
            (2, 3, 2, 7, 371)
        );
        assert_eq!(a.audio_specific_config(), [0x11, 0x90]);
        assert!(
            Adts::parse(&[0xff, 0xf1, 0x7c, 0x80, 0x2e, 0x7f, 0xfc]).is_none(),
            "frequency index 15"
        );
    }

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
