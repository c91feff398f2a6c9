//! The service: what a node serves, and the one path every request takes. The route is read
//! once ([`Route::parse`]); a CORS preflight, a method the route does not answer, `HEAD` and
//! the CORS headers are handled here for every route; then the request goes to its area
//! ([`crate::live`], [`crate::vod`], [`crate::api`], [`crate::whip`]), through the edge's
//! hooks first on an edge ([`crate::edge`]) and the access check ([`crate::access`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use packager::Windows;
use tracing::debug;

use crate::access::api::ApiTokens;
use crate::access::{self, Playback, Subject};
use crate::api::admin::{self, Admin, StreamAdmin};
use crate::api::assets::Assets;
use crate::api::resume::{self, ResumeStore};
use crate::body::Body;
use crate::edge::upstream::Upstream;
use crate::edge::Edge;
use crate::forwarded::TrustedProxies;
use crate::live::Live;
use crate::metrics::{Gauges, HttpCounts};
use crate::response::{accepts_gzip, error, method_not_allowed, set_static, text};
use crate::route::{segments_buf, split_path, Route};
use crate::upload::Uploads;
use crate::vod::Vod;
use crate::whip::WhipIngest;

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
    /// A request's headers must arrive within this, counted from the connection's start (its
    /// first bytes too) or the end of the previous response (so it is the keep-alive idle time).
    pub header_timeout: Duration,
    /// Connections one remote address may hold open (0: no cap).
    pub max_connections_per_ip: usize,
    /// Requests waiting on a window at once (blocking reloads, parts about to land, growing
    /// segments); more are answered 503 with `Retry-After`.
    pub max_held: usize,
    /// HTTP/2 streams one connection may have open.
    pub http2_max_streams: u32,
    /// HTTP/2 pings this often; a peer that does not answer one in as long is dropped.
    pub http2_keepalive: Duration,
    /// Whose `X-Forwarded-*` headers are believed.
    pub trusted_proxies: TrustedProxies,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            max_connections: 16_384,
            cors_origin: "*".into(),
            tls: false,
            viewers: true,
            workers: 0,
            header_timeout: Duration::from_secs(30),
            max_connections_per_ip: 0,
            max_held: 50_000,
            http2_max_streams: 128,
            http2_keepalive: Duration::from_secs(30),
            trusted_proxies: TrustedProxies::default(),
        }
    }
}

/// What one node serves; cheap to clone (one per connection).
#[derive(Clone)]
pub struct Service {
    parts: Arc<Parts>,
}

/// The areas, each with what it needs; absent ones answer 404.
struct Parts {
    config: HttpConfig,
    started: SystemTime,
    cors_origin: Option<HeaderValue>,
    live: Live,
    vod: Option<Vod>,
    assets: Option<Assets>,
    uploads: Option<Arc<Uploads>>,
    resume: Option<ResumeStore>,
    whip: Option<Box<dyn WhipIngest>>,
    edge: Edge,
    playback: Arc<Playback>,
    api_tokens: ApiTokens,
    admin: Option<Box<dyn StreamAdmin>>,
    http_counts: Arc<HttpCounts>,
    gauges: Vec<Arc<dyn Gauges>>,
}

impl Service {
    pub fn new(windows: Windows, config: HttpConfig) -> Self {
        let cors_origin = HeaderValue::from_str(&config.cors_origin).ok();
        Service {
            parts: Arc::new(Parts {
                live: Live::new(windows, config.tls, config.max_held),
                config,
                started: SystemTime::now(),
                cors_origin,
                vod: None,
                assets: None,
                uploads: None,
                resume: None,
                whip: None,
                edge: Edge::default(),
                playback: Arc::new(Playback::public()),
                api_tokens: ApiTokens::default(),
                admin: None,
                http_counts: Arc::default(),
                gauges: Vec::new(),
            }),
        }
    }

    /// The service's parts while it is being put together (before it is cloned).
    fn setup(&mut self) -> &mut Parts {
        Arc::get_mut(&mut self.parts).expect("with_* is called before the service is shared")
    }

    /// Serves the VOD archive in `store` at `/vod/...` and lists it at `/api/v1/vod`.
    pub fn with_archive(mut self, store: packager::archive::Store) -> Self {
        self.setup().vod = Some(Vod::new(store));
        self
    }

    /// Serves the asset catalog at `/api/v1/assets`; deleting an asset deletes its media
    /// from `archive`.
    pub fn with_catalog(
        mut self,
        catalog: catalog::Catalog,
        archive: Option<packager::archive::Store>,
    ) -> Self {
        self.setup().assets = Some(Assets { catalog, archive });
        self
    }

    /// Takes uploads: direct upload URLs at `/api/v1/uploads`, tus at `/uploads/`.
    pub fn with_uploads(mut self, uploads: Arc<Uploads>) -> Self {
        self.setup().uploads = Some(uploads);
        self
    }

    /// Keeps viewers' resume positions at `/api/v1/resume/{viewer}/{asset}`.
    pub fn with_resume(mut self, store: ResumeStore) -> Self {
        self.setup().resume = Some(store);
        self
    }

    /// Which streams need a playback token, and the keys that verify them (default: all
    /// public).
    pub fn with_playback(mut self, playback: Arc<Playback>) -> Self {
        self.setup().playback = playback;
        self
    }

    /// The operator's API tokens (none: the API refuses everyone).
    pub fn with_api_tokens(mut self, tokens: ApiTokens) -> Self {
        self.setup().api_tokens = tokens;
        self
    }

    /// Lets the API create, delete and change streams (an origin's).
    pub fn with_admin(mut self, admin: impl StreamAdmin) -> Self {
        self.setup().admin = Some(Box::new(admin));
        self
    }

    /// Numbers from elsewhere for `/metrics` (WHIP sessions, the Redis mirror).
    pub fn with_gauges(mut self, gauges: Arc<dyn Gauges>) -> Self {
        self.setup().gauges.push(gauges);
        self
    }

    fn admin(&self) -> Admin<'_> {
        Admin {
            streams: self.parts.admin.as_deref(),
            playback: &self.parts.playback,
        }
    }

    /// Serves WHIP publishers at `/whip`.
    pub fn with_whip(mut self, ingest: impl WhipIngest) -> Self {
        self.setup().whip = Some(Box::new(ingest));
        self
    }

    /// An edge: fetches what this node does not hold (live streams it has no window for, the
    /// VOD archive when it has none) from origins over HTTP.
    pub fn with_upstream(mut self, upstream: Upstream) -> Self {
        self.setup().edge.upstream = Some(upstream);
        self
    }

    /// An edge: live streams come from Redis replicas opened as viewers ask for them.
    pub fn with_demand(mut self, demand: replica::Demand) -> Self {
        self.setup().edge.demand = Some(demand);
        self
    }

    pub fn config(&self) -> &HttpConfig {
        &self.parts.config
    }

    pub async fn handle<B>(&self, req: Request<B>, peer: SocketAddr) -> Response<Body>
    where
        B: http_body::Body + Send,
        B::Data: Send,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        let method = req.method().clone();
        // tus answers a page whatever its origin (the upload's own rules are checked there).
        let echo = req
            .uri()
            .path()
            .starts_with("/uploads/")
            .then(|| req.headers().get(header::ORIGIN).cloned())
            .flatten();
        let logged = tracing::enabled!(tracing::Level::DEBUG).then(|| req.uri().path().to_owned());
        let class = HttpCounts::class(req.uri().path());
        let mut resp = self.route(req, peer).await;
        self.parts.http_counts.record(class, resp.status());
        let h = resp.headers_mut();
        // An area may name its own origin (a direct upload's `cors_origin`).
        if !h.contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN) {
            if let Some(origin) = echo {
                h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
                h.append(header::VARY, HeaderValue::from_static("Origin"));
            } else if let Some(v) = &self.parts.cors_origin {
                h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v.clone());
            }
        }
        h.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static(EXPOSED),
        );
        if method == Method::HEAD {
            *resp.body_mut() = Body::empty();
        }
        if let Some(path) = logged {
            debug!(%method, path, status = resp.status().as_u16(), "request");
        }
        resp
    }

    async fn route<B>(&self, req: Request<B>, peer: SocketAddr) -> Response<Body>
    where
        B: http_body::Body + Send,
        B::Data: Send,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        // WHIP's resources answer every method themselves (405s name what they take).
        let whip = req.uri().path() == "/whip" || req.uri().path().starts_with("/whip/");
        match *req.method() {
            Method::OPTIONS => {
                let mut buf = segments_buf();
                let route = Route::parse(split_path(req.uri().path(), &mut buf));
                let mut r = preflight(&req, &route);
                // tus discovery, and what a page's preflight for it needs.
                if let (Route::Tus(..), Some(u)) = (route, &self.parts.uploads) {
                    u.discover(&mut r);
                }
                r
            }
            Method::GET | Method::HEAD if !whip => self.get(&req, peer).await,
            // Boxed: the request future holds the largest of its routes' futures, and these
            // (Redis, WebRTC) are big and rare.
            _ => Box::pin(self.send(req, peer)).await,
        }
    }

    /// Methods that send something (WHIP offers and session ends, resume positions), and
    /// anything on WHIP's resources.
    async fn send<B>(&self, req: Request<B>, peer: SocketAddr) -> Response<Body>
    where
        B: http_body::Body + Send,
        B::Data: Send,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        // The path is read from a handle of its own, so the request can be handed on whole.
        let uri = req.uri().clone();
        let mut buf = segments_buf();
        let route = Route::parse(split_path(uri.path(), &mut buf));
        let p = &*self.parts;
        if route.needs_api_token() {
            if let Err(r) = p.api_tokens.check(req.headers()) {
                return r;
            }
        }
        match (req.method(), route) {
            (_, Route::Whip(w)) => match &p.whip {
                Some(ingest) => {
                    // The publisher's address (refusal delays, the publish callback).
                    let client = p.config.trusted_proxies.client(peer.ip(), req.headers());
                    let from = SocketAddr::new(client, peer.port());
                    crate::whip::handle(ingest.as_ref(), w, req, from).await
                }
                None => error(StatusCode::NOT_FOUND, "WHIP ingest is not enabled here"),
            },
            (&Method::PUT, Route::Resume(at)) => {
                let viewer = self.viewer(&req, uri.query(), peer).await;
                match (&p.resume, at, viewer) {
                    (None, _, _) => error(StatusCode::NOT_FOUND, "no resume store"),
                    (Some(_), None, _) => error(StatusCode::NOT_FOUND, "not found"),
                    (_, _, Err(r)) => r,
                    (Some(store), Some(asset), Ok(viewer)) => {
                        resume::put(store, &viewer, asset, req).await
                    }
                }
            }
            (&Method::POST, Route::Streams) => admin::create(self.admin(), req).await,
            (&Method::DELETE, Route::Stream(name)) => admin::delete(self.admin(), name).await,
            (&Method::POST, Route::StreamAction(name, action)) => match action {
                "key" => admin::rotate(self.admin(), name).await,
                "kick" => admin::kick(self.admin(), name),
                _ => admin::mint(self.admin(), name, false, req).await,
            },
            (&Method::POST, Route::ViewerTokens(viewer)) => {
                admin::mint(self.admin(), viewer, true, req).await
            }
            (&Method::PATCH, Route::Asset(id)) => match &p.assets {
                Some(a) => a.patch(id, req).await,
                None => no_catalog(),
            },
            (&Method::DELETE, Route::Asset(id)) => match &p.assets {
                Some(a) => a.delete(id, p.uploads.as_deref()).await,
                None => no_catalog(),
            },
            (&Method::POST, Route::Assets) => match (&p.assets, &p.uploads) {
                (Some(a), Some(u)) => a.create(req, &u.completed()).await,
                (None, _) => no_catalog(),
                (Some(_), None) => error(
                    StatusCode::NOT_FOUND,
                    "assets are fetched from URLs where uploads are taken ([uploads] enabled)",
                ),
            },
            (&Method::POST, Route::DirectUploads) => match &p.uploads {
                Some(u) => {
                    let base = self.base_url(&req, peer);
                    u.create_direct(req, &base).await
                }
                None => no_uploads(),
            },
            (method, Route::Tus(direct, upload)) => {
                let meant =
                    crate::upload::tus::meant_method(method, upload.is_some(), req.headers());
                match (&p.uploads, meant, upload) {
                    (None, ..) => no_uploads(),
                    (Some(u), Method::POST, None) => u.create(direct, req).await,
                    (Some(u), Method::PATCH, Some(id)) => u.patch(direct, id, req).await,
                    (Some(u), Method::DELETE, Some(id)) => {
                        u.terminate(direct, id, req.headers()).await
                    }
                    _ => not_allowed(&route),
                }
            }
            (_, route) => not_allowed(&route),
        }
    }

    /// This server's URL as the client reached it, or as a trusted proxy says it was.
    fn base_url<B>(&self, req: &Request<B>, peer: SocketAddr) -> String {
        let p = &*self.parts;
        let (host, proto) = p.config.trusted_proxies.forwarded(peer.ip(), req.headers());
        let host = host
            .or_else(|| req.headers().get(header::HOST)?.to_str().ok())
            .or(req.uri().authority().map(|a| a.as_str()))
            .filter(|h| h.bytes().all(|b| b.is_ascii_graphic()))
            .unwrap_or("localhost");
        let scheme = proto.unwrap_or(if p.config.tls { "https" } else { "http" });
        format!("{scheme}://{host}")
    }

    /// The viewer a resume request's viewer token names, or the refusal.
    async fn viewer<B>(
        &self,
        req: &Request<B>,
        query: Option<&str>,
        peer: SocketAddr,
    ) -> Result<String, Response<Body>> {
        let given = access::token(query.unwrap_or(""), req.headers());
        let client = self
            .parts
            .config
            .trusted_proxies
            .client(peer.ip(), req.headers());
        self.parts
            .playback
            .viewer(given, client)
            .await
            .map_err(|r| access::refused(r, Subject::Viewer))
    }

    /// `GET` and `HEAD`.
    async fn get<B>(&self, req: &Request<B>, peer: SocketAddr) -> Response<Body> {
        let p = &*self.parts;
        let uri = req.uri();
        let mut buf = segments_buf();
        let route = Route::parse(split_path(uri.path(), &mut buf));
        if route.is_viewer() && !p.config.viewers {
            return error(
                StatusCode::NOT_FOUND,
                "viewers are served by the edges, not by this origin",
            );
        }
        if route.needs_api_token() {
            if let Err(r) = p.api_tokens.check(req.headers()) {
                return r;
            }
        }
        if p.edge.upstream.is_some() || p.edge.demand.is_some() {
            if let Some(r) = Box::pin(self.on_edge(&route, req, peer)).await {
                return r;
            }
        }
        let gzip = accepts_gzip(req.headers());
        let query = uri.query().unwrap_or("");
        let given = access::token(query, req.headers());
        // A live stream's playback policy: the token to carry on, or the refusal.
        let mut token = None;
        if let Some(name) = route.live_stream() {
            let marked = p.live.windows().get(name).is_some_and(|w| w.config.signed);
            if p.playback.is_signed(name, marked) {
                let subject = Subject::Live(name);
                // Boxed: only signed streams pay for the check's state.
                let client = p.config.trusted_proxies.client(peer.ip(), req.headers());
                match Box::pin(p.playback.check(subject, given, client)).await {
                    Ok(t) => token = Some(t),
                    Err(r) => return access::refused(r, subject),
                }
            }
        }
        // A token sent as a header is not in the URL: shared caches must not keep the answer.
        let private = given.is_some() && !query.split('&').any(|kv| kv.starts_with("token="));
        let mut resp = match route {
            Route::Health => text(StatusCode::OK, "ok\n"),
            Route::Metrics => crate::metrics::render(Arc::new(crate::metrics::Sources {
                windows: p.live.windows().clone(),
                held: p.live.held_count(),
                http: p.http_counts.clone(),
                upstream: p.edge.upstream.clone(),
                extra: p.gauges.clone(),
            })),
            Route::Time => crate::api::time(),
            Route::Streams => crate::api::streams(p.live.windows(), p.started, p.live.held()),
            Route::EdgeStats => p.edge.stats(),
            Route::Multivariant { name } => p.live.multivariant(name, gzip, token),
            Route::Mpd { name } => {
                let authority = uri.authority().map(|a| a.as_str());
                let forwarded = p.config.trusted_proxies.forwarded(peer.ip(), req.headers());
                p.live
                    .mpd(name, req.headers(), forwarded, authority, gzip, token)
            }
            Route::MediaPlaylist { name, rendition } => {
                p.live
                    .media_playlist(name, rendition, query, gzip, token)
                    .await
            }
            Route::Media {
                name,
                rendition,
                session,
                file,
            } => p.live.media(name, rendition, session, file).await,
            // Boxed, as the rare routes that wait on object storage or Redis.
            Route::VodList => match &p.vod {
                Some(vod) => Box::pin(vod.list()).await,
                None => error(StatusCode::NOT_FOUND, "no archive configured"),
            },
            Route::Assets => match &p.assets {
                Some(a) => Box::pin(a.list(query)).await,
                None => no_catalog(),
            },
            Route::Asset(id) => match &p.assets {
                Some(a) => Box::pin(a.get(id)).await,
                None => no_catalog(),
            },
            Route::DirectUpload(id) => match &p.uploads {
                Some(u) => Box::pin(u.direct(id)).await,
                None => no_uploads(),
            },
            Route::Tus(direct, Some(id)) if req.method() == Method::HEAD => match &p.uploads {
                Some(u) => Box::pin(u.head(direct, id, req.headers())).await,
                None => no_uploads(),
            },
            Route::DirectUploads | Route::Tus(..) => not_allowed(&route),
            Route::Vod(rest) => match &p.vod {
                Some(vod) => {
                    let client = p.config.trusted_proxies.client(peer.ip(), req.headers());
                    Box::pin(self.archive_file(vod, rest, query, given, client)).await
                }
                None => error(StatusCode::NOT_FOUND, "no archive configured"),
            },
            Route::Resume(at) => match (&p.resume, at) {
                (None, _) => error(StatusCode::NOT_FOUND, "no resume store"),
                (Some(_), None) => error(StatusCode::NOT_FOUND, "not found"),
                (Some(store), Some(asset)) => {
                    Box::pin(async {
                        match self.viewer(req, uri.query(), peer).await {
                            Ok(viewer) => resume::get(store, &viewer, asset).await,
                            Err(r) => r,
                        }
                    })
                    .await
                }
            },
            Route::Stream(_) | Route::StreamAction(..) | Route::ViewerTokens(_) => {
                not_allowed(&route)
            }
            // (WHIP's resources go to `send`.)
            Route::Whip(_) | Route::NotFound => error(StatusCode::NOT_FOUND, "not found"),
        };
        if private {
            crate::response::make_private(&mut resp);
        }
        resp
    }
}

impl Service {
    /// An edge's steps before serving locally: its replica opened, or the origins' answer.
    /// A playback token given is checked here first (for the live stream asked; for an
    /// archive, its signature and times): one that does not verify is not sent on (the origin
    /// then answers as for no token), so made-up tokens cannot get past the edge's cache.
    async fn on_edge<B>(
        &self,
        route: &Route<'_>,
        req: &Request<B>,
        peer: SocketAddr,
    ) -> Option<Response<Body>> {
        let p = &*self.parts;
        let uri = req.uri();
        let client = p.config.trusted_proxies.client(peer.ip(), req.headers());
        let mut token = None;
        if let (Some(given), Some(v)) = (
            access::token(uri.query().unwrap_or(""), req.headers()),
            p.playback.verifier(),
        ) {
            let ok = match (route.live_stream(), route) {
                (Some(name), _) => p
                    .playback
                    .check(Subject::Live(name), Some(given), client)
                    .await
                    .is_ok(),
                (None, Route::Vod(_)) => v.verify(given).await.is_ok(),
                _ => false,
            };
            token = ok.then_some(given);
        }
        let viewer = crate::edge::upstream::Viewer {
            forwarded: p.config.trusted_proxies.forwarded(peer.ip(), req.headers()),
            token,
            client: Some(client),
        };
        // Without its query: the token goes on only as checked above.
        let path = uri.path();
        let pq = match uri.query().map(strip_token) {
            Some(q) if !q.is_empty() => format!("{path}?{q}"),
            _ => path.to_string(),
        };
        p.edge
            .before_local(
                route,
                &pq,
                req.headers(),
                viewer,
                p.live.windows(),
                p.vod.is_some(),
                p.config.tls,
            )
            .await
    }

    /// `/vod/{id}/...`, when the archive's playback policy lets this request have it.
    async fn archive_file(
        &self,
        vod: &Vod,
        rest: &[&str],
        query: &str,
        given: Option<&str>,
        client: std::net::IpAddr,
    ) -> Response<Body> {
        let Some(&id) = rest.first() else {
            return error(StatusCode::NOT_FOUND, "not found");
        };
        let info = match vod.info(id).await {
            Ok(Some(info)) => info,
            Ok(None) => return error(StatusCode::NOT_FOUND, "no such archive"),
            Err(r) => return r,
        };
        let mut token = None;
        if self.parts.playback.is_signed(&info.name, info.signed) {
            let subject = Subject::Archive {
                id,
                stream: &info.name,
            };
            match self.parts.playback.check(subject, given, client).await {
                Ok(t) => token = Some(t),
                Err(r) => return access::refused(r, subject),
            }
        }
        vod.file(rest, query, token).await
    }
}

/// A query without its `token=` pairs.
fn strip_token(query: &str) -> String {
    query
        .split('&')
        .filter(|kv| !kv.starts_with("token=") && !kv.is_empty())
        .collect::<Vec<_>>()
        .join("&")
}

/// Headers a page's script may read: the HTTP ones players use, and tus's.
const EXPOSED: &str = "Content-Length, Date, Age, Location, Link, ETag, Upload-Offset, \
     Upload-Length, Upload-Defer-Length, Upload-Metadata, Upload-Expires, Tus-Resumable, \
     Tus-Version, Tus-Extension, Tus-Max-Size, Tus-Checksum-Algorithm";

/// Uploads on a node that does not take them (an edge).
fn no_uploads() -> Response<Body> {
    error(StatusCode::NOT_FOUND, "uploads go to the origin, not here")
}

/// The asset API on a node without the catalog (an edge).
fn no_catalog() -> Response<Body> {
    error(
        StatusCode::NOT_FOUND,
        "the asset catalog is on the origin, not here",
    )
}

/// `405` naming the methods the route answers.
fn not_allowed(route: &Route<'_>) -> Response<Body> {
    let allow = route.allow();
    let only = match allow.rsplit_once(", ") {
        Some((most, last)) => format!("only {most} and {last}"),
        None => format!("only {allow}"),
    };
    method_not_allowed(&only, allow)
}

/// A CORS preflight: the methods the route answers, and the headers the page asked to send.
fn preflight<B>(req: &Request<B>, route: &Route<'_>) -> Response<Body> {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = StatusCode::NO_CONTENT;
    if matches!(route, Route::Whip(_)) {
        set_static(
            &mut r,
            header::HeaderName::from_static("accept-post"),
            "application/sdp",
        );
    }
    set_static(&mut r, header::ACCESS_CONTROL_ALLOW_METHODS, route.allow());
    // `*` does not cover Authorization (which WHIP publishers send): echo what was asked.
    let asked = req
        .headers()
        .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
        .cloned()
        .unwrap_or(HeaderValue::from_static("*"));
    r.headers_mut()
        .insert(header::ACCESS_CONTROL_ALLOW_HEADERS, asked);
    set_static(&mut r, header::ACCESS_CONTROL_MAX_AGE, "86400");
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

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

    async fn call(service: &Service, method: Method, path: &str) -> Response<Body> {
        let req = Request::builder()
            .method(method)
            .uri(path)
            .body(http_body_util::Empty::<Bytes>::new())
            .unwrap();
        service.handle(req, ([127, 0, 0, 1], 1).into()).await
    }

    /// Methods, preflights and HEAD are decided once for every route.
    #[tokio::test]
    async fn methods_preflight_and_head() {
        let service = Service::new(Windows::new(), HttpConfig::default());
        let r = call(&service, Method::POST, "/live/s/index.m3u8").await;
        assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(r.headers()[header::ALLOW], "GET, HEAD, OPTIONS");
        let body = http_body_util::BodyExt::collect(r.into_body())
            .await
            .unwrap();
        assert_eq!(&body.to_bytes()[..], b"only GET, HEAD and OPTIONS\n");
        let r = call(&service, Method::OPTIONS, "/api/v1/resume/a").await;
        assert_eq!(r.status(), StatusCode::NO_CONTENT);
        assert_eq!(
            r.headers()[header::ACCESS_CONTROL_ALLOW_METHODS],
            "GET, HEAD, PUT, OPTIONS"
        );
        let r = call(&service, Method::OPTIONS, "/whip").await;
        assert_eq!(r.headers()["accept-post"], "application/sdp");
        let r = call(&service, Method::HEAD, "/healthz").await;
        assert_eq!(r.status(), StatusCode::OK);
        assert!(http_body::Body::is_end_stream(r.body()), "no body for HEAD");
        assert_eq!(r.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");
        for (method, path) in [(Method::POST, "/whip"), (Method::GET, "/whip/session/x")] {
            let r = call(&service, method, path).await;
            assert_eq!(r.status(), StatusCode::NOT_FOUND, "WHIP is not enabled");
        }
    }
}
