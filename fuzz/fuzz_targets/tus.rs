//! What a tus client sends: requests (creation, `PATCH`, `HEAD`, `DELETE`, a `POST` naming its
//! method) with made-up headers (`Upload-Length`, `-Offset`, `-Metadata`, `-Checksum`,
//! `-Defer-Length`, `Content-Type`, `Tus-Resumable`, `Origin`, `X-HTTP-Method-Override`) and
//! bodies, in a row against one direct upload, on a real catalog (SQLite in memory) and a real
//! uploads directory. None of it may panic; after every request the upload's file holds exactly
//! the bytes the catalog counts, which never pass its length or the size limit.
//!
//! Input: requests separated by a line `--`; in each, the first line is the method, the lines
//! up to an empty one are `Name: value` headers, and the rest is the body.
#![no_main]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use catalog::{AssetSettings, Catalog};
use http::{Method, Request};
use http_body_util::Full;
use httpd::upload::disk::Disk;
use httpd::upload::store::Store;
use httpd::upload::{tus, UploadConfig, Uploads};
use libfuzzer_sys::fuzz_target;

/// The size limit: small, so that large inputs reach it.
const MAX_SIZE: u64 = 64 * 1024;

struct World {
    rt: tokio::runtime::Runtime,
    catalog: Catalog,
    uploads: Arc<Uploads>,
    dir: std::path::PathBuf,
}

fn world() -> &'static World {
    static W: OnceLock<World> = OnceLock::new();
    W.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let dir = std::env::temp_dir().join(format!("estuary-fuzz-tus-{}", std::process::id()));
        let catalog = rt.block_on(Catalog::open("sqlite::memory:")).unwrap();
        let disk = Disk::open(dir.clone()).unwrap();
        let config = UploadConfig {
            max_size: MAX_SIZE,
            expire: Duration::from_secs(3600),
            idle: Duration::from_secs(5),
        };
        let uploads = Uploads::new(catalog.clone(), Store::Disk(disk.clone()), disk, config, None);
        World {
            rt,
            catalog,
            uploads,
            dir,
        }
    })
}

/// One request as the fuzzer wrote it.
fn request(text: &[u8]) -> (Method, Request<Full<Bytes>>) {
    let (head, body) = match text.windows(2).position(|w| w == b"\n\n") {
        Some(i) => (&text[..i], &text[i + 2..]),
        None => (text, &[][..]),
    };
    let head = String::from_utf8_lossy(head);
    let mut lines = head.lines();
    let method = Method::from_bytes(lines.next().unwrap_or("").trim().as_bytes())
        .unwrap_or(Method::PATCH);
    let mut req = Request::builder().method(method.clone()).uri("/uploads/x");
    for line in lines {
        if let Some((name, value)) = line.split_once(':') {
            req = req.header(name.trim(), value.trim());
        }
    }
    let req = req
        .body(Full::new(Bytes::copy_from_slice(body)))
        .unwrap_or_else(|_| Request::new(Full::new(Bytes::new())));
    (method, req)
}

fuzz_target!(|data: &[u8]| {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let w = world();
    let direct = format!("fuzz{}", NEXT.fetch_add(1, Ordering::Relaxed));
    w.rt.block_on(async {
        let far = catalog::now_ms() + 3_600_000;
        w.catalog
            .create_direct_upload(&direct, None, &AssetSettings::default(), far)
            .await
            .unwrap();
        let mut upload: Option<String> = None;
        let mut rest = data;
        while !rest.is_empty() {
            let (one, next) = match rest.windows(4).position(|s| s == b"\n--\n") {
                Some(i) => (&rest[..i], &rest[i + 4..]),
                None => (rest, &[][..]),
            };
            rest = next;
            let (method, req) = request(one);
            // As the service routes it (anything else is its 405).
            let meant = tus::meant_method(&method, upload.is_some(), req.headers());
            let r = match (meant, upload.clone()) {
                (Method::POST, None) => w.uploads.create(&direct, req).await,
                (Method::HEAD, Some(id)) => w.uploads.head(&direct, &id, req.headers()).await,
                (Method::DELETE, Some(id)) => {
                    w.uploads.terminate(&direct, &id, req.headers()).await
                }
                (Method::PATCH, Some(id)) => w.uploads.patch(&direct, &id, req).await,
                _ => continue,
            };
            if let Some(at) = r.headers().get("location").and_then(|v| v.to_str().ok()) {
                upload = at.rsplit('/').next().map(str::to_owned);
            }
            // What the catalog counts is on disk, and within bounds.
            if let Some(u) = upload.as_deref() {
                if let Some(rec) = w.catalog.upload(u).await.unwrap() {
                    let on_disk = std::fs::metadata(w.dir.join(u)).map_or(0, |m| m.len());
                    assert_eq!(on_disk, rec.received, "{u}: {r:?}");
                    assert!(rec.received <= rec.length.unwrap_or(MAX_SIZE).min(MAX_SIZE));
                }
            }
        }
        // Nothing left behind for the next input.
        if let Some(u) = upload {
            let _ = std::fs::remove_file(w.dir.join(u));
        }
    });
});
