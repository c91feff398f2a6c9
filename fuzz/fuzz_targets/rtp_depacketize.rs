//! RTP packets through the depacketizers WHIP uses (str0m's H.264 / Opus / ... reorder buffer and
//! depacketizers, through its fuzz entry point), then arbitrary depacketized frames through our
//! WHIP adapter. Nothing may panic, and frames only reference announced tracks.
#![no_main]

use bytes::Bytes;
use ingest::whip::adapter::{RtpFrame, SenderClock, WhipAdapter, WhipCodec};
use ingest::AdapterEvent;
use libfuzzer_sys::fuzz_target;
use media::{Timescale, Timestamp};

fuzz_target!(|data: &[u8]| {
    let _ = str0m::_internal_test_exports::fuzz::depack(data);

    // Frames: [flags, len, bytes...]*; flags pick codec, keyframe-ish content, loss, a report.
    let mut a = WhipAdapter::new(data.first().is_some_and(|b| b & 1 == 0), true);
    let (mut rest, mut rtp, mut now, mut tracks) = (data, 0u64, 0i64, 0usize);
    while rest.len() >= 2 {
        let (flags, len) = (rest[0], rest[1] as usize);
        let body = &rest[2..(2 + len).min(rest.len())];
        rest = &rest[(2 + len).min(rest.len())..];
        rtp += (flags as u64) * 97;
        now += (flags as i64) * 1000;
        let codec = match flags % 4 {
            0 => WhipCodec::H264,
            1 => WhipCodec::Av1,
            2 => WhipCodec::Vp9,
            _ => WhipCodec::Opus,
        };
        let clock = Timescale(if codec == WhipCodec::Opus { 48_000 } else { 90_000 });
        let us = |t: i64| Timestamp::new(t, Timescale::MICROS);
        a.push(RtpFrame {
            codec,
            time: Timestamp::new(rtp as i64, clock),
            arrival: us(now),
            contiguous: flags & 2 == 0,
            keyframe: flags & 8 != 0,
            data: Bytes::copy_from_slice(body),
            sender: (flags & 4 != 0).then_some(SenderClock {
                ntp: us(now * 3),
                rtp: Timestamp::new(rtp as i64 / 2, clock),
            }),
        });
        a.tick(us(now));
        let _ = a.wants_keyframe();
        while let Some(ev) = a.pull() {
            match ev {
                AdapterEvent::Start(t) => tracks = t.len(),
                AdapterEvent::Frame(f) => assert!(f.track < tracks && f.pts.ticks >= 0),
                AdapterEvent::Notice(_) | AdapterEvent::Discontinuity => {}
            }
        }
    }
});
