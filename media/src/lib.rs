//! The shared media model: what every ingest produces and every consumer reads.
//!
//! Data flow: an ingest adapter turns its protocol into [`TrackInfo`]s and [`Frame`]s and
//! announces a broadcast on the [`Hub`] under a stream name; the hub hands the
//! [`BroadcastReader`]s to consumers (packager, later transcoder and recorder). Nothing here
//! does I/O or knows which protocol a stream came in on.

pub mod av1;
pub mod broadcast;
pub mod codec;
pub mod h264;
pub mod h265;
pub mod hub;
pub mod time;
pub mod vp9;

pub use broadcast::{Broadcast, BroadcastReader, BroadcastStats, Frame, ReadEvent};
pub use codec::{AudioCodec, CodecConfig, TrackInfo, TrackKind, VideoCodec};
pub use hub::{Announcement, Hub, HubError, Published, Reservation};
pub use time::{Timescale, Timestamp};
