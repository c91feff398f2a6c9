//! The LL-HLS core: requests that wait on the window's notifier for something that is about to
//! exist. Blocking playlist reloads (`_HLS_msn`/`_HLS_part`), preload-hinted parts, and LL-DASH
//! segments still being written, which are streamed part by part as they land.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::{Response, StatusCode};
use packager::hls::Skip;
use packager::window::{TrackWindow, WindowState};
use packager::StreamWindow;

use crate::body::Body;
use crate::response::{error, set_static, Cache};

/// Requests waiting on a window, counted against a cap: a crowd (or an attacker) holding
/// blocking reloads cannot grow memory without bound.
#[derive(Clone)]
pub struct Held {
    count: Arc<AtomicUsize>,
    cap: usize,
}

/// One waiting request; it stops counting when dropped.
pub struct Holding(Arc<AtomicUsize>);

impl Held {
    pub fn new(cap: usize) -> Self {
        Held {
            count: Arc::default(),
            cap,
        }
    }

    /// A place for one more waiting request, if the cap allows.
    pub fn take(&self) -> Option<Holding> {
        let before = self.count.fetch_add(1, Ordering::Relaxed);
        if before >= self.cap {
            self.count.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        Some(Holding(self.count.clone()))
    }

    pub fn now(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }
}

impl Drop for Holding {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// `503` with `Retry-After`: too many requests wait already.
pub fn too_many() -> Response<Body> {
    let mut r = error(
        StatusCode::SERVICE_UNAVAILABLE,
        "too many requests are waiting for parts; try again",
    );
    set_static(&mut r, http::header::RETRY_AFTER, "1");
    r
}

/// RFC 8216bis §6.2.5.2: a request more than two segments ahead is answered at once.
pub const ADVANCE_SEGMENT_LIMIT: u64 = 2;
/// ... or more than three parts ahead of the last part.
pub const ADVANCE_PART_LIMIT: u32 = 3;

/// A media playlist request's delivery directives.
#[derive(Debug, Default)]
pub struct PlaylistQuery {
    pub msn: Option<u64>,
    pub part: Option<u32>,
    pub skip: Skip,
}

impl PlaylistQuery {
    pub fn parse(q: &str) -> Result<Self, &'static str> {
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

/// (msn of the segment being written, parts it has so far).
pub fn live_edge(t: &TrackWindow) -> (u64, u32) {
    let open = t.open_msn();
    (
        open,
        t.segment(open).map(|s| s.parts.len() as u32).unwrap_or(0),
    )
}

/// A blocking reload asks too far past the live edge (answered at once with 400).
pub fn too_far_ahead(t: &TrackWindow, msn: u64, part: Option<u32>) -> bool {
    let (open_msn, open_parts) = live_edge(t);
    msn > open_msn + ADVANCE_SEGMENT_LIMIT
        || (msn == open_msn && part.is_some_and(|p| p > open_parts + ADVANCE_PART_LIMIT))
}

/// Whether the playlist for `track` already holds what `_HLS_msn`/`_HLS_part` asked for.
pub fn playlist_has(st: &WindowState, track: usize, msn: u64, part: Option<u32>) -> bool {
    let t = &st.tracks[track];
    // Everything before the open segment is complete. A part index past the end of a
    // completed segment is satisfied by that segment's completion.
    t.open_msn() > msn
        || part.is_some_and(|p| t.segment(msn).is_some_and(|s| s.parts.len() as u32 > p))
}

/// Whether part `part` of segment `msn` (the segment itself when `None`) may still come soon
/// enough to wait for: a preload hint, or the next few parts.
pub fn coming_soon(t: &TrackWindow, msn: u64, part: Option<u32>) -> bool {
    let (open_msn, open_parts) = live_edge(t);
    match part {
        Some(p) => {
            (msn == open_msn && p <= open_parts + ADVANCE_PART_LIMIT)
                || (msn == open_msn + 1 && p <= ADVANCE_PART_LIMIT)
        }
        None => msn == open_msn,
    }
}

/// Whether part `part` of segment `msn` (the whole segment when `None`) exists, or never will.
pub fn settled(t: &TrackWindow, msn: u64, part: Option<u32>) -> bool {
    match part {
        // A part index past the end of a completed segment will never exist.
        Some(p) => t.part(msn, p).is_some() || t.open_msn() > msn,
        None => t.segment(msn).is_some_and(|s| s.complete),
    }
}

/// Waits until `ready` holds or the stream ends; false on timeout.
pub async fn wait_until(
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

/// Streams segment `msn` of `track` part by part as the packager writes it; ends when the
/// segment is complete, fails (cutting the connection) if a part takes longer than `patience`
/// or the stream ends first. LL-DASH players ask for a segment early (availabilityTimeOffset)
/// and read its parts as they land.
pub fn growing_segment(
    w: Arc<StreamWindow>,
    track: usize,
    msn: u64,
    patience: Duration,
    content_type: &'static str,
    held: Holding,
) -> Response<Body> {
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    tokio::spawn(async move {
        let _held = held;
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
    set_static(&mut r, http::header::CONTENT_TYPE, content_type);
    r.headers_mut()
        .insert(http::header::CACHE_CONTROL, Cache::Immutable.header());
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_on_waiting_requests_frees_as_they_end() {
        let held = Held::new(2);
        let a = held.take().unwrap();
        let _b = held.take().unwrap();
        assert!(held.take().is_none(), "a third waits for room");
        drop(a);
        assert_eq!(held.now(), 1);
        assert!(held.take().is_some());
        assert_eq!(too_many().headers()[http::header::RETRY_AFTER], "1");
    }

    #[test]
    fn query_rules() {
        assert!(PlaylistQuery::parse("_HLS_part=1").is_err());
        let q = PlaylistQuery::parse("_HLS_msn=5&_HLS_part=2&_HLS_skip=YES").unwrap();
        assert_eq!((q.msn, q.part, q.skip), (Some(5), Some(2), Skip::Segments));
        assert!(PlaylistQuery::parse("_HLS_msn=x").is_err());
        assert!(PlaylistQuery::parse("_HLS_skip=maybe").is_err());
    }
}
