//! The operator's API and who may publish, as an operator and a broadcaster meet them: every
//! route under `/api/v1/` but the time needs the API token; streams created through the API
//! take ffmpeg's publish with the key they were given, lose it when rotated or deleted, keep
//! it across a restart (kept as a digest), and can have their publisher kicked; playback
//! tokens are minted for signed ones; an operator's HTTP callback allows one key and denies
//! another; a config with an example key does not start.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;

const LONG: Duration = Duration::from_secs(60);

fn json(r: &Resp) -> serde_json::Value {
    serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("{e}: {}", r.text()))
}

fn live(srv: &Server, name: &str) {
    wait_for(&format!("stream {name} live"), LONG, || {
        get(srv.http, &format!("/live/{name}/video/index.m3u8"))
            .ok()
            .filter(|r| r.status == 200 && r.text().contains("#EXTINF"))
            .map(|_| ())
    });
}

/// ffmpeg's publish with `key` is refused (it exits with an error soon).
fn refused(srv: &Server, key: &str) {
    let (ok, err) = Publisher::rtmp(&srv.rtmp_url(key), 10).wait(LONG);
    assert!(!ok, "a publish with {key} went through: {err}");
}

#[test]
fn the_api_needs_its_token_and_manages_the_streams_publishers_use() {
    let mut srv = Server::start("");
    let h = srv.http;

    // The token, and only on the operator's routes.
    let r = get(h, "/api/v1/streams").unwrap();
    assert_eq!(r.status, 401);
    assert_eq!(json(&r)["reason"], "missing");
    assert!(r.header("www-authenticate").is_some());
    let r = get_with(
        h,
        "/api/v1/streams",
        &[("Authorization", "Bearer not-the-token")],
    )
    .unwrap();
    assert_eq!(
        (r.status, json(&r)["reason"].as_str()),
        (401, Some("bad_token"))
    );
    for path in ["/api/v1/vod", "/api/v1/edge"] {
        assert_eq!(get(h, path).unwrap().status, 401, "{path}");
    }
    let r = request(h, "POST", "/api/v1/streams", &[], b"{\"name\":\"x\"}").unwrap();
    assert_eq!(r.status, 401);
    assert_eq!(get(h, "/api/v1/time").unwrap().status, 200);
    assert_eq!(get(h, "/healthz").unwrap().status, 200);
    assert_eq!(api_get(h, "/api/v1/streams").unwrap().status, 200);

    // A stream created through the API takes ffmpeg's publish with its key.
    let r = api_request(h, "POST", "/api/v1/streams", r#"{"name": "show"}"#).unwrap();
    assert_eq!(r.status, 201, "{}", r.text());
    let key = json(&r)["key"].as_str().unwrap().to_string();
    assert!(key.len() >= 20);
    let r = api_request(h, "POST", "/api/v1/streams", r#"{"name": "show"}"#).unwrap();
    assert_eq!(r.status, 409, "{}", r.text());
    let r = api_request(h, "POST", "/api/v1/streams", r#"{"name": "demo"}"#).unwrap();
    assert_eq!(r.status, 409, "a configured one: {}", r.text());
    let r = api_request(h, "POST", "/api/v1/streams", r#"{"name": "../x"}"#).unwrap();
    assert_eq!(r.status, 400);
    let publisher = Publisher::rtmp(&srv.rtmp_url(&key), 60);
    live(&srv, "show");

    // Kicked: ffmpeg is cut off and the stream ends.
    let r = api_request(h, "POST", "/api/v1/streams/show/kick", "").unwrap();
    assert_eq!(r.status, 204, "{}", r.text());
    let (ok, _) = publisher.wait(LONG);
    assert!(!ok, "ffmpeg saw its connection cut");
    wait_for("the kicked stream to end", LONG, || {
        let r = get(h, "/live/show/video/index.m3u8").ok()?;
        (r.status == 404 || r.text().contains("#EXT-X-ENDLIST")).then_some(())
    });
    let r = api_request(h, "POST", "/api/v1/streams/show/kick", "").unwrap();
    assert_eq!(r.status, 409, "nobody publishes now");

    // A new key: the old one stops working.
    let r = api_request(h, "POST", "/api/v1/streams/show/key", "").unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let new_key = json(&r)["key"].as_str().unwrap().to_string();
    assert_ne!(new_key, key);
    refused(&srv, &key);

    // Kept across a restart, as a digest only.
    srv.restart();
    let kept = std::fs::read_to_string(srv.dir.0.join("data/streams.json")).unwrap();
    assert!(
        kept.contains("\"show\"") && !kept.contains(&new_key),
        "{kept}"
    );
    let publisher = Publisher::rtmp(&srv.rtmp_url(&new_key), 60);
    live(&srv, "show");
    drop(publisher);

    // Deleted: its key is refused.
    let r = api_request(srv.http, "DELETE", "/api/v1/streams/show", "").unwrap();
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(
        api_request(srv.http, "DELETE", "/api/v1/streams/show", "")
            .unwrap()
            .status,
        404
    );
    assert_eq!(
        api_request(srv.http, "DELETE", "/api/v1/streams/demo", "")
            .unwrap()
            .status,
        409
    );
    refused(&srv, &new_key);

    // A signed stream, and a playback token minted for it.
    let h = srv.http;
    let r = api_request(
        h,
        "POST",
        "/api/v1/streams",
        r#"{"name": "paid", "playback": "signed"}"#,
    )
    .unwrap();
    assert_eq!(json(&r)["playback"], "signed");
    let paid_key = json(&r)["key"].as_str().unwrap().to_string();
    let r = api_request(
        h,
        "POST",
        "/api/v1/streams/paid/tokens",
        r#"{"ttl_secs": 600}"#,
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let token = json(&r)["token"].as_str().unwrap().to_string();
    let _paid = Publisher::rtmp(&srv.rtmp_url(&paid_key), 60);
    wait_for("the signed stream live", LONG, || {
        get(h, &format!("/live/paid/video/index.m3u8?token={token}"))
            .ok()
            .filter(|r| r.status == 200 && r.text().contains("#EXTINF"))
            .map(|_| ())
    });
    assert_eq!(get(h, "/live/paid/video/index.m3u8").unwrap().status, 401);
    let r = api_request(
        h,
        "POST",
        "/api/v1/streams/paid/tokens",
        r#"{"aud": "viewer"}"#,
    )
    .unwrap();
    assert_eq!(r.status, 400, "{}", r.text());
}

/// An operator's publish callback on a port of its own: allows `allowed` (to stream
/// `cb-show`), refuses everything else; what it was asked.
fn callback_server(allowed: &'static str) -> (u16, Arc<Mutex<Vec<serde_json::Value>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let asked = Arc::new(Mutex::new(Vec::new()));
    let seen = asked.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            let mut r = BufReader::new(conn);
            let mut len = 0;
            loop {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0u8; len];
            let _ = r.read_exact(&mut body);
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            let ok = v["key"] == allowed;
            seen.lock().unwrap().push(v);
            let (status, answer) = if ok {
                ("200 OK", r#"{"stream": "cb-show"}"#)
            } else {
                ("403 Forbidden", "no such user")
            };
            let mut conn = r.into_inner();
            let _ = write!(
                conn,
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
                answer.len()
            );
        }
    });
    (port, asked)
}

#[test]
fn a_publish_callback_allows_one_key_and_denies_another() {
    let (port, asked) = callback_server("their-user-key-1");
    let srv = Server::start(&format!(
        "[auth]\npublish_url = \"http://127.0.0.1:{port}/publish\"\n"
    ));
    let _allowed = Publisher::rtmp(&srv.rtmp_url("their-user-key-1"), 60);
    live(&srv, "cb-show");
    refused(&srv, "their-user-key-2");
    // The callback decides for configured keys too.
    refused(&srv, KEY);
    let asked = asked.lock().unwrap().clone();
    let first = &asked[0];
    assert_eq!(first["protocol"], "rtmp");
    assert_eq!(first["key"], "their-user-key-1");
    assert!(first["stream"].is_null());
    assert!(first["remote_addr"]
        .as_str()
        .unwrap()
        .starts_with("127.0.0.1:"));
    assert!(
        asked
            .iter()
            .any(|a| a["key"] == KEY && a["stream"] == "demo"),
        "{asked:?}"
    );
    let log = srv.log_text();
    assert!(
        log.contains("the publish callback refused it: 403 Forbidden no such user"),
        "{log}"
    );
}

#[test]
fn an_example_key_does_not_start() {
    let dir = TempDir::new("example-key");
    let config = dir.0.join("estuary.toml");
    std::fs::write(
        &config,
        "[[streams]]\nname = \"demo\"\nkey = \"change-me-demo-key\"\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_estuary"))
        .args(["serve", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is an example"), "{err}");
}

/// `estuary healthcheck` (the container's HEALTHCHECK): 0 while `/healthz` answers, not 0 when
/// nothing listens.
#[test]
fn the_healthcheck_command_asks_healthz() {
    let srv = Server::start("");
    let run = |port: u16| {
        Command::new(env!("CARGO_BIN_EXE_estuary"))
            .arg("healthcheck")
            .arg(format!("http://127.0.0.1:{port}/healthz"))
            .output()
            .unwrap()
    };
    assert!(run(srv.http).status.success());
    let closed = run(free_port());
    assert!(!closed.status.success());
    assert!(String::from_utf8_lossy(&closed.stderr).contains("connecting to"));
}

/// With `[redis] url`, streams created through the API are kept in Redis (their key as a
/// digest), not in the data directory, and an origin started again takes their keys.
#[test]
fn streams_created_through_the_api_are_kept_in_redis_when_there_is_one() {
    let port = free_port();
    let _redis = Redis::start(port);
    let mut srv = Server::start(&format!("[redis]\nurl = \"redis://127.0.0.1:{port}\"\n"));
    let r = api_request(srv.http, "POST", "/api/v1/streams", r#"{"name": "kept"}"#).unwrap();
    assert_eq!(r.status, 201, "{}", r.text());
    let key = json(&r)["key"].as_str().unwrap().to_string();
    let hash = cmd(port, "HGETALL estuary:streams").unwrap();
    assert!(
        hash.contains("kept") && hash.contains("key_sha256"),
        "{hash}"
    );
    assert!(!hash.contains(&key), "the key itself is not kept: {hash}");
    assert!(!srv.dir.0.join("data/streams.json").exists());
    srv.restart();
    let _publisher = Publisher::rtmp(&srv.rtmp_url(&key), 60);
    live(&srv, "kept");
}

/// The resume API while its store (Redis) is down: 503, not a 404 that would tell a player
/// to start over.
#[test]
fn resume_answers_503_while_its_store_is_down() {
    let port = free_port();
    let redis = Redis::start(port);
    let srv = Server::start(&format!("[redis]\nurl = \"redis://127.0.0.1:{port}\"\n"));
    let auth = format!("Bearer {}", viewer_token(srv.http, "viewer-5"));
    let put = || {
        request(
            srv.http,
            "PUT",
            "/api/v1/resume/demo-x",
            &[("Authorization", &auth)],
            b"41.5",
        )
        .unwrap()
    };
    assert_eq!(put().status, 200);
    drop(redis);
    let r = get_with(
        srv.http,
        "/api/v1/resume/demo-x",
        &[("Authorization", &auth)],
    )
    .unwrap();
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(put().status, 503);
}
