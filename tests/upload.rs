//! Uploads as a creator makes them: an operator's backend asks for a direct upload URL, a page
//! on another web origin uploads a video to it with tus-js-client in headless Chromium, the tab
//! is closed halfway, Estuary restarts, the page is opened again and the upload goes on from
//! where it stopped; the finished upload is an asset with the settings the backend gave,
//! packaged without re-encoding (the same packets, the same pictures) and played in hls.js and
//! dash.js. Files that cannot be packaged as they are, each with its reason. And every refusal
//! the tus protocol asks for, with raw requests.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::upload::*;
use common::*;

#[test]
fn a_browser_upload_survives_a_closed_tab_and_a_restart_and_plays() {
    let mut srv = Server::start("");
    // What a phone or OBS records: H.264 with B-frames, a keyframe every 2 s, AAC.
    let made = TempDir::new("upload-clip");
    let video = clip(
        &made.0,
        "holiday.mp4",
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=640x360:rate=30",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=48000",
            "-t",
            "12",
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-b:v",
            "1500k",
            "-g",
            "60",
            "-bf",
            "2",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            "-b:a",
            "128k",
        ],
    );
    let bytes = std::fs::read(&video).unwrap();
    let size = bytes.len();
    assert!(
        size > 1_200_000,
        "{size} bytes: more than the first tab sends"
    );
    let page_port = common::player::serve_page_with(vec![("/holiday.mp4", "video/mp4", bytes)]);
    let origin = format!("http://127.0.0.1:{page_port}");
    let d = direct(
        &srv,
        &format!(
            r#"{{"cors_origin": "{origin}", "new_asset_settings": {{"title": "Holiday", "tags": ["trip"], "passthrough": "cms-7"}}}}"#
        ),
    );
    assert_eq!(d["status"], "waiting", "{d}");
    let url = d["url"].as_str().unwrap().to_string();
    let id = d["id"].as_str().unwrap().to_string();
    assert_eq!(
        url,
        format!("http://127.0.0.1:{}/uploads/{id}", srv.http),
        "{d}"
    );

    let profile = TempDir::new("upload-browser");
    let page = format!("{origin}/upload.html?src=/holiday.mp4&url={}", encode(&url));
    // The tab is closed after a megabyte.
    let first = upload_in_browser(&format!("{page}&stop=1000000"), &profile.0);
    assert_eq!(first["stopped"], true, "{first}");
    assert_eq!(first["done"], false, "{first}");

    // Estuary restarts (as after a crash); the upload stands where it stood.
    srv.restart();
    let d = json(api_get(srv.http, &format!("/api/v1/uploads/{id}")).unwrap());
    let upload = d["upload_id"]
        .as_str()
        .unwrap_or_else(|| panic!("{d}"))
        .to_string();
    let head = tus(
        srv.http,
        "HEAD",
        &format!("/uploads/{id}/{upload}"),
        &[],
        b"",
    );
    assert_eq!(head.status, 200, "{}", head.text());
    let offset: u64 = head.header("upload-offset").unwrap().parse().unwrap();
    assert!((262_144..size as u64).contains(&offset), "{offset}");
    assert_eq!(
        head.header("upload-length"),
        Some(size.to_string().as_str())
    );
    assert_eq!(head.header("cache-control"), Some("no-store"));
    // The backend sees the same progress.
    assert_eq!(d["offset"], offset, "{d}");
    assert_eq!(d["length"], size, "{d}");
    let percent = d["percent"].as_f64().unwrap();
    assert!(
        (percent - offset as f64 * 100.0 / size as f64).abs() <= 0.1,
        "{d}"
    );
    assert!(head
        .header("upload-expires")
        .is_some_and(|e| e.ends_with(" GMT")));

    // The page opened again finds its upload and goes on from there.
    let second = upload_in_browser(&page, &profile.0);
    assert_eq!(second["done"], true, "{second}");
    assert_eq!(second["resumed"], true, "{second}");
    let progress: Vec<u64> = second["progress"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_u64())
        .collect();
    assert!(
        progress.first().is_some_and(|&p| p >= offset),
        "resumed, not restarted: {progress:?} (server had {offset})"
    );

    // The upload is an asset with the backend's settings, packaged as it was uploaded.
    let d = json(api_get(srv.http, &format!("/api/v1/uploads/{id}")).unwrap());
    assert_eq!(d["status"], "asset_created", "{d}");
    assert_eq!(
        (d["offset"].as_u64(), d["percent"].as_f64()),
        (Some(size as u64), Some(100.0)),
        "{d}"
    );
    let asset = d["asset_id"].as_str().unwrap().to_string();
    let a = settled(&srv, &asset);
    assert_eq!(a["status"], "ready", "{a}");
    assert_eq!(a["source"], "upload", "{a}");
    assert_eq!(a["title"], "Holiday", "{a}");
    assert_eq!(a["tags"], serde_json::json!(["trip"]), "{a}");
    assert_eq!(a["passthrough"], "cms-7", "{a}");
    let duration = a["duration"].as_f64().unwrap();
    assert!((duration - 12.0).abs() < 0.05, "{a}");
    assert_eq!(
        (a["width"].as_u64(), a["height"].as_u64()),
        (Some(640), Some(360)),
        "{a}"
    );
    assert_eq!(
        a["renditions"],
        serde_json::json!(["video", "audio"]),
        "{a}"
    );
    let codecs: Vec<&str> = a["codecs"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c.as_str())
        .collect();
    assert!(
        codecs[0].starts_with("avc1.") && codecs[1] == "mp4a.40.2",
        "{a}"
    );
    assert_eq!(a["hls"], format!("/vod/{asset}/index.m3u8"), "{a}");
    assert_eq!(a["dash"], format!("/vod/{asset}/manifest.mpd"), "{a}");
    assert!(a["progress"].is_null(), "{a}");
    let listed = json(api_get(srv.http, "/api/v1/assets?passthrough=cms-7").unwrap());
    assert_eq!(listed["assets"][0]["id"], asset.as_str(), "{listed}");
    assert!(
        !srv.dir.0.join("data/uploads").join(&upload).exists(),
        "the uploaded bytes go once packaged"
    );
    let log = srv.log_text();
    assert!(
        log.contains("asset ready: packaged without re-encoding"),
        "{log}"
    );

    // Every frame as it was uploaded: the same packets, the same pictures.
    let (packaged, playlist) = download_vod(&srv, &asset, "video");
    assert!(playlist.contains("#EXT-X-TARGETDURATION:6\n"), "{playlist}");
    assert!(
        playlist.contains("#EXT-X-PLAYLIST-TYPE:VOD\n") && playlist.ends_with("#EXT-X-ENDLIST\n"),
        "{playlist}"
    );
    assert_eq!(
        tags(&playlist, "#EXTINF:").len(),
        2,
        "6 s segments on 2 s keyframes: {playlist}"
    );
    let (audio, _) = download_vod(&srv, &asset, "audio");
    let (source_video, source_audio) = packet_counts(&video);
    assert_eq!(packet_counts(&packaged).0, source_video);
    assert_eq!(packet_counts(&audio).1, source_audio);
    assert_eq!(
        decoded_md5(&packaged),
        decoded_md5(&video),
        "the pictures are the uploaded ones"
    );

    plays_in_hls_js_and_dash_js(&srv, &asset);
}

/// Files that are not H.264/HEVC with AAC wait for re-encoding with the reason; files that are
/// not media end errored with the reason; each on its own, the others going on.
#[test]
fn uploads_that_cannot_be_packaged_say_why_and_others_go_on() {
    let srv = Server::start("");
    let made = TempDir::new("upload-kinds");
    let source = [
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=320x180:rate=25",
        "-f",
        "lavfi",
        "-i",
        "sine=sample_rate=48000",
        "-t",
        "4",
    ];
    let vp9 = clip(
        &made.0,
        "a.webm",
        &[
            &source[..],
            &[
                "-c:v",
                "libvpx-vp9",
                "-deadline",
                "realtime",
                "-c:a",
                "libopus",
            ],
        ]
        .concat(),
    );
    let ts = clip(
        &made.0,
        "b.ts",
        &[
            &source[..],
            &[
                "-c:v", "libx264", "-preset", "veryfast", "-g", "50", "-c:a", "aac",
            ],
        ]
        .concat(),
    );
    let mp4 = clip(
        &made.0,
        "c.mp4",
        &[
            &source[..],
            &["-c:v", "libx264", "-preset", "veryfast", "-c:a", "aac"],
        ]
        .concat(),
    );
    let mut cut = std::fs::read(&mp4).unwrap();
    // The end of the file (its moov, without faststart) never came.
    cut.truncate(cut.len() / 2);

    let waiting = upload_file(&srv, "a.webm", &std::fs::read(&vp9).unwrap());
    let broken = upload_file(&srv, "c.mp4", &cut);
    let text = upload_file(&srv, "notes.txt", b"not a video at all\n");
    let good = upload_file(&srv, "b.ts", &std::fs::read(&ts).unwrap());

    let a = settled(&srv, &waiting);
    assert_eq!(a["status"], "waiting", "{a}");
    assert_eq!(a["error"], "video codec vp9 (needs re-encoding)", "{a}");
    for id in [&broken, &text] {
        let a = settled(&srv, id);
        assert_eq!(a["status"], "errored", "{a}");
        assert!(
            a["error"]
                .as_str()
                .unwrap()
                .starts_with("not a media file FFmpeg can read ("),
            "{a}"
        );
        assert_eq!(
            get(srv.http, &format!("/vod/{id}/index.m3u8"))
                .unwrap()
                .status,
            404,
            "nothing of it is left"
        );
    }
    // MPEG-TS: Annex B and ADTS, made into CMAF.
    let a = settled(&srv, &good);
    assert_eq!(a["status"], "ready", "{a}");
    assert!((a["duration"].as_f64().unwrap() - 4.0).abs() < 0.05, "{a}");
    let (video, _) = download_vod(&srv, &good, "video");
    let (audio, _) = download_vod(&srv, &good, "audio");
    assert_eq!(packet_counts(&video).0, 100);
    assert_eq!(packet_counts(&audio).1, packet_counts(&ts).1);
    assert_eq!(decoded_md5(&video), decoded_md5(&ts));
    let mpd = get(srv.http, &format!("/vod/{good}/manifest.mpd")).unwrap();
    assert_eq!(mpd.status, 200);
    assert!(mpd.text().contains("type=\"static\""), "{}", mpd.text());
    // Only live recordings are in the archive listing.
    let vod = json(api_get(srv.http, "/api/v1/vod").unwrap());
    assert_eq!(vod["archives"], serde_json::json!([]), "{vod}");

    // The bytes of the one waiting for re-encoding are kept, until it is deleted.
    let uploads = srv.dir.0.join("data/uploads");
    let files = || {
        std::fs::read_dir(&uploads)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(files().len(), 1, "{:?}", files());
    let path = format!("/api/v1/assets/{waiting}");
    assert_eq!(
        api_request(srv.http, "DELETE", &path, "").unwrap().status,
        204
    );
    assert_eq!(files(), Vec::<String>::new());
    assert_eq!(api_get(srv.http, &path).unwrap().status, 404);
}

#[test]
fn the_tus_protocol_refuses_what_it_must() {
    // (Packaging is off: these bytes are no video, and the test reads them back.)
    let srv = Server::start("[uploads]\nmax_size_mb = 1\npackage = false\n");
    let http = srv.http;
    let d = direct(&srv, r#"{"cors_origin": "https://creators.example"}"#);
    let id = d["id"].as_str().unwrap();
    let create = format!("/uploads/{id}");

    // Discovery, also as a browser's preflight.
    let opt = request(http, "OPTIONS", &create, &[], b"").unwrap();
    assert_eq!(opt.status, 204);
    assert_eq!(opt.header("tus-version"), Some("1.0.0"));
    assert_eq!(opt.header("tus-max-size"), Some("1048576"));
    assert!(opt
        .header("tus-extension")
        .unwrap()
        .contains("creation-with-upload"));
    assert_eq!(opt.header("tus-checksum-algorithm"), Some("sha1,sha256"));

    // Refused before anything is made.
    let no_version = request(http, "POST", &create, &[("Upload-Length", "10")], b"").unwrap();
    assert_eq!(no_version.status, 412);
    assert_eq!(no_version.header("tus-version"), Some("1.0.0"));
    let elsewhere = tus(
        http,
        "POST",
        &create,
        &[("Upload-Length", "10"), ("Origin", "https://evil.example")],
        b"",
    );
    assert_eq!(elsewhere.status, 403, "{}", elsewhere.text());
    assert_eq!(
        elsewhere.header("access-control-allow-origin"),
        Some("https://evil.example"),
        "the refusal is readable by the page that sent it"
    );
    assert_eq!(
        tus(http, "POST", &create, &[("Upload-Length", "2000000")], b"").status,
        413
    );
    assert_eq!(
        tus(http, "POST", &create, &[], b"").status,
        400,
        "no length"
    );
    assert_eq!(
        tus(http, "POST", &create, &[("Upload-Length", "-1")], b"").status,
        400
    );
    assert_eq!(
        tus(
            http,
            "POST",
            &create,
            &[("Upload-Length", "10"), ("Upload-Metadata", "name !!")],
            b""
        )
        .status,
        400
    );
    assert_eq!(
        tus(
            http,
            "POST",
            "/uploads/nosuchupload",
            &[("Upload-Length", "10")],
            b""
        )
        .status,
        404
    );

    // Creation with the first bytes, the length deferred.
    let made = tus(
        http,
        "POST",
        &create,
        &[
            ("Upload-Defer-Length", "1"),
            ("Upload-Metadata", "filename aGVsbG8udHh0"),
            ("Content-Type", "application/offset+octet-stream"),
            ("Origin", "https://creators.example"),
        ],
        b"hello ",
    );
    assert_eq!(made.status, 201, "{}", made.text());
    assert_eq!(made.header("upload-offset"), Some("6"));
    assert_eq!(
        made.header("access-control-allow-origin"),
        Some("https://creators.example")
    );
    let at = made.header("location").unwrap().to_string();
    assert!(at.starts_with(&format!("/uploads/{id}/")), "{at}");
    let head = tus(http, "HEAD", &at, &[], b"");
    assert_eq!(head.status, 200, "{}", head.text());
    assert_eq!(head.header("upload-defer-length"), Some("1"));
    assert_eq!(
        head.header("upload-metadata"),
        Some("filename aGVsbG8udHh0")
    );

    let octets = ("Content-Type", "application/offset+octet-stream");
    // Wrong type, wrong offset, a checksum that does not match: nothing is kept.
    assert_eq!(
        tus(http, "PATCH", &at, &[("Upload-Offset", "6")], b"x").status,
        415
    );
    let wrong = tus(http, "PATCH", &at, &[octets, ("Upload-Offset", "3")], b"x");
    assert_eq!(wrong.status, 409);
    assert_eq!(wrong.header("upload-offset"), Some("6"));
    wrong_checksum_refused(http, &at, "6");
    assert_eq!(
        tus(
            http,
            "PATCH",
            &at,
            &[
                octets,
                ("Upload-Offset", "6"),
                ("Upload-Checksum", "md5 AAAA")
            ],
            b"world"
        )
        .status,
        400
    );

    // One writer at a time: a PATCH that has not sent its body holds the upload.
    let mut held = TcpStream::connect(("127.0.0.1", http)).unwrap();
    write!(
        held,
        "PATCH {at} HTTP/1.1\r\nHost: x\r\nTus-Resumable: 1.0.0\r\nContent-Type: application/offset+octet-stream\r\nUpload-Offset: 6\r\nContent-Length: 5\r\n\r\nwo"
    )
    .unwrap();
    // (At an offset that is not the upload's: until the first request holds the upload, this
    // one is refused with 409 and writes nothing.)
    // The API shows the bytes of the request in flight; HEAD, the bytes the catalog counts.
    let progress = wait_for("the first writer's bytes", Duration::from_secs(10), || {
        let p = json(api_get(http, &format!("/api/v1/uploads/{id}")).ok()?);
        (p["offset"] == 8).then_some(p)
    });
    assert!(
        progress["length"].is_null() && progress["percent"].is_null(),
        "the length is not told yet: {progress}"
    );
    assert_eq!(
        tus(http, "HEAD", &at, &[], b"").header("upload-offset"),
        Some("6")
    );
    let locked = wait_for("the second writer refused", Duration::from_secs(10), || {
        let r = tus(http, "PATCH", &at, &[octets, ("Upload-Offset", "7")], b"zz");
        (r.status == 423).then_some(r)
    });
    assert!(
        locked.text().contains("another request"),
        "{}",
        locked.text()
    );
    held.write_all(b"rld").unwrap();
    let mut answer = vec![0u8; 1024];
    let n = held.read(&mut answer).unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 204"), "{answer}");
    drop(held);

    // A right checksum, and the length told late: the upload is whole.
    let sum = "sha256 u3IIvJtdfATxI2qCoAk6XjP0BCPVuo1CZvcJLDukO2I=";
    let last = tus(
        http,
        "PATCH",
        &at,
        &[
            octets,
            ("Upload-Offset", "11"),
            ("Upload-Length", "12"),
            ("Upload-Checksum", sum),
        ],
        b"!",
    );
    assert_eq!(last.status, 204, "{}", last.text());
    assert_eq!(last.header("upload-offset"), Some("12"));
    let upload = at.rsplit('/').next().unwrap();
    let stored = std::fs::read(srv.dir.0.join("data/uploads").join(upload)).unwrap();
    assert_eq!(stored, b"hello world!");
    let d = json(api_get(http, &format!("/api/v1/uploads/{id}")).unwrap());
    assert_eq!(d["status"], "asset_created", "{d}");
    let a = json(
        api_get(
            http,
            &format!("/api/v1/assets/{}", d["asset_id"].as_str().unwrap()),
        )
        .unwrap(),
    );
    assert_eq!(
        a["title"], "hello.txt",
        "the file's name when the backend gave no title: {a}"
    );

    // Termination: the bytes go, the URL is spent.
    let d2 = direct(&srv, "{}");
    let id2 = d2["id"].as_str().unwrap();
    let made = tus(
        http,
        "POST",
        &format!("/uploads/{id2}"),
        &[("Upload-Length", "100")],
        b"",
    );
    let at2 = made.header("location").unwrap().to_string();
    assert_eq!(
        tus(
            http,
            "PATCH",
            &at2,
            &[octets, ("Upload-Offset", "0")],
            &[1; 40]
        )
        .status,
        204
    );
    assert_eq!(
        tus(
            http,
            "PATCH",
            &at2,
            &[octets, ("Upload-Offset", "40")],
            &[1; 61]
        )
        .status,
        413,
        "past the length"
    );
    assert_eq!(
        tus(http, "HEAD", &at2, &[], b"").header("upload-offset"),
        Some("40")
    );
    // (As a client that can only POST says it: X-HTTP-Method-Override.)
    let ended = tus(
        http,
        "POST",
        &at2,
        &[("X-HTTP-Method-Override", "DELETE")],
        b"",
    );
    assert_eq!(ended.status, 204, "{}", ended.text());
    assert_eq!(tus(http, "HEAD", &at2, &[], b"").status, 404);
    let upload2 = at2.rsplit('/').next().unwrap();
    assert!(!srv.dir.0.join("data/uploads").join(upload2).exists());
    let d2 = json(api_get(http, &format!("/api/v1/uploads/{id2}")).unwrap());
    assert_eq!(d2["status"], "cancelled", "{d2}");

    // The API side: a token is needed, and what it takes is checked.
    assert_eq!(
        request(http, "POST", "/api/v1/uploads", &[], b"{}")
            .unwrap()
            .status,
        401
    );
    for body in [
        r#"{"timeout": 5}"#,
        r#"{"cors_origin": "ftp://x"}"#,
        r#"{"new_asset_settings": {"playback": "secret"}}"#,
        r#"{"nope": 1}"#,
    ] {
        let r = api_request(http, "POST", "/api/v1/uploads", body).unwrap();
        assert_eq!(r.status, 400, "{body}: {}", r.text());
    }
}
