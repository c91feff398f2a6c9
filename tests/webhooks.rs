//! Signed webhooks, as a receiver meets them: it is down while a stream starts, drops, comes
//! back and ends, then comes up, and gets every event once (`stream.started`,
//! `stream.reconnected`, `stream.ended`, `recording.ready`), each with a Standard Webhooks
//! signature that verifies with the shared secret.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use common::*;
use hmac::{Hmac, Mac};
use sha2::Sha256;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const LONG: Duration = Duration::from_secs(90);

/// What the receiver got: (headers, body) per request.
type Got = Arc<Mutex<Vec<(HashMap<String, String>, Vec<u8>)>>>;

/// A receiver on `listener`: answers 204 to everything and keeps it.
fn receive(listener: TcpListener) -> Got {
    let got: Got = Arc::default();
    let g = got.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            let mut r = BufReader::new(conn);
            let mut headers = HashMap::new();
            loop {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some((k, v)) = line.split_once(':') {
                    headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
                }
            }
            let len = headers
                .get("content-length")
                .and_then(|l| l.parse().ok())
                .unwrap_or(0);
            let mut body = vec![0u8; len];
            if r.read_exact(&mut body).is_err() {
                continue;
            }
            g.lock().unwrap().push((headers, body));
            let _ = r
                .into_inner()
                .write_all(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n");
        }
    });
    got
}

fn verify(headers: &HashMap<String, String>, body: &[u8]) {
    let id = &headers["webhook-id"];
    let ts = &headers["webhook-timestamp"];
    let key = base64::engine::general_purpose::STANDARD
        .decode(SECRET.strip_prefix("whsec_").unwrap())
        .unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{ts}.").as_bytes());
    mac.update(body);
    let expected = format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    );
    assert!(
        headers["webhook-signature"]
            .split(' ')
            .any(|s| s == expected),
        "signature {} for {}",
        headers["webhook-signature"],
        String::from_utf8_lossy(body)
    );
    let now = jsonwebtoken::get_current_timestamp();
    let ts: u64 = ts.parse().unwrap();
    assert!(ts <= now + 5 && now - ts < 300, "timestamp {ts}, now {now}");
}

#[test]
fn a_receiver_that_was_down_gets_every_event_once_signed() {
    let port = free_port();
    let srv = Server::start(&format!(
        "[server]\nreconnect_grace_secs = 20\n[hls]\nend_grace = 0.5\n\
         [[webhooks]]\nurl = \"http://127.0.0.1:{port}/hooks\"\nsecret = \"{SECRET}\"\n"
    ));
    // Live; the publisher drops (killed) and comes back within the grace; then stops.
    let first = Publisher::rtmp(&srv.rtmp_url(KEY), 60);
    assert_advances(&srv, "demo");
    drop(first);
    wait_for("the drop to be seen", LONG, || {
        srv.log_text()
            .contains("holding the stream for a reconnect")
            .then_some(())
    });
    let (ok, err) = Publisher::rtmp(&srv.rtmp_url(KEY), 6).wait(LONG);
    assert!(ok, "{err}");
    wait_for("the archive complete", LONG, || {
        srv.log_text().contains("archive complete").then_some(())
    });
    // The receiver was down all along; it comes up now.
    std::thread::sleep(Duration::from_secs(3));
    let got = receive(TcpListener::bind(("127.0.0.1", port)).unwrap());
    let types = |got: &Got| -> Vec<String> {
        got.lock()
            .unwrap()
            .iter()
            .map(|(_, b)| {
                let v: serde_json::Value = serde_json::from_slice(b).unwrap();
                v["type"].as_str().unwrap().to_string()
            })
            .collect()
    };
    wait_for("four events", LONG, || {
        (types(&got).len() >= 4).then_some(())
    });
    // Later retries would show up as repeats.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        types(&got),
        [
            "stream.started",
            "stream.reconnected",
            "stream.ended",
            "recording.ready"
        ]
    );
    let got = got.lock().unwrap();
    let mut ids = std::collections::HashSet::new();
    for (headers, body) in got.iter() {
        verify(headers, body);
        assert!(
            ids.insert(headers["webhook-id"].clone()),
            "one delivery per event"
        );
        let v: serde_json::Value = serde_json::from_slice(body).unwrap();
        assert_eq!(v["data"]["stream"], "demo", "{v}");
    }
    let (_, ready) = &got[3];
    let v: serde_json::Value = serde_json::from_slice(ready).unwrap();
    let archive = v["data"]["archive"].as_str().unwrap();
    assert!(archive.starts_with("demo-"), "{v}");
    let r = get(srv.http, &format!("/vod/{archive}/index.m3u8")).unwrap();
    assert_eq!(r.status, 200, "the archive of recording.ready plays");
}
