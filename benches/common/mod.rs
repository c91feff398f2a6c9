//! What the latency benches share: an in-process origin wired as `estuary serve` wires it, and
//! a viewer that holds a blocking playlist reload for each next part.

#![allow(dead_code)] // each bench uses a part
use std::collections::HashMap;
use std::time::{Duration, Instant};

use media::Hub;
use packager::window::Windows;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Packager and HTTP on a free port; ingests publish into `hub`.
pub struct Origin {
    pub hub: Hub,
    pub http_port: u16,
    pub cancel: CancellationToken,
}

pub async fn origin() -> Origin {
    origin_with_whip(None).await.0
}

/// As [`origin`], with WHIP ingest on a free UDP port when `whip` gives a (key, name).
pub async fn origin_with_whip(
    whip: Option<(&str, &str)>,
) -> (Origin, Option<std::net::SocketAddr>) {
    let hub = Hub::new();
    let windows = Windows::new();
    {
        let windows = windows.clone();
        hub.on_publish(move |a| {
            tokio::spawn(packager::run(
                a.reader,
                windows.clone(),
                packager::PackagerConfig::default(),
                CancellationToken::new(),
            ));
        });
    }
    let cancel = CancellationToken::new();
    let http = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let http_port = http.local_addr().unwrap().port();
    let mut service = httpd::Service::new(windows, Default::default());
    let mut whip_addr = None;
    if let Some((key, name)) = whip {
        let w = ingest::whip::Whip::start(
            ingest::whip::WhipConfig {
                auth: std::sync::Arc::new(ingest::Authorizer::new([(
                    key.to_string(),
                    name.to_string(),
                )])),
                hub: hub.clone(),
                listen: "127.0.0.1:0".parse().unwrap(),
                announce: vec![],
                connect_timeout: Duration::from_secs(15),
                idle_timeout: Duration::from_secs(10),
                max_sessions: 16,
                keyframe_interval: Duration::from_secs(2),
            },
            &tokio_util::task::TaskTracker::new(),
            cancel.clone(),
        )
        .await
        .unwrap();
        whip_addr = Some(w.local_addr());
        service = service.with_whip(estuary::whip::WhipBridge(w));
    }
    tokio::spawn(httpd::serve(http, service, cancel.clone()));
    (
        Origin {
            hub,
            http_port,
            cancel,
        },
        whip_addr,
    )
}

async fn http_get(port: u16, path: &str) -> std::io::Result<String> {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    s.set_nodelay(true)?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).await?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

async fn http_get_bytes(port: u16, path: &str) -> std::io::Result<Vec<u8>> {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).await?;
    Ok(out)
}

/// `(msn, part)` out of a playlist line naming `SESSION/MSN.PART.m4s`.
fn part_of(line: &str) -> Option<(u64, u32)> {
    let stem = line.split('/').nth(1)?.split(".m4s").next()?;
    let (m, p) = stem.split_once('.')?;
    Some((m.parse().ok()?, p.parse().ok()?))
}

/// A viewer of `/live/{name}/video`: a blocking reload for each next part (the preload hint)
/// until the stream ends; returns when each part was first listed.
pub fn watch_parts(http_port: u16, name: &str) -> JoinHandle<HashMap<(u64, u32), Instant>> {
    let watch = watch_parts_fetching(http_port, name, false);
    tokio::spawn(async move {
        let seen = watch.await.unwrap();
        seen.into_iter().map(|(k, (t, _))| (k, t)).collect()
    })
}

/// For each (msn, part): when it was first listed, and its bytes (HTTP response) if fetched.
pub type PartsSeen = HashMap<(u64, u32), (Instant, Vec<u8>)>;

/// As [`watch_parts`]; with `fetch`, each new part's bytes are fetched too (after its listing
/// time was taken).
pub fn watch_parts_fetching(http_port: u16, name: &str, fetch: bool) -> JoinHandle<PartsSeen> {
    let name = name.to_string();
    tokio::spawn(async move {
        let mut seen = PartsSeen::new();
        let (mut msn, mut part) = (0u64, 0u32);
        loop {
            let path = format!("/live/{name}/video/index.m3u8?_HLS_msn={msn}&_HLS_part={part}");
            let Ok(text) = http_get(http_port, &path).await else {
                break;
            };
            let now = Instant::now();
            if !text.starts_with("HTTP/1.1 200") {
                // Not live yet: try again; anything else ends the watch.
                tokio::time::sleep(Duration::from_millis(5)).await;
                if text.starts_with("HTTP/1.1 404") {
                    continue;
                }
                break;
            }
            for line in text.lines().filter(|l| l.starts_with("#EXT-X-PART:")) {
                let Some(key) = part_of(line) else { continue };
                if seen.contains_key(&key) {
                    continue;
                }
                let mut bytes = Vec::new();
                if fetch {
                    let uri = line
                        .split("URI=\"")
                        .nth(1)
                        .and_then(|u| u.split('"').next());
                    if let Some(uri) = uri {
                        let path = format!("/live/{name}/video/{uri}");
                        if let Ok(r) = http_get_bytes(http_port, &path).await {
                            bytes = r;
                        }
                    }
                }
                seen.insert(key, (now, bytes));
            }
            if text.contains("#EXT-X-ENDLIST") {
                break;
            }
            let Some(next) = text
                .lines()
                .find(|l| l.starts_with("#EXT-X-PRELOAD-HINT"))
                .and_then(part_of)
            else {
                break;
            };
            (msn, part) = next;
        }
        seen
    })
}

/// (p50, p99, max) of `values`, which it sorts.
pub fn percentiles(values: &mut [f64]) -> Option<(f64, f64, f64)> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let at = |p: f64| values[((values.len() as f64 - 1.0) * p).round() as usize];
    Some((at(0.5), at(0.99), at(1.0)))
}
