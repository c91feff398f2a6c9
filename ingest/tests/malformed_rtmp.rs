//! Malformed RTMP commands get an error, never a panic (regressions for rml_rtmp 0.8.0 panics
//! patched in third_party/rml_rtmp; see its ESTUARY.md).

use rml_rtmp::chunk_io::ChunkSerializer;
use rml_rtmp::messages::RtmpMessage;
use rml_rtmp::rml_amf0::Amf0Value;
use rml_rtmp::sessions::{
    ServerSession, ServerSessionConfig, ServerSessionEvent, ServerSessionResult,
};
use rml_rtmp::time::RtmpTimestamp;

fn command(
    ser: &mut ChunkSerializer,
    name: &str,
    txn: f64,
    object: Amf0Value,
    args: Vec<Amf0Value>,
    stream: u32,
) -> Vec<u8> {
    let msg = RtmpMessage::Amf0Command {
        command_name: name.into(),
        transaction_id: txn,
        command_object: object,
        additional_arguments: args,
    };
    let payload = msg
        .into_message_payload(RtmpTimestamp::new(0), stream)
        .unwrap();
    ser.serialize(&payload, false, false).unwrap().bytes
}

/// A session that has accepted `connect` to `live` and created stream 1.
fn connected() -> (ServerSession, ChunkSerializer) {
    let (mut session, _) = ServerSession::new(ServerSessionConfig::new()).unwrap();
    let mut ser = ChunkSerializer::new();
    let mut props = std::collections::HashMap::new();
    props.insert("app".to_string(), Amf0Value::Utf8String("live".into()));
    let bytes = command(
        &mut ser,
        "connect",
        1.0,
        Amf0Value::Object(props),
        vec![],
        0,
    );
    let results = session.handle_input(&bytes).unwrap();
    let request_id = results
        .iter()
        .find_map(|r| match r {
            ServerSessionResult::RaisedEvent(ServerSessionEvent::ConnectionRequested {
                request_id,
                ..
            }) => Some(*request_id),
            _ => None,
        })
        .expect("connect raises a request");
    session.accept_request(request_id).unwrap();
    let bytes = command(&mut ser, "createStream", 2.0, Amf0Value::Null, vec![], 0);
    session.handle_input(&bytes).unwrap();
    (session, ser)
}

/// The session sent something back (for a refused command: its error status).
fn answers(results: &[ServerSessionResult]) -> bool {
    results
        .iter()
        .any(|r| matches!(r, ServerSessionResult::OutboundResponse(_)))
}

#[test]
fn fuzz_crash_amf0_command_with_two_values() {
    let input = include_bytes!("fixtures/amf0-command-two-values.bin");
    let (mut session, _) = ServerSession::new(ServerSessionConfig::new()).unwrap();
    assert!(session.handle_input(input).is_err());
}

#[test]
fn fuzz_crash_extended_timestamp_below_threshold() {
    let input = include_bytes!("fixtures/extended-timestamp-below-threshold.bin");
    let (mut session, _) = ServerSession::new(ServerSessionConfig::new()).unwrap();
    for chunk in input.chunks(97) {
        if session.handle_input(chunk).is_err() {
            break;
        }
    }
}

#[test]
fn publish_without_arguments_is_refused() {
    let (mut session, mut ser) = connected();
    let bytes = command(&mut ser, "publish", 3.0, Amf0Value::Null, vec![], 1);
    let results = session.handle_input(&bytes).unwrap();
    assert!(answers(&results), "an error status goes back");
    let (mut session, mut ser) = connected();
    let bytes = command(
        &mut ser,
        "publish",
        3.0,
        Amf0Value::Null,
        vec![Amf0Value::Utf8String("key".into())],
        1,
    );
    assert!(session.handle_input(&bytes).is_ok());
}

#[test]
fn play_without_arguments_is_refused() {
    let (mut session, mut ser) = connected();
    let bytes = command(&mut ser, "play", 3.0, Amf0Value::Null, vec![], 1);
    let results = session.handle_input(&bytes).unwrap();
    assert!(answers(&results), "an error status goes back");
}
