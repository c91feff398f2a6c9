//! Building responses: cache policies, content types, gzip for text, error bodies.

use std::io::Write;

use bytes::Bytes;
use flate2::write::GzEncoder;
use http::{header, HeaderValue, Response, StatusCode};

use crate::body::Body;

/// How long caches (players, CDNs, the edge's own) may keep a response.
///
/// Following the low-latency server profile of RFC 8216bis (Appendix B): media bytes are
/// immutable (a publish session has its own path segment, so a URL never changes meaning);
/// blocking playlist responses are cacheable so a CDN collapses the identical requests of all
/// viewers into one; plain playlist requests are short-lived; errors, APIs and anything not yet
/// produced are never stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cache {
    Immutable,
    NoStore,
    /// `public, max-age=N` (seconds).
    MaxAge(u64),
}

impl Cache {
    pub fn header(self) -> HeaderValue {
        match self {
            Cache::Immutable => HeaderValue::from_static("public, max-age=31536000, immutable"),
            Cache::NoStore => HeaderValue::from_static("no-store"),
            Cache::MaxAge(1) => HeaderValue::from_static("public, max-age=1"),
            Cache::MaxAge(n) => HeaderValue::from_str(&format!("public, max-age={n}"))
                .expect("digits are a valid header value"),
        }
    }
}

pub const PLAYLIST: &str = "application/vnd.apple.mpegurl";
pub const MPD: &str = "application/dash+xml";
pub const JSON: &str = "application/json";
pub const TEXT: &str = "text/plain; charset=utf-8";

pub fn set_static(r: &mut Response<Body>, name: header::HeaderName, value: &'static str) {
    r.headers_mut()
        .insert(name, HeaderValue::from_static(value));
}

fn with(mut r: Response<Body>, content_type: &'static str, cache: Cache) -> Response<Body> {
    set_static(&mut r, header::CONTENT_TYPE, content_type);
    r.headers_mut()
        .insert(header::CACHE_CONTROL, cache.header());
    r
}

/// A body whose length is known, with `Content-Length` (HEAD answers keep it).
pub fn sized(body: Body, content_type: &'static str, cache: Cache) -> Response<Body> {
    let len = body.len();
    let mut r = with(Response::new(body), content_type, cache);
    r.headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    r
}

/// A playlist or MPD: `body` is gzip-encoded when `gzip` says so.
pub fn playlist(
    body: Bytes,
    gzip: bool,
    content_type: &'static str,
    cache: Cache,
) -> Response<Body> {
    let mut r = sized(Body::from(body), content_type, cache);
    if gzip {
        set_static(&mut r, header::CONTENT_ENCODING, "gzip");
    }
    set_static(&mut r, header::VARY, "Accept-Encoding");
    r
}

pub fn json(v: &serde_json::Value) -> Response<Body> {
    with(
        Response::new(Body::from(v.to_string())),
        JSON,
        Cache::NoStore,
    )
}

pub fn text(status: StatusCode, body: &'static str) -> Response<Body> {
    let mut r = with(Response::new(Body::from(body)), TEXT, Cache::NoStore);
    *r.status_mut() = status;
    r
}

/// An error: the status and a line a person can act on; never cached.
pub fn error(status: StatusCode, msg: &str) -> Response<Body> {
    let mut r = with(
        Response::new(Body::from(format!("{msg}\n"))),
        TEXT,
        Cache::NoStore,
    );
    *r.status_mut() = status;
    r
}

/// A response only the client may keep: `public` becomes `private` in `Cache-Control`.
pub fn make_private(r: &mut Response<Body>) {
    let Some(v) = r
        .headers()
        .get(header::CACHE_CONTROL)
        .and_then(|v| v.to_str().ok())
    else {
        return;
    };
    if let Some(rest) = v.strip_prefix("public") {
        if let Ok(v) = HeaderValue::from_str(&format!("private{rest}")) {
            r.headers_mut().insert(header::CACHE_CONTROL, v);
        }
    }
}

/// `405` with the methods the route answers.
pub fn method_not_allowed(msg: &str, allow: &'static str) -> Response<Body> {
    let mut r = error(StatusCode::METHOD_NOT_ALLOWED, msg);
    set_static(&mut r, header::ALLOW, allow);
    r
}

/// Whether the client takes gzip (`Accept-Encoding`, `q=0` honoured).
pub fn accepts_gzip(headers: &http::HeaderMap) -> bool {
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

/// Text as the response body: gzip-encoded when `gzip`.
pub fn encode(text: String, gzip: bool) -> Bytes {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzip_negotiation() {
        let h = |v: &str| {
            let mut h = http::HeaderMap::new();
            h.insert(header::ACCEPT_ENCODING, HeaderValue::from_str(v).unwrap());
            h
        };
        assert!(accepts_gzip(&h("gzip, deflate, br")));
        assert!(!accepts_gzip(&h("gzip;q=0, br")));
        assert!(!accepts_gzip(&h("br")));
    }

    #[test]
    fn cache_headers() {
        assert_eq!(Cache::MaxAge(12).header(), "public, max-age=12");
        assert_eq!(Cache::MaxAge(1).header(), "public, max-age=1");
        assert_eq!(
            Cache::Immutable.header(),
            "public, max-age=31536000, immutable"
        );
    }
}
