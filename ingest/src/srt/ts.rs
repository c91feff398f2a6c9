//! A sans-IO MPEG-TS demuxer: TS packets in, PES packets with 33-bit-unwrapped timestamps out.
//!
//! Push/pull contract: `push(bytes)` with any slicing of the stream (SRT payloads are often
//! 1316 or 1456 bytes and need not start on a packet), then `pull()` until `None`.
//!
//! Written here rather than taken from a crate because ingest needs three things the crates we
//! looked at (mpeg2ts-reader) leave to the caller: re-synchronising on 0x47 inside arbitrary
//! payloads, turning continuity-counter errors into "drop this PES and say so" rather than a
//! corrupt frame, and a push/pull core that does no I/O.

use std::collections::{HashMap, VecDeque};

use bytes::{Bytes, BytesMut};

pub const PACKET: usize = 188;
const SYNC: u8 = 0x47;
/// A PES larger than this is garbage (a 4K keyframe is a few MB).
const MAX_PES: usize = 16 << 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamKind {
    H264,
    H265,
    AacAdts,
    Opus,
    /// Anything else, by its PMT stream_type.
    Other(u8),
}

impl StreamKind {
    fn from_pmt(stream_type: u8, descriptors: &[u8]) -> StreamKind {
        match stream_type {
            0x1b => StreamKind::H264,
            0x24 => StreamKind::H265,
            0x0f => StreamKind::AacAdts,
            0x06 if has_registration(descriptors, b"Opus") => StreamKind::Opus,
            other => StreamKind::Other(other),
        }
    }
}

fn has_registration(mut d: &[u8], id: &[u8; 4]) -> bool {
    while d.len() >= 2 {
        let (tag, len) = (d[0], d[1] as usize);
        if d.len() < 2 + len {
            return false;
        }
        if tag == 0x05 && len >= 4 && &d[2..6] == id {
            return true;
        }
        d = &d[2 + len..];
    }
    false
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EsInfo {
    pub pid: u16,
    pub kind: StreamKind,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TsEvent {
    /// The program's elementary streams (from the PMT), whenever they first appear or change.
    Program(Vec<EsInfo>),
    Pes {
        pid: u16,
        kind: StreamKind,
        /// 90 kHz, unwrapped past the 33-bit wrap.
        pts: Option<i64>,
        dts: Option<i64>,
        data: Bytes,
        /// Data was lost on this PID before this PES: restart decoding at a random access point.
        after_loss: bool,
    },
}

#[derive(Debug, Default, Clone, Copy)]
pub struct TsStats {
    pub packets: u64,
    /// Bytes skipped to find the next sync byte.
    pub resync_bytes: u64,
    pub cc_errors: u64,
    /// PES packets dropped because data was lost inside them or they were malformed.
    pub dropped_pes: u64,
}

struct PesState {
    kind: StreamKind,
    cc: Option<u8>,
    buf: BytesMut,
    /// Declared PES_packet_length + 6, if any.
    expected: Option<usize>,
    broken: bool,
    lost: bool,
}

/// Extends 33-bit 90 kHz timestamps into a monotonic-ish 64-bit clock.
#[derive(Default)]
struct Unwrap33 {
    last: Option<i64>,
    offset: i64,
}

impl Unwrap33 {
    const WRAP: i64 = 1 << 33;

    fn unwrap(&mut self, v: i64) -> i64 {
        if let Some(last) = self.last {
            let prev = last - self.offset;
            if v < prev && prev - v > Self::WRAP / 2 {
                self.offset += Self::WRAP;
            } else if v > prev && v - prev > Self::WRAP / 2 && self.offset >= Self::WRAP {
                // A late timestamp from before the wrap.
                let out = self.offset - Self::WRAP + v;
                return out;
            }
        }
        let out = self.offset + v;
        self.last = Some(out);
        out
    }
}

#[derive(Default)]
pub struct TsDemuxer {
    partial: Vec<u8>,
    pmt_pid: Option<u16>,
    program: Vec<EsInfo>,
    pes: HashMap<u16, PesState>,
    clock: Unwrap33,
    out: VecDeque<TsEvent>,
    pub stats: TsStats,
}

impl TsDemuxer {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn pull(&mut self) -> Option<TsEvent> {
        self.out.pop_front()
    }

    pub fn push(&mut self, data: &[u8]) {
        let mut input: &[u8] = data;
        // Complete a packet split across pushes.
        if !self.partial.is_empty() {
            let need = PACKET - self.partial.len();
            if input.len() < need {
                self.partial.extend_from_slice(input);
                return;
            }
            let mut pkt = std::mem::take(&mut self.partial);
            pkt.extend_from_slice(&input[..need]);
            if pkt[0] == SYNC {
                self.packet(&pkt);
                input = &input[need..];
            } else {
                // Lost sync: rescan the partial bytes together with the new ones.
                let mut joined = pkt;
                joined.extend_from_slice(&input[need..]);
                return self.scan(&joined);
            }
        }
        self.scan(input)
    }

    fn scan(&mut self, mut input: &[u8]) {
        while !input.is_empty() {
            if input[0] != SYNC {
                // Re-synchronise: the next 0x47 that is followed by another one a packet later
                // (or by the end of what we have).
                let mut skip = 1;
                while skip < input.len() {
                    if input[skip] == SYNC && input.get(skip + PACKET).is_none_or(|b| *b == SYNC) {
                        break;
                    }
                    skip += 1;
                }
                self.stats.resync_bytes += skip as u64;
                for st in self.pes.values_mut() {
                    st.broken = !st.buf.is_empty();
                    st.lost = true;
                }
                input = &input[skip..];
                continue;
            }
            if input.len() < PACKET {
                self.partial.extend_from_slice(input);
                return;
            }
            let (pkt, rest) = input.split_at(PACKET);
            self.packet(pkt);
            input = rest;
        }
    }

    /// Flushes PES packets of unknown length (video) at the end of the stream.
    pub fn finish(&mut self) {
        let pids: Vec<u16> = self.pes.keys().copied().collect();
        for pid in pids {
            self.flush_pes(pid);
        }
    }

    fn packet(&mut self, p: &[u8]) {
        self.stats.packets += 1;
        if p[1] & 0x80 != 0 {
            // transport_error_indicator: the sender already knows this packet is bad.
            if let Some(st) = self
                .pes
                .get_mut(&(u16::from_be_bytes([p[1], p[2]]) & 0x1fff))
            {
                st.broken = true;
                st.lost = true;
            }
            return;
        }
        let pusi = p[1] & 0x40 != 0;
        let pid = u16::from_be_bytes([p[1] & 0x1f, p[2]]);
        let afc = (p[3] >> 4) & 3;
        let cc = p[3] & 0x0f;
        let mut start = 4;
        if afc & 2 != 0 {
            let len = p[4] as usize;
            start = 5 + len;
            if start > PACKET {
                return;
            }
        }
        let has_payload = afc & 1 != 0;
        let payload = if has_payload { &p[start..] } else { &[][..] };
        if pid == 0 {
            if pusi {
                self.pat(payload);
            }
            return;
        }
        if Some(pid) == self.pmt_pid {
            if pusi {
                self.pmt(payload);
            }
            return;
        }
        let Some(st) = self.pes.get_mut(&pid) else {
            return;
        };
        if !has_payload {
            return;
        }
        if let Some(prev) = st.cc {
            if cc == prev {
                return; // a duplicate packet, allowed once by the spec
            }
            if cc != (prev + 1) & 0x0f {
                self.stats.cc_errors += 1;
                st.broken = !st.buf.is_empty() || !pusi;
                st.lost = true;
            }
        }
        st.cc = Some(cc);
        if pusi {
            self.flush_pes(pid);
            let Some(st) = self.pes.get_mut(&pid) else {
                return;
            };
            st.buf.clear();
            st.broken = false;
            st.expected = None;
            if payload.len() >= 6 && payload[..3] == [0, 0, 1] {
                let len = u16::from_be_bytes([payload[4], payload[5]]) as usize;
                st.expected = (len > 0).then_some(len + 6);
            }
            st.buf.extend_from_slice(payload);
        } else if st.buf.is_empty() {
            // Middle of a PES we never saw start (we joined late or lost its start).
            return;
        } else {
            st.buf.extend_from_slice(payload);
            if st.buf.len() > MAX_PES {
                st.buf.clear();
                st.broken = false;
                st.lost = true;
                self.stats.dropped_pes += 1;
                return;
            }
        }
        let st = self.pes.get_mut(&pid).expect("present");
        if st.expected.is_some_and(|e| st.buf.len() >= e) {
            self.flush_pes(pid);
        }
    }

    fn flush_pes(&mut self, pid: u16) {
        let Some(st) = self.pes.get_mut(&pid) else {
            return;
        };
        if st.buf.is_empty() {
            return;
        }
        let mut buf = std::mem::take(&mut st.buf);
        if let Some(e) = st.expected.take() {
            buf.truncate(e);
        }
        let kind = st.kind;
        if st.broken {
            st.broken = false;
            self.stats.dropped_pes += 1;
            return;
        }
        let after_loss = std::mem::take(&mut st.lost);
        match parse_pes(buf.freeze()) {
            Some((pts, dts, data)) => {
                let pts = pts.map(|v| self.clock.unwrap(v));
                let dts = dts.map(|v| self.clock.unwrap(v));
                self.out.push_back(TsEvent::Pes {
                    pid,
                    kind,
                    pts,
                    dts,
                    data,
                    after_loss,
                });
            }
            None => {
                self.stats.dropped_pes += 1;
                if let Some(st) = self.pes.get_mut(&pid) {
                    st.lost = true;
                }
            }
        }
    }

    fn pat(&mut self, payload: &[u8]) {
        let Some(section) = psi_section(payload, 0x00) else {
            return;
        };
        // program_number(16) reserved(3) pid(13), after the 8-byte long-form section header.
        for entry in section[8..].chunks_exact(4) {
            let program = u16::from_be_bytes([entry[0], entry[1]]);
            if program != 0 {
                self.pmt_pid = Some(u16::from_be_bytes([entry[2] & 0x1f, entry[3]]));
                return;
            }
        }
    }

    fn pmt(&mut self, payload: &[u8]) {
        let Some(section) = psi_section(payload, 0x02) else {
            return;
        };
        // 8-byte section header, PCR_PID (2), program_info_length (2), then the streams.
        if section.len() < 12 {
            return;
        }
        let info_len = (u16::from_be_bytes([section[10] & 0x0f, section[11]])) as usize;
        let mut rest = section.get(12 + info_len..).unwrap_or(&[]);
        let mut program = Vec::new();
        while rest.len() >= 5 {
            let stream_type = rest[0];
            let pid = u16::from_be_bytes([rest[1] & 0x1f, rest[2]]);
            let es_len = u16::from_be_bytes([rest[3] & 0x0f, rest[4]]) as usize;
            let Some(desc) = rest.get(5..5 + es_len) else {
                break;
            };
            program.push(EsInfo {
                pid,
                kind: StreamKind::from_pmt(stream_type, desc),
            });
            rest = &rest[5 + es_len..];
        }
        if program != self.program {
            self.pes
                .retain(|pid, _| program.iter().any(|e| e.pid == *pid));
            for es in &program {
                self.pes.entry(es.pid).or_insert(PesState {
                    kind: es.kind,
                    cc: None,
                    buf: BytesMut::new(),
                    expected: None,
                    broken: false,
                    lost: false,
                });
            }
            self.program = program.clone();
            self.out.push_back(TsEvent::Program(program));
        }
    }
}

/// The section (table_id through the byte before the CRC) if it is whole and its CRC holds.
fn psi_section(payload: &[u8], table_id: u8) -> Option<&[u8]> {
    let pointer = *payload.first()? as usize;
    let s = payload.get(1 + pointer..)?;
    if *s.first()? != table_id || s.len() < 3 {
        return None;
    }
    let len = (u16::from_be_bytes([s[1] & 0x0f, s[2]])) as usize;
    let whole = s.get(..3 + len)?;
    if len < 9 || crc32_mpeg2(whole) != 0 {
        return None;
    }
    Some(&whole[..whole.len() - 4])
}

/// CRC-32/MPEG-2 over a section including its CRC: 0 when intact.
fn crc32_mpeg2(data: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &b in data {
        crc ^= (b as u32) << 24;
        for _ in 0..8 {
            crc = if crc & 0x8000_0000 != 0 {
                (crc << 1) ^ 0x04c1_1db7
            } else {
                crc << 1
            };
        }
    }
    crc
}

fn timestamp(b: &[u8]) -> Option<i64> {
    if b.len() < 5 || b[0] & 1 == 0 || b[2] & 1 == 0 || b[4] & 1 == 0 {
        return None;
    }
    Some(
        (((b[0] >> 1) & 0x07) as i64) << 30
            | (b[1] as i64) << 22
            | ((b[2] >> 1) as i64) << 15
            | (b[3] as i64) << 7
            | (b[4] >> 1) as i64,
    )
}

/// (pts, dts, payload) of a PES packet, or `None` if its header is malformed.
fn parse_pes(pes: Bytes) -> Option<(Option<i64>, Option<i64>, Bytes)> {
    if pes.len() < 9 || pes[..3] != [0, 0, 1] {
        return None;
    }
    let flags = pes[7];
    let header_len = pes[8] as usize;
    let data_start = 9 + header_len;
    if data_start > pes.len() {
        return None;
    }
    let opt = &pes[9..data_start];
    let (mut pts, mut dts) = (None, None);
    match flags >> 6 {
        2 => pts = Some(timestamp(opt)?),
        3 => {
            pts = Some(timestamp(opt)?);
            dts = Some(timestamp(opt.get(5..)?)?);
        }
        _ => {}
    }
    Some((pts, dts, pes.slice(data_start..)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURE: &[u8] = include_bytes!("../../tests/fixtures/ffmpeg-5.1-h264-aac-160x120.ts");

    fn demux_all(chunks: usize) -> (Vec<TsEvent>, TsStats) {
        let mut d = TsDemuxer::new();
        let mut events = vec![];
        for c in FIXTURE.chunks(chunks) {
            d.push(c);
            events.extend(std::iter::from_fn(|| d.pull()));
        }
        d.finish();
        events.extend(std::iter::from_fn(|| d.pull()));
        (events, d.stats)
    }

    #[test]
    fn ffmpeg_fixture_demuxes_with_any_slicing() {
        // 188-aligned, SRT's usual 1316, srt-live-transmit's unaligned 1456, and one byte at a time.
        let (reference, stats) = demux_all(188);
        assert_eq!(stats.cc_errors, 0);
        assert_eq!(
            reference[0],
            TsEvent::Program(vec![
                EsInfo {
                    pid: 256,
                    kind: StreamKind::H264
                },
                EsInfo {
                    pid: 257,
                    kind: StreamKind::AacAdts
                }
            ])
        );
        let video = reference
            .iter()
            .filter(|e| matches!(e, TsEvent::Pes { pid: 256, .. }))
            .count();
        assert_eq!(video, 60, "2 s of 30 fps, one PES per frame");
        assert!(reference.iter().any(|e| matches!(
            e,
            TsEvent::Pes {
                pid: 257,
                pts: Some(_),
                ..
            }
        )));
        for size in [1316, 1456, 1, 7] {
            assert_eq!(demux_all(size).0, reference, "slicing {size}");
        }
    }

    #[test]
    fn lost_packets_drop_the_pes_and_flag_the_next() {
        let mut data = FIXTURE.to_vec();
        // Remove one video packet from the middle (a packet that continues a PES).
        let mut removed = false;
        let mut i = 188 * 40;
        while i + 188 <= data.len() {
            let pid = u16::from_be_bytes([data[i + 1] & 0x1f, data[i + 2]]);
            if pid == 256 && data[i + 1] & 0x40 == 0 {
                data.drain(i..i + 188);
                removed = true;
                break;
            }
            i += 188;
        }
        assert!(removed);
        let mut d = TsDemuxer::new();
        d.push(&data);
        d.finish();
        let events: Vec<TsEvent> = std::iter::from_fn(|| d.pull()).collect();
        assert_eq!(d.stats.cc_errors, 1);
        assert_eq!(d.stats.dropped_pes, 1);
        let video = events
            .iter()
            .filter(|e| matches!(e, TsEvent::Pes { pid: 256, .. }))
            .count();
        assert_eq!(video, 59);
        assert_eq!(
            events
                .iter()
                .filter(|e| matches!(
                    e,
                    TsEvent::Pes {
                        after_loss: true,
                        ..
                    }
                ))
                .count(),
            1
        );
    }

    #[test]
    fn garbage_between_packets_is_skipped() {
        let mut data = FIXTURE[..188 * 30].to_vec();
        data.splice(
            188 * 10..188 * 10,
            [0x47u8, 1, 2, 3, 4, 0x47, 9].iter().copied(),
        );
        let mut d = TsDemuxer::new();
        d.push(&data);
        assert!(d.stats.resync_bytes >= 7);
        assert!(std::iter::from_fn(|| d.pull()).any(|e| matches!(e, TsEvent::Program(_))));
    }

    #[test]
    fn crc_of_a_known_pat() {
        // PAT from ffmpeg: program 1 → PMT PID 0x1000.
        let pat = [
            0x00, 0xb0, 0x0d, 0x00, 0x01, 0xc1, 0x00, 0x00, 0x00, 0x01, 0xf0, 0x00, 0x2a, 0xb1,
            0x04, 0xb2,
        ];
        assert_eq!(crc32_mpeg2(&pat), 0);
    }

    #[test]
    fn unwrap_33_bits() {
        let mut u = Unwrap33::default();
        assert_eq!(u.unwrap((1 << 33) - 9000), (1 << 33) - 9000);
        assert_eq!(u.unwrap(1000), (1 << 33) + 1000);
        assert_eq!(u.unwrap(4000), (1 << 33) + 4000);
    }

    #[test]
    fn pes_timestamps() {
        let mut pes = vec![0, 0, 1, 0xe0, 0, 0, 0x80, 0xc0, 10];
        // PTS 0x1_0000_0001 and DTS 90000, marker bits set.
        let enc = |prefix: u8, v: i64| {
            vec![
                prefix << 4 | (((v >> 30) & 7) as u8) << 1 | 1,
                (v >> 22) as u8,
                (((v >> 15) & 0x7f) as u8) << 1 | 1,
                (v >> 7) as u8,
                ((v & 0x7f) as u8) << 1 | 1,
            ]
        };
        pes.extend(enc(3, 0x1_0000_0001));
        pes.extend(enc(1, 90000));
        pes.extend_from_slice(b"data");
        let (pts, dts, data) = parse_pes(Bytes::from(pes)).unwrap();
        assert_eq!((pts, dts), (Some(0x1_0000_0001), Some(90000)));
        assert_eq!(&data[..], b"data");
        assert!(parse_pes(Bytes::from_static(&[0, 0, 1, 0xe0, 0, 0, 0x80, 0xc0, 10])).is_none());
    }
}
