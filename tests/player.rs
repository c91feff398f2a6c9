//! A real player: hls.js (low-latency mode) in Debian's headless Chromium plays a stream that
//! ffmpeg publishes over RTMP, from a page on another origin. `scripts/test.sh` installs
//! Chromium and `tests/player/node_modules`.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

fn player_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/player")
}

/// Serves the test page and hls.js on its own port (its own origin).
fn serve_page() -> u16 {
    let dir = player_dir();
    let page = std::fs::read(dir.join("index.html")).expect("tests/player/index.html");
    let hls = std::fs::read(dir.join("node_modules/hls.js/dist/hls.min.js"))
        .expect("hls.js is not installed: run scripts/test.sh (it runs npm ci in tests/player)");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut buf = [0u8; 4096];
            let n = conn.read(&mut buf).unwrap_or(0);
            let req = String::from_utf8_lossy(&buf[..n]);
            let path = req.split_whitespace().nth(1).unwrap_or("/");
            let (status, ctype, body) = if path.starts_with("/index.html") {
                ("200 OK", "text/html", &page)
            } else if path.starts_with("/hls.min.js") {
                ("200 OK", "application/javascript", &hls)
            } else {
                ("404 Not Found", "text/plain", &Vec::new())
            };
            let head = format!("HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
            let _ = conn.write_all(head.as_bytes());
            let _ = conn.write_all(body);
        }
    });
    port
}

fn field(line: &str, key: &str) -> Option<f64> {
    let start = line.find(&format!("\"{key}\":"))? + key.len() + 3;
    let rest = &line[start..];
    let end = rest.find([',', '}']).unwrap_or(rest.len());
    rest[..end].trim().parse().ok()
}

#[test]
fn hls_js_plays_low_latency_from_another_origin() {
    let srv = Server::start("");
    let _publisher = Publisher::rtmp(&srv.rtmp_url(KEY), 60);
    wait_for("stream live", Duration::from_secs(60), || {
        get(srv.http, "/live/demo/video/index.m3u8")
            .ok()
            .filter(|r| r.text().contains("#EXTINF"))
            .map(|_| ())
    });
    let page_port = serve_page();
    let url = format!(
        "http://127.0.0.1:{page_port}/index.html?src=http://127.0.0.1:{}/live/demo/index.m3u8",
        srv.http
    );
    let mut child = Command::new("node")
        .arg("play.mjs")
        .arg(&url)
        .arg("20")
        .current_dir(player_dir())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("node must be installed (scripts/test.sh installs it)");
    let lines: Vec<String> = BufReader::new(child.stdout.take().unwrap())
        .lines()
        .map_while(Result::ok)
        .collect();
    let status = child.wait().unwrap();
    assert!(status.success(), "player script failed: {lines:?}");
    assert!(
        lines.last().is_some_and(|l| l.contains("\"done\":true")),
        "{lines:?}"
    );
    let stats: Vec<&String> = lines.iter().filter(|l| l.contains("currentTime")).collect();
    assert!(stats.len() >= 15, "{lines:?}");
    let last = stats.last().unwrap();
    eprintln!("player: {last}");
    assert!(
        !last.contains("\"fatal\":true"),
        "fatal player error: {last}"
    );
    assert_eq!(field(last, "levels"), Some(1.0), "{last}");
    assert_eq!(field(last, "audioTracks"), Some(1.0), "{last}");
    assert_eq!(
        (field(last, "width"), field(last, "height")),
        (Some(1280.0), Some(720.0)),
        "{last}"
    );
    // Playback advances without stalling over the last ten seconds.
    let t_end = field(last, "currentTime").unwrap();
    let t_before = field(stats[stats.len() - 11], "currentTime").unwrap();
    assert!(
        t_end - t_before > 9.0,
        "played {:.2} s in 10 s: {last}",
        t_end - t_before
    );
    // hls.js's own live-latency estimate: about a second behind, well within three.
    let latency = field(last, "latency").unwrap();
    assert!(latency > 0.3 && latency < 3.0, "latency {latency}: {last}");
}
