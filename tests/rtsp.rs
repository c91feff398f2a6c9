//! RTSP pull from a camera-like GStreamer RTSP server (tests/rtsp/camera.py): the stream plays
//! as LL-HLS, survives the camera going away and coming back (EXT-X-DISCONTINUITY, the time
//! away as EXT-X-GAP segments, no ENDLIST), and an unreachable camera or wrong credentials only produce log lines.
//! Needs Debian's python3-gi, gir1.2-gst-rtsp-server-1.0 and GStreamer plugins (scripts/test.sh).

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;

/// The camera process; killed on drop.
struct Camera(Child);

impl Camera {
    fn start(port: u16, extra: &[&str]) -> Camera {
        let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/rtsp/camera.py");
        let mut child = Command::new("/usr/bin/python3")
            .arg(script)
            .arg(port.to_string())
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("/usr/bin/python3 with GStreamer (scripts/test.sh installs it)");
        let mut line = String::new();
        use std::io::BufRead;
        std::io::BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready", "camera did not start");
        Camera(child)
    }
}

impl Drop for Camera {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn pull(name: &str, port: u16, user: &str, pass: &str) -> String {
    format!(
        "[[pull]]\nname = \"{name}\"\nurl = \"rtsp://127.0.0.1:{port}/cam\"\nusername = \"{user}\"\npassword = \"{pass}\"\n"
    )
}

#[test]
fn camera_is_pulled_and_the_stream_survives_a_camera_restart() {
    let port = free_port();
    let dead = free_port();
    let camera = Camera::start(port, &["user", "pass"]);
    let srv = Server::start(&format!(
        "streams = []\n{}{}{}",
        pull("cam", port, "user", "pass"),
        pull("nocam", dead, "user", "pass"),
        pull("badauth", port, "user", "wrong"),
    ));
    let mv = wait_for("the camera's playlist", Duration::from_secs(60), || {
        get(srv.http, "/live/cam/index.m3u8")
            .ok()
            .filter(|r| r.status == 200)
            .map(|r| r.text())
    });
    assert!(mv.contains("CODECS=\"avc1.42c01e,mp4a.40.2\""), "{mv}");
    assert!(mv.contains("RESOLUTION=640x360"), "{mv}");
    assert_video_decodes(&srv, "cam", 2, 640, 360);
    assert_advances(&srv, "cam");

    // The camera goes away: the stream stays live (no ENDLIST) while it is retried.
    drop(camera);
    std::thread::sleep(Duration::from_secs(4));
    let during = get(srv.http, "/live/cam/video/index.m3u8").unwrap();
    assert_eq!(during.status, 200);
    assert!(
        !during.text().contains("#EXT-X-ENDLIST"),
        "{}",
        during.text()
    );

    // It comes back: the playlist continues after a discontinuity, the time the camera was
    // away listed as segments without media (EXT-X-GAP), then its media after another.
    let _camera = Camera::start(port, &["user", "pass"]);
    let playlist = wait_for(
        "segments after the camera's absence",
        Duration::from_secs(90),
        || {
            let p = get(srv.http, "/live/cam/video/index.m3u8").ok()?.text();
            let (_, after) = p.rsplit_once("#EXT-X-GAP\n")?;
            // The last gap's own EXTINF, then two of the camera's.
            (tags(after, "#EXTINF").len() >= 3).then_some(p)
        },
    );
    assert!(!playlist.contains("#EXT-X-ENDLIST"));
    // The program date times run with the playlist's length: the gaps start where the media
    // stopped and last as long as the camera was away (4 s and more); the MPD's new Period
    // starts that much later.
    let seconds = |lines: Vec<&str>| -> f64 {
        lines
            .iter()
            .map(|l| l[8..].trim_end_matches(',').parse::<f64>().unwrap())
            .sum()
    };
    let (before, after) = playlist.split_once("#EXT-X-DISCONTINUITY\n").unwrap();
    let first_pdt = secs_of_day(tags(before, "#EXT-X-PROGRAM-DATE-TIME:")[0]);
    let media_before = seconds(tags(before, "#EXTINF:"));
    let (gaps, media) = after.split_once("#EXT-X-DISCONTINUITY\n").unwrap();
    assert!(!media.contains("#EXT-X-GAP"), "{playlist}");
    let gap_pdt = secs_of_day(tags(gaps, "#EXT-X-PROGRAM-DATE-TIME:")[0]);
    let gap = (gap_pdt - first_pdt).rem_euclid(86_400.0) - media_before;
    assert!(gap.abs() < 0.01, "gap {gap:.3} s\n{playlist}");
    let away = seconds(tags(gaps, "#EXTINF:"));
    assert_eq!(
        tags(gaps, "#EXT-X-GAP").len(),
        tags(gaps, "#EXTINF:").len(),
        "{playlist}"
    );
    assert!(away > 3.5, "away {away:.3} s\n{playlist}");
    let media_pdt = secs_of_day(tags(media, "#EXT-X-PROGRAM-DATE-TIME:")[0]);
    let jump = (media_pdt - gap_pdt).rem_euclid(86_400.0) - away;
    assert!(jump.abs() < 0.01, "jump {jump:.3} s\n{playlist}");
    let mpd = get(srv.http, "/live/cam/manifest.mpd").unwrap().text();
    let starts: Vec<f64> = mpd
        .split("<Period ")
        .skip(1)
        .filter_map(|p| {
            let start = p.split("start=\"").nth(1)?.split('"').next()?;
            start.strip_prefix("PT")?.strip_suffix('S')?.parse().ok()
        })
        .collect();
    let pause = starts.last().unwrap() - media_before;
    assert!(
        (pause - away).abs() < 0.01,
        "the new Period starts {pause:.3} s after the media before it\n{mpd}"
    );
    let path = download_rendition(&srv, "cam", "video", &playlist);
    let probe = ffprobe_frames(&path);
    assert_eq!((probe[0].1, probe[0].2), (640, 360), "{probe:?}");
    let audio = get(srv.http, "/live/cam/audio/index.m3u8").unwrap().text();
    assert!(audio.contains("#EXT-X-DISCONTINUITY"), "{audio}");

    let log = srv.log_text();
    assert!(log.contains("RTSP camera lost; reconnecting"), "{log}");
    assert!(
        log.contains("the source is back; the stream continues"),
        "{log}"
    );
    assert!(
        log.contains("RTSP camera unreachable stream=nocam"),
        "{log}"
    );
    assert!(log.contains("stream=badauth"), "{log}");
    assert!(log.contains("401"), "{log}");
    assert_eq!(get(srv.http, "/live/nocam/index.m3u8").unwrap().status, 404);
    assert_eq!(
        get(srv.http, "/live/badauth/index.m3u8").unwrap().status,
        404
    );
}

/// Seconds since midnight of an `#EXT-X-PROGRAM-DATE-TIME:2026-11-22T00:59:54.528Z` line.
fn secs_of_day(line: &str) -> f64 {
    let time = line.rsplit('T').next().unwrap().trim_end_matches('Z');
    time.split(':')
        .map(|v| v.parse::<f64>().unwrap())
        .fold(0.0, |acc, v| acc * 60.0 + v)
}

#[test]
fn hevc_camera_is_pulled_as_hvc1() {
    let port = free_port();
    let _camera = Camera::start(port, &["--hevc"]);
    let srv = Server::start(&format!(
        "streams = []\n[[pull]]\nname = \"cam\"\nurl = \"rtsp://127.0.0.1:{port}/cam\"\n"
    ));
    let mv = wait_for("the camera's playlist", Duration::from_secs(60), || {
        get(srv.http, "/live/cam/index.m3u8")
            .ok()
            .filter(|r| r.status == 200)
            .map(|r| r.text())
    });
    assert!(mv.contains("CODECS=\"hvc1."), "{mv}");
    assert_codec_decodes(&srv, "cam", 2, 640, 360, "hevc");
}

#[test]
fn camera_over_udp_transport() {
    let port = free_port();
    let _camera = Camera::start(port, &[]);
    let srv = Server::start(&format!(
        "streams = []\n[[pull]]\nname = \"cam\"\nurl = \"rtsp://127.0.0.1:{port}/cam\"\ntransport = \"udp\"\n"
    ));
    assert_video_decodes(&srv, "cam", 2, 640, 360);
    let audio = wait_for("audio segments", Duration::from_secs(60), || {
        let p = get(srv.http, "/live/cam/audio/index.m3u8").ok()?.text();
        (tags(&p, "#EXTINF").len() >= 2).then_some(p)
    });
    let probe = ffprobe_frames(&download_rendition(&srv, "cam", "audio", &audio));
    assert_eq!(probe[0].0, "aac", "{probe:?}");
    assert!(probe[0].3 > 50, "{probe:?}");
}
