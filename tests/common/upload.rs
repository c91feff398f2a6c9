//! What the upload tests share: direct uploads made through the API, raw tus requests, a
//! creator's browser (upload.html with tus-js-client in headless Chromium), videos made with
//! ffmpeg, and what a packaged asset is checked with (ffprobe's packet counts, the decoded
//! pictures' MD5, its renditions downloaded whole), and tus-js-client's Node build as an
//! uploader that can be killed.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use super::player::player_dir;
use super::*;

pub fn json(r: super::http::Resp) -> serde_json::Value {
    serde_json::from_slice(&r.body).unwrap_or_else(|_| panic!("{} {}", r.status, r.text()))
}

pub fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Opens upload.html in Chromium with the browser profile `profile`; the page's final state.
pub fn upload_in_browser(page: &str, profile: &std::path::Path) -> serde_json::Value {
    let out = Command::new("node")
        .arg("upload.mjs")
        .arg(page)
        .arg(profile)
        .current_dir(player_dir())
        .output()
        .expect("node (scripts/test.sh installs it)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|_| {
        panic!(
            "upload.mjs: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// A direct upload made through the API.
pub fn direct(srv: &Server, body: &str) -> serde_json::Value {
    let r = api_request(srv.http, "POST", "/api/v1/uploads", body).unwrap();
    assert_eq!(r.status, 201, "{}", r.text());
    json(r)
}

pub fn tus(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> super::http::Resp {
    let mut all = vec![("Tus-Resumable", "1.0.0")];
    all.extend_from_slice(headers);
    request(port, method, path, &all, body).unwrap()
}

/// A video made with ffmpeg: `args` (inputs and codec settings), written to `dir/name`.
pub fn clip(dir: &std::path::Path, name: &str, args: &[&str]) -> std::path::PathBuf {
    let path = dir.join(name);
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(args)
        .arg(&path)
        .output()
        .expect("ffmpeg (scripts/test.sh installs it)");
    assert!(
        out.status.success(),
        "ffmpeg: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    path
}

/// An H.264 + AAC MP4 of `secs` seconds of a 25 fps test pattern at `size` (`WxH`) with a
/// tone: keyframes every 2 s, small.
pub fn test_clip(dir: &std::path::Path, name: &str, size: &str, secs: u32) -> std::path::PathBuf {
    let source = format!("testsrc2=size={size}:rate=25");
    let secs = secs.to_string();
    clip(
        dir,
        name,
        &[
            "-f",
            "lavfi",
            "-i",
            &source,
            "-f",
            "lavfi",
            "-i",
            "sine=sample_rate=48000",
            "-t",
            &secs,
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-g",
            "50",
            "-c:a",
            "aac",
        ],
    )
}

/// An H.264 + AAC MP4 of `secs` seconds of 720p30 noise at a constant `mbit` Mbit/s (bytes that
/// do not compress, for uploads of a size), with a tone.
pub fn noisy_clip(dir: &std::path::Path, name: &str, secs: u32, mbit: u32) -> std::path::PathBuf {
    let secs = secs.to_string();
    let rate = format!("{mbit}M");
    clip(
        dir,
        name,
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=1280x720:rate=30,noise=alls=60:allf=t",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=48000",
            "-t",
            &secs,
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-b:v",
            &rate,
            "-minrate",
            &rate,
            "-maxrate",
            &rate,
            "-bufsize",
            &rate,
            "-g",
            "60",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            "-b:a",
            "128k",
        ],
    )
}

/// The MD5 of a file's decoded video (`-map 0:v`), as ffmpeg's md5 muxer writes it.
pub fn decoded_md5(path: &std::path::Path) -> String {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-i"])
        .arg(path)
        .args(["-map", "0:v", "-f", "md5", "-"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Packets per stream type (`video`, `audio`) as ffprobe counts them.
pub fn packet_counts(path: &std::path::Path) -> (u64, u64) {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-count_packets",
            "-show_entries",
            "stream=codec_type,nb_read_packets",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    // (MPEG-TS lists each stream twice, in its program and on its own.)
    let count = |kind: &str| {
        text.lines()
            .filter_map(|l| l.split_once(','))
            .filter(|(k, _)| *k == kind)
            .filter_map(|(_, n)| n.trim_matches(',').trim().parse::<u64>().ok())
            .max()
            .unwrap_or(0)
    };
    (count("video"), count("audio"))
}

/// Waits until asset `id` is no longer being made (ready, errored, or waiting for a reason).
pub fn settled(srv: &Server, id: &str) -> serde_json::Value {
    wait_for("the asset to settle", Duration::from_secs(120), || {
        let a = json(api_get(srv.http, &format!("/api/v1/assets/{id}")).ok()?);
        let busy = a["status"] == "preparing" || (a["status"] == "waiting" && a["error"].is_null());
        (!busy).then_some(a)
    })
}

/// Fetches one rendition of a VOD asset (init and every segment its playlist lists) into one
/// file; with the playlist.
pub fn download_vod(srv: &Server, asset: &str, rendition: &str) -> (std::path::PathBuf, String) {
    let base = format!("/vod/{asset}/{rendition}");
    let playlist = get(srv.http, &format!("{base}/index.m3u8")).unwrap();
    assert_eq!(playlist.status, 200, "{}", playlist.text());
    let playlist = playlist.text();
    let mut file = get(srv.http, &format!("{base}/init.mp4")).unwrap().body;
    for seg in playlist.lines().filter(|l| l.ends_with(".m4s")) {
        let r = get(srv.http, &format!("{base}/{seg}")).unwrap();
        assert_eq!(r.status, 200, "{seg}");
        file.extend_from_slice(&r.body);
    }
    let path = srv.dir.0.join(format!("{asset}-{rendition}.mp4"));
    std::fs::write(&path, file).unwrap();
    (path, playlist)
}

/// One tus upload of `bytes` in a single request (creation-with-upload); the asset it made.
pub fn upload_file(srv: &Server, name: &str, bytes: &[u8]) -> String {
    let d = direct(srv, "{}");
    let id = d["id"].as_str().unwrap();
    let length = bytes.len().to_string();
    let meta = format!("filename {}", base64(name.as_bytes()));
    let r = tus(
        srv.http,
        "POST",
        &format!("/uploads/{id}"),
        &[
            ("Upload-Length", &length),
            ("Upload-Metadata", &meta),
            ("Content-Type", "application/offset+octet-stream"),
        ],
        bytes,
    );
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.header("upload-offset"), Some(length.as_str()));
    let d = json(api_get(srv.http, &format!("/api/v1/uploads/{id}")).unwrap());
    d["asset_id"].as_str().unwrap().to_string()
}

pub fn base64(b: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in b.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= c.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A `PATCH` at `offset` of the upload at `at` whose `Upload-Checksum` does not match its bytes
/// is refused (`460`) and counts nothing.
pub fn wrong_checksum_refused(port: u16, at: &str, offset: &str) {
    let bad_sum = tus(
        port,
        "PATCH",
        at,
        &[
            ("Content-Type", "application/offset+octet-stream"),
            ("Upload-Offset", offset),
            ("Upload-Checksum", "sha1 AAAAAAAAAAAAAAAAAAAAAAAAAAA="),
        ],
        b"world",
    );
    assert_eq!(bad_sum.status, 460, "{}", bad_sum.text());
    assert_eq!(
        tus(port, "HEAD", at, &[], b"").header("upload-offset"),
        Some(offset)
    );
}

/// Asset `asset` plays for more than 4 s in hls.js and in dash.js.
pub fn plays_in_hls_js_and_dash_js(srv: &Server, asset: &str) {
    let player_port = super::player::serve_page();
    for (page, manifest) in [("index.html", "index.m3u8"), ("dash.html", "manifest.mpd")] {
        let url = format!(
            "http://127.0.0.1:{player_port}/{page}?src=http://127.0.0.1:{}/vod/{asset}/{manifest}&catchup=0",
            srv.http
        );
        let lines = super::player::run_player(&url, 10);
        let played = lines
            .iter()
            .filter_map(|l| super::player::field(l, "currentTime"))
            .fold(0.0, f64::max);
        assert!(played > 4.0, "{page}: played {played} s: {lines:?}");
    }
}

/// tus_node.mjs uploading `file` to `url`, its lines (JSON) coming through a channel.
pub struct NodeUpload {
    child: Child,
    lines: mpsc::Receiver<serde_json::Value>,
}

impl NodeUpload {
    pub fn start(file: &std::path::Path, url: &str, store: &std::path::Path) -> NodeUpload {
        Self::run(file, url, store, None)
    }

    /// An upload whose request stops sending once the file's first `hold` bytes are in it and
    /// stays open, as a laptop's does when its lid closes (`{"held": hold}` says when).
    pub fn holding(
        file: &std::path::Path,
        url: &str,
        store: &std::path::Path,
        hold: u64,
    ) -> NodeUpload {
        Self::run(file, url, store, Some(hold))
    }

    fn run(
        file: &std::path::Path,
        url: &str,
        store: &std::path::Path,
        hold: Option<u64>,
    ) -> NodeUpload {
        let mut child = Command::new("node")
            .arg("tus_node.mjs")
            .arg(file)
            .arg(url)
            .arg(store)
            .args(hold.map(|h| h.to_string()))
            .current_dir(player_dir())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("node (scripts/test.sh installs it)");
        let out = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let v = serde_json::from_str(&line)
                    .unwrap_or_else(|_| serde_json::json!({ "text": line }));
                if tx.send(v).is_err() {
                    return;
                }
            }
        });
        NodeUpload { child, lines }
    }

    /// Reads lines until one satisfies `f` (or the uploader ends or fails); every line read.
    pub fn until(
        &self,
        what: &str,
        f: impl Fn(&serde_json::Value) -> bool,
    ) -> Vec<serde_json::Value> {
        let mut seen = Vec::new();
        loop {
            let v = self
                .lines
                .recv_timeout(Duration::from_secs(300))
                .unwrap_or_else(|_| panic!("tus_node.mjs: no {what}; it said {seen:?}"));
            assert!(v["error"].is_null(), "tus_node.mjs: {v}; before: {seen:?}");
            let found = f(&v);
            seen.push(v);
            if found {
                return seen;
            }
        }
    }

    /// Waits for `{"held": hold}`, then until the API shows all `hold` bytes of direct upload
    /// `id` arrived (the request still open), then kills the uploader as a closed laptop or a
    /// crashed tool is killed (no goodbye on its connection); the offset the catalog counts
    /// once the server has seen the request break.
    pub fn kill_when_held(self, srv: &Server, id: &str, hold: u64) -> u64 {
        self.until("held", |v| v["held"].as_u64() == Some(hold));
        wait_for(
            "the held request's bytes at the server",
            Duration::from_secs(60),
            || {
                let d = json(api_get(srv.http, &format!("/api/v1/uploads/{id}")).ok()?);
                (d["offset"].as_u64()? == hold).then_some(())
            },
        );
        drop(self);
        counted(srv, id)
    }
}

impl Drop for NodeUpload {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until the bytes of direct upload `id`'s cut request are counted: HEAD (the catalog's
/// offset) says what the API shows (in flight while the request lasts); that offset.
fn counted(srv: &Server, id: &str) -> u64 {
    wait_for(
        "the cut request's bytes counted",
        Duration::from_secs(60),
        || {
            let d = json(api_get(srv.http, &format!("/api/v1/uploads/{id}")).ok()?);
            let o = d["offset"].as_u64()?;
            let upload = d["upload_id"].as_str()?.to_string();
            let head = tus(
                srv.http,
                "HEAD",
                &format!("/uploads/{id}/{upload}"),
                &[],
                b"",
            );
            (head.header("upload-offset")?.parse::<u64>().ok()? == o).then_some(o)
        },
    )
}
