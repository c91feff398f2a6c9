//! Archives (VOD) from archive storage: `/vod/{id}/...` files and the `/api/v1/vod` listing,
//! and what each archive says of itself (its stream, whether its playback is signed).

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Response, StatusCode};
use object_store::ObjectStoreExt;

use crate::access::carry;
use crate::body::Body;
use crate::response::{self, error, Cache};
use crate::route::plain_name;

/// How long an archive listing is reused (`GET /api/v1/vod`).
pub const VOD_LIST_TTL: Duration = Duration::from_secs(2);
/// Archives whose `meta.json` is remembered.
const REMEMBERED: usize = 4096;
/// Ids found missing are remembered this long (a flood of made-up ids costs one storage read
/// each per this time at most, not one per request), apart from the archives found.
const MISS_TTL: Duration = Duration::from_secs(5);
const MISSES: usize = 1024;

/// What an archive says of itself in its `meta.json`.
#[derive(Debug, serde::Deserialize)]
pub struct ArchiveInfo {
    /// The stream it recorded.
    pub name: String,
    /// Recorded while the stream's playback was signed.
    #[serde(default)]
    pub signed: bool,
}

pub struct Vod {
    store: packager::archive::Store,
    /// The last `/api/v1/vod` body and when it was made: a listing costs a LIST and a GET per
    /// archive on object storage, so it is made at most once per [`VOD_LIST_TTL`], and
    /// requests that arrive while it is being made wait for it.
    listing: tokio::sync::Mutex<Option<(Instant, Bytes)>>,
    /// `meta.json`s read (the name and policy never change once written).
    infos: Mutex<lru::LruCache<String, Arc<ArchiveInfo>>>,
    misses: Mutex<lru::LruCache<String, Instant>>,
}

impl Vod {
    pub fn new(store: packager::archive::Store) -> Self {
        Vod {
            store,
            listing: tokio::sync::Mutex::new(None),
            infos: Mutex::new(lru::LruCache::new(
                NonZeroUsize::new(REMEMBERED).expect("not zero"),
            )),
            misses: Mutex::new(lru::LruCache::new(
                NonZeroUsize::new(MISSES).expect("not zero"),
            )),
        }
    }

    /// Archive `id`'s stream and policy; `Ok(None)` when there is no such archive.
    pub async fn info(&self, id: &str) -> Result<Option<Arc<ArchiveInfo>>, Response<Body>> {
        if !plain_name(id) {
            return Ok(None);
        }
        if let Some(i) = self.infos.lock().unwrap().get(id) {
            return Ok(Some(i.clone()));
        }
        if self
            .misses
            .lock()
            .unwrap()
            .get(id)
            .is_some_and(|t| t.elapsed() < MISS_TTL)
        {
            return Ok(None);
        }
        let path = object_store::path::Path::from(format!("{id}/meta.json"));
        let read = match self.store.get(&path).await {
            Ok(got) => got.bytes().await,
            Err(e) => Err(e),
        };
        let data = match read {
            Ok(d) => d,
            Err(object_store::Error::NotFound { .. }) => {
                self.misses.lock().unwrap().put(id.into(), Instant::now());
                return Ok(None);
            }
            Err(e) => {
                tracing::warn!(error = %e, path = %path, "archive read failed");
                return Err(error(
                    StatusCode::BAD_GATEWAY,
                    "the archive storage did not answer",
                ));
            }
        };
        let Ok(info) = serde_json::from_slice::<ArchiveInfo>(&data) else {
            tracing::warn!(path = %path, "an archive's meta.json does not parse; served as missing");
            return Ok(None);
        };
        let info = Arc::new(info);
        self.infos.lock().unwrap().put(id.into(), info.clone());
        Ok(Some(info))
    }

    /// `GET /api/v1/vod`: the live archives, newest first (uploaded files packaged into the
    /// same store are assets only: `/api/v1/assets`).
    pub async fn list(&self) -> Response<Body> {
        let mut cached = self.listing.lock().await;
        let body = match &*cached {
            Some((made, body)) if made.elapsed() < VOD_LIST_TTL => body.clone(),
            _ => {
                let listed = match packager::archive::list(self.store.as_ref()).await {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot list the archive");
                        return error(
                            StatusCode::BAD_GATEWAY,
                            "the archive storage did not answer",
                        );
                    }
                };
                let mut list: Vec<serde_json::Value> = Vec::new();
                let live = listed
                    .into_iter()
                    .map(|l| l.meta)
                    .filter(|m| !packager::archive::is_file(m));
                for mut v in live {
                    let id = v["id"].as_str().unwrap_or_default().to_string();
                    v["playback"] = format!("/vod/{id}/index.m3u8").into();
                    v["dash"] = format!("/vod/{id}/manifest.mpd").into();
                    list.push(v);
                }
                list.sort_by(|a, b| b["started"].as_str().cmp(&a["started"].as_str()));
                let body = Bytes::from(serde_json::json!({ "archives": list }).to_string());
                *cached = Some((Instant::now(), body.clone()));
                body
            }
        };
        drop(cached);
        response::sized(Body::from(body), response::JSON, Cache::NoStore)
    }

    /// `/vod/{id}/...`: a file of an archive. `?start=SECONDS` on a playlist makes players
    /// start there (EXT-X-START; the multivariant passes it on to its media playlists);
    /// `token`, a playback token, is carried into the URLs of playlists and MPDs.
    pub async fn file(&self, rest: &[&str], query: &str, token: Option<&str>) -> Response<Body> {
        // Each segment one plain name (no `..`, no separators, no escapes).
        if rest.len() < 2
            || rest.len() > 3
            || !rest.iter().all(|p| plain_name(p))
            || rest[1] == "meta.json"
        {
            return error(StatusCode::NOT_FOUND, "not found");
        }
        let file = rest[rest.len() - 1];
        let (ctype, cache) = match file.rsplit('.').next() {
            Some("m3u8") => (response::PLAYLIST, Cache::MaxAge(1)),
            Some("mpd") => (response::MPD, Cache::MaxAge(1)),
            Some("m4s" | "mp4") => ("video/mp4", Cache::Immutable),
            _ => return error(StatusCode::NOT_FOUND, "not found"),
        };
        let path = object_store::path::Path::from(rest.join("/"));
        let data = match self.store.get(&path).await {
            Ok(got) => match got.bytes().await {
                Ok(b) => b,
                Err(_) => return error(StatusCode::BAD_GATEWAY, "reading the archive failed"),
            },
            Err(object_store::Error::NotFound { .. }) => {
                return error(StatusCode::NOT_FOUND, "no such archive file")
            }
            Err(e) => {
                tracing::warn!(error = %e, path = %path, "archive read failed");
                return error(
                    StatusCode::BAD_GATEWAY,
                    "the archive storage did not answer",
                );
            }
        };
        let start = query
            .split('&')
            .find_map(|kv| kv.strip_prefix("start="))
            .and_then(|v| v.parse::<f64>().ok())
            .filter(|v| v.is_finite() && *v >= 0.0);
        let data = match start {
            Some(t) if ctype == response::PLAYLIST => Bytes::from(with_start(&data, t)),
            _ => data,
        };
        let data = match token {
            Some(t) if ctype == response::PLAYLIST || ctype == response::MPD => {
                let text = String::from_utf8_lossy(&data);
                let query = format!("token={t}");
                Bytes::from(match ctype {
                    response::PLAYLIST => carry::hls(&text, &query),
                    _ => carry::mpd(&text, &query),
                })
            }
            _ => data,
        };
        response::sized(Body::from(data), ctype, cache)
    }
}

/// A playlist that starts playback at `t` seconds: EXT-X-START after the header, and the same
/// `?start=` on the playlists it links (a multivariant's variants and renditions).
fn with_start(playlist: &[u8], t: f64) -> String {
    let text = String::from_utf8_lossy(playlist);
    let mut out = String::with_capacity(text.len() + 64);
    for (i, line) in text.lines().enumerate() {
        if line.ends_with(".m3u8") && !line.starts_with('#') {
            out.push_str(&format!("{line}?start={t}\n"));
        } else if line.starts_with("#EXT-X-MEDIA:") && line.contains(".m3u8\"") {
            out.push_str(&line.replace(".m3u8\"", &format!(".m3u8?start={t}\"")));
            out.push('\n');
        } else {
            out.push_str(line);
            out.push('\n');
        }
        if i == 0 {
            out.push_str(&format!("#EXT-X-START:TIME-OFFSET={t},PRECISE=YES\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use object_store::ObjectStore;
    use std::sync::Arc;

    async fn put_meta(store: &dyn ObjectStore, id: &str, started: &str) {
        let meta = serde_json::json!({ "id": id, "name": "s", "started": started });
        store
            .put(
                &object_store::path::Path::from(format!("{id}/meta.json")),
                Bytes::from(meta.to_string()).into(),
            )
            .await
            .unwrap();
    }

    async fn ids(vod: &Vod) -> Vec<String> {
        let resp = vod.list().await;
        assert_eq!(resp.status(), StatusCode::OK);
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        v["archives"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["id"].as_str().unwrap().to_string())
            .collect()
    }

    /// A listing is reused for a moment (object storage charges a request per archive), then
    /// made again: a new archive shows up within the TTL.
    #[tokio::test]
    async fn the_archive_listing_is_reused_briefly_then_remade() {
        let store: packager::archive::Store = Arc::new(object_store::memory::InMemory::new());
        put_meta(store.as_ref(), "a1", "2026-11-22T07:00:00Z").await;
        let vod = Vod::new(store.clone());
        assert_eq!(ids(&vod).await, ["a1"]);
        put_meta(store.as_ref(), "a2", "2026-11-22T07:01:00Z").await;
        assert_eq!(ids(&vod).await, ["a1"], "the listing is reused");
        tokio::time::sleep(VOD_LIST_TTL + Duration::from_millis(100)).await;
        assert_eq!(ids(&vod).await, ["a2", "a1"], "newest first, once remade");
    }

    #[test]
    fn start_offsets_pass_to_linked_playlists() {
        let m = "#EXTM3U\n#EXT-X-MEDIA:TYPE=AUDIO,URI=\"audio/index.m3u8\"\nvideo/index.m3u8\n";
        let out = with_start(m.as_bytes(), 12.5);
        assert_eq!(
            out,
            "#EXTM3U\n#EXT-X-START:TIME-OFFSET=12.5,PRECISE=YES\n#EXT-X-MEDIA:TYPE=AUDIO,URI=\"audio/index.m3u8?start=12.5\"\nvideo/index.m3u8?start=12.5\n"
        );
    }
}
