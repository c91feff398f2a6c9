//! The edge's HTTP way to the origins: a caching, coalescing reverse proxy for the viewer
//! routes (`/live/...`, `/vod/...`, `/api/v1/vod`).
//!
//! An edge serves a live stream from its Redis replica when it has one; anything it does not
//! hold (Redis unreachable, an origin that does not mirror, a VOD archive on the origin's disk)
//! is fetched from the configured origins over HTTP:
//!
//! - **Coalescing**: however many viewers ask for the same URL at once (a part behind a
//!   preload hint, a blocking playlist reload for the next part, a segment still being
//!   written), one request goes upstream; every waiting viewer gets the response as it arrives,
//!   chunk by chunk (a growing LL-DASH segment streams to all of them while the origin writes it).
//! - **Cache**: responses the origin marks cacheable (`Cache-Control: max-age`, no `no-store`)
//!   are kept for their max-age in a least-recently-used cache bounded by bytes; media is
//!   immutable, so parts and segments stay until evicted, playlists for about a second.
//! - **Origins**: tried in turn from a rotating start; one that refuses connections is skipped
//!   for a few seconds; a 404 from one origin asks the next (each origin owns the streams
//!   published to it). Errors and 404s are not cached.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http::{header, HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Empty};
use tokio::sync::watch;
use tracing::{debug, warn};

use crate::body::Body;

/// How long an origin that refused a connection is left alone.
const DOWN_FOR: Duration = Duration::from_secs(3);
/// A response head must come within this (blocking reloads wait up to 3 target durations
/// at the origin before it answers 503).
const HEAD_TIMEOUT: Duration = Duration::from_secs(30);
/// ... and the body must not stall longer than this between chunks.
const CHUNK_TIMEOUT: Duration = Duration::from_secs(30);
/// Nothing stays in the cache longer than this, whatever the origin says.
const MAX_TTL: Duration = Duration::from_secs(24 * 3600);
/// Query parameters that change what the origin answers; others are dropped (a made-up
/// parameter must not get past the cache and the coalescing).
const QUERY_KEPT: [&str; 4] = ["_HLS_msn", "_HLS_part", "_HLS_skip", "start"];

/// Response headers passed on to viewers; everything else (hop-by-hop, CORS, lengths) is the
/// edge's own.
const PASSED: [HeaderName; 8] = [
    header::CONTENT_TYPE,
    header::CONTENT_LENGTH,
    header::CACHE_CONTROL,
    header::CONTENT_ENCODING,
    header::ETAG,
    header::LAST_MODIFIED,
    header::VARY,
    header::EXPIRES,
];

/// A path as logs may show it: without its query (which may hold a playback token).
fn logged(path: &str) -> &str {
    path.split('?').next().unwrap_or(path)
}

/// What a viewer's request brings that the origin needs to hear, checked by this edge.
#[derive(Clone, Copy, Debug, Default)]
pub struct Viewer<'a> {
    /// The host and scheme a trusted proxy says the viewer asked for.
    pub forwarded: (Option<&'a str>, Option<&'a str>),
    /// A playback token this edge verified for what is asked (sent on as `?token=`).
    pub token: Option<&'a str>,
    /// The viewer's address (sent on as `X-Forwarded-For` with a token, for tokens bound to
    /// an address; the origin must list its edges in `trusted_proxies`).
    pub client: Option<std::net::IpAddr>,
}

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("origin URL {0:?}: give scheme and host, like http://origin:8080 or https://origin")]
    BadOrigin(String),
    #[error("the client for the origins: {0}")]
    Client(#[from] crate::client::ClientError),
    #[error("no origins configured")]
    NoOrigins,
}

/// Counters for `/api/v1/edge`.
#[derive(Debug, Default)]
pub struct UpstreamStats {
    /// Requests sent to an origin.
    pub fetches: AtomicU64,
    /// Viewer requests answered from the cache.
    pub hits: AtomicU64,
    /// Viewer requests that joined a fetch already on its way.
    pub coalesced: AtomicU64,
    /// Fetches no origin answered.
    pub failures: AtomicU64,
}

#[derive(Clone)]
pub struct Upstream {
    inner: Arc<Inner>,
}

struct Inner {
    origins: Vec<Origin>,
    client: crate::client::HttpsClient,
    next: AtomicUsize,
    cache: Mutex<Cache>,
    inflight: Mutex<HashMap<String, Arc<Fetch>>>,
    stats: UpstreamStats,
}

struct Origin {
    /// `scheme://authority`, no trailing slash.
    base: String,
    down_until: Mutex<Option<Instant>>,
}

#[derive(Clone)]
struct Head {
    status: StatusCode,
    headers: HeaderMap,
}

/// One request on its way upstream, shared by every viewer who asked for it meanwhile.
struct Fetch {
    state: Mutex<FetchState>,
    changed: watch::Sender<()>,
}

#[derive(Default)]
struct FetchState {
    head: Option<Head>,
    chunks: Vec<Bytes>,
    /// `Some(true)`: the whole body is in `chunks`; `Some(false)`: it broke off.
    done: Option<bool>,
}

struct Cached {
    head: Head,
    body: Bytes,
    stored: Instant,
    expires: Instant,
}

/// Least recently used first out, bounded by the bytes of the bodies it holds.
struct Cache {
    map: lru::LruCache<String, Cached>,
    bytes: usize,
    cap: usize,
}

impl Cache {
    fn get(&mut self, key: &str, now: Instant) -> Option<(Head, Bytes, Duration)> {
        let fresh = self.map.get(key).map(|c| c.expires > now)?;
        if !fresh {
            if let Some(c) = self.map.pop(key) {
                self.bytes -= c.body.len();
            }
            return None;
        }
        let c = self.map.get(key)?;
        Some((c.head.clone(), c.body.clone(), now - c.stored))
    }

    fn insert(&mut self, key: String, c: Cached) {
        let len = c.body.len();
        if len > self.cap / 4 {
            return; // one response may not push out most of the cache
        }
        if let Some(old) = self.map.put(key, c) {
            self.bytes -= old.body.len();
        }
        self.bytes += len;
        while self.bytes > self.cap {
            match self.map.pop_lru() {
                Some((_, old)) => self.bytes -= old.body.len(),
                None => break,
            }
        }
    }
}

impl Upstream {
    /// `origins`: base URLs (`http://origin:8080`, `https://origin`); `cache_bytes`: the
    /// cache's bound; `extra_ca`: PEM files of CAs to trust for HTTPS origins besides the
    /// system's (an origin's own certificate authority).
    pub fn new(
        origins: &[String],
        cache_bytes: usize,
        extra_ca: &[&std::path::Path],
    ) -> Result<Self, UpstreamError> {
        if origins.is_empty() {
            return Err(UpstreamError::NoOrigins);
        }
        let origins = origins
            .iter()
            .map(|o| {
                let uri: Uri = o.parse().map_err(|_| UpstreamError::BadOrigin(o.clone()))?;
                match (uri.scheme_str(), uri.authority()) {
                    (Some(scheme @ ("http" | "https")), Some(a)) => Ok(Origin {
                        base: format!("{scheme}://{a}"),
                        down_until: Mutex::new(None),
                    }),
                    _ => Err(UpstreamError::BadOrigin(o.clone())),
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        let client = crate::client::build(extra_ca)?;
        Ok(Upstream {
            inner: Arc::new(Inner {
                origins,
                client,
                next: AtomicUsize::new(0),
                cache: Mutex::new(Cache {
                    map: lru::LruCache::unbounded(),
                    bytes: 0,
                    cap: cache_bytes.max(1),
                }),
                inflight: Mutex::new(HashMap::new()),
                stats: UpstreamStats::default(),
            }),
        })
    }

    pub fn stats(&self) -> &UpstreamStats {
        &self.inner.stats
    }

    /// Bytes and entries in the cache.
    pub fn cache_usage(&self) -> (usize, usize) {
        let c = self.inner.cache.lock().unwrap();
        (c.bytes, c.map.len())
    }

    /// Answers a viewer's GET for `path_and_query` from the cache, a fetch already on its way,
    /// or a new fetch. `headers` are the viewer's (for `Accept-Encoding` and the host the MPD
    /// names in its UTCTiming); `viewer`: what else the origin hears of the viewer; `tls`:
    /// this edge serves viewers over HTTPS (for the MPD's time URL).
    ///
    /// A playback token goes on to the origin, and is part of the cache key of what the origin
    /// writes it into (playlists, MPDs, archives' files); live media is the same bytes for
    /// every viewer of the stream, so it is cached once (each viewer's token was checked here).
    pub async fn get(
        &self,
        path_and_query: &str,
        headers: &HeaderMap,
        viewer: Viewer<'_>,
        tls: bool,
    ) -> Response<Body> {
        let (path, query) = path_and_query
            .split_once('?')
            .unwrap_or((path_and_query, ""));
        let query: Vec<&str> = query
            .split('&')
            .filter(|kv| QUERY_KEPT.contains(&kv.split('=').next().unwrap_or("")))
            .collect();
        let mut path_and_query = if query.is_empty() {
            path.to_string()
        } else {
            format!("{path}?{}", query.join("&"))
        };
        let shared_media =
            path.starts_with("/live/") && (path.ends_with(".m4s") || path.ends_with(".mp4"));
        // The cache key: live media without the token; everything else with it.
        let mut key_path = path_and_query.clone();
        if let Some(t) = viewer.token {
            let sep = if path_and_query.contains('?') {
                '&'
            } else {
                '?'
            };
            path_and_query = format!("{path_and_query}{sep}token={t}");
            if !shared_media {
                key_path.clone_from(&path_and_query);
            }
        }
        let path_and_query = path_and_query.as_str();
        // Only playlists, MPDs and JSON are compressed; media has one cache entry.
        let text = [".m3u8", ".mpd", "/vod"].iter().any(|e| path.ends_with(e));
        let gzip = text && crate::response::accepts_gzip(headers);
        let mut forward = HeaderMap::new();
        if gzip {
            forward.insert(header::ACCEPT_ENCODING, HeaderValue::from_static("gzip"));
        }
        let mut key = format!("{}{key_path}", if gzip { "gz " } else { "" });
        if let (Some(_), Some(ip)) = (viewer.token, viewer.client) {
            if let Ok(v) = HeaderValue::from_str(&ip.to_string()) {
                forward.insert(HeaderName::from_static("x-forwarded-for"), v);
            }
        }
        // The API's token goes on to the origin (which takes the same tokens); such answers
        // are not cached (no-store), and the token is part of the coalescing key.
        if path.starts_with("/api/") {
            if let Some(v) = headers.get(header::AUTHORIZATION) {
                forward.insert(header::AUTHORIZATION, v.clone());
                key.push_str(" auth ");
                key.push_str(v.to_str().unwrap_or(""));
            }
        }
        // The MPD names this host's /api/v1/time: cached per host asked.
        if path.ends_with(".mpd") {
            let (host, proto) = viewer.forwarded;
            let proto = proto.or(tls.then_some("https"));
            let host = host.or_else(|| headers.get(header::HOST)?.to_str().ok());
            for (name, v) in [("x-forwarded-host", host), ("x-forwarded-proto", proto)] {
                if let Some(v) = v.and_then(|v| HeaderValue::from_str(v).ok()) {
                    forward.insert(HeaderName::from_static(name), v);
                }
            }
            for v in forward.values() {
                key.push(' ');
                key.push_str(v.to_str().unwrap_or(""));
            }
        }

        let now = Instant::now();
        if let Some((head, body, age)) = self.inner.cache.lock().unwrap().get(&key, now) {
            self.inner.stats.hits.fetch_add(1, Ordering::Relaxed);
            let mut r = respond(&head, Body::from(body));
            r.headers_mut()
                .insert(header::AGE, HeaderValue::from(age.as_secs()));
            return r;
        }
        let (fetch, lead) = {
            let mut inflight = self.inner.inflight.lock().unwrap();
            match inflight.get(&key) {
                Some(f) => (f.clone(), false),
                None => {
                    let f = Arc::new(Fetch {
                        state: Mutex::new(FetchState::default()),
                        changed: watch::channel(()).0,
                    });
                    inflight.insert(key.clone(), f.clone());
                    (f, true)
                }
            }
        };
        if lead {
            let this = self.clone();
            let (f, path) = (fetch.clone(), path_and_query.to_string());
            tokio::spawn(async move { this.run(f, key, path, forward).await });
        } else {
            self.inner.stats.coalesced.fetch_add(1, Ordering::Relaxed);
        }
        follow(fetch).await
    }

    /// Fetches for everyone who joins `fetch`, then caches what may be cached. However it
    /// ends, the fetch is finished and leaves the in-flight map (nobody waits forever).
    async fn run(&self, fetch: Arc<Fetch>, key: String, path: String, forward: HeaderMap) {
        /// Finishes the fetch when dropped: `ok` once the whole body is in (and cached),
        /// a failure on any other way out, a panic included.
        struct Finish<'a> {
            up: &'a Upstream,
            fetch: &'a Fetch,
            key: &'a str,
            ok: bool,
        }
        impl Drop for Finish<'_> {
            fn drop(&mut self) {
                self.up.inner.inflight.lock().unwrap().remove(self.key);
                self.fetch.state.lock().unwrap().done = Some(self.ok);
                self.fetch.changed.send_replace(());
            }
        }
        let mut finish = Finish {
            up: self,
            fetch: &fetch,
            key: &key,
            ok: false,
        };
        let Some(resp) = self.request(&path, &forward).await else {
            self.inner.stats.failures.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let (parts, mut body) = resp.into_parts();
        let head = Head {
            status: parts.status,
            headers: parts.headers,
        };
        fetch.state.lock().unwrap().head = Some(head.clone());
        fetch.changed.send_replace(());
        let ok = loop {
            match tokio::time::timeout(CHUNK_TIMEOUT, body.frame()).await {
                Ok(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        if !data.is_empty() {
                            fetch.state.lock().unwrap().chunks.push(data);
                            fetch.changed.send_replace(());
                        }
                    }
                }
                Ok(None) => break true,
                Ok(Some(Err(e))) => {
                    debug!(path = logged(&path), error = %e, "origin response broke off");
                    break false;
                }
                Err(_) => {
                    warn!(path = logged(&path), "origin response stalled; cut");
                    break false;
                }
            }
        };
        if ok {
            if let Some(ttl) = cacheable(&head) {
                let body = {
                    let st = fetch.state.lock().unwrap();
                    // One contiguous copy per cached response: chunks can pin larger
                    // receive buffers, and the cache counts what it really holds.
                    let mut b = BytesMut::with_capacity(st.chunks.iter().map(|c| c.len()).sum());
                    for c in &st.chunks {
                        b.extend_from_slice(c);
                    }
                    b.freeze()
                };
                let now = Instant::now();
                self.inner.cache.lock().unwrap().insert(
                    key.clone(),
                    Cached {
                        head,
                        body,
                        stored: now,
                        expires: now + ttl,
                    },
                );
            }
        }
        finish.ok = ok;
    }

    /// Sends the GET to the origins in turn; the first useful answer.
    async fn request(
        &self,
        path: &str,
        forward: &HeaderMap,
    ) -> Option<Response<hyper::body::Incoming>> {
        let n = self.inner.origins.len();
        let start = self.inner.next.fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        // Origins known to be down go last, not never: they may be back.
        let mut order: Vec<&Origin> = (0..n)
            .map(|i| &self.inner.origins[(start + i) % n])
            .collect();
        order.sort_by_key(|o| o.down_until.lock().unwrap().is_some_and(|t| t > now));
        let mut last_404 = None;
        for origin in order {
            let uri = format!("{}{path}", origin.base);
            let mut req = Request::get(&uri).body(Empty::new()).ok()?;
            req.headers_mut().extend(forward.clone());
            self.inner.stats.fetches.fetch_add(1, Ordering::Relaxed);
            match tokio::time::timeout(HEAD_TIMEOUT, self.inner.client.request(req)).await {
                Ok(Ok(resp)) if resp.status() == StatusCode::NOT_FOUND && n > 1 => {
                    last_404 = Some(resp);
                }
                Ok(Ok(resp)) => {
                    *origin.down_until.lock().unwrap() = None;
                    return Some(resp);
                }
                Ok(Err(e)) => {
                    if e.is_connect() {
                        *origin.down_until.lock().unwrap() = Some(Instant::now() + DOWN_FOR);
                    }
                    debug!(origin = %origin.base, path = logged(path), error = %e, "origin request failed");
                }
                Err(_) => {
                    debug!(origin = %origin.base, path = logged(path), "origin did not answer in time")
                }
            }
        }
        if last_404.is_none() {
            warn!(path = logged(path), "no origin answered");
        }
        last_404
    }
}

/// Waits for the fetch's head, then streams its body as it arrives.
async fn follow(fetch: Arc<Fetch>) -> Response<Body> {
    let mut rx = fetch.changed.subscribe();
    loop {
        {
            let st = fetch.state.lock().unwrap();
            match (&st.head, st.done) {
                (Some(head), Some(true)) => {
                    return respond(head, Body::chunks(st.chunks.iter().cloned()));
                }
                (Some(head), _) => {
                    let head = head.clone();
                    drop(st);
                    return respond(&head, stream_body(fetch.clone(), rx));
                }
                (None, Some(_)) => {
                    return crate::response::error(
                        StatusCode::BAD_GATEWAY,
                        "no origin could answer this request",
                    );
                }
                (None, None) => {}
            }
        }
        if rx.changed().await.is_err() {
            return crate::response::error(StatusCode::BAD_GATEWAY, "origin request dropped");
        }
    }
}

/// A body that sends the fetch's chunks as they land; cut if the origin's response broke off.
fn stream_body(fetch: Arc<Fetch>, mut rx: watch::Receiver<()>) -> Body {
    let (tx, body_rx) = tokio::sync::mpsc::channel(16);
    tokio::spawn(async move {
        let mut sent = 0;
        loop {
            rx.borrow_and_update();
            // Chunks and `done` read together: once done, every chunk is in this snapshot.
            let (new, done) = {
                let st = fetch.state.lock().unwrap();
                (st.chunks[sent..].to_vec(), st.done)
            };
            sent += new.len();
            for c in new {
                if tx.send(Ok(c)).await.is_err() {
                    return; // the viewer left
                }
            }
            match done {
                Some(true) => return,
                Some(false) => {
                    let _ = tx
                        .send(Err(std::io::Error::other("origin response broke off")))
                        .await;
                    return;
                }
                None => {
                    if rx.changed().await.is_err() {
                        return;
                    }
                }
            }
        }
    });
    Body::streamed(body_rx)
}

fn respond(head: &Head, body: Body) -> Response<Body> {
    let mut r = Response::new(body);
    *r.status_mut() = head.status;
    for name in PASSED.iter() {
        if let Some(v) = head.headers.get(name) {
            r.headers_mut().insert(name.clone(), v.clone());
        }
    }
    r
}

/// How long a response may be served from the cache: 200s with a max-age and nothing that
/// forbids storing.
fn cacheable(head: &Head) -> Option<Duration> {
    if head.status != StatusCode::OK {
        return None;
    }
    let cc = head.headers.get(header::CACHE_CONTROL)?.to_str().ok()?;
    let mut max_age = None;
    for d in cc.split(',').map(str::trim) {
        let d = d.to_ascii_lowercase();
        if d == "no-store" || d == "no-cache" || d == "private" {
            return None;
        }
        if let Some(v) = d.strip_prefix("max-age=") {
            max_age = v.parse::<u64>().ok();
        }
    }
    max_age
        .filter(|&s| s > 0)
        .map(|s| Duration::from_secs(s).min(MAX_TTL))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(cc: &str) -> Head {
        let mut headers = HeaderMap::new();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_str(cc).unwrap());
        Head {
            status: StatusCode::OK,
            headers,
        }
    }

    #[test]
    fn what_is_cached() {
        assert_eq!(
            cacheable(&head("public, max-age=31536000, immutable")),
            Some(MAX_TTL)
        );
        assert_eq!(
            cacheable(&head("max-age=18446744073709551615")),
            Some(MAX_TTL)
        );
        assert_eq!(
            cacheable(&head("public, max-age=1")),
            Some(Duration::from_secs(1))
        );
        assert_eq!(cacheable(&head("no-store")), None);
        assert_eq!(cacheable(&head("max-age=0")), None);
        let mut h = head("max-age=60");
        h.status = StatusCode::NOT_FOUND;
        assert_eq!(cacheable(&h), None);
    }

    #[test]
    fn cache_is_bounded_by_bytes_and_drops_the_least_recently_used() {
        let mut c = Cache {
            map: lru::LruCache::unbounded(),
            bytes: 0,
            cap: 1000,
        };
        let now = Instant::now();
        let entry = |n: usize| Cached {
            head: head("max-age=60"),
            body: Bytes::from(vec![0u8; n]),
            stored: now,
            expires: now + Duration::from_secs(60),
        };
        for i in 0..4 {
            c.insert(format!("k{i}"), entry(200));
        }
        assert_eq!(c.bytes, 800);
        c.get("k0", now).unwrap(); // k0 used: k1 is now the oldest
        c.insert("k4".into(), entry(200));
        c.insert("k5".into(), entry(200));
        assert!(c.bytes <= 1000, "{}", c.bytes);
        assert!(c.get("k1", now).is_none());
        assert!(c.get("k0", now).is_some());
        assert!(c.get("k5", now).is_some());
        // Too big for the cache: not kept at all.
        c.insert("big".into(), entry(600));
        assert!(c.get("big", now).is_none());
        // Expired entries go and give back their bytes.
        let later = now + Duration::from_secs(61);
        let before = c.bytes;
        assert!(c.get("k5", later).is_none());
        assert_eq!(c.bytes, before - 200);
        // Replacing a key counts its bytes once.
        c.insert("k0".into(), entry(100));
        let total: usize = c.map.iter().map(|(_, v)| v.body.len()).sum();
        assert_eq!(c.bytes, total);
    }

    #[test]
    fn origins_must_be_http_or_https_urls() {
        assert!(Upstream::new(&[], 1, &[]).is_err());
        assert!(Upstream::new(&["origin:8080".into()], 1, &[]).is_err());
        assert!(Upstream::new(&["ftp://origin".into()], 1, &[]).is_err());
        assert!(Upstream::new(&["https://origin".into()], 1, &[]).is_ok());
        assert!(Upstream::new(&["http://origin:8080".into()], 1, &[]).is_ok());
    }
}
