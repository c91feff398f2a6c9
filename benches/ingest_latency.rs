//! WHIP and RTSP ingest-to-availability latency: `cargo bench --bench ingest_latency [-- whip|rtsp]`.
//!
//! Both publish the same 20 s of 1280x720 30 fps H.264 (libx264, keyframe every 2 s, no
//! B-frames) in which every access unit carries an SEI (user data unregistered) with its frame
//! number, so each part can be traced to the last frame in it. An in-process server (ingest →
//! packager → HTTP, wired as `estuary serve` wires it) is watched by a client holding a blocking
//! playlist reload for each next part, which fetches the part and reads the frame numbers in it.
//! For each video part: from its last frame entering Estuary to the reload listing the part.
//!
//! - WHIP: a str0m WebRTC client in this process offers H.264 to `POST /whip`, then writes each
//!   frame at its time; "entering" is the write (over loopback; the client packetizes and sends
//!   at once). Includes DTLS-SRTP, str0m's depacketizer and reorder buffer, the WHIP adapter.
//! - RTSP: GStreamer's RTSP server (tests/rtsp/camera.py) serves the stream from an MP4 in real
//!   time; Estuary pulls it through a TCP tap in this process that notes when the RTP packet
//!   ending each frame (marker bit) passes; "entering" is that moment. Includes retina's
//!   interleaved-RTP parsing and depacketizer, the RTSP adapter.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

mod common;

const UUID: [u8; 16] = *b"estuary-latency!";
const FPS: u64 = 30;
const KEY: &str = "bench-key-0123";

type Arrivals = Arc<Mutex<HashMap<u32, Instant>>>;

/// The SEI NAL (type 6, payload 5) carrying `n`, in 7-bit bytes so no emulation prevention
/// is needed.
fn sei(n: u32) -> Vec<u8> {
    let mut v = vec![0x06, 0x05, 20];
    v.extend_from_slice(&UUID);
    v.extend((0..4).rev().map(|i| 0x80 | ((n >> (7 * i)) & 0x7f) as u8));
    v.push(0x80);
    v
}

/// The frame numbers found in `bytes` (a part, or an RTP payload).
fn frame_numbers(bytes: &[u8]) -> Vec<u32> {
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(i) = bytes[at..].windows(16).position(|w| w == UUID) {
        let start = at + i + 16;
        if let Some(b) = bytes.get(start..start + 4) {
            out.push(b.iter().fold(0u32, |n, x| (n << 7) | (x & 0x7f) as u32));
        }
        at = start;
    }
    out
}

/// Access units (Annex B, each with our SEI after its delimiter) and an MP4 of the same.
fn make_stream(dir: &Path) -> (Vec<Vec<u8>>, PathBuf) {
    let raw = dir.join("bench-720p30-aud.h264");
    let mp4 = dir.join("bench-720p30-sei.mp4");
    if !raw.exists() {
        eprintln!("making {} with ffmpeg (20 s 720p30)...", raw.display());
        let st = Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi"])
            .args(["-i", "testsrc2=size=1280x720:rate=30", "-t", "20"])
            .args([
                "-c:v",
                "libx264",
                "-preset",
                "veryfast",
                "-tune",
                "zerolatency",
            ])
            .args(["-b:v", "3M", "-g", "60", "-bf", "0", "-pix_fmt", "yuv420p"])
            .args(["-bsf:v", "h264_metadata=aud=insert", "-f", "h264"])
            .arg(&raw)
            .status()
            .expect("ffmpeg");
        assert!(st.success());
    }
    let data = std::fs::read(&raw).unwrap();
    let nals = media::annexb::nals(&data);
    let mut units: Vec<Vec<u8>> = Vec::new();
    for nal in nals {
        if nal[0] & 0x1f == 9 {
            let n = units.len() as u32;
            let mut au = vec![0, 0, 0, 1];
            au.extend_from_slice(nal);
            au.extend_from_slice(&[0, 0, 0, 1]);
            au.extend_from_slice(&sei(n));
            units.push(au);
        } else if let Some(au) = units.last_mut() {
            au.extend_from_slice(&[0, 0, 0, 1]);
            au.extend_from_slice(nal);
        }
    }
    if !mp4.exists() {
        let marked = dir.join("bench-720p30-sei.h264");
        std::fs::write(&marked, units.concat()).unwrap();
        let st = Command::new("ffmpeg")
            .args([
                "-hide_banner",
                "-loglevel",
                "error",
                "-y",
                "-framerate",
                "30",
            ])
            .arg("-i")
            .arg(&marked)
            .args(["-c", "copy", "-movflags", "+faststart"])
            .arg(&mp4)
            .status()
            .expect("ffmpeg");
        assert!(st.success());
    }
    (units, mp4)
}

/// Latencies in ms: each part's listing time minus its last frame's arrival, from the second
/// segment on.
fn latencies(parts: &common::PartsSeen, arrivals: &HashMap<u32, Instant>) -> Vec<f64> {
    let mut keys: Vec<_> = parts.keys().copied().collect();
    keys.sort();
    keys.iter()
        // The first segment waits for the broadcast to start (a keyframe, sender reports).
        .filter(|k| k.0 > 0)
        .filter_map(|k| {
            let (listed, bytes) = &parts[k];
            let last = frame_numbers(bytes).into_iter().max()?;
            let arrived = arrivals.get(&last)?;
            Some(listed.saturating_duration_since(*arrived).as_secs_f64() * 1000.0)
        })
        .collect()
}

fn report(what: &str, mut v: Vec<f64>, parts: usize) {
    match common::percentiles(&mut v) {
        Some((p50, p99, max)) => println!(
            "{what}: {} of {parts} parts traced; frame enters → part servable: p50 {p50:.2} ms, p99 {p99:.2} ms, max {max:.2} ms",
            v.len()
        ),
        None => println!("{what}: no parts traced"),
    }
}

async fn whip(units: Vec<Vec<u8>>) {
    use str0m::change::SdpAnswer;
    use str0m::media::{Direction, MediaKind, MediaTime};
    use str0m::net::{Protocol, Receive};
    use str0m::{Candidate, Event, Input, Output, RtcConfig};

    let (origin, _) = common::origin_with_whip(Some((KEY, "bench"))).await;
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let local = socket.local_addr().unwrap();
    let mut rtc = RtcConfig::new()
        .set_crypto_provider(Arc::new(str0m::crypto::from_feature_flags()))
        .clear_codecs()
        .enable_h264(true)
        .build(Instant::now());
    rtc.add_local_candidate(Candidate::host(local, "udp").unwrap());
    let mut api = rtc.sdp_api();
    let mid = api.add_media(MediaKind::Video, Direction::SendOnly, None, None, None);
    let (offer, pending) = api.apply().unwrap();
    let offer = offer.to_sdp_string();
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", origin.http_port))
        .await
        .unwrap();
    s.write_all(
        format!(
            "POST /whip HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/sdp\r\nAuthorization: Bearer {KEY}\r\nContent-Length: {}\r\n\r\n{offer}",
            offer.len()
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).await.unwrap();
    assert!(resp.starts_with("HTTP/1.1 201"), "{resp}");
    let answer = resp.split_once("\r\n\r\n").unwrap().1;
    rtc.sdp_api()
        .accept_answer(pending, SdpAnswer::from_sdp_string(answer).unwrap())
        .unwrap();

    let watcher = common::watch_parts_fetching(origin.http_port, "bench", true);
    let mut arrivals: HashMap<u32, Instant> = HashMap::new();
    let mut buf = vec![0u8; 2048];
    let mut connected_at: Option<Instant> = None;
    let mut next = 0usize;
    loop {
        let timeout = loop {
            match rtc.poll_output().unwrap() {
                Output::Timeout(t) => break t,
                Output::Transmit(t) => {
                    let _ = socket.send_to(&t.contents, t.destination).await;
                }
                Output::Event(Event::Connected) => connected_at = Some(Instant::now()),
                Output::Event(_) => {}
            }
        };
        // The next frame is due at its time after connecting.
        let due = connected_at.map(|c| c + Duration::from_millis(next as u64 * 1000 / FPS));
        let wake = due.map_or(timeout, |d| d.min(timeout));
        if let Some(d) = due.filter(|d| *d <= Instant::now()) {
            let _ = d;
            if next == units.len() {
                break;
            }
            let w = rtc.writer(mid).unwrap();
            let pt = w.payload_params().next().unwrap().pt();
            let now = Instant::now();
            arrivals.insert(next as u32, now);
            w.write(
                pt,
                now,
                MediaTime::from_90khz(next as u64 * 90_000 / FPS),
                units[next].as_slice(),
            )
            .unwrap();
            next += 1;
            continue;
        }
        tokio::select! {
            r = socket.recv_from(&mut buf) => {
                let (n, source) = r.unwrap();
                let input = Input::Receive(Instant::now(), Receive {
                    proto: Protocol::Udp,
                    source,
                    destination: local,
                    contents: buf[..n].try_into().unwrap(),
                });
                rtc.handle_input(input).unwrap();
            }
            _ = tokio::time::sleep_until(wake.into()) => {
                rtc.handle_input(Input::Timeout(Instant::now())).unwrap();
            }
        }
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    origin.cancel.cancel();
    let parts = tokio::time::timeout(Duration::from_secs(20), watcher)
        .await
        .map(|r| r.unwrap())
        .unwrap_or_default();
    report(
        "WHIP (str0m client, loopback)",
        latencies(&parts, &arrivals),
        parts.len(),
    );
}

/// Copies bytes both ways; on the camera's side, notes when the RTP packet that ends each
/// video frame (channel 0, marker bit) passes, keyed by the frame number in its SEI.
async fn tap(client: tokio::net::TcpStream, camera_port: u16, arrivals: Arrivals) {
    let camera = tokio::net::TcpStream::connect(("127.0.0.1", camera_port))
        .await
        .unwrap();
    camera.set_nodelay(true).unwrap();
    client.set_nodelay(true).unwrap();
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = camera.into_split();
    tokio::spawn(async move { tokio::io::copy(&mut cr, &mut sw).await });
    let mut pending: Vec<u8> = Vec::new();
    let mut frame_of_ts: HashMap<u32, u32> = HashMap::new();
    let mut buf = vec![0u8; 65536];
    loop {
        let n = match sr.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let now = Instant::now();
        if cw.write_all(&buf[..n]).await.is_err() {
            return;
        }
        pending.extend_from_slice(&buf[..n]);
        loop {
            if pending.first() == Some(&b'$') {
                if pending.len() < 4 {
                    break;
                }
                let len = u16::from_be_bytes([pending[2], pending[3]]) as usize;
                if pending.len() < 4 + len {
                    break;
                }
                let (channel, rtp) = (pending[1], &pending[4..4 + len]);
                if channel == 0 && rtp.len() > 12 {
                    let ts = u32::from_be_bytes([rtp[4], rtp[5], rtp[6], rtp[7]]);
                    if let Some(&n) = frame_numbers(&rtp[12..]).first() {
                        frame_of_ts.insert(ts, n);
                    }
                    if rtp[1] & 0x80 != 0 {
                        if let Some(n) = frame_of_ts.remove(&ts) {
                            arrivals.lock().unwrap().insert(n, now);
                        }
                    }
                }
                pending.drain(..4 + len);
            } else {
                // An RTSP message: headers, then Content-Length bytes of body.
                let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") else {
                    break;
                };
                let head = String::from_utf8_lossy(&pending[..end]).to_lowercase();
                let body = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                if pending.len() < end + 4 + body {
                    break;
                }
                pending.drain(..end + 4 + body);
            }
        }
    }
}

async fn rtsp(mp4: PathBuf) {
    let camera_port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/rtsp/camera.py");
    let mut camera = Command::new("/usr/bin/python3")
        .arg(script)
        .arg(camera_port.to_string())
        .arg(format!("--file={}", mp4.display()))
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 with GStreamer (scripts/test.sh installs it)");
    {
        use std::io::BufRead;
        let mut line = String::new();
        std::io::BufReader::new(camera.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready");
    }
    let origin = common::origin().await;
    let arrivals: Arrivals = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let tap_port = listener.local_addr().unwrap().port();
    {
        let arrivals = arrivals.clone();
        tokio::spawn(async move {
            while let Ok((c, _)) = listener.accept().await {
                tokio::spawn(tap(c, camera_port, arrivals.clone()));
            }
        });
    }
    let watcher = common::watch_parts_fetching(origin.http_port, "bench", true);
    tokio::spawn(ingest::rtsp::run(
        ingest::rtsp::PullConfig {
            name: "bench".into(),
            url: format!("rtsp://127.0.0.1:{tap_port}/cam"),
            username: None,
            password: None,
            transport: ingest::rtsp::RtspTransport::Tcp,
            reconnect_grace: Duration::from_secs(1),
        },
        origin.hub.clone(),
        origin.cancel.clone(),
    ));
    tokio::time::sleep(Duration::from_secs(19)).await;
    origin.cancel.cancel();
    let _ = camera.kill();
    let _ = camera.wait();
    let parts = tokio::time::timeout(Duration::from_secs(20), watcher)
        .await
        .map(|r| r.unwrap())
        .unwrap_or_default();
    let arrivals = arrivals.lock().unwrap().clone();
    report(
        "RTSP (GStreamer RTSP server, TCP interleaved, loopback)",
        latencies(&parts, &arrivals),
        parts.len(),
    );
}

fn main() {
    let which: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a == "whip" || a == "rtsp")
        .collect();
    let all = which.is_empty();
    let (units, mp4) = make_stream(&std::env::temp_dir());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    if all || which.iter().any(|w| w == "whip") {
        rt.block_on(whip(units));
    }
    if all || which.iter().any(|w| w == "rtsp") {
        rt.block_on(rtsp(mp4));
    }
}
