//! Where a request goes: the one place that reads the path.
//!
//! | path | route |
//! | --- | --- |
//! | `/healthz` | 200 when ready |
//! | `/metrics` | Prometheus metrics (API token) |
//! | `/api/v1/time` | the server's UTC time (ISO 8601), the MPD's UTCTiming source |
//! | `/api/v1/streams` | JSON: live streams, tracks, codecs, bitrate, uptime; `POST` creates one |
//! | `/api/v1/streams/{name}` | `DELETE` a created stream |
//! | `/api/v1/streams/{name}/key`, `.../kick`, `.../tokens` | `POST`: rotate its key, kick its publisher, mint a playback token |
//! | `/api/v1/viewers/{viewer}/tokens` | `POST`: mint a viewer token (for the resume API) |
//! | `/api/v1/vod` | JSON: the VOD archives |
//! | `/api/v1/assets` | JSON: the catalog's assets (filtered, a page at a time); `POST` one fetched from a URL |
//! | `/api/v1/assets/{id}` | JSON: one asset; `PATCH` its metadata, `DELETE` it and its media |
//! | `/api/v1/uploads` | `POST`: a direct upload URL; `/api/v1/uploads/{id}`: where it is |
//! | `/uploads/{id}`, `/uploads/{id}/{upload}` | tus: creation; `HEAD`, `PATCH`, `DELETE` an upload (the URL is the credential) |
//! | `/api/v1/edge` | JSON: an edge's upstream fetches, cache hits, coalesced requests |
//! | `/api/v1/resume/{asset}` | `PUT` a position (`{"position": s}`), `GET` it back; the viewer is the viewer token's |
//!
//! Everything under `/api/v1/` but `/api/v1/time` and the resume API takes an API token.
//! | `/live/{name}/index.m3u8` | multivariant playlist |
//! | `/live/{name}/manifest.mpd` | LL-DASH MPD (static once the stream ended) |
//! | `/live/{name}/{rendition}/index.m3u8` | media playlist (`_HLS_msn`, `_HLS_part`, `_HLS_skip`) |
//! | `/live/{name}/{rendition}/{session}/init.mp4` | CMAF header |
//! | `/live/{name}/{rendition}/{session}/{msn}.m4s` | segment (one being written is streamed as it grows) |
//! | `/live/{name}/{rendition}/{session}/{msn}.{part}.m4s` | part (preload hints wait for it) |
//! | `/vod/{id}/index.m3u8`, `/vod/{id}/manifest.mpd`, `/vod/{id}/{rendition}/...` | an archive (EVENT playlist while live, VOD after) |
//! | `/whip`, `/whip/{key}`, `/whip/session/{id}` | WebRTC ingest signalling (RFC 9725) |

/// No route has more path segments than this; a longer path is not found.
const MAX_SEGMENTS: usize = 8;

/// The path's segments (after the leading `/`), in `buf`; none when there are too many.
pub fn split_path<'a, 'b>(path: &'a str, buf: &'b mut [&'a str; MAX_SEGMENTS]) -> &'b [&'a str] {
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

/// A name that is safe as one path segment of a key or a file: letters, digits, `-`, `_`, `.`,
/// not starting with a dot (archive ids and files, viewer and asset ids).
pub fn plain_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 200
        && !s.starts_with('.')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

/// A buffer for [`split_path`].
pub fn segments_buf<'a>() -> [&'a str; MAX_SEGMENTS] {
    [""; MAX_SEGMENTS]
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route<'a> {
    Health,
    Metrics,
    Time,
    Streams,
    /// `/api/v1/streams/{name}`
    Stream(&'a str),
    /// `/api/v1/streams/{name}/{action}`: `key`, `kick`, `tokens` (others: not found).
    StreamAction(&'a str, &'a str),
    /// `/api/v1/viewers/{viewer}/tokens`
    ViewerTokens(&'a str),
    VodList,
    Assets,
    /// `/api/v1/assets/{id}`
    Asset(&'a str),
    /// `/api/v1/uploads`
    DirectUploads,
    /// `/api/v1/uploads/{id}`
    DirectUpload(&'a str),
    /// `/uploads/{direct}` (tus creation) and `/uploads/{direct}/{upload}`.
    Tus(&'a str, Option<&'a str>),
    EdgeStats,
    /// `None`: under `/api/v1/resume/` but not `{asset}`.
    Resume(Option<&'a str>),
    Multivariant {
        name: &'a str,
    },
    Mpd {
        name: &'a str,
    },
    MediaPlaylist {
        name: &'a str,
        rendition: &'a str,
    },
    Media {
        name: &'a str,
        rendition: &'a str,
        session: &'a str,
        file: &'a str,
    },
    /// `/vod/` and what follows.
    Vod(&'a [&'a str]),
    Whip(Whip<'a>),
    NotFound,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Whip<'a> {
    /// `/whip`, or `/whip/{key}`.
    Endpoint(Option<&'a str>),
    /// `/whip/session`: not a key, and nothing to publish to.
    Sessions,
    /// `/whip/session/{id}`.
    Session(&'a str),
    /// Anything else under `/whip/`.
    Other,
}

impl<'a> Route<'a> {
    pub fn parse(segs: &'a [&'a str]) -> Route<'a> {
        match segs {
            ["healthz"] => Route::Health,
            ["metrics"] => Route::Metrics,
            ["api", "v1", "time"] => Route::Time,
            ["api", "v1", "streams"] => Route::Streams,
            ["api", "v1", "streams", name] => Route::Stream(name),
            ["api", "v1", "streams", name, action @ ("key" | "kick" | "tokens")] => {
                Route::StreamAction(name, action)
            }
            ["api", "v1", "viewers", viewer, "tokens"] => Route::ViewerTokens(viewer),
            ["api", "v1", "vod"] => Route::VodList,
            ["api", "v1", "assets"] => Route::Assets,
            ["api", "v1", "assets", id] => Route::Asset(id),
            ["api", "v1", "uploads"] => Route::DirectUploads,
            ["api", "v1", "uploads", id] => Route::DirectUpload(id),
            ["uploads", direct] => Route::Tus(direct, None),
            ["uploads", direct, upload] => Route::Tus(direct, Some(upload)),
            ["api", "v1", "edge"] => Route::EdgeStats,
            ["api", "v1", "resume", asset] => Route::Resume(Some(asset)),
            ["api", "v1", "resume", ..] => Route::Resume(None),
            ["live", name, "index.m3u8"] => Route::Multivariant { name },
            ["live", name, "manifest.mpd"] => Route::Mpd { name },
            ["live", name, rendition, "index.m3u8"] => Route::MediaPlaylist { name, rendition },
            ["live", name, rendition, session, file] => Route::Media {
                name,
                rendition,
                session,
                file,
            },
            ["vod", rest @ ..] => Route::Vod(rest),
            ["whip"] => Route::Whip(Whip::Endpoint(None)),
            ["whip", "session", id] => Route::Whip(Whip::Session(id)),
            ["whip", "session"] => Route::Whip(Whip::Sessions),
            ["whip", key] => Route::Whip(Whip::Endpoint(Some(key))),
            ["whip", ..] => Route::Whip(Whip::Other),
            _ => Route::NotFound,
        }
    }

    /// The methods the route answers: a 405's `Allow`, and what a CORS preflight permits.
    pub fn allow(&self) -> &'static str {
        match self {
            Route::Resume(_) => "GET, HEAD, PUT, OPTIONS",
            Route::Streams => "GET, HEAD, POST, OPTIONS",
            Route::Stream(_) => "DELETE, OPTIONS",
            Route::Asset(_) => "GET, HEAD, PATCH, DELETE, OPTIONS",
            Route::DirectUploads | Route::Tus(_, None) => "POST, OPTIONS",
            Route::Tus(_, Some(_)) => "HEAD, PATCH, DELETE, POST, OPTIONS",
            Route::StreamAction(..) | Route::ViewerTokens(_) => "POST, OPTIONS",
            Route::Whip(_) => "POST, DELETE, PATCH, OPTIONS",
            _ => "GET, HEAD, OPTIONS",
        }
    }

    /// A route of the operator's API, which takes an API token.
    pub fn needs_api_token(&self) -> bool {
        matches!(
            self,
            Route::Metrics
                | Route::Streams
                | Route::Stream(_)
                | Route::StreamAction(..)
                | Route::ViewerTokens(_)
                | Route::VodList
                | Route::Assets
                | Route::Asset(_)
                | Route::DirectUploads
                | Route::DirectUpload(_)
                | Route::EdgeStats
        )
    }

    /// A route of viewers (`/live`, `/vod`), which an origin can leave to its edges.
    pub fn is_viewer(&self) -> bool {
        matches!(
            self,
            Route::Multivariant { .. }
                | Route::Mpd { .. }
                | Route::MediaPlaylist { .. }
                | Route::Media { .. }
                | Route::Vod(_)
        )
    }

    /// The live stream the route is about, if any.
    pub fn live_stream(&self) -> Option<&'a str> {
        match *self {
            Route::Multivariant { name }
            | Route::Mpd { name }
            | Route::MediaPlaylist { name, .. }
            | Route::Media { name, .. } => Some(name),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(path: &'static str) -> Route<'static> {
        let segs: Vec<&'static str> = path.trim_start_matches('/').split('/').collect();
        Route::parse(Box::leak(segs.into_boxed_slice()))
    }

    #[test]
    fn paths() {
        assert_eq!(route("/healthz"), Route::Health);
        assert_eq!(
            route("/live/s/video/abc/3.1.m4s"),
            Route::Media {
                name: "s",
                rendition: "video",
                session: "abc",
                file: "3.1.m4s"
            }
        );
        assert_eq!(
            route("/live/s/video/index.m3u8"),
            Route::MediaPlaylist {
                name: "s",
                rendition: "video"
            }
        );
        assert_eq!(route("/whip"), Route::Whip(Whip::Endpoint(None)));
        assert_eq!(route("/whip/k"), Route::Whip(Whip::Endpoint(Some("k"))));
        assert_eq!(route("/whip/session/x"), Route::Whip(Whip::Session("x")));
        assert_eq!(route("/whip/session"), Route::Whip(Whip::Sessions));
        assert_eq!(route("/whip/session/x/y"), Route::Whip(Whip::Other));
        assert_eq!(route("/api/v1/resume/a"), Route::Resume(Some("a")));
        assert_eq!(route("/api/v1/resume/v/a"), Route::Resume(None));
        assert_eq!(
            route("/api/v1/streams/s/kick"),
            Route::StreamAction("s", "kick")
        );
        assert_eq!(route("/api/v1/streams/s/other"), Route::NotFound);
        assert_eq!(route("/live/s"), Route::NotFound);
        let mut buf = segments_buf();
        assert!(
            split_path("/a/b/c/d/e/f/g/h/i", &mut buf).is_empty(),
            "too deep"
        );
    }

    #[test]
    fn plain_names() {
        assert!(plain_name("viewer-1") && plain_name("demo-3c903290b91f"));
        assert!(!plain_name("..") && !plain_name("a/b") && !plain_name(""));
    }
}
