//! Packaging throughput and ingest-to-availability latency.
//!
//! `cargo bench --bench pipeline [-- FILE.flv]` — without a file, a 30 s 1080p30 6 Mbit/s
//! H.264 + AAC FLV is made with ffmpeg first. Results go to BENCHMARKS.md by hand.
//!
//! 1. Throughput: the FLV's tags through the RTMP adapter, the segmenter, the CMAF writer and
//!    the window, rendering the media playlist after every part, on one thread.
//! 2. Latency: an in-process server (RTMP ingest, packager, HTTP) on loopback; an rml_rtmp
//!    client publishes the FLV in real time while an HTTP client holds a blocking playlist
//!    reload for the next part. For each part: from the last byte of its last frame being
//!    written to the socket to the blocking reload that lists the part being received.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ingest::rtmp::adapter::Adapter;
use ingest::AdapterEvent;
use media::{Frame, TrackInfo};
use packager::segmenter::{Segmenter, SegmenterConfig};
use packager::window::{StreamWindow, WindowConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

mod common;

struct Tag {
    video: bool,
    ts: u32,
    body: Bytes,
}

fn read_flv(path: &Path) -> Vec<Tag> {
    let data = std::fs::read(path).expect("read flv");
    assert_eq!(&data[..3], b"FLV", "not an FLV file");
    let mut pos = u32::from_be_bytes([data[5], data[6], data[7], data[8]]) as usize + 4;
    let mut tags = Vec::new();
    while pos + 11 <= data.len() {
        let kind = data[pos];
        let size = u32::from_be_bytes([0, data[pos + 1], data[pos + 2], data[pos + 3]]) as usize;
        let ts = u32::from_be_bytes([data[pos + 7], data[pos + 4], data[pos + 5], data[pos + 6]]);
        let body_start = pos + 11;
        if body_start + size > data.len() {
            break;
        }
        if kind == 8 || kind == 9 {
            tags.push(Tag {
                video: kind == 9,
                ts,
                body: Bytes::copy_from_slice(&data[body_start..body_start + size]),
            });
        }
        pos = body_start + size + 4;
    }
    tags
}

fn make_flv(dir: &Path) -> PathBuf {
    let out = dir.join("bench-1080p30-6M.flv");
    if out.exists() {
        return out;
    }
    eprintln!(
        "making {} with ffmpeg (30 s 1080p30, 6 Mbit/s)...",
        out.display()
    );
    let st = std::process::Command::new("ffmpeg")
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
            "-g", "60", "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "128k", "-ac", "2",
        ])
        .arg(&out)
        .status()
        .expect("ffmpeg");
    assert!(st.success());
    out
}

fn frames_of(tags: &[Tag]) -> (Vec<TrackInfo>, Vec<(usize, Frame)>) {
    let mut a = Adapter::new();
    let mut tracks = Vec::new();
    let mut frames = Vec::new();
    for (i, t) in tags.iter().enumerate() {
        let _ = if t.video {
            a.video(t.ts, &t.body)
        } else {
            a.audio(t.ts, &t.body)
        };
        while let Some(ev) = a.pull() {
            match ev {
                AdapterEvent::Start(t) => tracks = t,
                AdapterEvent::Frame(f) => frames.push((i, f)),
                AdapterEvent::Notice(_) | AdapterEvent::Discontinuity => {}
            }
        }
    }
    (tracks, frames)
}

fn throughput(tags: &[Tag]) {
    let media_secs = tags.iter().map(|t| t.ts).max().unwrap_or(0) as f64 / 1000.0;
    let bytes: usize = tags.iter().map(|t| t.body.len()).sum();
    let rounds = 5;
    let mut best = f64::MAX;
    let mut parts_out = 0;
    for _ in 0..rounds {
        let start = Instant::now();
        let (tracks, frames) = frames_of(tags);
        let inits = tracks
            .iter()
            .map(|t| (t.clone(), packager::cmaf::init_segment(t).unwrap()))
            .collect();
        let window = StreamWindow::new("bench", "s".into(), WindowConfig::default(), inits);
        let mut seg = Segmenter::new(&tracks, SegmenterConfig::default());
        let mut seq = vec![0u32; tracks.len()];
        let mut playlist_bytes = 0usize;
        parts_out = 0;
        for (_, f) in frames {
            seg.push(f);
            let n = packager::live::drain(&mut seg, &window, &tracks, &mut seq);
            if n > 0 {
                for track in 0..tracks.len() {
                    playlist_bytes += window.read(|st| {
                        packager::hls::media_playlist(&window, st, track, packager::hls::Skip::No)
                            .len()
                    });
                }
                parts_out += n;
            }
        }
        std::hint::black_box(playlist_bytes);
        best = best.min(start.elapsed().as_secs_f64());
    }
    let n = tags.len();
    println!("## packaging throughput (best of {rounds}, one thread)");
    println!(
        "input: {n} FLV tags, {:.1} MB, {media_secs:.1} s of media ({:.2} Mbit/s)",
        bytes as f64 / 1e6,
        bytes as f64 * 8.0 / media_secs / 1e6
    );
    println!("parts written: {parts_out} (every track's media playlist rendered after each batch)");
    println!(
        "time {:.3} s → {:.0} frames/s, {:.1} MB/s, {:.0}× real time",
        best,
        n as f64 / best,
        bytes as f64 / 1e6 / best,
        media_secs / best
    );
}

async fn latency(tags: Vec<Tag>) {
    use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
    use rml_rtmp::sessions::{
        ClientSession, ClientSessionConfig, ClientSessionEvent, ClientSessionResult,
        PublishRequestType,
    };
    use rml_rtmp::time::RtmpTimestamp;

    // Where each part's frames are: the segmenter is deterministic, so run it offline on the
    // same frames to learn which tag closes each video part and which is its last.
    let (tracks, frames) = frames_of(&tags);
    let mut seg = Segmenter::new(&tracks, SegmenterConfig::default());
    let video_tags: Vec<usize> = frames
        .iter()
        .filter(|(_, f)| f.track == 0)
        .map(|(i, _)| *i)
        .collect();
    let mut part_frames: HashMap<(u64, u32), (usize, Option<usize>)> = HashMap::new(); // (last tag, next tag)
    let mut video_done = 0usize;
    for (_, f) in frames {
        seg.push(f);
        while let Some(out) = seg.pull() {
            let packager::segmenter::Output::Part(p) = out else {
                continue;
            };
            if p.track == 0 {
                video_done += p.samples.len();
                let last = video_tags[video_done - 1];
                part_frames.insert(
                    (p.msn, p.index),
                    (last, video_tags.get(video_done).copied()),
                );
            }
        }
    }

    // The server, wired as the binary wires it.
    let origin = common::origin().await;
    let (hub, http_port, cancel) = (origin.hub, origin.http_port, origin.cancel);
    let rtmp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let rtmp_port = rtmp.local_addr().unwrap().port();
    let keys = Arc::new(ingest::Authorizer::new([(
        "bench-key".to_string(),
        "bench".to_string(),
    )]));
    tokio::spawn(ingest::rtmp::serve(
        rtmp,
        None,
        ingest::rtmp::RtmpConfig {
            auth: keys,
            hub,
            app: "live".into(),
            idle_timeout: Duration::from_secs(30),
            publish_timeout: Duration::from_secs(10),
            max_connections: 8,
        },
        cancel.clone(),
    ));

    // An RTMP publisher on rml_rtmp's client session.
    let mut sock = tokio::net::TcpStream::connect(("127.0.0.1", rtmp_port))
        .await
        .unwrap();
    sock.set_nodelay(true).unwrap();
    let mut hs = Handshake::new(PeerType::Client);
    sock.write_all(&hs.generate_outbound_p0_and_p1().unwrap())
        .await
        .unwrap();
    let mut buf = vec![0u8; 65536];
    let leftover = loop {
        let n = sock.read(&mut buf).await.unwrap();
        match hs.process_bytes(&buf[..n]).unwrap() {
            HandshakeProcessResult::InProgress { response_bytes } => {
                sock.write_all(&response_bytes).await.unwrap()
            }
            HandshakeProcessResult::Completed {
                response_bytes,
                remaining_bytes,
            } => {
                sock.write_all(&response_bytes).await.unwrap();
                break remaining_bytes;
            }
        }
    };
    let (mut client, results) = ClientSession::new(ClientSessionConfig::new()).unwrap();
    let send = |results: Vec<ClientSessionResult>| -> Vec<u8> {
        results
            .into_iter()
            .filter_map(|r| match r {
                ClientSessionResult::OutboundResponse(p) => Some(p.bytes),
                _ => None,
            })
            .flatten()
            .collect()
    };
    sock.write_all(&send(results)).await.unwrap();
    let r = client.request_connection("live".into()).unwrap();
    sock.write_all(&send(vec![r])).await.unwrap();
    let mut pending = leftover;
    let mut state = 0;
    while state < 2 {
        if pending.is_empty() {
            let n = sock.read(&mut buf).await.unwrap();
            assert!(n > 0, "server closed during setup");
            pending = buf[..n].to_vec();
        }
        let results = client.handle_input(&pending).unwrap();
        pending.clear();
        let mut out = Vec::new();
        for r in results {
            match r {
                ClientSessionResult::OutboundResponse(p) => out.extend(p.bytes),
                ClientSessionResult::RaisedEvent(ClientSessionEvent::ConnectionRequestAccepted) => {
                    let r = client
                        .request_publishing("bench-key".into(), PublishRequestType::Live)
                        .unwrap();
                    out.extend(send(vec![r]));
                    state = 1;
                }
                ClientSessionResult::RaisedEvent(ClientSessionEvent::PublishRequestAccepted) => {
                    state = 2
                }
                _ => {}
            }
        }
        sock.write_all(&out).await.unwrap();
    }
    // Drain whatever the server says from now on.
    let (mut rd, mut wr) = sock.into_split();
    tokio::spawn(async move {
        let mut b = vec![0u8; 4096];
        while let Ok(n) = rd.read(&mut b).await {
            if n == 0 {
                break;
            }
        }
    });

    // The viewer: a blocking reload for each next part, in order.
    let watcher = common::watch_parts(http_port, "bench");

    // Publish in real time, noting when each tag's last byte went to the socket.
    let mut sent_at = vec![None; tags.len()];
    let start = Instant::now();
    let base = tags.first().map(|t| t.ts).unwrap_or(0);
    for (i, t) in tags.iter().enumerate() {
        let due = Duration::from_millis((t.ts - base) as u64);
        let elapsed = start.elapsed();
        if due > elapsed {
            tokio::time::sleep(due - elapsed).await;
        }
        let r = if t.video {
            client.publish_video_data(t.body.clone(), RtmpTimestamp::new(t.ts), false)
        } else {
            client.publish_audio_data(t.body.clone(), RtmpTimestamp::new(t.ts), false)
        }
        .unwrap();
        wr.write_all(&send(vec![r])).await.unwrap();
        sent_at[i] = Some(Instant::now());
    }
    drop(wr);
    let seen = tokio::time::timeout(Duration::from_secs(30), watcher)
        .await
        .expect("watcher finished")
        .unwrap();
    cancel.cancel();

    let mut lat = Vec::new();
    for ((msn, idx), at) in &seen {
        let Some((last, _)) = part_frames.get(&(*msn, *idx)) else {
            continue;
        };
        if let Some(t) = sent_at[*last] {
            lat.push(at.saturating_duration_since(t).as_secs_f64() * 1000.0);
        }
    }
    println!(
        "## ingest-to-availability latency ({} video parts seen by a blocking reload)",
        lat.len()
    );
    if let Some((p50, p99, max)) = common::percentiles(&mut lat) {
        println!(
            "last byte of a part's last frame → blocking reload listing it: p50 {p50:.2} ms, p99 {p99:.2} ms, max {max:.2} ms"
        );
    }
}

fn main() {
    let arg = std::env::args().skip(1).find(|a| a.ends_with(".flv"));
    let path = match arg {
        Some(p) => PathBuf::from(p),
        None => make_flv(&std::env::temp_dir()),
    };
    let tags = read_flv(&path);
    println!("# pipeline bench on {}", path.display());
    throughput(&tags);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(latency(tags));
}
