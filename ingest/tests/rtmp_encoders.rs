//! What real encoders send, captured (`fixtures/*-rtmp-publish.bin`, a `.txt` beside each),
//! through our handshake, session and adapter: every one is let in and becomes a broadcast.

use ingest::rtmp::adapter::Adapter;
use ingest::rtmp::handshake::Handshake;
use ingest::rtmp::session::{Event, Session};
use ingest::AdapterEvent;

/// (events in order as names, media frames out of the adapter, its tracks' codecs)
fn replay(capture: &[u8]) -> (Vec<String>, usize, Vec<String>) {
    let mut h = Handshake::new();
    let mut out = Vec::new();
    let mut rest = None;
    // As TCP may cut it: in pieces of odd sizes.
    let mut pieces = capture.chunks(1391);
    for piece in pieces.by_ref() {
        if let Some(r) = h.push(piece, &mut out).unwrap() {
            rest = Some(r);
            break;
        }
    }
    assert_eq!(out.len(), 1 + 2 * 1536, "S0, S1, S2");
    let mut s = Session::new();
    let mut adapter = Adapter::new();
    let (mut names, mut frames, mut codecs) = (Vec::new(), 0, Vec::new());
    let mut feed = |s: &mut Session, bytes: &[u8]| {
        s.push(bytes).unwrap();
        while let Some(ev) = s.pull() {
            let name = match &ev {
                Event::Connect { app } => {
                    assert_eq!(app, "live");
                    s.accept_connect().unwrap();
                    "connect"
                }
                Event::Publish { key } => {
                    assert_eq!(key, "test-key-0123");
                    s.accept_publish().unwrap();
                    "publish"
                }
                Event::Metadata(_) => "metadata",
                Event::Video { timestamp, data } => {
                    adapter.video(*timestamp, data).unwrap();
                    "video"
                }
                Event::Audio { timestamp, data } => {
                    adapter.audio(*timestamp, data).unwrap();
                    "audio"
                }
                Event::Unpublish => "unpublish",
                Event::PlayRefused => "play",
            };
            if names.last().map(String::as_str) != Some(name) {
                names.push(name.to_string());
            }
            while let Some(a) = adapter.pull() {
                match a {
                    AdapterEvent::Start(t) => {
                        codecs = t.iter().map(|t| t.codec.codec_string()).collect()
                    }
                    AdapterEvent::Frame(_) => frames += 1,
                    _ => {}
                }
            }
        }
        s.take_output();
    };
    feed(&mut s, &rest.expect("the handshake completes"));
    for piece in pieces {
        feed(&mut s, piece);
    }
    (names, frames, codecs)
}

#[test]
fn ffmpeg_5_1() {
    let (names, frames, codecs) = replay(include_bytes!("fixtures/ffmpeg-5.1-rtmp-publish.bin"));
    assert_eq!(names[..3], ["connect", "publish", "metadata"], "{names:?}");
    assert_eq!(
        names.last().map(String::as_str),
        Some("unpublish"),
        "{names:?}"
    );
    assert!(
        frames > 50,
        "{frames} frames for 2 s of 15 fps video and AAC"
    );
    assert_eq!(codecs, ["avc1.42c00c", "mp4a.40.2"]);
}

#[test]
fn gstreamer_1_22_rtmp2sink() {
    let (names, frames, codecs) = replay(include_bytes!(
        "fixtures/gstreamer-1.22-rtmp2sink-publish.bin"
    ));
    assert_eq!(names[..2], ["connect", "publish"], "{names:?}");
    assert!(names.contains(&"metadata".to_string()), "{names:?}");
    assert_eq!(
        names.last().map(String::as_str),
        Some("unpublish"),
        "{names:?}"
    );
    assert!(frames > 50, "{frames} frames");
    assert_eq!(codecs.len(), 2, "{codecs:?}");
}
