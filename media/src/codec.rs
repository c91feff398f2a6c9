//! Tracks and codec configurations, and the RFC 6381 codec strings players need.

use bytes::Bytes;

use crate::h264;
use crate::time::Timescale;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TrackKind {
    Video,
    Audio,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VideoCodec {
    H264,
    H265,
    Av1,
    Vp9,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AudioCodec {
    Aac,
    Opus,
}

/// A codec and the configuration record a decoder needs before the first frame.
///
/// Video records are the ISO-BMFF ones (`avcC`, `hvcC`, `av1C` bodies), which is what RTMP
/// and Enhanced RTMP carry and what CMAF wants; frames are the matching length-prefixed NAL
/// units (or low-overhead OBUs for AV1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CodecConfig {
    H264 {
        avcc: Bytes,
    },
    H265 {
        hvcc: Bytes,
    },
    Av1 {
        av1c: Bytes,
    },
    /// The `vpcC` record after its version and flags ([`crate::vp9::Vp9Keyframe::vpcc`]).
    Vp9 {
        vpcc: Bytes,
    },
    /// AudioSpecificConfig (ISO 14496-3).
    Aac {
        asc: Bytes,
    },
    Opus {
        channels: u8,
        pre_skip: u16,
        input_sample_rate: u32,
    },
}

impl CodecConfig {
    pub fn kind(&self) -> TrackKind {
        match self {
            CodecConfig::H264 { .. }
            | CodecConfig::H265 { .. }
            | CodecConfig::Av1 { .. }
            | CodecConfig::Vp9 { .. } => TrackKind::Video,
            CodecConfig::Aac { .. } | CodecConfig::Opus { .. } => TrackKind::Audio,
        }
    }

    /// The RFC 6381 `CODECS` value (`avc1.64001f`, `mp4a.40.2`, `hvc1.1.6.L93.B0`, ...).
    pub fn codec_string(&self) -> String {
        match self {
            CodecConfig::H264 { avcc } => match avcc.get(1..4) {
                Some(p) => format!("avc1.{:02x}{:02x}{:02x}", p[0], p[1], p[2]),
                None => "avc1".into(),
            },
            CodecConfig::H265 { hvcc } => hevc_codec_string(hvcc),
            CodecConfig::Av1 { av1c } => av1_codec_string(av1c),
            CodecConfig::Vp9 { vpcc } => crate::vp9::codec_string(vpcc),
            CodecConfig::Aac { asc } => match AacConfig::parse(asc) {
                Some(c) => format!("mp4a.40.{}", c.object_type),
                None => "mp4a.40.2".into(),
            },
            CodecConfig::Opus { .. } => "opus".into(),
        }
    }
}

fn hevc_codec_string(hvcc: &[u8]) -> String {
    if hvcc.len() < 13 {
        return "hvc1".into();
    }
    let space = match hvcc[1] >> 6 {
        1 => "A",
        2 => "B",
        3 => "C",
        _ => "",
    };
    let tier = if hvcc[1] & 0x20 != 0 { 'H' } else { 'L' };
    let profile = hvcc[1] & 0x1f;
    let compat = u32::from_be_bytes([hvcc[2], hvcc[3], hvcc[4], hvcc[5]]).reverse_bits();
    let level = hvcc[12];
    let mut constraints: Vec<u8> = hvcc[6..12].to_vec();
    while constraints.last() == Some(&0) {
        constraints.pop();
    }
    let mut s = format!("hvc1.{space}{profile}.{compat:X}.{tier}{level}");
    for b in constraints {
        s.push_str(&format!(".{b:X}"));
    }
    s
}

fn av1_codec_string(av1c: &[u8]) -> String {
    if av1c.len() < 3 {
        return "av01".into();
    }
    let profile = av1c[1] >> 5;
    let level = av1c[1] & 0x1f;
    let tier = if av1c[2] & 0x80 != 0 { 'H' } else { 'M' };
    let depth = match (av1c[2] & 0x40 != 0, av1c[2] & 0x20 != 0) {
        (true, true) => 12,
        (true, false) => 10,
        _ => 8,
    };
    format!("av01.{profile}.{level:02}{tier}.{depth:02}")
}

/// The fields of an AudioSpecificConfig that the packager and playlists need.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AacConfig {
    pub object_type: u8,
    pub sample_rate: u32,
    pub channels: u8,
}

const AAC_RATES: [u32; 13] = [
    96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
];

impl AacConfig {
    /// The samplingFrequencyIndex for a rate, or 15 (rate written out) for any other.
    pub fn freq_index(rate: u32) -> u8 {
        AAC_RATES.iter().position(|r| *r == rate).unwrap_or(15) as u8
    }

    pub fn parse(asc: &[u8]) -> Option<AacConfig> {
        let mut r = h264::BitReader::new(asc);
        let mut object_type = r.bits(5)? as u8;
        if object_type == 31 {
            object_type = 32 + r.bits(6)? as u8;
        }
        let idx = r.bits(4)? as usize;
        let sample_rate = if idx == 15 {
            r.bits(24)?
        } else {
            *AAC_RATES.get(idx)?
        };
        let channels = r.bits(4)? as u8;
        Some(AacConfig {
            object_type,
            sample_rate,
            channels,
        })
    }
}

/// Everything a consumer needs to know about one track before its first frame.
#[derive(Clone, Debug, PartialEq)]
pub struct TrackInfo {
    pub codec: CodecConfig,
    pub timescale: Timescale,
    /// Coded picture size, for video.
    pub width: u32,
    pub height: u32,
    /// Sample rate and channel count, for audio.
    pub sample_rate: u32,
    pub channels: u16,
    /// What the publisher announced, in bits per second, if anything.
    pub bitrate_hint: Option<u32>,
    /// What the publisher announced, in frames per second, if anything.
    pub frame_rate_hint: Option<f64>,
}

impl TrackInfo {
    pub fn kind(&self) -> TrackKind {
        self.codec.kind()
    }

    /// A video track from a codec record; the picture size comes from the SPS where the
    /// record has one.
    pub fn video(codec: CodecConfig) -> TrackInfo {
        let (width, height) = match &codec {
            CodecConfig::H264 { avcc } => h264::AvcConfig::parse(avcc)
                .and_then(|c| c.sps.first().and_then(|s| h264::Sps::parse(s)))
                .map(|s| (s.width, s.height))
                .unwrap_or((0, 0)),
            CodecConfig::H265 { hvcc } => crate::h265::sps_from_hvcc(hvcc)
                .map(|s| (s.width, s.height))
                .unwrap_or((0, 0)),
            CodecConfig::Av1 { av1c } => crate::av1::sequence_header_from_av1c(av1c)
                .map(|s| (s.width, s.height))
                .unwrap_or((0, 0)),
            _ => (0, 0),
        };
        TrackInfo {
            codec,
            timescale: Timescale::VIDEO,
            width,
            height,
            sample_rate: 0,
            channels: 0,
            bitrate_hint: None,
            frame_rate_hint: None,
        }
    }

    /// An audio track whose timescale is its sample rate.
    pub fn audio(codec: CodecConfig, sample_rate: u32, channels: u16) -> TrackInfo {
        TrackInfo {
            codec,
            timescale: Timescale(sample_rate.max(1)),
            width: 0,
            height: 0,
            sample_rate,
            channels,
            bitrate_hint: None,
            frame_rate_hint: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codec_strings() {
        let avcc = Bytes::from_static(&[1, 0x64, 0, 0x1f, 0xff]);
        assert_eq!(CodecConfig::H264 { avcc }.codec_string(), "avc1.64001f");
        let asc = Bytes::from_static(&[0x12, 0x10]);
        assert_eq!(
            CodecConfig::Aac { asc: asc.clone() }.codec_string(),
            "mp4a.40.2"
        );
        let c = AacConfig::parse(&asc).unwrap();
        assert_eq!((c.sample_rate, c.channels), (44100, 2));
        // Main profile, level 3.1, from a typical x265 hvcC.
        let mut hvcc = vec![1u8, 0x01, 0x60, 0, 0, 0, 0x90, 0, 0, 0, 0, 0, 93];
        hvcc.extend_from_slice(&[0; 10]);
        assert_eq!(
            CodecConfig::H265 { hvcc: hvcc.into() }.codec_string(),
            "hvc1.1.6.L93.90"
        );
        let av1c = Bytes::from_static(&[0x81, 0x08, 0x0c, 0]);
        assert_eq!(CodecConfig::Av1 { av1c }.codec_string(), "av01.0.08M.08");
    }
}
