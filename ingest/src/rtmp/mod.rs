//! RTMP ingest (OBS, ffmpeg, hardware encoders) on top of rml_rtmp's sans-IO session.
//!
//! `flv` parses audio/video message bodies (legacy FLV and Enhanced RTMP), `adapter` turns
//! them into tracks and frames, `conn` is the per-connection task around
//! `rml_rtmp::sessions::ServerSession`, and [`serve`] accepts connections.

pub mod adapter;
pub mod conn;
pub mod flv;

pub use conn::{serve, RtmpConfig, RtmpError};
