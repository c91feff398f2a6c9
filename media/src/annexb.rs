//! Annex B byte streams (MPEG-TS, RTP depacketizers, encoders) → ISO-BMFF samples.
//!
//! An [`AnnexB`] takes H.264 or H.265 access units with start codes. It keeps the parameter
//! sets (VPS/SPS/PPS), makes the track's configuration record (`avcC`/`hvcC`) from the first
//! complete set, and turns everything else into length-prefixed NAL units (access unit
//! delimiters dropped), which is what CMAF samples hold.
//!
//! Parameter sets that change mid-stream (an encoder restarting, a browser lowering its
//! resolution) are followed, not ignored: the record stays the first one, and every keyframe
//! while the sets differ from the record's carries the current ones in-band, first in the
//! sample, so decoders (FFmpeg, Chrome, Safari) switch with it and a viewer joining at a later
//! keyframe gets them too. [`Sample::new_picture`] tells the adapter once per new SPS, for its
//! log line. This is the one rule for every Annex B source (SRT, WHIP, the transcoder).

use bytes::{BufMut, Bytes, BytesMut};

use crate::codec::CodecConfig;
use crate::{h264, h265};

/// NAL units of an Annex B byte stream (start codes 00 00 01 / 00 00 00 01 removed).
pub fn nals(data: &[u8]) -> Vec<&[u8]> {
    let mut nals = Vec::new();
    let mut i = 0;
    let mut start: Option<usize> = None;
    while i + 2 < data.len() {
        if data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1 {
            if let Some(s) = start {
                let mut end = i;
                while end > s && data[end - 1] == 0 {
                    end -= 1; // trailing zero of a 4-byte start code
                }
                if end > s {
                    nals.push(&data[s..end]);
                }
            }
            i += 3;
            start = Some(i);
        } else {
            i += 1;
        }
    }
    if let Some(s) = start {
        if s < data.len() {
            nals.push(&data[s..]);
        }
    }
    nals
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codec {
    H264,
    H265,
}

/// What one NAL unit is to the sample writer.
enum Nal {
    Vps,
    Sps,
    Pps,
    Delimiter,
    /// A picture or SEI; `true` when decoding can start there (IDR, IRAP).
    Other(bool),
}

impl Codec {
    fn classify(self, nal: &[u8]) -> Nal {
        match self {
            Codec::H264 => match nal[0] & 0x1f {
                7 => Nal::Sps,
                8 => Nal::Pps,
                9 => Nal::Delimiter,
                t => Nal::Other(t == 5),
            },
            Codec::H265 => match h265::nal_type(nal) {
                h265::NAL_VPS => Nal::Vps,
                h265::NAL_SPS => Nal::Sps,
                h265::NAL_PPS => Nal::Pps,
                h265::NAL_AUD => Nal::Delimiter,
                t => Nal::Other(h265::is_irap(t)),
            },
        }
    }
}

/// One access unit as a sample.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sample {
    /// Length-prefixed NAL units (4-byte lengths).
    pub data: Bytes,
    /// Decoding can start here.
    pub keyframe: bool,
    /// This keyframe brings an SPS unlike the record's and unlike the last one announced:
    /// worth a log line.
    pub new_picture: bool,
}

/// VPS (H.265 only), SPS and PPS.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Sets {
    vps: Option<Vec<u8>>,
    sps: Option<Vec<u8>>,
    pps: Option<Vec<u8>>,
}

/// The parameter sets and configuration record of one Annex B video stream.
#[derive(Debug)]
pub struct AnnexB {
    codec: Codec,
    /// The latest of each parameter set.
    current: Sets,
    /// The sets the record was made from.
    recorded: Option<Sets>,
    config: Option<CodecConfig>,
    /// The SPS last carried in-band (so a change is announced once).
    announced: Option<Vec<u8>>,
}

impl AnnexB {
    pub fn new(codec: Codec) -> Self {
        AnnexB {
            codec,
            current: Sets::default(),
            recorded: None,
            config: None,
            announced: None,
        }
    }

    /// The configuration record, once a complete set of parameter sets has been seen.
    pub fn config(&self) -> Option<&CodecConfig> {
        self.config.as_ref()
    }

    /// Takes one access unit; `None` when it holds no picture (only parameter sets, say).
    pub fn push(&mut self, au: &[u8]) -> Option<Sample> {
        let mut keyframe = false;
        let mut out = BytesMut::with_capacity(au.len() + 16);
        for nal in nals(au) {
            let slot = match self.codec.classify(nal) {
                Nal::Vps => &mut self.current.vps,
                Nal::Sps => &mut self.current.sps,
                Nal::Pps => &mut self.current.pps,
                Nal::Delimiter => continue,
                Nal::Other(key) => {
                    keyframe |= key;
                    out.put_u32(nal.len() as u32);
                    out.put_slice(nal);
                    continue;
                }
            };
            // Encoders repeat the sets before every keyframe: copy only a change.
            if slot.as_deref() != Some(nal) {
                *slot = Some(nal.to_vec());
            }
        }
        if self.config.is_none() {
            self.config = self.record();
            if self.config.is_some() {
                self.recorded = Some(self.current.clone());
            }
        }
        if out.is_empty() {
            return None;
        }
        let in_band = keyframe && self.recorded.as_ref().is_some_and(|r| *r != self.current);
        if !in_band {
            return Some(Sample {
                data: out.freeze(),
                keyframe,
                new_picture: false,
            });
        }
        let new_picture = self.announced != self.current.sps
            && self
                .recorded
                .as_ref()
                .is_some_and(|r| r.sps != self.current.sps);
        self.announced.clone_from(&self.current.sps);
        let mut with = BytesMut::with_capacity(out.len() + 256);
        for set in [&self.current.vps, &self.current.sps, &self.current.pps]
            .into_iter()
            .flatten()
        {
            with.put_u32(set.len() as u32);
            with.put_slice(set);
        }
        with.put_slice(&out);
        Some(Sample {
            data: with.freeze(),
            keyframe,
            new_picture,
        })
    }

    fn record(&self) -> Option<CodecConfig> {
        let Sets { vps, sps, pps } = &self.current;
        match (self.codec, vps, sps, pps) {
            (Codec::H264, _, Some(sps), Some(pps)) => {
                h264::avcc_from(sps, pps).map(|a| CodecConfig::H264 { avcc: a.into() })
            }
            (Codec::H265, Some(vps), Some(sps), Some(pps)) => {
                h265::hvcc_from(vps, sps, pps).map(|h| CodecConfig::H265 { hvcc: h.into() })
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // A baseline SPS and its PPS.
    const SPS: &[u8] = &[
        0x67, 0x42, 0xc0, 0x0a, 0xd9, 0x07, 0x3c, 0x04, 0x40, 0x00, 0x00, 0x03, 0x00, 0x40, 0x00,
        0x00, 0x0c, 0x83, 0xc4, 0x89, 0x65, 0x80,
    ];
    const PPS: &[u8] = &[0x68, 0xcb, 0x83, 0xcb, 0x20];
    // The same stream at another picture size.
    const SPS2: &[u8] = &[
        0x67, 0x42, 0xc0, 0x0a, 0xd9, 0x02, 0x83, 0xf2, 0x00, 0x00, 0x03, 0x00, 0x40, 0x00, 0x00,
        0x0c, 0x83, 0xc4, 0x89, 0x65, 0x80,
    ];

    fn annexb(nals: &[&[u8]]) -> Vec<u8> {
        let mut b = Vec::new();
        for n in nals {
            b.extend_from_slice(&[0, 0, 0, 1]);
            b.extend_from_slice(n);
        }
        b
    }

    fn prefixed(nals: &[&[u8]]) -> Vec<u8> {
        let mut b = Vec::new();
        for n in nals {
            b.extend_from_slice(&(n.len() as u32).to_be_bytes());
            b.extend_from_slice(n);
        }
        b
    }

    #[test]
    fn split_and_record() {
        let data = [
            0, 0, 0, 1, 0x67, 1, 2, 3, 0, 0, 1, 0x68, 4, 0, 0, 0, 1, 0x65, 9, 9,
        ];
        assert_eq!(
            nals(&data),
            vec![&[0x67, 1, 2, 3][..], &[0x68, 4][..], &[0x65, 9, 9][..]]
        );
        assert!(nals(&[1, 2, 3]).is_empty());
        let mut a = AnnexB::new(Codec::H264);
        let s = a
            .push(&annexb(&[&[9, 0xf0], SPS, PPS, &[0x65, 1]]))
            .unwrap();
        assert!(s.keyframe && !s.new_picture);
        assert_eq!(
            s.data,
            prefixed(&[&[0x65, 1]]),
            "sets and delimiter left out"
        );
        let Some(CodecConfig::H264 { avcc }) = a.config() else {
            panic!("no avcC")
        };
        let parsed = h264::AvcConfig::parse(avcc).unwrap();
        assert_eq!((&parsed.sps[0][..], &parsed.pps[0][..]), (SPS, PPS));
        let s = a.push(&annexb(&[&[0x41, 2]])).unwrap();
        assert!(!s.keyframe);
        assert!(a.push(&annexb(&[SPS, PPS])).is_none(), "no picture");
    }

    #[test]
    fn changed_sets_travel_in_band_on_keyframes() {
        let mut a = AnnexB::new(Codec::H264);
        a.push(&annexb(&[SPS, PPS, &[0x65, 1]])).unwrap();
        let first = a.config().cloned();
        let s = a.push(&annexb(&[SPS2, PPS, &[0x65, 2]])).unwrap();
        assert!(s.new_picture, "announced once");
        assert_eq!(s.data, prefixed(&[SPS2, PPS, &[0x65, 2]]));
        assert_eq!(a.config().cloned(), first, "the record stays the first one");
        let s = a.push(&annexb(&[&[0x41, 3]])).unwrap();
        assert_eq!(s.data, prefixed(&[&[0x41, 3]]), "only keyframes carry them");
        let s = a.push(&annexb(&[&[0x65, 4]])).unwrap();
        assert!(!s.new_picture);
        assert_eq!(
            s.data,
            prefixed(&[SPS2, PPS, &[0x65, 4]]),
            "every keyframe while they differ, whether or not this one repeats them"
        );
        let s = a.push(&annexb(&[SPS, PPS, &[0x65, 5]])).unwrap();
        assert_eq!(s.data, prefixed(&[&[0x65, 5]]), "back to the record's");
    }

    #[test]
    fn hevc_needs_all_three_sets() {
        let mut a = AnnexB::new(Codec::H265);
        // An IDR_W_RADL (type 19) without a VPS: no record yet.
        let idr = [19 << 1, 1, 0xaa];
        let s = a.push(&annexb(&[&[35 << 1, 1, 0x50], &idr])).unwrap();
        assert!(s.keyframe, "IRAP");
        assert_eq!(s.data, prefixed(&[&idr]), "delimiter left out");
        assert!(a.config().is_none());
    }
}
