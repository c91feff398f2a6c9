//! `estuary`: the server binary's wiring, the only place that knows every crate. `main.rs` reads
//! the command line and runs [`serve::run`] (an origin) or [`edge::run`] (an edge node); the
//! benches use the same pieces in-process.
//!
//! - [`config`]: the TOML file and every conversion into the crates' settings;
//! - [`serve`]: ingest → hub → [`pipeline`] (transcoder, packager, archive) → windows → HTTP
//!   and the Redis mirror, with ordered shutdown;
//! - [`edge`]: Redis replicas and the origins' HTTP → windows → HTTP;
//! - [`streams`]: the stream keys (configured, or one made on first start) and the banner;
//! - [`whip`]: the HTTP server's WHIP endpoint connected to the WebRTC ingest;
//! - [`shutdown`]: signals, and waiting for every task at the end.

pub mod config;
pub mod edge;
pub mod pipeline;
pub mod serve;
pub mod shutdown;
pub mod streams;
pub mod whip;
