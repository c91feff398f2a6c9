//! Assets made from files on the web (`POST /api/v1/assets` with an `https://` input): a
//! real HTTPS server (Python's http.server over TLS, with a certificate from a test CA that
//! Estuary is told to trust) serves a clip behind a redirect; Estuary fetches it, packages it
//! as it packages an upload (the same pictures), and says why for every file it cannot have:
//! a 404, a file over the size limit, one that is not media, a server that stops sending, and
//! (on a server with the default settings) any address that is not on the public internet.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::upload::*;
use common::*;

/// `tests/https_files.py` serving `dir` with `cert` and `key`; killed on drop.
struct HttpsFiles(Child, u16);

impl HttpsFiles {
    fn start(dir: &std::path::Path, cert: &std::path::Path, key: &std::path::Path) -> HttpsFiles {
        let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/https_files.py");
        let mut child = Command::new("python3")
            .arg(script)
            .args([dir, cert, key])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line.trim().parse().expect("https_files.py prints its port");
        HttpsFiles(child, port)
    }
}

impl Drop for HttpsFiles {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `POST /api/v1/assets` with `body`: the status and the answer.
fn create(srv: &Server, body: &str) -> (u16, serde_json::Value) {
    let r = api_request(srv.http, "POST", "/api/v1/assets", body).unwrap();
    let status = r.status;
    let text = r.text();
    (
        status,
        serde_json::from_str(&text).unwrap_or_else(|_| text.into()),
    )
}

/// Asset from `url` (with a title and a tag); its id.
fn fetch(srv: &Server, url: &str) -> String {
    let (status, a) = create(
        srv,
        &format!(r#"{{"input": "{url}", "tags": ["web"], "passthrough": "p1"}}"#),
    );
    assert_eq!(status, 201, "{a}");
    assert_eq!(a["source"], "url", "{a}");
    assert!(a.get("input_url").is_none(), "the URL is not shown: {a}");
    a["id"].as_str().unwrap().to_string()
}

#[test]
fn assets_are_fetched_from_https_urls_and_refused_with_reasons() {
    let files = TempDir::new("url-files");
    let certs = TempDir::new("url-certs");
    let (ca, cert, key) = ca_signed_cert(&certs);
    let clip = test_clip(&files.0, "clip.mp4", "320x180", 4);
    std::fs::write(files.0.join("notes.txt"), b"not a video at all\n").unwrap();
    std::fs::write(files.0.join("big.bin"), vec![7u8; 3 << 20]).unwrap();
    let web = HttpsFiles::start(&files.0, &cert, &key);
    let base = format!("https://localhost:{}", web.1);

    // Allowed to fetch from loopback (the test's server), trusting the test CA; uploads of at
    // most 2 MiB.
    let srv = Server::start(&format!(
        "[uploads]\nmax_size_mb = 2\nfetch_private_addresses = true\nfetch_ca = \"{}\"\n",
        ca.display()
    ));
    for (body, why) in [
        (r#"{"input": "http://example.com/a.mp4"}"#, "only https"),
        (
            r#"{"input": "https://u:p@example.com/a.mp4"}"#,
            "credentials",
        ),
        (
            r#"{"input": "https://example.com/a.mp4", "playback": "secret"}"#,
            "public or signed",
        ),
        (r#"{"url": "https://example.com/a.mp4"}"#, "unknown field"),
    ] {
        let (status, a) = create(&srv, body);
        assert_eq!(status, 400, "{body}: {a}");
        assert!(a.to_string().contains(why), "{body}: {a}");
    }

    // Behind a redirect, in Mux's form of the input.
    let (status, a) = create(
        &srv,
        &format!(
            r#"{{"input": [{{"url": "{base}/redirect/clip.mp4"}}], "title": "From the web"}}"#
        ),
    );
    assert_eq!(status, 201, "{a}");
    assert_eq!(a["title"], "From the web");
    let good = a["id"].as_str().unwrap().to_string();
    let missing = fetch(&srv, &format!("{base}/gone.mp4"));
    let large = fetch(&srv, &format!("{base}/big.bin"));
    let text = fetch(&srv, &format!("{base}/notes.txt"));

    let a = settled(&srv, &good);
    assert_eq!(a["status"], "ready", "{a}");
    assert!((a["duration"].as_f64().unwrap() - 4.0).abs() < 0.05, "{a}");
    let (video, _) = download_vod(&srv, &good, "video");
    assert_eq!(
        decoded_md5(&video),
        decoded_md5(&clip),
        "the pictures are the file's"
    );

    let reason = |id: &str| {
        let a = settled(&srv, id);
        assert_eq!(a["status"], "errored", "{a}");
        a["error"].as_str().unwrap().to_string()
    };
    let r = reason(&missing);
    assert_eq!(r, "localhost answered 404 Not Found for the input URL");
    let r = reason(&large);
    assert!(
        r.starts_with("the file is larger than the 2 MiB an upload may be"),
        "{r}"
    );
    let r = reason(&text);
    assert!(r.starts_with("not a media file FFmpeg can read ("), "{r}");
    // Nothing fetched is left behind.
    let left: Vec<_> = std::fs::read_dir(srv.dir.0.join("data/uploads"))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "{left:?}");
    // The tag and passthrough went with them.
    let listed = json(api_get(srv.http, "/api/v1/assets?tag=web&passthrough=p1").unwrap());
    assert_eq!(listed["assets"].as_array().unwrap().len(), 3, "{listed}");

    // With the defaults: nothing on the server's own network, by name or by address, nor a
    // redirect there; a server that is not trusted is refused too.
    let strict = Server::start("");
    let port = web.1;
    for (url, why) in [
        (
            format!("https://127.0.0.1:{port}/clip.mp4"),
            "127.0.0.1 is not an address on the public internet".to_string(),
        ),
        (
            format!("https://[::1]:{port}/clip.mp4"),
            "::1 is not an address on the public internet".into(),
        ),
        (
            format!("https://localhost:{port}/clip.mp4"),
            "not on the public internet".into(),
        ),
        (
            "https://169.254.169.254/latest/meta-data/".to_string(),
            "169.254.169.254 is not an address on the public internet".into(),
        ),
    ] {
        let id = fetch(&strict, &url);
        let a = settled(&strict, &id);
        assert_eq!(a["status"], "errored", "{url}: {a}");
        assert!(a["error"].as_str().unwrap().contains(&why), "{url}: {a}");
    }
    let allowed_untrusted = Server::start("[uploads]\nfetch_private_addresses = true\n");
    let id = fetch(&allowed_untrusted, &format!("{base}/clip.mp4"));
    let a = settled(&allowed_untrusted, &id);
    assert_eq!(a["status"], "errored", "{a}");
    assert!(a["error"].as_str().unwrap().contains("certificate"), "{a}");
}

/// A server that answers and then sends nothing is given up on (after 30 s), and the asset
/// says so.
#[test]
fn a_fetch_that_stalls_ends_with_a_reason() {
    let files = TempDir::new("url-stall");
    let certs = TempDir::new("url-stall-certs");
    let (ca, cert, key) = ca_signed_cert(&certs);
    let web = HttpsFiles::start(&files.0, &cert, &key);
    let srv = Server::start(&format!(
        "[uploads]\nfetch_private_addresses = true\nfetch_ca = \"{}\"\n",
        ca.display()
    ));
    let id = fetch(&srv, &format!("https://localhost:{}/hang/x.mp4", web.1));
    let a = wait_for("the stalled fetch to end", Duration::from_secs(120), || {
        let a = json(api_get(srv.http, &format!("/api/v1/assets/{id}")).ok()?);
        (a["status"] == "errored").then_some(a)
    });
    assert_eq!(a["error"], "the download stalled for 30 s", "{a}");
}
