//! Who may publish: stream keys, or an operator's callback; and how slow guessing is.
//!
//! Keys are kept as SHA-256 digests, never as text, and a presented key's digest is compared
//! with every known one in constant time. An operator with a user database of their own
//! answers instead through a [`PublishCallback`] (the binary's HTTP callback): it is asked
//! about every publish, with the protocol, the key, the stream the key is known for (if any)
//! and the remote address. After each refusal the refused address waits a randomized,
//! growing delay before it hears the answer, and its next attempts queue behind it (up to ten
//! seconds ahead), so one address on one connection cannot try keys faster than one every few
//! seconds, and many connections cost it a held connection each.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Mutex, RwLock};
use std::time::Duration;

use tokio::time::Instant;

use rand::Rng;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::publisher::Protocol;
use crate::redact_key;

/// The first refusal's delay (randomized ×0.5–1.5), doubling per refusal up to [`MAX_DELAY`].
const FIRST_DELAY: Duration = Duration::from_millis(500);
const MAX_DELAY: Duration = Duration::from_secs(4);
/// An address's answers are never held back further ahead than this (however many attempts
/// it has in flight).
const MAX_QUEUE: Duration = Duration::from_secs(10);
/// Refusals older than this are forgotten.
const FORGET_AFTER: Duration = Duration::from_secs(600);
/// Addresses remembered at once (beyond it the oldest are forgotten).
const ADDRESSES: usize = 65_536;

/// A stream key's SHA-256 digest.
pub type KeyDigest = [u8; 32];

pub fn digest(key: &str) -> KeyDigest {
    Sha256::digest(key.as_bytes()).into()
}

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum Denied {
    #[error("unknown stream key {0}")]
    UnknownKey(String),
    #[error("the publish callback refused it: {0}")]
    Refused(String),
    #[error("the publish callback did not answer ({0}); refused")]
    CallbackFailed(String),
    #[error("too many refused attempts from this address; refused unchecked (try again later)")]
    Throttled,
}

/// One publish attempt, as the callback is told of it.
#[derive(Debug, Clone, Copy)]
pub struct Attempt<'a> {
    pub protocol: Protocol,
    pub key: &'a str,
    /// The stream this node knows the key for.
    pub stream: Option<&'a str>,
    pub peer: SocketAddr,
}

pub type CallbackFuture<'a> = Pin<Box<dyn Future<Output = Result<String, Denied>> + Send + 'a>>;

/// An operator's say on every publish: the stream's name, or a refusal.
pub trait PublishCallback: Send + Sync + 'static {
    fn check<'a>(&'a self, attempt: Attempt<'a>) -> CallbackFuture<'a>;
}

#[derive(Clone, Copy)]
struct Failures {
    count: u32,
    /// Until when this address's answers are held back.
    busy_until: Instant,
    last: Instant,
}

/// The stream keys a node takes, an optional callback, and the refused addresses.
#[derive(Default)]
pub struct Authorizer {
    keys: RwLock<HashMap<KeyDigest, String>>,
    callback: Option<Box<dyn PublishCallback>>,
    failures: Mutex<HashMap<IpAddr, Failures>>,
}

impl Authorizer {
    /// Keys (as text, from the config) and the streams they publish to.
    pub fn new(pairs: impl IntoIterator<Item = (String, String)>) -> Self {
        let a = Authorizer::default();
        for (key, name) in pairs {
            a.insert(digest(&key), name);
        }
        a
    }

    /// Asks `callback` about every publish from now on.
    pub fn with_callback(mut self, callback: impl PublishCallback) -> Self {
        self.callback = Some(Box::new(callback));
        self
    }

    /// Adds (or moves) a key, by digest.
    pub fn insert(&self, key: KeyDigest, name: String) {
        self.keys.write().unwrap().insert(key, name);
    }

    /// Forgets every key of stream `name`.
    pub fn remove_stream(&self, name: &str) {
        self.keys.write().unwrap().retain(|_, n| n != name);
    }

    /// The stream a key publishes to, comparing its digest with every known one in constant
    /// time (no early exit: the time does not depend on which, or whether one, matches).
    pub fn name_for(&self, key: &str) -> Option<String> {
        let d = digest(key);
        let keys = self.keys.read().unwrap();
        let mut found = None;
        for (k, name) in keys.iter() {
            if bool::from(k.ct_eq(&d)) {
                found = Some(name);
            }
        }
        found.cloned()
    }

    /// Whether `key` may publish, and to which stream. An address that was refused before
    /// waits its turn before its key is even looked at (so a quick answer tells nothing, and
    /// attempts in parallel queue one behind another); beyond [`MAX_QUEUE`] of waiting it is
    /// refused at once, unchecked.
    pub async fn authorize(
        &self,
        protocol: Protocol,
        key: &str,
        peer: SocketAddr,
    ) -> Result<String, Denied> {
        let group = address_group(peer.ip());
        if let Some(slot) = self.turn(group)? {
            tokio::time::sleep_until(slot).await;
        }
        let known = self.name_for(key);
        let decision = match &self.callback {
            Some(cb) => {
                let attempt = Attempt {
                    protocol,
                    key,
                    stream: known.as_deref(),
                    peer,
                };
                cb.check(attempt).await
            }
            None => known.ok_or_else(|| Denied::UnknownKey(redact_key(key))),
        };
        if decision.is_err() {
            self.refused(group);
        }
        decision
    }

    /// When an address with refusals behind it may have its next attempt checked (`None`: at
    /// once); a later turn for the attempt after it is taken now.
    fn turn(&self, group: IpAddr) -> Result<Option<Instant>, Denied> {
        let now = Instant::now();
        let mut failures = self.failures.lock().unwrap();
        let Some(f) = failures.get_mut(&group) else {
            return Ok(None);
        };
        if now.duration_since(f.last) > FORGET_AFTER {
            failures.remove(&group);
            return Ok(None);
        }
        let slot = f.busy_until.max(now);
        if slot > now + MAX_QUEUE {
            return Err(Denied::Throttled);
        }
        f.busy_until = slot + delay(f.count);
        Ok(Some(slot))
    }

    /// Counts a refusal of an address: its later attempts wait longer.
    fn refused(&self, group: IpAddr) {
        let now = Instant::now();
        let mut failures = self.failures.lock().unwrap();
        if failures.len() >= ADDRESSES && !failures.contains_key(&group) {
            failures.retain(|_, f| now.duration_since(f.last) < FORGET_AFTER);
            if failures.len() >= ADDRESSES {
                // The least recently refused eighth goes.
                let mut lasts: Vec<Instant> = failures.values().map(|f| f.last).collect();
                lasts.sort_unstable();
                let cut = lasts[lasts.len() / 8];
                failures.retain(|_, f| f.last > cut);
            }
        }
        let f = failures.entry(group).or_insert(Failures {
            count: 0,
            busy_until: now,
            last: now,
        });
        f.count = f.count.saturating_add(1);
        f.last = now;
        if f.busy_until <= now {
            f.busy_until = now + delay(f.count);
        }
    }
}

/// The delay after `count` refusals: 0.5 s doubling to 4 s, randomized ×0.5–1.5.
fn delay(count: u32) -> Duration {
    FIRST_DELAY
        .saturating_mul(1 << count.saturating_sub(1).min(4))
        .min(MAX_DELAY)
        .mul_f64(rand::thread_rng().gen_range(0.5..1.5))
}

/// What counts as one address: an IPv4 address, an IPv6 /64 (one subscriber's network).
fn address_group(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let mut o = v6.octets();
            o[8..].fill(0);
            IpAddr::V6(o.into())
        }
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(last: u8) -> SocketAddr {
        ([10, 0, 0, last], 5000).into()
    }

    #[tokio::test(start_paused = true)]
    async fn after_a_refusal_an_address_waits_its_turn_right_key_or_not() {
        let a = Authorizer::new([("right-key-123".to_string(), "cam".to_string())]);
        let t = tokio::time::Instant::now();
        assert_eq!(
            a.authorize(Protocol::Rtmp, "right-key-123", peer(1)).await,
            Ok("cam".into())
        );
        let r = a.authorize(Protocol::Rtmp, "wrong", peer(1)).await;
        assert!(matches!(r, Err(Denied::UnknownKey(_))));
        assert_eq!(
            t.elapsed(),
            Duration::ZERO,
            "a first refusal is not delayed"
        );
        // The next attempt waits, whatever its key: a quick answer tells nothing.
        let t = tokio::time::Instant::now();
        assert!(a
            .authorize(Protocol::Rtmp, "right-key-123", peer(1))
            .await
            .is_ok());
        let waited = t.elapsed();
        assert!(
            waited >= Duration::from_millis(250) && waited <= Duration::from_millis(750),
            "{waited:?}"
        );
        // Attempts at once from the address queue one behind another.
        let t = tokio::time::Instant::now();
        let (x, y, z) = tokio::join!(
            a.authorize(Protocol::Srt, "w1", peer(1)),
            a.authorize(Protocol::Srt, "w2", peer(1)),
            a.authorize(Protocol::Srt, "w3", peer(1)),
        );
        assert!(x.is_err() && y.is_err() && z.is_err());
        assert!(
            t.elapsed() >= Duration::from_millis(3 * 250),
            "{:?}",
            t.elapsed()
        );
        // Another address is not slowed by them.
        let t = tokio::time::Instant::now();
        assert!(a
            .authorize(Protocol::Whip, "right-key-123", peer(2))
            .await
            .is_ok());
        assert_eq!(t.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn a_flood_from_one_address_is_refused_unchecked_beyond_the_queue() {
        let a = Authorizer::new([("right-key-123".to_string(), "cam".to_string())]);
        let _ = a.authorize(Protocol::Rtmp, "wrong", peer(1)).await;
        let attempts = (0..100).map(|i| {
            let a = &a;
            async move { a.authorize(Protocol::Rtmp, &format!("w{i}"), peer(1)).await }
        });
        let results = futures::future::join_all(attempts).await;
        let throttled = results
            .iter()
            .filter(|r| **r == Err(Denied::Throttled))
            .count();
        assert!(throttled > 50, "{throttled} of 100 refused unchecked");
        // An IPv6 /64 is one address.
        let v6 = |last: u16| SocketAddr::from(([0x2001, 0xdb8, 0, 1, 0, 0, 0, last], 5000));
        let _ = a.authorize(Protocol::Rtmp, "wrong", v6(1)).await;
        let t = tokio::time::Instant::now();
        let _ = a.authorize(Protocol::Rtmp, "wrong", v6(2)).await;
        assert!(t.elapsed() >= Duration::from_millis(250));
    }

    #[test]
    fn keys_are_kept_as_digests() {
        let a = Authorizer::new([("k-0123456789".to_string(), "s".to_string())]);
        assert_eq!(a.name_for("k-0123456789").as_deref(), Some("s"));
        assert_eq!(a.name_for("k-012345678"), None);
        let dump = format!("{:?}", a.keys.read().unwrap());
        assert!(!dump.contains("k-0123456789"));
        a.remove_stream("s");
        assert_eq!(a.name_for("k-0123456789"), None);
    }

    struct Says(&'static str);
    impl PublishCallback for Says {
        fn check<'a>(&'a self, at: Attempt<'a>) -> CallbackFuture<'a> {
            Box::pin(async move {
                if at.key == self.0 {
                    Ok(at.stream.unwrap_or("from-callback").to_string())
                } else {
                    Err(Denied::Refused("no".into()))
                }
            })
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_callback_decides_every_publish() {
        let a = Authorizer::new([("configured-key".to_string(), "cfg".to_string())])
            .with_callback(Says("theirs"));
        assert_eq!(
            a.authorize(Protocol::Rtmp, "theirs", peer(1)).await,
            Ok("from-callback".into())
        );
        assert_eq!(
            a.authorize(Protocol::Rtmp, "configured-key", peer(1)).await,
            Err(Denied::Refused("no".into())),
            "the callback is asked about known keys too"
        );
    }
}
