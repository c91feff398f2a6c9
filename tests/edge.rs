//! Scale-out: the origin mirrors its window into a real `redis-server` (started here on a free
//! port); an `estuary edge` process serves the same playlists and bytes from Redis, blocking
//! reloads included, keeps serving when the origin dies, and survives Redis restarting.
//! Needs Debian's redis-server (scripts/test.sh installs it).

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;

/// A redis-server on `port` (no persistence); killed on drop.
struct Redis(Child);

impl Redis {
    fn start(port: u16) -> Redis {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .args(["--bind", "127.0.0.1"])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (scripts/test.sh installs it)");
        wait_for("redis-server", Duration::from_secs(30), || {
            cmd(port, "PING").filter(|r| r.contains("PONG")).map(|_| ())
        });
        Redis(child)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One inline Redis command; the raw reply.
fn cmd(port: u16, line: &str) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(format!("{line}\r\n").as_bytes()).ok()?;
    let mut buf = [0u8; 4096];
    let n = s.read(&mut buf).ok()?;
    Some(String::from_utf8_lossy(&buf[..n]).into_owned())
}

/// An `estuary edge` process; killed on drop.
struct Edge {
    child: Child,
    http: u16,
    _dir: TempDir,
}

impl Edge {
    fn start(redis: u16) -> Edge {
        let dir = TempDir::new("edge");
        let http = free_port();
        let cfg = dir.0.join("edge.toml");
        std::fs::write(
            &cfg,
            format!("[http]\nlisten = \"127.0.0.1:{http}\"\n[redis]\nurl = \"redis://127.0.0.1:{redis}\"\n"),
        )
        .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_estuary"))
            .args(["edge", "--config"])
            .arg(&cfg)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_for("the edge", Duration::from_secs(60), || {
            get(http, "/healthz")
                .ok()
                .filter(|r| r.status == 200)
                .map(|_| ())
        });
        Edge {
            child,
            http,
            _dir: dir,
        }
    }
}

impl Drop for Edge {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn redis_config(port: u16) -> String {
    format!("[redis]\nurl = \"redis://127.0.0.1:{port}\"\n")
}

#[test]
fn an_edge_serves_what_the_origin_mirrors_and_outlives_it() {
    let port = free_port();
    let _redis = Redis::start(port);
    let mut origin = Server::start(&redis_config(port));
    let edge = Edge::start(port);
    let _publisher = Publisher::rtmp(&origin.rtmp_url(KEY), 60);
    wait_for("two segments", Duration::from_secs(60), || {
        let p = get(origin.http, "/live/demo/video/index.m3u8").ok()?.text();
        (tags(&p, "#EXTINF").len() >= 2).then_some(())
    });

    // The same playlists (compared at one instant: a part may land between two requests).
    for path in [
        "/live/demo/index.m3u8",
        "/live/demo/video/index.m3u8",
        "/live/demo/audio/index.m3u8",
    ] {
        wait_for(
            &format!("{path} identical at the edge"),
            Duration::from_secs(60),
            || {
                let o = get(origin.http, path).ok()?;
                let e = get(edge.http, path).ok()?;
                (o.status == 200 && o.body == e.body).then_some(())
            },
        );
    }
    // The same bytes.
    let playlist = get(origin.http, "/live/demo/video/index.m3u8")
        .unwrap()
        .text();
    let part = tags(&playlist, "#EXT-X-PART:")
        .last()
        .and_then(|l| attr(l, "URI"))
        .unwrap()
        .to_string();
    let o = get(origin.http, &format!("/live/demo/video/{part}")).unwrap();
    let e = get(edge.http, &format!("/live/demo/video/{part}")).unwrap();
    assert_eq!((o.status, e.status), (200, 200));
    assert_eq!(o.body, e.body, "{part}");
    // A blocking reload at the edge wakes on the next part.
    let hint = tags(&playlist, "#EXT-X-PRELOAD-HINT:")[0];
    let next = attr(hint, "URI").unwrap();
    let file = next.split('/').nth(1).unwrap().trim_end_matches(".m4s");
    let (msn, part_n) = file.split_once('.').unwrap();
    let r = get(
        edge.http,
        &format!("/live/demo/video/index.m3u8?_HLS_msn={msn}&_HLS_part={part_n}"),
    )
    .unwrap();
    assert_eq!(r.status, 200);
    // The hinted part is now listed as a part (not only hinted again).
    let text = r.text();
    assert!(
        tags(&text, "#EXT-X-PART:")
            .iter()
            .any(|l| attr(l, "URI") == Some(next)),
        "{text}"
    );
    // A viewer's position stored at the origin reads back at the edge (both keep it in Redis).
    let r = request(
        origin.http,
        "PUT",
        "/api/v1/resume/viewer-9/demo-vod",
        &[("Content-Type", "application/json")],
        b"{\"position\": 61.25}",
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let got = get(edge.http, "/api/v1/resume/viewer-9/demo-vod")
        .unwrap()
        .text();
    assert!(got.contains("\"position\":61.25"), "{got}");
    // Everything of the window in Redis expires.
    for key in ["{s:demo}:meta", "{s:demo}:events", "{s:demo}:init:0"] {
        let ttl = cmd(port, &format!("TTL {key}")).unwrap();
        let secs: i64 = ttl.trim().trim_start_matches(':').parse().unwrap();
        assert!(secs > 0, "{key}: {ttl}");
    }

    // The origin dies: the edge keeps serving what Redis holds.
    let _ = origin.child.kill();
    let _ = origin.child.wait();
    let r = get(edge.http, "/live/demo/video/index.m3u8").unwrap();
    assert_eq!(r.status, 200);
    assert!(r.text().contains("#EXTINF"));
    let seg = r
        .text()
        .lines()
        .find(|l| l.ends_with(".m4s") && !l.starts_with('#'))
        .unwrap()
        .to_string();
    assert_eq!(
        get(edge.http, &format!("/live/demo/video/{seg}"))
            .unwrap()
            .status,
        200
    );
}

#[test]
fn redis_restarting_mid_stream_breaks_nothing_and_mirroring_resumes() {
    let port = free_port();
    let redis = Redis::start(port);
    let origin = Server::start(&redis_config(port));
    let edge = Edge::start(port);
    let _publisher = Publisher::rtmp(&origin.rtmp_url(KEY), 90);
    wait_for("the edge live", Duration::from_secs(60), || {
        let r = get(edge.http, "/live/demo/video/index.m3u8").ok()?;
        (r.status == 200).then_some(())
    });
    drop(redis);
    // The origin serves on from memory.
    assert_advances(&origin, NAME);
    std::thread::sleep(Duration::from_secs(2));
    let _redis = Redis::start(port);
    // Mirroring resumes and the edge follows the stream again.
    let before = get(origin.http, "/live/demo/video/index.m3u8")
        .unwrap()
        .text();
    let last = tags(&before, "#EXT-X-PART:")
        .last()
        .map(|l| l.to_string())
        .unwrap();
    wait_for("the edge to catch up", Duration::from_secs(60), || {
        let e = get(edge.http, "/live/demo/video/index.m3u8").ok()?;
        let text = e.text();
        let edge_last = tags(&text, "#EXT-X-PART:").last().map(|l| l.to_string())?;
        (e.status == 200 && edge_last != last && text.contains("#EXTINF")).then_some(())
    });
    assert!(origin.log_text().contains("Redis mirror failing"));
    assert!(origin.log_text().contains("Redis mirror back"));
    assert_advances(&origin, NAME);
}

#[test]
fn an_origin_can_leave_viewers_to_the_edges() {
    let port = free_port();
    let _redis = Redis::start(port);
    let origin = Server::start_with_http(&redis_config(port), "viewers = false\n");
    let edge = Edge::start(port);
    let _publisher = Publisher::rtmp(&origin.rtmp_url(KEY), 30);
    wait_for("the stream at the edge", Duration::from_secs(60), || {
        let r = get(edge.http, "/live/demo/video/index.m3u8").ok()?;
        (r.status == 200 && r.text().contains("#EXT-X-PART")).then_some(())
    });
    let r = get(origin.http, "/live/demo/index.m3u8").unwrap();
    assert_eq!(r.status, 404);
    assert!(r.text().contains("served by the edges"), "{}", r.text());
    assert_eq!(get(origin.http, "/healthz").unwrap().status, 200);
    assert!(get(origin.http, "/api/v1/streams")
        .unwrap()
        .text()
        .contains("\"demo\""));
}
