//! WHIP ingest with a real WebRTC peer: headless Chromium publishes its fake camera (H.264) and
//! microphone (Opus) from a page on another origin; the LL-HLS output must play; `DELETE` ends
//! the stream. Refusals (key, codecs, body, methods) are checked over plain HTTP.
//! Needs ffmpeg/ffprobe, node, Debian's Chromium and `tests/player/node_modules`.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::*;

fn player_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/player")
}

/// Starts the Chromium publisher; its JSON lines arrive on the returned channel.
fn chromium_publisher(
    srv: &Server,
    key: &str,
    secs: u32,
    mode: &str,
) -> (std::process::Child, mpsc::Receiver<serde_json::Value>) {
    let mut child = Command::new("node")
        .arg("whip.mjs")
        // localhost vs 127.0.0.1: another origin, so the POST needs CORS.
        .arg(format!("http://localhost:{}/healthz", srv.http))
        .arg(format!("http://127.0.0.1:{}/whip", srv.http))
        .arg(key)
        .arg(secs.to_string())
        .arg(mode)
        .current_dir(player_dir())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("node must be installed (scripts/test.sh installs it)");
    let out = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            eprintln!("whip.mjs: {line}");
            if let Ok(v) = serde_json::from_str(&line) {
                let _ = tx.send(v);
            }
        }
    });
    (child, rx)
}

fn next(rx: &mpsc::Receiver<serde_json::Value>) -> serde_json::Value {
    rx.recv_timeout(Duration::from_secs(90))
        .expect("the publisher script stopped talking")
}

#[test]
fn chromium_publishes_h264_and_opus_over_whip_and_it_plays_as_ll_hls() {
    let srv = Server::start("[hls]\nend_grace = 1.0\n");
    let (mut child, rx) = chromium_publisher(&srv, KEY, 16, "");
    let created = next(&rx);
    let created = &created["created"];
    assert_eq!(created["status"], 201, "{created}");
    let location = created["location"].as_str().unwrap().to_string();
    assert!(location.starts_with("/whip/session/"), "{location}");

    let mv = wait_for("the multivariant playlist", Duration::from_secs(60), || {
        get(srv.http, "/live/demo/index.m3u8")
            .ok()
            .filter(|r| r.status == 200)
            .map(|r| r.text())
    });
    assert!(mv.contains("avc1.42"), "{mv}");
    assert!(mv.contains(",opus\""), "{mv}");
    assert!(mv.contains("RESOLUTION=1280x720"), "{mv}");
    assert_advances(&srv, NAME);

    // A second publisher on a live key is refused before any WebRTC work.
    let offer = created["offer"].as_str().unwrap();
    let again = request(
        srv.http,
        "POST",
        "/whip",
        &[
            ("Content-Type", "application/sdp"),
            ("Authorization", &format!("Bearer {KEY}")),
        ],
        offer.as_bytes(),
    )
    .unwrap();
    assert_eq!(again.status, 409, "{}", again.text());

    let frames = assert_video_decodes(&srv, NAME, 2, 1280, 720);
    assert!(frames > 20, "{frames}");
    let audio = get(srv.http, "/live/demo/audio/index.m3u8").unwrap().text();
    let path = download_rendition(&srv, NAME, "audio", &audio);
    let probe = ffprobe_frames(&path);
    assert_eq!(probe[0].0, "opus", "{probe:?}");
    assert!(probe[0].3 > 50, "{probe:?}");

    // The script ends with DELETE on the session URL; the playlist then ends.
    let done = loop {
        let v = next(&rx);
        if v["done"] == true {
            break v;
        }
        assert_eq!(v["state"], "connected", "{v}");
    };
    assert_eq!(done["delete"], 200, "{done}");
    assert!(child.wait().unwrap().success());
    wait_for(
        "EXT-X-ENDLIST after DELETE",
        Duration::from_secs(30),
        || {
            get(srv.http, "/live/demo/video/index.m3u8")
                .ok()
                .filter(|r| r.text().contains("#EXT-X-ENDLIST"))
                .map(|_| ())
        },
    );
    let log = srv.log_text();
    assert!(log.contains("publisher sent DELETE"), "{log}");
    let gone = request(srv.http, "DELETE", &location, &[], b"").unwrap();
    assert_eq!(gone.status, 404);
}

const VP8_ONLY: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
    m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=sendonly\r\na=mid:0\r\n\
    a=rtpmap:96 VP8/90000\r\n";

#[test]
fn whip_refusals_are_clear_and_leave_live_streams_alone() {
    let srv = Server::start("");
    let rtmp = Publisher::rtmp(&srv.rtmp_url(KEY), 60);
    assert_advances(&srv, NAME);
    let post = |headers: &[(&str, &str)], body: &[u8]| {
        request(srv.http, "POST", "/whip", headers, body).unwrap()
    };
    let sdp = ("Content-Type", "application/sdp");
    let bearer = format!("Bearer {KEY}");

    let r = post(&[sdp], VP8_ONLY.as_bytes());
    assert_eq!(r.status, 401, "{}", r.text());
    assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    let r = post(
        &[sdp, ("Authorization", "Bearer wrong-key")],
        VP8_ONLY.as_bytes(),
    );
    assert_eq!(r.status, 401, "{}", r.text());
    let r = post(&[sdp, ("Authorization", &bearer)], VP8_ONLY.as_bytes());
    assert_eq!(r.status, 406, "{}", r.text());
    assert!(r.text().contains("offered VP8"), "{}", r.text());
    let r = post(&[sdp, ("Authorization", &bearer)], b"not an offer");
    assert_eq!(r.status, 400, "{}", r.text());
    let r = post(
        &[("Content-Type", "text/plain"), ("Authorization", &bearer)],
        VP8_ONLY.as_bytes(),
    );
    assert_eq!(r.status, 415, "{}", r.text());
    let big = vec![b'a'; 200 * 1024];
    let r = post(&[sdp, ("Authorization", &bearer)], &big);
    assert_eq!(r.status, 413, "{}", r.text());
    // The key in the path works too (and is checked the same way).
    let r = request(
        srv.http,
        "POST",
        "/whip/wrong-key",
        &[sdp],
        VP8_ONLY.as_bytes(),
    )
    .unwrap();
    assert_eq!(r.status, 401);

    let r = request(srv.http, "PATCH", "/whip/session/abc", &[], b"x").unwrap();
    assert_eq!(r.status, 405);
    let r = request(srv.http, "DELETE", "/whip/session/abc", &[], b"").unwrap();
    assert_eq!(r.status, 404);
    let r = request(
        srv.http,
        "OPTIONS",
        "/whip",
        &[
            ("Origin", "http://example.test"),
            ("Access-Control-Request-Method", "POST"),
            (
                "Access-Control-Request-Headers",
                "authorization, content-type",
            ),
        ],
        b"",
    )
    .unwrap();
    assert_eq!(r.status, 204);
    assert_eq!(r.header("accept-post"), Some("application/sdp"));
    assert!(r
        .header("access-control-allow-methods")
        .is_some_and(|m| m.contains("POST") && m.contains("DELETE")));
    assert!(r
        .header("access-control-allow-headers")
        .is_some_and(|h| h.contains("authorization")));

    // Garbage on the media port is ignored.
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    for n in 0..200u32 {
        let junk: Vec<u8> = (0..(n % 1400)).map(|i| (i * 31 + n) as u8).collect();
        let _ = udp.send_to(&junk, ("127.0.0.1", srv.whip));
    }
    assert_advances(&srv, NAME);
    assert!(srv.log_text().contains("WHIP offer refused"));
    drop(rtmp);
}

/// Publishes with Chromium in `codec` and checks the playlist and a decode at 1280x720.
fn chromium_publishes(codec: &str, codecs_attr: &str, ffprobe_name: &str) {
    let srv = Server::start("[hls]\nend_grace = 1.0\n");
    let (mut child, rx) = chromium_publisher(&srv, KEY, 12, codec);
    let created = next(&rx);
    assert_eq!(created["created"]["status"], 201, "{created}");
    let mv = wait_for("the multivariant playlist", Duration::from_secs(60), || {
        get(srv.http, "/live/demo/index.m3u8")
            .ok()
            .filter(|r| r.status == 200)
            .map(|r| r.text())
    });
    assert!(mv.contains(&format!("CODECS=\"{codecs_attr}")), "{mv}");
    assert!(mv.contains("RESOLUTION=1280x720"), "{mv}");
    assert_codec_decodes(&srv, NAME, 2, 1280, 720, ffprobe_name);
    while next(&rx)["done"] != true {}
    assert!(child.wait().unwrap().success());
}

#[test]
fn chromium_publishes_av1_over_whip() {
    chromium_publishes("av1", "av01.0.", "av1");
}

#[test]
fn chromium_publishes_vp9_over_whip() {
    chromium_publishes("vp9", "vp09.00.", "vp9");
}

#[test]
fn a_publisher_that_goes_silent_is_ended_after_the_idle_timeout() {
    let srv = Server::start("[whip]\nidle_timeout_secs = 3\n[hls]\nend_grace = 1.0\n");
    let (mut child, rx) = chromium_publisher(&srv, KEY, 5, "silent");
    assert_eq!(next(&rx)["created"]["status"], 201);
    assert_advances(&srv, NAME);
    wait_for("the idle session to end", Duration::from_secs(60), || {
        srv.log_text()
            .contains("reason=\"no media (idle timeout)\"")
            .then_some(())
    });
    wait_for("EXT-X-ENDLIST", Duration::from_secs(30), || {
        get(srv.http, "/live/demo/video/index.m3u8")
            .ok()
            .filter(|r| r.text().contains("#EXT-X-ENDLIST"))
            .map(|_| ())
    });
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn a_session_that_never_connects_is_dropped_and_frees_the_name() {
    let srv = Server::start("[whip]\nconnect_timeout_secs = 2\n[hls]\nend_grace = 1.0\n");
    // A real browser offer, answered, but nobody ever does ICE.
    let offer = include_str!("../ingest/tests/fixtures/chrome-whip-offer.sdp");
    let post = || {
        request(
            srv.http,
            "POST",
            "/whip",
            &[
                ("Content-Type", "application/sdp"),
                ("Authorization", &format!("Bearer {KEY}")),
            ],
            offer.as_bytes(),
        )
        .unwrap()
    };
    let r = post();
    assert_eq!(r.status, 201, "{}", r.text());
    let answer = r.text();
    assert!(answer.contains("a=ice-lite"), "{answer}");
    assert!(
        answer.contains(&format!("127.0.0.1 {} typ host", srv.whip)),
        "{answer}"
    );
    assert!(answer.contains("H264"), "{answer}");
    assert_eq!(
        post().status,
        409,
        "the name is held while ICE may still complete"
    );
    wait_for("the session to time out", Duration::from_secs(30), || {
        srv.log_text()
            .contains("ICE/DTLS did not complete in time")
            .then_some(())
    });
    assert_eq!(post().status, 201, "the name is free again");
}

#[test]
fn whip_opus_becomes_aac_for_the_ladder() {
    let srv = Server::start("[transcode]\nenabled = true\n[hls]\nend_grace = 1.0\n");
    let (mut child, rx) = chromium_publisher(&srv, KEY, 12, "");
    assert_eq!(next(&rx)["created"]["status"], 201);
    let mv = wait_for("the ladder", Duration::from_secs(60), || {
        let m = get(srv.http, "/live/demo/index.m3u8").ok()?.text();
        (tags(&m, "#EXT-X-STREAM-INF").len() >= 3).then_some(m)
    });
    assert!(mv.contains(",mp4a.40.2\""), "Opus is offered as AAC: {mv}");
    assert!(!mv.contains("opus"), "{mv}");
    let audio = wait_for("audio segments", Duration::from_secs(60), || {
        let p = get(srv.http, "/live/demo/audio/index.m3u8").ok()?.text();
        (tags(&p, "#EXTINF").len() >= 2).then_some(p)
    });
    let probe = ffprobe_frames(&download_rendition(&srv, NAME, "audio", &audio));
    assert_eq!(probe[0].0, "aac", "{probe:?}");
    assert!(probe[0].3 > 50, "{probe:?}");
    assert!(srv.log_text().contains("audio transcoded to AAC"));
    while next(&rx)["done"] != true {}
    assert!(child.wait().unwrap().success());
}
