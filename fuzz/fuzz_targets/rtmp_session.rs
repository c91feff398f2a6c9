//! Bytes after the handshake into rml_rtmp's server session (chunk stream, AMF0 commands), and
//! any audio/video it raises into our FLV parser. Nothing may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rml_rtmp::sessions::{ServerSession, ServerSessionConfig, ServerSessionEvent, ServerSessionResult};

fuzz_target!(|data: &[u8]| {
    let Ok((mut session, _)) = ServerSession::new(ServerSessionConfig::new()) else { return };
    for chunk in data.chunks(97) {
        let Ok(results) = session.handle_input(chunk) else { return };
        for r in results {
            if let ServerSessionResult::RaisedEvent(ev) = r {
                match ev {
                    ServerSessionEvent::VideoDataReceived { data, .. } => {
                        let _ = ingest::rtmp::flv::parse_video(&data);
                    }
                    ServerSessionEvent::AudioDataReceived { data, .. } => {
                        let _ = ingest::rtmp::flv::parse_audio(&data);
                    }
                    ServerSessionEvent::ConnectionRequested { request_id, .. }
                    | ServerSessionEvent::PublishStreamRequested { request_id, .. } => {
                        let _ = session.accept_request(request_id);
                    }
                    _ => {}
                }
            }
        }
    }
});
