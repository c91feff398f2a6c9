//! SRT ingest-to-availability latency: `cargo bench --bench srt_latency [-- FILE.ts]`.
//!
//! An in-process server (SRT ingest → packager → HTTP, wired as `estuary serve` wires it);
//! libsrt's own `srt-live-transmit` is the caller, fed on stdin with the TS in 7-packet
//! (1316-byte) writes paced by the video PES timestamps, while an HTTP client holds a blocking
//! playlist reload for the next part. For each video part: from the write holding the end of its
//! last frame reaching the caller's stdin, to the blocking reload listing the part being read.
//! SRT holds every packet for the TSBPD latency before the receiver may release it, so that
//! latency (20 ms here, a LAN setting) is part of what is measured.
//!
//! (srt-tokio as the caller loses bursts of payloads sent with one timestamp, which a keyframe
//! is; libsrt paces them.)

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ingest::srt::adapter::TsAdapter;
use ingest::srt::ts::TsDemuxer;
use ingest::AdapterEvent;
use packager::segmenter::{Output, Segmenter, SegmenterConfig};

mod common;

const LATENCY: Duration = Duration::from_millis(20);

fn make_ts(dir: &Path) -> PathBuf {
    let out = dir.join("bench-1080p30-6M.ts");
    if out.exists() {
        return out;
    }
    eprintln!(
        "making {} with ffmpeg (30 s 1080p30, 6 Mbit/s)...",
        out.display()
    );
    let st = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args([
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=1920x1080:rate=30",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=48000",
        ])
        .args([
            "-t", "30", "-c:v", "libx264", "-preset", "veryfast", "-b:v", "6M", "-maxrate", "6M",
            "-bufsize", "12M",
        ])
        .args([
            "-g", "60", "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "128k", "-ac", "2", "-f",
            "mpegts",
        ])
        .arg(&out)
        .status()
        .expect("ffmpeg");
    assert!(st.success());
    out
}

/// Per 188-byte packet, its pacing time in ms (the latest video PES start's DTS), and for each
/// video PES, the index of the packet that ends it.
fn layout(ts: &[u8]) -> (Vec<u64>, Vec<usize>) {
    let mut times = Vec::new();
    let mut pes_ends = Vec::new();
    let mut first_time: Option<i64> = None;
    let mut now = 0u64;
    let mut last_video: Option<usize> = None;
    for (i, p) in ts.chunks_exact(188).enumerate() {
        let pid = u16::from_be_bytes([p[1] & 0x1f, p[2]]);
        if pid == 256 {
            if p[1] & 0x40 != 0 {
                if let Some(prev) = last_video {
                    pes_ends.push(prev);
                }
                let start = if (p[3] >> 4) & 2 != 0 {
                    5 + p[4] as usize
                } else {
                    4
                };
                let pes = &p[start..];
                if pes.len() > 19 && pes[7] & 0x80 != 0 {
                    // Pace by decode time (DTS when present): an encoder emits frames in decode
                    // order at that pace. (Pacing by PTS, as this bench first did, sends frames
                    // around each B-frame run late and early.)
                    let b = if pes[7] & 0x40 != 0 {
                        &pes[14..19]
                    } else {
                        &pes[9..14]
                    };
                    let t = (((b[0] >> 1) & 7) as i64) << 30
                        | (b[1] as i64) << 22
                        | ((b[2] >> 1) as i64) << 15
                        | (b[3] as i64) << 7
                        | (b[4] >> 1) as i64;
                    let base = *first_time.get_or_insert(t);
                    now = ((t - base).max(0) / 90) as u64;
                }
            }
            last_video = Some(i);
        }
        times.push(now);
    }
    if let Some(prev) = last_video {
        pes_ends.push(prev);
    }
    (times, pes_ends)
}

async fn run(ts: Vec<u8>) {
    let (times, pes_ends) = layout(&ts);
    // Which video PES ends each part: the same demuxer, adapter and segmenter, offline.
    let mut demux = TsDemuxer::new();
    let mut adapter = TsAdapter::new();
    demux.push(&ts);
    demux.finish();
    let (mut tracks, mut frames) = (Vec::new(), Vec::new());
    while let Some(ev) = demux.pull() {
        adapter.push(ev).unwrap();
        while let Some(o) = adapter.pull() {
            match o {
                AdapterEvent::Start(t) => tracks = t,
                AdapterEvent::Frame(f) => frames.push(f),
                AdapterEvent::Notice(_) | AdapterEvent::Discontinuity => {}
            }
        }
    }
    assert_eq!(
        frames.iter().filter(|f| f.track == 0).count(),
        pes_ends.len(),
        "every video PES is a frame"
    );
    let mut seg = Segmenter::new(&tracks, SegmenterConfig::default());
    let mut part_last: HashMap<(u64, u32), usize> = HashMap::new();
    let mut done = 0;
    for f in frames {
        seg.push(f);
        while let Some(o) = seg.pull() {
            if let Output::Part(p) = o {
                if p.track == 0 {
                    done += p.samples.len();
                    part_last.insert((p.msn, p.index), done - 1);
                }
            }
        }
    }

    let origin = common::origin().await;
    let (hub, http_port, cancel) = (origin.hub, origin.http_port, origin.cancel);
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let srt_addr = udp.local_addr().unwrap();
    drop(udp);
    let bound = ingest::srt::bind(srt_addr, LATENCY).await.unwrap();
    let keys = Arc::new(ingest::Authorizer::new([(
        "bench-key".to_string(),
        "bench".to_string(),
    )]));
    tokio::spawn(ingest::srt::serve(
        bound,
        ingest::srt::SrtConfig {
            auth: keys,
            hub,
            latency: LATENCY,
            passphrase: None,
            idle_timeout: Duration::from_secs(10),
        },
        cancel.clone(),
    ));

    let url = format!(
        "srt://{srt_addr}?streamid=publish:bench-key&latency={}",
        LATENCY.as_millis()
    );
    let mut caller = Command::new("srt-live-transmit")
        .args(["-q", "file://con", &url])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("srt-live-transmit (Debian package srt-tools)");
    let mut stdin = caller.stdin.take().unwrap();

    let watcher = common::watch_parts(http_port, "bench");

    // Feed the caller from a blocking thread, 7 packets per write, each at its pacing time.
    let packets = ts.len() / 188;
    let feeder = tokio::task::spawn_blocking(move || {
        let mut sent_at = vec![None; packets];
        // Give the caller time to connect before the clock starts.
        std::thread::sleep(Duration::from_millis(500));
        let start = Instant::now();
        let mut i = 0;
        while i < packets {
            let end = (i + 7).min(packets);
            let due = Duration::from_millis(times[i]);
            let elapsed = start.elapsed();
            if due > elapsed {
                std::thread::sleep(due - elapsed);
            }
            if stdin
                .write_all(&ts[i * 188..end * 188])
                .and_then(|_| stdin.flush())
                .is_err()
            {
                break;
            }
            let now = Instant::now();
            for s in &mut sent_at[i..end] {
                *s = Some(now);
            }
            i = end;
        }
        sent_at
    });
    let sent_at = feeder.await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let _ = caller.kill();
    let _ = caller.wait();
    let seen = tokio::time::timeout(Duration::from_secs(60), watcher)
        .await
        .expect("watcher")
        .unwrap();
    cancel.cancel();

    // The stream's final part has no next frame to close it early and is published when the
    // caller goes away, so it measures the disconnect, not ingest.
    let last_part = part_last.iter().max_by_key(|(_, f)| **f).map(|(k, _)| *k);
    let mut by_part: Vec<((u64, u32), f64)> = seen
        .iter()
        .filter(|(k, _)| Some(**k) != last_part)
        .filter_map(|(k, at)| {
            let frame = *part_last.get(k)?;
            let sent = sent_at[*pes_ends.get(frame)?]?;
            Some((
                *k,
                at.saturating_duration_since(sent).as_secs_f64() * 1000.0,
            ))
        })
        .collect();
    by_part.sort_by(|a, b| b.1.partial_cmp(&a.1).unwrap());
    let slowest: Vec<String> = by_part
        .iter()
        .take(3)
        .map(|(k, ms)| format!("{}.{}: {ms:.1} ms", k.0, k.1))
        .collect();
    let mut lat: Vec<f64> = by_part.iter().map(|x| x.1).collect();
    println!(
        "## SRT ingest-to-availability latency ({} video parts; SRT latency {:?})",
        lat.len(),
        LATENCY
    );
    if let Some((p50, p99, max)) = common::percentiles(&mut lat) {
        println!(
            "write holding a part's last frame → blocking reload listing it: p50 {p50:.1} ms, p99 {p99:.1} ms, max {max:.1} ms"
        );
        println!("slowest parts: {}", slowest.join(", "));
    }
}

fn main() {
    let path = std::env::args()
        .skip(1)
        .find(|a| a.ends_with(".ts"))
        .map(PathBuf::from)
        .unwrap_or_else(|| make_ts(&std::env::temp_dir()));
    let ts = std::fs::read(&path).expect("read ts");
    println!("# SRT latency bench on {}", path.display());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run(ts));
}
