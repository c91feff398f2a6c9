//! The shared media model: what every ingest produces and every consumer reads.
//!
//! Data flow: an ingest adapter turns its protocol into [`TrackInfo`]s and [`Frame`]s and
//! publishes a broadcast on the [`Hub`] under a stream name; the hub hands a
//! [`BroadcastReader`] to each consumer registered with it (the transcoder, whose renditions
//! are broadcasts of their own, and the packager), and [`broadcast`] fans the frames out
//! without ever blocking the publisher. Timestamps carry their timescale ([`time`]).
//!
//! The codec modules parse what the model needs from the bitstreams: parameter sets and
//! configuration records (`h264`, `h265`, `av1`, `vp9`), Annex B streams ([`annexb`]), ADTS
//! ([`adts`]) and Opus packets ([`opus`]). Nothing here does I/O or knows which protocol a
//! stream came in on.

pub mod adts;
pub mod annexb;
pub mod av1;
pub mod broadcast;
pub mod codec;
pub mod h264;
pub mod h265;
pub mod hub;
pub mod opus;
pub mod time;
pub mod vp9;

pub use broadcast::{Broadcast, BroadcastReader, BroadcastStats, Frame, ReadEvent};
pub use codec::{AudioCodec, CodecConfig, TrackInfo, TrackKind, VideoCodec};
pub use hub::{Announcement, Hub, HubError, Published, Reservation, StreamEvent};
pub use time::{Timescale, Timestamp};
