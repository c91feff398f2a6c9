//! The transcoder beside the `ffmpeg` command line: `cargo bench --bench transcode`.
//!
//! Input: 20 s of 1080p30 H.264 (libx264, keyframe every 2 s, 6 Mbit/s), made once with ffmpeg.
//! Ladder: the source passed through plus 720p (2500 kbit/s), 480p (1200) and 360p (700), libx264
//! `veryfast` + `zerolatency`, no B-frames, main profile, keyframes where the source has them.
//!
//! 1. Throughput, as fast as each can go, each in its own process under GNU time (wall, user +
//!    system CPU, peak RSS): Estuary's transcoder (this binary with `--worker`: frames pushed
//!    into a broadcast as fast as the transcoder takes them, output frames counted and
//!    dropped) and `ffmpeg` producing the same three encodes plus the copy into the null muxer.
//! 2. Capacity: N copies of the stream paced in real time in one process, for N = 1, 2, 3:
//!    whether the transcoder keeps up (no frames skipped) and the CPU it uses.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use media::{h264, Broadcast, CodecConfig, Frame, ReadEvent, Timescale, Timestamp, TrackInfo};

const SECS: u32 = 20;
const FPS: i64 = 30;

fn make_input(dir: &Path) -> (PathBuf, PathBuf) {
    let raw = dir.join("bench-1080p30-aud.h264");
    let mp4 = dir.join("bench-1080p30-aud.mp4");
    if !raw.exists() {
        eprintln!("making {} with ffmpeg ({SECS} s 1080p30)...", raw.display());
        let st = Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi"])
            .args([
                "-i",
                "testsrc2=size=1920x1080:rate=30",
                "-t",
                &SECS.to_string(),
            ])
            .args([
                "-c:v", "libx264", "-preset", "veryfast", "-b:v", "6M", "-g", "60",
            ])
            .args([
                "-bf",
                "0",
                "-pix_fmt",
                "yuv420p",
                "-bsf:v",
                "h264_metadata=aud=insert",
            ])
            .args(["-f", "h264"])
            .arg(&raw)
            .status()
            .expect("ffmpeg");
        assert!(st.success());
    }
    if !mp4.exists() {
        let st = Command::new("ffmpeg")
            .args([
                "-hide_banner",
                "-loglevel",
                "error",
                "-y",
                "-framerate",
                "30",
                "-i",
            ])
            .arg(&raw)
            .args(["-c", "copy"])
            .arg(&mp4)
            .status()
            .expect("ffmpeg");
        assert!(st.success());
    }
    (raw, mp4)
}

/// The source track and its frames (length-prefixed, AUDs dropped), 90 kHz, 30 fps.
fn frames(raw: &Path) -> (TrackInfo, Vec<Frame>) {
    let data = std::fs::read(raw).unwrap();
    let (mut sps, mut pps) = (None, None);
    let mut out: Vec<Frame> = Vec::new();
    let mut cur: Option<(BytesMut, bool)> = None;
    let flush = |cur: &mut Option<(BytesMut, bool)>, out: &mut Vec<Frame>| {
        if let Some((b, key)) = cur.take() {
            let at = Timestamp::new(out.len() as i64 * 90_000 / FPS, Timescale::VIDEO);
            out.push(Frame {
                track: 0,
                dts: at,
                pts: at,
                keyframe: key,
                data: b.freeze(),
            });
        }
    };
    for nal in media::annexb::nals(&data) {
        match nal[0] & 0x1f {
            9 => {
                flush(&mut cur, &mut out);
                cur = Some((BytesMut::new(), false));
            }
            t => {
                if t == 7 {
                    sps.get_or_insert_with(|| nal.to_vec());
                }
                if t == 8 {
                    pps.get_or_insert_with(|| nal.to_vec());
                }
                if let Some((b, k)) = cur.as_mut() {
                    *k |= t == 5;
                    b.put_u32(nal.len() as u32);
                    b.put_slice(nal);
                }
            }
        }
    }
    flush(&mut cur, &mut out);
    let avcc = h264::avcc_from(&sps.unwrap(), &pps.unwrap()).unwrap();
    let mut info = TrackInfo::video(CodecConfig::H264 {
        avcc: Bytes::from(avcc),
    });
    info.frame_rate_hint = Some(FPS as f64);
    (info, out)
}

fn config() -> transcode::TranscodeConfig {
    transcode::TranscodeConfig::default() // source + 720p + 480p + 360p, veryfast, zerolatency
}

/// Runs the transcoder on `n` copies of the stream; `paced`: in real time, else as fast as it
/// takes them. Returns (encoded frames out, frames skipped, wall seconds).
fn transcode(info: &TrackInfo, input: &[Frame], n: usize, paced: bool) -> (u64, u64, f64) {
    let encoded = Arc::new(AtomicU64::new(0));
    let mut sources = Vec::new();
    let mut drains = Vec::new();
    for i in 0..n {
        let source = Broadcast::new(format!("s{i}"), vec![info.clone()]);
        let (tx, rx) = mpsc::channel();
        let tx = Mutex::new(tx);
        transcode::start(
            source.reader(),
            config(),
            Arc::new(move |out| {
                let _ = tx.lock().unwrap().send(out);
            }),
        )
        .unwrap();
        let encoded = encoded.clone();
        drains.push(std::thread::spawn(move || {
            let Ok(mut out) = rx.recv() else { return };
            loop {
                match futures::executor::block_on(out.recv()) {
                    Some(ReadEvent::Frame(f)) if f.track > 0 => {
                        encoded.fetch_add(1, Ordering::Relaxed);
                    }
                    Some(_) => {}
                    None => return,
                }
            }
        }));
        sources.push(source);
    }
    let start = Instant::now();
    for (k, f) in input.iter().enumerate() {
        if paced {
            let due = start + Duration::from_micros(k as u64 * 1_000_000 / FPS as u64);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        } else {
            // As fast as the transcoder takes them: never more than a second ahead of it.
            while (k as u64 * 3).saturating_sub(encoded.load(Ordering::Relaxed)) > 90 {
                std::thread::sleep(Duration::from_micros(200));
            }
        }
        for s in &sources {
            s.push(f.clone());
        }
    }
    let expected = input.len() as u64 * 3 * n as u64;
    while encoded.load(Ordering::Relaxed) < expected && start.elapsed() < Duration::from_secs(600) {
        std::thread::sleep(Duration::from_millis(2));
        if paced && start.elapsed() > Duration::from_secs(SECS as u64 + 10) {
            break;
        }
    }
    let wall = start.elapsed().as_secs_f64();
    // What the transcoder's reader of each source had to skip to stay real time.
    let skipped: u64 = sources
        .iter()
        .map(|s| s.stats().skipped.load(Ordering::Relaxed))
        .sum();
    drop(sources);
    for d in drains {
        let _ = d.join();
    }
    (encoded.load(Ordering::Relaxed), skipped, wall)
}

fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let f: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
    ticks / 100.0
}

/// `/usr/bin/time` around a command: (wall s, cpu s, peak RSS MiB).
fn timed(cmd: &mut Command) -> (f64, f64, f64) {
    let out = Command::new("/usr/bin/time")
        .args(["-f", "TIMED %e %U %S %M"])
        .arg(cmd.get_program())
        .args(cmd.get_args())
        .output()
        .expect("GNU time (Debian package `time`)");
    let err = String::from_utf8_lossy(&out.stderr);
    let line = err
        .lines()
        .find(|l| l.starts_with("TIMED"))
        .unwrap_or_else(|| panic!("{err}"));
    let v: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .map(|x| x.parse().unwrap())
        .collect();
    (v[0], v[1] + v[2], v[3] / 1024.0)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dir = std::env::temp_dir();
    let (raw, mp4) = make_input(&dir);
    if let Some(i) = args.iter().position(|a| a == "--worker") {
        let (info, input) = frames(&raw);
        let n: usize = args.get(i + 1).and_then(|v| v.parse().ok()).unwrap_or(1);
        let paced = args.iter().any(|a| a == "--paced");
        let cpu0 = cpu_seconds();
        let (encoded, skipped, wall) = transcode(&info, &input, n, paced);
        println!(
            "WORKER frames_in={} encoded={encoded} skipped={skipped} wall={wall:.2} cpu={:.2}",
            input.len() * n,
            cpu_seconds() - cpu0
        );
        return;
    }
    let (_, input) = frames(&raw);
    let n_frames = input.len();
    let video_secs = n_frames as f64 / FPS as f64;
    let me = std::env::current_exe().unwrap();
    println!("input: {} frames of 1080p30 ({video_secs:.1} s)", n_frames);

    for round in 1..=2 {
        let (wall, cpu, rss) = timed(Command::new(&me).arg("--worker").arg("1"));
        println!(
            "round {round} Estuary: {:.1} fps, {:.2} CPU s per s of video, peak RSS {rss:.0} MiB (wall {wall:.2} s)",
            n_frames as f64 / wall,
            cpu / video_secs
        );
        let mut ff = Command::new("ffmpeg");
        ff.args(["-hide_banner", "-loglevel", "error", "-y", "-i"])
            .arg(&mp4);
        ff.args(["-filter_complex", "[0:v]split=3[a][b][c];[a]scale=1280:720[v720];[b]scale=854:480[v480];[c]scale=640:360[v360]"]);
        for (label, kbps) in [("v720", 2500), ("v480", 1200), ("v360", 700)] {
            ff.args([
                "-map",
                &format!("[{label}]"),
                "-c:v",
                "libx264",
                "-preset",
                "veryfast",
            ]);
            ff.args(["-tune", "zerolatency", "-profile:v", "main", "-bf", "0"]);
            ff.args([
                "-b:v",
                &format!("{kbps}k"),
                "-maxrate",
                &format!("{}k", kbps * 3 / 2),
            ]);
            ff.args([
                "-bufsize",
                &format!("{}k", kbps * 2),
                "-force_key_frames",
                "source",
            ]);
            ff.args([
                "-x264-params",
                "scenecut=0:rc-lookahead=0",
                "-f",
                "null",
                "-",
            ]);
        }
        ff.args(["-map", "0:v", "-c", "copy", "-f", "null", "-"]);
        let (wall, cpu, rss) = timed(&mut ff);
        println!(
            "round {round} ffmpeg:  {:.1} fps, {:.2} CPU s per s of video, peak RSS {rss:.0} MiB (wall {wall:.2} s)",
            n_frames as f64 / wall,
            cpu / video_secs
        );
    }
    for n in 1..=3 {
        let out = Command::new(&me)
            .args(["--worker", &n.to_string(), "--paced"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let line = text
            .lines()
            .find(|l| l.starts_with("WORKER"))
            .unwrap_or("WORKER ?");
        println!(
            "real time, {n} stream(s): {}",
            line.trim_start_matches("WORKER ")
        );
    }
}
