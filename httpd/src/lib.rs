//! Estuary's HTTP server, the same for origins and edges: LL-HLS and LL-DASH for viewers, VOD
//! archives, the JSON APIs, resumable uploads (tus), and WHIP signalling for publishers.
//!
//! Data flow: [`server`] accepts connections (HTTP/1.1 or HTTP/2, TLS, worker threads,
//! admission, `sendfile` for parts in shared memory) and hands each request to the
//! [`Service`], which reads its route once, checks it against [`access`] (signed playback),
//! and sends it to its area: [`live`] serves the
//! windows this node holds (the origin's own, or an edge's replicas from Redis), waiting on a
//! window's notifier for blocking reloads and parts about to land ([`live::blocking`]);
//! [`vod`] reads archive storage; [`api`] answers JSON; [`upload`] takes creators' files
//! through direct upload URLs (tus); [`whip`] passes offers to the WebRTC
//! ingest behind a trait. On an edge, [`edge`] comes first: it opens the replica a viewer asks
//! for, or fetches what this node does not hold from the origins, cached and coalesced.
//! Response bodies are the window's `Bytes`, never copied ([`body`]). [`metrics`] answers
//! Prometheus.

pub mod access;
pub mod api;
pub mod body;
pub mod client;
pub mod edge;
pub mod forwarded;
pub mod live;
pub mod metrics;
pub mod response;
pub mod route;
pub mod server;
mod service;
pub mod upload;
pub mod vod;
pub mod whip;

pub use server::{serve, serve_tls, tls};
pub use service::{HttpConfig, Service};
