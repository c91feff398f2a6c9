//! Just enough H.265 for the packager: the SPS fields an `hvcC` record and a playlist need, and
//! building that record from VPS/SPS/PPS (what MPEG-TS carries in band).

use crate::h264::{unescape_rbsp, BitReader};

pub const NAL_VPS: u8 = 32;
pub const NAL_SPS: u8 = 33;
pub const NAL_PPS: u8 = 34;
pub const NAL_AUD: u8 = 35;

/// The NAL unit type from a NAL's two-byte header.
pub fn nal_type(nal: &[u8]) -> u8 {
    nal.first().map(|b| (b >> 1) & 0x3f).unwrap_or(0)
}

/// Intra random access point pictures (BLA, IDR, CRA): where decoding can start.
pub fn is_irap(nal_type: u8) -> bool {
    (16..=23).contains(&nal_type)
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sps {
    pub profile_space: u8,
    pub tier: bool,
    pub profile_idc: u8,
    pub compatibility: [u8; 4],
    pub constraints: [u8; 6],
    pub level_idc: u8,
    pub max_sub_layers: u8,
    pub temporal_id_nesting: bool,
    pub chroma_format_idc: u8,
    pub bit_depth_luma: u8,
    pub bit_depth_chroma: u8,
    pub width: u32,
    pub height: u32,
}

impl Sps {
    /// Parses an SPS NAL unit (with its two-byte header).
    pub fn parse(nal: &[u8]) -> Option<Sps> {
        if nal.len() < 15 || nal_type(nal) != NAL_SPS {
            return None;
        }
        let rbsp = unescape_rbsp(&nal[2..]);
        let mut r = BitReader::new(&rbsp);
        r.bits(4)?;
        let max_sub_layers_minus1 = r.bits(3)? as u8;
        let temporal_id_nesting = r.bit()? == 1;
        let profile_space = r.bits(2)? as u8;
        let tier = r.bit()? == 1;
        let profile_idc = r.bits(5)? as u8;
        let mut compatibility = [0u8; 4];
        for b in &mut compatibility {
            *b = r.bits(8)? as u8;
        }
        let mut constraints = [0u8; 6];
        for b in &mut constraints {
            *b = r.bits(8)? as u8;
        }
        let level_idc = r.bits(8)? as u8;
        let mut sub_profile = [false; 8];
        let mut sub_level = [false; 8];
        for i in 0..max_sub_layers_minus1 as usize {
            sub_profile[i] = r.bit()? == 1;
            sub_level[i] = r.bit()? == 1;
        }
        if max_sub_layers_minus1 > 0 {
            for _ in max_sub_layers_minus1..8 {
                r.bits(2)?;
            }
        }
        for i in 0..max_sub_layers_minus1 as usize {
            if sub_profile[i] {
                r.bits(32)?;
                r.bits(32)?;
                r.bits(24)?;
            }
            if sub_level[i] {
                r.bits(8)?;
            }
        }
        r.ue()?;
        let chroma_format_idc = r.ue()?;
        if chroma_format_idc > 3 {
            return None;
        }
        if chroma_format_idc == 3 {
            r.bit()?;
        }
        let mut width = r.ue()?;
        let mut height = r.ue()?;
        if r.bit()? == 1 {
            let (sub_w, sub_h) = match chroma_format_idc {
                1 => (2, 2),
                2 => (2, 1),
                _ => (1, 1),
            };
            let (l, rt, t, b) = (r.ue()?, r.ue()?, r.ue()?, r.ue()?);
            width = width.checked_sub(sub_w * (l + rt))?;
            height = height.checked_sub(sub_h * (t + b))?;
        }
        let bit_depth_luma = r.ue()? as u8 + 8;
        let bit_depth_chroma = r.ue()? as u8 + 8;
        Some(Sps {
            profile_space,
            tier,
            profile_idc,
            compatibility,
            constraints,
            level_idc,
            max_sub_layers: max_sub_layers_minus1 + 1,
            temporal_id_nesting,
            chroma_format_idc: chroma_format_idc as u8,
            bit_depth_luma,
            bit_depth_chroma,
            width,
            height,
        })
    }
}

/// An `hvcC` body (ISO 14496-15 §8.3.3.1) for one VPS, SPS and PPS, with 4-byte NAL lengths.
pub fn hvcc_from(vps: &[u8], sps: &[u8], pps: &[u8]) -> Option<Vec<u8>> {
    let s = Sps::parse(sps)?;
    let mut v = vec![
        1,
        s.profile_space << 6 | (s.tier as u8) << 5 | s.profile_idc,
    ];
    v.extend_from_slice(&s.compatibility);
    v.extend_from_slice(&s.constraints);
    v.push(s.level_idc);
    v.extend_from_slice(&[0xf0, 0x00, 0xfc]);
    v.push(0xfc | s.chroma_format_idc);
    v.push(0xf8 | (s.bit_depth_luma - 8));
    v.push(0xf8 | (s.bit_depth_chroma - 8));
    v.extend_from_slice(&[0, 0]);
    v.push((s.max_sub_layers.min(7)) << 3 | (s.temporal_id_nesting as u8) << 2 | 3);
    v.push(3);
    for (t, nal) in [(NAL_VPS, vps), (NAL_SPS, sps), (NAL_PPS, pps)] {
        if nal.len() > u16::MAX as usize {
            return None;
        }
        v.push(0x80 | t);
        v.extend_from_slice(&1u16.to_be_bytes());
        v.extend_from_slice(&(nal.len() as u16).to_be_bytes());
        v.extend_from_slice(nal);
    }
    Some(v)
}

/// The SPS inside an `hvcC` body, if any.
pub fn sps_from_hvcc(hvcc: &[u8]) -> Option<Sps> {
    let mut pos = 23;
    let arrays = *hvcc.get(22)?;
    for _ in 0..arrays {
        let t = hvcc.get(pos)? & 0x3f;
        let n = u16::from_be_bytes([*hvcc.get(pos + 1)?, *hvcc.get(pos + 2)?]);
        pos += 3;
        for _ in 0..n {
            let len = u16::from_be_bytes([*hvcc.get(pos)?, *hvcc.get(pos + 1)?]) as usize;
            let nal = hvcc.get(pos + 2..pos + 2 + len)?;
            if t == NAL_SPS {
                return Sps::parse(nal);
            }
            pos += 2 + len;
        }
    }
    None
}
