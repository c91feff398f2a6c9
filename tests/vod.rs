//! The VOD archive: a live stream is archived as it goes (EVENT playlist while live), and once it
//! ends it is VOD (ENDLIST, static MPD) that plays end to end with ffprobe.

mod common;

use std::process::Command;
use std::time::Duration;

use common::s3::S3;
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
    // (Rewritten every 4 s at most while live: two segments or more by the second write.)
    let live = wait_for("two archived segments", Duration::from_secs(60), || {
        let p = get(srv.http, &format!("/vod/{id}/video/index.m3u8"))
            .ok()?
            .text();
        (tags(&p, "#EXTINF").len() >= 2).then_some(p)
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
    let s3 = S3::start("estuary-vod");
    let archive = s3.archive_config("estuary-vod", "archive");
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
        s3.port,
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

/// Every live archive is an asset in the catalog: `preparing` while recorded, `ready` with its
/// duration and renditions once the stream ends, the same id as `/api/v1/vod`'s; its metadata
/// can be changed and searched; it survives a restart; deleting it deletes its media.
#[test]
fn a_live_archive_is_an_asset_in_the_catalog() {
    let mut srv = Server::start("[hls]\nend_grace = 0.5\n");
    let json = |r: common::http::Resp| -> serde_json::Value {
        serde_json::from_slice(&r.body).unwrap_or_else(|_| panic!("{}", r.text()))
    };
    let publisher = Publisher::rtmp(&srv.rtmp_url(KEY), 6);
    let recording = wait_for("the asset listed", Duration::from_secs(60), || {
        let v = json(api_get(srv.http, "/api/v1/assets").ok()?);
        v["assets"].as_array()?.first().cloned()
    });
    assert_eq!(recording["status"], "preparing", "{recording}");
    assert_eq!(recording["source"], "live", "{recording}");
    assert_eq!(recording["stream"], NAME, "{recording}");
    let id = recording["id"].as_str().unwrap().to_string();
    let vod = json(api_get(srv.http, "/api/v1/vod").unwrap());
    assert_eq!(
        vod["archives"][0]["id"],
        id.as_str(),
        "/api/v1/vod agrees: {vod}"
    );

    // The publisher ends its 6 s on its own.
    let ready = wait_for("the asset ready", Duration::from_secs(60), || {
        let a = json(api_get(srv.http, &format!("/api/v1/assets/{id}")).ok()?);
        (a["status"] == "ready").then_some(a)
    });
    drop(publisher);
    let duration = ready["duration"].as_f64().unwrap();
    assert!((4.0..8.0).contains(&duration), "{ready}");
    assert_eq!(
        (ready["width"].as_u64(), ready["height"].as_u64()),
        (Some(1280), Some(720)),
        "{ready}"
    );
    assert!(
        ready["renditions"].as_array().unwrap().len() >= 2,
        "{ready}"
    );
    assert!(ready["codecs"].to_string().contains("avc1."), "{ready}");
    assert_eq!(ready["hls"], format!("/vod/{id}/index.m3u8"), "{ready}");
    assert_eq!(
        get(srv.http, &format!("/vod/{id}/index.m3u8"))
            .unwrap()
            .status,
        200
    );

    // Metadata: changed, then found by it; only metadata may change.
    let path = format!("/api/v1/assets/{id}");
    let changed = api_request(
        srv.http,
        "PATCH",
        &path,
        r#"{"title": "Friday show", "tags": ["show", "friday"], "passthrough": "cms-42"}"#,
    )
    .unwrap();
    assert_eq!(changed.status, 200, "{}", changed.text());
    assert_eq!(json(changed)["title"], "Friday show");
    for q in [
        "tag=friday",
        "passthrough=cms-42",
        "status=ready",
        "tag=show&status=ready",
    ] {
        let v = json(api_get(srv.http, &format!("/api/v1/assets?{q}")).unwrap());
        assert_eq!(v["assets"][0]["id"], id.as_str(), "{q}: {v}");
    }
    for q in ["tag=monday", "status=errored", "passthrough=cms-4"] {
        let v = json(api_get(srv.http, &format!("/api/v1/assets?{q}")).unwrap());
        assert_eq!(v["assets"], serde_json::json!([]), "{q}: {v}");
    }
    let long = format!(r#"{{"title": "{}"}}"#, "x".repeat(600));
    for body in [
        r#"{"status": "errored"}"#,
        r#"{"title": 5}"#,
        &long,
        "not json",
    ] {
        let r = api_request(srv.http, "PATCH", &path, body).unwrap();
        assert_eq!(r.status, 400, "{body}: {}", r.text());
    }
    assert_eq!(
        api_get(srv.http, "/api/v1/assets?limit=500")
            .unwrap()
            .status,
        400
    );
    assert_eq!(
        get(srv.http, "/api/v1/assets").unwrap().status,
        401,
        "an API token is needed"
    );
    assert_eq!(
        api_get(srv.http, "/api/v1/assets/nope").unwrap().status,
        404
    );

    // Kept across a restart (as after a crash).
    srv.restart();
    let again = json(api_get(srv.http, &path).unwrap());
    assert_eq!(again["title"], "Friday show", "{again}");
    assert_eq!(again["status"], "ready", "{again}");

    // Deleting it deletes its media; /api/v1/vod agrees.
    assert_eq!(
        api_request(srv.http, "DELETE", &path, "").unwrap().status,
        204
    );
    assert_eq!(api_get(srv.http, &path).unwrap().status, 404);
    assert_eq!(
        api_request(srv.http, "DELETE", &path, "").unwrap().status,
        404
    );
    assert_eq!(
        get(srv.http, &format!("/vod/{id}/index.m3u8"))
            .unwrap()
            .status,
        404
    );
    wait_for("the archive unlisted", Duration::from_secs(10), || {
        let v = json(api_get(srv.http, "/api/v1/vod").ok()?);
        (v["archives"] == serde_json::json!([])).then_some(())
    });
}
