//! The registry of live broadcasts by stream name.
//!
//! An ingest claims a name with [`Hub::publish`]; consumers registered with
//! [`Hub::on_publish`] are called synchronously, before the first frame, so none of them can
//! miss the start of a stream. The name is released when the [`Published`] handle ends.
//!
//! Reconnects: a publisher whose connection drops (its [`Published`] is dropped without
//! [`Published::end`]) leaves its broadcast *held* for the hub's reconnect grace. If the same
//! name publishes again within it, with the same tracks, the new publisher continues that
//! broadcast: consumers see a discontinuity, and its timestamps are shifted to continue after
//! the real time that passed, so playlists go on with the same URLs instead of ending. After
//! the grace (or with none set) the broadcast ends.
//!
//! Kicks: [`Hub::kick`] marks a live publisher; its ingest sees the mark on its next frame
//! ([`Published::kicked`]) and ends the broadcast (no reconnect grace) and the connection.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use crate::broadcast::{Broadcast, BroadcastReader, Frame};
use crate::codec::TrackInfo;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HubError {
    #[error("stream {0:?} already has a publisher")]
    AlreadyLive(String),
    #[error("the publisher of stream {0:?} was kicked")]
    Kicked(String),
}

/// Handed to every consumer when a stream goes live.
pub struct Announcement {
    pub name: String,
    pub reader: BroadcastReader,
}

type Consumer = Box<dyn Fn(Announcement) + Send + Sync>;

/// What happens to a stream, for those who watch from outside (webhooks): a broadcast
/// starts, continues after its publisher came back within the grace, or ends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StreamEvent {
    Started(String),
    Reconnected(String),
    Ended(String),
}

type Watcher = Box<dyn Fn(&StreamEvent) + Send + Sync>;

#[derive(Default)]
struct Inner {
    live: Mutex<HashMap<String, u64>>,
    consumers: Mutex<Vec<Consumer>>,
    next_id: std::sync::atomic::AtomicU64,
    /// Broadcasts whose publisher dropped, waiting for it to come back.
    held: Mutex<HashMap<String, Held>>,
    reconnect_grace: Mutex<Duration>,
    /// Each live publisher's kick mark, by its id.
    kicks: Mutex<HashMap<u64, Weak<AtomicBool>>>,
    watchers: Mutex<Vec<Watcher>>,
}

struct Held {
    broadcast: Broadcast,
    id: u64,
    /// End of the last frame on the broadcast's timeline, µs.
    end_us: i64,
    left: Instant,
}

/// Tracks a reconnecting publisher may continue: same codecs and picture/sound.
fn same_tracks(a: &[TrackInfo], b: &[TrackInfo]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            x.codec == y.codec
                && x.timescale == y.timescale
                && (x.width, x.height, x.sample_rate, x.channels)
                    == (y.width, y.height, y.sample_rate, y.channels)
        })
}

#[derive(Clone, Default)]
pub struct Hub {
    inner: Arc<Inner>,
}

/// A live broadcast. [`Published::end`] ends it; dropping it (a connection that broke) holds
/// it for the hub's reconnect grace first.
pub struct Published {
    broadcast: Option<Broadcast>,
    hub: Hub,
    id: u64,
    /// Added to every frame's timestamps, µs (non-zero for a publisher that reconnected).
    offset_us: i64,
    /// End of the latest frame pushed, on the broadcast's timeline, µs.
    end_us: AtomicI64,
    kick: Arc<AtomicBool>,
}

impl std::ops::Deref for Published {
    type Target = Broadcast;
    fn deref(&self) -> &Broadcast {
        self.broadcast.as_ref().expect("present until dropped")
    }
}

impl Published {
    /// Hands a frame to every reader (see [`Broadcast::push`]), on the continued timeline of a
    /// reconnected publisher.
    pub fn push(&self, mut frame: Frame) {
        if self.offset_us != 0 {
            frame.shift(self.offset_us * frame.dts.scale.0 as i64 / 1_000_000);
        }
        let us = frame.pts.ticks.max(frame.dts.ticks) * 1_000_000 / frame.pts.scale.0.max(1) as i64;
        self.end_us.fetch_max(us, Ordering::Relaxed);
        self.broadcast
            .as_ref()
            .expect("present until dropped")
            .push(frame);
    }

    /// [`Hub::kick`] asked for this publisher to go.
    pub fn kicked(&self) -> bool {
        self.kick.load(Ordering::Relaxed)
    }

    /// The publisher stopped on purpose: the broadcast ends now (no reconnect grace).
    pub fn end(mut self) {
        if let Some(b) = self.broadcast.take() {
            b.close();
            self.hub.emit(StreamEvent::Ended(b.name().to_string()));
            self.hub.release(b.name(), self.id);
        }
    }
}

impl Drop for Published {
    fn drop(&mut self) {
        let Some(b) = self.broadcast.take() else {
            return;
        };
        // The grace is read and the broadcast held under one lock, which `Hub::shut_down`
        // takes too: a publisher that goes while the hub shuts down is never held.
        let mut held = self.hub.inner.held.lock().unwrap();
        let grace = *self.hub.inner.reconnect_grace.lock().unwrap();
        let runtime = tokio::runtime::Handle::try_current();
        let (false, Ok(runtime)) = (grace.is_zero(), runtime) else {
            drop(held);
            b.close();
            self.hub.emit(StreamEvent::Ended(b.name().to_string()));
            self.hub.release(b.name(), self.id);
            return;
        };
        let name = b.name().to_string();
        tracing::info!(stream = %name, grace_secs = grace.as_secs_f64(), "publisher gone; holding the stream for a reconnect");
        held.insert(
            name.clone(),
            Held {
                broadcast: b,
                id: self.id,
                end_us: self.end_us.load(Ordering::Relaxed),
                left: Instant::now(),
            },
        );
        drop(held);
        let hub = self.hub.clone();
        let id = self.id;
        runtime.spawn(async move {
            tokio::time::sleep(grace).await;
            let held = {
                let mut map = hub.inner.held.lock().unwrap();
                match map.get(&name) {
                    Some(h) if h.id == id => map.remove(&name),
                    _ => None,
                }
            };
            if let Some(h) = held {
                tracing::info!(stream = %name, "no reconnect within the grace period; the stream ends");
                h.broadcast.close();
                hub.emit(StreamEvent::Ended(name.clone()));
                hub.release(&name, id);
            }
        });
    }
}

impl Hub {
    pub fn new() -> Hub {
        Hub::default()
    }

    /// Registers a consumer called for every stream that goes live from now on.
    pub fn on_publish(&self, f: impl Fn(Announcement) + Send + Sync + 'static) {
        self.inner.consumers.lock().unwrap().push(Box::new(f));
    }

    /// Registers a watcher called (synchronously: it must not block) for every start,
    /// reconnect and end from now on.
    pub fn on_event(&self, f: impl Fn(&StreamEvent) + Send + Sync + 'static) {
        self.inner.watchers.lock().unwrap().push(Box::new(f));
    }

    fn emit(&self, e: StreamEvent) {
        for w in self.inner.watchers.lock().unwrap().iter() {
            w(&e);
        }
    }

    /// How long a dropped publisher's broadcast waits for it to come back (zero: ends at once).
    pub fn set_reconnect_grace(&self, grace: Duration) {
        *self.inner.reconnect_grace.lock().unwrap() = grace;
    }

    /// The process is stopping: broadcasts held for a reconnect end now, and a publisher that
    /// goes from now on ends its broadcast at once.
    pub fn shut_down(&self) {
        let held: Vec<(String, Held)> = {
            let mut held = self.inner.held.lock().unwrap();
            *self.inner.reconnect_grace.lock().unwrap() = Duration::ZERO;
            held.drain().collect()
        };
        for (name, h) in held {
            h.broadcast.close();
            self.emit(StreamEvent::Ended(name.clone()));
            self.release(&name, h.id);
        }
    }

    pub fn is_live(&self, name: &str) -> bool {
        self.inner.live.lock().unwrap().contains_key(name)
    }

    /// Asks the publisher of `name` to go (it does on its next frame); whether one was there.
    pub fn kick(&self, name: &str) -> bool {
        let Some(id) = self.inner.live.lock().unwrap().get(name).copied() else {
            return false;
        };
        let mut kicks = self.inner.kicks.lock().unwrap();
        kicks.retain(|_, k| k.strong_count() > 0);
        match kicks.get(&id).and_then(Weak::upgrade) {
            Some(k) => {
                k.store(true, Ordering::Relaxed);
                true
            }
            None => false,
        }
    }

    fn kick_mark(&self, id: u64) -> Arc<AtomicBool> {
        let k = Arc::new(AtomicBool::new(false));
        self.inner
            .kicks
            .lock()
            .unwrap()
            .insert(id, Arc::downgrade(&k));
        k
    }

    /// Claims `name` before its tracks are known (an RTMP publisher is accepted before its
    /// first sequence header arrives), so a second publisher is refused at once.
    pub fn reserve(&self, name: &str) -> Result<Reservation, HubError> {
        let id = self
            .inner
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut live = self.inner.live.lock().unwrap();
        if live.contains_key(name) {
            // A held broadcast waits for its publisher: a new one may take it up.
            if !self.inner.held.lock().unwrap().contains_key(name) {
                return Err(HubError::AlreadyLive(name.to_string()));
            }
            return Ok(Reservation {
                hub: self.clone(),
                name: name.to_string(),
                id: live[name],
                used: false,
                resumes: true,
            });
        }
        live.insert(name.to_string(), id);
        Ok(Reservation {
            hub: self.clone(),
            name: name.to_string(),
            id,
            used: false,
            resumes: false,
        })
    }

    /// Claims `name` and announces the broadcast to every consumer.
    pub fn publish(&self, name: &str, tracks: Vec<TrackInfo>) -> Result<Published, HubError> {
        Ok(self.reserve(name)?.publish(tracks))
    }

    fn release(&self, name: &str, id: u64) {
        let mut live = self.inner.live.lock().unwrap();
        if live.get(name) == Some(&id) {
            live.remove(name);
        }
    }
}

/// A claimed stream name whose tracks are not known yet. Dropping it frees the name.
pub struct Reservation {
    hub: Hub,
    name: String,
    id: u64,
    used: bool,
    /// The name's broadcast is held for a reconnect (the hub's entry is the held one's).
    resumes: bool,
}

impl Reservation {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Starts the broadcast and announces it to every consumer, or continues the held one
    /// (same tracks: a reconnect) after a discontinuity.
    pub fn publish(mut self, tracks: Vec<TrackInfo>) -> Published {
        self.used = true;
        if self.resumes {
            let held = self.hub.inner.held.lock().unwrap().remove(&self.name);
            if let Some(h) = held {
                if same_tracks(h.broadcast.tracks(), &tracks) {
                    let gap = h.left.elapsed().as_micros().max(40_000) as i64;
                    tracing::info!(stream = %self.name, after_ms = gap / 1000, "publisher back; the stream continues");
                    h.broadcast.discontinuity();
                    self.hub.emit(StreamEvent::Reconnected(self.name.clone()));
                    return Published {
                        broadcast: Some(h.broadcast),
                        hub: self.hub.clone(),
                        id: h.id,
                        offset_us: h.end_us + gap,
                        end_us: AtomicI64::new(h.end_us + gap),
                        kick: self.hub.kick_mark(h.id),
                    };
                }
                tracing::info!(stream = %self.name, "publisher back with other tracks; starting over");
                h.broadcast.close();
                self.hub.emit(StreamEvent::Ended(self.name.clone()));
            }
            // (Held or not any more) the name is this publisher's now.
            self.hub
                .inner
                .live
                .lock()
                .unwrap()
                .insert(self.name.clone(), self.id);
        }
        let broadcast = Broadcast::new(self.name.clone(), tracks);
        for consumer in self.hub.inner.consumers.lock().unwrap().iter() {
            consumer(Announcement {
                name: self.name.clone(),
                reader: broadcast.reader(),
            });
        }
        self.hub.emit(StreamEvent::Started(self.name.clone()));
        Published {
            broadcast: Some(broadcast),
            hub: self.hub.clone(),
            id: self.id,
            offset_us: 0,
            end_us: AtomicI64::new(0),
            kick: self.hub.kick_mark(self.id),
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        // A reconnect that never started leaves the held broadcast to its own timer.
        if !self.used && !self.resumes {
            self.hub.release(&self.name, self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::Timestamp;

    #[test]
    fn one_publisher_per_name() {
        let hub = Hub::new();
        let seen = Arc::new(Mutex::new(vec![]));
        let s = seen.clone();
        hub.on_publish(move |a| s.lock().unwrap().push(a.name));
        let p = hub.publish("a", vec![]).unwrap();
        assert_eq!(
            hub.publish("a", vec![]).err(),
            Some(HubError::AlreadyLive("a".into()))
        );
        drop(p);
        assert!(!hub.is_live("a"));
        let r = hub.reserve("a").unwrap();
        assert!(hub.reserve("a").is_err());
        drop(r);
        let _p = hub.publish("a", vec![]).unwrap();
        assert_eq!(
            *seen.lock().unwrap(),
            vec!["a".to_string(), "a".to_string()]
        );
    }

    #[tokio::test]
    async fn a_dropped_publisher_is_held_and_a_reconnect_continues_its_broadcast() {
        use crate::broadcast::ReadEvent;
        use crate::codec::CodecConfig;
        use crate::time::Timescale;
        let hub = Hub::new();
        hub.set_reconnect_grace(Duration::from_secs(30));
        let announced = Arc::new(Mutex::new(0));
        let a = announced.clone();
        let readers = Arc::new(Mutex::new(vec![]));
        let r = readers.clone();
        hub.on_publish(move |ann| {
            *a.lock().unwrap() += 1;
            r.lock().unwrap().push(ann.reader);
        });
        let tracks = vec![TrackInfo::video(CodecConfig::H264 {
            avcc: bytes::Bytes::from_static(&[1, 0x64, 0, 0x1f]),
        })];
        let frame = |ticks| Frame {
            track: 0,
            dts: Timestamp::new(ticks, Timescale::VIDEO),
            pts: Timestamp::new(ticks, Timescale::VIDEO),
            keyframe: true,
            data: bytes::Bytes::new(),
        };
        let p = hub.publish("a", tracks.clone()).unwrap();
        p.push(frame(90_000));
        drop(p); // the connection broke
        assert!(hub.is_live("a"), "held, not released");
        let again = hub.reserve("a").expect("a reconnect may take it up");
        let p = again.publish(tracks.clone());
        p.push(frame(0)); // the new connection's clock starts over
        assert_eq!(
            *announced.lock().unwrap(),
            1,
            "consumers keep reading the same broadcast"
        );
        let mut r = readers.lock().unwrap().pop().unwrap();
        assert_eq!(r.try_recv(), Some(Some(ReadEvent::Frame(frame(90_000)))));
        assert_eq!(r.try_recv(), Some(Some(ReadEvent::Discontinuity)));
        let Some(Some(ReadEvent::Frame(f))) = r.try_recv() else {
            panic!("a frame after the join")
        };
        assert!(
            f.pts.ticks >= 90_000 + 3_600,
            "continues after the real gap: {}",
            f.pts.ticks
        );
        p.end();
        assert!(
            !hub.is_live("a"),
            "an explicit end releases the name at once"
        );
    }

    #[tokio::test]
    async fn shutting_down_ends_held_broadcasts_and_holds_no_more() {
        let hub = Hub::new();
        hub.set_reconnect_grace(Duration::from_secs(30));
        let readers = Arc::new(Mutex::new(vec![]));
        let r = readers.clone();
        hub.on_publish(move |ann| r.lock().unwrap().push(ann.reader));
        drop(hub.publish("a", vec![]).unwrap());
        let b = hub.publish("b", vec![]).unwrap();
        assert!(hub.is_live("a"), "held");
        hub.shut_down();
        assert!(!hub.is_live("a"), "the held one ended");
        drop(b);
        assert!(!hub.is_live("b"), "not held any more");
        for mut r in readers.lock().unwrap().drain(..) {
            assert_eq!(r.try_recv(), Some(None), "{} ended", r.name());
        }
    }
}
