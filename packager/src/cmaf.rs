//! CMAF boxes: one init segment per track and `moof`+`mdat` fragments, written with
//! `mp4-atom` (which writes `mvex`/`trex`, `tfdt` and `trun` with composition offsets).

use bytes::{BufMut, Bytes, BytesMut};
use media::{CodecConfig, TrackInfo};

#[derive(Debug, thiserror::Error)]
pub enum CmafError {
    #[error("writing {what}: {source}")]
    Encode {
        what: &'static str,
        source: mp4_atom::Error,
    },
    #[error("bad {0} decoder configuration: {1}")]
    Config(&'static str, mp4_atom::Error),
}

/// One sample of a fragment. Durations and offsets are in the track's timescale.
#[derive(Clone, Debug)]
pub struct Sample {
    pub duration: u32,
    pub cts_offset: i32,
    pub keyframe: bool,
    pub data: Bytes,
}

/// sample_depends_on=2 (I-frame) for sync samples; non-sync + depends_on=1 otherwise.
const SYNC_FLAGS: u32 = 0x0200_0000;
const NON_SYNC_FLAGS: u32 = 0x0101_0000;

fn enc(what: &'static str) -> impl FnOnce(mp4_atom::Error) -> CmafError {
    move |source| CmafError::Encode { what, source }
}

/// `ftyp` + `moov` for one track (track id 1), as CMAF wants one track per file.
pub fn init_segment(track: &TrackInfo) -> Result<Bytes, CmafError> {
    use mp4_atom::*;
    let track_id = 1;
    let timescale = track.timescale.0;
    let (handler, codec, vmhd, smhd) = match &track.codec {
        CodecConfig::H264 { avcc } => {
            let avcc =
                Avcc::decode_body(&mut avcc.as_ref()).map_err(|e| CmafError::Config("avcC", e))?;
            let c: Codec = Avc1 {
                visual: visual(track),
                avcc,
                ..Default::default()
            }
            .into();
            (b"vide", c, Some(Vmhd::default()), None)
        }
        CodecConfig::H265 { hvcc } => {
            let hvcc =
                Hvcc::decode_body(&mut hvcc.as_ref()).map_err(|e| CmafError::Config("hvcC", e))?;
            let c: Codec = Hvc1 {
                visual: visual(track),
                hvcc,
                ..Default::default()
            }
            .into();
            (b"vide", c, Some(Vmhd::default()), None)
        }
        CodecConfig::Av1 { av1c } => {
            let av1c =
                Av1c::decode_body(&mut av1c.as_ref()).map_err(|e| CmafError::Config("av1C", e))?;
            let c: Codec = Av01 {
                visual: visual(track),
                av1c,
                ..Default::default()
            }
            .into();
            (b"vide", c, Some(Vmhd::default()), None)
        }
        CodecConfig::Vp9 { vpcc } => {
            let v = |i: usize| vpcc.get(i).copied().unwrap_or(0);
            let c: Codec = Vp09 {
                visual: visual(track),
                vpcc: VpcC {
                    profile: v(0),
                    level: v(1),
                    bit_depth: v(2) >> 4,
                    chroma_subsampling: (v(2) >> 1) & 7,
                    video_full_range_flag: v(2) & 1 == 1,
                    color_primaries: v(3),
                    transfer_characteristics: v(4),
                    matrix_coefficients: v(5),
                    codec_initialization_data: Vec::new(),
                },
                ..Default::default()
            }
            .into();
            (b"vide", c, Some(Vmhd::default()), None)
        }
        CodecConfig::Aac { asc } => {
            let (profile, freq_index, chan_conf) = media::codec::AacConfig::parse(asc)
                .map(|c| {
                    (
                        c.object_type,
                        media::codec::AacConfig::freq_index(c.sample_rate),
                        c.channels,
                    )
                })
                .unwrap_or((2, 4, 2));
            let bitrate = track.bitrate_hint.unwrap_or(128_000);
            let c: Codec = Mp4a {
                audio: audio(track),
                esds: Esds {
                    es_desc: esds::EsDescriptor {
                        es_id: track_id as u16,
                        dec_config: esds::DecoderConfig {
                            object_type_indication: 0x40,
                            stream_type: 5,
                            up_stream: 0,
                            max_bitrate: bitrate,
                            avg_bitrate: bitrate,
                            dec_specific: Some(esds::DecoderSpecific {
                                profile,
                                freq_index,
                                chan_conf,
                                raw: asc.to_vec(),
                            }),
                            ..Default::default()
                        },
                        ..Default::default()
                    },
                },
                btrt: None,
                taic: None,
            }
            .into();
            (b"soun", c, None, Some(Smhd::default()))
        }
        CodecConfig::Opus {
            channels,
            pre_skip,
            input_sample_rate,
        } => {
            let c: Codec = Opus {
                audio: audio(track),
                dops: Dops {
                    output_channel_count: *channels,
                    pre_skip: *pre_skip,
                    input_sample_rate: *input_sample_rate,
                    output_gain: 0,
                    channel_mapping: None,
                },
                btrt: None,
            }
            .into();
            (b"soun", c, None, Some(Smhd::default()))
        }
    };
    let is_video = vmhd.is_some();
    let mut moov = Moov {
        mvhd: Mvhd {
            timescale: 1000,
            next_track_id: track_id + 1,
            ..Default::default()
        },
        mvex: Some(Mvex {
            mehd: None,
            trex: vec![Trex {
                track_id,
                default_sample_description_index: 1,
                default_sample_duration: 0,
                default_sample_size: 0,
                default_sample_flags: 0,
            }],
        }),
        trak: vec![Trak {
            tkhd: Tkhd {
                track_id,
                enabled: true,
                in_movie: true,
                volume: if is_video { 0.into() } else { 1.into() },
                width: (track.width as u16).into(),
                height: (track.height as u16).into(),
                ..Default::default()
            },
            mdia: Mdia {
                mdhd: Mdhd {
                    timescale,
                    language: "und".into(),
                    ..Default::default()
                },
                hdlr: Hdlr {
                    handler: handler.into(),
                    name: if is_video {
                        "Estuary video"
                    } else {
                        "Estuary audio"
                    }
                    .into(),
                },
                minf: Minf {
                    vmhd,
                    smhd,
                    dinf: Dinf {
                        dref: Dref {
                            entries: vec![Url::default().into()],
                        },
                    },
                    stbl: Stbl {
                        stsd: Stsd {
                            codecs: vec![codec],
                        },
                        stco: Some(Stco::default()),
                        ..Default::default()
                    },
                    ..Default::default()
                },
            },
            ..Default::default()
        }],
        ..Default::default()
    };
    let ftyp = Ftyp {
        major_brand: b"iso6".into(),
        minor_version: 0,
        compatible_brands: vec![
            b"iso6".into(),
            b"cmfc".into(),
            b"mp41".into(),
            b"dash".into(),
        ],
    };
    let mut buf = Vec::with_capacity(1024);
    ftyp.encode(&mut buf).map_err(enc("ftyp"))?;
    // ISO/IEC 14496-12 orders moov's children mvhd, trak, mvex; mp4-atom writes mvex before
    // trak, so mvex is written after the rest and moov's size grows by it.
    let mvex = moov.mvex.take();
    let moov_at = buf.len();
    moov.encode(&mut buf).map_err(enc("moov"))?;
    if let Some(mvex) = mvex {
        mvex.encode(&mut buf).map_err(enc("mvex"))?;
        let size = u32::try_from(buf.len() - moov_at).expect("an init segment is small");
        buf[moov_at..moov_at + 4].copy_from_slice(&size.to_be_bytes());
    }
    Ok(buf.into())
}

fn visual(track: &TrackInfo) -> mp4_atom::Visual {
    mp4_atom::Visual {
        width: track.width as u16,
        height: track.height as u16,
        ..Default::default()
    }
}

fn audio(track: &TrackInfo) -> mp4_atom::Audio {
    mp4_atom::Audio {
        data_reference_index: 1,
        channel_count: track.channels.max(1),
        sample_size: 16,
        sample_rate: (track.sample_rate.min(u16::MAX as u32) as u16).into(),
    }
}

/// One CMAF chunk: `moof` (`mfhd`, `traf` with `tfhd`, `tfdt`, `trun`) then `mdat`.
/// The payload is copied once, here, into the chunk that HTTP later serves without copying.
pub fn fragment(sequence: u32, base_dts: u64, samples: &[Sample]) -> Result<Bytes, CmafError> {
    use mp4_atom::*;
    let entries = samples
        .iter()
        .map(|s| TrunEntry {
            duration: Some(s.duration),
            size: Some(s.data.len() as u32),
            flags: Some(if s.keyframe {
                SYNC_FLAGS
            } else {
                NON_SYNC_FLAGS
            }),
            cts: Some(s.cts_offset as i64),
        })
        .collect();
    let mut moof = Moof {
        mfhd: Mfhd {
            sequence_number: sequence,
        },
        traf: vec![Traf {
            tfhd: Tfhd {
                track_id: 1,
                default_base_is_moof: true,
                ..Default::default()
            },
            tfdt: Some(Tfdt {
                base_media_decode_time: base_dts,
            }),
            trun: vec![Trun {
                data_offset: Some(0),
                samples: TrunSamples::Explicit(entries),
            }],
            ..Default::default()
        }],
    };
    let mut probe = Vec::with_capacity(256 + samples.len() * 16);
    moof.encode(&mut probe).map_err(enc("moof"))?;
    // data_offset is relative to the start of moof; the payload begins after the mdat header.
    moof.traf[0].trun[0].data_offset = Some(probe.len() as i32 + 8);
    let payload: usize = samples.iter().map(|s| s.data.len()).sum();
    let mut out = BytesMut::with_capacity(probe.len() + 8 + payload);
    // Encoded twice, since data_offset depends on the moof's own size; both are small.
    moof.encode(&mut out).map_err(enc("moof"))?;
    out.put_u32((8 + payload) as u32);
    out.put_slice(b"mdat");
    for s in samples {
        out.put_slice(&s.data);
    }
    Ok(out.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;
    use mp4_atom::{Any, Decode};

    const AVCC: &[u8] = &[
        1, 100, 0, 31, 0xff, 0xe1, 0, 28, 103, 100, 0, 31, 172, 217, 128, 80, 5, 187, 1, 106, 2, 2,
        2, 128, 0, 0, 3, 0, 128, 0, 0, 30, 7, 140, 24, 205, 1, 0, 5, 104, 233, 123, 44, 139,
    ];

    #[test]
    fn init_roundtrips() {
        let t = TrackInfo::video(CodecConfig::H264 {
            avcc: Bytes::from_static(AVCC),
        });
        let init = init_segment(&t).unwrap();
        let mut cur = std::io::Cursor::new(init.as_ref());
        assert!(matches!(Any::decode(&mut cur).unwrap(), Any::Ftyp(_)));
        let Any::Moov(moov) = Any::decode(&mut cur).unwrap() else {
            panic!("no moov")
        };
        assert_eq!(moov.mvex.unwrap().trex.len(), 1);
        assert_eq!(moov.trak[0].mdia.mdhd.timescale, 90_000);
        // Children in the standard's order: mvhd, trak, mvex.
        let moov_at = u32::from_be_bytes(init[..4].try_into().unwrap()) as usize;
        let mut kinds = Vec::new();
        let mut at = moov_at + 8;
        while at < init.len() {
            kinds.push(String::from_utf8_lossy(&init[at + 4..at + 8]).to_string());
            at += u32::from_be_bytes(init[at..at + 4].try_into().unwrap()) as usize;
        }
        assert_eq!(kinds, ["mvhd", "trak", "mvex"]);
        assert_eq!(moov.trak[0].tkhd.width, 1280.into());

        let a = TrackInfo::audio(
            CodecConfig::Aac {
                asc: Bytes::from_static(&[0x12, 0x10]),
            },
            44100,
            2,
        );
        let init = init_segment(&a).unwrap();
        let mut cur = std::io::Cursor::new(init.as_ref());
        Any::decode(&mut cur).unwrap();
        let Any::Moov(moov) = Any::decode(&mut cur).unwrap() else {
            panic!("no moov")
        };
        assert_eq!(moov.trak[0].mdia.mdhd.timescale, 44100);
    }

    #[test]
    fn fragment_offsets_point_at_payload() {
        let samples = vec![
            Sample {
                duration: 3000,
                cts_offset: 6000,
                keyframe: true,
                data: Bytes::from_static(b"abc"),
            },
            Sample {
                duration: 3000,
                cts_offset: -3000,
                keyframe: false,
                data: Bytes::from_static(b"de"),
            },
        ];
        let f = fragment(7, 90_000, &samples).unwrap();
        let mut cur = std::io::Cursor::new(f.as_ref());
        let Any::Moof(moof) = Any::decode(&mut cur).unwrap() else {
            panic!("no moof")
        };
        let off = moof.traf[0].trun[0].data_offset.unwrap() as usize;
        assert_eq!(&f[off..], b"abcde");
        assert_eq!(moof.mfhd.sequence_number, 7);
        assert_eq!(
            moof.traf[0].tfdt.as_ref().unwrap().base_media_decode_time,
            90_000
        );
        let Any::Mdat(mdat) = Any::decode(&mut cur).unwrap() else {
            panic!("no mdat")
        };
        assert_eq!(mdat.data, b"abcde");
    }
}
