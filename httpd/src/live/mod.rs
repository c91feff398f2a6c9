//! Live streams, from the windows this node holds: LL-HLS playlists, the LL-DASH MPD, and the
//! CMAF init segments, segments and parts they name. Requests that wait for what is about to
//! exist (blocking reloads, preload hints, growing segments) are in [`blocking`].

pub mod blocking;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::{header, HeaderMap, Response, StatusCode};
use media::TrackKind;
use packager::hls::{self, Skip};
use packager::window::{TrackWindow, WindowState};
use packager::{StreamWindow, Windows};

use crate::access::carry;
use crate::body::Body;
use crate::response::{self, error, set_static, Cache};
use blocking::PlaylistQuery;

/// The live routes of one node.
pub struct Live {
    windows: Windows,
    /// Served over TLS (the MPD's UTCTiming URL is absolute).
    tls: bool,
    held: blocking::Held,
}

/// Key for a window's render cache: which playlist, which delta form, which encoding (or a
/// template for carrying tokens).
fn cache_key(track: usize, skip: Skip, form: Form) -> u64 {
    let skip = match skip {
        Skip::No => 0,
        Skip::Segments => 1,
        Skip::SegmentsAndDateRanges => 2,
    };
    let form = match form {
        Form::Plain => 0,
        Form::Gzip => 1,
        Form::Template => 2,
    };
    ((track as u64) << 4) | (skip << 2) | form
}

/// How a rendered playlist is kept.
#[derive(Clone, Copy)]
enum Form {
    Plain,
    Gzip,
    /// Prepared for carrying a token into its URIs ([`carry::template`]).
    Template,
}

impl Form {
    fn of(gzip: bool) -> Form {
        if gzip {
            Form::Gzip
        } else {
            Form::Plain
        }
    }
}

/// Part `part` of segment `msn` (the whole segment when `None`, once complete), if it exists
/// and is not a gap. A part of a publisher's pause (a complete segment of gaps only) is
/// answered empty rather than 404: a player may have asked for it as the preload hint, or in
/// the old Period, before the pause was known, and a 404 there ends Shaka's playback.
fn media_body(t: &TrackWindow, msn: u64, part: Option<u32>) -> Option<Body> {
    match part {
        Some(p) => {
            let pause = t.segment(msn).is_some_and(|s| s.complete && s.is_gap());
            t.part(msn, p)
                .filter(|p| !p.gap || pause)
                .map(|p| Body::from(p.data.clone()))
        }
        None => t
            .segment(msn)
            .filter(|s| s.complete)
            .map(|s| Body::chunks(s.chunks())),
    }
}

/// A playlist from its template with `token` carried into its URLs, made per request (tokens
/// differ per viewer); only copying, as the template knows where each URI ends.
fn with_token(template: &[u8], token: &str, gzip: bool) -> bytes::Bytes {
    let body = carry::fill(template, &format!("token={token}"));
    if !gzip {
        return body.into();
    }
    response::encode(String::from_utf8(body).unwrap_or_default(), gzip)
}

fn not_live() -> Response<Body> {
    error(StatusCode::NOT_FOUND, "no such live stream")
}

/// Why a stream's playlists are not served.
enum Unpublished {
    NoStream,
    /// Its first segment is still being made: its playlists do not exist yet.
    Starting,
}

impl Unpublished {
    fn response(self) -> Response<Body> {
        match self {
            Unpublished::NoStream => not_live(),
            Unpublished::Starting => error(
                StatusCode::NOT_FOUND,
                "the stream is starting: its first segment is not complete yet",
            ),
        }
    }
}

/// `{msn}.m4s` → (msn, None); `{msn}.{part}.m4s` → (msn, Some(part)).
fn media_file(file: &str) -> Option<(u64, Option<u32>)> {
    let stem = file.strip_suffix(".m4s")?;
    match stem.split_once('.') {
        Some((m, p)) => Some((m.parse().ok()?, Some(p.parse().ok()?))),
        None => Some((stem.parse().ok()?, None)),
    }
}

impl Live {
    /// `max_held`: requests that may wait on a window at once.
    pub fn new(windows: Windows, tls: bool, max_held: usize) -> Self {
        Live {
            windows,
            tls,
            held: blocking::Held::new(max_held),
        }
    }

    pub fn windows(&self) -> &Windows {
        &self.windows
    }

    /// Requests waiting on a window right now.
    pub fn held(&self) -> usize {
        self.held.now()
    }

    /// The count of waiting requests itself (for `/metrics`).
    pub fn held_count(&self) -> blocking::Held {
        self.held.clone()
    }

    fn window(&self, name: &str) -> Option<Arc<StreamWindow>> {
        self.windows.get(name)
    }

    /// The window playlists are rendered from, once published ([`WindowState::published`]);
    /// else the answer (404, `no-store`).
    fn published(&self, name: &str) -> Result<Arc<StreamWindow>, Unpublished> {
        let w = self.window(name).ok_or(Unpublished::NoStream)?;
        if !w.read(WindowState::published) {
            return Err(Unpublished::Starting);
        }
        Ok(w)
    }

    /// `/live/{name}/index.m3u8`; `token`: a playback token to carry into its URLs.
    pub fn multivariant(&self, name: &str, gzip: bool, token: Option<&str>) -> Response<Body> {
        let w = match self.published(name) {
            Ok(w) => w,
            Err(u) => return u.response(),
        };
        let td = w.read(|st| w.target_duration(st));
        let multivariant = usize::MAX >> 4;
        let body = match token {
            None => w.rendered(cache_key(multivariant, Skip::No, Form::of(gzip)), |st| {
                response::encode(hls::multivariant(&w, st), gzip)
            }),
            Some(t) => {
                let template = w
                    .rendered(cache_key(multivariant, Skip::No, Form::Template), |st| {
                        carry::template(&hls::multivariant(&w, st))
                    });
                with_token(&template, t, gzip)
            }
        };
        let cache = Cache::MaxAge((td / 2).max(1));
        response::playlist(body, gzip, response::PLAYLIST, cache)
    }

    /// `/live/{name}/manifest.mpd`. Its UTCTiming points at `/api/v1/time` on the host the
    /// player asked (or the one a trusted proxy says it asked: `forwarded` host and scheme);
    /// `authority` is the request URI's (HTTP/2 names the host there).
    pub fn mpd(
        &self,
        name: &str,
        headers: &HeaderMap,
        forwarded: (Option<&str>, Option<&str>),
        authority: Option<&str>,
        gzip: bool,
        token: Option<&str>,
    ) -> Response<Body> {
        let w = match self.published(name) {
            Ok(w) => w,
            Err(u) => return u.response(),
        };
        let host = forwarded
            .0
            .or_else(|| headers.get(header::HOST)?.to_str().ok())
            .or(authority)
            .unwrap_or("localhost");
        let scheme = forwarded
            .1
            .unwrap_or(if self.tls { "https" } else { "http" });
        let time_url = format!("{scheme}://{host}/api/v1/time");
        let mut body = w.read(|st| packager::dash::mpd(&w, st, SystemTime::now(), &time_url));
        if let Some(t) = token {
            body = carry::mpd(&body, &format!("token={t}"));
        }
        let body = response::encode(body, gzip);
        let mut r = response::playlist(body, gzip, response::MPD, Cache::MaxAge(1));
        // The time URL comes from these: a shared cache must not give one host's to another.
        set_static(
            &mut r,
            header::VARY,
            "Accept-Encoding, Host, X-Forwarded-Host, X-Forwarded-Proto",
        );
        r
    }

    /// `/live/{name}/{rendition}/index.m3u8`, blocking when asked for a part not yet there.
    pub async fn media_playlist(
        &self,
        name: &str,
        rendition: &str,
        query: &str,
        gzip: bool,
        token: Option<&str>,
    ) -> Response<Body> {
        let q = match PlaylistQuery::parse(query) {
            Ok(q) => q,
            Err(msg) => return error(StatusCode::BAD_REQUEST, msg),
        };
        let w = match self.published(name) {
            Ok(w) => w,
            Err(u) => return u.response(),
        };
        let Some((track, td)) = w.read(|st| {
            st.tracks
                .iter()
                .position(|t| t.rendition == rendition)
                .map(|i| (i, w.target_duration(st)))
        }) else {
            return error(StatusCode::NOT_FOUND, "no such rendition");
        };
        // After EXT-X-ENDLIST the delivery directives are ignored (RFC 8216bis §6.2.5.2): the
        // playlist is final, whatever a player asks to wait for.
        if let Some(msn) = q.msn.filter(|_| !w.is_ended()) {
            let part = q.part;
            if w.read(|st| blocking::too_far_ahead(&st.tracks[track], msn, part)) {
                return error(
                    StatusCode::BAD_REQUEST,
                    "_HLS_msn/_HLS_part too far ahead of the live edge",
                );
            }
            let ready = move |st: &WindowState| blocking::playlist_has(st, track, msn, part);
            if !w.read(ready) {
                let Some(_held) = self.held.take() else {
                    return blocking::too_many();
                };
                if !blocking::wait_until(&w, Duration::from_secs(3 * td), ready).await {
                    return error(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "the requested part did not appear in time",
                    );
                }
            }
        }
        let ended = w.is_ended();
        let body = match token {
            None => w.rendered(cache_key(track, q.skip, Form::of(gzip)), |st| {
                response::encode(hls::media_playlist(&w, st, track, q.skip), gzip)
            }),
            Some(t) => {
                let template = w.rendered(cache_key(track, q.skip, Form::Template), |st| {
                    carry::template(&hls::media_playlist(&w, st, track, q.skip))
                });
                with_token(&template, t, gzip)
            }
        };
        let cache = if ended || q.msn.is_some() {
            // Identical blocking requests from every viewer map to one cached response.
            Cache::MaxAge(6 * td)
        } else {
            // Half a part target, rounded to what max-age can say.
            Cache::MaxAge(1)
        };
        response::playlist(body, gzip, response::PLAYLIST, cache)
    }

    /// `/live/{name}/{rendition}/{session}/{file}`: init segment, segment or part.
    pub async fn media(
        &self,
        name: &str,
        rendition: &str,
        session: &str,
        file: &str,
    ) -> Response<Body> {
        let Some(w) = self.window(name) else {
            return not_live();
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
            return response::sized(Body::from(init), content_type, Cache::Immutable);
        }
        let Some((msn, part)) = media_file(file) else {
            return error(StatusCode::NOT_FOUND, "not found");
        };
        // One look at the window: the bytes when they are there, else what to wait for.
        let (body, td, (open_msn, _), complete, soon) = w.read(|st| {
            let t = &st.tracks[track];
            (
                media_body(t, msn, part),
                w.target_duration(st),
                blocking::live_edge(t),
                t.segment(msn).is_some_and(|s| s.complete),
                blocking::coming_soon(t, msn, part),
            )
        });
        if let Some(b) = body {
            return response::sized(b, content_type, Cache::Immutable);
        }
        let patience = Duration::from_secs(3 * td);
        // A segment being written (or the next one) is sent as it grows.
        if part.is_none() && !complete && (msn == open_msn || msn == open_msn + 1) {
            let Some(held) = self.held.take() else {
                return blocking::too_many();
            };
            return blocking::growing_segment(w, track, msn, patience, content_type, held);
        }
        // A part not produced yet but about to be (a preload hint) is waited for; the response
        // then carries the whole thing.
        if soon {
            let Some(_held) = self.held.take() else {
                return blocking::too_many();
            };
            let ready = move |st: &WindowState| blocking::settled(&st.tracks[track], msn, part);
            if !blocking::wait_until(&w, patience, ready).await {
                return error(StatusCode::NOT_FOUND, "not produced in time");
            }
        }
        match w.read(|st| media_body(&st.tracks[track], msn, part)) {
            Some(b) => response::sized(b, content_type, Cache::Immutable),
            // Evicted, abandoned (the segment ended before this part), or never will exist.
            None => error(StatusCode::NOT_FOUND, "not in the live window"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_file_names() {
        assert_eq!(media_file("12.m4s"), Some((12, None)));
        assert_eq!(media_file("12.3.m4s"), Some((12, Some(3))));
        assert_eq!(media_file("12.x.m4s"), None);
        assert_eq!(media_file("init.mp4"), None);
    }
}
