//! Sans-IO parsing of RTMP audio and video message bodies: FLV tag bodies as OBS, ffmpeg and
//! most encoders send them, and Enhanced RTMP (v1) FourCC video for HEVC and AV1.

use bytes::Bytes;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FlvError {
    #[error("empty {0} message")]
    Empty(&'static str),
    #[error("{what} message too short ({len} bytes)")]
    Truncated { what: &'static str, len: usize },
    #[error("unsupported video codec id {0}")]
    UnsupportedVideoCodec(u8),
    #[error("unsupported video FourCC {0:?}")]
    UnsupportedFourCc(String),
    #[error("unsupported audio format {0}")]
    UnsupportedAudio(u8),
    #[error("invalid {0} decoder configuration")]
    BadConfig(&'static str),
    #[error("unsupported Enhanced RTMP packet type {0}")]
    UnsupportedPacketType(u8),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlvVideoCodec {
    H264,
    H265,
    Av1,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VideoMessage {
    /// A decoder configuration record (avcC / hvcC / av1C body).
    SequenceHeader {
        codec: FlvVideoCodec,
        config: Bytes,
    },
    /// One access unit. `cts` is the composition time offset in milliseconds.
    Frame {
        codec: FlvVideoCodec,
        keyframe: bool,
        cts: i32,
        data: Bytes,
    },
    EndOfSequence,
    /// Something valid that carries no media for us (command frames, metadata packets).
    Ignored,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AudioMessage {
    /// AudioSpecificConfig.
    AacConfig(Bytes),
    AacFrame(Bytes),
}

fn si24(b: &[u8]) -> i32 {
    let v = ((b[0] as i32) << 16) | ((b[1] as i32) << 8) | b[2] as i32;
    (v << 8) >> 8
}

pub fn parse_video(body: &Bytes) -> Result<VideoMessage, FlvError> {
    let b0 = *body.first().ok_or(FlvError::Empty("video"))?;
    let frame_type = (b0 >> 4) & 0x07;
    if b0 & 0x80 != 0 {
        // Enhanced RTMP: [ex-header bit, frame type:3, packet type:4] [FourCC] ...
        let packet_type = b0 & 0x0f;
        if frame_type == 5 && packet_type != 4 {
            return Ok(VideoMessage::Ignored);
        }
        if body.len() < 5 {
            return Err(FlvError::Truncated {
                what: "video",
                len: body.len(),
            });
        }
        let codec = match &body[1..5] {
            b"avc1" => FlvVideoCodec::H264,
            b"hvc1" => FlvVideoCodec::H265,
            b"av01" => FlvVideoCodec::Av1,
            other => {
                return Err(FlvError::UnsupportedFourCc(
                    String::from_utf8_lossy(other).into(),
                ))
            }
        };
        let keyframe = frame_type == 1;
        return match packet_type {
            0 => Ok(VideoMessage::SequenceHeader {
                codec,
                config: body.slice(5..),
            }),
            1 if codec != FlvVideoCodec::Av1 => {
                if body.len() < 8 {
                    return Err(FlvError::Truncated {
                        what: "video",
                        len: body.len(),
                    });
                }
                Ok(VideoMessage::Frame {
                    codec,
                    keyframe,
                    cts: si24(&body[5..8]),
                    data: body.slice(8..),
                })
            }
            1 | 3 => Ok(VideoMessage::Frame {
                codec,
                keyframe,
                cts: 0,
                data: body.slice(5..),
            }),
            2 => Ok(VideoMessage::EndOfSequence),
            4 | 5 => Ok(VideoMessage::Ignored),
            other => Err(FlvError::UnsupportedPacketType(other)),
        };
    }
    let codec = match b0 & 0x0f {
        7 => FlvVideoCodec::H264,
        // Not in the FLV spec, but what pre-Enhanced-RTMP HEVC encoders (and nginx forks) use.
        12 => FlvVideoCodec::H265,
        other => return Err(FlvError::UnsupportedVideoCodec(other)),
    };
    if frame_type == 5 {
        return Ok(VideoMessage::Ignored);
    }
    if body.len() < 5 {
        return Err(FlvError::Truncated {
            what: "video",
            len: body.len(),
        });
    }
    match body[1] {
        0 => Ok(VideoMessage::SequenceHeader {
            codec,
            config: body.slice(5..),
        }),
        1 => Ok(VideoMessage::Frame {
            codec,
            keyframe: frame_type == 1,
            cts: si24(&body[2..5]),
            data: body.slice(5..),
        }),
        2 => Ok(VideoMessage::EndOfSequence),
        other => Err(FlvError::UnsupportedPacketType(other)),
    }
}

pub fn parse_audio(body: &Bytes) -> Result<AudioMessage, FlvError> {
    let b0 = *body.first().ok_or(FlvError::Empty("audio"))?;
    let format = b0 >> 4;
    if format != 10 {
        return Err(FlvError::UnsupportedAudio(format));
    }
    if body.len() < 2 {
        return Err(FlvError::Truncated {
            what: "audio",
            len: body.len(),
        });
    }
    Ok(match body[1] {
        0 => AudioMessage::AacConfig(body.slice(2..)),
        _ => AudioMessage::AacFrame(body.slice(2..)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_avc() {
        let b = Bytes::from_static(&[0x17, 1, 0xff, 0xff, 0xdf, 0, 0, 0, 1, 0x65]);
        assert_eq!(
            parse_video(&b).unwrap(),
            VideoMessage::Frame {
                codec: FlvVideoCodec::H264,
                keyframe: true,
                cts: -33,
                data: Bytes::from_static(&[0, 0, 0, 1, 0x65])
            }
        );
        let h = Bytes::from_static(&[0x17, 0, 0, 0, 0, 1, 0x64]);
        assert!(matches!(
            parse_video(&h).unwrap(),
            VideoMessage::SequenceHeader { .. }
        ));
    }

    #[test]
    fn enhanced_hevc_and_av1() {
        let b = Bytes::from_static(&[0x90, b'h', b'v', b'c', b'1', 1, 2, 3]);
        assert!(matches!(
            parse_video(&b).unwrap(),
            VideoMessage::SequenceHeader {
                codec: FlvVideoCodec::H265,
                ..
            }
        ));
        let f = Bytes::from_static(&[0x91, b'h', b'v', b'c', b'1', 0, 0, 40, 9]);
        assert!(matches!(
            parse_video(&f).unwrap(),
            VideoMessage::Frame {
                codec: FlvVideoCodec::H265,
                keyframe: true,
                cts: 40,
                ..
            }
        ));
        let a = Bytes::from_static(&[0xa3, b'a', b'v', b'0', b'1', 0x12, 0]);
        assert!(matches!(
            parse_video(&a).unwrap(),
            VideoMessage::Frame {
                codec: FlvVideoCodec::Av1,
                keyframe: false,
                cts: 0,
                ..
            }
        ));
    }

    #[test]
    fn bad_input_is_an_error() {
        assert!(parse_video(&Bytes::new()).is_err());
        assert!(parse_video(&Bytes::from_static(&[0x17, 1])).is_err());
        assert!(parse_video(&Bytes::from_static(&[0x12, 1, 0, 0, 0])).is_err());
        assert!(parse_video(&Bytes::from_static(&[0x90, b'x'])).is_err());
        assert!(parse_audio(&Bytes::from_static(&[0x2f, 1])).is_err());
        assert!(parse_audio(&Bytes::from_static(&[0xaf])).is_err());
    }
}
