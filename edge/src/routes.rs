//! Routes, blocking reloads and response headers.
//!
//! | path | what |
//! | --- | --- |
//! | `/healthz` | 200 when ready |
//! | `/api/v1/streams` | JSON: live streams, tracks, codecs, bitrate, uptime |
//! | `/live/{name}/index.m3u8` | multivariant playlist |
//! | `/live/{name}/manifest.mpd` | LL-DASH MPD (static once the stream ended) |
//! | `/api/v1/time` | the server's UTC time (ISO 8601), the MPD's UTCTiming source |
//! | `/api/v1/vod` | JSON: the VOD archives |
//! | `/api/v1/edge` | JSON: an edge's upstream fetches, cache hits, coalesced requests |
//! | `/api/v1/resume/{viewer}/{asset}` | `PUT` a position (`{"position": s}`), `GET` it back |
//! | `/vod/{id}/index.m3u8`, `/vod/{id}/manifest.mpd`, `/vod/{id}/{rendition}/...` | an archive (EVENT playlist while live, VOD after) |
//! | `/live/{name}/{rendition}/index.m3u8` | media playlist (`_HLS_msn`, `_HLS_part`, `_HLS_skip`) |
//! | `/live/{name}/{rendition}/{session}/init.mp4` | CMAF header |
//! | `/live/{name}/{rendition}/{session}/{msn}.m4s` | segment |
//! | `/live/{name}/{rendition}/{session}/{msn}.{part}.m4s` | part (preload hints wait for it) |
//! | `/whip`, `/whip/{key}`, `/whip/session/{id}` | WebRTC ingest ([`crate::whip`]) |
//!
//! Caching follows the low-latency server profile of RFC 8216bis (Appendix B): media bytes
//! are immutable (a publish session has its own path segment, so a URL never changes
//! meaning); blocking playlist responses are cacheable so a CDN collapses the identical
//! requests of all viewers into one; plain playlist requests are short-lived; errors and
//! anything not yet produced are never cached.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use flate2::write::GzEncoder;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use media::TrackKind;
use packager::hls::{self, Skip};
use packager::window::WindowState;
use packager::{StreamWindow, Windows};
use tracing::debug;

use crate::body::Body;

#[derive(Clone, Debug)]
pub struct HttpConfig {
    pub max_connections: usize,
    /// `Access-Control-Allow-Origin` (players on other origins need it).
    pub cors_origin: String,
    /// Served over TLS (for absolute URLs the service writes, like the MPD's UTCTiming).
    pub tls: bool,
    /// Serve viewers' routes (`/live`, `/vod`); an origin whose viewers go to edges turns
    /// them off and keeps ingest (WHIP), the APIs and health checks.
    pub viewers: bool,
    /// Threads of their own serving connections, each a single-threaded runtime (0: on the
    /// caller's runtime).
    pub workers: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            max_connections: 16_384,
            cors_origin: "*".into(),
            tls: false,
            viewers: true,
            workers: 0,
        }
    }
}

#[derive(Clone)]
pub struct Service {
    inner: Arc<Inner>,
}

struct Inner {
    windows: Windows,
    config: HttpConfig,
    started: SystemTime,
    cors_origin: Option<HeaderValue>,
    whip: Option<ingest::whip::Whip>,
    archive: Option<packager::archive::Store>,
    /// The last `/api/v1/vod` body and when it was made: a listing costs a LIST and a GET per
    /// archive on object storage, so it is made at most once per [`VOD_LIST_TTL`], and
    /// requests that arrive while it is being made wait for it.
    vod_list: tokio::sync::Mutex<Option<(Instant, Bytes)>>,
    resume: Option<crate::resume::ResumeStore>,
    upstream: Option<crate::upstream::Upstream>,
    demand: Option<crate::store::redis::Demand>,
}

/// RFC 8216bis §6.2.5.2: a request more than two segments ahead is answered at once.
const ADVANCE_SEGMENT_LIMIT: u64 = 2;
/// ... or more than three parts ahead of the last part.
const ADVANCE_PART_LIMIT: u32 = 3;

/// No route has more path segments than this; a longer path is not found.
const MAX_SEGMENTS: usize = 8;

/// The path's segments (after the leading `/`), in `buf`; none when there are too many.
fn split_path<'a, 'b>(path: &'a str, buf: &'b mut [&'a str; MAX_SEGMENTS]) -> &'b [&'a str] {
    let mut n = 0;
    for seg in path.trim_start_matches('/').split('/') {
        if n == MAX_SEGMENTS {
            return &[];
        }
        buf[n] = seg;
        n += 1;
    }
    &buf[..n]
}

/// How long an archive listing is reused (`GET /api/v1/vod`).
const VOD_LIST_TTL: Duration = Duration::from_secs(2);

const IMMUTABLE: &str = "public, max-age=31536000, immutable";
const NO_STORE: &str = "no-store";

impl Service {
    pub fn new(windows: Windows, config: HttpConfig) -> Self {
        let cors_origin = HeaderValue::from_str(&config.cors_origin).ok();
        Service {
            inner: Arc::new(Inner {
                windows,
                config,
                started: SystemTime::now(),
                cors_origin,
                whip: None,
                archive: None,
                vod_list: tokio::sync::Mutex::new(None),
                resume: None,
                upstream: None,
                demand: None,
            }),
        }
    }

    /// The service's parts while it is being put together (before it is cloned).
    fn setup(&mut self) -> &mut Inner {
        Arc::get_mut(&mut self.inner).expect("with_* is called before the service is shared")
    }

    /// Serves the VOD archive in `store` at `/vod/...` and lists it at `/api/v1/vod`.
    pub fn with_archive(mut self, store: packager::archive::Store) -> Self {
        self.setup().archive = Some(store);
        self
    }

    /// Keeps viewers' resume positions at `/api/v1/resume/{viewer}/{asset}`.
    pub fn with_resume(mut self, store: crate::resume::ResumeStore) -> Self {
        self.setup().resume = Some(store);
        self
    }

    /// Fetches what this node does not hold (live streams it has no window for, the VOD
    /// archive when it has none) from origins over HTTP: an edge's fallback and cache.
    pub fn with_upstream(mut self, upstream: crate::upstream::Upstream) -> Self {
        self.setup().upstream = Some(upstream);
        self
    }

    /// Live streams come from Redis replicas opened as viewers ask for them (an edge).
    pub fn with_demand(mut self, demand: crate::store::redis::Demand) -> Self {
        self.setup().demand = Some(demand);
        self
    }

    /// Serves WHIP publishers at `/whip` too.
    pub fn with_whip(mut self, whip: ingest::whip::Whip) -> Self {
        self.setup().whip = Some(whip);
        self
    }

    pub fn config(&self) -> &HttpConfig {
        &self.inner.config
    }

    pub async fn handle<B>(&self, req: Request<B>, peer: SocketAddr) -> Response<Body>
    where
        B: http_body::Body + Send,
        B::Data: Send,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        let method = req.method().clone();
        let path = req.uri().path();
        let whip_path = path == "/whip" || path.starts_with("/whip/");
        let resume_path = path.starts_with("/api/v1/resume/");
        let logged = tracing::enabled!(tracing::Level::DEBUG).then(|| path.to_owned());
        let mut resp = match method {
            Method::OPTIONS => preflight(&req, whip_path),
            Method::GET | Method::HEAD if !whip_path => self.get(&req).await,
            Method::PUT if resume_path => {
                let path = path.to_owned();
                Box::pin(self.resume_put(req, &path)).await
            }
            _ if whip_path => {
                let path = path.to_owned();
                Box::pin(self.whip(req, &path, peer)).await
            }
            _ => {
                let mut r = error(StatusCode::METHOD_NOT_ALLOWED, "only GET, HEAD and OPTIONS");
                r.headers_mut().insert(
                    header::ALLOW,
                    HeaderValue::from_static("GET, HEAD, OPTIONS"),
                );
                r
            }
        };
        let h = resp.headers_mut();
        if let Some(v) = &self.inner.cors_origin {
            h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v.clone());
        }
        h.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static("Content-Length, Date, Age, Location, Link, ETag"),
        );
        if method == Method::HEAD {
            *resp.body_mut() = Body::empty();
        }
        if let Some(path) = logged {
            debug!(%method, path, status = resp.status().as_u16(), "request");
        }
        resp
    }

    async fn whip<B>(&self, req: Request<B>, path: &str, peer: SocketAddr) -> Response<Body>
    where
        B: http_body::Body + Send,
        B::Data: Send,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        let Some(whip) = &self.inner.whip else {
            return error(StatusCode::NOT_FOUND, "WHIP ingest is not enabled here");
        };
        let mut buf = [""; MAX_SEGMENTS];
        let segs = split_path(path, &mut buf);
        match (req.method().clone(), segs) {
            (Method::POST, ["whip"]) => crate::whip::post(whip, req, None, peer).await,
            (Method::POST, ["whip", key]) if *key != "session" => {
                crate::whip::post(whip, req, Some(key), peer).await
            }
            (Method::DELETE, ["whip", "session", id]) => crate::whip::delete(whip, id).await,
            (Method::PATCH, ["whip", "session", _]) => crate::whip::patch(),
            (_, ["whip", "session", _]) => {
                let mut r = error(StatusCode::METHOD_NOT_ALLOWED, "only DELETE and OPTIONS");
                r.headers_mut()
                    .insert(header::ALLOW, HeaderValue::from_static("DELETE, OPTIONS"));
                r
            }
            (_, ["whip"] | ["whip", _]) => {
                let mut r = error(StatusCode::METHOD_NOT_ALLOWED, "publish with POST");
                r.headers_mut()
                    .insert(header::ALLOW, HeaderValue::from_static("POST, OPTIONS"));
                r
            }
            _ => error(StatusCode::NOT_FOUND, "not found"),
        }
    }

    async fn get<B>(&self, req: &Request<B>) -> Response<Body> {
        let path = req.uri().path();
        let mut buf = [""; MAX_SEGMENTS];
        let segs = split_path(path, &mut buf);
        let gzip = accepts_gzip(req);
        if !self.inner.config.viewers && matches!(segs.first(), Some(&"live") | Some(&"vod")) {
            return error(
                StatusCode::NOT_FOUND,
                "viewers are served by the edges, not by this origin",
            );
        }
        if let (Some(d), ["live", name, ..]) = (&self.inner.demand, segs) {
            // The first viewer of a stream at this edge waits for its replica to open.
            if d.ask(name) {
                Box::pin(d.wait_open(&self.inner.windows, name, Duration::from_secs(5))).await;
            }
        }
        if let Some(up) = &self.inner.upstream {
            let local = match segs {
                ["live", name, ..] => self.window(name).is_some(),
                ["vod", ..] | ["api", "v1", "vod"] => self.inner.archive.is_some(),
                _ => true,
            };
            if !local {
                let pq = req.uri().path_and_query().map_or(path, |p| p.as_str());
                return Box::pin(up.get(pq, req.headers(), self.inner.config.tls)).await;
            }
        }
        match segs {
            ["healthz"] => text(StatusCode::OK, "ok\n", NO_STORE),
            ["api", "v1", "edge"] => self.edge_json(),
            ["api", "v1", "streams"] => self.streams_json(),
            ["live", name, "index.m3u8"] => self.multivariant(name, gzip),
            ["live", name, "manifest.mpd"] => self.mpd(name, req, gzip),
            // Boxed: the request future holds the largest of its routes' futures, and these
            // (object storage, Redis) are big and rarely asked for.
            ["api", "v1", "vod"] => Box::pin(self.vod_list()).await,
            ["api", "v1", "resume", viewer, asset] => {
                Box::pin(self.resume_get(viewer, asset)).await
            }
            ["vod", rest @ ..] => {
                Box::pin(self.vod_file(rest, req.uri().query().unwrap_or(""))).await
            }
            ["api", "v1", "time"] => {
                let now = packager::hls::rfc3339(SystemTime::now());
                let mut r = Response::new(Body::from(now));
                set_static(&mut r, header::CONTENT_TYPE, "text/plain; charset=utf-8");
                set_static(&mut r, header::CACHE_CONTROL, NO_STORE);
                r
            }
            ["live", name, rendition, "index.m3u8"] => {
                self.media_playlist(name, rendition, req.uri().query().unwrap_or(""), gzip)
                    .await
            }
            ["live", name, rendition, session, file] => {
                self.media(name, rendition, session, file).await
            }
            _ => error(StatusCode::NOT_FOUND, "not found"),
        }
    }

    fn window(&self, name: &str) -> Option<Arc<StreamWindow>> {
        self.inner.windows.get(name)
    }

    /// `GET /api/v1/vod`: the archives, newest first.
    async fn vod_list(&self) -> Response<Body> {
        let Some(store) = &self.inner.archive else {
            return error(StatusCode::NOT_FOUND, "no archive configured");
        };
        let mut cached = self.inner.vod_list.lock().await;
        let body = match &*cached {
            Some((made, body)) if made.elapsed() < VOD_LIST_TTL => body.clone(),
            _ => {
                let listed = match packager::archive::list(store.as_ref()).await {
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
                for mut v in listed.into_iter().map(|l| l.meta) {
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
        let mut r = Response::new(Body::from(body));
        set_static(&mut r, header::CONTENT_TYPE, "application/json");
        set_static(&mut r, header::CACHE_CONTROL, NO_STORE);
        r
    }

    async fn resume_get(&self, viewer: &str, asset: &str) -> Response<Body> {
        let Some(store) = &self.inner.resume else {
            return error(StatusCode::NOT_FOUND, "no resume store");
        };
        match store.get(viewer, asset).await {
            Some(p) => json(&serde_json::json!(p)),
            None => error(StatusCode::NOT_FOUND, "no position stored"),
        }
    }

    async fn resume_put<B>(&self, req: Request<B>, path: &str) -> Response<Body>
    where
        B: http_body::Body + Send,
        B::Data: Send,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        use http_body_util::BodyExt;
        let Some(store) = &self.inner.resume else {
            return error(StatusCode::NOT_FOUND, "no resume store");
        };
        let mut buf = [""; MAX_SEGMENTS];
        let ["api", "v1", "resume", viewer, asset] = split_path(path, &mut buf) else {
            return error(StatusCode::NOT_FOUND, "not found");
        };
        if !crate::resume::valid_id(viewer) || !crate::resume::valid_id(asset) {
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
        let Some(position) = crate::resume::parse_position(&body) else {
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

    /// `/vod/{id}/...`: a file of an archive. `?start=SECONDS` on a playlist makes players
    /// start there (EXT-X-START; the multivariant passes it on to its media playlists).
    async fn vod_file(&self, rest: &[&str], query: &str) -> Response<Body> {
        use object_store::ObjectStoreExt;
        let Some(store) = &self.inner.archive else {
            return error(StatusCode::NOT_FOUND, "no archive configured");
        };
        // Each segment one plain name (no `..`, no separators, no escapes).
        if rest.len() < 2
            || rest.len() > 3
            || !rest.iter().all(|p| crate::resume::valid_id(p))
            || rest[1] == "meta.json"
        {
            return error(StatusCode::NOT_FOUND, "not found");
        }
        let path = object_store::path::Path::from(rest.join("/"));
        let data = match store.get(&path).await {
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
        let file = rest[rest.len() - 1];
        let (ctype, cache) = match file.rsplit('.').next() {
            Some("m3u8") => ("application/vnd.apple.mpegurl", "public, max-age=1"),
            Some("mpd") => ("application/dash+xml", "public, max-age=1"),
            Some("m4s" | "mp4") => ("video/mp4", IMMUTABLE),
            _ => return error(StatusCode::NOT_FOUND, "not found"),
        };
        let start = query
            .split('&')
            .find_map(|kv| kv.strip_prefix("start="))
            .and_then(|v| v.parse::<f64>().ok())
            .filter(|v| v.is_finite() && *v >= 0.0);
        let data = match (start, ctype) {
            (Some(t), "application/vnd.apple.mpegurl") => Bytes::from(with_start(&data, t)),
            _ => data,
        };
        let len = data.len();
        let mut r = Response::new(Body::from(data));
        set_static(&mut r, header::CONTENT_TYPE, ctype);
        set_static(&mut r, header::CACHE_CONTROL, cache);
        r.headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
        r
    }

    /// The LL-DASH MPD. Its UTCTiming points at `/api/v1/time` on the host the player asked.
    fn mpd<B>(&self, name: &str, req: &Request<B>, gzip: bool) -> Response<Body> {
        let Some(w) = self.window(name) else {
            return error(StatusCode::NOT_FOUND, "no such live stream");
        };
        let host = req
            .headers()
            .get("x-forwarded-host")
            .or_else(|| req.headers().get(header::HOST))
            .and_then(|h| h.to_str().ok())
            .or_else(|| req.uri().authority().map(|a| a.as_str()))
            .unwrap_or("localhost");
        let scheme = req
            .headers()
            .get("x-forwarded-proto")
            .and_then(|h| h.to_str().ok())
            .unwrap_or(if self.inner.config.tls {
                "https"
            } else {
                "http"
            });
        let time_url = format!("{scheme}://{host}/api/v1/time");
        let body = w.read(|st| packager::dash::mpd(&w, st, SystemTime::now(), &time_url));
        let mut r = playlist(encode(body, gzip), gzip, "public, max-age=1");
        set_static(&mut r, header::CONTENT_TYPE, "application/dash+xml");
        // The time URL comes from these: a shared cache must not give one host's to another.
        set_static(
            &mut r,
            header::VARY,
            "Accept-Encoding, Host, X-Forwarded-Host, X-Forwarded-Proto",
        );
        r
    }

    fn multivariant(&self, name: &str, gzip: bool) -> Response<Body> {
        let Some(w) = self.window(name) else {
            return error(StatusCode::NOT_FOUND, "no such live stream");
        };
        let td = w.read(|st| w.target_duration(st));
        let body = w.rendered(cache_key(usize::MAX, Skip::No, gzip), |st| {
            encode(hls::multivariant(&w, st), gzip)
        });
        playlist(body, gzip, &format!("public, max-age={}", (td / 2).max(1)))
    }

    async fn media_playlist(
        &self,
        name: &str,
        rendition: &str,
        query: &str,
        gzip: bool,
    ) -> Response<Body> {
        let q = match PlaylistQuery::parse(query) {
            Ok(q) => q,
            Err(msg) => return error(StatusCode::BAD_REQUEST, msg),
        };
        let Some(w) = self.window(name) else {
            return error(StatusCode::NOT_FOUND, "no such live stream");
        };
        let Some((track, td)) = w.read(|st| {
            st.tracks
                .iter()
                .position(|t| t.rendition == rendition)
                .map(|i| (i, w.target_duration(st)))
        }) else {
            return error(StatusCode::NOT_FOUND, "no such rendition");
        };
        if let Some(msn) = q.msn {
            let (open_msn, open_parts) = w.read(|st| live_edge(&st.tracks[track]));
            if msn > open_msn + ADVANCE_SEGMENT_LIMIT
                || (msn == open_msn && q.part.is_some_and(|p| p > open_parts + ADVANCE_PART_LIMIT))
            {
                return error(
                    StatusCode::BAD_REQUEST,
                    "_HLS_msn/_HLS_part too far ahead of the live edge",
                );
            }
            let part = q.part;
            let ready = move |st: &WindowState| playlist_has(st, track, msn, part);
            if !wait_until(&w, Duration::from_secs(3 * td), ready).await {
                return error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the requested part did not appear in time",
                );
            }
        }
        let ended = w.is_ended();
        let body = w.rendered(cache_key(track, q.skip, gzip), |st| {
            encode(hls::media_playlist(&w, st, track, q.skip), gzip)
        });
        if ended || q.msn.is_some() {
            // Identical blocking requests from every viewer map to one cached response.
            playlist(body, gzip, &format!("public, max-age={}", 6 * td))
        } else {
            // Half a part target, rounded to what max-age can say.
            playlist(body, gzip, "public, max-age=1")
        }
    }

    async fn media(
        &self,
        name: &str,
        rendition: &str,
        session: &str,
        file: &str,
    ) -> Response<Body> {
        let Some(w) = self.window(name) else {
            return error(StatusCode::NOT_FOUND, "no such live stream");
        };
        if w.session != session {
            return error(StatusCode::NOT_FOUND, "that publish session is over");
        }
        let Some((track, kind)) = w.read(|st| {
            st.tracks
                .iter()
                .position(|t| t.rendition == rendition)
                .map(|i| (i, st.tracks[i].info.kind()))
        }) else {
            return error(StatusCode::NOT_FOUND, "no such rendition");
        };
        let content_type = match kind {
            TrackKind::Video => "video/mp4",
            TrackKind::Audio => "audio/mp4",
        };
        if file == "init.mp4" {
            let init = w.read(|st| st.tracks[track].init.clone());
            return bytes_response(Body::from(init), content_type);
        }
        let Some(stem) = file.strip_suffix(".m4s") else {
            return error(StatusCode::NOT_FOUND, "not found");
        };
        let (msn, part) = match stem.split_once('.') {
            Some((m, p)) => match (m.parse::<u64>(), p.parse::<u32>()) {
                (Ok(m), Ok(p)) => (m, Some(p)),
                _ => return error(StatusCode::NOT_FOUND, "not found"),
            },
            None => match stem.parse::<u64>() {
                Ok(m) => (m, None),
                Err(_) => return error(StatusCode::NOT_FOUND, "not found"),
            },
        };
        // One look at the window: the bytes when they are there, else what to wait for.
        let (body, td, (open_msn, open_parts), complete) = w.read(|st| {
            let t = &st.tracks[track];
            (
                media_body(t, msn, part),
                w.target_duration(st),
                live_edge(t),
                t.segment(msn).is_some_and(|s| s.complete),
            )
        });
        if let Some(b) = body {
            return bytes_response(b, content_type);
        }
        // A segment being written (or the next one) is sent as it grows: LL-DASH players ask
        // for it early (availabilityTimeOffset) and read its parts as they land.
        if part.is_none() && !complete && (msn == open_msn || msn == open_msn + 1) {
            return stream_segment(w, track, msn, Duration::from_secs(3 * td), content_type);
        }
        // A part not produced yet but about to be (a preload hint) is waited for; the response
        // then carries the whole thing.
        let soon = match part {
            Some(p) => {
                (msn == open_msn && p <= open_parts + ADVANCE_PART_LIMIT)
                    || (msn == open_msn + 1 && p <= ADVANCE_PART_LIMIT)
            }
            None => msn == open_msn,
        };
        if soon {
            let ready = move |st: &WindowState| {
                let t = &st.tracks[track];
                match part {
                    // A part index past the end of a completed segment will never exist.
                    Some(p) => t.part(msn, p).is_some() || t.open_msn() > msn,
                    None => t.segment(msn).is_some_and(|s| s.complete),
                }
            };
            if !wait_until(&w, Duration::from_secs(3 * td), ready).await {
                return error(StatusCode::NOT_FOUND, "not produced in time");
            }
        }
        match w.read(|st| media_body(&st.tracks[track], msn, part)) {
            Some(b) => bytes_response(b, content_type),
            // Evicted, abandoned (the segment ended before this part), or never will exist.
            None => error(StatusCode::NOT_FOUND, "not in the live window"),
        }
    }

    /// `GET /api/v1/edge`: what the upstream cache did (an edge's fallback to its origins).
    fn edge_json(&self) -> Response<Body> {
        let Some(up) = &self.inner.upstream else {
            return json(&serde_json::json!({ "upstream": null }));
        };
        let s = up.stats();
        let (bytes, entries) = up.cache_usage();
        json(&serde_json::json!({ "upstream": {
            "fetches": s.fetches.load(std::sync::atomic::Ordering::Relaxed),
            "cache_hits": s.hits.load(std::sync::atomic::Ordering::Relaxed),
            "coalesced": s.coalesced.load(std::sync::atomic::Ordering::Relaxed),
            "failures": s.failures.load(std::sync::atomic::Ordering::Relaxed),
            "cache_bytes": bytes,
            "cache_entries": entries,
        }}))
    }

    fn streams_json(&self) -> Response<Body> {
        let now = SystemTime::now();
        let streams: Vec<serde_json::Value> = self
            .inner
            .windows
            .all()
            .iter()
            .map(|w| {
                w.read(|st| {
                    let tracks: Vec<serde_json::Value> = st
                        .tracks
                        .iter()
                        .map(|t| {
                            serde_json::json!({
                                "rendition": t.rendition,
                                "kind": match t.info.kind() { TrackKind::Video => "video", TrackKind::Audio => "audio" },
                                "codec": t.info.codec.codec_string(),
                                "width": (t.info.width > 0).then_some(t.info.width),
                                "height": (t.info.height > 0).then_some(t.info.height),
                                "frame_rate": t.frame_rate().map(|f| (f * 1000.0).round() / 1000.0),
                                "sample_rate": (t.info.sample_rate > 0).then_some(t.info.sample_rate),
                                "channels": (t.info.channels > 0).then_some(t.info.channels),
                                "bitrate": t.average_bitrate(),
                                "last_msn": t.last_part().map(|p| p.0),
                            })
                        })
                        .collect();
                    serde_json::json!({
                        "name": w.name,
                        "session": w.session,
                        "live": !st.ended,
                        "started": hls::rfc3339(w.started),
                        "uptime_secs": now.duration_since(w.started).unwrap_or_default().as_secs(),
                        "bitrate": st.tracks.iter().map(|t| t.average_bitrate()).sum::<u64>(),
                        "skipped_frames": w.skipped.load(std::sync::atomic::Ordering::Relaxed),
                        "playback": format!("/live/{}/index.m3u8", w.name),
                        "tracks": tracks,
                    })
                })
            })
            .collect();
        let body = serde_json::json!({
            "uptime_secs": now.duration_since(self.inner.started).unwrap_or_default().as_secs(),
            "streams": streams,
        });
        let mut r = Response::new(Body::from(body.to_string()));
        set(&mut r, header::CONTENT_TYPE, "application/json");
        set(&mut r, header::CACHE_CONTROL, NO_STORE);
        r
    }
}

/// Whether the playlist for `track` already holds what `_HLS_msn`/`_HLS_part` asked for.
fn playlist_has(st: &WindowState, track: usize, msn: u64, part: Option<u32>) -> bool {
    let t = &st.tracks[track];
    // Everything before the open segment is complete. A part index past the end of a
    // completed segment is satisfied by that segment's completion.
    t.open_msn() > msn
        || part.is_some_and(|p| t.segment(msn).is_some_and(|s| s.parts.len() as u32 > p))
}

/// Part `part` of segment `msn` (the whole segment when `None`, once complete), if it exists
/// and is not a gap.
fn media_body(t: &packager::window::TrackWindow, msn: u64, part: Option<u32>) -> Option<Body> {
    match part {
        Some(p) => t
            .part(msn, p)
            .filter(|p| !p.gap)
            .map(|p| Body::from(p.data.clone())),
        None => t
            .segment(msn)
            .filter(|s| s.complete)
            .map(|s| Body::chunks(s.chunks())),
    }
}

/// (msn of the segment being written, parts it has so far).
fn live_edge(t: &packager::window::TrackWindow) -> (u64, u32) {
    let open = t.open_msn();
    (
        open,
        t.segment(open).map(|s| s.parts.len() as u32).unwrap_or(0),
    )
}

/// Waits until `ready` holds or the stream ends; false on timeout.
async fn wait_until(
    w: &StreamWindow,
    timeout: Duration,
    mut ready: impl FnMut(&WindowState) -> bool,
) -> bool {
    let mut rx = w.subscribe();
    let wait = async {
        loop {
            if w.read(|st| st.ended || ready(st)) {
                return;
            }
            if rx.changed().await.is_err() {
                return;
            }
        }
    };
    tokio::time::timeout(timeout, wait).await.is_ok()
}

#[derive(Debug, Default)]
struct PlaylistQuery {
    msn: Option<u64>,
    part: Option<u32>,
    skip: Skip,
}

impl PlaylistQuery {
    fn parse(q: &str) -> Result<Self, &'static str> {
        let mut out = PlaylistQuery::default();
        for pair in q.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            match k {
                "_HLS_msn" => out.msn = Some(v.parse().map_err(|_| "_HLS_msn must be a number")?),
                "_HLS_part" => {
                    out.part = Some(v.parse().map_err(|_| "_HLS_part must be a number")?)
                }
                "_HLS_skip" => {
                    out.skip = match v {
                        "YES" => Skip::Segments,
                        "v2" => Skip::SegmentsAndDateRanges,
                        _ => return Err("_HLS_skip must be YES or v2"),
                    }
                }
                _ => {}
            }
        }
        if out.part.is_some() && out.msn.is_none() {
            return Err("_HLS_part requires _HLS_msn");
        }
        Ok(out)
    }
}

fn accepts_gzip<B>(req: &Request<B>) -> bool {
    accepts_gzip_header(req.headers())
}

pub(crate) fn accepts_gzip_header(headers: &http::HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|enc| {
            let mut it = enc.trim().split(';');
            let name = it.next().unwrap_or("").trim();
            let q_zero = it.any(|p| matches!(p.trim(), "q=0" | "q=0.0" | "q=0.00" | "q=0.000"));
            (name.eq_ignore_ascii_case("gzip") || name == "*") && !q_zero
        })
}

fn set(r: &mut Response<Body>, name: header::HeaderName, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        r.headers_mut().insert(name, v);
    }
}

fn set_static(r: &mut Response<Body>, name: header::HeaderName, value: &'static str) {
    r.headers_mut()
        .insert(name, HeaderValue::from_static(value));
}

/// Key for a window's render cache: which playlist, which delta form, which encoding.
fn cache_key(track: usize, skip: Skip, gzip: bool) -> u64 {
    let skip = match skip {
        Skip::No => 0,
        Skip::Segments => 1,
        Skip::SegmentsAndDateRanges => 2,
    };
    ((track as u64) << 3) | (skip << 1) | gzip as u64
}

fn encode(text: String, gzip: bool) -> Bytes {
    if !gzip {
        return Bytes::from(text);
    }
    let mut enc = GzEncoder::new(
        Vec::with_capacity(text.len() / 3),
        flate2::Compression::fast(),
    );
    let _ = enc.write_all(text.as_bytes());
    Bytes::from(enc.finish().unwrap_or_default())
}

fn playlist(body: Bytes, gzip: bool, cache: &str) -> Response<Body> {
    let len = body.len();
    let mut r = Response::new(Body::from(body));
    if gzip {
        set_static(&mut r, header::CONTENT_ENCODING, "gzip");
    }
    r.headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    set_static(
        &mut r,
        header::CONTENT_TYPE,
        "application/vnd.apple.mpegurl",
    );
    set(&mut r, header::CACHE_CONTROL, cache);
    set_static(&mut r, header::VARY, "Accept-Encoding");
    r
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

fn json(v: &serde_json::Value) -> Response<Body> {
    let mut r = Response::new(Body::from(v.to_string()));
    set_static(&mut r, header::CONTENT_TYPE, "application/json");
    set_static(&mut r, header::CACHE_CONTROL, NO_STORE);
    r
}

/// Streams segment `msn` of `track` part by part as the packager writes it; ends when the
/// segment is complete, fails (cutting the connection) if a part takes longer than `patience`
/// or the stream ends first.
fn stream_segment(
    w: Arc<StreamWindow>,
    track: usize,
    msn: u64,
    patience: Duration,
    content_type: &'static str,
) -> Response<Body> {
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    tokio::spawn(async move {
        let mut next = 0u32;
        loop {
            let ready = |st: &WindowState| {
                let t = &st.tracks[track];
                t.part(msn, next).is_some()
                    || t.segment(msn).is_some_and(|s| s.complete)
                    || t.open_msn() > msn + 1
            };
            let arrived = wait_until(&w, patience, ready).await;
            // (part to send, the segment is finished, it can never be finished)
            let (chunk, done, failed) = w.read(|st| {
                let t = &st.tracks[track];
                match (t.part(msn, next), t.segment(msn)) {
                    (Some(p), _) => (Some((!p.gap).then(|| p.data.clone())), false, false),
                    (None, Some(s)) if s.complete => (None, true, false),
                    _ => (None, false, !arrived || st.ended || t.open_msn() > msn + 1),
                }
            });
            if let Some(chunk) = chunk {
                next += 1;
                if let Some(c) = chunk.filter(|c| !c.is_empty()) {
                    if tx.send(Ok(c)).await.is_err() {
                        return; // the client went away
                    }
                }
                continue;
            }
            if done {
                return;
            }
            if failed {
                let e = std::io::Error::other(format!("segment {msn} was not finished"));
                let _ = tx.send(Err(e)).await;
                return;
            }
        }
    });
    let mut r = Response::new(Body::streamed(rx));
    set_static(&mut r, header::CONTENT_TYPE, content_type);
    set_static(&mut r, header::CACHE_CONTROL, IMMUTABLE);
    r
}

fn bytes_response(body: Body, content_type: &'static str) -> Response<Body> {
    let len = body.len();
    let mut r = Response::new(body);
    set_static(&mut r, header::CONTENT_TYPE, content_type);
    set_static(&mut r, header::CACHE_CONTROL, IMMUTABLE);
    r.headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    r
}

fn text(status: StatusCode, body: &'static str, cache: &str) -> Response<Body> {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    set(&mut r, header::CONTENT_TYPE, "text/plain; charset=utf-8");
    set(&mut r, header::CACHE_CONTROL, cache);
    r
}

pub(crate) fn error(status: StatusCode, msg: &str) -> Response<Body> {
    let mut r = Response::new(Body::from(format!("{msg}\n")));
    *r.status_mut() = status;
    set(&mut r, header::CONTENT_TYPE, "text/plain; charset=utf-8");
    set(&mut r, header::CACHE_CONTROL, NO_STORE);
    r
}

fn preflight<B>(req: &Request<B>, whip: bool) -> Response<Body> {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = StatusCode::NO_CONTENT;
    let methods = if whip {
        set(
            &mut r,
            header::HeaderName::from_static("accept-post"),
            "application/sdp",
        );
        "POST, DELETE, PATCH, OPTIONS"
    } else if req.uri().path().starts_with("/api/v1/resume/") {
        "GET, HEAD, PUT, OPTIONS"
    } else {
        "GET, HEAD, OPTIONS"
    };
    set(&mut r, header::ACCESS_CONTROL_ALLOW_METHODS, methods);
    // `*` does not cover Authorization (which WHIP publishers send): echo what was asked.
    let asked = req
        .headers()
        .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("*");
    set(&mut r, header::ACCESS_CONTROL_ALLOW_HEADERS, asked);
    set(&mut r, header::ACCESS_CONTROL_MAX_AGE, "86400");
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_rules() {
        assert!(PlaylistQuery::parse("_HLS_part=1").is_err());
        let q = PlaylistQuery::parse("_HLS_msn=5&_HLS_part=2&_HLS_skip=YES").unwrap();
        assert_eq!((q.msn, q.part, q.skip), (Some(5), Some(2), Skip::Segments));
        assert!(PlaylistQuery::parse("_HLS_msn=x").is_err());
        assert!(PlaylistQuery::parse("_HLS_skip=maybe").is_err());
    }

    #[test]
    fn gzip_negotiation() {
        let r = |v: &str| {
            Request::builder()
                .header("accept-encoding", v)
                .body(())
                .unwrap()
        };
        assert!(accepts_gzip(&r("gzip, deflate, br")));
        assert!(!accepts_gzip(&r("gzip;q=0, br")));
        assert!(!accepts_gzip(&r("br")));
    }
}

#[cfg(test)]
mod vod_list {
    use super::*;
    use http_body_util::BodyExt;
    use object_store::{ObjectStore, ObjectStoreExt};

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

    async fn ids(service: &Service) -> Vec<String> {
        let req = Request::get("/api/v1/vod")
            .body(http_body_util::Empty::<Bytes>::new())
            .unwrap();
        let resp = service.handle(req, ([127, 0, 0, 1], 1).into()).await;
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
        let service =
            Service::new(Windows::new(), HttpConfig::default()).with_archive(store.clone());
        assert_eq!(ids(&service).await, ["a1"]);
        put_meta(store.as_ref(), "a2", "2026-11-22T07:01:00Z").await;
        assert_eq!(ids(&service).await, ["a1"], "the listing is reused");
        tokio::time::sleep(VOD_LIST_TTL + Duration::from_millis(100)).await;
        assert_eq!(
            ids(&service).await,
            ["a2", "a1"],
            "newest first, once remade"
        );
    }
}

#[cfg(test)]
mod future_size {
    use super::*;

    /// The request future is moved into place once per request (and spawned as a task per
    /// HTTP/2 stream): the rarely used routes are boxed so the common ones stay small.
    #[test]
    fn the_request_future_stays_small() {
        let service = Service::new(Windows::new(), HttpConfig::default());
        let req = Request::new(http_body_util::Empty::<Bytes>::new());
        let fut = service.handle(req, ([127, 0, 0, 1], 1).into());
        let size = std::mem::size_of_val(&fut);
        eprintln!("request future: {size} bytes");
        assert!(size <= 2048, "request future is {size} bytes");
    }
}
