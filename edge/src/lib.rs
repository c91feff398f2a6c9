//! The viewer-facing HTTP service: LL-HLS playlists, CMAF segments and parts, the stream API.
//!
//! Data flow: a request is routed ([`routes`]) to a window in the store (the origin's
//! in-memory [`packager::Windows`]; at an edge, the copy replayed from Redis by
//! [`store::redis`], or the origins over HTTP through [`upstream`]); blocking playlist reloads and
//! preload-hint requests wait on the window's notifier; bodies are the window's `Bytes`,
//! never copied. [`server`] runs hyper (HTTP/1.1 and HTTP/2) with graceful shutdown.

pub mod body;
pub mod resume;
pub mod routes;
#[cfg(target_os = "linux")]
pub mod sendfile;
pub mod server;
pub mod store;
pub mod tls;
pub mod upstream;
pub mod whip;

pub use routes::{HttpConfig, Service};
pub use server::{serve, serve_tls};
