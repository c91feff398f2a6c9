//! VP9: the keyframe fields of the uncompressed header (VP9 bitstream spec §6.2) that the `vpcC`
//! record (VP Codec ISO Media File Format Binding) and the playlists need.

use crate::h264::BitReader;

/// What a keyframe's uncompressed header says about the stream.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Vp9Keyframe {
    pub profile: u8,
    pub bit_depth: u8,
    /// vpcC chromaSubsampling: 0 4:2:0 vertical, 1 4:2:0 colocated, 2 4:2:2, 3 4:4:4.
    pub chroma_subsampling: u8,
    pub full_range: bool,
    /// VP9 color_space (0 unknown, 1 BT.601, 2 BT.709, ..., 7 sRGB).
    pub color_space: u8,
    pub width: u32,
    pub height: u32,
}

impl Vp9Keyframe {
    /// Parses the first frame of `data` (a frame or superframe); `None` unless it is a keyframe.
    pub fn parse(data: &[u8]) -> Option<Vp9Keyframe> {
        let mut r = BitReader::new(data);
        if r.bits(2)? != 2 {
            return None; // frame_marker
        }
        let low = r.bit()?;
        let high = r.bit()?;
        let profile = (high << 1 | low) as u8;
        if profile == 3 {
            r.bit()?; // reserved_zero
        }
        if r.bit()? == 1 {
            return None; // show_existing_frame
        }
        if r.bit()? != 0 {
            return None; // frame_type: not a keyframe
        }
        r.bits(2)?; // show_frame, error_resilient_mode
        if r.bits(24)? != 0x49_83_42 {
            return None; // frame_sync_code
        }
        let mut k = Vp9Keyframe {
            profile,
            bit_depth: 8,
            ..Default::default()
        };
        if profile >= 2 {
            k.bit_depth = if r.bit()? == 1 { 12 } else { 10 };
        }
        k.color_space = r.bits(3)? as u8;
        let (ssx, ssy);
        if k.color_space != 7 {
            k.full_range = r.bit()? == 1;
            if profile == 1 || profile == 3 {
                ssx = r.bit()?;
                ssy = r.bit()?;
                r.bit()?; // reserved_zero
            } else {
                (ssx, ssy) = (1, 1);
            }
        } else {
            k.full_range = true;
            (ssx, ssy) = (0, 0);
            if profile == 1 || profile == 3 {
                r.bit()?;
            }
        }
        k.chroma_subsampling = match (ssx, ssy) {
            (1, 1) => 0,
            (1, 0) => 2,
            _ => 3,
        };
        k.width = r.bits(16)? + 1;
        k.height = r.bits(16)? + 1;
        Some(k)
    }

    /// The `vpcC` record body after version and flags (8 bytes, no initialization data).
    /// The level is estimated from the picture size (VP9 levels by luma picture size).
    pub fn vpcc(&self) -> [u8; 8] {
        let samples = self.width as u64 * self.height as u64;
        let level = match samples {
            0..=36_864 => 10,
            36_865..=73_728 => 11,
            73_729..=122_880 => 20,
            122_881..=245_760 => 21,
            245_761..=552_960 => 30,
            552_961..=983_040 => 31,
            983_041..=2_228_224 => 41,
            2_228_225..=8_912_896 => 51,
            _ => 61,
        };
        // VP9 color_space → ISO/IEC 23091-2 colour primaries / transfer / matrix.
        let (primaries, transfer, matrix) = match self.color_space {
            1 => (6, 6, 6),  // BT.601
            2 => (1, 1, 1),  // BT.709
            3 => (6, 6, 6),  // SMPTE-170
            4 => (7, 7, 7),  // SMPTE-240
            5 => (9, 14, 9), // BT.2020
            7 => (1, 13, 0), // sRGB
            _ => (2, 2, 2),  // unspecified
        };
        [
            self.profile,
            level,
            (self.bit_depth << 4) | (self.chroma_subsampling << 1) | u8::from(self.full_range),
            primaries,
            transfer,
            matrix,
            0,
            0,
        ]
    }
}

/// `vp09.PP.LL.DD` from a `vpcC` record body as [`Vp9Keyframe::vpcc`] writes it.
pub fn codec_string(vpcc: &[u8]) -> String {
    match vpcc.get(..3) {
        Some(v) => format!("vp09.{:02}.{:02}.{:02}", v[0], v[1], v[2] >> 4),
        None => "vp09".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_libvpx_keyframe_header() {
        // The first bytes of a 1280x720 profile-0 keyframe from libvpx-vp9 (ffmpeg 5.1).
        let kf = [
            0x82, 0x49, 0x83, 0x42, 0x00, 0x4f, 0xf0, 0x2c, 0xf6, 0x06, 0x38, 0x24,
        ];
        let k = Vp9Keyframe::parse(&kf).unwrap();
        assert_eq!(
            (k.profile, k.bit_depth, k.width, k.height),
            (0, 8, 1280, 720)
        );
        assert_eq!(k.chroma_subsampling, 0);
        let vpcc = k.vpcc();
        assert_eq!(codec_string(&vpcc), "vp09.00.31.08");
        // An inter frame is not a keyframe.
        assert!(Vp9Keyframe::parse(&[0x86, 0x00, 0x40]).is_none());
        assert!(Vp9Keyframe::parse(&[]).is_none());
    }
}
