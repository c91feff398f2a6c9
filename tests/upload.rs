//! Uploads as a creator makes them: an operator's backend asks for a direct upload URL, a page
//! on another web origin uploads a file to it with tus-js-client in headless Chromium, the tab
//! is closed halfway, Estuary restarts, the page is opened again and the upload goes on from
//! where it stopped; the finished upload is an asset with the settings the backend gave. And
//! every refusal the tus protocol asks for, with raw requests.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use common::player::{player_dir, serve_page};
use common::*;

/// The bytes upload.html makes for a file of `size` bytes.
fn page_bytes(size: usize) -> Vec<u8> {
    (0..size)
        .map(|i| ((i * 7 + (i >> 13)) & 255) as u8)
        .collect()
}

fn json(r: common::http::Resp) -> serde_json::Value {
    serde_json::from_slice(&r.body).unwrap_or_else(|_| panic!("{} {}", r.status, r.text()))
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Opens upload.html in Chromium with the browser profile `profile`; the page's final state.
fn upload_in_browser(page: &str, profile: &std::path::Path) -> serde_json::Value {
    let out = Command::new("node")
        .arg("upload.mjs")
        .arg(page)
        .arg(profile)
        .current_dir(player_dir())
        .output()
        .expect("node (scripts/test.sh installs it)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|_| {
        panic!(
            "upload.mjs: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// A direct upload made through the API.
fn direct(srv: &Server, body: &str) -> serde_json::Value {
    let r = api_request(srv.http, "POST", "/api/v1/uploads", body).unwrap();
    assert_eq!(r.status, 201, "{}", r.text());
    json(r)
}

fn tus(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> common::http::Resp {
    let mut all = vec![("Tus-Resumable", "1.0.0")];
    all.extend_from_slice(headers);
    request(port, method, path, &all, body).unwrap()
}

#[test]
fn a_browser_upload_survives_a_closed_tab_and_a_restart() {
    let mut srv = Server::start("");
    let page_port = serve_page();
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

    let size = 3_000_000;
    let profile = TempDir::new("upload-browser");
    let page = format!("{origin}/upload.html?size={size}&url={}", encode(&url));
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
    assert_eq!(head.header("upload-length"), Some("3000000"));
    assert_eq!(head.header("cache-control"), Some("no-store"));
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

    // The bytes are the file's, and the upload is an asset with the backend's settings.
    let stored = std::fs::read(srv.dir.0.join("data/uploads").join(&upload)).unwrap();
    assert!(
        stored == page_bytes(size),
        "the stored file differs from the page's ({} bytes)",
        stored.len()
    );
    let d = json(api_get(srv.http, &format!("/api/v1/uploads/{id}")).unwrap());
    assert_eq!(d["status"], "asset_created", "{d}");
    let asset = d["asset_id"].as_str().unwrap();
    let a = json(api_get(srv.http, &format!("/api/v1/assets/{asset}")).unwrap());
    assert_eq!(a["status"], "waiting", "{a}");
    assert_eq!(a["source"], "upload", "{a}");
    assert_eq!(a["title"], "Holiday", "{a}");
    assert_eq!(a["tags"], serde_json::json!(["trip"]), "{a}");
    assert_eq!(a["passthrough"], "cms-7", "{a}");
    let listed = json(api_get(srv.http, "/api/v1/assets?passthrough=cms-7").unwrap());
    assert_eq!(listed["assets"][0]["id"], asset, "{listed}");

    // The URL was for one upload.
    let again = tus(
        srv.http,
        "POST",
        &format!("/uploads/{id}"),
        &[("Upload-Length", "10")],
        b"",
    );
    assert_eq!(again.status, 410, "{}", again.text());
}

#[test]
fn the_tus_protocol_refuses_what_it_must() {
    let srv = Server::start("[uploads]\nmax_size_mb = 1\n");
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
    let bad_sum = tus(
        http,
        "PATCH",
        &at,
        &[
            octets,
            ("Upload-Offset", "6"),
            ("Upload-Checksum", "sha1 AAAAAAAAAAAAAAAAAAAAAAAAAAA="),
        ],
        b"world",
    );
    assert_eq!(bad_sum.status, 460, "{}", bad_sum.text());
    assert_eq!(
        tus(http, "HEAD", &at, &[], b"").header("upload-offset"),
        Some("6")
    );
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
    let file = srv
        .dir
        .0
        .join("data/uploads")
        .join(at.rsplit('/').next().unwrap());
    wait_for(
        "the first writer's bytes on disk",
        Duration::from_secs(10),
        || (std::fs::metadata(&file).ok()?.len() == 8).then_some(()),
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
