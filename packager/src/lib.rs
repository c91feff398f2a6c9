//! The packager: frames in, CMAF and playlists out.
//!
//! Data flow: [`live::run`] reads a broadcast, the [`segmenter`] cuts every track at the same
//! boundaries into segments and parts (typed times; bounded whatever the publisher sends),
//! [`cmaf`] writes the init segment and `moof`+`mdat` chunks, and the [`window`] keeps the
//! last N segments per track for HTTP, with a notifier that wakes waiting requests (parts go
//! into [`shm`] slabs so HTTP can send them with `sendfile`). [`hls`] renders LL-HLS playlists
//! and [`dash`] the LL-DASH MPD from a window; [`archive`] writes each finished segment to
//! storage as VOD. One set of bytes serves every protocol; windows are read by the HTTP
//! server and by the Redis mirror (the `replica` crate). [`delay`] counts how long each part
//! took to publish, for `/metrics`.
//!
//! On demand: [`file`] packages an uploaded file's frames as they are (no re-encoding) into the
//! same storage layout as the archives, and [`vod`] renders the playlists and MPD of both.

pub mod archive;
pub mod cmaf;
pub mod dash;
pub mod delay;
pub mod file;
pub mod hls;
pub mod live;
pub mod segmenter;
pub mod shm;
pub mod vod;
pub mod window;

pub use live::{run, OnArchived, PackagerConfig};
pub use window::{StreamWindow, WindowConfig, Windows};
