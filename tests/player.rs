//! Real players: hls.js and dash.js, each in low-latency mode in Debian's headless Chromium,
//! play a stream that ffmpeg publishes over RTMP, from a page on another origin.
//! `scripts/test.sh` installs Chromium and `tests/player/node_modules`.

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

/// Serves the test pages, hls.js and dash.js on its own port (its own origin).
fn serve_page() -> u16 {
    let dir = player_dir();
    let page = std::fs::read(dir.join("index.html")).expect("tests/player/index.html");
    let dash_page = std::fs::read(dir.join("dash.html")).expect("tests/player/dash.html");
    let missing = "players are not installed: run scripts/test.sh (it runs npm ci in tests/player)";
    let hls = std::fs::read(dir.join("node_modules/hls.js/dist/hls.min.js")).expect(missing);
    let dash = std::fs::read(dir.join("node_modules/dashjs/dist/dash.all.min.js")).expect(missing);
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
            } else if path.starts_with("/dash.html") {
                ("200 OK", "text/html", &dash_page)
            } else if path.starts_with("/dash.all.min.js") {
                ("200 OK", "application/javascript", &dash)
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

/// Plays `/live/demo/{manifest}` with `page` for 20 s against a live RTMP stream; returns the
/// last stats line after the checks every player must pass.
fn play(page: &str, manifest: &str, transcoding: bool, query: &str) -> String {
    let srv = if transcoding {
        Server::start("[transcode]\nenabled = true\n")
    } else {
        Server::start("")
    };
    let _publisher = Publisher::rtmp(&srv.rtmp_url(KEY), 60);
    wait_for("stream live", Duration::from_secs(60), || {
        get(srv.http, "/live/demo/video/index.m3u8")
            .ok()
            .filter(|r| r.text().contains("#EXTINF"))
            .map(|_| ())
    });
    let page_port = serve_page();
    let url = format!(
        "http://127.0.0.1:{page_port}/{page}?src=http://127.0.0.1:{}/live/demo/{manifest}{query}",
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
    let last = stats.last().unwrap().to_string();
    eprintln!("player: {last}");
    assert!(
        !last.contains("\"fatal\":true"),
        "fatal player error: {last}"
    );
    assert_eq!(field(&last, "audioTracks"), Some(1.0), "{last}");
    if !transcoding {
        assert_eq!(
            (field(&last, "width"), field(&last, "height")),
            (Some(1280.0), Some(720.0)),
            "{last}"
        );
    }
    // Playback advances without stalling over the last ten seconds.
    let t_end = field(&last, "currentTime").unwrap();
    let t_before = field(stats[stats.len() - 11], "currentTime").unwrap();
    assert!(
        t_end - t_before > 9.0,
        "played {:.2} s in 10 s: {last}",
        t_end - t_before
    );
    last
}

#[test]
fn hls_js_plays_low_latency_from_another_origin() {
    let last = play("index.html", "index.m3u8", false, "");
    assert_eq!(field(&last, "levels"), Some(1.0), "{last}");
    // hls.js's own live-latency estimate: about a second behind, well within three.
    let latency = field(&last, "latency").unwrap();
    assert!(latency > 0.3 && latency < 3.0, "latency {latency}: {last}");
}

#[test]
fn dash_js_plays_low_latency_from_another_origin() {
    let last = play("dash.html", "manifest.mpd", false, "");
    assert_eq!(field(&last, "representations"), Some(1.0), "{last}");
    // dash.js's live latency (from the MPD's UTCTiming clock): near the 1 s the MPD's
    // ServiceDescription asks for, which needs the segment being written to be streamed.
    let latency = field(&last, "latency").unwrap();
    assert!(latency > 0.3 && latency < 3.0, "latency {latency}: {last}");
}

/// The ladder (1280x720 source → source, 480p, 360p) in hls.js: every rendition listed, and a
/// forced switch to the lowest one (level 0 in hls.js's bitrate order) plays on without a stall.
#[test]
fn hls_js_lists_the_ladder_and_switches_renditions() {
    let last = play("index.html", "index.m3u8", true, "&switch=0");
    assert_eq!(field(&last, "levels"), Some(3.0), "{last}");
    assert!(last.contains("\"heights\":\"360/480/720\""), "{last}");
    assert_eq!(field(&last, "level"), Some(0.0), "switched: {last}");
    assert_eq!(field(&last, "height"), Some(360.0), "{last}");
    // Transcoding adds little: still within the low-latency target's range after the switch.
    let latency = field(&last, "latency").unwrap();
    assert!(latency > 0.3 && latency < 3.0, "latency {latency}: {last}");
}

/// The same in dash.js: three Representations, and a forced switch to the lowest.
#[test]
fn dash_js_lists_the_ladder_and_switches_renditions() {
    let last = play("dash.html", "manifest.mpd", true, "&switch=0");
    assert_eq!(field(&last, "representations"), Some(3.0), "{last}");
    assert_eq!(field(&last, "level"), Some(0.0), "switched: {last}");
    assert_eq!(field(&last, "height"), Some(360.0), "{last}");
    let latency = field(&last, "latency").unwrap();
    assert!(latency > 0.3 && latency < 3.0, "latency {latency}: {last}");
}
