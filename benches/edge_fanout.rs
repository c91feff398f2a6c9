//! One edge, thousands of LL-HLS viewers: `cargo bench --bench edge_fanout`.
//!
//! A real `redis-server` (free port) and a real `estuary edge` process (this build). This
//! process is the origin: it fills a window with a synthetic stream (a video track of
//! `PART_KB` parts every 0.334 s, six to a segment, and a small audio track) at real-time pace
//! and mirrors it into Redis with the origin's own mirror (`replica::mirror_all`).
//! `VIEWERS` (5,000) clients, each on its own keep-alive HTTP/1.1 connection, do what hls.js
//! does in low-latency mode: hold a blocking reload (`_HLS_msn`/`_HLS_part`) for the next
//! part, and with `MODE=parts` (default) then fetch that part. For every part it reports the
//! time from the part landing in the origin's window (just before it goes to Redis) to the
//! first and the last viewer's response, the edge's CPU, requests per second, and the edge's
//! resident memory idle and with every request held, per held request.
//!
//! Environment: `VIEWERS` (5000), `SECONDS` (30, measured), `PART_KB` (40, about 1 Mbit/s),
//! `MODE` (`parts` or `playlists`).

use std::collections::HashMap;
use std::net::TcpStream as StdTcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use media::{CodecConfig, TrackInfo};
use packager::window::{PartIn, StreamWindow, WindowConfig, Windows};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

mod common;

const PART: f64 = 0.334;
const PARTS_PER_SEGMENT: u32 = 6;
const NAME: &str = "bench";
const SESSION: &str = "s1";

/// An avcC of a 1280x720 High profile stream (for the playlist's CODECS and RESOLUTION).
const AVCC: &[u8] = &[
    1, 100, 0, 31, 0xff, 0xe1, 0, 28, 103, 100, 0, 31, 172, 217, 128, 80, 5, 187, 1, 106, 2, 2, 2,
    128, 0, 0, 3, 0, 128, 0, 0, 30, 7, 140, 24, 205, 1, 0, 5, 104, 233, 123, 44, 139,
];

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Killed(Child, &'static str);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        eprintln!("stopped {}", self.1);
    }
}

fn wait_port(port: u16) {
    let t = Instant::now();
    while StdTcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "port {port} never opened"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Resident memory (kB) and CPU ticks (user + system) of a process.
fn proc_stats(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
        + f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    (rss, ticks)
}

/// When each part landed in the origin window, and when viewers got it.
#[derive(Default)]
struct Seen {
    landed: HashMap<(u64, u32), Instant>,
    /// Per part: arrival times of playlist responses listing it, and of the part's bytes.
    playlists: HashMap<(u64, u32), Vec<Instant>>,
    parts: HashMap<(u64, u32), Vec<Instant>>,
}

/// The synthetic origin: pushes parts at real-time pace until `stop`.
async fn produce(
    w: Arc<StreamWindow>,
    part_bytes: usize,
    seen: Arc<Mutex<Seen>>,
    stop: Arc<AtomicBool>,
) {
    let video = Bytes::from(vec![0x5a; part_bytes]);
    let audio = Bytes::from(vec![0x21; 5_000]);
    let start = Instant::now();
    let mut n: u64 = 0;
    while !stop.load(Ordering::Relaxed) {
        let due = start + Duration::from_secs_f64(PART * (n + 1) as f64);
        tokio::time::sleep_until(due.into()).await;
        let msn = n / PARTS_PER_SEGMENT as u64;
        let index = (n % PARTS_PER_SEGMENT as u64) as u32;
        let last = index + 1 == PARTS_PER_SEGMENT;
        for (track, data) in [(0, video.clone()), (1, audio.clone())] {
            w.push_part(PartIn {
                track,
                msn,
                index,
                data,
                duration: Duration::from_secs_f64(PART),
                independent: index == 0 || track == 1,
                gap: false,
                last_in_segment: false,
                end_expected: last,
                discontinuity: false,
                start: Duration::from_secs_f64(n as f64 * PART),
                samples: if track == 0 { 10 } else { 16 },
                target_duration: Some(2),
                announced: Some(Duration::from_secs_f64(PART * PARTS_PER_SEGMENT as f64)),
                period: None,
                wall_offset: Duration::ZERO,
            });
        }
        seen.lock()
            .unwrap()
            .landed
            .insert((msn, index), Instant::now());
        if last {
            w.complete_segment(0, msn, Some(2));
            w.complete_segment(1, msn, Some(2));
        }
        n += 1;
    }
}

fn next(msn: u64, part: u32) -> (u64, u32) {
    if part + 1 == PARTS_PER_SEGMENT {
        (msn + 1, 0)
    } else {
        (msn, part + 1)
    }
}

/// Reads one HTTP/1.1 response with a Content-Length (what the edge sends for playlists and
/// complete parts; a chunked response would be misread); its status.
async fn read_response(
    s: &mut tokio::net::TcpStream,
    buf: &mut Vec<u8>,
    tmp: &mut [u8],
) -> std::io::Result<u16> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let status = head
                .split_whitespace()
                .nth(1)
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            let total = end + 4 + len;
            while buf.len() < total {
                let n = s.read(tmp).await?;
                if n == 0 {
                    return Err(std::io::ErrorKind::UnexpectedEof.into());
                }
                buf.extend_from_slice(&tmp[..n]);
            }
            buf.drain(..total);
            return Ok(status);
        }
        let n = s.read(tmp).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&tmp[..n]);
    }
}

/// One low-latency viewer from part (`msn`, `part`) on.
async fn viewer(
    port: u16,
    connected: Arc<AtomicU64>,
    fetch_parts: bool,
    seen: Arc<Mutex<Seen>>,
    held: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    mut go: tokio::sync::watch::Receiver<Option<(u64, u32)>>,
) {
    let mut tries = 0;
    let mut s = loop {
        match tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
            Ok(s) => break s,
            Err(e) => {
                tries += 1;
                if tries == 50 {
                    eprintln!("a viewer cannot connect ({e}); is `ulimit -n` above 2 x VIEWERS?");
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    let _ = s.set_nodelay(true);
    connected.fetch_add(1, Ordering::Relaxed);
    // Everyone connected first (memory per idle connection), then all follow from the
    // same part.
    let Ok(start) = go.wait_for(|g| g.is_some()).await.map(|g| g.expect("some")) else {
        return;
    };
    let mut at = start;
    let mut buf = Vec::new();
    let mut tmp = vec![0u8; 64 * 1024];
    while !stop.load(Ordering::Relaxed) {
        let (msn, part) = at;
        let req = format!(
            "GET /live/{NAME}/video/index.m3u8?_HLS_msn={msn}&_HLS_part={part} HTTP/1.1\r\nHost: edge\r\n\r\n"
        );
        held.fetch_add(1, Ordering::Relaxed);
        let sent = s.write_all(req.as_bytes()).await;
        let status = match sent {
            Ok(()) => read_response(&mut s, &mut buf, &mut tmp).await,
            Err(e) => Err(e),
        };
        held.fetch_sub(1, Ordering::Relaxed);
        let now = Instant::now();
        match status {
            Ok(200) => seen
                .lock()
                .unwrap()
                .playlists
                .entry(at)
                .or_default()
                .push(now),
            Ok(code) => {
                eprintln!("playlist {msn}.{part}: HTTP {code}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            Err(e) => {
                eprintln!("viewer connection failed: {e}");
                return;
            }
        }
        if fetch_parts {
            let req = format!(
                "GET /live/{NAME}/video/{SESSION}/{msn}.{part}.m4s HTTP/1.1\r\nHost: edge\r\n\r\n"
            );
            if s.write_all(req.as_bytes()).await.is_err() {
                return;
            }
            match read_response(&mut s, &mut buf, &mut tmp).await {
                Ok(200) => seen
                    .lock()
                    .unwrap()
                    .parts
                    .entry(at)
                    .or_default()
                    .push(Instant::now()),
                Ok(code) => eprintln!("part {msn}.{part}: HTTP {code}"),
                Err(_) => return,
            }
        }
        at = next(msn, part);
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() {
    let viewers: usize = env("VIEWERS", 5000);
    let seconds: f64 = env("SECONDS", 30.0);
    let part_kb: usize = env("PART_KB", 40);
    let fetch_parts = env("MODE", "parts".to_string()) != "playlists";

    let dir = std::env::temp_dir().join(format!("estuary-fanout-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let redis_port = free_port();
    let _redis = Killed(
        Command::new("redis-server")
            .args([
                "--port",
                &redis_port.to_string(),
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .args(["--bind", "127.0.0.1"])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server (apt install redis-server)"),
        "redis-server",
    );
    wait_port(redis_port);
    let http = free_port();
    let cfg = dir.join("edge.toml");
    std::fs::write(
        &cfg,
        format!(
            "[server]\ndata_dir = \"{}\"\n[http]\nlisten = \"127.0.0.1:{http}\"\nmax_connections = 20000\n[redis]\nurl = \"redis://127.0.0.1:{redis_port}\"\n",
            dir.join("data").display()
        ),
    )
    .unwrap();
    let edge = Killed(
        Command::new(env!("CARGO_BIN_EXE_estuary"))
            .args(["edge", "--config"])
            .arg(&cfg)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
        "estuary edge",
    );
    let pid = edge.0.id();
    wait_port(http);

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let windows = Windows::new();
        let video = TrackInfo::video(CodecConfig::H264 {
            avcc: Bytes::from_static(AVCC),
        });
        let audio = TrackInfo::audio(
            CodecConfig::Aac {
                asc: Bytes::from_static(&[0x12, 0x10]),
            },
            48000,
            2,
        );
        let w = Arc::new(StreamWindow::new(
            NAME,
            SESSION.into(),
            WindowConfig {
                segments: 10,
                segment_target: Duration::from_secs(2),
                part_target: Duration::from_secs_f64(PART),
                signed: false,
            },
            vec![(video, Bytes::from_static(b"init-v")), (audio, Bytes::from_static(b"init-a"))],
        ));
        windows.insert(w.clone());
        tokio::spawn(replica::mirror_all(
            windows.clone(),
            replica::RedisClient::open(&format!("redis://127.0.0.1:{redis_port}"), false).unwrap(),
            Default::default(),
            tokio_util::task::TaskTracker::new(),
            tokio_util::sync::CancellationToken::new(),
        ));
        let seen = Arc::new(Mutex::new(Seen::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let produced = tokio::spawn(produce(w.clone(), part_kb * 1024, seen.clone(), stop.clone()));

        // The edge has the stream.
        let t = Instant::now();
        loop {
            let ok = tokio::task::spawn_blocking(move || {
                let mut s = StdTcpStream::connect(("127.0.0.1", http)).ok()?;
                std::io::Write::write_all(
                    &mut s,
                    format!("GET /live/{NAME}/video/index.m3u8 HTTP/1.1\r\nHost: e\r\nConnection: close\r\n\r\n").as_bytes(),
                )
                .ok()?;
                let mut out = String::new();
                std::io::Read::read_to_string(&mut s, &mut out).ok()?;
                out.starts_with("HTTP/1.1 200").then_some(())
            })
            .await
            .unwrap();
            if ok.is_some() {
                break;
            }
            assert!(t.elapsed() < Duration::from_secs(30), "the edge never served the stream");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        let (rss_idle, _) = proc_stats(pid);

        // Viewers connect, then all join at the next part.
        let held = Arc::new(AtomicU64::new(0));
        let connected = Arc::new(AtomicU64::new(0));
        let viewer_stop = Arc::new(AtomicBool::new(false));
        let (go, go_rx) = tokio::sync::watch::channel(None);
        let tasks: Vec<_> = (0..viewers)
            .map(|_| {
                tokio::spawn(viewer(
                    http,
                    connected.clone(),
                    fetch_parts,
                    seen.clone(),
                    held.clone(),
                    viewer_stop.clone(),
                    go_rx.clone(),
                ))
            })
            .collect();
        while connected.load(Ordering::Relaxed) < viewers as u64 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        let (rss_connected, _) = proc_stats(pid);
        go.send_replace(Some(w.read(|st| st.tracks[0].next_part())));
        // Settle: every viewer connected and following.
        tokio::time::sleep(Duration::from_secs(4)).await;
        let first_measured = w.read(|st| st.tracks[0].next_part());
        let (_, ticks0) = proc_stats(pid);
        let t0 = Instant::now();
        // Memory with every request held: sampled half-way between parts.
        let mut rss_held = Vec::new();
        let mut held_then = Vec::new();
        while t0.elapsed().as_secs_f64() < seconds {
            let landed = w.read(|st| st.tracks[0].last_part());
            while w.read(|st| st.tracks[0].last_part()) == landed {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            tokio::time::sleep(Duration::from_secs_f64(PART * 0.7)).await;
            rss_held.push(proc_stats(pid).0);
            held_then.push(held.load(Ordering::Relaxed));
        }
        let elapsed = t0.elapsed().as_secs_f64();
        let (_, ticks1) = proc_stats(pid);
        let last_measured = w.read(|st| st.tracks[0].last_part()).unwrap();
        viewer_stop.store(true, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_secs(1)).await;
        stop.store(true, Ordering::Relaxed);
        for t in tasks {
            t.abort();
        }
        let _ = produced.await;

        let seen = seen.lock().unwrap();
        let (mut first_pl, mut last_pl, mut last_part, mut all_pl) = (vec![], vec![], vec![], vec![]);
        let mut requests = 0usize;
        let mut complete = 0;
        let mut measured = 0;
        let mut at = first_measured;
        while at <= last_measured {
            measured += 1;
            let landed = seen.landed[&at];
            if let Some(v) = seen.playlists.get(&at) {
                requests += v.len();
                if v.len() == viewers {
                    complete += 1;
                }
                let d: Vec<f64> = v.iter().map(|t| ms(t.saturating_duration_since(landed))).collect();
                first_pl.push(d.iter().cloned().fold(f64::MAX, f64::min));
                last_pl.push(d.iter().cloned().fold(0.0, f64::max));
                all_pl.extend(d);
            }
            if let Some(v) = seen.parts.get(&at) {
                requests += v.len();
                last_part.push(
                    v.iter()
                        .map(|t| ms(t.saturating_duration_since(landed)))
                        .fold(0.0, f64::max),
                );
            }
            at = next(at.0, at.1);
        }
        let hz = 100.0; // USER_HZ
        let cpu = (ticks1 - ticks0) as f64 / hz / elapsed;
        rss_held.sort();
        held_then.sort();
        let rss_held_med = rss_held[rss_held.len() / 2];
        let held_med = held_then[held_then.len() / 2];
        println!(
            "edge fan-out: {viewers} viewers, {} mode, {part_kb} KB parts, {elapsed:.0} s measured ({measured} parts; {complete} answered to every viewer)",
            if fetch_parts { "playlist+part" } else { "playlist" },
        );
        let show = |what: &str, v: &mut Vec<f64>| {
            if let Some((p50, p99, max)) = common::percentiles(v) {
                println!("  {what}: p50 {p50:.1} ms, p99 {p99:.1} ms, max {max:.1} ms");
            }
        };
        show("part landed -> first viewer's playlist", &mut first_pl);
        show("part landed -> every viewer's playlist response", &mut all_pl);
        show("part landed -> last viewer's playlist (per part)", &mut last_pl);
        if fetch_parts {
            show("part landed -> last viewer has the part's bytes (per part)", &mut last_part);
        }
        println!(
            "  requests: {:.0}/s answered; edge CPU {:.0}% of one core",
            requests as f64 / elapsed,
            cpu * 100.0
        );
        println!(
            "  edge RSS: no viewers {:.1} MB; {viewers} idle connections {:.1} MB ({:.1} KB each); {held_med} requests held {:.1} MB ({:.1} KB per held request, connection included)",
            rss_idle as f64 / 1024.0,
            rss_connected as f64 / 1024.0,
            (rss_connected.saturating_sub(rss_idle)) as f64 / viewers as f64,
            rss_held_med as f64 / 1024.0,
            (rss_held_med.saturating_sub(rss_idle)) as f64 / held_med.max(1) as f64
        );
    });
    drop(edge);
    let _ = std::fs::remove_dir_all(&dir);
}
