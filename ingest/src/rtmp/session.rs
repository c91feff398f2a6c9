//! An RTMP server session for publishers, sans-IO: the bytes after the handshake in
//! ([`Session::push`]), events out ([`Session::pull`]), bytes to send out
//! ([`Session::take_output`]).
//!
//! It answers what a publisher sends (ffmpeg, OBS, GStreamer's `rtmp2sink`, hardware encoders):
//! `connect`, `releaseStream`/`FCPublish`, `createStream`, `publish`, `@setDataFrame`, media,
//! `FCUnpublish`/`deleteStream`, and the control messages (chunk size, acknowledgements,
//! pings). Whether a `connect` or a `publish` is let in is the caller's decision
//! ([`Event::Connect`], [`Event::Publish`]). Until a publish is accepted the chunk reader runs
//! with small limits ([`Limits::ADMISSION`]), and commands are AMF0 decoded with a depth limit.

use std::collections::VecDeque;

use bytes::Bytes;

use super::amf0::{self, Amf0};
use super::chunk::{self, types, ChunkError, ChunkReader, Limits, Message};

/// The chunk size we send with (announced in the `connect` answer).
const OUT_CHUNK_SIZE: usize = 4096;
/// Window acknowledgement size and peer bandwidth we announce.
const WINDOW: u32 = 2_500_000;
/// The message stream `createStream` gives a publisher.
pub const STREAM_ID: u32 = 1;
/// Chunk streams we send on: control, commands, the publisher's stream's status.
const CONTROL_CSID: u32 = 2;
const COMMAND_CSID: u32 = 3;
const STATUS_CSID: u32 = 5;

#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// `connect` to `app`: answer with [`Session::accept_connect`] or
    /// [`Session::reject_connect`].
    Connect {
        app: String,
    },
    /// `publish` with `key` (any query string left on): answer with
    /// [`Session::accept_publish`] or [`Session::reject_publish`].
    Publish {
        key: String,
    },
    /// `@setDataFrame`/`onMetaData`: the publisher's description of its stream.
    Metadata(Amf0),
    Audio {
        timestamp: u32,
        data: Bytes,
    },
    Video {
        timestamp: u32,
        data: Bytes,
    },
    /// The publisher stopped (`FCUnpublish`, `deleteStream`, `closeStream`).
    Unpublish,
    /// A client asked to play; it was told no.
    PlayRefused,
}

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("{0}")]
    Chunk(#[from] ChunkError),
    #[error("chunk stream {csid}, message type {type_id}: {source}")]
    Amf0 {
        csid: u32,
        type_id: u8,
        source: amf0::Amf0Error,
    },
    #[error("chunk stream {csid}: {what}")]
    Protocol { csid: u32, what: &'static str },
}

#[derive(Debug, PartialEq, Eq, Clone, Copy)]
enum State {
    /// Waiting for `connect`.
    Start,
    /// `connect` asked; the caller decides.
    Connecting,
    Connected,
    /// `publish` asked; the caller decides.
    Asking,
    Publishing,
}

#[derive(Debug)]
pub struct Session {
    reader: ChunkReader,
    state: State,
    events: VecDeque<Event>,
    out: Vec<u8>,
    /// The transaction ids of the `connect` and `publish` waiting for an answer.
    connect_txn: f64,
    publish_txn: f64,
    /// The peer's window: acknowledge each time this many more bytes have come.
    peer_window: Option<u32>,
    acked: u64,
}

impl Default for Session {
    fn default() -> Self {
        Session {
            reader: ChunkReader::new(),
            state: State::Start,
            events: VecDeque::new(),
            out: Vec::new(),
            connect_txn: 1.0,
            publish_txn: 0.0,
            peer_window: None,
            acked: 0,
        }
    }
}

fn command(name: &str, txn: f64, args: &[Amf0]) -> Vec<u8> {
    let mut b = Vec::new();
    amf0::encode(&amf0::string(name), &mut b);
    amf0::encode(&Amf0::Number(txn), &mut b);
    for a in args {
        amf0::encode(a, &mut b);
    }
    b
}

fn status(level: &str, code: &str, description: &str) -> Amf0 {
    amf0::object([
        ("level", amf0::string(level)),
        ("code", amf0::string(code)),
        ("description", amf0::string(description)),
    ])
}

impl Session {
    pub fn new() -> Self {
        Self::default()
    }

    /// A publish has been accepted.
    pub fn is_publishing(&self) -> bool {
        self.state == State::Publishing
    }

    /// Takes bytes from the peer. An error ends the session: the peer broke the protocol or a
    /// limit (it names the chunk stream, message type and offset). While a `connect` or
    /// `publish` waits for the caller's answer, what follows it stays unread; the answer goes
    /// on with it.
    pub fn push(&mut self, data: &[u8]) -> Result<(), SessionError> {
        self.reader.push(data);
        while !self.deciding() {
            let Some(m) = self.reader.pull()? else { break };
            self.message(m)?;
        }
        self.acknowledge();
        Ok(())
    }

    /// A `connect` or `publish` waits for the caller.
    fn deciding(&self) -> bool {
        matches!(self.state, State::Connecting | State::Asking)
    }

    pub fn pull(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// What to send to the peer.
    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }

    fn send(&mut self, csid: u32, type_id: u8, stream_id: u32, payload: &[u8]) {
        chunk::write_message(
            &mut self.out,
            csid,
            0,
            type_id,
            stream_id,
            payload,
            OUT_CHUNK_SIZE,
        );
    }

    fn send_command(&mut self, csid: u32, stream_id: u32, name: &str, txn: f64, args: &[Amf0]) {
        let b = command(name, txn, args);
        self.send(csid, types::COMMAND_AMF0, stream_id, &b);
    }

    /// An Acknowledgement each time the peer's window has filled.
    fn acknowledge(&mut self) {
        let Some(window) = self.peer_window.filter(|w| *w > 0) else {
            return;
        };
        let received = self.reader.consumed();
        if received - self.acked >= window as u64 {
            self.acked = received;
            self.send(
                CONTROL_CSID,
                types::ACKNOWLEDGEMENT,
                0,
                &(received as u32).to_be_bytes(),
            );
        }
    }

    fn message(&mut self, m: Message) -> Result<(), SessionError> {
        let protocol = |what| SessionError::Protocol { csid: m.csid, what };
        match m.type_id {
            types::SET_CHUNK_SIZE => {
                let size = be_u32(&m.payload).ok_or(protocol("short Set Chunk Size"))? as usize;
                if size == 0 || size > chunk::MAX_CHUNK_SIZE {
                    return Err(protocol("chunk size out of range"));
                }
                self.reader.set_chunk_size(size);
            }
            types::ABORT => {
                let csid = be_u32(&m.payload).ok_or(protocol("short Abort"))?;
                self.reader.abort(csid);
            }
            types::WINDOW_ACK_SIZE => {
                self.peer_window = Some(be_u32(&m.payload).ok_or(protocol("short window size"))?);
            }
            // A ping request (event 6) is answered with its timestamp (event 7).
            types::USER_CONTROL if m.payload.len() >= 6 && m.payload[..2] == [0, 6] => {
                let mut pong = vec![0, 7];
                pong.extend_from_slice(&m.payload[2..6]);
                self.send(CONTROL_CSID, types::USER_CONTROL, 0, &pong);
            }
            types::USER_CONTROL => {}
            types::ACKNOWLEDGEMENT | types::SET_PEER_BANDWIDTH => {}
            types::AUDIO | types::VIDEO if self.state == State::Publishing => {
                let (timestamp, data) = (m.timestamp, m.payload);
                self.events.push_back(if m.type_id == types::AUDIO {
                    Event::Audio { timestamp, data }
                } else {
                    Event::Video { timestamp, data }
                });
            }
            types::AUDIO | types::VIDEO => {} // before the publish is accepted: not ours yet
            types::COMMAND_AMF0 | types::COMMAND_AMF3 | types::DATA_AMF0 | types::DATA_AMF3 => {
                // AMF3 messages start with a format byte and then, from publishers, hold AMF0.
                let body = if matches!(m.type_id, types::COMMAND_AMF3 | types::DATA_AMF3) {
                    m.payload.get(1..).unwrap_or_default()
                } else {
                    &m.payload[..]
                };
                let values = amf0::decode_all(body).map_err(|source| SessionError::Amf0 {
                    csid: m.csid,
                    type_id: m.type_id,
                    source,
                })?;
                if matches!(m.type_id, types::DATA_AMF0 | types::DATA_AMF3) {
                    self.data(values);
                } else {
                    self.command(m.csid, m.stream_id, values)?;
                }
            }
            _ => {} // other types (shared objects, aggregates) are not used by publishers
        }
        Ok(())
    }

    fn data(&mut self, values: Vec<Amf0>) {
        // `@setDataFrame`, `onMetaData`, {...}; or `onMetaData`, {...}.
        let mut it = values
            .into_iter()
            .skip_while(|v| v.as_str() == Some("@setDataFrame"));
        if it
            .next()
            .and_then(|v| v.as_str().map(str::to_string))
            .as_deref()
            == Some("onMetaData")
        {
            if let Some(meta) = it.next() {
                self.events.push_back(Event::Metadata(meta));
            }
        }
    }

    fn command(
        &mut self,
        csid: u32,
        stream_id: u32,
        values: Vec<Amf0>,
    ) -> Result<(), SessionError> {
        let mut it = values.into_iter();
        let name = match it.next() {
            Some(Amf0::String(s)) => s,
            _ => {
                return Err(SessionError::Protocol {
                    csid,
                    what: "a command without a name",
                })
            }
        };
        let txn = it.next().and_then(|v| v.as_number()).unwrap_or(0.0);
        let args: Vec<Amf0> = it.collect();
        match name.as_str() {
            "connect" if self.state == State::Start => {
                let app = args
                    .first()
                    .and_then(|o| o.get("app"))
                    .and_then(Amf0::as_str)
                    .unwrap_or_default()
                    .to_string();
                self.connect_txn = txn;
                self.state = State::Connecting;
                self.events.push_back(Event::Connect { app });
            }
            "connect" => {
                return Err(SessionError::Protocol {
                    csid,
                    what: "connect sent twice",
                })
            }
            _ if matches!(self.state, State::Start | State::Connecting) => {
                return Err(SessionError::Protocol {
                    csid,
                    what: "a command before connect",
                })
            }
            "releaseStream" | "FCPublish" => {
                // Answered so clients that wait for it go on; nothing to release.
                self.send_command(
                    COMMAND_CSID,
                    0,
                    "_result",
                    txn,
                    &[Amf0::Null, Amf0::Undefined],
                );
                if name == "FCPublish" {
                    let key = args.get(1).and_then(Amf0::as_str).unwrap_or_default();
                    let st = status("status", "NetStream.Publish.Start", key);
                    self.send_command(COMMAND_CSID, 0, "onFCPublish", 0.0, &[Amf0::Null, st]);
                }
            }
            "createStream" => {
                self.send_command(
                    COMMAND_CSID,
                    0,
                    "_result",
                    txn,
                    &[Amf0::Null, Amf0::Number(STREAM_ID as f64)],
                );
            }
            "publish" if self.state == State::Connected => {
                let Some(key) = args.get(1).and_then(Amf0::as_str) else {
                    return Err(SessionError::Protocol {
                        csid,
                        what: "publish without a name",
                    });
                };
                self.publish_txn = txn;
                self.state = State::Asking;
                self.events.push_back(Event::Publish {
                    key: key.to_string(),
                });
            }
            "publish" => {
                return Err(SessionError::Protocol {
                    csid,
                    what: "publish sent twice",
                })
            }
            "FCUnpublish" | "deleteStream" | "closeStream" if self.state == State::Publishing => {
                self.state = State::Connected;
                self.events.push_back(Event::Unpublish);
            }
            "play" => {
                let st = status(
                    "error",
                    "NetStream.Play.Failed",
                    "playback over RTMP is not offered; use HLS",
                );
                self.send_command(STATUS_CSID, stream_id, "onStatus", 0.0, &[Amf0::Null, st]);
                self.events.push_back(Event::PlayRefused);
            }
            _ => {} // getStreamLength, _checkbw, ...: nothing a publisher waits for
        }
        Ok(())
    }

    /// Lets the `connect` in: the control messages and the `_result` a client waits for. Then
    /// goes on with what the client sent after it.
    pub fn accept_connect(&mut self) -> Result<(), SessionError> {
        if self.state != State::Connecting {
            return Ok(());
        }
        self.send(
            CONTROL_CSID,
            types::WINDOW_ACK_SIZE,
            0,
            &WINDOW.to_be_bytes(),
        );
        let mut bw = WINDOW.to_be_bytes().to_vec();
        bw.push(2); // dynamic
        self.send(CONTROL_CSID, types::SET_PEER_BANDWIDTH, 0, &bw);
        self.send(
            CONTROL_CSID,
            types::SET_CHUNK_SIZE,
            0,
            &(OUT_CHUNK_SIZE as u32).to_be_bytes(),
        );
        let props = amf0::object([
            ("fmsVer", amf0::string("FMS/3,0,1,123")),
            ("capabilities", Amf0::Number(31.0)),
        ]);
        let info = amf0::object([
            ("level", amf0::string("status")),
            ("code", amf0::string("NetConnection.Connect.Success")),
            ("description", amf0::string("Connection succeeded.")),
            ("objectEncoding", Amf0::Number(0.0)),
        ]);
        self.send_command(COMMAND_CSID, 0, "_result", self.connect_txn, &[props, info]);
        self.state = State::Connected;
        self.push(&[])
    }

    /// Turns the `connect` away with `description`; the caller then closes the connection.
    pub fn reject_connect(&mut self, description: &str) {
        let info = status("error", "NetConnection.Connect.Rejected", description);
        self.send_command(
            COMMAND_CSID,
            0,
            "_error",
            self.connect_txn,
            &[Amf0::Null, info],
        );
    }

    /// Lets the `publish` in: media follows, with a publisher's limits.
    pub fn accept_publish(&mut self) -> Result<(), SessionError> {
        if self.state != State::Asking {
            return Ok(());
        }
        // User control: Stream Begin on the publisher's stream.
        let mut begin = vec![0, 0];
        begin.extend_from_slice(&STREAM_ID.to_be_bytes());
        self.send(CONTROL_CSID, types::USER_CONTROL, 0, &begin);
        let st = status("status", "NetStream.Publish.Start", "Publishing.");
        self.send_command(STATUS_CSID, STREAM_ID, "onStatus", 0.0, &[Amf0::Null, st]);
        self.reader.set_limits(Limits::PUBLISHING);
        self.state = State::Publishing;
        self.push(&[])
    }

    /// Turns the `publish` away (`code` such as `NetStream.Publish.BadName`); the caller then
    /// closes the connection.
    pub fn reject_publish(&mut self, code: &str, description: &str) {
        self.error_status(code, description);
    }

    /// An `onStatus` error on the publisher's stream (why the connection is closing).
    pub fn error_status(&mut self, code: &str, description: &str) {
        let st = status("error", code, description);
        self.send_command(STATUS_CSID, STREAM_ID, "onStatus", 0.0, &[Amf0::Null, st]);
    }
}

fn be_u32(b: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(..4)?.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A publisher's side, written with our own chunk writer.
    struct Client {
        wire: Vec<u8>,
    }

    impl Client {
        fn new() -> Self {
            Client { wire: Vec::new() }
        }

        fn command(&mut self, stream_id: u32, name: &str, txn: f64, args: &[Amf0]) -> &mut Self {
            let b = command(name, txn, args);
            chunk::write_message(
                &mut self.wire,
                3,
                0,
                types::COMMAND_AMF0,
                stream_id,
                &b,
                128,
            );
            self
        }

        fn media(&mut self, type_id: u8, ts: u32, data: &[u8]) -> &mut Self {
            chunk::write_message(&mut self.wire, 6, ts, type_id, STREAM_ID, data, 128);
            self
        }

        fn take(&mut self) -> Vec<u8> {
            std::mem::take(&mut self.wire)
        }
    }

    fn events(s: &mut Session) -> Vec<Event> {
        std::iter::from_fn(|| s.pull()).collect()
    }

    /// Every command in `out`, decoded.
    fn commands(out: &[u8]) -> Vec<Vec<Amf0>> {
        let mut r = ChunkReader::new();
        r.set_chunk_size(OUT_CHUNK_SIZE);
        r.push(out);
        let mut got = Vec::new();
        while let Some(m) = r.pull().unwrap() {
            if m.type_id == types::SET_CHUNK_SIZE {
                r.set_chunk_size(be_u32(&m.payload).unwrap() as usize);
            }
            if m.type_id == types::COMMAND_AMF0 {
                got.push(amf0::decode_all(&m.payload).unwrap());
            }
        }
        got
    }

    #[test]
    fn a_publisher_is_let_in_step_by_step() {
        let mut s = Session::new();
        let mut c = Client::new();
        c.command(
            0,
            "connect",
            1.0,
            &[amf0::object([("app", amf0::string("live"))])],
        );
        s.push(&c.take()).unwrap();
        assert_eq!(events(&mut s), vec![Event::Connect { app: "live".into() }]);
        s.accept_connect().unwrap();
        let out = s.take_output();
        let answers = commands(&out);
        assert_eq!(answers[0][0], amf0::string("_result"));
        assert_eq!(
            answers[0][3].get("code").and_then(Amf0::as_str),
            Some("NetConnection.Connect.Success")
        );
        c.command(0, "releaseStream", 2.0, &[Amf0::Null, amf0::string("key")])
            .command(0, "FCPublish", 3.0, &[Amf0::Null, amf0::string("key")])
            .command(0, "createStream", 4.0, &[Amf0::Null])
            .command(
                STREAM_ID,
                "publish",
                5.0,
                &[Amf0::Null, amf0::string("key?x=1"), amf0::string("live")],
            );
        // Media sent before the answer waits for it.
        c.media(types::VIDEO, 0, b"early");
        s.push(&c.take()).unwrap();
        assert_eq!(
            events(&mut s),
            vec![Event::Publish {
                key: "key?x=1".into()
            }]
        );
        let created = commands(&s.take_output());
        assert!(created.iter().any(|c| c[0] == amf0::string("_result")
            && c[1] == Amf0::Number(4.0)
            && c[3] == Amf0::Number(1.0)));
        s.accept_publish().unwrap();
        assert_eq!(
            events(&mut s),
            vec![Event::Video {
                timestamp: 0,
                data: Bytes::from_static(b"early")
            }]
        );
        let started = commands(&s.take_output());
        assert_eq!(
            started[0][3].get("code").and_then(Amf0::as_str),
            Some("NetStream.Publish.Start")
        );
        let mut meta = Vec::new();
        for v in [
            amf0::string("@setDataFrame"),
            amf0::string("onMetaData"),
            amf0::object([("width", Amf0::Number(1280.0))]),
        ] {
            amf0::encode(&v, &mut meta);
        }
        chunk::write_message(&mut c.wire, 4, 0, types::DATA_AMF0, STREAM_ID, &meta, 128);
        c.media(types::VIDEO, 40, b"frame")
            .media(types::AUDIO, 41, b"aac");
        c.command(
            STREAM_ID,
            "deleteStream",
            6.0,
            &[Amf0::Null, Amf0::Number(1.0)],
        );
        s.push(&c.take()).unwrap();
        let ev = events(&mut s);
        assert!(
            matches!(&ev[0], Event::Metadata(m) if m.get("width") == Some(&Amf0::Number(1280.0)))
        );
        assert_eq!(
            ev[1],
            Event::Video {
                timestamp: 40,
                data: Bytes::from_static(b"frame")
            }
        );
        assert_eq!(
            ev[2],
            Event::Audio {
                timestamp: 41,
                data: Bytes::from_static(b"aac")
            }
        );
        assert_eq!(ev[3], Event::Unpublish);
    }

    #[test]
    fn out_of_order_and_oversized_are_errors() {
        let mut s = Session::new();
        let mut c = Client::new();
        c.command(0, "publish", 1.0, &[Amf0::Null, amf0::string("k")]);
        assert!(matches!(
            s.push(&c.take()),
            Err(SessionError::Protocol { .. })
        ));
        // Before admission, a 100 KB command is refused by its length alone.
        let mut s = Session::new();
        let mut wire = Vec::new();
        chunk::write_message(
            &mut wire,
            3,
            0,
            types::COMMAND_AMF0,
            0,
            &vec![5u8; 100_000],
            128,
        );
        assert!(matches!(s.push(&wire[..200]), Err(SessionError::Chunk(_))));
    }

    /// The AMF0 bomb: a command nesting a quarter of a million objects. An error for this
    /// connection, not a stack overflow for the process.
    #[test]
    fn the_amf0_bomb_is_an_error() {
        let mut s = Session::new();
        let mut b = Vec::new();
        amf0::encode(&amf0::string("connect"), &mut b);
        amf0::encode(&Amf0::Number(1.0), &mut b);
        while b.len() < 60_000 {
            b.extend_from_slice(&[0x03, 0, 1, b'a']);
        }
        let mut wire = Vec::new();
        chunk::write_message(&mut wire, 3, 0, types::COMMAND_AMF0, 0, &b, 128);
        let e = s.push(&wire).unwrap_err();
        assert!(e.to_string().contains("nested too deep"), "{e}");
    }

    #[test]
    fn pings_and_acknowledgements() {
        let mut s = Session::new();
        let mut wire = Vec::new();
        chunk::write_message(
            &mut wire,
            2,
            0,
            types::WINDOW_ACK_SIZE,
            0,
            &1000u32.to_be_bytes(),
            128,
        );
        chunk::write_message(
            &mut wire,
            2,
            0,
            types::USER_CONTROL,
            0,
            &[0, 6, 0, 0, 1, 2],
            128,
        );
        chunk::write_message(&mut wire, 4, 0, types::DATA_AMF0, 0, &[0x05; 1200], 128);
        s.push(&wire).unwrap();
        let mut r = ChunkReader::new();
        r.push(&s.take_output());
        let mut kinds = Vec::new();
        while let Some(m) = r.pull().unwrap() {
            kinds.push((m.type_id, m.payload.to_vec()));
        }
        assert!(
            kinds.contains(&(types::USER_CONTROL, vec![0, 7, 0, 0, 1, 2])),
            "pong"
        );
        assert!(
            kinds.iter().any(|(t, _)| *t == types::ACKNOWLEDGEMENT),
            "ack after the window"
        );
    }

    /// What OBS 30+ sends for Enhanced RTMP: a `connect` object with a strict array
    /// `fourCcList` and FMLE's fields, a numeric FourCC as `videocodecid`, then `hvc1` video
    /// messages (ExHeader bit, packet type, FourCC) that reach the FLV parser as HEVC.
    #[test]
    fn an_obs_enhanced_rtmp_publish() {
        use crate::rtmp::flv::{parse_video, FlvVideoCodec, VideoMessage};
        let mut s = Session::new();
        let mut c = Client::new();
        let four_ccs = ["av01", "vp09", "hvc1"].map(amf0::string).to_vec();
        c.command(
            0,
            "connect",
            1.0,
            &[amf0::object([
                ("app", amf0::string("live")),
                ("type", amf0::string("nonprivate")),
                ("flashVer", amf0::string("FMLE/3.0 (compatible; FMSc/1.0)")),
                ("swfUrl", amf0::string("rtmp://localhost/live")),
                ("tcUrl", amf0::string("rtmp://localhost/live")),
                ("fourCcList", Amf0::StrictArray(four_ccs)),
            ])],
        );
        s.push(&c.take()).unwrap();
        assert_eq!(events(&mut s), vec![Event::Connect { app: "live".into() }]);
        s.accept_connect().unwrap();
        c.command(0, "releaseStream", 2.0, &[Amf0::Null, amf0::string("key")])
            .command(0, "FCPublish", 3.0, &[Amf0::Null, amf0::string("key")])
            .command(0, "createStream", 4.0, &[Amf0::Null])
            .command(
                STREAM_ID,
                "publish",
                5.0,
                &[Amf0::Null, amf0::string("key"), amf0::string("live")],
            );
        s.push(&c.take()).unwrap();
        assert_eq!(events(&mut s), vec![Event::Publish { key: "key".into() }]);
        s.accept_publish().unwrap();
        let mut meta = Vec::new();
        let hvc1 = u32::from_be_bytes(*b"hvc1") as f64;
        for v in [
            amf0::string("@setDataFrame"),
            amf0::string("onMetaData"),
            amf0::object([
                ("videocodecid", Amf0::Number(hvc1)),
                ("width", Amf0::Number(1920.0)),
            ]),
        ] {
            amf0::encode(&v, &mut meta);
        }
        chunk::write_message(&mut c.wire, 4, 0, types::DATA_AMF0, STREAM_ID, &meta, 128);
        // ExHeader | keyframe, SequenceStart, hvc1, a (short) configuration record.
        let mut start = vec![0x80 | 0x10, b'h', b'v', b'c', b'1'];
        start.extend_from_slice(&[1; 23]);
        // ExHeader | keyframe | CodedFramesX (no composition time), hvc1, a NAL unit.
        let mut frame = vec![0x80 | 0x10 | 3, b'h', b'v', b'c', b'1'];
        frame.extend_from_slice(&[0, 0, 0, 2, 0x26, 0x01]);
        c.media(types::VIDEO, 0, &start)
            .media(types::VIDEO, 0, &frame);
        s.push(&c.take()).unwrap();
        let ev = events(&mut s);
        assert!(
            matches!(&ev[0], Event::Metadata(m) if m.get("videocodecid") == Some(&Amf0::Number(hvc1)))
        );
        let video: Vec<_> = ev[1..]
            .iter()
            .map(|e| match e {
                Event::Video { data, .. } => parse_video(data).unwrap(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert!(matches!(
            video[0],
            VideoMessage::SequenceHeader {
                codec: FlvVideoCodec::H265,
                ..
            }
        ));
        assert!(matches!(
            video[1],
            VideoMessage::Frame {
                codec: FlvVideoCodec::H265,
                keyframe: true,
                cts: 0,
                ..
            }
        ));
    }
}
