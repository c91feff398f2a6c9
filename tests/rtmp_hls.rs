//! End to end: ffmpeg publishes over RTMP, LL-HLS is checked over HTTP and decoded by ffprobe.

mod common;

use std::time::{Duration, Instant};

use common::*;

const LONG: Duration = Duration::from_secs(60);

fn playlist(port: u16, path: &str) -> Option<String> {
    get(port, path)
        .ok()
        .filter(|r| r.status == 200)
        .map(|r| r.text())
}

#[test]
fn rtmp_publish_plays_as_ll_hls() {
    let srv = Server::start("[hls]\nwindow_segments = 20\n");
    let publisher = Publisher::rtmp(&srv.rtmp_url(KEY), 12);

    // Multivariant playlist: codecs from the real SPS and AudioSpecificConfig, resolution,
    // frame rate and an audio group.
    let mv = wait_for("multivariant playlist", LONG, || {
        playlist(srv.http, "/live/demo/index.m3u8").filter(|p| p.contains("FRAME-RATE"))
    });
    let inf = tags(&mv, "#EXT-X-STREAM-INF:")[0];
    // ultrafast x264 is Constrained Baseline, level 3.1: avc1.42c01f.
    assert_eq!(attr(inf, "CODECS"), Some("avc1.42c01f,mp4a.40.2"), "{mv}");
    assert_eq!(attr(inf, "RESOLUTION"), Some("1280x720"));
    assert_eq!(attr(inf, "AUDIO"), Some("audio"));
    let fps: f64 = attr(inf, "FRAME-RATE").unwrap().parse().unwrap();
    assert!((fps - 30.0).abs() < 0.5, "{fps}");
    assert!(attr(inf, "BANDWIDTH").unwrap().parse::<u64>().unwrap() > 0);
    assert!(attr(inf, "AVERAGE-BANDWIDTH").is_some());
    let media = tags(&mv, "#EXT-X-MEDIA:")[0];
    assert_eq!(attr(media, "TYPE"), Some("AUDIO"));
    assert_eq!(attr(media, "URI"), Some("audio/index.m3u8"));

    // Media playlist tags.
    let p = wait_for("two segments", LONG, || {
        playlist(srv.http, "/live/demo/video/index.m3u8").filter(|p| tags(p, "#EXTINF").len() >= 2)
    });
    assert!(p.starts_with("#EXTM3U\n"));
    assert!(tags(&p, "#EXT-X-VERSION:").len() == 1);
    assert_eq!(
        tags(&p, "#EXT-X-TARGETDURATION:"),
        vec!["#EXT-X-TARGETDURATION:2"]
    );
    let sc = tags(&p, "#EXT-X-SERVER-CONTROL:")[0];
    assert_eq!(attr(sc, "CAN-BLOCK-RELOAD"), Some("YES"));
    let phb: f64 = attr(sc, "PART-HOLD-BACK").unwrap().parse().unwrap();
    let pt: f64 = attr(tags(&p, "#EXT-X-PART-INF:")[0], "PART-TARGET")
        .unwrap()
        .parse()
        .unwrap();
    assert!(phb >= 3.0 * pt - 1e-9);
    assert!(attr(sc, "CAN-SKIP-UNTIL").is_some());
    assert_eq!(tags(&p, "#EXT-X-MAP:").len(), 1);
    assert!(!tags(&p, "#EXT-X-PROGRAM-DATE-TIME:").is_empty());
    let parts = tags(&p, "#EXT-X-PART:");
    assert!(parts.iter().any(|l| l.contains("INDEPENDENT=YES")));
    for l in &parts {
        let d: f64 = attr(l, "DURATION").unwrap().parse().unwrap();
        assert!(d <= pt + 1e-6, "part {l} longer than PART-TARGET {pt}");
    }
    assert_eq!(tags(&p, "#EXT-X-PRELOAD-HINT:").len(), 1);
    let report = tags(&p, "#EXT-X-RENDITION-REPORT:")[0];
    assert_eq!(attr(report, "URI"), Some("../audio/index.m3u8"));
    let session = attr(tags(&p, "#EXT-X-MAP:")[0], "URI")
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_string();

    // Blocking reload: ask for the part after the preload hint; it must not come back before
    // that part exists, and must come back with it listed.
    let hint = attr(tags(&p, "#EXT-X-PRELOAD-HINT:")[0], "URI")
        .unwrap()
        .to_string();
    let (msn, part): (u64, u32) = {
        let stem = hint.rsplit('/').next().unwrap().trim_end_matches(".m4s");
        let (m, p) = stem.split_once('.').unwrap();
        (m.parse().unwrap(), p.parse().unwrap())
    };
    let want = format!("{session}/{msn}.{}.m4s", part + 1);
    let started = Instant::now();
    let blocked = get(
        srv.http,
        &format!(
            "/live/demo/video/index.m3u8?_HLS_msn={msn}&_HLS_part={}",
            part + 1
        ),
    )
    .unwrap();
    assert_eq!(blocked.status, 200);
    let text = blocked.text();
    assert!(
        text.contains(&format!("URI=\"{want}\""))
            || tags(&text, "#EXTINF").len() > tags(&p, "#EXTINF").len(),
        "blocking reload returned before {want} existed:\n{text}"
    );
    assert!(blocked.header("cache-control").unwrap().contains("max-age"));
    eprintln!(
        "blocking reload for {want} answered in {:?}",
        started.elapsed()
    );

    // The preload hint is served whole once complete.
    let next_hint = attr(tags(&text, "#EXT-X-PRELOAD-HINT:")[0], "URI")
        .unwrap()
        .to_string();
    let r = get(srv.http, &format!("/live/demo/video/{next_hint}")).unwrap();
    assert_eq!(r.status, 200, "{next_hint}");
    assert_eq!(&r.body[4..8], b"moof");
    assert_eq!(
        r.header("content-length")
            .unwrap()
            .parse::<usize>()
            .unwrap(),
        r.body.len()
    );
    assert!(r.header("cache-control").unwrap().contains("immutable"));

    // Spec errors answer at once.
    let t = Instant::now();
    assert_eq!(
        get(srv.http, "/live/demo/video/index.m3u8?_HLS_part=1")
            .unwrap()
            .status,
        400
    );
    assert_eq!(
        get(
            srv.http,
            &format!("/live/demo/video/index.m3u8?_HLS_msn={}", msn + 10)
        )
        .unwrap()
        .status,
        400
    );
    assert!(t.elapsed() < Duration::from_secs(2));

    // Delta update.
    let d = get(srv.http, "/live/demo/video/index.m3u8?_HLS_skip=YES").unwrap();
    assert_eq!(d.status, 200);

    // gzip when accepted.
    let gz = get_with(
        srv.http,
        "/live/demo/video/index.m3u8",
        &[("Accept-Encoding", "gzip")],
    )
    .unwrap();
    assert_eq!(gz.header("content-encoding"), Some("gzip"));
    assert_eq!(&gz.body[..2], &[0x1f, 0x8b]);
    assert_eq!(gz.header("access-control-allow-origin"), Some("*"));

    // The API lists the stream.
    let api = api_get(srv.http, "/api/v1/streams").unwrap().text();
    assert!(
        api.contains("\"name\":\"demo\"") && api.contains("avc1.42c01f"),
        "{api}"
    );
    assert!(
        !api.contains(KEY),
        "a publish key never appears in playback data"
    );

    // The publisher finishes: the playlists end, and every frame decodes.
    let (ok, err) = publisher.wait(LONG);
    assert!(ok, "ffmpeg failed: {err}");
    let ended = wait_for("EXT-X-ENDLIST", LONG, || {
        playlist(srv.http, "/live/demo/video/index.m3u8").filter(|p| p.contains("#EXT-X-ENDLIST"))
    });
    // A blocking request far past the end is answered with the final playlist, not 400.
    let far = get(
        srv.http,
        "/live/demo/video/index.m3u8?_HLS_msn=9999&_HLS_part=0",
    )
    .unwrap();
    assert_eq!(far.status, 200, "{}", far.text());
    assert!(far.text().contains("#EXT-X-ENDLIST"));
    for (rendition, playlist_text) in [
        ("video", ended.clone()),
        (
            "audio",
            playlist(srv.http, "/live/demo/audio/index.m3u8").unwrap(),
        ),
    ] {
        assert!(playlist_text.contains("#EXT-X-ENDLIST"));
        assert!(
            tags(&playlist_text, "#EXT-X-MEDIA-SEQUENCE:0").len() == 1,
            "window holds the whole stream"
        );
        let path = download_rendition(&srv, NAME, rendition, &playlist_text);
        let probe = ffprobe_frames(&path);
        eprintln!("{rendition}: {probe:?}");
        if rendition == "video" {
            assert_eq!(probe[0].0, "h264");
            assert_eq!((probe[0].1, probe[0].2), (1280, 720));
            assert_eq!(probe[0].3, 12 * 30, "every frame ffmpeg sent decodes");
        } else {
            assert_eq!(probe[0].0, "aac");
            // 12 s of 48 kHz AAC in 1024-sample frames, give or take the encoder's priming.
            assert!((probe[0].3 as i64 - 562).abs() <= 3, "{probe:?}");
        }
    }
}

#[test]
fn wrong_key_and_second_publisher_are_refused_while_the_stream_continues() {
    let srv = Server::start("");
    let _good = Publisher::rtmp(&srv.rtmp_url(KEY), 30);
    wait_for("live playlist", LONG, || {
        playlist(srv.http, "/live/demo/video/index.m3u8").filter(|p| p.contains("#EXT-X-PART:"))
    });

    let (ok, _) = Publisher::rtmp(&srv.rtmp_url("not-the-key"), 5).wait(LONG);
    assert!(!ok, "a wrong key must be refused");
    let (ok, _) = Publisher::rtmp(&srv.rtmp_url(KEY), 5).wait(LONG);
    assert!(!ok, "a second publisher on a live key must be refused");
    let log = srv.log_text();
    assert!(log.contains("unknown stream key"), "{log}");
    assert!(log.contains("already has a publisher"), "{log}");
    assert!(!log.contains("not-the-key"), "keys are not logged in full");

    // The good stream kept going.
    assert_advances(&srv, NAME);
}

#[test]
fn garbage_on_the_rtmp_port_is_closed_and_logged() {
    use std::io::{Read, Write};
    let srv = Server::start("");
    let mut s = std::net::TcpStream::connect(("127.0.0.1", srv.rtmp)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(&[0x42; 1537]).unwrap();
    let mut buf = [0u8; 64];
    // The server closes the connection (EOF or reset), it does not hang or crash.
    let r = s.read(&mut buf);
    assert!(matches!(r, Ok(0) | Err(_)), "{r:?}");
    wait_for("log line naming the peer", LONG, || {
        let log = srv.log_text();
        (log.contains("handshake") && log.contains("rtmp{peer=127.0.0.1")).then_some(())
    });
    assert_eq!(get(srv.http, "/healthz").unwrap().status, 200);
}

/// RTMPS with its own certificate: ffmpeg publishes over TLS and the stream plays; plain RTMP
/// sent to the TLS port is refused in the TLS handshake with a log line, and the stream goes on.
#[test]
fn rtmps_publish_plays_and_plain_rtmp_on_its_port_is_refused() {
    let dir = TempDir::new("rtmps");
    let (cert, key) = self_signed_cert(&dir);
    let rtmps = free_port();
    let srv = Server::start(&format!(
        "[rtmp]\ntls_listen = \"127.0.0.1:{rtmps}\"\ntls_cert = \"{}\"\ntls_key = \"{}\"\n",
        cert.display(),
        key.display()
    ));
    // ffmpeg does not verify the certificate unless told to (`-tls_verify 1`).
    let _publisher = Publisher::rtmp(&format!("rtmps://127.0.0.1:{rtmps}/live/{KEY}"), 30);
    let p = wait_for("two segments over RTMPS", LONG, || {
        playlist(srv.http, "/live/demo/video/index.m3u8").filter(|p| tags(p, "#EXTINF").len() >= 2)
    });
    let map = attr(tags(&p, "#EXT-X-MAP:")[0], "URI").unwrap();
    let init = get(srv.http, &format!("/live/demo/video/{map}")).unwrap();
    assert_eq!(init.status, 200, "{p}");
    assert!(srv.log_text().contains("rtmps{peer=127.0.0.1"));

    let (ok, _) = Publisher::rtmp(&format!("rtmp://127.0.0.1:{rtmps}/live/{KEY}"), 5).wait(LONG);
    assert!(!ok, "plain RTMP on the RTMPS port");
    wait_for("a log line for the refused TLS handshake", LONG, || {
        srv.log_text().contains("error=TLS:").then_some(())
    });
    assert_advances(&srv, NAME);
}

#[test]
fn without_streams_a_key_is_made_shown_once_and_kept_as_a_digest() {
    let mut srv = Server::start("streams = []\n");
    let log = srv.log_text();
    let key = log
        .split("Stream Key ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no key shown: {log}"))
        .to_string();
    assert!(key.len() >= 16, "{key}");
    assert!(log.contains("/live/stream/index.m3u8"), "{log}");
    // Only its digest is kept.
    let kept = std::fs::read_to_string(srv.dir.0.join("data/stream-key.sha256")).unwrap();
    assert_eq!(kept.trim().len(), 64);
    assert!(!kept.contains(&key));
    // Publishing without the key is refused; with it, it plays.
    let (ok, _) = Publisher::rtmp(&srv.rtmp_url("guess"), 3).wait(LONG);
    assert!(!ok);
    let p = Publisher::rtmp(&srv.rtmp_url(&key), 20);
    wait_for("stream plays with the made key", LONG, || {
        playlist(srv.http, "/live/stream/index.m3u8")
    });
    drop(p);
    // After a restart the same key works, and it is not shown again.
    srv.restart();
    let _p = Publisher::rtmp(&srv.rtmp_url(&key), 20);
    wait_for("stream plays after the restart", LONG, || {
        playlist(srv.http, "/live/stream/index.m3u8")
    });
    let log = srv.log_text();
    let lines = log.lines().filter(|l| l.contains(&key)).count();
    assert_eq!(lines, 1, "shown in one line, once: {log}");
}

#[test]
fn stalled_blocking_reload_gets_503_and_abandoned_parts_404() {
    let srv = Server::start("");
    let publisher = Publisher::rtmp(&srv.rtmp_url(KEY), 40);
    let p = wait_for("a complete segment", LONG, || {
        playlist(srv.http, "/live/demo/video/index.m3u8").filter(|p| !tags(p, "#EXTINF").is_empty())
    });
    let session = attr(tags(&p, "#EXT-X-MAP:")[0], "URI")
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_string();
    // A part index past the end of a complete segment will never exist: 404 at once.
    let parts_in_0 = p
        .lines()
        .filter(|l| l.contains(&format!("\"{session}/0.")))
        .count();
    assert!(parts_in_0 > 0, "{p}");
    let t = Instant::now();
    let r = get(
        srv.http,
        &format!("/live/demo/video/{session}/0.{parts_in_0}.m4s"),
    )
    .unwrap();
    assert_eq!(r.status, 404);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert!(t.elapsed() < Duration::from_secs(2));

    // Freeze the encoder: a blocking reload for the next segment waits three target durations
    // (3 x 2 s), then answers 503.
    let pid = publisher.0.id().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-STOP", &pid])
        .status()
        .unwrap()
        .success());
    std::thread::sleep(Duration::from_millis(500));
    let now = playlist(srv.http, "/live/demo/video/index.m3u8").unwrap();
    let next_msn = tags(&now, "#EXTINF").len() as u64 + 1;
    let t = Instant::now();
    let r = get(
        srv.http,
        &format!("/live/demo/video/index.m3u8?_HLS_msn={next_msn}"),
    )
    .unwrap();
    let waited = t.elapsed();
    let _ = std::process::Command::new("kill")
        .args(["-CONT", &pid])
        .status();
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(
        waited >= Duration::from_millis(5500),
        "answered after {waited:?}"
    );
}

/// An encoder that sends one keyframe and then none for a minute (fed six times faster than
/// real time): the segment is closed at ten segment targets with a log line, nothing more is
/// held while video waits for a keyframe, and the stream ends cleanly.
#[test]
fn a_publisher_without_keyframes_is_capped_and_holds_nothing() {
    let srv = Server::start("[hls]\nsegment_target = 1.0\nend_grace = 0.5\n");
    let no_keyframes = [
        "-g",
        "100000",
        "-keyint_min",
        "100000",
        "-sc_threshold",
        "0",
    ];
    let publisher = Publisher::source(&srv.rtmp_url(KEY), 62, "320x240", 6, &no_keyframes);
    let (ok, err) = publisher.wait(LONG);
    assert!(ok, "{err}");
    let video = wait_for("the stream to end", LONG, || {
        playlist(srv.http, "/live/demo/video/index.m3u8").filter(|p| p.contains("#EXT-X-ENDLIST"))
    });
    let segments = tags(&video, "#EXTINF:");
    assert_eq!(
        segments.len(),
        1,
        "one segment, closed at the cap:\n{video}"
    );
    let secs: f64 = segments[0][8..].trim_end_matches(',').parse().unwrap();
    assert!(
        (9.9..=10.1).contains(&secs),
        "ten segment targets: {secs}\n{video}"
    );
    // Ten seconds of parts of the default target (0.167 s), and not one more.
    let parts = tags(&video, "#EXT-X-PART:").len();
    assert!(parts <= 61, "nothing after the cap: {parts} parts\n{video}");
    let log = srv.log_text();
    assert!(log.contains("segment closed at the cap"), "{log}");
    assert!(
        log.contains("set the encoder's keyframe interval"),
        "the log line says what to do: {log}"
    );
    assert!(get(srv.http, "/healthz").unwrap().status == 200);
}
