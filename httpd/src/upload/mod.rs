//! Uploads: direct upload URLs (`POST /api/v1/uploads`, API token) and the resumable uploads
//! made through them with the tus 1.0 protocol ([`tus`]), their bytes on local disk
//! ([`disk`]) or in object storage ([`objects`]), as [`store`] chooses; their records in the
//! catalog.
//!
//! | method and path | who | answer |
//! | --- | --- | --- |
//! | `POST /api/v1/uploads` `{"cors_origin"?, "timeout"?, "new_asset_settings"?}` | API token | `201` `{"id", "url", "status", "timeout", ...}` |
//! | `GET /api/v1/uploads/{id}` | API token | `200` the direct upload: `waiting`, `asset_created` (with `asset_id`), `cancelled`, `timed_out`; its progress (`offset`, `length`, `percent`) |
//! | `OPTIONS`, `POST /uploads/{id}` | whoever holds the URL | tus discovery; tus creation (once) |
//! | `HEAD`, `PATCH`, `DELETE /uploads/{id}/{upload}` | the same | tus offset, bytes, termination |
//!
//! The URL is the creator's only credential: 128 random bits, good for one upload until its
//! `timeout`, from the one web origin `cors_origin` names (a browser's `Origin` elsewhere is
//! refused). Nothing is read from a request body before its URL is known to be good. One
//! request writes an upload at a time: this origin's own lock, and a lease in Redis when Redis
//! is configured, for origins side by side behind a load balancer ([`lease`]).

pub mod disk;
pub mod lease;
pub mod objects;
pub mod store;
pub mod tus;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{Request, Response, StatusCode};
use serde::Deserialize;

use catalog::{Asset, AssetSettings, Catalog, Source};

use crate::api::admin::body_json;
use crate::body::Body;
use crate::response::{error, json};
use crate::route::plain_name;

/// The name in the uploads directory of the file fetched for asset `asset` from its URL.
pub fn fetched(asset: &str) -> String {
    format!("{asset}.fetched")
}

/// What uploads may be.
#[derive(Clone, Debug)]
pub struct UploadConfig {
    /// The largest upload (`Tus-Max-Size`).
    pub max_size: u64,
    /// An unfinished upload's bytes are deleted this long after it began.
    pub expire: Duration,
    /// A `PATCH` that sends nothing for this long ends (what came is kept).
    pub idle: Duration,
}

impl Default for UploadConfig {
    fn default() -> Self {
        UploadConfig {
            max_size: 20 << 30,
            expire: Duration::from_secs(24 * 3600),
            idle: Duration::from_secs(30),
        }
    }
}

/// The longest and the default life of a direct upload URL (`timeout`).
const MAX_TIMEOUT: u64 = 7 * 24 * 3600;
const DEFAULT_TIMEOUT: u64 = 3600;

pub struct Uploads {
    pub(crate) catalog: Catalog,
    pub(crate) store: store::Store,
    /// The uploads directory, where assets' files are read: uploads on disk, copies of those
    /// in object storage, files fetched from URLs ([`fetched`]).
    pub(crate) files: disk::Disk,
    pub(crate) config: UploadConfig,
    /// Uploads a request of this origin is writing right now (one writer at a time), each with
    /// the offset its bytes have reached so far (the catalog counts them when the request ends).
    pub(crate) writing: Mutex<HashMap<String, Arc<AtomicU64>>>,
    /// The writers' leases across origins.
    pub(crate) leases: lease::Leases,
    /// Told when an upload completes and its asset is made (packaging need not poll).
    pub(crate) completed: Arc<tokio::sync::Notify>,
}

/// A new direct upload, as `POST /api/v1/uploads` takes it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewDirect {
    #[serde(default)]
    cors_origin: Option<String>,
    /// Seconds the URL may be used for.
    #[serde(default)]
    timeout: Option<u64>,
    #[serde(default)]
    new_asset_settings: AssetSettings,
}

impl Uploads {
    /// Uploads recorded in `catalog`, their bytes in `store`, assets' files read in `files`;
    /// writers' leases in `redis` when there is one.
    pub fn new(
        catalog: Catalog,
        store: store::Store,
        files: disk::Disk,
        config: UploadConfig,
        redis: Option<replica::RedisClient>,
    ) -> Arc<Uploads> {
        Arc::new(Uploads {
            catalog,
            store,
            files,
            config,
            writing: Mutex::new(HashMap::new()),
            leases: lease::Leases::new(redis),
            completed: Arc::default(),
        })
    }

    /// Deletes what `asset` was made from, wherever it is still kept: its upload's bytes (on
    /// disk, or in object storage and their copy on disk) or the file fetched from its URL.
    /// (Packaging deletes them once an asset is ready; one waiting for re-encoding keeps them.)
    pub async fn remove_input(&self, asset: &Asset) {
        match asset.source {
            Source::Upload => match self.catalog.upload_of_asset(&asset.id).await {
                Ok(Some(u)) => {
                    self.store.remove(&u.id, u.stored.as_deref()).await;
                    self.files.remove(&u.id).await;
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(asset = %asset.id, error = %e, "cannot find the upload an asset was made from; its bytes are left")
                }
            },
            Source::Url => self.files.remove(&fetched(&asset.id)).await,
            Source::Live => {}
        }
    }

    /// Notified each time an upload completes and becomes an asset.
    pub fn completed(&self) -> Arc<tokio::sync::Notify> {
        self.completed.clone()
    }

    /// `POST /api/v1/uploads`; `base` is this server's URL as the client reached it.
    pub async fn create_direct<B>(&self, req: Request<B>, base: &str) -> Response<Body>
    where
        B: http_body::Body + Send,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        let new: NewDirect = match body_json(req).await {
            Ok(n) => n,
            Err(r) => return r,
        };
        let timeout = new.timeout.unwrap_or(DEFAULT_TIMEOUT);
        if !(60..=MAX_TIMEOUT).contains(&timeout) {
            return error(
                StatusCode::BAD_REQUEST,
                "timeout: seconds, from 60 to 604800 (a week)",
            );
        }
        if let Some(o) = &new.cors_origin {
            if !(o.starts_with("https://") || o.starts_with("http://") || o == "*")
                || o.len() > 256
                || o.contains(|c: char| c.is_whitespace() || c == ',')
            {
                return error(
                    StatusCode::BAD_REQUEST,
                    "cors_origin: one web origin (https://example.com) or *",
                );
            }
        }
        let s = &new.new_asset_settings;
        if let Err(e) = s.check() {
            return error(StatusCode::BAD_REQUEST, &format!("new_asset_settings: {e}"));
        }
        let id = random_id();
        let expires = catalog::now_ms() + (timeout as i64) * 1000;
        let cors = new.cors_origin.as_deref().filter(|o| *o != "*");
        match self
            .catalog
            .create_direct_upload(&id, cors, s, expires)
            .await
        {
            Ok(d) => {
                let mut v = shown(&d);
                v["url"] = format!("{base}/uploads/{id}").into();
                v["timeout"] = timeout.into();
                let mut r = json(&v);
                *r.status_mut() = StatusCode::CREATED;
                r
            }
            Err(e) => unavailable(e),
        }
    }

    /// `GET /api/v1/uploads/{id}`
    pub async fn direct(&self, id: &str) -> Response<Body> {
        if !plain_name(id) {
            return error(StatusCode::NOT_FOUND, "no such upload");
        }
        let d = match self.catalog.direct_upload(id).await {
            Ok(Some(d)) => d,
            Ok(None) => return error(StatusCode::NOT_FOUND, "no such upload"),
            Err(e) => return unavailable(e),
        };
        let mut v = shown(&d);
        let (offset, length) = match self.offset(&d).await {
            Ok(p) => p,
            Err(e) => return unavailable(e),
        };
        v["offset"] = offset.into();
        v["length"] = length.into();
        // One decimal: a progress bar's worth, and never 100 before the last byte.
        v["percent"] = length
            .map(|l| match l {
                0 => 100.0,
                _ => ((offset as f64 * 1000.0 / l as f64).floor() / 10.0).min(100.0),
            })
            .into();
        json(&v)
    }

    /// How far the upload of `d` has come: the bytes in (counting those a request of this
    /// origin is writing now) and its length when known.
    async fn offset(
        &self,
        d: &catalog::DirectUpload,
    ) -> Result<(u64, Option<u64>), catalog::Error> {
        let Some(upload_id) = &d.upload_id else {
            return Ok((0, None));
        };
        let Some(u) = self.catalog.upload(upload_id).await? else {
            return Ok((0, None));
        };
        let writing = self
            .writing
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(upload_id)
            .map(|r| r.load(Ordering::Relaxed));
        Ok((writing.unwrap_or(0).max(u.received), u.length))
    }

    /// Deletes the bytes of unfinished uploads past their expiry, and marks direct uploads
    /// nobody finished in time `timed_out`, every minute until `cancel`.
    pub async fn sweep(self: Arc<Self>, cancel: tokio_util::sync::CancellationToken) {
        loop {
            match self.catalog.expire_uploads().await {
                Ok(gone) => {
                    for u in &gone {
                        self.store.remove(&u.id, u.stored.as_deref()).await;
                    }
                    if !gone.is_empty() {
                        tracing::info!(
                            expired = gone.len(),
                            "unfinished uploads expired; their bytes are deleted"
                        );
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot expire uploads now"),
            }
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_secs(60)) => {}
            }
        }
    }
}

/// A direct upload as the API shows it (times as RFC 3339).
fn shown(d: &catalog::DirectUpload) -> serde_json::Value {
    let mut v = serde_json::to_value(d).unwrap_or_default();
    v["created_at"] = crate::api::assets::rfc3339_ms(d.created_at).into();
    v["expires_at"] = crate::api::assets::rfc3339_ms(d.expires_at).into();
    v
}

/// 128 random bits, as 26 lowercase letters and digits (base32).
pub(crate) fn random_id() -> String {
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    let bits: u128 = rand::random();
    (0..26)
        .map(|i| ALPHABET[((bits >> (i * 5)) & 31) as usize] as char)
        .collect()
}

pub(crate) fn unavailable(e: catalog::Error) -> Response<Body> {
    tracing::warn!(error = %e, "the catalog did not answer");
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "the catalog did not answer",
    )
}
