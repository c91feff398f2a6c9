//! Malformed RTMP gets an error for its connection, never a panic: the inputs that crashed
//! rml_rtmp 0.8.0 (found by fuzzing, kept in `fixtures/`), and commands missing arguments,
//! through our own session.

use ingest::rtmp::amf0::{self, Amf0};
use ingest::rtmp::chunk::{self, types};
use ingest::rtmp::session::{Event, Session, STREAM_ID};

fn command(name: &str, txn: f64, args: &[Amf0], stream: u32) -> Vec<u8> {
    let mut body = Vec::new();
    for v in [amf0::string(name), Amf0::Number(txn)].iter().chain(args) {
        amf0::encode(v, &mut body);
    }
    let mut wire = Vec::new();
    chunk::write_message(&mut wire, 3, 0, types::COMMAND_AMF0, stream, &body, 128);
    wire
}

/// A session that has accepted `connect` to `live` and created stream 1.
fn connected() -> Session {
    let mut s = Session::new();
    let app = amf0::object([("app", amf0::string("live"))]);
    s.push(&command("connect", 1.0, &[app], 0)).unwrap();
    assert_eq!(s.pull(), Some(Event::Connect { app: "live".into() }));
    s.accept_connect().unwrap();
    s.push(&command("createStream", 2.0, &[Amf0::Null], 0))
        .unwrap();
    s.take_output();
    s
}

#[test]
fn fuzz_crash_amf0_command_with_two_values() {
    let input = include_bytes!("fixtures/amf0-command-two-values.bin");
    let mut s = Session::new();
    let _ = s.push(input);
}

#[test]
fn fuzz_crash_extended_timestamp_below_threshold() {
    let input = include_bytes!("fixtures/extended-timestamp-below-threshold.bin");
    let mut s = Session::new();
    for piece in input.chunks(97) {
        if s.push(piece).is_err() {
            break;
        }
    }
}

#[test]
fn publish_without_a_name_is_an_error() {
    let mut s = connected();
    assert!(s
        .push(&command("publish", 3.0, &[Amf0::Null], STREAM_ID))
        .is_err());
    let mut s = connected();
    let ok = command(
        "publish",
        3.0,
        &[Amf0::Null, amf0::string("key")],
        STREAM_ID,
    );
    s.push(&ok).unwrap();
    assert_eq!(s.pull(), Some(Event::Publish { key: "key".into() }));
}

#[test]
fn play_is_refused_with_a_status() {
    let mut s = connected();
    s.push(&command("play", 3.0, &[Amf0::Null], STREAM_ID))
        .unwrap();
    assert_eq!(s.pull(), Some(Event::PlayRefused));
    assert!(!s.take_output().is_empty(), "an error status goes back");
}
