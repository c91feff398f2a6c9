//! SRT ingest (OBS, ffmpeg, srt-live-transmit, hardware encoders) on srt-tokio.
//!
//! `ts` is a sans-IO MPEG-TS demuxer, `adapter` turns PES packets into tracks and frames, and
//! `task` is the listener: it checks the stream id's key during the handshake (an unknown key
//! is rejected before any media flows), then feeds each connection's payloads through the two.

pub mod adapter;
pub mod task;
pub mod ts;

pub use task::{bind, parse_stream_id, serve, SrtConfig, SrtError, StreamIdError};
