//! ADTS (ISO 14496-3 §1.A.2.2): the framing MPEG-TS gives AAC. Each raw AAC frame comes with a
//! 7- or 9-byte header that also says what its AudioSpecificConfig would be.

use bytes::Bytes;

/// An ADTS header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub object_type: u8,
    pub freq_index: u8,
    pub channels: u8,
    pub header_len: usize,
    /// Header included.
    pub frame_len: usize,
}

impl Header {
    pub fn parse(b: &[u8]) -> Option<Header> {
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
        Some(Header {
            object_type,
            freq_index,
            channels,
            header_len: if protection_absent { 7 } else { 9 },
            frame_len,
        })
    }

    /// The two-byte AudioSpecificConfig this header describes.
    pub fn audio_specific_config(&self) -> [u8; 2] {
        let v: u16 = (self.object_type as u16) << 11
            | (self.freq_index as u16) << 7
            | (self.channels as u16) << 3;
        v.to_be_bytes()
    }
}

/// The raw AAC frames of an ADTS byte run (a PES payload), as slices of `data`, and the first
/// frame's header. Stops at the first byte that is not a whole frame.
pub fn frames(data: &Bytes) -> (Option<Header>, Vec<Bytes>) {
    let mut frames = Vec::new();
    let mut first = None;
    let mut rest = &data[..];
    while let Some(h) = Header::parse(rest) {
        if h.frame_len > rest.len() || h.frame_len < h.header_len {
            break;
        }
        first.get_or_insert(h);
        frames.push(data.slice_ref(&rest[h.header_len..h.frame_len]));
        rest = &rest[h.frame_len..];
    }
    (first, frames)
}

#[cfg(test)]
mod tests {
    use super::*;

    // AAC-LC, 48 kHz (index 3), stereo, 371-byte frame, no CRC.
    const HEADER: [u8; 7] = [0xff, 0xf1, 0x4c, 0x80, 0x2e, 0x7f, 0xfc];

    #[test]
    fn header() {
        let a = Header::parse(&HEADER).unwrap();
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
            Header::parse(&[0xff, 0xf1, 0x7c, 0x80, 0x2e, 0x7f, 0xfc]).is_none(),
            "frequency index 15"
        );
    }

    #[test]
    fn frames_stop_at_a_partial_one() {
        let mut one = HEADER.to_vec();
        one.resize(371, 7);
        let mut data = one.clone();
        data.extend_from_slice(&one);
        data.extend_from_slice(&one[..100]);
        let (first, frames) = frames(&Bytes::from(data));
        assert_eq!(first.map(|h| h.frame_len), Some(371));
        assert_eq!(frames.len(), 2);
        assert!(frames.iter().all(|f| f.len() == 364 && f[0] == 7));
        assert_eq!(super::frames(&Bytes::from_static(&[0xff; 3])).1.len(), 0);
    }
}
