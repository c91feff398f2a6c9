//! Opus packets (RFC 6716): what their TOC byte says, and how MPEG-TS carries them (each packet
//! behind an `opus_control_header`, as in the Opus-in-MPEG-TS mapping ffmpeg writes).

use bytes::Bytes;

/// Samples at 48 kHz in a packet, from its TOC byte (RFC 6716 §3.1).
pub fn samples(packet: &[u8]) -> Option<i64> {
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

/// Channels coded in a packet (its TOC's stereo flag): 1 or 2.
pub fn channels(packet: &[u8]) -> Option<u8> {
    Some(if packet.first()? & 0x04 != 0 { 2 } else { 1 })
}

/// The Opus packets of an MPEG-TS PES payload, and the first start trim (the encoder's
/// pre-skip) if one is given.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct TsPackets {
    pub packets: Vec<Bytes>,
    pub pre_skip: Option<u16>,
}

/// Unwraps the `opus_control_header`s (0x7FE0 prefix, size bytes, optional trims and
/// extension) of a PES payload. A malformed header ends the payload; what came before it is
/// kept.
pub fn ts_packets(data: &Bytes) -> TsPackets {
    let mut out = TsPackets::default();
    let mut rest = &data[..];
    while rest.len() >= 3 && rest[0] == 0x7f && rest[1] & 0xe0 == 0xe0 {
        let flags = rest[1];
        let mut pos = 2;
        let mut size = 0usize;
        loop {
            let Some(&b) = rest.get(pos) else {
                return out;
            };
            pos += 1;
            size += b as usize;
            if b != 0xff {
                break;
            }
        }
        if flags & 0x10 != 0 {
            let Some(t) = rest.get(pos..pos + 2) else {
                return out;
            };
            out.pre_skip.get_or_insert(u16::from_be_bytes([t[0], t[1]]));
            pos += 2;
        }
        if flags & 0x08 != 0 {
            pos += 2;
        }
        if flags & 0x04 != 0 {
            let Some(&len) = rest.get(pos) else {
                return out;
            };
            pos += 1 + len as usize;
        }
        let Some(au) = rest.get(pos..pos + size) else {
            return out;
        };
        if !au.is_empty() {
            out.packets.push(data.slice_ref(au));
        }
        rest = &rest[pos + size..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toc() {
        // CELT fullband 20 ms, stereo, one frame.
        assert_eq!(samples(&[0xfc]), Some(960));
        assert_eq!(channels(&[0xfc]), Some(2));
        // SILK narrowband 10 ms, mono, two frames.
        assert_eq!(samples(&[0x01]), Some(960));
        assert_eq!(channels(&[0x01]), Some(1));
        // Code 3: the frame count is in the second byte.
        assert_eq!(samples(&[0xfb, 0x03]), Some(3 * 960));
        assert_eq!(samples(&[0xfb]), None);
        assert_eq!(samples(&[]), None);
    }

    #[test]
    fn ts_control_headers() {
        // Start trim 312, a 3-byte packet, then a 2-byte one without trims.
        let data = Bytes::from_static(&[
            0x7f, 0xf0, 3, 0x01, 0x38, 0xfc, 1, 2, 0x7f, 0xe0, 2, 0xfc, 9,
        ]);
        let p = ts_packets(&data);
        assert_eq!(p.pre_skip, Some(312));
        assert_eq!(p.packets, vec![&[0xfc, 1, 2][..], &[0xfc, 9][..]]);
        // Cut short: what came before stays.
        let p = ts_packets(&data.slice(..10));
        assert_eq!(p.packets.len(), 1);
    }
}
