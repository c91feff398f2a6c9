//! The window in Redis: the origin mirrors each live stream's window; edge nodes replay it
//! into a local window and serve viewers from that, with the same playlists and bytes.
//!
//! Key layout (every key of a stream in one hash slot, `{s:NAME}`, so Redis Cluster works):
//!
//! | key | type | what |
//! | --- | --- | --- |
//! | `estuary:streams` | set | names of mirrored streams |
//! | `{s:NAME}:meta` | string (JSON) | session, start time, window config, tracks |
//! | `{s:NAME}:init:{track}` | string | the track's CMAF init segment |
//! | `{s:NAME}:events` | stream | every part (fields + bytes), segment completion and end, in order |
//!
//! Edges replay only the streams their viewers ask for ([`Demand`]), within a byte budget.
//!
//! Everything expires (`EXPIRE`, refreshed on writes) a little after the window would have
//! dropped it, and the event stream is trimmed by age, so Redis memory stays bounded. Edges
//! `XREAD BLOCK` the event stream: a new part wakes them at once (blocking playlist reloads and
//! preload hints then work at the edge as at the origin).
//!
//! Redis Cluster works too (`[redis] cluster = true`, `url` naming one or more seed nodes): all
//! keys of a stream share the `{s:NAME}` hash tag, so a stream's pipelines and `MULTI`s stay in
//! one slot, and the client follows the cluster's slot map.
//!
//! Writes go through a bounded queue: when Redis is slow or down the origin keeps serving from
//! memory, counts what it could not mirror, logs once, and when Redis is back re-sends the
//! stream from its current window.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use media::{CodecConfig, Timescale, TrackInfo};
use packager::window::{PartIn, StreamWindow, WindowConfig, Windows};
use redis::AsyncCommands;
use tracing::{debug, info, warn};

const STREAMS: &str = "estuary:streams";
/// A Redis that does not accept a connection in this long is treated as down...
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// ... and one that does not answer a command in this long (an `XREAD BLOCK` waits at most
/// [`XREAD_BLOCK_MS`]; a half-open connection would otherwise hang the replica for good).
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);
const XREAD_BLOCK_MS: usize = 1000;

/// Where Redis is: one server, or a Redis Cluster reached through seed nodes.
#[derive(Clone)]
pub struct RedisClient {
    kind: Kind,
    /// A connection shared by short commands (resume positions).
    shared: Arc<tokio::sync::Mutex<Option<Conn>>>,
    url: String,
}

#[derive(Clone)]
enum Kind {
    Single(redis::Client),
    Cluster(redis::cluster::ClusterClient),
}

/// A connection to either.
#[derive(Clone)]
pub enum Conn {
    Single(redis::aio::MultiplexedConnection),
    Cluster(redis::cluster_async::ClusterConnection),
}

impl redis::aio::ConnectionLike for Conn {
    fn req_packed_command<'a>(
        &'a mut self,
        cmd: &'a redis::Cmd,
    ) -> redis::RedisFuture<'a, redis::Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<redis::Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(cmd, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

impl RedisClient {
    /// `url`: `redis://host:port`; with `cluster`, one or more seed nodes separated by commas.
    pub fn open(url: &str, cluster: bool) -> redis::RedisResult<Self> {
        let kind = if cluster {
            let seeds: Vec<&str> = url.split(',').map(str::trim).collect();
            Kind::Cluster(
                redis::cluster::ClusterClientBuilder::new(seeds)
                    .connection_timeout(CONNECT_TIMEOUT)
                    .response_timeout(RESPONSE_TIMEOUT)
                    .retries(2)
                    .build()?,
            )
        } else {
            Kind::Single(redis::Client::open(url)?)
        };
        Ok(RedisClient {
            kind,
            shared: Arc::default(),
            url: url.to_string(),
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// A new connection (a blocking `XREAD` needs its own).
    pub async fn connect(&self) -> redis::RedisResult<Conn> {
        Ok(match &self.kind {
            Kind::Single(c) => Conn::Single(
                c.get_multiplexed_async_connection_with_config(
                    &redis::AsyncConnectionConfig::new()
                        .set_connection_timeout(CONNECT_TIMEOUT)
                        .set_response_timeout(RESPONSE_TIMEOUT),
                )
                .await?,
            ),
            Kind::Cluster(c) => Conn::Cluster(c.get_async_connection().await?),
        })
    }

    /// The shared connection, made when first needed or after [`RedisClient::reset_shared`].
    pub async fn shared(&self) -> redis::RedisResult<Conn> {
        let mut s = self.shared.lock().await;
        if let Some(c) = &*s {
            return Ok(c.clone());
        }
        let c = self.connect().await?;
        *s = Some(c.clone());
        Ok(c)
    }

    /// Drops the shared connection after an error; the next use makes a new one.
    pub async fn reset_shared(&self) {
        *self.shared.lock().await = None;
    }
}

fn key(name: &str, what: &str) -> String {
    format!("{{s:{name}}}:{what}")
}

/// Mirror counters, for logs and the API.
#[derive(Debug, Default)]
pub struct MirrorStats {
    pub sent: AtomicU64,
    pub failed: AtomicU64,
}

fn track_json(t: &TrackInfo, rendition: &str) -> serde_json::Value {
    let (codec, data): (&str, Vec<u8>) = match &t.codec {
        CodecConfig::H264 { avcc } => ("h264", avcc.to_vec()),
        CodecConfig::H265 { hvcc } => ("h265", hvcc.to_vec()),
        CodecConfig::Av1 { av1c } => ("av1", av1c.to_vec()),
        CodecConfig::Vp9 { vpcc } => ("vp9", vpcc.to_vec()),
        CodecConfig::Aac { asc } => ("aac", asc.to_vec()),
        CodecConfig::Opus {
            channels,
            pre_skip,
            input_sample_rate,
        } => {
            let mut d = vec![*channels];
            d.extend_from_slice(&pre_skip.to_be_bytes());
            d.extend_from_slice(&input_sample_rate.to_be_bytes());
            ("opus", d)
        }
    };
    serde_json::json!({
        "rendition": rendition,
        "codec": codec,
        "config": hex(&data),
        "timescale": t.timescale.0,
        "width": t.width,
        "height": t.height,
        "sample_rate": t.sample_rate,
        "channels": t.channels,
        "bitrate_hint": t.bitrate_hint,
        "frame_rate_hint": t.frame_rate_hint,
    })
}

fn track_from_json(v: &serde_json::Value) -> Option<TrackInfo> {
    let data = unhex(v["config"].as_str()?)?;
    let b = Bytes::from(data.clone());
    let codec = match v["codec"].as_str()? {
        "h264" => CodecConfig::H264 { avcc: b },
        "h265" => CodecConfig::H265 { hvcc: b },
        "av1" => CodecConfig::Av1 { av1c: b },
        "vp9" => CodecConfig::Vp9 { vpcc: b },
        "aac" => CodecConfig::Aac { asc: b },
        "opus" if data.len() == 7 => CodecConfig::Opus {
            channels: data[0],
            pre_skip: u16::from_be_bytes([data[1], data[2]]),
            input_sample_rate: u32::from_be_bytes([data[3], data[4], data[5], data[6]]),
        },
        _ => return None,
    };
    Some(TrackInfo {
        codec,
        timescale: Timescale(v["timescale"].as_u64()? as u32),
        width: v["width"].as_u64()? as u32,
        height: v["height"].as_u64()? as u32,
        sample_rate: v["sample_rate"].as_u64()? as u32,
        channels: v["channels"].as_u64()? as u16,
        bitrate_hint: v["bitrate_hint"].as_u64().map(|b| b as u32),
        frame_rate_hint: v["frame_rate_hint"].as_f64(),
    })
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

fn ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as u64
}

/// One thing the edge replays, in order.
enum Event {
    Part(PartIn),
    Complete { track: usize, msn: u64 },
    End,
}

/// Mirrors every window in `windows` while it lives (new windows are picked up as they
/// appear). Runs until the process ends.
pub async fn mirror_all(windows: Windows, client: RedisClient) {
    info!(url = client.url(), "mirroring live windows into Redis");
    let stats = Arc::new(MirrorStats::default());
    let mut running: HashMap<String, String> = HashMap::new();
    loop {
        for w in windows.all() {
            if running.get(&w.name) != Some(&w.session) {
                running.insert(w.name.clone(), w.session.clone());
                tokio::spawn(mirror(w, client.clone(), stats.clone()));
            }
        }
        running.retain(|name, session| windows.get(name).is_some_and(|w| &w.session == session));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Where the mirror of one track stands: the segment and part sent last.
#[derive(Clone, Copy, Default)]
struct Cursor {
    msn: Option<u64>,
    parts: usize,
    completed: bool,
}

async fn connect(client: &RedisClient) -> Conn {
    loop {
        match client.connect().await {
            Ok(c) => return c,
            Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
}

async fn mirror(w: Arc<StreamWindow>, client: RedisClient, stats: Arc<MirrorStats>) {
    let mut conn = connect(&client).await;
    let name = w.name.clone();
    let window_secs = w.config.segments as f64 * w.config.segment_target.as_secs_f64();
    let ttl = (window_secs * 2.0 + 30.0) as i64;
    let mut rx = w.subscribe();
    let tracks = w.read(|st| st.tracks.len());
    let mut cursors = vec![Cursor::default(); tracks];
    let mut need_meta = true;
    let mut failing = false;
    loop {
        if need_meta {
            match write_meta(&w, &mut conn, ttl).await {
                Ok(()) => need_meta = false,
                Err(e) => {
                    if !failing {
                        warn!(stream = %name, error = %e, "Redis mirror failing; viewers are still served from memory");
                        failing = true;
                    }
                    stats.failed.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    conn = connect(&client).await;
                    continue;
                }
            }
        }
        let (events, ended) = w.read(|st| {
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
                        .map(|d| d.as_secs_f64())
                        .unwrap_or(0.0);
                    let mut start = seg_start
                        + s.parts[..c.parts.min(s.parts.len())]
                            .iter()
                            .map(|p| p.duration)
                            .sum::<f64>();
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
                        }));
                        start += p.duration;
                    }
                    c.parts = s.parts.len();
                    if s.complete && !c.completed {
                        c.completed = true;
                        ev.push(Event::Complete {
                            track: i,
                            msn: s.msn,
                        });
                    }
                }
            }
            if st.ended {
                ev.push(Event::End);
            }
            (ev, st.ended)
        });
        if !events.is_empty() {
            match send(&name, &mut conn, &events, ttl, window_secs).await {
                Ok(()) => {
                    stats.sent.fetch_add(events.len() as u64, Ordering::Relaxed);
                    if failing {
                        info!(stream = %name, "Redis mirror back");
                        failing = false;
                    }
                }
                Err(e) => {
                    stats
                        .failed
                        .fetch_add(events.len() as u64, Ordering::Relaxed);
                    if !failing {
                        warn!(stream = %name, error = %e, "Redis mirror failing; viewers are still served from memory");
                        failing = true;
                    }
                    // Catch up once Redis is back: the stream again, from the current window.
                    cursors = vec![Cursor::default(); tracks];
                    need_meta = true;
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    conn = connect(&client).await;
                    continue;
                }
            }
        }
        if ended {
            debug!(stream = %name, "mirror done");
            return;
        }
        if rx.changed().await.is_err() {
            return;
        }
    }
}

async fn write_meta(w: &StreamWindow, conn: &mut Conn, ttl: i64) -> redis::RedisResult<()> {
    let (tracks, inits): (Vec<serde_json::Value>, Vec<Bytes>) = w.read(|st| {
        st.tracks
            .iter()
            .map(|t| (track_json(&t.info, &t.rendition), t.init.clone()))
            .unzip()
    });
    let meta = serde_json::json!({
        "session": w.session,
        "started_ms": ms(w.started),
        "segments": w.config.segments,
        "segment_target": w.config.segment_target.as_secs_f64(),
        "part_target": w.config.part_target.as_secs_f64(),
        "tracks": tracks,
    });
    let mut pipe = redis::pipe();
    pipe.atomic();
    for (i, init) in inits.iter().enumerate() {
        pipe.set_ex(
            key(&w.name, &format!("init:{i}")),
            init.as_ref(),
            ttl as u64,
        );
    }
    pipe.set_ex(key(&w.name, "meta"), meta.to_string(), ttl as u64);
    pipe.del(key(&w.name, "events"));
    pipe.query_async::<()>(conn).await?;
    let _: () = conn.sadd(STREAMS, &w.name).await?;
    Ok(())
}

async fn send(
    name: &str,
    conn: &mut Conn,
    events: &[Event],
    ttl: i64,
    window_secs: f64,
) -> redis::RedisResult<()> {
    let events_key = key(name, "events");
    let mut pipe = redis::pipe();
    for e in events {
        let xadd = pipe.cmd("XADD").arg(&events_key).arg("*");
        match e {
            // The part's bytes go into the pipeline's buffer straight from the window.
            Event::Part(p) => {
                xadd.arg("type").arg("part");
                xadd.arg("track").arg(p.track).arg("msn").arg(p.msn);
                xadd.arg("index").arg(p.index);
                xadd.arg("duration").arg(p.duration.to_string());
                xadd.arg("independent").arg(p.independent as u8);
                xadd.arg("gap").arg(p.gap as u8);
                xadd.arg("end_expected").arg(p.end_expected as u8);
                xadd.arg("discontinuity").arg(p.discontinuity as u8);
                xadd.arg("start").arg(p.start.to_string());
                xadd.arg("samples").arg(p.samples);
                xadd.arg("data").arg(p.data.as_ref());
            }
            Event::Complete { track, msn } => {
                xadd.arg("type").arg("complete");
                xadd.arg("track").arg(*track).arg("msn").arg(*msn);
            }
            Event::End => {
                xadd.arg("type").arg("end");
            }
        }
    }
    // Older than the window (and some): nobody needs it.
    let keep_ms = (window_secs * 1500.0) as u64 + 10_000;
    let min_id = ms(SystemTime::now()).saturating_sub(keep_ms);
    pipe.cmd("XTRIM")
        .arg(&events_key)
        .arg("MINID")
        .arg("~")
        .arg(min_id);
    pipe.expire(&events_key, ttl);
    pipe.expire(key(name, "meta"), ttl);
    pipe.query_async::<()>(conn).await
}

/// What viewers ask an edge for. The edge replays a stream from Redis only while viewers ask
/// for it (a stream nobody asked for in `idle` is dropped), and within a byte budget (over it,
/// the streams asked for least recently are dropped first; the newest one is always kept).
/// The first viewer of a stream waits for its replica to open (one `GET` of the meta and
/// one `XREAD` of the window); the viewers after it are served from memory.
#[derive(Clone)]
pub struct Demand {
    inner: Arc<DemandInner>,
}

struct DemandInner {
    asked: std::sync::Mutex<HashMap<String, Instant>>,
    /// The streams Redis has, as last read (`None` before the first read or while Redis is
    /// away).
    known: std::sync::Mutex<Option<std::collections::HashSet<String>>>,
    /// Wakes the replayer when a stream is asked for the first time.
    wanted: tokio::sync::Notify,
    /// Bumped whenever a replica opens.
    opened: tokio::sync::watch::Sender<u64>,
    idle: Duration,
    budget: usize,
}

impl Demand {
    /// `idle`: how long a stream nobody asks for stays; `budget`: bytes all replicas may hold.
    pub fn new(idle: Duration, budget: usize) -> Self {
        Demand {
            inner: Arc::new(DemandInner {
                asked: Default::default(),
                known: Default::default(),
                wanted: tokio::sync::Notify::new(),
                opened: tokio::sync::watch::channel(0).0,
                idle,
                budget,
            }),
        }
    }

    /// A viewer asked for `name`, a stream Redis has (others are not noted: anyone can make up
    /// names). True the first time (while nobody else asked): that request is worth waiting for
    /// the replica to open; later ones are served from it, or elsewhere if it did not open.
    pub fn ask(&self, name: &str) -> bool {
        let known = self
            .inner
            .known
            .lock()
            .unwrap()
            .as_ref()
            .is_some_and(|k| k.contains(name));
        if !known {
            return false;
        }
        let mut asked = self.inner.asked.lock().unwrap();
        match asked.get_mut(name) {
            Some(t) => {
                *t = Instant::now();
                false
            }
            None => {
                asked.insert(name.to_string(), Instant::now());
                self.inner.wanted.notify_one();
                true
            }
        }
    }

    /// Waits up to `timeout` for the replica of `name` to open.
    pub async fn wait_open(
        &self,
        windows: &Windows,
        name: &str,
        timeout: Duration,
    ) -> Option<Arc<StreamWindow>> {
        let mut rx = self.inner.opened.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(w) = windows.get(name) {
                return Some(w);
            }
            if tokio::time::timeout_at(deadline, rx.changed())
                .await
                .is_err()
            {
                return windows.get(name);
            }
        }
    }

    fn wanted(&self, name: &str) -> bool {
        self.inner
            .asked
            .lock()
            .unwrap()
            .get(name)
            .is_some_and(|t| t.elapsed() < self.inner.idle)
    }

    fn set_known(&self, names: Option<&[String]>) {
        *self.inner.known.lock().unwrap() = names.map(|n| n.iter().cloned().collect());
    }

    /// Forgets streams nobody asked for in a while, and over the budget the ones asked for
    /// least recently; their replays see it and stop.
    fn trim(&self, windows: &Windows) {
        let mut asked = self.inner.asked.lock().unwrap();
        asked.retain(|_, t| t.elapsed() < self.inner.idle);
        let replicas: Vec<(String, Instant, usize)> = asked
            .iter()
            .filter_map(|(name, t)| {
                let w = windows.get(name)?;
                Some((name.clone(), *t, window_bytes(&w)))
            })
            .collect();
        for name in over_budget(replicas, self.inner.budget) {
            info!(stream = %name, budget_mb = self.inner.budget >> 20, "dropping a replica: the edge's replica budget is full");
            asked.remove(&name);
        }
    }
}

/// Bytes a window holds.
fn window_bytes(w: &StreamWindow) -> usize {
    w.read(|st| {
        st.tracks
            .iter()
            .map(|t| t.init.len() + t.segments.iter().map(|s| s.bytes).sum::<usize>())
            .sum()
    })
}

/// Which replicas go so the rest fit in `budget`: newest asked first, the newest always kept.
fn over_budget(mut replicas: Vec<(String, Instant, usize)>, budget: usize) -> Vec<String> {
    replicas.sort_by_key(|r| std::cmp::Reverse(r.1));
    let mut total = 0;
    let mut out = Vec::new();
    for (i, (name, _, bytes)) in replicas.into_iter().enumerate() {
        total += bytes;
        if i > 0 && total > budget {
            out.push(name);
        }
    }
    out
}

/// Edge side: replays the mirrored streams viewers ask for ([`Demand`]) into `windows`. Runs
/// until the process ends. With `fallback` (the edge has origins to ask over HTTP), a replica whose Redis goes away
/// is dropped, so that viewers are served from the origins until Redis is back; without,
/// viewers keep the window as it was.
pub async fn replay_all(windows: Windows, client: RedisClient, demand: Demand, fallback: bool) {
    let url = client.url().to_string();
    // Stream name → session being replayed; a replay that stops takes its entry out.
    let running: Arc<std::sync::Mutex<HashMap<String, String>>> = Arc::default();
    let mut conn = None;
    loop {
        if conn.is_none() {
            match client.connect().await {
                Ok(c) => {
                    info!(%url, "edge reading live windows from Redis");
                    conn = Some(c);
                }
                Err(e) => {
                    warn!(error = %e, "Redis not reachable; retrying");
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    continue;
                }
            }
        }
        demand.trim(&windows);
        let c = conn.as_mut().expect("set above");
        let names: Vec<String> = match c.smembers(STREAMS).await {
            Ok(n) => n,
            Err(e) => {
                warn!(error = %e, "Redis went away; reconnecting");
                demand.set_known(None);
                conn = None;
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        demand.set_known(Some(&names));
        for name in names {
            if !demand.wanted(&name) {
                continue;
            }
            let meta: Option<String> = c.get(key(&name, "meta")).await.unwrap_or(None);
            let Some(meta) = meta.and_then(|m| serde_json::from_str::<serde_json::Value>(&m).ok())
            else {
                continue;
            };
            let session = meta["session"].as_str().unwrap_or_default().to_string();
            if running.lock().unwrap().get(&name) == Some(&session) {
                continue;
            }
            match open_window(&name, &meta, c).await {
                Some(w) => {
                    info!(stream = %name, %session, "edge serving a live stream from Redis");
                    running
                        .lock()
                        .unwrap()
                        .insert(name.clone(), session.clone());
                    let (client, windows, running, demand) = (
                        client.clone(),
                        windows.clone(),
                        running.clone(),
                        demand.clone(),
                    );
                    tokio::spawn(async move {
                        replay(w, client, windows, demand, fallback).await;
                        let mut r = running.lock().unwrap();
                        if r.get(&name) == Some(&session) {
                            r.remove(&name);
                        }
                    });
                }
                None => debug!(stream = %name, "incomplete meta in Redis"),
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            _ = demand.inner.wanted.notified() => {}
        }
    }
}

async fn open_window(
    name: &str,
    meta: &serde_json::Value,
    conn: &mut Conn,
) -> Option<Arc<StreamWindow>> {
    let mut tracks = Vec::new();
    for (i, t) in meta["tracks"].as_array()?.iter().enumerate() {
        let info = track_from_json(t)?;
        let init: Vec<u8> = conn.get(key(name, &format!("init:{i}"))).await.ok()?;
        tracks.push((info, Bytes::from(init)));
    }
    let config = WindowConfig {
        segments: meta["segments"].as_u64()? as usize,
        segment_target: Duration::from_secs_f64(meta["segment_target"].as_f64()?),
        part_target: Duration::from_secs_f64(meta["part_target"].as_f64()?),
    };
    let started = UNIX_EPOCH + Duration::from_millis(meta["started_ms"].as_u64()?);
    Some(Arc::new(
        StreamWindow::new(name, meta["session"].as_str()?.to_string(), config, tracks)
            .with_started(started),
    ))
}

async fn replay(
    w: Arc<StreamWindow>,
    client: RedisClient,
    windows: Windows,
    demand: Demand,
    fallback: bool,
) {
    let events_key = key(&w.name, "events");
    // Its own connection: XREAD BLOCK holds it. Made again whenever Redis went away.
    let mut conn = connect(&client).await;
    let tracks = w.read(|st| st.tracks.len());
    // Replay starts at each track's first part 0: a window begins with a whole segment.
    let mut started = vec![false; tracks];
    let mut last_id = "0".to_string();
    // Viewers see the replica once it has caught up with what Redis holds.
    let mut serving = false;
    loop {
        let reply: redis::RedisResult<redis::streams::StreamReadReply> = conn
            .xread_options(
                &[&events_key],
                &[&last_id],
                &redis::streams::StreamReadOptions::default()
                    .block(XREAD_BLOCK_MS)
                    .count(500),
            )
            .await;
        let reply = match reply {
            Ok(r) => r,
            Err(e) if fallback => {
                warn!(stream = %w.name, error = %e, "reading from Redis failed; viewers are served from the origins until it is back");
                windows.remove(&w);
                return;
            }
            Err(e) => {
                warn!(stream = %w.name, error = %e, "reading from Redis failed; reconnecting (viewers keep the window as it is)");
                tokio::time::sleep(Duration::from_secs(1)).await;
                conn = connect(&client).await;
                continue;
            }
        };
        let read: usize = reply.keys.iter().map(|k| k.ids.len()).sum();
        for k in reply.keys {
            for mut id in k.ids {
                last_id = id.id.clone();
                // The part's bytes, taken from the reply rather than copied.
                let data = match id.map.remove("data") {
                    Some(redis::Value::BulkString(b)) => Bytes::from(b),
                    _ => Bytes::new(),
                };
                // The other fields, read in place (a dozen small values per part).
                let get = |f: &str| -> Option<&[u8]> {
                    match id.map.get(f)? {
                        redis::Value::BulkString(b) => Some(b.as_slice()),
                        _ => None,
                    }
                };
                let num =
                    |f: &str| -> Option<f64> { std::str::from_utf8(get(f)?).ok()?.parse().ok() };
                match get("type") {
                    Some(b"part") => {
                        let (Some(track), Some(msn), Some(index)) =
                            (num("track"), num("msn"), num("index"))
                        else {
                            continue;
                        };
                        let track = track as usize;
                        if track >= tracks {
                            continue;
                        }
                        if !started[track] {
                            if index != 0.0 {
                                continue;
                            }
                            started[track] = true;
                        }
                        // A mirror that caught up after Redis was away sends its window again.
                        let (msn, index) = (msn as u64, index as u32);
                        let known = w.read(|st| {
                            let t = &st.tracks[track];
                            t.part(msn, index).is_some()
                                || t.segments.front().is_some_and(|s| msn < s.msn)
                                || t.segments.back().is_some_and(|s| msn < s.msn)
                        });
                        if known {
                            continue;
                        }
                        w.push_part(PartIn {
                            track,
                            msn,
                            index,
                            data,
                            duration: num("duration").unwrap_or(0.0),
                            independent: num("independent") == Some(1.0),
                            gap: num("gap") == Some(1.0),
                            last_in_segment: false,
                            end_expected: num("end_expected") == Some(1.0),
                            discontinuity: num("discontinuity") == Some(1.0),
                            start: num("start").unwrap_or(0.0),
                            samples: num("samples").unwrap_or(0.0) as u32,
                        });
                    }
                    Some(b"complete") => {
                        if let (Some(track), Some(msn)) = (num("track"), num("msn")) {
                            if started.get(track as usize) == Some(&true) {
                                w.complete_segment(track as usize, msn as u64);
                            }
                        }
                    }
                    Some(b"end") => {
                        w.end();
                        if !serving {
                            windows.insert(w.clone());
                            demand.inner.opened.send_modify(|n| *n += 1);
                        }
                        info!(stream = %w.name, "stream ended (from Redis)");
                        tokio::time::sleep(Duration::from_secs(30)).await;
                        windows.remove(&w);
                        return;
                    }
                    _ => {}
                }
            }
        }
        if !serving && read < 500 {
            serving = true;
            windows.insert(w.clone());
            demand.inner.opened.send_modify(|n| *n += 1);
        }
        if !demand.wanted(&w.name) {
            debug!(stream = %w.name, "nobody watches this stream here any more; replica dropped");
            windows.remove(&w);
            return;
        }
        // The stream is gone from Redis (expired, or a new session replaced it).
        let meta: Option<String> =
            match redis::AsyncCommands::get(&mut conn, key(&w.name, "meta")).await {
                Ok(m) => m,
                Err(_) => continue, // not an answer: the XREAD above finds out what is wrong
            };
        let session = meta
            .and_then(|m| serde_json::from_str::<serde_json::Value>(&m).ok())
            .and_then(|m| m["session"].as_str().map(str::to_string));
        if session.as_deref() != Some(w.session.as_str()) {
            w.end();
            windows.remove(&w);
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_drops_the_least_recently_asked_and_keeps_the_newest() {
        let now = Instant::now();
        let r = |name: &str, ago: u64, mb: usize| {
            (name.to_string(), now - Duration::from_secs(ago), mb << 20)
        };
        // Fits: nothing goes.
        assert!(over_budget(vec![r("a", 1, 10), r("b", 2, 10)], 30 << 20).is_empty());
        // c (asked longest ago) goes first; then b.
        assert_eq!(
            over_budget(vec![r("c", 9, 10), r("a", 1, 10), r("b", 2, 10)], 25 << 20),
            vec!["c".to_string()]
        );
        assert_eq!(
            over_budget(vec![r("c", 9, 10), r("a", 1, 10), r("b", 2, 10)], 15 << 20),
            vec!["b".to_string(), "c".to_string()]
        );
        // The newest stays even alone over the budget.
        assert!(over_budget(vec![r("a", 1, 100)], 1 << 20).is_empty());
    }

    #[test]
    fn asking_notes_the_stream_and_says_whether_redis_has_it() {
        let d = Demand::new(Duration::from_secs(60), 1 << 30);
        assert!(!d.ask("a"), "nothing known from Redis yet");
        assert!(!d.wanted("a"), "not noted");
        d.set_known(Some(&["a".to_string()]));
        assert!(d.ask("a"), "the first viewer waits for the replica");
        assert!(d.wanted("a"));
        assert!(!d.ask("a"), "the next ones do not");
        assert!(!d.ask("b"));
        assert!(!d.wanted("b"), "made-up names are not noted");
        let d = Demand::new(Duration::ZERO, 1 << 30);
        d.set_known(Some(&["a".to_string()]));
        d.ask("a");
        assert!(!d.wanted("a"), "idle at once");
    }
}
