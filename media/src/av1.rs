//! AV1 low-overhead bitstream (OBUs with size fields): walking OBUs, and the sequence header
//! fields an `av1C` record and a playlist need (AV1 spec §5.3, §5.5; AV1-ISOBMFF §2.3).

use crate::h264::BitReader;

pub const OBU_SEQUENCE_HEADER: u8 = 1;
pub const OBU_TEMPORAL_DELIMITER: u8 = 2;
pub const OBU_PADDING: u8 = 15;

/// One OBU of a low-overhead bitstream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Obu<'a> {
    pub obu_type: u8,
    /// The whole OBU: header, extension, size field and payload.
    pub bytes: &'a [u8],
    pub payload: &'a [u8],
}

/// The OBUs of a temporal unit; stops at the first malformed one.
pub fn obus(mut data: &[u8]) -> impl Iterator<Item = Obu<'_>> {
    std::iter::from_fn(move || {
        let header = *data.first()?;
        if header & 0x80 != 0 {
            return None; // forbidden bit
        }
        let obu_type = (header >> 3) & 0x0f;
        let mut pos = 1 + usize::from(header & 0x04 != 0);
        if header & 0x02 == 0 {
            return None; // no size field: not the low-overhead format
        }
        let (size, n) = leb128(data.get(pos..)?)?;
        pos += n;
        let end = pos.checked_add(usize::try_from(size).ok()?)?;
        let obu = Obu {
            obu_type,
            bytes: data.get(..end)?,
            payload: data.get(pos..end)?,
        };
        data = &data[end..];
        Some(obu)
    })
}

fn leb128(b: &[u8]) -> Option<(u64, usize)> {
    let mut v = 0u64;
    for (i, byte) in b.iter().take(8).enumerate() {
        v |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((v, i + 1));
        }
    }
    None
}

/// What `av1C` and the playlists need from a sequence header.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SequenceHeader {
    pub profile: u8,
    pub level: u8,
    pub tier: u8,
    pub high_bitdepth: bool,
    pub twelve_bit: bool,
    pub monochrome: bool,
    pub subsampling_x: bool,
    pub subsampling_y: bool,
    pub chroma_sample_position: u8,
    pub width: u32,
    pub height: u32,
}

impl SequenceHeader {
    /// Parses a sequence header OBU's payload.
    pub fn parse(payload: &[u8]) -> Option<SequenceHeader> {
        let mut r = BitReader::new(payload);
        let mut s = SequenceHeader {
            profile: r.bits(3)? as u8,
            ..Default::default()
        };
        let _still_picture = r.bit()?;
        let reduced = r.bit()? == 1;
        if reduced {
            s.level = r.bits(5)? as u8;
        } else {
            let timing_info = r.bit()? == 1;
            let mut decoder_model = false;
            let mut buffer_delay_bits = 0;
            if timing_info {
                r.bits(32)?; // num_units_in_display_tick
                r.bits(32)?; // time_scale
                if r.bit()? == 1 {
                    uvlc(&mut r)?; // num_ticks_per_picture_minus_1
                }
                decoder_model = r.bit()? == 1;
                if decoder_model {
                    buffer_delay_bits = r.bits(5)? + 1;
                    r.bits(32)?; // num_units_in_decoding_tick
                    r.bits(5)?; // buffer_removal_time_length_minus_1
                    r.bits(5)?; // frame_presentation_time_length_minus_1
                }
            }
            let initial_display_delay = r.bit()? == 1;
            let operating_points = r.bits(5)? + 1;
            for i in 0..operating_points {
                r.bits(12)?; // operating_point_idc
                let level = r.bits(5)? as u8;
                let tier = if level > 7 { r.bit()? as u8 } else { 0 };
                if i == 0 {
                    (s.level, s.tier) = (level, tier);
                }
                if decoder_model && r.bit()? == 1 {
                    r.bits(buffer_delay_bits)?; // decoder_buffer_delay
                    r.bits(buffer_delay_bits)?; // encoder_buffer_delay
                    r.bit()?; // low_delay_mode_flag
                }
                if initial_display_delay && r.bit()? == 1 {
                    r.bits(4)?;
                }
            }
        }
        let width_bits = r.bits(4)? + 1;
        let height_bits = r.bits(4)? + 1;
        s.width = r.bits(width_bits)? + 1;
        s.height = r.bits(height_bits)? + 1;
        if !reduced && r.bit()? == 1 {
            r.bits(4)?; // delta_frame_id_length_minus_2
            r.bits(3)?; // additional_frame_id_length_minus_1
        }
        r.bits(3)?; // use_128x128_superblock, enable_filter_intra, enable_intra_edge_filter
        if !reduced {
            r.bits(4)?; // interintra, masked compound, warped motion, dual filter
            let order_hint = r.bit()? == 1;
            if order_hint {
                r.bits(2)?; // jnt_comp, ref_frame_mvs
            }
            let force_screen_content = if r.bit()? == 1 { 2 } else { r.bit()? };
            if force_screen_content > 0 && r.bit()? == 0 {
                r.bit()?; // seq_force_integer_mv
            }
            if order_hint {
                r.bits(3)?;
            }
        }
        r.bits(3)?; // superres, cdef, restoration
                    // color_config()
        s.high_bitdepth = r.bit()? == 1;
        if s.profile == 2 && s.high_bitdepth {
            s.twelve_bit = r.bit()? == 1;
        }
        s.monochrome = s.profile != 1 && r.bit()? == 1;
        let (mut primaries, mut transfer, mut matrix) = (2, 2, 2);
        if r.bit()? == 1 {
            primaries = r.bits(8)?;
            transfer = r.bits(8)?;
            matrix = r.bits(8)?;
        }
        if s.monochrome {
            (s.subsampling_x, s.subsampling_y) = (true, true);
        } else if primaries == 1 && transfer == 13 && matrix == 0 {
            (s.subsampling_x, s.subsampling_y) = (false, false);
        } else {
            r.bit()?; // color_range
            (s.subsampling_x, s.subsampling_y) = match s.profile {
                0 => (true, true),
                1 => (false, false),
                _ if s.twelve_bit => {
                    let x = r.bit()? == 1;
                    (x, x && r.bit()? == 1)
                }
                _ => (true, false),
            };
            if s.subsampling_x && s.subsampling_y {
                s.chroma_sample_position = r.bits(2)? as u8;
            }
        }
        Some(s)
    }
}

fn uvlc(r: &mut BitReader<'_>) -> Option<u32> {
    let mut zeros = 0;
    while r.bit()? == 0 {
        zeros += 1;
        if zeros >= 32 {
            return None;
        }
    }
    Some(r.bits(zeros)? + (1u32 << zeros) - 1)
}

/// An `av1C` body (AV1-ISOBMFF §2.3.3) for a sequence header OBU (`seq_obu`, the whole OBU).
pub fn av1c_from(seq_obu: &[u8]) -> Option<Vec<u8>> {
    let obu = obus(seq_obu).next()?;
    if obu.obu_type != OBU_SEQUENCE_HEADER {
        return None;
    }
    let s = SequenceHeader::parse(obu.payload)?;
    let mut out = vec![
        0x81,
        (s.profile << 5) | (s.level & 0x1f),
        (s.tier << 7)
            | (u8::from(s.high_bitdepth) << 6)
            | (u8::from(s.twelve_bit) << 5)
            | (u8::from(s.monochrome) << 4)
            | (u8::from(s.subsampling_x) << 3)
            | (u8::from(s.subsampling_y) << 2)
            | (s.chroma_sample_position & 3),
        0,
    ];
    out.extend_from_slice(obu.bytes);
    Some(out)
}

/// The sequence header in an `av1C` body's configOBUs, if it carries one.
pub fn sequence_header_from_av1c(av1c: &[u8]) -> Option<SequenceHeader> {
    obus(av1c.get(4..)?)
        .find(|o| o.obu_type == OBU_SEQUENCE_HEADER)
        .and_then(|o| SequenceHeader::parse(o.payload))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A temporal delimiter and the sequence header SVT-AV1 1.4 writes for 1280x720 8-bit 4:2:0
    /// (`ffmpeg -f lavfi -i testsrc2=size=1280x720 -c:v libsvtav1 -f obu`).
    const TU: &[u8] = &[
        0x12, 0x00, 0x0a, 0x0b, 0x00, 0x00, 0x00, 0x2d, 0x4c, 0xff, 0xb3, 0xcf, 0xbf, 0x90, 0x04,
    ];

    #[test]
    fn walks_obus_and_reads_the_sequence_header() {
        let all: Vec<Obu> = obus(TU).collect();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].obu_type, OBU_TEMPORAL_DELIMITER);
        assert_eq!(all[1].obu_type, OBU_SEQUENCE_HEADER);
        let s = SequenceHeader::parse(all[1].payload).unwrap();
        assert_eq!((s.profile, s.width, s.height), (0, 1280, 720));
        assert_eq!((s.level, s.tier), (5, 0), "{s:?}");
        assert!(s.subsampling_x && s.subsampling_y && !s.high_bitdepth);
        let av1c = av1c_from(all[1].bytes).unwrap();
        assert_eq!(av1c[0], 0x81);
        assert_eq!(&av1c[4..], all[1].bytes);
        assert_eq!(sequence_header_from_av1c(&av1c), Some(s));
    }

    #[test]
    fn malformed_input_is_not_an_obu() {
        assert_eq!(obus(&[0x80, 0]).count(), 0, "forbidden bit");
        assert_eq!(obus(&[0x0a, 0x05, 1]).count(), 0, "truncated");
        assert_eq!(obus(&[0x08, 1]).count(), 0, "no size field");
        assert!(SequenceHeader::parse(&[]).is_none());
        assert!(av1c_from(&[0x12, 0]).is_none());
    }
}
