//! What retina hands the RTSP puller, made up: connections, parameter changes, video and audio
//! frames with any timestamps, loss and bytes, through our keyframe check and adapter.
//! Nothing may panic; frames reference announced tracks and each track's time increases.
#![no_main]

use bytes::Bytes;
use ingest::rtsp::adapter::{Kind, RtspAdapter};
use ingest::AdapterEvent;
use libfuzzer_sys::fuzz_target;
use media::{CodecConfig, Timescale, Timestamp, TrackInfo};

fn us(t: i64) -> Timestamp {
    Timestamp::new(t, Timescale::MICROS)
}

fuzz_target!(|data: &[u8]| {
    let mut a = RtspAdapter::new();
    let (mut rest, mut now, mut tracks) = (data, 0i64, 0usize);
    let mut last = [i64::MIN; 2];
    while rest.len() >= 4 {
        let (op, t, len) = (rest[0], i16::from_be_bytes([rest[1], rest[2]]) as i64, rest[3] as usize);
        let body = &rest[4..(4 + len).min(rest.len())];
        rest = &rest[(4 + len).min(rest.len())..];
        now += (op as i64) * 1000;
        match op % 6 {
            0 => a.connect(op & 8 != 0, op & 16 != 0),
            1 => a.params(
                Kind::Video,
                TrackInfo::video(CodecConfig::H264 { avcc: Bytes::copy_from_slice(body) }),
            ),
            2 => a.params(
                Kind::Audio,
                TrackInfo::audio(CodecConfig::Aac { asc: Bytes::copy_from_slice(body) }, 48_000, 2),
            ),
            3 | 4 => {
                let key = ingest::rtsp::has_random_access(body, op & 8 != 0);
                let at = Timestamp::new(t * 100, Timescale::VIDEO);
                a.video(at, key || op & 16 != 0, op & 32 != 0, Bytes::copy_from_slice(body), us(now));
            }
            _ => a.audio(Timestamp::new(t * 50, Timescale(48_000)), Bytes::copy_from_slice(body), us(now)),
        }
        while let Some(ev) = a.pull() {
            match ev {
                AdapterEvent::Start(t) => {
                    tracks = t.len();
                    last = [i64::MIN; 2];
                }
                AdapterEvent::Frame(f) => {
                    assert!(f.track < tracks);
                    assert!(f.pts.ticks > last[f.track], "time went back");
                    last[f.track] = f.pts.ticks;
                }
                AdapterEvent::Notice(_) | AdapterEvent::Discontinuity => {}
            }
        }
    }
});
