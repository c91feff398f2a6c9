//! The edge's side, part two: the streams viewers ask for ([`Demand`]), replayed from Redis
//! into this node's own windows, from which the edge serves the same playlists and bytes as
//! the origin.
//!
//! [`replay_all`] reads which streams Redis has (every 200 ms, or at once when a viewer asks
//! for a new one) and opens a replica for each stream viewers want: the meta and init
//! segments, then the event stream from its start, then `XREAD BLOCK` on it, so a new part
//! wakes the edge at once (blocking playlist reloads and preload hints work at the edge as at
//! the origin). A replica goes when its stream ends, when a new session replaces it, when
//! nobody asked for it in a while, or when the byte budget needs its room.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use packager::window::{StreamWindow, Windows};
use redis::AsyncCommands;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use crate::client::{Conn, RedisClient};
use crate::demand::Demand;
use crate::wire::{self, Event, Meta};

/// How long one `XREAD` blocks (the client's response timeout is longer).
const XREAD_BLOCK_MS: usize = 1000;
/// Entries read at once; fewer means the replica has caught up.
const XREAD_COUNT: usize = 500;

/// Replays the mirrored streams viewers ask for into `windows`, each on `tasks`, until
/// `cancel`. With `fallback` (the edge has origins to ask over HTTP), a replica whose Redis
/// goes away is dropped, so that viewers are served from the origins until Redis is back;
/// without, viewers keep the window as it was.
pub async fn replay_all(
    windows: Windows,
    client: RedisClient,
    demand: Demand,
    fallback: bool,
    tasks: TaskTracker,
    cancel: CancellationToken,
) {
    let url = client.url();
    // Stream name → session being replayed; a replay that stops takes its entry out.
    let running: Arc<std::sync::Mutex<HashMap<String, String>>> = Arc::default();
    let mut conn = None;
    while !cancel.is_cancelled() {
        if conn.is_none() {
            match client.connect().await {
                Ok(c) => {
                    info!(%url, "edge reading live windows from Redis");
                    conn = Some(c);
                }
                Err(e) => {
                    warn!(error = %e, "Redis not reachable; retrying");
                    pause(Duration::from_secs(2), &cancel).await;
                    continue;
                }
            }
        }
        demand.trim(&windows);
        let c = conn.as_mut().expect("set above");
        let names: Vec<String> = match c.smembers(wire::STREAMS).await {
            Ok(n) => n,
            Err(e) => {
                warn!(error = %e, "Redis went away; reconnecting");
                demand.set_known(None);
                conn = None;
                pause(Duration::from_secs(1), &cancel).await;
                continue;
            }
        };
        demand.set_known(Some(&names));
        for name in names {
            if !demand.wanted(&name) {
                continue;
            }
            let Some(meta) = read_meta(c, &name).await else {
                continue;
            };
            if running.lock().unwrap().get(&name) == Some(&meta.session) {
                continue;
            }
            let Some(w) = open_window(&name, &meta, c).await else {
                debug!(stream = %name, "incomplete meta in Redis");
                continue;
            };
            let session = meta.session.clone();
            info!(stream = %name, %session, "edge serving a live stream from Redis");
            running
                .lock()
                .unwrap()
                .insert(name.clone(), session.clone());
            let (client, windows, running, demand, cancel) = (
                client.clone(),
                windows.clone(),
                running.clone(),
                demand.clone(),
                cancel.clone(),
            );
            tasks.spawn(async move {
                replay(w, client, windows, demand, fallback, cancel).await;
                let mut r = running.lock().unwrap();
                if r.get(&name) == Some(&session) {
                    r.remove(&name);
                }
            });
        }
        tokio::select! {
            _ = cancel.cancelled() => {}
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            _ = demand.newly_asked() => {}
        }
    }
}

async fn pause(d: Duration, cancel: &CancellationToken) {
    tokio::select! {
        _ = cancel.cancelled() => {}
        _ = tokio::time::sleep(d) => {}
    }
}

/// The stream's meta, if Redis has a usable one.
async fn read_meta(conn: &mut Conn, name: &str) -> Option<Meta> {
    let text: Option<String> = conn.get(wire::meta_key(name)).await.ok()?;
    match Meta::from_json(&text?) {
        Ok(m) => Some(m),
        Err(e) => {
            debug!(stream = %name, error = %e, "unusable meta in Redis; not replayed");
            None
        }
    }
}

async fn open_window(name: &str, meta: &Meta, conn: &mut Conn) -> Option<Arc<StreamWindow>> {
    let mut tracks = Vec::new();
    for (i, t) in meta.tracks.iter().enumerate() {
        let info = t.track_info().ok()?;
        let init: Vec<u8> = conn.get(wire::init_key(name, i)).await.ok()?;
        tracks.push((info, Bytes::from(init)));
    }
    Some(Arc::new(
        StreamWindow::new(name, meta.session.clone(), meta.window_config(), tracks)
            .with_started(meta.started_at()),
    ))
}

/// Replays one stream's events into `w` until the stream goes, or `cancel`.
async fn replay(
    w: Arc<StreamWindow>,
    client: RedisClient,
    windows: Windows,
    demand: Demand,
    fallback: bool,
    cancel: CancellationToken,
) {
    let events_key = wire::events_key(&w.name);
    // Its own connection: XREAD BLOCK holds it. Made again whenever Redis went away.
    let Some(mut conn) = client.connect_retrying(&cancel).await else {
        return;
    };
    let tracks = w.read(|st| st.tracks.len());
    // Replay starts at each track's first part 0: a window begins with a whole segment.
    let mut started = vec![false; tracks];
    let mut last_id = "0".to_string();
    // Viewers see the replica once it has caught up with what Redis holds.
    let mut serving = false;
    let options = redis::streams::StreamReadOptions::default()
        .block(XREAD_BLOCK_MS)
        .count(XREAD_COUNT);
    loop {
        let (keys, ids) = ([&events_key], [&last_id]);
        let read = tokio::select! {
            _ = cancel.cancelled() => {
                windows.remove(&w);
                return;
            }
            r = conn.xread_options(&keys, &ids, &options) => r,
        };
        let reply: redis::streams::StreamReadReply = match read {
            Ok(r) => r,
            Err(e) if fallback => {
                warn!(stream = %w.name, error = %e, "reading from Redis failed; viewers are served from the origins until it is back");
                windows.remove(&w);
                return;
            }
            Err(e) => {
                warn!(stream = %w.name, error = %e, "reading from Redis failed; reconnecting (viewers keep the window as it is)");
                pause(Duration::from_secs(1), &cancel).await;
                match client.connect_retrying(&cancel).await {
                    Some(c) => conn = c,
                    None => return,
                }
                continue;
            }
        };
        let read: usize = reply.keys.iter().map(|k| k.ids.len()).sum();
        for k in reply.keys {
            for mut id in k.ids {
                last_id = std::mem::take(&mut id.id);
                let event = match Event::from_fields(&mut id.map) {
                    Ok(e) => e,
                    Err(e) => {
                        debug!(stream = %w.name, entry = %last_id, error = %e, "event skipped");
                        continue;
                    }
                };
                match event {
                    Event::Part(p) => {
                        if p.track >= tracks {
                            continue;
                        }
                        if !started[p.track] {
                            if p.index != 0 {
                                continue;
                            }
                            started[p.track] = true;
                        }
                        // A mirror that caught up after Redis was away sends its window again.
                        let known = w.read(|st| {
                            let t = &st.tracks[p.track];
                            t.part(p.msn, p.index).is_some()
                                || t.segments.front().is_some_and(|s| p.msn < s.msn)
                                || t.segments.back().is_some_and(|s| p.msn < s.msn)
                        });
                        if !known {
                            w.push_part(p);
                        }
                    }
                    Event::Complete {
                        track,
                        msn,
                        target_duration,
                    } => {
                        if started.get(track) == Some(&true) {
                            w.complete_segment(track, msn, target_duration);
                        }
                    }
                    Event::End => {
                        w.end();
                        if !serving {
                            windows.insert(w.clone());
                            demand.opened();
                        }
                        info!(stream = %w.name, "stream ended (from Redis)");
                        pause(Duration::from_secs(30), &cancel).await;
                        windows.remove(&w);
                        return;
                    }
                }
            }
        }
        if !serving && read < XREAD_COUNT {
            serving = true;
            windows.insert(w.clone());
            demand.opened();
        }
        if !demand.wanted(&w.name) {
            debug!(stream = %w.name, "nobody watches this stream here any more; replica dropped");
            windows.remove(&w);
            return;
        }
        // The stream is gone from Redis (expired, or a new session replaced it).
        let meta: Option<String> = match conn.get(wire::meta_key(&w.name)).await {
            Ok(m) => m,
            Err(_) => continue, // not an answer: the XREAD above finds out what is wrong
        };
        let session = meta
            .and_then(|m| Meta::from_json(&m).ok())
            .map(|m| m.session);
        if session.as_deref() != Some(w.session.as_str()) {
            w.end();
            windows.remove(&w);
            return;
        }
    }
}
