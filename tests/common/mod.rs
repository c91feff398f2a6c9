//! What the end-to-end tests share. Everything started here is stopped and removed on drop.
//!
//! - [`server`]: a real `estuary serve` or `estuary edge` process, configured as a TOML table
//!   merged over defaults (free ports, a temporary data directory, one stream), whose log is
//!   printed when a test fails;
//! - [`media`]: a real `ffmpeg` publisher, `ffprobe`, and playlist helpers;
//! - [`http`]: a tiny HTTP/1.1 client that shows status, headers and body bytes as they are;
//! - [`player`]: hls.js and dash.js in headless Chromium;
//! - [`redis`]: a real `redis-server`;
//! - [`postgres`]: a real PostgreSQL server in a temporary directory;
//! - [`s3`]: a real S3-compatible server (moto);
//! - [`upload`]: direct uploads, tus requests, a creator's browser, and what a packaged upload
//!   is checked with.
#![allow(dead_code, unused_imports)]

pub mod conformance;
pub mod http;
pub mod media;
pub mod player;
pub mod postgres;
pub mod redis;
pub mod s3;
pub mod server;
pub mod upload;

pub use http::*;
pub use media::*;
pub use player::*;
pub use redis::*;
pub use server::*;

use std::net::TcpListener;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// A free port below Linux's ephemeral range (32768+), so no client socket of a parallel test
/// (ffmpeg, curl, the tests' own HTTP) can take it between our check and the server's bind;
/// a process-wide counter keeps the tests of one binary apart.
fn pick_port(free: impl Fn(u16) -> bool) -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let base = (std::process::id() % 60) * 200;
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = (20_000 + (base + n) % 12_000) as u16;
        if free(port) {
            return port;
        }
    }
}

pub fn free_port() -> u16 {
    pick_port(|p| TcpListener::bind(("127.0.0.1", p)).is_ok())
}

pub fn free_udp_port() -> u16 {
    pick_port(|p| std::net::UdpSocket::bind(("127.0.0.1", p)).is_ok())
}

/// A directory of the test's own, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(1);
        let p = std::env::temp_dir().join(format!(
            "estuary-test-{tag}-{}-{:x}",
            std::process::id(),
            h.finish()
        ));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Polls `f` until it returns `Some`, or panics after `timeout` naming `what`.
pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Runs `openssl ARGS` in `dir`, failing the test with its message if it fails.
fn openssl(dir: &TempDir, args: &[&str]) {
    let out = std::process::Command::new("openssl")
        .args(args)
        .current_dir(&dir.0)
        .output()
        .expect("openssl must be installed");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The key and certificate arguments of a P-256 `openssl req`.
const EC_KEY: [&str; 5] = [
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
];

/// A self-signed P-256 certificate for `localhost` and its key, as PEM files in `dir` (openssl).
pub fn self_signed_cert(dir: &TempDir) -> (PathBuf, PathBuf) {
    let mut args = vec!["req", "-x509"];
    args.extend(EC_KEY);
    args.extend([
        "-days",
        "1",
        "-subj",
        "/CN=localhost",
        "-keyout",
        "key.pem",
        "-out",
        "cert.pem",
    ]);
    openssl(dir, &args);
    (dir.0.join("cert.pem"), dir.0.join("key.pem"))
}

/// A certificate authority and a certificate it signed for `localhost` and `127.0.0.1`, as PEM
/// files in `dir` (openssl): (CA certificate, certificate, key).
pub fn ca_signed_cert(dir: &TempDir) -> (PathBuf, PathBuf, PathBuf) {
    let p = |n: &str| dir.0.join(n);
    let mut ca = vec!["req", "-x509"];
    ca.extend(EC_KEY);
    ca.extend([
        "-days",
        "1",
        "-subj",
        "/CN=Estuary test CA",
        "-keyout",
        "ca-key.pem",
        "-out",
        "ca.pem",
    ]);
    openssl(dir, &ca);
    let mut leaf = vec!["req"];
    leaf.extend(EC_KEY);
    leaf.extend([
        "-subj",
        "/CN=localhost",
        "-keyout",
        "leaf-key.pem",
        "-out",
        "leaf.csr",
    ]);
    openssl(dir, &leaf);
    std::fs::write(
        p("leaf.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca-key.pem",
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            "leaf.ext",
            "-out",
            "leaf.pem",
        ],
    );
    (p("ca.pem"), p("leaf.pem"), p("leaf-key.pem"))
}
