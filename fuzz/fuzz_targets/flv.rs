//! FLV / Enhanced RTMP tag bodies through the parser and the media adapter, as a sequence of
//! messages: [kind, ts(4), len(2), body...]*. Nothing may panic; every frame that comes out
//! must belong to a track that was announced.
#![no_main]

use bytes::Bytes;
use ingest::rtmp::adapter::Adapter;
use ingest::AdapterEvent;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut adapter = Adapter::new();
    let mut tracks = 0usize;
    let mut rest = data;
    while rest.len() >= 7 {
        let kind = rest[0];
        let ts = u32::from_be_bytes([rest[1], rest[2], rest[3], rest[4]]);
        let len = (u16::from_be_bytes([rest[5], rest[6]]) as usize).min(rest.len() - 7);
        let body = Bytes::copy_from_slice(&rest[7..7 + len]);
        rest = &rest[7 + len..];
        let _ = ingest::rtmp::flv::parse_video(&body);
        let _ = ingest::rtmp::flv::parse_audio(&body);
        let _ = if kind & 1 == 0 { adapter.video(ts, &body) } else { adapter.audio(ts, &body) };
        while let Some(ev) = adapter.pull() {
            match ev {
                AdapterEvent::Start(t) => {
                    for info in &t {
                        let _ = info.codec.codec_string();
                    }
                    tracks = t.len();
                }
                AdapterEvent::Frame(f) => assert!(f.track < tracks),
                AdapterEvent::Notice(_) | AdapterEvent::Discontinuity => {}
            }
        }
    }
});
