//! The asset catalog's API (API token): every live stream's archive (and, later, uploaded
//! videos) with its status and metadata.
//!
//! | method and path | body | answer |
//! | --- | --- | --- |
//! | `GET /api/v1/assets?status=&tag=&passthrough=&limit=&page=` | | `200` `{"assets": [...], "page", "limit", "more"}`, newest first |
//! | `GET /api/v1/assets/{id}` | | `200` the asset with its playback URLs |
//! | `PATCH /api/v1/assets/{id}` | `{"title"?, "description"?, "tags"?, "passthrough"?}` (`null` clears) | `200` the asset |
//! | `DELETE /api/v1/assets/{id}` | | `204`: its record and its media are gone |
//! | `POST /api/v1/assets` | `{"input": "https://...", "title"?, "description"?, "tags"?, "passthrough"?, "playback"?}` | `201` the new asset, `waiting` until its file is fetched and prepared as an upload is |
//!
//! `input` may also be given as Mux has it, `[{"url": "https://..."}]`. The file is fetched
//! by the server that prepares uploads (`https://` only, never from an address that is not on
//! the public internet unless the operator allows it, no larger than an upload may be); a
//! URL that cannot be fetched ends the asset `errored` with the reason.

use std::sync::Arc;

use http::{Request, Response, StatusCode};
use serde::Deserialize;

use catalog::{Asset, AssetSettings, Catalog, Filter, NewAsset, Patch, Source, Status};

use crate::api::admin::body_json;
use crate::body::Body;
use crate::response::{error, json};
use crate::route::plain_name;
use crate::upload::Uploads;

/// The catalog, and where the media of archived streams is (to delete it with its asset).
pub struct Assets {
    pub catalog: Catalog,
    pub archive: Option<packager::archive::Store>,
}

/// `POST /api/v1/assets`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FromUrl {
    input: InputUrl,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    passthrough: Option<String>,
    #[serde(default)]
    playback: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum InputUrl {
    Url(String),
    /// Mux's form: one input, `[{"url": ...}]`.
    List([UrlObject; 1]),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UrlObject {
    url: String,
}

/// The longest input URL taken.
const MAX_URL: usize = 4096;

impl Assets {
    /// `POST /api/v1/assets`: an asset whose file is fetched from a URL; `prepare` is told so
    /// that its preparer starts at once.
    pub async fn create<B>(
        &self,
        req: Request<B>,
        prepare: &Arc<tokio::sync::Notify>,
    ) -> Response<Body>
    where
        B: http_body::Body + Send,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        let new: FromUrl = match body_json(req).await {
            Ok(n) => n,
            Err(r) => return r,
        };
        let url = match new.input {
            InputUrl::Url(u) => u,
            InputUrl::List([UrlObject { url }]) => url,
        };
        let uri = match check_input_url(&url) {
            Ok(u) => u,
            Err(msg) => return error(StatusCode::BAD_REQUEST, &format!("input: {msg}")),
        };
        let settings = AssetSettings {
            title: new.title.or_else(|| file_name(&uri)),
            description: new.description,
            tags: new.tags,
            passthrough: new.passthrough,
            playback: new.playback,
        };
        if let Err(e) = settings.check() {
            return error(StatusCode::BAD_REQUEST, &e.to_string());
        }
        let asset = NewAsset {
            id: crate::upload::random_id(),
            status: Status::Waiting,
            source: Source::Url,
            stream: None,
            title: settings.title,
            description: settings.description,
            tags: settings.tags,
            passthrough: settings.passthrough,
            playback: settings.playback.unwrap_or_else(|| "public".into()),
            created_at: None,
            input_url: Some(url),
        };
        match self.catalog.create(&asset).await {
            Ok(a) => {
                tracing::info!(asset = %a.id, host = uri.host().unwrap_or(""), "asset to fetch from a URL");
                prepare.notify_one();
                let mut r = json(&shown(&a));
                *r.status_mut() = StatusCode::CREATED;
                r
            }
            Err(e) => unavailable(e),
        }
    }

    /// `GET /api/v1/assets`
    pub async fn list(&self, query: &str) -> Response<Body> {
        let filter = match filter(query) {
            Ok(f) => f,
            Err(msg) => return error(StatusCode::BAD_REQUEST, &msg),
        };
        match self.catalog.list(&filter).await {
            Ok(page) => json(&serde_json::json!({
                "assets": page.assets.iter().map(shown).collect::<Vec<_>>(),
                "page": filter.page,
                "limit": filter.limit,
                "more": page.more,
            })),
            Err(e) => unavailable(e),
        }
    }

    /// `GET /api/v1/assets/{id}`
    pub async fn get(&self, id: &str) -> Response<Body> {
        if !plain_name(id) {
            return missing(id);
        }
        match self.catalog.get(id).await {
            Ok(Some(a)) => json(&shown(&a)),
            Ok(None) => missing(id),
            Err(e) => unavailable(e),
        }
    }

    /// `PATCH /api/v1/assets/{id}`
    pub async fn patch<B>(&self, id: &str, req: Request<B>) -> Response<Body>
    where
        B: http_body::Body + Send,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        if !plain_name(id) {
            return missing(id);
        }
        let patch: Patch = match body_json(req).await {
            Ok(p) => p,
            Err(r) => return r,
        };
        if let Err(e) = patch.check() {
            return error(StatusCode::BAD_REQUEST, &e.to_string());
        }
        match self.catalog.update(id, &patch).await {
            Ok(Some(a)) => json(&shown(&a)),
            Ok(None) => missing(id),
            Err(catalog::Error::Invalid(msg)) => error(StatusCode::BAD_REQUEST, msg),
            Err(e) => unavailable(e),
        }
    }

    /// `DELETE /api/v1/assets/{id}`: the media first, so a failure leaves the asset listed
    /// (and the request can be made again) rather than media nobody can find; then the
    /// record, then what it was made from where `uploads` still keeps that.
    pub async fn delete(&self, id: &str, uploads: Option<&Uploads>) -> Response<Body> {
        if !plain_name(id) {
            return missing(id);
        }
        let asset = match self.catalog.get(id).await {
            Ok(Some(a)) => a,
            Ok(None) => return missing(id),
            Err(e) => return unavailable(e),
        };
        if asset.status == Status::Preparing && asset.source == catalog::Source::Live {
            return error(
                StatusCode::CONFLICT,
                &format!("asset {id} is a stream still being recorded; end the stream first"),
            );
        }
        if let Some(store) = &self.archive {
            if let Err(e) = packager::archive::remove(store.as_ref(), id).await {
                tracing::warn!(asset = id, error = %e, "cannot delete an asset's media");
                return error(
                    StatusCode::BAD_GATEWAY,
                    "the archive storage did not answer; the asset is kept",
                );
            }
        }
        match self.catalog.delete(id).await {
            Ok(_) => {
                if let Some(u) = uploads {
                    u.remove_input(&asset).await;
                }
                tracing::info!(asset = id, "asset deleted");
                let mut r = Response::new(Body::empty());
                *r.status_mut() = StatusCode::NO_CONTENT;
                r
            }
            Err(e) => unavailable(e),
        }
    }
}

/// An asset as the API shows it: the catalog's record, times as RFC 3339, and where it plays.
fn shown(a: &Asset) -> serde_json::Value {
    let mut v = serde_json::to_value(a).unwrap_or_default();
    v["created_at"] = rfc3339_ms(a.created_at).into();
    v["updated_at"] = rfc3339_ms(a.updated_at).into();
    // A live archive plays (as an EVENT playlist) while it is recorded; its MPD is written
    // when it ends.
    let recording = a.status == Status::Preparing && a.source == catalog::Source::Live;
    if a.status == Status::Ready || recording {
        v["hls"] = format!("/vod/{}/index.m3u8", a.id).into();
    }
    if a.status == Status::Ready {
        v["dash"] = format!("/vod/{}/manifest.mpd", a.id).into();
    }
    v
}

/// An input URL as one the server will fetch: `https://`, a host, no credentials in it, not
/// too long. (Where its host leads is checked when it is fetched.)
fn check_input_url(url: &str) -> Result<http::Uri, String> {
    if url.len() > MAX_URL {
        return Err(format!("a URL longer than {MAX_URL} characters"));
    }
    let uri: http::Uri = url.parse().map_err(|_| "not a URL".to_string())?;
    if uri.scheme_str() != Some("https") {
        return Err("only https:// URLs are fetched".into());
    }
    let Some(authority) = uri.authority() else {
        return Err("a URL without a host".into());
    };
    if authority.as_str().contains('@') {
        return Err("a URL with credentials in it (user:password@); use a signed URL".into());
    }
    Ok(uri)
}

/// The last part of a URL's path, as a default title (`clip.mp4`).
fn file_name(uri: &http::Uri) -> Option<String> {
    let last = uri.path().rsplit('/').next()?;
    let name = percent_decode(last).unwrap_or_else(|| last.to_string());
    (!name.is_empty()).then(|| name.chars().take(catalog::MAX_TITLE).collect())
}

/// A catalog time (Unix ms) as the API writes times (RFC 3339).
pub(crate) fn rfc3339_ms(ms: i64) -> String {
    packager::hls::rfc3339(
        std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64),
    )
}

fn filter(query: &str) -> Result<Filter, String> {
    let mut f = Filter::default();
    for (k, v) in query
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| kv.split_once('=').unwrap_or((kv, "")))
    {
        let v = percent_decode(v).ok_or_else(|| format!("{k}: not valid percent-encoded UTF-8"))?;
        match k {
            "status" => {
                f.status = Some(Status::parse(&v).ok_or_else(|| {
                    format!("status: {v:?} is none of waiting, preparing, ready, errored")
                })?)
            }
            "tag" => f.tag = Some(v),
            "passthrough" => f.passthrough = Some(v),
            "limit" => {
                f.limit = v
                    .parse()
                    .ok()
                    .filter(|l| (1..=Filter::MAX_LIMIT).contains(l))
                    .ok_or_else(|| format!("limit: a number from 1 to {}", Filter::MAX_LIMIT))?
            }
            "page" => {
                f.page = v
                    .parse()
                    .ok()
                    .filter(|p| (1..=1_000_000).contains(p))
                    .ok_or("page: a number from 1")?
            }
            // A playback token or a cache buster: not ours to refuse.
            _ => {}
        }
    }
    Ok(f)
}

/// `%XX` and `+` as a query string has them.
fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

fn missing(id: &str) -> Response<Body> {
    error(StatusCode::NOT_FOUND, &format!("no asset {id:?}"))
}

fn unavailable(e: catalog::Error) -> Response<Body> {
    tracing::warn!(error = %e, "the catalog did not answer");
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "the catalog did not answer",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_urls() {
        let ok = check_input_url("https://cdn.example.com/v/My%20clip.mp4?sig=1").unwrap();
        assert_eq!(file_name(&ok).as_deref(), Some("My clip.mp4"));
        assert_eq!(
            file_name(&check_input_url("https://example.com/").unwrap()),
            None
        );
        for bad in [
            "http://example.com/a.mp4",
            "file:///etc/passwd",
            "ftp://example.com/a",
            "https://user:pw@example.com/a.mp4",
            "https:///a.mp4",
            "not a url",
            "/relative.mp4",
        ] {
            assert!(check_input_url(bad).is_err(), "{bad}");
        }
        assert!(check_input_url(&format!("https://example.com/{}", "a".repeat(5000))).is_err());
    }

    #[test]
    fn queries() {
        let f = filter("status=ready&tag=a%20b&passthrough=x+y&limit=10&page=2&token=t").unwrap();
        assert_eq!(f.status, Some(Status::Ready));
        assert_eq!(f.tag.as_deref(), Some("a b"));
        assert_eq!(f.passthrough.as_deref(), Some("x y"));
        assert_eq!((f.limit, f.page), (10, 2));
        assert!(filter("status=done").is_err());
        assert!(filter("limit=0").is_err());
        assert!(filter("limit=101").is_err());
        assert!(filter("page=0").is_err());
        assert!(filter("tag=%ff").is_err(), "not UTF-8");
        assert!(filter("tag=%4").is_err(), "cut short");
        assert_eq!(filter("").unwrap().limit, 25);
    }
}
