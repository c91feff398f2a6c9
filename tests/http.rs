//! HTTP surface: TLS with ALPN (HTTP/2), h2c prior knowledge, CORS preflight, methods, 404s.
//! Uses curl (nghttp2-enabled, as Debian ships it) as the independent HTTP/2 client.

mod common;

use std::process::Command;

use common::*;

fn curl(args: &[&str]) -> String {
    let out = Command::new("curl")
        .args(["-s", "-S", "--max-time", "20"])
        .args(args)
        .output()
        .expect("curl must be installed");
    assert!(
        out.status.success(),
        "curl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn tls_offers_http2_by_alpn() {
    let dir = TempDir::new("tls");
    let (cert, key) = self_signed_cert(&dir);
    let port = free_port();
    let tls = format!(
        "[http]\ntls_cert = \"{}\"\ntls_key = \"{}\"\n",
        cert.display(),
        key.display()
    );
    let srv = Estuary::serve()
        .config(&tls)
        .http_port(port)
        .unchecked()
        .start();
    let out = curl(&[
        "-k",
        "--http2",
        "-o",
        "/dev/null",
        "-w",
        "%{http_version} %{http_code}",
        &format!("https://127.0.0.1:{port}/healthz"),
    ]);
    assert_eq!(out, "2 200");
    let out = curl(&[
        "-k",
        "--http1.1",
        "-o",
        "/dev/null",
        "-w",
        "%{http_version} %{http_code}",
        &format!("https://127.0.0.1:{port}/healthz"),
    ]);
    assert_eq!(out, "1.1 200");
    drop(srv);
}

#[test]
fn cleartext_http2_cors_and_errors() {
    let srv = Server::start("");
    let base = format!("http://127.0.0.1:{}", srv.http);
    let out = curl(&[
        "--http2-prior-knowledge",
        "-o",
        "/dev/null",
        "-w",
        "%{http_version} %{http_code}",
        &format!("{base}/healthz"),
    ]);
    assert_eq!(out, "2 200");
    // CORS preflight from a player page on another origin.
    let head = curl(&[
        "-i",
        "-X",
        "OPTIONS",
        "-H",
        "Origin: http://player.example",
        "-H",
        "Access-Control-Request-Method: GET",
        &format!("{base}/live/demo/index.m3u8"),
    ]);
    assert!(head.starts_with("HTTP/1.1 204"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("access-control-allow-origin: *"),
        "{head}"
    );
    assert!(
        head.to_ascii_lowercase()
            .contains("access-control-allow-methods: get, head, options"),
        "{head}"
    );
    let post = curl(&["-i", "-X", "POST", &format!("{base}/live/demo/index.m3u8")]);
    assert!(post.starts_with("HTTP/1.1 405"), "{post}");
    let missing = get(srv.http, "/live/nothing/index.m3u8").unwrap();
    assert_eq!(missing.status, 404);
    assert_eq!(
        missing.header("cache-control"),
        Some("no-store"),
        "a 404 must not be cached by a CDN"
    );
    assert_eq!(
        get(srv.http, "/live/demo/video/abc/1.2.m4s")
            .unwrap()
            .status,
        404
    );
    let api = api_get(srv.http, "/api/v1/streams").unwrap();
    assert_eq!(api.header("content-type"), Some("application/json"));
    assert!(api.text().contains("\"streams\":[]"), "{}", api.text());
}

/// SIGTERM while a stream is live (and would be held 15 s for a reconnect): the stream ends at
/// once, its archive is finished (VOD playlist, `ended` in its meta), and the process exits.
#[test]
fn sigterm_shuts_down_cleanly_while_a_stream_is_live() {
    let mut srv = Server::start("[server]\nreconnect_grace_secs = 15\n");
    let _p = Publisher::rtmp(&srv.rtmp_url(KEY), 30);
    wait_for(
        "a complete segment",
        std::time::Duration::from_secs(60),
        || {
            get(srv.http, "/live/demo/video/index.m3u8")
                .ok()
                .filter(|r| r.text().contains("#EXTINF"))
                .map(|_| ())
        },
    );
    let pid = srv.process.pid().to_string();
    let asked = std::time::Instant::now();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let status = wait_for(
        "exit after SIGTERM",
        std::time::Duration::from_secs(30),
        || srv.process.try_wait(),
    );
    assert!(status.success(), "exit status {status:?}");
    let log = srv.log_text();
    assert!(
        log.contains("shutting down") && log.contains("stopped"),
        "{log}"
    );
    assert!(
        asked.elapsed() < std::time::Duration::from_secs(12),
        "not held for the reconnect grace: {:?}\n{log}",
        asked.elapsed()
    );
    let archive = srv.dir.0.join("data/archive");
    let id = std::fs::read_dir(&archive)
        .unwrap()
        .next()
        .expect("an archive")
        .unwrap()
        .path();
    let vod = std::fs::read_to_string(id.join("video/index.m3u8")).unwrap();
    assert!(
        vod.contains("#EXT-X-ENDLIST"),
        "the archive was finished:\n{vod}"
    );
    let meta = std::fs::read_to_string(id.join("meta.json")).unwrap();
    assert!(meta.contains("\"ended\":\"20"), "{meta}");
}
