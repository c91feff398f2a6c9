//! The origin's side: every live window, mirrored into Redis as it grows (a window sink beside
//! the archive writer).
//!
//! [`mirror_all`] follows the set of windows (woken when one comes or goes) and runs one
//! [`mirror`] per publish session. A mirror reads what is new in its window each time the window
//! changes and sends it as one pipeline; the window itself is what bounds the backlog. When
//! Redis is slow or down the origin keeps serving from memory: the mirror counts what it could
//! not send, logs once, reconnects, and when Redis is back re-sends the stream from the window
//! as it is then (the edges drop what they already have).
//!
//! Every key expires a little after the window would have dropped it (refreshed on writes) and
//! the event stream is trimmed by age, so Redis memory stays bounded.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use packager::window::{PartIn, StreamWindow, Windows};
use redis::AsyncCommands;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use crate::client::{Conn, RedisClient};
use crate::wire::{self, Event, Meta};

/// What the mirrors did: events sent, attempts that failed (each followed by a reconnect and a
/// re-send of the window), and how long the last write took (from the window's change being
/// seen to Redis's answer: what the mirror adds to an edge's latency), µs.
#[derive(Debug, Default)]
pub struct MirrorStats {
    pub sent: AtomicU64,
    pub failed: AtomicU64,
    pub last_write_us: AtomicU64,
}

/// Mirrors every window in `windows` while it lives, each on `tasks`. Stops looking for new
/// windows on `cancel`; the mirrors running then finish when their windows end (shutdown ends
/// them), or give up on `cancel` if Redis is away.
pub async fn mirror_all(
    windows: Windows,
    client: RedisClient,
    stats: Arc<MirrorStats>,
    tasks: TaskTracker,
    cancel: CancellationToken,
) {
    info!(url = client.url(), "mirroring live windows into Redis");
    let mut changed = windows.subscribe();
    // Stream name → the session being mirrored.
    let mut running: HashMap<String, String> = HashMap::new();
    loop {
        changed.borrow_and_update();
        for w in windows.all() {
            if running.get(&w.name) != Some(&w.session) {
                running.insert(w.name.clone(), w.session.clone());
                tasks.spawn(mirror(w, client.clone(), stats.clone(), cancel.clone()));
            }
        }
        running.retain(|name, session| windows.get(name).is_some_and(|w| &w.session == session));
        tokio::select! {
            _ = cancel.cancelled() => return,
            r = changed.changed() => if r.is_err() { return },
        }
    }
}

/// Where the mirror of one track stands: the segment and part sent last.
#[derive(Clone, Copy, Default)]
struct Cursor {
    msn: Option<u64>,
    parts: usize,
    completed: bool,
}

/// Mirrors one window until it ends.
async fn mirror(
    w: Arc<StreamWindow>,
    client: RedisClient,
    stats: Arc<MirrorStats>,
    cancel: CancellationToken,
) {
    let Some(mut conn) = client.connect_retrying(&cancel).await else {
        return;
    };
    let name = w.name.clone();
    let window = w.config.segment_target * w.config.segments as u32;
    let ttl = window * 2 + Duration::from_secs(30);
    let mut rx = w.subscribe();
    let tracks = w.read(|st| st.tracks.len());
    let mut cursors = vec![Cursor::default(); tracks];
    let mut need_meta = true;
    let mut failing = false;
    loop {
        let seen = std::time::Instant::now();
        let step = async {
            if need_meta {
                write_meta(&w, &mut conn, ttl).await?;
                need_meta = false;
            }
            let (events, ended) = w.read(|st| new_events(&w, st, &mut cursors));
            if !events.is_empty() {
                send(&name, &mut conn, &events, ttl, window).await?;
            }
            redis::RedisResult::Ok((events.len(), ended))
        };
        match step.await {
            Ok((sent, ended)) => {
                stats.sent.fetch_add(sent as u64, Ordering::Relaxed);
                if sent > 0 {
                    let us = seen.elapsed().as_micros().min(u64::MAX as u128) as u64;
                    stats.last_write_us.store(us, Ordering::Relaxed);
                }
                if failing {
                    info!(stream = %name, "Redis mirror back");
                    failing = false;
                }
                if ended {
                    debug!(stream = %name, "mirror done");
                    return;
                }
            }
            Err(e) => {
                stats.failed.fetch_add(1, Ordering::Relaxed);
                if !failing {
                    warn!(stream = %name, error = %e, "Redis mirror failing; viewers are still served from memory");
                    failing = true;
                }
                // Catch up once Redis is back: the stream again, from the current window.
                cursors = vec![Cursor::default(); tracks];
                need_meta = true;
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                }
                match client.connect_retrying(&cancel).await {
                    Some(c) => conn = c,
                    None => return,
                }
                continue;
            }
        }
        if rx.changed().await.is_err() {
            return;
        }
    }
}

/// What the window holds past the cursors, in order; and whether it has ended.
fn new_events(
    w: &StreamWindow,
    st: &packager::window::WindowState,
    cursors: &mut [Cursor],
) -> (Vec<Event>, bool) {
    let mut ev = Vec::new();
    for (i, t) in st.tracks.iter().enumerate() {
        let c = &mut cursors[i];
        for s in &t.segments {
            if c.msn.is_some_and(|m| s.msn < m) {
                continue;
            }
            if c.msn != Some(s.msn) {
                *c = Cursor {
                    msn: Some(s.msn),
                    parts: 0,
                    completed: false,
                };
            }
            let seg_start = s
                .program_date_time
                .duration_since(w.started)
                .unwrap_or_default();
            let mut start = seg_start
                + s.parts[..c.parts.min(s.parts.len())]
                    .iter()
                    .map(|p| p.duration)
                    .sum::<Duration>();
            for (k, p) in s.parts.iter().enumerate().skip(c.parts) {
                let last = k + 1 == s.parts.len();
                ev.push(Event::Part(PartIn {
                    track: i,
                    msn: s.msn,
                    index: k as u32,
                    data: p.data.clone(),
                    duration: p.duration,
                    independent: p.independent,
                    gap: p.gap,
                    last_in_segment: false,
                    end_expected: last && s.end_expected,
                    discontinuity: k == 0 && s.discontinuity,
                    start,
                    samples: p.samples,
                    target_duration: st.target_duration,
                    announced: s.announced,
                    period: Some(s.period),
                    wall_offset: s.wall_offset,
                }));
                start += p.duration;
            }
            c.parts = s.parts.len();
            if s.complete && !c.completed {
                c.completed = true;
                ev.push(Event::Complete {
                    track: i,
                    msn: s.msn,
                    target_duration: st.target_duration,
                });
            }
        }
    }
    if st.ended {
        ev.push(Event::End);
    }
    (ev, st.ended)
}

async fn write_meta(w: &StreamWindow, conn: &mut Conn, ttl: Duration) -> redis::RedisResult<()> {
    let meta = Meta::of(w);
    let inits: Vec<Bytes> = w.read(|st| st.tracks.iter().map(|t| t.init.clone()).collect());
    let mut pipe = redis::pipe();
    pipe.atomic();
    for (i, init) in inits.iter().enumerate() {
        pipe.set_ex(wire::init_key(&w.name, i), init.as_ref(), ttl.as_secs());
    }
    pipe.set_ex(wire::meta_key(&w.name), meta.to_json(), ttl.as_secs());
    pipe.del(wire::events_key(&w.name));
    pipe.query_async::<()>(conn).await?;
    let _: () = conn.sadd(wire::STREAMS, &w.name).await?;
    Ok(())
}

async fn send(
    name: &str,
    conn: &mut Conn,
    events: &[Event],
    ttl: Duration,
    window: Duration,
) -> redis::RedisResult<()> {
    let events_key = wire::events_key(name);
    let mut pipe = redis::pipe();
    for e in events {
        let mut xadd = redis::cmd("XADD");
        xadd.arg(&events_key).arg("*");
        e.write_args(&mut xadd);
        pipe.add_command(xadd);
    }
    // Older than the window (and some): nobody needs it.
    let keep = window * 3 / 2 + Duration::from_secs(10);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let min_id = now.saturating_sub(keep).as_millis() as u64;
    pipe.cmd("XTRIM")
        .arg(&events_key)
        .arg("MINID")
        .arg("~")
        .arg(min_id);
    pipe.expire(&events_key, ttl.as_secs() as i64);
    pipe.expire(wire::meta_key(name), ttl.as_secs() as i64);
    pipe.query_async::<()>(conn).await
}
