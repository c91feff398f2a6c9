//! SRT ingest with real libsrt callers: ffmpeg's `srt://` output (both stream id forms, with and
//! without a passphrase) and `srt-live-transmit` relaying a file; refusals happen in the
//! handshake; garbage datagrams disturb nothing.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

const LONG: Duration = Duration::from_secs(60);

#[test]
fn ffmpeg_publishes_over_srt_and_it_plays() {
    let srv = Server::start("");
    let p = Publisher::srt(&srv.srt_url(&format!("publish:{KEY}"), ""), 8);
    let frames = assert_video_decodes(&srv, NAME, 2, 1280, 720);
    assert!(frames >= 100, "{frames}");
    let mv = get(srv.http, "/live/demo/index.m3u8").unwrap().text();
    assert!(mv.contains("CODECS=\"avc1.42c01f,mp4a.40.2\""), "{mv}");
    let (ok, err) = p.wait(LONG);
    assert!(ok, "{err}");
    // The caller closing ends the stream.
    wait_for("EXT-X-ENDLIST", LONG, || {
        get(srv.http, "/live/demo/video/index.m3u8")
            .ok()
            .filter(|r| r.text().contains("#EXT-X-ENDLIST"))
            .map(|_| ())
    });
    let log = srv.log_text();
    assert!(
        log.contains("srt{peer=127.0.0.1") && log.contains("publish accepted"),
        "{log}"
    );
}

#[test]
fn hevc_over_srt_plays() {
    let srv = Server::start("");
    let url = srv.srt_url(&format!("publish:{KEY}"), "");
    let mut ff = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-nostdin", "-re"])
        .args([
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=640x360:rate=25",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=48000",
        ])
        .args([
            "-t",
            "20",
            "-c:v",
            "libx265",
            "-preset",
            "ultrafast",
            "-x265-params",
            "log-level=error:keyint=50",
        ])
        .args(["-pix_fmt", "yuv420p", "-c:a", "aac", "-f", "mpegts"])
        .arg(&url)
        .stdin(Stdio::null())
        .spawn()
        .expect("ffmpeg");
    assert_codec_decodes(&srv, NAME, 2, 640, 360, "hevc");
    let mv = get(srv.http, "/live/demo/index.m3u8").unwrap().text();
    assert!(
        mv.contains("CODECS=\"hvc1.1.6.L") && mv.contains("RESOLUTION=640x360"),
        "{mv}"
    );
    let _ = ff.kill();
    let _ = ff.wait();
}

#[test]
fn opus_over_srt_is_packaged_as_cmaf_opus() {
    let srv = Server::start("");
    let url = srv.srt_url(&format!("publish:{KEY}"), "");
    let mut ff = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-nostdin", "-re"])
        .args([
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x240:rate=30",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=48000",
        ])
        .args([
            "-t",
            "20",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "60",
            "-pix_fmt",
            "yuv420p",
        ])
        .args(["-c:a", "libopus", "-b:a", "64k", "-ac", "2", "-f", "mpegts"])
        .arg(&url)
        .stdin(Stdio::null())
        .spawn()
        .expect("ffmpeg");
    assert_video_decodes(&srv, NAME, 2, 320, 240);
    let mv = get(srv.http, "/live/demo/index.m3u8").unwrap().text();
    assert!(mv.contains(",opus\""), "{mv}");
    let p = get(srv.http, "/live/demo/audio/index.m3u8").unwrap().text();
    let path = download_rendition(&srv, NAME, "audio", &p);
    let probe = ffprobe_frames(&path);
    assert_eq!(probe[0].0, "opus", "{probe:?}");
    assert!(probe[0].3 >= 90, "{probe:?}");
    let _ = ff.kill();
    let _ = ff.wait();
}

#[test]
fn access_control_stream_id_and_refusals() {
    let srv = Server::start("");
    let _good = Publisher::srt(&srv.srt_url(&format!("#!::r={KEY},m=publish"), ""), 30);
    assert_video_decodes(&srv, NAME, 1, 1280, 720);
    // An unknown key and a second publisher are refused in the handshake.
    let (ok, _) = Publisher::srt(&srv.srt_url("publish:wrong-key-000", ""), 3).wait(LONG);
    assert!(!ok, "unknown key must be refused");
    let (ok, _) = Publisher::srt(&srv.srt_url(&format!("publish:{KEY}"), ""), 3).wait(LONG);
    assert!(!ok, "second publisher must be refused");
    let (ok, _) = Publisher::srt(&srv.srt_url(&format!("#!::r={KEY},m=request"), ""), 3).wait(LONG);
    assert!(!ok, "a request (play) stream id must be refused");
    let log = srv.log_text();
    assert!(log.contains("unknown stream key"), "{log}");
    assert!(log.contains("already has a publisher"), "{log}");
    assert!(!log.contains("wrong-key-000"), "keys are not logged");
    // The good stream is still live and advancing.
    assert_advances(&srv, NAME);
}

#[test]
fn passphrase_is_required_and_checked() {
    let pass = "correct-horse-battery";
    let srv = Server::start(&format!("[srt]\npassphrase = \"{pass}\"\n"));
    let (ok, _) = Publisher::srt(&srv.srt_url(&format!("publish:{KEY}"), ""), 3).wait(LONG);
    assert!(!ok, "an unencrypted caller must be refused");
    let (ok, _) = Publisher::srt(
        &srv.srt_url(
            &format!("publish:{KEY}"),
            "&passphrase=not-the-right-one&pbkeylen=16",
        ),
        3,
    )
    .wait(LONG);
    assert!(!ok, "a wrong passphrase must be refused");
    assert!(get(srv.http, "/live/demo/index.m3u8").unwrap().status == 404);
    let _p = Publisher::srt(
        &srv.srt_url(
            &format!("publish:{KEY}"),
            "&passphrase=correct-horse-battery&pbkeylen=16",
        ),
        20,
    );
    assert_video_decodes(&srv, NAME, 1, 1280, 720);
}

#[test]
fn srt_live_transmit_relays_a_file() {
    let srv = Server::start("");
    // 6 s of 640x360 TS, paced by ffmpeg and relayed by libsrt's own tool, which sends
    // payloads that do not line up with TS packets.
    let ts = srv.dir.0.join("in.ts");
    let st = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=640x360:rate=25",
        ])
        .args([
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=300:sample_rate=44100",
            "-t",
            "6",
        ])
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "50",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            "-f",
            "mpegts",
        ])
        .arg(&ts)
        .status()
        .unwrap();
    assert!(st.success());
    let url = format!(
        "srt://127.0.0.1:{}?streamid=publish:{KEY}&latency=120",
        srv.srt
    );
    let mut pacer = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-nostdin",
            "-re",
            "-i",
        ])
        .arg(&ts)
        .args(["-c", "copy", "-f", "mpegts", "-"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("ffmpeg");
    let mut relay = Command::new("srt-live-transmit")
        .args(["file://con", &url])
        .stdin(Stdio::from(pacer.stdout.take().unwrap()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("srt-live-transmit must be installed (scripts/test.sh installs srt-tools)");
    let frames = assert_video_decodes(&srv, NAME, 2, 640, 360);
    assert!(frames >= 50, "{frames}");
    assert!(pacer.wait().unwrap().success());
    // srt-live-transmit does not leave when its input ends; killing it is a caller that goes
    // away without closing: the SRT peer timeout (or ours, `idle_timeout_secs`) ends the stream.
    let _ = relay.kill();
    let _ = relay.wait();
    wait_for("ENDLIST after the caller went silent", LONG, || {
        get(srv.http, "/live/demo/video/index.m3u8")
            .ok()
            .filter(|r| r.text().contains("#EXT-X-ENDLIST"))
            .map(|_| ())
    });
}

#[test]
fn garbage_datagrams_do_not_disturb_a_stream() {
    let srv = Server::start("");
    let _p = Publisher::srt(&srv.srt_url(&format!("publish:{KEY}"), ""), 30);
    assert_video_decodes(&srv, NAME, 1, 1280, 720);
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut seed = 0x1234_5678u32;
    for n in 0..2000 {
        let len = 1 + (n % 1500);
        let junk: Vec<u8> = (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 17;
                seed ^= seed << 5;
                seed as u8
            })
            .collect();
        sock.send_to(&junk, ("127.0.0.1", srv.srt)).unwrap();
    }
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(get(srv.http, "/healthz").unwrap().status, 200);
    assert_advances(&srv, NAME);
}

/// The access-control form has to be percent-encoded in a URL, and ffmpeg hands the text over
/// as it is: the server decodes it.
#[test]
fn an_encoded_stream_id_is_decoded() {
    let srv = Server::start("");
    let id = format!("%23%21%3A%3Ar%3D{KEY}%2Cm%3Dpublish");
    let _p = Publisher::srt(&srv.srt_url(&id, ""), 20);
    wait_for("a complete segment", LONG, || {
        let p = get(srv.http, "/live/demo/video/index.m3u8").ok()?.text();
        p.contains("#EXTINF").then_some(())
    });
}
