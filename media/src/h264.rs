//! Just enough H.264 parsing for playlists and the packager: the `avcC` record, the picture
//! size and profile from an SPS, and the bit reader H.265 and AAC share. Annex B streams are
//! in [`crate::annexb`].

/// An MSB-first bit reader with Exp-Golomb codes; every read is checked.
pub struct BitReader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> BitReader<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Self { data, pos: 0 }
    }

    pub fn bit(&mut self) -> Option<u32> {
        let byte = *self.data.get(self.pos / 8)?;
        let bit = (byte >> (7 - (self.pos % 8))) & 1;
        self.pos += 1;
        Some(bit as u32)
    }

    pub fn bits(&mut self, n: u32) -> Option<u32> {
        let mut v = 0u32;
        for _ in 0..n {
            v = (v << 1) | self.bit()?;
        }
        Some(v)
    }

    pub fn ue(&mut self) -> Option<u32> {
        let mut zeros = 0;
        while self.bit()? == 0 {
            zeros += 1;
            if zeros > 31 {
                return None;
            }
        }
        Some(((1u64 << zeros) - 1 + self.bits(zeros)? as u64) as u32)
    }

    pub fn se(&mut self) -> Option<i32> {
        let k = self.ue()? as i64;
        Some(if k % 2 == 1 { (k + 1) / 2 } else { -(k / 2) } as i32)
    }
}

/// Removes emulation-prevention bytes (00 00 03 → 00 00).
pub fn unescape_rbsp(nal: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(nal.len());
    let mut zeros = 0;
    for &b in nal {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        out.push(b);
    }
    out
}

/// NAL units of a sample in the ISO-BMFF form (each prefixed with its 4-byte length); stops at
/// the first length that runs past the end.
pub fn length_prefixed_nals(mut data: &[u8]) -> impl Iterator<Item = &[u8]> {
    std::iter::from_fn(move || {
        let len = u32::from_be_bytes(data.get(..4)?.try_into().ok()?) as usize;
        let nal = data.get(4..4usize.checked_add(len)?)?;
        data = &data[4 + len..];
        Some(nal)
    })
}

/// An `avcC` body for one SPS and one PPS, with 4-byte NAL lengths.
pub fn avcc_from(sps: &[u8], pps: &[u8]) -> Option<Vec<u8>> {
    if sps.len() < 4 || sps.len() > u16::MAX as usize || pps.len() > u16::MAX as usize {
        return None;
    }
    let mut v = vec![1, sps[1], sps[2], sps[3], 0xff, 0xe1];
    v.extend_from_slice(&(sps.len() as u16).to_be_bytes());
    v.extend_from_slice(sps);
    v.push(1);
    v.extend_from_slice(&(pps.len() as u16).to_be_bytes());
    v.extend_from_slice(pps);
    // High profiles carry chroma format and bit depths (ISO 14496-15 §5.3.3.1.2).
    if matches!(sps[1], 100 | 110 | 122 | 144) {
        v.extend_from_slice(&[0xfc | 1, 0xf8, 0xf8, 0]);
    }
    Some(v)
}

/// AVCDecoderConfigurationRecord (ISO 14496-15 §5.3.3.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AvcConfig {
    pub profile: u8,
    pub compatibility: u8,
    pub level: u8,
    pub length_size: u8,
    pub sps: Vec<Vec<u8>>,
    pub pps: Vec<Vec<u8>>,
}

impl AvcConfig {
    pub fn parse(b: &[u8]) -> Option<AvcConfig> {
        if b.len() < 6 || b[0] != 1 {
            return None;
        }
        let length_size = (b[4] & 3) + 1;
        let mut pos = 5;
        let read_sets = |count_mask: u8, pos: &mut usize| -> Option<Vec<Vec<u8>>> {
            let n = *b.get(*pos)? & count_mask;
            *pos += 1;
            let mut sets = Vec::new();
            for _ in 0..n {
                let len = u16::from_be_bytes([*b.get(*pos)?, *b.get(*pos + 1)?]) as usize;
                *pos += 2;
                sets.push(b.get(*pos..*pos + len)?.to_vec());
                *pos += len;
            }
            Some(sets)
        };
        let sps = read_sets(0x1f, &mut pos)?;
        let pps = read_sets(0xff, &mut pos)?;
        Some(AvcConfig {
            profile: b[1],
            compatibility: b[2],
            level: b[3],
            length_size,
            sps,
            pps,
        })
    }
}

/// The fields of a sequence parameter set that matter outside the decoder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sps {
    pub profile: u8,
    pub level: u8,
    pub width: u32,
    pub height: u32,
}

impl Sps {
    /// Parses an SPS NAL unit (with its one-byte header).
    pub fn parse(nal: &[u8]) -> Option<Sps> {
        if nal.len() < 4 || nal[0] & 0x1f != 7 {
            return None;
        }
        let rbsp = unescape_rbsp(&nal[1..]);
        let mut r = BitReader::new(&rbsp);
        let profile = r.bits(8)? as u8;
        r.bits(8)?;
        let level = r.bits(8)? as u8;
        r.ue()?;
        let mut chroma_format = 1;
        let mut separate_planes = false;
        if matches!(
            profile,
            100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135
        ) {
            chroma_format = r.ue()?;
            if chroma_format == 3 {
                separate_planes = r.bit()? == 1;
            }
            r.ue()?;
            r.ue()?;
            r.bit()?;
            if r.bit()? == 1 {
                let lists = if chroma_format == 3 { 12 } else { 8 };
                for i in 0..lists {
                    if r.bit()? == 1 {
                        let size = if i < 6 { 16 } else { 64 };
                        let (mut last, mut next) = (8i32, 8i32);
                        for _ in 0..size {
                            if next != 0 {
                                next = (last + r.se()? + 256) % 256;
                            }
                            if next != 0 {
                                last = next;
                            }
                        }
                    }
                }
            }
        }
        r.ue()?;
        match r.ue()? {
            0 => {
                r.ue()?;
            }
            1 => {
                r.bit()?;
                r.se()?;
                r.se()?;
                let n = r.ue()?;
                if n > 255 {
                    return None;
                }
                for _ in 0..n {
                    r.se()?;
                }
            }
            _ => {}
        }
        r.ue()?;
        r.bit()?;
        let width_mbs = r.ue()? as u64 + 1;
        let height_units = r.ue()? as u64 + 1;
        let frame_mbs_only = r.bit()? as u64;
        if frame_mbs_only == 0 {
            r.bit()?;
        }
        r.bit()?;
        let (mut cl, mut cr, mut ct, mut cb) = (0u64, 0u64, 0u64, 0u64);
        if r.bit()? == 1 {
            cl = r.ue()? as u64;
            cr = r.ue()? as u64;
            ct = r.ue()? as u64;
            cb = r.ue()? as u64;
        }
        let chroma = if separate_planes { 0 } else { chroma_format };
        let (sub_w, sub_h) = match chroma {
            1 => (2, 2),
            2 => (2, 1),
            _ => (1, 1),
        };
        let crop_x = if chroma == 0 { 1 } else { sub_w };
        let crop_y = (if chroma == 0 { 1 } else { sub_h }) * (2 - frame_mbs_only);
        let width = (width_mbs * 16).checked_sub(crop_x * (cl + cr))?;
        let height = ((2 - frame_mbs_only) * height_units * 16).checked_sub(crop_y * (ct + cb))?;
        Some(Sps {
            profile,
            level,
            width: width as u32,
            height: height as u32,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sps_1280x720() {
        // From an x264 encode (high profile, level 3.1, 1280x720), as in mp4-atom's h264 test.
        let sps = [
            103, 100, 0, 31, 172, 217, 128, 80, 5, 187, 1, 106, 2, 2, 2, 128, 0, 0, 3, 0, 128, 0,
            0, 30, 7, 140, 24, 205,
        ];
        let s = Sps::parse(&sps).unwrap();
        assert_eq!(
            (s.width, s.height, s.profile, s.level),
            (1280, 720, 100, 31)
        );
    }

    #[test]
    fn avcc_round_trip() {
        let (sps, pps) = ([0x67, 1, 2, 3], [0x68, 4]);
        let avcc = avcc_from(&sps, &pps).unwrap();
        let parsed = AvcConfig::parse(&avcc).unwrap();
        assert_eq!(
            (
                parsed.sps[0].as_slice(),
                parsed.pps[0].as_slice(),
                parsed.length_size
            ),
            (&sps[..], &pps[..], 4)
        );
    }

    #[test]
    fn truncated_sps_is_none() {
        let sps = [103, 100, 0, 31, 172];
        assert_eq!(Sps::parse(&sps), None);
    }
}
