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
        let r = get(srv.http, "/api/v1/vod").ok()?;
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
    let vod = wait_for("the VOD playlist", Duration::from_secs(60), || {
        let p = get(srv.http, &format!("/vod/{id}/video/index.m3u8"))
            .ok()?
            .text();
        p.contains("#EXT-X-ENDLIST").then_some(p)
    });
    assert!(vod.contains("#EXT-X-PLAYLIST-TYPE:VOD"), "{vod}");
    assert!(tags(&vod, "#EXTINF").len() >= 3, "{vod}");
    let mpd = get(srv.http, &format!("/vod/{id}/manifest.mpd")).unwrap();
    assert_eq!(mpd.status, 200);
    assert!(mpd.text().contains("type=\"static\""), "{}", mpd.text());
    let list = get(srv.http, "/api/v1/vod").unwrap().text();
    assert!(list.contains("\"ended\":\"20"), "{list}");

    // Played end to end through its multivariant playlist, as a player would.
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-show_entries"])
        .args([
            "stream=codec_name,width,height,nb_read_frames",
            "-of",
            "csv=p=0",
        ])
        .arg(format!("http://127.0.0.1:{}/vod/{id}/index.m3u8", srv.http))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
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
