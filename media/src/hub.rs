//! The registry of live broadcasts by stream name.
//!
//! An ingest claims a name with [`Hub::publish`]; consumers registered with
//! [`Hub::on_publish`] are called synchronously, before the first frame, so none of them can
//! miss the start of a stream. The name is released when the [`Broadcast`] is dropped.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::broadcast::{Broadcast, BroadcastReader};
use crate::codec::TrackInfo;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HubError {
    #[error("stream {0:?} already has a publisher")]
    AlreadyLive(String),
}

/// Handed to every consumer when a stream goes live.
pub struct Announcement {
    pub name: String,
    pub reader: BroadcastReader,
}

type Consumer = Box<dyn Fn(Announcement) + Send + Sync>;

#[derive(Default)]
struct Inner {
    live: Mutex<HashMap<String, u64>>,
    consumers: Mutex<Vec<Consumer>>,
    next_id: std::sync::atomic::AtomicU64,
}

#[derive(Clone, Default)]
pub struct Hub {
    inner: Arc<Inner>,
}

/// A live broadcast that releases its name in the hub when dropped.
pub struct Published {
    pub broadcast: Broadcast,
    hub: Hub,
    id: u64,
}

impl std::ops::Deref for Published {
    type Target = Broadcast;
    fn deref(&self) -> &Broadcast {
        &self.broadcast
    }
}

impl Drop for Published {
    fn drop(&mut self) {
        self.broadcast.close();
        self.hub.release(self.broadcast.name(), self.id);
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

    pub fn is_live(&self, name: &str) -> bool {
        self.inner.live.lock().unwrap().contains_key(name)
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
            return Err(HubError::AlreadyLive(name.to_string()));
        }
        live.insert(name.to_string(), id);
        Ok(Reservation {
            hub: self.clone(),
            name: name.to_string(),
            id,
            used: false,
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
}

impl Reservation {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Starts the broadcast and announces it to every consumer.
    pub fn publish(mut self, tracks: Vec<TrackInfo>) -> Published {
        self.used = true;
        let broadcast = Broadcast::new(self.name.clone(), tracks);
        for consumer in self.hub.inner.consumers.lock().unwrap().iter() {
            consumer(Announcement {
                name: self.name.clone(),
                reader: broadcast.reader(),
            });
        }
        Published {
            broadcast,
            hub: self.hub.clone(),
            id: self.id,
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if !self.used {
            self.hub.release(&self.name, self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
