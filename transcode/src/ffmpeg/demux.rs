//! FFmpeg's demuxers behind [`crate::demux::Demuxer`]: packets of the chosen streams turned
//! into the media model's frames. MP4 and MOV carry H.264/HEVC as length-prefixed NAL units with
//! an `avcC`/`hvcC` (used as they are) and AAC raw with its AudioSpecificConfig; MPEG-TS carries
//! Annex B and ADTS, whose configurations come from the first frames (read ahead for).

use std::collections::VecDeque;
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use ff::codec::packet::side_data;
use ff::codec::Id;
use ff::media::Type;
use ffmpeg_next as ff;
use media::annexb::{self, AnnexB};
use media::codec::AacConfig;
use media::{adts, CodecConfig, Frame, Timescale, Timestamp, TrackInfo};

use crate::demux::DemuxError;

/// Frames held at most while the tracks' configurations are looked for.
const READ_AHEAD: usize = 2000;
/// Corrupt packets skipped at most, one after another.
const CORRUPT_IN_A_ROW: u32 = 1000;

enum Shape {
    /// Length-prefixed NAL units, the configuration record in the container.
    LengthPrefixed,
    AnnexB(Box<AnnexB>),
    RawAac,
    Adts,
}

struct Track {
    stream: usize,
    base: ff::Rational,
    shape: Shape,
    info: Option<TrackInfo>,
    /// Where its first frame's decode time is, in seconds (before the shift).
    first: Option<f64>,
    /// Ticks of its own timescale added to every time: the earliest decode time becomes 0.
    shift: i64,
    /// Video: a keyframe has been seen (frames before the first one cannot be decoded).
    started: bool,
}

impl Track {
    fn scale(&self) -> Timescale {
        self.info
            .as_ref()
            .map_or(Timescale(90_000), |i| i.timescale)
    }

    /// `ts` of the stream's time base in the track's timescale.
    fn ticks(&self, ts: i64) -> i64 {
        let scale = self.scale().0 as i128;
        let (num, den) = (
            self.base.numerator() as i128,
            self.base.denominator() as i128,
        );
        (ts as i128 * num * scale / den.max(1)) as i64
    }
}

pub struct Inner {
    input: ff::format::context::Input,
    tracks: Vec<Track>,
    infos: Vec<TrackInfo>,
    /// Frames made and not yet taken (while reading ahead: not yet shifted).
    out: VecDeque<Frame>,
    ready: bool,
    ended: bool,
    size: u64,
    position: u64,
}

fn extradata(par: &ff::codec::Parameters) -> Vec<u8> {
    // SAFETY: the parameters are the open input's; extradata is extradata_size bytes or null.
    unsafe {
        let p = par.as_ptr();
        if (*p).extradata.is_null() || (*p).extradata_size <= 0 {
            return Vec::new();
        }
        std::slice::from_raw_parts((*p).extradata, (*p).extradata_size as usize).to_vec()
    }
}

/// The display matrix's rotation in degrees (as ffprobe shows it), or a flip.
fn rotation(stream: &ff::format::stream::Stream) -> Option<String> {
    for sd in stream.side_data() {
        if sd.kind() != side_data::Type::DisplayMatrix || sd.data().len() < 36 {
            continue;
        }
        let m = |i: usize| {
            let b = &sd.data()[i * 4..i * 4 + 4];
            i32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as f64
        };
        let (a, b, c, d) = (m(0), m(1), m(3), m(4));
        if a * d - b * c < 0.0 {
            return Some("a mirrored picture (display matrix)".into());
        }
        let degrees = -(b.atan2(a).to_degrees()).round() as i64;
        if degrees.rem_euclid(360) != 0 {
            return Some(format!("video rotated by {degrees}°"));
        }
    }
    None
}

impl Inner {
    pub fn open(path: &Path) -> Result<Inner, DemuxError> {
        super::init();
        let size = std::fs::metadata(path)
            .map_err(|e| DemuxError::Read(e.to_string()))?
            .len();
        let input = ff::format::input(path).map_err(|e| DemuxError::NotMedia(e.to_string()))?;
        let video = input
            .streams()
            .best(Type::Video)
            .ok_or(DemuxError::NoVideo)?;
        let codec = match video.parameters().id() {
            Id::H264 => annexb::Codec::H264,
            Id::HEVC => annexb::Codec::H265,
            other => {
                return Err(DemuxError::NeedsTranscode(format!(
                    "video codec {}",
                    other.name()
                )))
            }
        };
        if let Some(r) = rotation(&video) {
            return Err(DemuxError::NeedsTranscode(r));
        }
        let mut tracks = Vec::new();
        let record = extradata(&video.parameters());
        let rate = video.avg_frame_rate();
        let fps = (rate.denominator() > 0 && rate.numerator() > 0)
            .then(|| rate.numerator() as f64 / rate.denominator() as f64);
        let base = video.time_base();
        let scale = if base.numerator() == 1 && base.denominator() >= 1000 {
            base.denominator() as u32
        } else {
            90_000
        };
        let video_info = |codec: CodecConfig| {
            let mut info = TrackInfo::video(codec);
            info.timescale = Timescale(scale);
            info.frame_rate_hint = fps;
            info
        };
        let (shape, info) = if record.first() == Some(&1) {
            let record = Bytes::from(record);
            let c = match codec {
                annexb::Codec::H264 => CodecConfig::H264 { avcc: record },
                annexb::Codec::H265 => CodecConfig::H265 { hvcc: record },
            };
            (Shape::LengthPrefixed, Some(video_info(c)))
        } else {
            let mut parser = AnnexB::new(codec);
            // Parameter sets in the container, if any, as Annex B.
            parser.push(&record);
            let info = parser.config().cloned().map(video_info);
            (Shape::AnnexB(Box::new(parser)), info)
        };
        tracks.push(Track {
            stream: video.index(),
            base,
            shape,
            info,
            first: None,
            shift: 0,
            started: false,
        });
        if let Some(audio) = input.streams().best(Type::Audio) {
            match audio.parameters().id() {
                Id::AAC => {}
                other => {
                    return Err(DemuxError::NeedsTranscode(format!(
                        "audio codec {}",
                        other.name()
                    )))
                }
            }
            let asc = extradata(&audio.parameters());
            let (shape, info) = match AacConfig::parse(&asc) {
                Some(c) => (
                    Shape::RawAac,
                    Some(TrackInfo::audio(
                        CodecConfig::Aac { asc: asc.into() },
                        c.sample_rate,
                        c.channels as u16,
                    )),
                ),
                None => (Shape::Adts, None),
            };
            tracks.push(Track {
                stream: audio.index(),
                base: audio.time_base(),
                shape,
                info,
                first: None,
                shift: 0,
                started: true,
            });
        }
        let mut inner = Inner {
            input,
            tracks,
            infos: Vec::new(),
            out: VecDeque::new(),
            ready: false,
            ended: false,
            size,
            position: 0,
        };
        inner.read_ahead()?;
        Ok(inner)
    }

    /// Reads until every track has its configuration and a first frame, then shifts times.
    fn read_ahead(&mut self) -> Result<(), DemuxError> {
        while !self.ended
            && self.out.len() < READ_AHEAD
            && self.tracks.iter().any(|t| t.first.is_none())
        {
            self.read_one()?;
        }
        if self.tracks[0].first.is_none() {
            return Err(DemuxError::NotMedia(
                "its video stream has no frame that can be decoded".into(),
            ));
        }
        // An audio track that never showed a frame (declared but empty) is left out.
        if self.tracks.get(1).is_some_and(|a| a.first.is_none()) {
            self.tracks.truncate(1);
            self.out.retain(|f| f.track == 0);
        }
        let earliest = self
            .tracks
            .iter()
            .filter_map(|t| t.first)
            .fold(f64::INFINITY, f64::min);
        for t in &mut self.tracks {
            t.shift = (-earliest * t.scale().0 as f64).round() as i64;
        }
        for f in &mut self.out {
            f.shift(self.tracks[f.track].shift);
        }
        self.infos = self.tracks.iter().filter_map(|t| t.info.clone()).collect();
        self.ready = true;
        Ok(())
    }

    pub fn tracks(&self) -> &[TrackInfo] {
        &self.infos
    }

    pub fn duration(&self) -> Option<Duration> {
        let d = self.input.duration();
        (d > 0).then(|| Duration::from_micros(d as u64))
    }

    pub fn progress(&self) -> f64 {
        if self.ended {
            return 1.0;
        }
        (self.position as f64 / self.size.max(1) as f64).min(1.0)
    }

    pub fn next_frame(&mut self) -> Result<Option<Frame>, DemuxError> {
        loop {
            if let Some(f) = self.out.pop_front() {
                return Ok(Some(f));
            }
            if self.ended {
                return Ok(None);
            }
            self.read_one()?;
        }
    }

    /// Reads one packet and makes its frames.
    fn read_one(&mut self) -> Result<(), DemuxError> {
        let mut corrupt = 0;
        let mut pkt = ff::Packet::empty();
        loop {
            match pkt.read(&mut self.input) {
                Ok(()) => break,
                Err(ff::Error::Eof) => {
                    self.ended = true;
                    return Ok(());
                }
                // A demuxer resyncs past a corrupt packet.
                Err(ff::Error::InvalidData) if corrupt < CORRUPT_IN_A_ROW => corrupt += 1,
                Err(e) => return Err(DemuxError::Read(e.to_string())),
            }
        }
        if pkt.position() > 0 {
            self.position = self.position.max(pkt.position() as u64);
        }
        let Some(index) = self.tracks.iter().position(|t| t.stream == pkt.stream()) else {
            return Ok(());
        };
        self.convert(index, &pkt);
        Ok(())
    }

    fn convert(&mut self, index: usize, pkt: &ff::Packet) {
        let ready = self.ready;
        let t = &mut self.tracks[index];
        let Some(data) = pkt.data().filter(|d| !d.is_empty()) else {
            return;
        };
        let Some(raw_dts) = pkt.dts().or(pkt.pts()) else {
            return;
        };
        let raw_pts = pkt.pts().unwrap_or(raw_dts);
        // (payload, keyframe, offset in samples from the packet's time: ADTS packs several)
        let mut made: Vec<(Bytes, bool, i64)> = Vec::new();
        match &mut t.shape {
            Shape::LengthPrefixed => made.push((Bytes::copy_from_slice(data), pkt.is_key(), 0)),
            Shape::AnnexB(parser) => {
                let sample = parser.push(data);
                if t.info.is_none() {
                    if let Some(c) = parser.config().cloned() {
                        // Annex B comes in MPEG-TS (and raw streams): 90 kHz.
                        let mut info = TrackInfo::video(c);
                        info.timescale = Timescale(90_000);
                        t.info = Some(info);
                    }
                }
                if let (Some(s), Some(_)) = (sample, &t.info) {
                    made.push((s.data, s.keyframe, 0));
                }
            }
            Shape::RawAac => made.push((Bytes::copy_from_slice(data), true, 0)),
            Shape::Adts => {
                let (header, frames) = adts::frames(&Bytes::copy_from_slice(data));
                if let (None, Some(h)) = (&t.info, header) {
                    let asc = h.audio_specific_config();
                    if let Some(c) = AacConfig::parse(&asc) {
                        t.info = Some(TrackInfo::audio(
                            CodecConfig::Aac {
                                asc: Bytes::copy_from_slice(&asc),
                            },
                            c.sample_rate,
                            c.channels as u16,
                        ));
                    }
                }
                for (i, f) in frames.into_iter().enumerate() {
                    made.push((f, true, i as i64 * 1024));
                }
            }
        }
        let Some(info) = &t.info else {
            return;
        };
        let (scale, rate) = (info.timescale, info.sample_rate.max(1) as i64);
        let shift = if ready { t.shift } else { 0 };
        let (dts0, pts0) = (t.ticks(raw_dts), t.ticks(raw_pts));
        for (data, keyframe, offset) in made {
            if !t.started {
                if !keyframe {
                    continue;
                }
                t.started = true;
            }
            let extra = offset * scale.0 as i64 / rate;
            let dts = dts0 + extra + shift;
            let pts = (pts0 + extra + shift).max(dts);
            if t.first.is_none() {
                t.first = Some((dts0 + extra) as f64 / scale.0 as f64);
            }
            self.out.push_back(Frame {
                track: index,
                dts: Timestamp::new(dts, scale),
                pts: Timestamp::new(pts, scale),
                keyframe,
                data,
            });
        }
    }
}
