//! Viewers' resume positions: `PUT /api/v1/resume/{asset}` with a position in seconds, `GET`
//! to read it back; the viewer is the one a viewer token names (minted by the API, or by the
//! operator's auth service with the `[playback]` keys), never a path anyone could write.
//! Kept in memory and in a JSON file in the data directory (written to a temporary file and
//! renamed), so positions survive a restart; or, with `[redis] url`, in Redis
//! (`estuary:resume:{viewer}:{asset}`), shared by the origin and every edge. Either way a
//! position is kept a year after its last write. A store that does not answer gives `503`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use replica::RedisClient;
use serde::{Deserialize, Serialize};

use crate::body::Body;
use crate::response::{error, json};
use crate::route::plain_name;

/// How long a position is kept in Redis after it was last written (a year: "continue
/// watching" outlives a season, and abandoned viewers do not grow Redis for ever).
pub const KEEP: std::time::Duration = std::time::Duration::from_secs(365 * 24 * 3600);

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Position {
    /// Seconds from the asset's start.
    pub position: f64,
    /// When it was stored (RFC 3339).
    pub updated: String,
    /// The same, in seconds since the Unix epoch (for expiry; 0 in files of older versions).
    #[serde(default)]
    pub stored: u64,
}

fn epoch_secs() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Drops positions not written for [`KEEP`].
fn expire(map: &mut HashMap<String, Position>) {
    let now = epoch_secs();
    map.retain(|_, p| p.stored == 0 || p.stored + KEEP.as_secs() > now);
}

#[derive(Clone)]
pub struct ResumeStore {
    inner: Arc<Inner>,
}

struct Inner {
    /// Positions live in Redis instead of the file.
    redis: Option<RedisClient>,
    path: PathBuf,
    map: Mutex<HashMap<String, Position>>,
    /// Serializes file writes (the newest map always ends up on disk).
    write: tokio::sync::Mutex<()>,
}

impl ResumeStore {
    /// Opens (or starts) the store kept in `path`.
    pub fn open(path: PathBuf) -> Self {
        let mut map = std::fs::read_to_string(&path)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default();
        expire(&mut map);
        ResumeStore {
            inner: Arc::new(Inner {
                redis: None,
                path,
                map: Mutex::new(map),
                write: tokio::sync::Mutex::new(()),
            }),
        }
    }

    /// A store kept in Redis (shared by the origin and its edges).
    pub fn redis(client: RedisClient) -> Self {
        ResumeStore {
            inner: Arc::new(Inner {
                redis: Some(client),
                path: PathBuf::new(),
                map: Mutex::new(HashMap::new()),
                write: tokio::sync::Mutex::new(()),
            }),
        }
    }

    async fn redis_get(
        client: &RedisClient,
        viewer: &str,
        asset: &str,
    ) -> std::io::Result<Option<Position>> {
        let mut c = client.shared().await.map_err(std::io::Error::other)?;
        let text: Option<String> =
            match redis::AsyncCommands::get(&mut c, Self::redis_key(viewer, asset)).await {
                Ok(t) => t,
                Err(e) => {
                    client.reset_shared().await;
                    return Err(std::io::Error::other(e));
                }
            };
        Ok(text.and_then(|t| serde_json::from_str(&t).ok()))
    }

    fn redis_key(viewer: &str, asset: &str) -> String {
        format!("estuary:resume:{viewer}:{asset}")
    }

    fn key(viewer: &str, asset: &str) -> String {
        format!("{viewer}/{asset}")
    }

    /// The position, if one is stored; an error when the store does not answer.
    pub async fn get(&self, viewer: &str, asset: &str) -> std::io::Result<Option<Position>> {
        if let Some(client) = &self.inner.redis {
            return Self::redis_get(client, viewer, asset).await;
        }
        Ok(self
            .inner
            .map
            .lock()
            .unwrap()
            .get(&Self::key(viewer, asset))
            .cloned())
    }

    pub async fn put(&self, viewer: &str, asset: &str, position: f64) -> std::io::Result<Position> {
        let p = Position {
            position,
            updated: packager::hls::rfc3339(SystemTime::now()),
            stored: epoch_secs(),
        };
        if let Some(client) = &self.inner.redis {
            let mut c = client.shared().await.map_err(std::io::Error::other)?;
            let text = serde_json::to_string(&p).map_err(std::io::Error::other)?;
            let key = Self::redis_key(viewer, asset);
            let set: redis::RedisResult<()> =
                redis::AsyncCommands::set_ex(&mut c, key, text, KEEP.as_secs()).await;
            if let Err(e) = set {
                client.reset_shared().await;
                return Err(std::io::Error::other(e));
            }
            return Ok(p);
        }
        {
            let mut map = self.inner.map.lock().unwrap();
            map.insert(Self::key(viewer, asset), p.clone());
            expire(&mut map);
        }
        let _guard = self.inner.write.lock().await;
        let text = serde_json::to_string(&*self.inner.map.lock().unwrap())
            .map_err(std::io::Error::other)?;
        let tmp = self.inner.path.with_extension("tmp");
        tokio::fs::write(&tmp, text).await?;
        tokio::fs::rename(&tmp, &self.inner.path).await?;
        Ok(p)
    }
}

/// `GET /api/v1/resume/{asset}` for the token's viewer.
pub async fn get(store: &ResumeStore, viewer: &str, asset: &str) -> Response<Body> {
    match store.get(viewer, asset).await {
        Ok(Some(p)) => json(&serde_json::json!(p)),
        Ok(None) => error(StatusCode::NOT_FOUND, "no position stored"),
        Err(e) => {
            tracing::warn!(error = %e, "could not read a resume position");
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the resume store does not answer; try again",
            )
        }
    }
}

/// `PUT /api/v1/resume/{asset}` with `{"position": SECONDS}`, for the token's viewer.
pub async fn put<B>(
    store: &ResumeStore,
    viewer: &str,
    asset: &str,
    req: Request<B>,
) -> Response<Body>
where
    B: http_body::Body + Send,
    B::Data: Send,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    if !plain_name(viewer) || !plain_name(asset) {
        return error(
            StatusCode::BAD_REQUEST,
            "viewer and asset ids: letters, digits, '-', '_', '.'",
        );
    }
    let body = match http_body_util::Limited::new(req.into_body(), 1024)
        .collect()
        .await
    {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "send {\"position\": SECONDS}",
            )
        }
    };
    let Some(position) = parse_position(&body) else {
        return error(
            StatusCode::BAD_REQUEST,
            "send {\"position\": SECONDS} (a number >= 0)",
        );
    };
    match store.put(viewer, asset, position).await {
        Ok(p) => json(&serde_json::json!(p)),
        Err(e) => {
            tracing::warn!(error = %e, "could not store a resume position");
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "could not store the position",
            )
        }
    }
}

/// The position in a `PUT` body: `{"position": 12.5}` or a bare number.
pub fn parse_position(body: &[u8]) -> Option<f64> {
    let text = std::str::from_utf8(body).ok()?.trim();
    let v = match serde_json::from_str::<serde_json::Value>(text).ok()? {
        serde_json::Value::Object(o) => o.get("position")?.as_f64()?,
        serde_json::Value::Number(n) => n.as_f64()?,
        _ => return None,
    };
    (v.is_finite() && v >= 0.0).then_some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies() {
        assert_eq!(parse_position(b"{\"position\": 12.5}"), Some(12.5));
        assert_eq!(parse_position(b" 7 "), Some(7.0));
        assert_eq!(parse_position(b"-1"), None);
        assert_eq!(parse_position(b"{\"pos\": 1}"), None);
        assert_eq!(parse_position(b"nope"), None);
    }

    #[tokio::test]
    async fn positions_survive_reopening() {
        let path = std::env::temp_dir().join(format!("estuary-resume-{}.json", std::process::id()));
        let s = ResumeStore::open(path.clone());
        s.put("v", "a", 42.0).await.unwrap();
        let again = ResumeStore::open(path.clone());
        assert_eq!(
            again.get("v", "a").await.unwrap().map(|p| p.position),
            Some(42.0)
        );
        assert!(again.get("v", "b").await.unwrap().is_none());
        let _ = std::fs::remove_file(path);
    }
}
