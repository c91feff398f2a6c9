//! The VOD archive: a live stream is archived as it goes (EVENT playlist while live), and once it
//! ends it is VOD (ENDLIST, static MPD) that plays end to end with ffprobe.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;

#[test]
fn a_finished_stream_plays_from_the_archive() {
    let srv = Server::start("[hls]\nend_grace = 0.5\n");
    let publisher = Publisher::rtmp(&srv.rtmp_url(KEY), 9);
    // While live: listed, and an EVENT playlist that grows.
    let id = wait_for("the archive listed", Duration::from_secs(60), || {
        let r = api_get(srv.http, "/api/v1/vod").ok()?;
        let v: serde_json::Value = serde_json::from_slice(&r.body).ok()?;
        let a = v["archives"].as_array()?.first()?.clone();
        (a["name"] == NAME).then(|| a["id"].as_str().unwrap().to_string())
    });
    let live = wait_for("three archived segments", Duration::from_secs(60), || {
        let p = get(srv.http, &format!("/vod/{id}/video/index.m3u8"))
            .ok()?
            .text();
        (tags(&p, "#EXTINF").len() >= 3).then_some(p)
    });
    assert!(live.contains("#EXT-X-PLAYLIST-TYPE:EVENT"), "{live}");
    assert!(!live.contains("#EXT-X-ENDLIST"), "{live}");

    drop(publisher);
    // The archive is finished once its meta says it ended (written last, after the playlists
    // and the MPD).
    wait_for(
        "the archive listed as ended",
        Duration::from_secs(60),
        || {
            let list = api_get(srv.http, "/api/v1/vod").ok()?.text();
            list.contains("\"ended\":\"20").then_some(())
        },
    );
    let vod = get(srv.http, &format!("/vod/{id}/video/index.m3u8"))
        .unwrap()
        .text();
    assert!(vod.contains("#EXT-X-ENDLIST"), "{vod}");
    assert!(vod.contains("#EXT-X-PLAYLIST-TYPE:VOD"), "{vod}");
    assert!(tags(&vod, "#EXTINF").len() >= 3, "{vod}");
    let mpd = get(srv.http, &format!("/vod/{id}/manifest.mpd")).unwrap();
    assert_eq!(mpd.status, 200);
    assert!(mpd.text().contains("type=\"static\""), "{}", mpd.text());

    // Played end to end through its multivariant playlist, as a player would.
    let text = ffprobe_streams(&format!(
        "http://127.0.0.1:{}/vod/{id}/index.m3u8",
        srv.http
    ));
    let video = text
        .lines()
        .find(|l| l.starts_with("h264"))
        .unwrap_or_else(|| panic!("{text}"));
    let f: Vec<&str> = video.split(',').collect();
    assert_eq!((f[1], f[2]), ("1280", "720"), "{text}");
    let frames: u64 = f[3].trim().parse().unwrap();
    assert!(
        frames >= 150,
        "at least the three 2 s segments at 30 fps: {text}"
    );
    assert!(text.lines().any(|l| l.starts_with("aac")), "{text}");

    // Nothing outside the archive is reachable.
    for bad in [
        "/vod/../estuary.toml",
        &format!("/vod/{id}/meta.json"),
        &format!("/vod/{id}/..%2f..%2festuary.toml"),
    ] {
        assert_eq!(get(srv.http, bad).unwrap().status, 404, "{bad}");
    }
}

/// An S3-compatible server (moto's, which scripts/test.sh installs) on a free port; killed on
/// drop.
struct S3(std::process::Child, u16);

impl S3 {
    fn start() -> S3 {
        let bin = std::env::var("ESTUARY_S3_SERVER").unwrap_or_else(|_| {
            format!(
                "{}/.cache/estuary/s3-venv/bin/moto_server",
                std::env::var("HOME").unwrap_or_default()
            )
        });
        let port = free_port();
        let child = Command::new(&bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{bin}: {e} (scripts/test.sh installs it)"));
        wait_for("the S3 server", Duration::from_secs(60), || {
            get(port, "/").ok().map(|_| ())
        });
        S3(child, port)
    }
}

impl Drop for S3 {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What ffprobe decodes at `url`: a `codec,width,height,frames` line per stream.
fn ffprobe_streams(url: &str) -> String {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-show_entries"])
        .args([
            "stream=codec_name,width,height,nb_read_frames",
            "-of",
            "csv=p=0",
        ])
        .arg(url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The H.264 stream's line and frame count at `url`.
fn ffprobe_video(url: &str) -> (String, u64) {
    let text = ffprobe_streams(url);
    let video = text
        .lines()
        .find(|l| l.starts_with("h264"))
        .unwrap_or_else(|| panic!("{text}"))
        .to_string();
    let frames = video.rsplit(',').next().unwrap().trim().parse().unwrap();
    (video, frames)
}

#[test]
fn an_archive_in_object_storage_plays_from_the_origin_and_an_edge() {
    let s3 = S3::start();
    let r = request(s3.1, "PUT", "/estuary-vod", &[], b"").unwrap();
    assert_eq!(r.status, 200, "creating the bucket: {}", r.text());
    let archive = format!(
        "[archive]\nurl = \"s3://estuary-vod/archive\"\nendpoint = \"http://127.0.0.1:{}\"\nregion = \"us-east-1\"\naccess_key_id = \"test\"\nsecret_access_key = \"test\"\n",
        s3.1
    );
    let srv = Server::start(&format!("[hls]\nend_grace = 0.5\n{archive}"));
    let publisher = Publisher::rtmp(&srv.rtmp_url(KEY), 9);
    let (ok, _) = publisher.wait(Duration::from_secs(60));
    assert!(ok);
    let id = wait_for("the archive ended", Duration::from_secs(60), || {
        let r = api_get(srv.http, "/api/v1/vod").ok()?;
        let v: serde_json::Value = serde_json::from_slice(&r.body).ok()?;
        let a = v["archives"].as_array()?.first()?.clone();
        (!a["ended"].is_null()).then(|| a["id"].as_str().unwrap().to_string())
    });
    // In the bucket, under the prefix; nothing on the origin's disk.
    let listing = get(
        s3.1,
        &format!("/estuary-vod?list-type=2&prefix=archive/{id}/"),
    )
    .unwrap()
    .text();
    for key in [
        "meta.json",
        "index.m3u8",
        "manifest.mpd",
        "video/init.mp4",
        "video/index.m3u8",
        "audio/index.m3u8",
    ] {
        assert!(
            listing.contains(&format!("<Key>archive/{id}/{key}</Key>")),
            "{key}: {listing}"
        );
    }
    assert!(listing.contains(".m4s</Key>"), "{listing}");
    assert!(!srv.dir.0.join("data/archive").exists());
    let vod = get(srv.http, &format!("/vod/{id}/video/index.m3u8"))
        .unwrap()
        .text();
    assert!(vod.contains("#EXT-X-ENDLIST"), "{vod}");

    // An edge with the same storage serves it too, without its origin.
    let edge = Server::edge(&archive);
    let http = edge.http;
    let list = api_get(http, "/api/v1/vod").unwrap().text();
    assert!(list.contains(&id), "{list}");
    assert_eq!(
        get(http, &format!("/vod/{id}/video/index.m3u8"))
            .unwrap()
            .text(),
        vod
    );
    let (video, frames) = ffprobe_video(&format!("http://127.0.0.1:{http}/vod/{id}/index.m3u8"));
    assert!(video.contains("1280,720"), "{video}");
    assert!(frames >= 150, "{video}");
    assert_eq!(
        get(http, &format!("/vod/{id}/video/nope.m4s"))
            .unwrap()
            .status,
        404
    );
}
