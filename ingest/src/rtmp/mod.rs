//! RTMP ingest (OBS, ffmpeg, hardware encoders) on top of rml_rtmp's sans-IO session.
//!
//! `flv` parses audio/video message bodies (legacy FLV and Enhanced RTMP), `adapter` turns
//! them into tracks and frames, and `task` accepts connections ([`serve`]) and runs each one
//! around `rml_rtmp::sessions::ServerSession`.

pub mod adapter;
pub mod amf0;
pub mod chunk;
pub mod flv;
pub mod handshake;
pub mod session;
pub mod task;

pub use task::{serve, RtmpConfig, RtmpError};
