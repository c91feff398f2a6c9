//! What an edge reads from Redis, made up: a stream entry's fields (any names, any values) and
//! a stream's meta (JSON). Nothing may panic; what parses makes a window that takes the part.
#![no_main]

use std::collections::HashMap;

use libfuzzer_sys::fuzz_target;
use packager::window::StreamWindow;
use replica::wire::{Event, Meta};

fuzz_target!(|data: &[u8]| {
    // Fields: [name length, name, value length (2 bytes), value]*
    let mut fields = HashMap::new();
    let mut rest = data;
    while let [n, tail @ ..] = rest {
        let n = *n as usize % 16;
        let Some((name, tail)) = tail.split_at_checked(n) else { break };
        let [a, b, tail @ ..] = tail else { break };
        let len = u16::from_be_bytes([*a, *b]) as usize;
        let (value, tail) = tail.split_at(len.min(tail.len()));
        fields.insert(
            String::from_utf8_lossy(name).into_owned(),
            redis::Value::BulkString(value.to_vec()),
        );
        rest = tail;
    }
    let event = Event::from_fields(&mut fields);
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(meta) = Meta::from_json(text) else { return };
    let tracks: Vec<_> = meta
        .tracks
        .iter()
        .filter_map(|t| t.track_info().ok())
        .map(|t| (t, bytes::Bytes::new()))
        .collect();
    let w = StreamWindow::new("s", meta.session.clone(), meta.window_config(), tracks)
        .with_started(meta.started_at());
    if let Ok(Event::Part(p)) = event {
        w.push_part(p);
        w.read(|st| {
            for track in 0..st.tracks.len() {
                packager::hls::media_playlist(&w, st, track, packager::hls::Skip::No);
            }
            packager::dash::mpd(&w, st, std::time::SystemTime::now(), "http://h/t");
        });
    }
});
