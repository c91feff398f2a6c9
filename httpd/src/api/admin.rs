//! Managing streams at runtime (API token required): create one (its key is answered once),
//! delete it, rotate its key, kick its publisher; and minting playback and viewer tokens.
//! The streams themselves are kept by the binary behind [`StreamAdmin`] (which knows the
//! ingest side and where created streams persist).
//!
//! | method and path | body | answer |
//! | --- | --- | --- |
//! | `POST /api/v1/streams` | `{"name", "playback"?: "public"\|"signed"}` | `201` `{"name", "key", "playback"}` |
//! | `DELETE /api/v1/streams/{name}` | | `204` (its publisher is kicked) |
//! | `POST /api/v1/streams/{name}/key` | | `200` `{"name", "key"}` (the old key stops working) |
//! | `POST /api/v1/streams/{name}/kick` | | `204`, `409` when nobody publishes |
//! | `POST /api/v1/streams/{name}/tokens` | `{"aud"?: "live"\|"vod", "ttl_secs"?, "ip"?}` | `200` `{"token", "expires"}` |
//! | `POST /api/v1/viewers/{viewer}/tokens` | `{"ttl_secs"?}` | `200` `{"token", "expires"}` (for the resume API) |

use std::net::IpAddr;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use serde::{Deserialize, Serialize};

use crate::access::{Audience, Claims, Playback};
use crate::body::Body;
use crate::response::{self, error, json, Cache};
use crate::route::plain_name;

/// The longest a minted token may live (a day by default, a year at most).
const MAX_TTL: u64 = 365 * 24 * 3600;
const DEFAULT_TTL: u64 = 24 * 3600;

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("a stream named {0:?} exists already")]
    Exists(String),
    #[error("no stream named {0:?}")]
    NotFound(String),
    #[error("stream {0:?} is configured in the config file; change it there")]
    Configured(String),
    #[error("nobody publishes to stream {0:?}")]
    NotLive(String),
    #[error("{0}")]
    Invalid(String),
    #[error("could not keep the change: {0}")]
    Store(String),
}

impl AdminError {
    fn status(&self) -> StatusCode {
        match self {
            AdminError::Exists(_) | AdminError::Configured(_) | AdminError::NotLive(_) => {
                StatusCode::CONFLICT
            }
            AdminError::NotFound(_) => StatusCode::NOT_FOUND,
            AdminError::Invalid(_) => StatusCode::BAD_REQUEST,
            AdminError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

/// A stream to create.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewStream {
    pub name: String,
    /// `"signed"`: viewers need a token (default: the node's `[playback] default`).
    #[serde(default)]
    pub playback: Option<PlaybackPolicy>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PlaybackPolicy {
    Public,
    Signed,
}

/// A created stream, with its key (shown this once).
#[derive(Debug, Serialize)]
pub struct Created {
    pub name: String,
    pub key: String,
    pub playback: PlaybackPolicy,
}

pub type AdminFuture<'a, T> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<T, AdminError>> + Send + 'a>>;

/// The node's streams, as the API changes them (kept where the binary keeps them: the data
/// directory, or Redis).
pub trait StreamAdmin: Send + Sync + 'static {
    fn create(&self, new: NewStream) -> AdminFuture<'_, Created>;
    /// Deletes a created stream (its key stops working, its publisher is kicked).
    fn delete<'a>(&'a self, name: &'a str) -> AdminFuture<'a, ()>;
    /// A new key for `name`; the old one stops working.
    fn rotate<'a>(&'a self, name: &'a str) -> AdminFuture<'a, String>;
    /// Ends the publisher of `name` (it may come back with a valid key).
    fn kick(&self, name: &str) -> Result<(), AdminError>;
}

/// What the admin routes need.
pub struct Admin<'a> {
    pub streams: Option<&'a dyn StreamAdmin>,
    pub playback: &'a Playback,
}

fn failed(e: AdminError) -> Response<Body> {
    error(e.status(), &e.to_string())
}

fn no_admin() -> Response<Body> {
    error(
        StatusCode::NOT_FOUND,
        "streams are managed on the origin, not here",
    )
}

/// A JSON body of at most 4 KiB (an empty one is `{}`).
pub(crate) async fn body_json<T, B>(req: Request<B>) -> Result<T, Response<Body>>
where
    T: serde::de::DeserializeOwned,
    B: http_body::Body + Send,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let bytes: Bytes = match http_body_util::Limited::new(req.into_body(), 4096)
        .collect()
        .await
    {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            return Err(error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "a JSON body of at most 4 KiB",
            ))
        }
    };
    let bytes = if bytes.iter().all(u8::is_ascii_whitespace) {
        Bytes::from_static(b"{}")
    } else {
        bytes
    };
    serde_json::from_slice(&bytes)
        .map_err(|e| error(StatusCode::BAD_REQUEST, &format!("the JSON body: {e}")))
}

/// `POST /api/v1/streams`
pub async fn create<B>(admin: Admin<'_>, req: Request<B>) -> Response<Body>
where
    B: http_body::Body + Send,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let Some(streams) = admin.streams else {
        return no_admin();
    };
    let new: NewStream = match body_json(req).await {
        Ok(n) => n,
        Err(r) => return r,
    };
    if !plain_name(&new.name) {
        return error(
            StatusCode::BAD_REQUEST,
            "name: letters, digits, '-', '_' and '.', not starting with '.'",
        );
    }
    match streams.create(new).await {
        Ok(c) => {
            let mut r = response::sized(
                Body::from(serde_json::to_string(&c).expect("serializes")),
                response::JSON,
                Cache::NoStore,
            );
            *r.status_mut() = StatusCode::CREATED;
            r
        }
        Err(e) => failed(e),
    }
}

/// `DELETE /api/v1/streams/{name}`
pub async fn delete(admin: Admin<'_>, name: &str) -> Response<Body> {
    let Some(streams) = admin.streams else {
        return no_admin();
    };
    match streams.delete(name).await {
        Ok(()) => no_content(),
        Err(e) => failed(e),
    }
}

/// `POST /api/v1/streams/{name}/key`
pub async fn rotate(admin: Admin<'_>, name: &str) -> Response<Body> {
    let Some(streams) = admin.streams else {
        return no_admin();
    };
    match streams.rotate(name).await {
        Ok(key) => json(&serde_json::json!({ "name": name, "key": key })),
        Err(e) => failed(e),
    }
}

/// `POST /api/v1/streams/{name}/kick`
pub fn kick(admin: Admin<'_>, name: &str) -> Response<Body> {
    let Some(streams) = admin.streams else {
        return no_admin();
    };
    match streams.kick(name) {
        Ok(()) => no_content(),
        Err(e) => failed(e),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenRequest {
    #[serde(default)]
    aud: Option<Audience>,
    #[serde(default)]
    ttl_secs: Option<u64>,
    #[serde(default)]
    ip: Option<IpAddr>,
}

/// `POST /api/v1/streams/{name}/tokens` (`aud` live or vod) and
/// `POST /api/v1/viewers/{viewer}/tokens` (`viewer`: true, aud viewer).
pub async fn mint<B>(admin: Admin<'_>, sub: &str, viewer: bool, req: Request<B>) -> Response<Body>
where
    B: http_body::Body + Send,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    if !plain_name(sub) {
        return error(StatusCode::BAD_REQUEST, "not a valid name");
    }
    let asked: TokenRequest = match body_json(req).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    let aud = match (viewer, asked.aud) {
        (true, _) => Audience::Viewer,
        (false, None) => Audience::Live,
        (false, Some(a @ (Audience::Live | Audience::Vod))) => a,
        (false, Some(_)) => return error(StatusCode::BAD_REQUEST, "aud: \"live\" or \"vod\""),
    };
    let ttl = asked.ttl_secs.unwrap_or(DEFAULT_TTL).clamp(1, MAX_TTL);
    let exp = jsonwebtoken::get_current_timestamp() + ttl;
    let claims = Claims {
        sub: sub.to_string(),
        aud: vec![aud],
        exp,
        nbf: None,
        ip: asked.ip,
    };
    match admin.playback.verifier().and_then(|v| v.mint(&claims)) {
        Some(token) => json(&serde_json::json!({
            "token": token,
            "expires": packager::hls::rfc3339(std::time::UNIX_EPOCH + std::time::Duration::from_secs(exp)),
        })),
        None => error(
            StatusCode::CONFLICT,
            "no [playback] hs256_secrets here to sign tokens with",
        ),
    }
}

fn no_content() -> Response<Body> {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = StatusCode::NO_CONTENT;
    r
}
