//! The tus 1.0 resumable upload protocol (tus.io/protocols/resumable-upload) over a direct
//! upload's URL: the core (`HEAD` for the offset, `PATCH` to append, `OPTIONS` to discover)
//! and the extensions creation, creation-with-upload, creation-defer-length, expiration,
//! checksum (sha1, sha256) and termination.
//!
//! Written here rather than taken from a crate: no tus server library fits a hyper service
//! with our catalog and storage (see the README's dependency table). The rules, in the order a
//! request meets them: `Tus-Resumable: 1.0.0` or `412`; the direct upload known and used from
//! its web origin, else `404`/`403`; the upload its own, else `404`. A `PATCH` needs
//! `application/offset+octet-stream` (`415`) and the offset the server has (`409`); a second
//! writer at once gets `423` (also one on another origin, when Redis is configured); more bytes than the length, `413`; a checksum that does not match
//! keeps nothing (`460`). Bytes are streamed to their store as they come ([`super::store`]:
//! local disk, or parts in object storage), stored before the catalog counts them; a body cut
//! short keeps what arrived.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use base64::Engine;
use bytes::Buf;
use http::{header, HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use sha1::Digest;

use catalog::{DirectStatus, DirectUpload, NewAsset, Source, Status, Upload};

use super::{random_id, unavailable, Uploads};
use crate::body::Body;
use crate::route::plain_name;

pub const VERSION: &str = "1.0.0";
pub const EXTENSIONS: &str =
    "creation,creation-with-upload,creation-defer-length,expiration,checksum,termination";
pub const CHECKSUMS: &str = "sha1,sha256";
/// The longest `Upload-Metadata` taken.
const MAX_METADATA: usize = 4096;
const OCTETS: &str = "application/offset+octet-stream";

/// An answer of the protocol: its status, `Tus-Resumable`, never cached, and the direct
/// upload's own web origin when it names one.
fn answer(status: StatusCode, direct: Option<&DirectUpload>, msg: &str) -> Response<Body> {
    let body = if msg.is_empty() {
        Body::empty()
    } else {
        Body::from(format!("{msg}\n"))
    };
    let mut r = Response::new(body);
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert("tus-resumable", HeaderValue::from_static(VERSION));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if !msg.is_empty() {
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
    }
    if let Some(o) = direct.and_then(|d| d.cors_origin.as_deref()) {
        if let Ok(v) = HeaderValue::from_str(o) {
            h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
            h.insert(header::VARY, HeaderValue::from_static("Origin"));
        }
    }
    r
}

/// `423`: another request is writing the upload.
fn locked(d: &DirectUpload) -> Response<Body> {
    answer(
        StatusCode::LOCKED,
        Some(d),
        "another request is writing this upload; try again when it ends",
    )
}

fn set(r: &mut Response<Body>, name: &'static str, value: impl ToString) {
    if let Ok(v) = HeaderValue::from_str(&value.to_string()) {
        r.headers_mut().insert(name, v);
    }
}

fn header_str<'h>(h: &'h HeaderMap, name: &str) -> Option<&'h str> {
    h.get(name).and_then(|v| v.to_str().ok()).map(str::trim)
}

/// An `Upload-Length` / `Upload-Offset` value: digits only.
fn count(h: &HeaderMap, name: &str) -> Result<Option<u64>, String> {
    match header_str(h, name) {
        None => Ok(None),
        Some(v) if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) => v
            .parse()
            .map(Some)
            .map_err(|_| format!("{name}: too large")),
        Some(_) => Err(format!("{name}: a number of bytes")),
    }
}

fn http_date(ms: i64) -> String {
    httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64))
}

/// The method a tus request means: a client that can only `POST` names the one it means for
/// an upload (`upload`) in `X-HTTP-Method-Override`.
pub fn meant_method(method: &Method, upload: bool, h: &HeaderMap) -> Method {
    match (method, upload) {
        (&Method::POST, true) => h
            .get("x-http-method-override")
            .and_then(|v| Method::from_bytes(v.as_bytes()).ok())
            .unwrap_or(Method::POST),
        _ => method.clone(),
    }
}

/// `Upload-Metadata`: comma-separated `key base64value` (the value may be absent); keys
/// unique, without spaces or commas. The pairs decoded, or why not.
pub fn metadata(raw: &str) -> Result<Vec<(String, String)>, String> {
    let mut out: Vec<(String, String)> = Vec::new();
    if raw.trim().is_empty() {
        return Ok(out);
    }
    for pair in raw.split(',') {
        let mut it = pair.trim().splitn(2, ' ');
        let key = it.next().unwrap_or_default();
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(format!(
                "Upload-Metadata: the key {key:?} is not a plain word"
            ));
        }
        let value = match it.next().map(str::trim) {
            None | Some("") => String::new(),
            Some(v) => base64::engine::general_purpose::STANDARD
                .decode(v)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| format!("Upload-Metadata: {key}'s value is not base64 of UTF-8"))?,
        };
        if out.iter().any(|(k, _)| k == key) {
            return Err(format!("Upload-Metadata: {key} given twice"));
        }
        out.push((key.to_string(), value));
    }
    Ok(out)
}

/// A checksum the client sent for its chunk (`Upload-Checksum: sha1 BASE64`).
enum Checksum {
    Sha1(sha1::Sha1, Vec<u8>),
    Sha256(sha2::Sha256, Vec<u8>),
}

impl Checksum {
    fn parse(h: &HeaderMap) -> Result<Option<Checksum>, String> {
        let Some(v) = header_str(h, "upload-checksum") else {
            return Ok(None);
        };
        let (algo, b64) = v
            .split_once(' ')
            .ok_or("Upload-Checksum: an algorithm and a base64 digest")?;
        let digest = base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .map_err(|_| "Upload-Checksum: the digest is not base64".to_string())?;
        match algo {
            "sha1" => Ok(Some(Checksum::Sha1(sha1::Sha1::new(), digest))),
            "sha256" => Ok(Some(Checksum::Sha256(sha2::Sha256::new(), digest))),
            other => Err(format!(
                "Upload-Checksum: {other} is not one of {CHECKSUMS}"
            )),
        }
    }

    fn update(&mut self, data: &[u8]) {
        match self {
            Checksum::Sha1(h, _) => h.update(data),
            Checksum::Sha256(h, _) => h.update(data),
        }
    }

    fn matches(self) -> bool {
        match self {
            Checksum::Sha1(h, d) => h.finalize().as_slice() == d.as_slice(),
            Checksum::Sha256(h, d) => h.finalize().as_slice() == d.as_slice(),
        }
    }
}

/// The writer's hold on an upload, here and (with Redis) across origins; let go when dropped.
struct Writing<'a> {
    _here: Here<'a>,
    /// The offset its bytes have reached (`GET /api/v1/uploads/{id}` shows it).
    reached: Arc<AtomicU64>,
    lease: super::lease::Lease,
}

/// This origin's hold on an upload; let go when dropped (also when taking the lease fails, or
/// the request is dropped meanwhile).
struct Here<'a> {
    uploads: &'a Uploads,
    id: String,
}

impl Drop for Here<'_> {
    fn drop(&mut self) {
        self.uploads
            .writing
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.id);
    }
}

/// What happened to one request's bytes.
struct Appended {
    /// Bytes written and kept.
    kept: u64,
    /// Why the body stopped early, if it did.
    cut: Option<String>,
    /// Where the bytes are now, for the catalog ([`Upload::stored`]).
    stored: Option<String>,
}

impl Uploads {
    /// `OPTIONS` on a tus URL: what the server speaks (also answers a CORS preflight).
    pub fn discover(&self, r: &mut Response<Body>) {
        set(r, "tus-resumable", VERSION);
        set(r, "tus-version", VERSION);
        set(r, "tus-extension", EXTENSIONS);
        set(r, "tus-max-size", self.config.max_size);
        set(r, "tus-checksum-algorithm", CHECKSUMS);
    }

    /// The direct upload a tus request names, if the request may use it.
    async fn direct_for(
        &self,
        id: &str,
        headers: &HeaderMap,
    ) -> Result<DirectUpload, Response<Body>> {
        if header_str(headers, "tus-resumable") != Some(VERSION) {
            let mut r = answer(
                StatusCode::PRECONDITION_FAILED,
                None,
                "Tus-Resumable: 1.0.0 is the version spoken here",
            );
            set(&mut r, "tus-version", VERSION);
            return Err(r);
        }
        if !plain_name(id) {
            return Err(answer(StatusCode::NOT_FOUND, None, "no such upload"));
        }
        let d = match self.catalog.direct_upload(id).await {
            Ok(Some(d)) => d,
            Ok(None) => return Err(answer(StatusCode::NOT_FOUND, None, "no such upload")),
            Err(e) => return Err(unavailable(e)),
        };
        if let (Some(allowed), Some(origin)) = (&d.cors_origin, header_str(headers, "origin")) {
            if origin != allowed {
                tracing::info!(
                    upload = id,
                    origin,
                    "an upload from another web origin is refused"
                );
                // (Answered to the page's own origin, so its client reads the 403 and stops.)
                return Err(answer(
                    StatusCode::FORBIDDEN,
                    None,
                    "this upload URL is for another web origin",
                ));
            }
        }
        Ok(d)
    }

    /// The upload `upload_id` of direct upload `d`, if it is there.
    async fn upload_of(&self, d: &DirectUpload, upload_id: &str) -> Result<Upload, Response<Body>> {
        let gone = || {
            answer(
                StatusCode::NOT_FOUND,
                Some(d),
                "no such upload (ended or expired)",
            )
        };
        if !plain_name(upload_id) || d.upload_id.as_deref() != Some(upload_id) {
            return Err(gone());
        }
        match self.catalog.upload(upload_id).await {
            Ok(Some(u)) if u.direct_id == d.id => Ok(u),
            Ok(_) => Err(gone()),
            Err(e) => Err(unavailable(e)),
        }
    }

    /// Takes upload `id` of `d` for one writer: `423` while another has it, on this origin or
    /// (with Redis) on another.
    async fn hold(&self, d: &DirectUpload, id: &str) -> Result<Writing<'_>, Response<Body>> {
        let reached = Arc::new(AtomicU64::new(0));
        {
            let mut w = self.writing.lock().unwrap_or_else(|p| p.into_inner());
            if w.contains_key(id) {
                return Err(locked(d));
            }
            w.insert(id.to_string(), reached.clone());
        }
        let here = Here {
            uploads: self,
            id: id.to_string(),
        };
        match self.leases.take(id).await {
            Ok(Some(lease)) => Ok(Writing {
                _here: here,
                reached,
                lease,
            }),
            Ok(None) => {
                tracing::info!(upload = id, "a writer on another origin holds this upload");
                Err(locked(d))
            }
            Err(e) => {
                tracing::warn!(upload = id, error = %e, "Redis did not answer for an upload writer's lease");
                Err(answer(
                    StatusCode::SERVICE_UNAVAILABLE,
                    Some(d),
                    "cannot take this upload for writing now; try again",
                ))
            }
        }
    }

    /// `POST /uploads/{direct}`: creates the upload (once per URL), with its first bytes when
    /// the request carries them.
    pub async fn create<B>(&self, direct_id: &str, req: Request<B>) -> Response<Body>
    where
        B: http_body::Body + Send,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        let d = match self.direct_for(direct_id, req.headers()).await {
            Ok(d) => d,
            Err(r) => return r,
        };
        let h = req.headers();
        let bad = |msg: &str| answer(StatusCode::BAD_REQUEST, Some(&d), msg);
        let length = match count(h, "upload-length") {
            Ok(l) => l,
            Err(m) => return bad(&m),
        };
        let deferred = header_str(h, "upload-defer-length");
        match (length, deferred) {
            (Some(_), None) | (None, Some("1")) => {}
            (Some(_), Some(_)) => return bad("Upload-Length or Upload-Defer-Length, not both"),
            (None, Some(_)) => return bad("Upload-Defer-Length: 1 is the only value"),
            (None, None) => return bad("Upload-Length (or Upload-Defer-Length: 1) is needed"),
        }
        if length.is_some_and(|l| l > self.config.max_size) {
            return answer(
                StatusCode::PAYLOAD_TOO_LARGE,
                Some(&d),
                &format!(
                    "uploads are at most {} bytes (Tus-Max-Size)",
                    self.config.max_size
                ),
            );
        }
        let raw = header_str(h, "upload-metadata")
            .unwrap_or_default()
            .to_string();
        if raw.len() > MAX_METADATA {
            return bad("Upload-Metadata: at most 4 KiB");
        }
        if let Err(m) = metadata(&raw) {
            return bad(&m);
        }
        let with_body = header_str(h, "content-type") == Some(OCTETS);
        if d.status != DirectStatus::Waiting
            || d.upload_id.is_some()
            || d.expires_at <= catalog::now_ms()
        {
            return answer(
                StatusCode::GONE,
                Some(&d),
                "this upload URL was used or has expired; ask for a new one",
            );
        }
        let upload_id = random_id();
        if let Err(e) = self.store.create(&upload_id).await {
            tracing::warn!(error = %e, "cannot make an upload's file");
            return answer(
                StatusCode::INSUFFICIENT_STORAGE,
                Some(&d),
                "cannot store uploads now",
            );
        }
        let expires = catalog::now_ms() + self.config.expire.as_millis() as i64;
        let upload = match self
            .catalog
            .start_upload(&d.id, &upload_id, length, &raw, expires)
            .await
        {
            Ok(Some(u)) => u,
            Ok(None) => {
                self.store.remove(&upload_id, None).await;
                return answer(
                    StatusCode::GONE,
                    Some(&d),
                    "this upload URL was used or has expired; ask for a new one",
                );
            }
            Err(e) => {
                self.store.remove(&upload_id, None).await;
                return unavailable(e);
            }
        };
        tracing::info!(direct = %d.id, upload = %upload_id, length, "upload created");
        if length == Some(0) {
            // Nothing to send: whole at once (a client says it is done after this answer).
            if let Err(r) = self.finish(&d, &upload).await {
                return r;
            }
        }
        let location = format!("/uploads/{}/{upload_id}", d.id);
        let mut r = if with_body {
            let d = DirectUpload {
                upload_id: Some(upload_id.clone()),
                ..d.clone()
            };
            let mut r = self.append(&d, upload, req, true).await;
            if r.status() == StatusCode::NO_CONTENT {
                *r.status_mut() = StatusCode::CREATED;
            }
            r
        } else {
            let mut r = answer(StatusCode::CREATED, Some(&d), "");
            set(&mut r, "upload-expires", http_date(expires));
            r
        };
        set(&mut r, "location", location);
        r
    }

    /// `HEAD /uploads/{direct}/{upload}`: where it stands.
    pub async fn head(&self, direct_id: &str, upload_id: &str, h: &HeaderMap) -> Response<Body> {
        let d = match self.direct_for(direct_id, h).await {
            Ok(d) => d,
            Err(r) => return r,
        };
        let u = match self.upload_of(&d, upload_id).await {
            Ok(u) => u,
            Err(r) => return r,
        };
        if u.completed_at.is_none() && u.length == Some(u.received) {
            // All its bytes are in but its asset was not made (the catalog failed then): a
            // client that resumes sees the upload whole and sends nothing more, so now.
            if let Err(r) = self.finish(&d, &u).await {
                return r;
            }
        }
        let mut r = answer(StatusCode::OK, Some(&d), "");
        set(&mut r, "upload-offset", u.received);
        match u.length {
            Some(l) => set(&mut r, "upload-length", l),
            None => set(&mut r, "upload-defer-length", 1),
        }
        if !u.metadata.is_empty() {
            set(&mut r, "upload-metadata", &u.metadata);
        }
        if u.completed_at.is_none() {
            set(&mut r, "upload-expires", http_date(u.expires_at));
        }
        r
    }

    /// `PATCH /uploads/{direct}/{upload}`: appends the body at `Upload-Offset`.
    pub async fn patch<B>(
        &self,
        direct_id: &str,
        upload_id: &str,
        req: Request<B>,
    ) -> Response<Body>
    where
        B: http_body::Body + Send,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        let d = match self.direct_for(direct_id, req.headers()).await {
            Ok(d) => d,
            Err(r) => return r,
        };
        if header_str(req.headers(), "content-type") != Some(OCTETS) {
            return answer(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                Some(&d),
                "Content-Type: application/offset+octet-stream",
            );
        }
        let u = match self.upload_of(&d, upload_id).await {
            Ok(u) => u,
            Err(r) => return r,
        };
        self.append(&d, u, req, false).await
    }

    /// Writes a request's body at the upload's offset; the answer to a `PATCH` (or to a
    /// `creation` with its first bytes, whose offset is 0).
    async fn append<B>(
        &self,
        d: &DirectUpload,
        mut u: Upload,
        req: Request<B>,
        creation: bool,
    ) -> Response<Body>
    where
        B: http_body::Body + Send,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        let h = req.headers();
        let bad = |msg: &str| answer(StatusCode::BAD_REQUEST, Some(d), msg);
        let offset = match count(h, "upload-offset") {
            Ok(Some(o)) => o,
            Ok(None) if creation => 0,
            Ok(None) => return bad("Upload-Offset is needed"),
            Err(m) => return bad(&m),
        };
        let mut checksum = match Checksum::parse(h) {
            Ok(c) => c,
            Err(m) => return bad(&m),
        };
        let writing = match self.hold(d, &u.id).await {
            Ok(w) => w,
            Err(r) => return r,
        };
        // Read again under the hold: another writer may have just finished.
        u = match self.catalog.upload(&u.id).await {
            Ok(Some(u)) => u,
            Ok(None) => {
                return answer(
                    StatusCode::NOT_FOUND,
                    Some(d),
                    "no such upload (ended or expired)",
                )
            }
            Err(e) => return unavailable(e),
        };
        if offset != u.received {
            let mut r = answer(
                StatusCode::CONFLICT,
                Some(d),
                &format!("Upload-Offset is {offset}, the server has {}", u.received),
            );
            set(&mut r, "upload-offset", u.received);
            return r;
        }
        match (count(h, "upload-length"), u.length) {
            (Err(m), _) => return bad(&m),
            (Ok(Some(l)), None) => {
                if l < u.received {
                    return bad(&format!(
                        "Upload-Length {l} is below the {} bytes in",
                        u.received
                    ));
                }
                if l > self.config.max_size {
                    return answer(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        Some(d),
                        &format!(
                            "uploads are at most {} bytes (Tus-Max-Size)",
                            self.config.max_size
                        ),
                    );
                }
                if let Err(e) = self.catalog.set_upload_length(&u.id, l).await {
                    return unavailable(e);
                }
                u.length = Some(l);
            }
            (Ok(Some(l)), Some(known)) if l != known => {
                return bad("Upload-Length cannot change once set");
            }
            _ => {}
        }
        if u.completed_at.is_some() {
            let mut r = answer(StatusCode::NO_CONTENT, Some(d), "");
            set(&mut r, "upload-offset", u.received);
            return r;
        }
        let room = u.length.unwrap_or(self.config.max_size) - u.received;
        writing.reached.store(u.received, Ordering::Relaxed);
        let appended = match self
            .write_body(d, &u, req, room, checksum.as_mut(), &writing)
            .await
        {
            Ok(a) => a,
            Err(r) => return r,
        };
        if writing.lease.lost().is_cancelled() {
            // Another origin may be writing the upload now: its file is not ours to cut back.
            self.store.abandon(&u, appended.stored.as_deref()).await;
            tracing::warn!(upload = %u.id, kept = appended.kept, "an upload request lost its hold on the upload; its bytes are not counted");
            return answer(
                StatusCode::LOCKED,
                Some(d),
                "this request's hold on the upload lapsed (another origin may have it); ask for the offset and go on from there",
            );
        }
        if let Some(why) = &appended.cut {
            if appended.kept > room {
                // Over the length: nothing of it is kept.
                self.store.undo(&u, appended.stored.as_deref()).await;
                return answer(StatusCode::PAYLOAD_TOO_LARGE, Some(d), why);
            }
            tracing::info!(upload = %u.id, kept = appended.kept, why, "an upload request ended early; what arrived is kept");
        }
        if let Some(c) = checksum {
            if appended.cut.is_some() || !c.matches() {
                self.store.undo(&u, appended.stored.as_deref()).await;
                return answer(
                    StatusCode::from_u16(460).unwrap_or(StatusCode::BAD_REQUEST),
                    Some(d),
                    "Upload-Checksum does not match the bytes received; nothing of them is kept",
                );
            }
        }
        let to = u.received + appended.kept;
        let stored = appended.stored.as_deref();
        match self
            .catalog
            .advance_upload(&u.id, u.received, to, stored)
            .await
        {
            Ok(true) => self.store.counted(&u, stored).await,
            Ok(false) => {
                // Another writer moved it on: what is in the store is theirs now.
                self.store.abandon(&u, stored).await;
                return answer(
                    StatusCode::CONFLICT,
                    Some(d),
                    "the upload moved on meanwhile",
                );
            }
            // Not undone: the catalog may have taken it before the error.
            Err(e) => return unavailable(e),
        }
        u.received = to;
        u.stored = appended.stored;
        let mut r = answer(StatusCode::NO_CONTENT, Some(d), "");
        set(&mut r, "upload-offset", to);
        if u.length == Some(to) {
            if let Err(r) = self.finish(d, &u).await {
                return r;
            }
        } else {
            set(&mut r, "upload-expires", http_date(u.expires_at));
        }
        r
    }

    /// Streams the body to the upload's store from its offset, at most `room` bytes (one more
    /// shows it was too much), stored before it is counted.
    async fn write_body<B>(
        &self,
        d: &DirectUpload,
        u: &Upload,
        req: Request<B>,
        room: u64,
        mut checksum: Option<&mut Checksum>,
        writing: &Writing<'_>,
    ) -> Result<Appended, Response<Body>>
    where
        B: http_body::Body + Send,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        let failed = |e: std::io::Error| {
            tracing::warn!(upload = %u.id, error = %e, "cannot write an upload's bytes");
            answer(
                StatusCode::INSUFFICIENT_STORAGE,
                Some(d),
                "cannot store the bytes now",
            )
        };
        let mut file = self.store.writer(u).await.map_err(failed)?;
        let mut body = std::pin::pin!(req.into_body());
        let mut kept = 0u64;
        let mut cut = None;
        loop {
            let next = tokio::select! {
                // (The caller answers for it: the lease stays lost.)
                _ = writing.lease.lost().cancelled() => break,
                next = tokio::time::timeout(self.config.idle, body.frame()) => next,
            };
            let frame = match next {
                Err(_) => {
                    cut = Some(format!("nothing came for {} s", self.config.idle.as_secs()));
                    break;
                }
                Ok(None) => break,
                Ok(Some(Err(e))) => {
                    cut = Some(format!("the body broke off: {e}"));
                    break;
                }
                Ok(Some(Ok(f))) => f,
            };
            let Ok(mut data) = frame.into_data() else {
                continue;
            };
            let bytes = data.copy_to_bytes(data.remaining());
            if kept + bytes.len() as u64 > room {
                kept += bytes.len() as u64;
                cut = Some(format!("more bytes than the upload's length ({room} left)"));
                break;
            }
            if let Some(c) = checksum.as_deref_mut() {
                c.update(&bytes);
            }
            kept += bytes.len() as u64;
            file.push(bytes).await.map_err(failed)?;
            writing.reached.store(u.received + kept, Ordering::Relaxed);
        }
        let stored = file.finish().await.map_err(failed)?;
        Ok(Appended { kept, cut, stored })
    }

    /// The upload is whole: its asset is made, `waiting` for the packaging.
    async fn finish(&self, d: &DirectUpload, u: &Upload) -> Result<(), Response<Body>> {
        if let Err(e) = self.store.complete(u).await {
            tracing::warn!(upload = %u.id, error = %e, "cannot make an upload whole in its store");
            return Err(answer(
                StatusCode::INSUFFICIENT_STORAGE,
                Some(d),
                "cannot store the upload now; send the last request again",
            ));
        }
        let meta = metadata(&u.metadata).unwrap_or_default();
        let given = |k: &str| {
            meta.iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.clone())
        };
        let s = &d.new_asset_settings;
        let asset = NewAsset {
            id: random_id(),
            status: Status::Waiting,
            source: Source::Upload,
            stream: None,
            title: s
                .title
                .clone()
                .or_else(|| given("title"))
                .or_else(|| given("filename"))
                .map(|t| t.chars().take(catalog::MAX_TITLE).collect()),
            description: s.description.clone(),
            tags: s.tags.clone(),
            passthrough: s.passthrough.clone(),
            playback: s.playback.clone().unwrap_or_else(|| "public".into()),
            created_at: None,
            input_url: None,
        };
        match self.catalog.complete_upload(u, &asset).await {
            Ok(Some(a)) => {
                tracing::info!(upload = %u.id, asset = %a.id, bytes = u.received, "upload complete; asset made");
                self.completed.notify_one();
                Ok(())
            }
            Ok(None) => Ok(()),
            Err(e) => Err(unavailable(e)),
        }
    }

    /// `DELETE /uploads/{direct}/{upload}` (termination): the bytes go, the URL is spent.
    pub async fn terminate(
        &self,
        direct_id: &str,
        upload_id: &str,
        h: &HeaderMap,
    ) -> Response<Body> {
        let d = match self.direct_for(direct_id, h).await {
            Ok(d) => d,
            Err(r) => return r,
        };
        let u = match self.upload_of(&d, upload_id).await {
            Ok(u) => u,
            Err(r) => return r,
        };
        let _writing = match self.hold(&d, &u.id).await {
            Ok(w) => w,
            Err(r) => return r,
        };
        match self.catalog.cancel_upload(&u).await {
            Ok(true) => {
                self.store.remove(&u.id, u.stored.as_deref()).await;
                tracing::info!(upload = %u.id, "upload ended by its client");
                answer(StatusCode::NO_CONTENT, Some(&d), "")
            }
            Ok(false) => answer(
                StatusCode::CONFLICT,
                Some(&d),
                "this upload is complete; delete its asset instead",
            ),
            Err(e) => unavailable(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_pairs() {
        let m = metadata("filename d29ybGRfZG9taW5hdGlvbl9wbGFuLnBkZg==,is_confidential").unwrap();
        assert_eq!(
            m,
            [
                (
                    "filename".to_string(),
                    "world_domination_plan.pdf".to_string()
                ),
                ("is_confidential".to_string(), String::new())
            ]
        );
        assert!(metadata("").unwrap().is_empty());
        assert!(metadata("a !!!").is_err(), "not base64");
        assert!(metadata("a YQ==,a Yg==").is_err(), "twice");
        assert!(metadata("a YQ==,").is_err(), "an empty pair");
    }

    #[test]
    fn dates() {
        assert_eq!(http_date(784_111_777_000), "Sun, 06 Nov 1994 08:49:37 GMT");
    }
}
