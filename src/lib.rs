//! `estuary`: the server binary's wiring, the only place that knows every crate. `main.rs` reads
//! the command line and runs [`serve::run`] (an origin) or [`edge::run`] (an edge node); the
//! benches use the same pieces in-process.
//!
//! - [`config`]: the TOML file and every conversion into the crates' settings;
//! - [`serve`]: ingest → hub → [`pipeline`] (transcoder, packager, archive) → windows → HTTP
//!   and the Redis mirror, with ordered shutdown;
//! - [`edge`]: Redis replicas and the origins' HTTP → windows → HTTP;
//! - [`streams`]: the streams and who may publish to them (configured, made on first start, or
//!   created through the API), and the banner; [`callback`]: `[auth] publish_url`;
//!   [`secrets`]: secrets made on first start, kept as digests;
//! - [`whip`]: the HTTP server's WHIP endpoint connected to the WebRTC ingest;
//! - [`webhooks`]: signed webhooks out, from the hub's stream events and finished archives;
//! - [`assets`]: the catalog, and live archives recorded in it; [`prepare`]: finished uploads
//!   packaged as they are into the archive store;
//! - [`shutdown`]: signals, and waiting for every task at the end.

pub mod assets;
pub mod callback;
pub mod config;
pub mod edge;
pub mod pipeline;
pub mod prepare;
pub mod secrets;
pub mod serve;
pub mod shutdown;
pub mod streams;
pub mod webhooks;
pub mod whip;
