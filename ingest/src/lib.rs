//! Ingest: each protocol turns a publisher's connection into a [`media::Broadcast`].
//!
//! Every protocol module has the same shape: a sans-IO core (parsing, state), a small adapter
//! from protocol messages to the media model, and a thin tokio task for sockets and timers.
//! Publishers are authenticated with a stream key, looked up in [`StreamKeys`].

pub mod rtmp;
pub mod srt;

use std::collections::HashMap;

/// Secret publish keys and the public stream names they publish to.
#[derive(Clone, Debug, Default)]
pub struct StreamKeys {
    by_key: HashMap<String, String>,
}

impl StreamKeys {
    pub fn new(pairs: impl IntoIterator<Item = (String, String)>) -> Self {
        Self {
            by_key: pairs.into_iter().collect(),
        }
    }

    /// The stream name for a publish key, if the key is known.
    pub fn name_for(&self, key: &str) -> Option<&str> {
        self.by_key.get(key).map(String::as_str)
    }
}

/// A key safe to write in a log: enough to tell keys apart, not enough to publish with.
pub fn redact_key(key: &str) -> String {
    let shown: String = key.chars().take(3).collect();
    format!("{shown}…({} chars)", key.chars().count())
}

/// What a protocol adapter produces, in order.
#[derive(Debug, PartialEq)]
pub enum AdapterEvent {
    /// The broadcast can start with these tracks; frames follow.
    Start(Vec<media::TrackInfo>),
    Frame(media::Frame),
    /// Something worth one log line (a dropped frame, an ignored change).
    Notice(String),
}
