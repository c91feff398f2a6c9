//! Live windows shared through Redis: how an origin's windows reach edge nodes.
//!
//! Data flow: the origin's [`mirror`] is a window sink beside the archive writer; it writes
//! each window's meta, init segments and events (every part with its bytes, segment
//! completions, the end) into Redis as the packager produces them. An edge's [`replay`] reads
//! them back into windows of its own, only for the streams its viewers ask for ([`demand`]),
//! and the edge's HTTP server serves those windows as the origin serves its own. [`wire`] is the
//! one place the keys and values are defined; [`client`] reaches one Redis or a Redis Cluster.
//! Viewers' resume positions use the same client.

pub mod client;
pub mod demand;
pub mod mirror;
pub mod replay;
pub mod wire;

pub use client::{RedisClient, RedisOptions};
pub use demand::Demand;
pub use mirror::{mirror_all, MirrorStats};
pub use replay::replay_all;
