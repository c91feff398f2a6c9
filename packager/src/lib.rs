//! The packager: frames in, CMAF and playlists out.
//!
//! Data flow: [`live::run`] reads a broadcast, the [`segmenter`] cuts every track at the same
//! boundaries into segments and parts, [`cmaf`] writes the init segment and `moof`+`mdat`
//! chunks, and the [`window`] keeps the last N segments per track for HTTP. [`hls`] renders
//! LL-HLS playlists from a window. One set of bytes serves every protocol.

pub mod archive;
pub mod cmaf;
pub mod dash;
pub mod hls;
pub mod live;
pub mod segmenter;
pub mod shm;
pub mod window;

pub use live::{run, PackagerConfig};
pub use window::{StreamWindow, WindowConfig, Windows};
