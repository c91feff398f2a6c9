//! Media for the tests: a real `ffmpeg` publisher, `ffprobe`, and reading playlists.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{get, wait_for, Server};

/// An ffmpeg publisher; killed on drop.
pub struct Publisher(pub Child);

impl Publisher {
    /// 1280x720 30 fps H.264 (keyframe every 2 s) + 48 kHz AAC, in real time, for `secs`.
    pub fn rtmp(url: &str, secs: u32) -> Publisher {
        Self::rtmp_args(url, secs, &[])
    }

    /// The same test source as MPEG-TS over SRT.
    pub fn srt(url: &str, secs: u32) -> Publisher {
        Self::rtmp_args(url, secs, &["-f", "mpegts"])
    }

    pub fn rtmp_args(url: &str, secs: u32, extra: &[&str]) -> Publisher {
        Self::source(url, secs, "1280x720", 1, extra)
    }

    /// The test source at `size`, read `speed` times faster than real time, with `extra`
    /// output options (they override the defaults: `-g`, `-f`, ...).
    pub fn source(url: &str, secs: u32, size: &str, speed: u32, extra: &[&str]) -> Publisher {
        let mut cmd = Command::new("ffmpeg");
        cmd.args(["-hide_banner", "-loglevel", "error", "-nostdin"])
            .args(["-readrate", &speed.to_string()])
            .args([
                "-f",
                "lavfi",
                "-i",
                &format!("testsrc2=size={size}:rate=30"),
            ])
            .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
            .args([
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-tune",
                "zerolatency",
                "-g",
                "60",
                "-pix_fmt",
                "yuv420p",
            ])
            .args(["-c:a", "aac", "-b:a", "96k", "-ac", "2"])
            .args(["-t", &secs.to_string()])
            .args(if extra.contains(&"-f") {
                &[][..]
            } else {
                &["-f", "flv"][..]
            })
            .args(extra)
            .arg(url)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        Publisher(cmd.spawn().expect("ffmpeg must be installed (see README)"))
    }

    /// Waits for ffmpeg to exit; returns (success, stderr).
    pub fn wait(mut self, timeout: Duration) -> (bool, String) {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.0.try_wait().unwrap() {
                let mut err = String::new();
                if let Some(mut e) = self.0.stderr.take() {
                    let _ = e.read_to_string(&mut err);
                }
                return (status.success(), err);
            }
            if Instant::now() > deadline {
                panic!("ffmpeg did not exit within {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A publisher of frames that carry their send time (`tests/player/clock_source.py`, read by
/// the player pages' `page.js`), encoded by ffmpeg as OBS would (x264 veryfast, B-frames off
/// for latency, `gop` frames between keyframes: `None` for x264's default of 250) with 48 kHz
/// AAC, over RTMP. Both processes are killed on drop.
pub struct ClockPublisher {
    source: Child,
    ffmpeg: Child,
}

impl ClockPublisher {
    pub fn rtmp(url: &str, secs: u32, size: (u32, u32), gop: Option<u32>) -> ClockPublisher {
        let mut source = Command::new("python3")
            .arg(super::player_dir().join("clock_source.py"))
            .args([size.0, size.1, 30, secs].map(|n| n.to_string()))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 must be installed");
        let frames = source.stdout.take().unwrap();
        let mut cmd = Command::new("ffmpeg");
        cmd.args(["-hide_banner", "-loglevel", "error", "-nostdin"])
            .args(["-f", "rawvideo", "-pix_fmt", "yuv420p"])
            .args([
                "-s",
                &format!("{}x{}", size.0, size.1),
                "-r",
                "30",
                "-i",
                "-",
            ])
            .args([
                "-re",
                "-f",
                "lavfi",
                "-i",
                "sine=frequency=440:sample_rate=48000",
            ])
            .args(["-map", "0:v", "-map", "1:a"])
            .args([
                "-c:v",
                "libx264",
                "-preset",
                "veryfast",
                "-tune",
                "zerolatency",
            ])
            .args(["-pix_fmt", "yuv420p"])
            // Constant bitrate (filler data pads the simple picture), so the source is the top of
            // a transcoded ladder by bitrate as a camera's picture would be.
            .args(["-b:v", "1500k", "-minrate", "1500k", "-maxrate", "1500k"])
            .args(["-bufsize", "1500k", "-x264-params", "nal-hrd=cbr"]);
        if let Some(g) = gop {
            cmd.args(["-g", &g.to_string()]);
        }
        cmd.args(["-c:a", "aac", "-b:a", "96k", "-ac", "2"])
            .args(["-t", &secs.to_string(), "-f", "flv", url])
            .stdin(Stdio::from(frames))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        let ffmpeg = cmd.spawn().expect("ffmpeg must be installed (see README)");
        ClockPublisher { source, ffmpeg }
    }
}

impl Drop for ClockPublisher {
    fn drop(&mut self) {
        let _ = self.ffmpeg.kill();
        let _ = self.source.kill();
        let _ = self.ffmpeg.wait();
        let _ = self.source.wait();
    }
}

/// Decodes a file with ffprobe and returns (codec, width, height, decoded frames) per stream.
pub fn ffprobe_frames(path: &Path) -> Vec<(String, u32, u32, u64)> {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-count_frames",
            "-show_entries",
            "stream=codec_name,width,height,nb_read_frames",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .expect("ffprobe must be installed (see README)");
    assert!(
        out.status.success(),
        "ffprobe failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            let n = |i: usize| f.get(i).and_then(|v| v.trim().parse().ok()).unwrap_or(0);
            (f[0].to_string(), n(1) as u32, n(2) as u32, n(f.len() - 1))
        })
        .collect()
}

/// Lines of a playlist that start with `tag`.
pub fn tags<'a>(playlist: &'a str, tag: &str) -> Vec<&'a str> {
    playlist.lines().filter(|l| l.starts_with(tag)).collect()
}

/// Value of `KEY=` in an attribute list line (quotes removed).
pub fn attr<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    // Attribute by attribute, so `HOLD-BACK` is not found inside `PART-HOLD-BACK` nor a comma
    // inside a quoted value taken for the end of one.
    let mut rest = line.split_once(':')?.1;
    while !rest.is_empty() {
        let (k, v) = rest.split_once('=')?;
        let (value, after) = match v.strip_prefix('"') {
            Some(q) => {
                let end = q.find('"')?;
                (&q[..end], &q[end + 1..])
            }
            None => v.split_at(v.find(',').unwrap_or(v.len())),
        };
        if k == key {
            return Some(value);
        }
        rest = after.strip_prefix(',').unwrap_or(after);
    }
    None
}

/// Waits until `/live/{name}` has `segments` complete video segments, then checks that init +
/// those segments decode with ffprobe at `width`x`height`. Returns the decoded frame count.
pub fn assert_video_decodes(
    srv: &Server,
    name: &str,
    segments: usize,
    width: u32,
    height: u32,
) -> u64 {
    assert_codec_decodes(srv, name, segments, width, height, "h264")
}

/// As [`assert_video_decodes`], for a given ffprobe codec name.
pub fn assert_codec_decodes(
    srv: &Server,
    name: &str,
    segments: usize,
    width: u32,
    height: u32,
    codec: &str,
) -> u64 {
    let playlist = wait_for("complete segments", Duration::from_secs(90), || {
        let r = get(srv.http, &format!("/live/{name}/video/index.m3u8")).ok()?;
        (r.status == 200 && tags(&r.text(), "#EXTINF").len() >= segments).then(|| r.text())
    });
    let path = download_rendition(srv, name, "video", &playlist);
    let probe = ffprobe_frames(&path);
    assert_eq!(probe[0].0, codec, "{probe:?}");
    assert_eq!((probe[0].1, probe[0].2), (width, height), "{probe:?}");
    assert!(probe[0].3 > 0, "{probe:?}");
    probe[0].3
}

/// Fetches the init segment and every segment `playlist` lists for one rendition, checking each
/// answers 200, and writes them into one file for ffprobe.
pub fn download_rendition(srv: &Server, name: &str, rendition: &str, playlist: &str) -> PathBuf {
    let map = attr(tags(playlist, "#EXT-X-MAP:")[0], "URI").expect("EXT-X-MAP URI");
    let init = get(srv.http, &format!("/live/{name}/{rendition}/{map}")).unwrap();
    assert_eq!(init.status, 200, "{map}");
    let mut file = init.body;
    for seg in playlist
        .lines()
        .filter(|l| l.ends_with(".m4s") && !l.starts_with('#'))
    {
        let r = get(srv.http, &format!("/live/{name}/{rendition}/{seg}")).unwrap();
        assert_eq!(r.status, 200, "{seg}");
        file.extend_from_slice(&r.body);
    }
    let path = srv.dir.0.join(format!("{name}-{rendition}.mp4"));
    std::fs::write(&path, &file).unwrap();
    path
}

/// Waits until the video playlist of `name` lists a part it did not list before, and is not
/// ended: the stream is live and advancing.
pub fn assert_advances(srv: &Server, name: &str) {
    let path = format!("/live/{name}/video/index.m3u8");
    let last_part = |p: &str| {
        tags(p, "#EXT-X-PART:")
            .last()
            .and_then(|l| attr(l, "URI"))
            .map(str::to_string)
    };
    let before = last_part(&get(srv.http, &path).unwrap().text());
    wait_for("the stream to advance", Duration::from_secs(60), || {
        let now = get(srv.http, &path).ok()?.text();
        assert!(!now.contains("#EXT-X-ENDLIST"), "the stream ended:\n{now}");
        (last_part(&now).is_some() && last_part(&now) != before).then_some(())
    });
}
