//! RTMP ingest (OBS, ffmpeg, GStreamer, hardware encoders) on a sans-IO server of our own.
//!
//! Bytes flow down the files: `handshake` (C0/C1/C2, plain and digest forms), `chunk` (chunk
//! streams into whole messages, with limits that are tight until a publisher is admitted),
//! `amf0` (command values, nesting bounded), `session` (the publisher's commands: connect,
//! createStream, publish, unpublish; our answers), `flv` (audio/video message bodies, legacy
//! FLV and Enhanced RTMP), `adapter` (tracks and frames), and `task` accepts connections
//! ([`serve`]) and runs each one around them.

pub mod adapter;
pub mod amf0;
pub mod chunk;
pub mod flv;
pub mod handshake;
pub mod session;
pub mod task;

pub use task::{serve, RtmpConfig, RtmpError};
