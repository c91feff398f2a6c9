//! RTMP chunk streams, sans-IO: the bytes after the handshake in, whole messages out
//! ([`ChunkReader`]); messages in, chunks out ([`write_message`]).
//!
//! Each chunk stream keeps its own header and its own message being assembled, so chunks of
//! several streams may interleave as the specification allows. Everything a peer can make the
//! reader hold is bounded by [`Limits`]: a message's length, the bytes of all messages being
//! assembled together, and the number of chunk streams with state. The session sets small
//! limits until a publisher is admitted.

use std::collections::HashMap;

use bytes::{Bytes, BytesMut};

/// A message's `type id`s that matter here.
pub mod types {
    pub const SET_CHUNK_SIZE: u8 = 1;
    pub const ABORT: u8 = 2;
    pub const ACKNOWLEDGEMENT: u8 = 3;
    pub const USER_CONTROL: u8 = 4;
    pub const WINDOW_ACK_SIZE: u8 = 5;
    pub const SET_PEER_BANDWIDTH: u8 = 6;
    pub const AUDIO: u8 = 8;
    pub const VIDEO: u8 = 9;
    pub const DATA_AMF3: u8 = 15;
    pub const COMMAND_AMF3: u8 = 17;
    pub const DATA_AMF0: u8 = 18;
    pub const COMMAND_AMF0: u8 = 20;
}

/// What a peer may make the reader hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Longest message.
    pub message: usize,
    /// All messages being assembled, together.
    pub assembling: usize,
    /// Chunk streams with state.
    pub streams: usize,
}

impl Limits {
    /// Before a publisher is admitted: commands only.
    pub const ADMISSION: Limits = Limits {
        message: 64 * 1024,
        assembling: 256 * 1024,
        streams: 16,
    };
    /// A publisher's media: a 4K keyframe fits.
    pub const PUBLISHING: Limits = Limits {
        message: 16 * 1024 * 1024,
        assembling: 32 * 1024 * 1024,
        streams: 64,
    };
}

/// The largest chunk size a peer may set (and the specification's top bit must be clear).
pub const MAX_CHUNK_SIZE: usize = 16 * 1024 * 1024;
const DEFAULT_CHUNK_SIZE: usize = 128;

/// One whole message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub csid: u32,
    /// Milliseconds, as the peer counts them (32 bits, wrapping).
    pub timestamp: u32,
    pub type_id: u8,
    pub stream_id: u32,
    pub payload: Bytes,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("chunk stream {csid}, message type {type_id}, at byte {offset}: {what}")]
pub struct ChunkError {
    pub csid: u32,
    pub type_id: u8,
    /// Bytes of the chunk streams read before the error (after the handshake).
    pub offset: u64,
    pub what: &'static str,
}

#[derive(Clone, Copy, Debug, Default)]
struct Header {
    timestamp: u32,
    /// What a type-3 chunk that starts a new message adds to the timestamp.
    delta: u32,
    length: usize,
    type_id: u8,
    stream_id: u32,
    /// The last header's timestamp field was 0xFFFFFF: type-3 chunks carry the extended one.
    extended: bool,
}

#[derive(Debug, Default)]
struct Stream {
    header: Option<Header>,
    /// The message being assembled.
    partial: Option<BytesMut>,
}

/// Chunk streams in, messages out.
#[derive(Debug)]
pub struct ChunkReader {
    chunk_size: usize,
    streams: HashMap<u32, Stream>,
    limits: Limits,
    assembling: usize,
    input: BytesMut,
    /// Bytes consumed so far (for error offsets and acknowledgements).
    consumed: u64,
}

impl Default for ChunkReader {
    fn default() -> Self {
        ChunkReader {
            chunk_size: DEFAULT_CHUNK_SIZE,
            streams: HashMap::new(),
            limits: Limits::ADMISSION,
            assembling: 0,
            input: BytesMut::new(),
            consumed: 0,
        }
    }
}

/// What one chunk came to.
enum Step {
    /// Its body has not all arrived.
    More,
    /// Read; its message goes on.
    Chunk,
    Message(Message),
}

/// A chunk header as read, before the stream's state is applied.
struct Read {
    csid: u32,
    fmt: u8,
    /// Bytes of basic and message headers (extended timestamp included).
    len: usize,
    timestamp: u32,
    length: usize,
    type_id: u8,
    stream_id: u32,
    extended: bool,
}

impl ChunkReader {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    /// The peer's Set Chunk Size.
    pub fn set_chunk_size(&mut self, size: usize) {
        self.chunk_size = size;
    }

    /// The peer's Abort: the message being assembled on `csid` is dropped.
    pub fn abort(&mut self, csid: u32) {
        if let Some(p) = self.streams.get_mut(&csid).and_then(|s| s.partial.take()) {
            self.assembling -= p.len();
        }
    }

    /// Bytes consumed so far.
    pub fn consumed(&self) -> u64 {
        self.consumed
    }

    pub fn push(&mut self, data: &[u8]) {
        self.input.extend_from_slice(data);
    }

    fn error(&self, csid: u32, type_id: u8, what: &'static str) -> ChunkError {
        ChunkError {
            csid,
            type_id,
            offset: self.consumed,
            what,
        }
    }

    /// The next whole message, `None` when more bytes are needed.
    pub fn pull(&mut self) -> Result<Option<Message>, ChunkError> {
        loop {
            let Some(h) = self.read_header()? else {
                return Ok(None);
            };
            match self.read_chunk(h)? {
                Step::More => return Ok(None),
                Step::Chunk => continue,
                Step::Message(m) => return Ok(Some(m)),
            }
        }
    }

    /// Parses the next chunk's headers, if they have all arrived.
    fn read_header(&self) -> Result<Option<Read>, ChunkError> {
        let b = &self.input[..];
        let Some(&first) = b.first() else {
            return Ok(None);
        };
        let fmt = first >> 6;
        let (csid, mut pos) = match first & 0x3f {
            0 => match b.get(1) {
                Some(&x) => (64 + x as u32, 2),
                None => return Ok(None),
            },
            1 => match b.get(1..3) {
                Some(x) => (64 + x[0] as u32 + ((x[1] as u32) << 8), 3),
                None => return Ok(None),
            },
            n => (n as u32, 1),
        };
        let u24 = |x: &[u8]| (x[0] as u32) << 16 | (x[1] as u32) << 8 | x[2] as u32;
        let header_len = [11, 7, 3, 0][fmt as usize];
        let Some(m) = b.get(pos..pos + header_len) else {
            return Ok(None);
        };
        pos += header_len;
        let mut read = Read {
            csid,
            fmt,
            len: 0,
            timestamp: 0,
            length: 0,
            type_id: 0,
            stream_id: 0,
            extended: false,
        };
        if fmt <= 2 {
            read.timestamp = u24(&m[0..3]);
            read.extended = read.timestamp == 0xff_ffff;
        }
        if fmt <= 1 {
            read.length = u24(&m[3..6]) as usize;
            read.type_id = m[6];
        }
        if fmt == 0 {
            read.stream_id = u32::from_le_bytes([m[7], m[8], m[9], m[10]]);
        }
        let prev = self.streams.get(&csid).and_then(|s| s.header);
        if fmt == 3 {
            let Some(prev) = prev else {
                return Err(self.error(csid, 0, "a chunk continues a message never started"));
            };
            read.extended = prev.extended;
        } else if fmt != 0 && prev.is_none() {
            return Err(self.error(
                csid,
                read.type_id,
                "a chunk header refers to no earlier one",
            ));
        }
        if read.extended {
            let Some(x) = b.get(pos..pos + 4) else {
                return Ok(None);
            };
            if fmt <= 2 {
                read.timestamp = u32::from_be_bytes([x[0], x[1], x[2], x[3]]);
            }
            pos += 4;
        }
        read.len = pos;
        Ok(Some(read))
    }

    /// Applies a chunk whose headers are in `h`, once its body has arrived.
    fn read_chunk(&mut self, h: Read) -> Result<Step, ChunkError> {
        let limits = self.limits;
        let known = self.streams.len();
        let csid = h.csid;
        let stream_exists = self.streams.contains_key(&csid);
        if !stream_exists && known >= limits.streams {
            return Err(self.error(csid, h.type_id, "too many chunk streams"));
        }
        let prev = self.streams.get(&csid).and_then(|s| s.header);
        let assembling = self.streams.get(&csid).is_some_and(|s| s.partial.is_some());
        // The header this chunk leaves on its stream.
        let header = match (h.fmt, prev) {
            (0, _) => Header {
                timestamp: h.timestamp,
                delta: h.timestamp,
                length: h.length,
                type_id: h.type_id,
                stream_id: h.stream_id,
                extended: h.extended,
            },
            (1, Some(p)) => Header {
                timestamp: p.timestamp.wrapping_add(h.timestamp),
                delta: h.timestamp,
                length: h.length,
                type_id: h.type_id,
                extended: h.extended,
                ..p
            },
            (2, Some(p)) => Header {
                timestamp: p.timestamp.wrapping_add(h.timestamp),
                delta: h.timestamp,
                extended: h.extended,
                ..p
            },
            (_, Some(p)) if assembling => p,
            (_, Some(p)) => Header {
                timestamp: p.timestamp.wrapping_add(p.delta),
                ..p
            },
            (_, None) => unreachable!("checked when the header was read"),
        };
        if h.fmt != 3 && assembling {
            return Err(self.error(
                csid,
                header.type_id,
                "a new message began before the last one on its chunk stream ended",
            ));
        }
        if header.length > limits.message {
            return Err(self.error(csid, header.type_id, "message longer than allowed here"));
        }
        let so_far = self
            .streams
            .get(&csid)
            .and_then(|s| s.partial.as_ref())
            .map_or(0, |p| p.len());
        let body = (header.length - so_far).min(self.chunk_size);
        if self.input.len() < h.len + body {
            return Ok(Step::More);
        }
        if !assembling && self.assembling + header.length > limits.assembling {
            return Err(self.error(
                csid,
                header.type_id,
                "too many bytes in messages being assembled",
            ));
        }
        let chunk = self.input.split_to(h.len + body);
        self.consumed += chunk.len() as u64;
        let stream = self.streams.entry(csid).or_default();
        stream.header = Some(header);
        let partial = stream.partial.get_or_insert_with(|| {
            self.assembling += header.length;
            BytesMut::with_capacity(header.length)
        });
        partial.extend_from_slice(&chunk[h.len..]);
        if partial.len() < header.length {
            return Ok(Step::Chunk);
        }
        let payload = stream.partial.take().expect("just filled").freeze();
        self.assembling -= header.length;
        Ok(Step::Message(Message {
            csid,
            timestamp: header.timestamp,
            type_id: header.type_id,
            stream_id: header.stream_id,
            payload,
        }))
    }
}

/// Appends `payload` as chunks of `chunk_size` on `csid`: one type-0 chunk, then type-3 ones.
pub fn write_message(
    out: &mut Vec<u8>,
    csid: u32,
    timestamp: u32,
    type_id: u8,
    stream_id: u32,
    payload: &[u8],
    chunk_size: usize,
) {
    let basic = |out: &mut Vec<u8>, fmt: u8| match csid {
        2..=63 => out.push(fmt << 6 | csid as u8),
        64..=319 => out.extend_from_slice(&[fmt << 6, (csid - 64) as u8]),
        _ => {
            let id = csid - 64;
            out.extend_from_slice(&[fmt << 6 | 1, id as u8, (id >> 8) as u8]);
        }
    };
    let extended = timestamp >= 0xff_ffff;
    basic(out, 0);
    let ts = if extended { 0xff_ffff } else { timestamp };
    out.extend_from_slice(&ts.to_be_bytes()[1..]);
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes()[1..]);
    out.push(type_id);
    out.extend_from_slice(&stream_id.to_le_bytes());
    if extended {
        out.extend_from_slice(&timestamp.to_be_bytes());
    }
    let mut chunks = payload.chunks(chunk_size.max(1));
    if let Some(first) = chunks.next() {
        out.extend_from_slice(first);
    }
    for c in chunks {
        basic(out, 3);
        if extended {
            out.extend_from_slice(&timestamp.to_be_bytes());
        }
        out.extend_from_slice(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(r: &mut ChunkReader) -> Vec<Message> {
        std::iter::from_fn(|| r.pull().unwrap()).collect()
    }

    #[test]
    fn messages_round_trip_through_chunks() {
        let payload: Vec<u8> = (0..1000u32).map(|i| i as u8).collect();
        let mut wire = Vec::new();
        write_message(&mut wire, 6, 1234, types::VIDEO, 1, &payload, 128);
        write_message(&mut wire, 400, 0x0100_0000, types::AUDIO, 1, b"aac", 128);
        let mut r = ChunkReader::new();
        // Byte by byte: every header and body may be cut anywhere.
        let mut got = Vec::new();
        for b in &wire {
            r.push(std::slice::from_ref(b));
            got.extend(all(&mut r));
        }
        assert_eq!(got.len(), 2);
        assert_eq!(
            (got[0].csid, got[0].timestamp, got[0].stream_id),
            (6, 1234, 1)
        );
        assert_eq!(&got[0].payload[..], &payload[..]);
        assert_eq!((got[1].csid, got[1].timestamp), (400, 0x0100_0000));
        assert_eq!(r.consumed(), wire.len() as u64);
    }

    /// Two chunk streams interleaved chunk by chunk: each message assembles on its own.
    #[test]
    fn interleaved_chunk_streams_do_not_mix() {
        let a = vec![b'a'; 300];
        let b = vec![b'b'; 300];
        let (mut wa, mut wb) = (Vec::new(), Vec::new());
        write_message(&mut wa, 4, 10, types::AUDIO, 1, &a, 128);
        write_message(&mut wb, 6, 20, types::VIDEO, 1, &b, 128);
        // Chunk boundaries: a type-0 chunk is 12 + 128 bytes, a type-3 one 1 + 128.
        let cut = |w: &[u8]| vec![w[..140].to_vec(), w[140..269].to_vec(), w[269..].to_vec()];
        let mut wire = Vec::new();
        for (x, y) in cut(&wa).into_iter().zip(cut(&wb)) {
            wire.extend(x);
            wire.extend(y);
        }
        let mut r = ChunkReader::new();
        r.push(&wire);
        let got = all(&mut r);
        assert_eq!(got.len(), 2);
        assert_eq!(&got[0].payload[..], &a[..]);
        assert_eq!(&got[1].payload[..], &b[..]);
    }

    #[test]
    fn deltas_and_type_3_messages() {
        // Type 0 at 100, type 2 with delta 33 (133), then a type-3 chunk starting a new
        // message: the last delta again (166).
        let mut wire = vec![0x04, 0, 0, 100, 0, 0, 1, types::AUDIO, 1, 0, 0, 0, b'x'];
        wire.extend_from_slice(&[0x84, 0, 0, 33, b'y']);
        wire.extend_from_slice(&[0xc4, b'z']);
        let mut r = ChunkReader::new();
        r.push(&wire);
        let ts: Vec<u32> = all(&mut r).iter().map(|m| m.timestamp).collect();
        assert_eq!(ts, vec![100, 133, 166]);
    }

    #[test]
    fn limits_hold() {
        let mut r = ChunkReader::new();
        // Before admission: a 1 MB message is refused at its header.
        let mut wire = Vec::new();
        write_message(
            &mut wire,
            3,
            0,
            types::COMMAND_AMF0,
            0,
            &vec![0; 1 << 20],
            128,
        );
        r.push(&wire[..64]);
        let e = r.pull().unwrap_err();
        assert_eq!(
            (e.csid, e.type_id, e.what),
            (3, types::COMMAND_AMF0, "message longer than allowed here")
        );
        // Many chunk streams, each starting a message: refused past the limit.
        let mut r = ChunkReader::new();
        let mut bomb = Vec::new();
        for csid in 3..60u8 {
            bomb.extend_from_slice(&[csid, 0, 0, 0, 0, 0x10, 0, types::AUDIO, 1, 0, 0, 0]);
            bomb.extend_from_slice(&[0; 128]);
        }
        r.push(&bomb);
        assert_eq!(r.pull().unwrap_err().what, "too many chunk streams");
        // A continuation with nothing before it.
        let mut r = ChunkReader::new();
        r.push(&[0xc5, 1, 2, 3]);
        assert!(r.pull().is_err());
        // A new message header on a chunk stream that is mid-message.
        let mut r = ChunkReader::new();
        let mut w = Vec::new();
        write_message(&mut w, 5, 0, types::AUDIO, 1, &[0; 200], 128);
        r.push(&w[..140]);
        write_message(&mut w, 5, 0, types::AUDIO, 1, &[0; 10], 128);
        r.push(&w[w.len() - 22..]);
        assert!(r.pull().is_err());
    }
}
