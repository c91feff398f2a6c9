//! Bytes from an RTMP client into our handshake, then our session (chunk streams, AMF0
//! commands, the publisher's flow), and any audio/video it raises into the FLV parser. The first
//! byte picks whether the input starts with a valid C0+C1+C2 (so the fuzzer reaches the chunk
//! layer at once) or is the handshake itself; the second the slice size it arrives in. Nothing
//! may panic.
#![no_main]

use ingest::rtmp::handshake::{Handshake, PACKET};
use ingest::rtmp::session::{Event, Session};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let [mode, slice, rest @ ..] = data else { return };
    let slice = 1 + *slice as usize * 13;
    let mut handshake = Handshake::new();
    let mut out = Vec::new();
    let mut after = None;
    if mode & 1 == 1 {
        let mut hello = vec![3u8];
        hello.resize(1 + 2 * PACKET, 0);
        after = handshake.push(&hello, &mut out).expect("a valid handshake is taken");
        assert!(after.is_some(), "C0+C1+C2 completes the handshake");
    }
    let mut session = Session::new();
    for chunk in rest.chunks(slice) {
        let bytes = match after.take() {
            Some(mut leftover) => {
                leftover.extend_from_slice(chunk);
                leftover
            }
            None if !handshake.is_done() => match handshake.push(chunk, &mut out) {
                Ok(Some(leftover)) => leftover,
                Ok(None) => continue,
                Err(_) => return,
            },
            None => chunk.to_vec(),
        };
        if session.push(&bytes).is_err() {
            return;
        }
        while let Some(event) = session.pull() {
            let answer = match event {
                Event::Connect { .. } => session.accept_connect(),
                Event::Publish { key } if key.len() % 2 == 0 => session.accept_publish(),
                Event::Publish { .. } => {
                    session.reject_publish("NetStream.Publish.BadName", "no");
                    Ok(())
                }
                Event::Video { data, .. } => {
                    let _ = ingest::rtmp::flv::parse_video(&data);
                    Ok(())
                }
                Event::Audio { data, .. } => {
                    let _ = ingest::rtmp::flv::parse_audio(&data);
                    Ok(())
                }
                _ => Ok(()),
            };
            if answer.is_err() {
                return;
            }
        }
        let _ = session.take_output();
    }
});
