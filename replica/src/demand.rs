//! The edge's side, part one: which streams its viewers ask for. An edge replays a stream
//! from Redis only while viewers ask for it, within a byte budget.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use packager::window::{StreamWindow, Windows};
use tracing::info;

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

    /// Waits until a stream is asked for the first time.
    pub(crate) async fn newly_asked(&self) {
        self.inner.wanted.notified().await
    }

    /// A replica opened: wakes the viewers waiting for one.
    pub(crate) fn opened(&self) {
        self.inner.opened.send_modify(|n| *n += 1);
    }

    pub(crate) fn wanted(&self, name: &str) -> bool {
        self.inner
            .asked
            .lock()
            .unwrap()
            .get(name)
            .is_some_and(|t| t.elapsed() < self.inner.idle)
    }

    pub(crate) fn set_known(&self, names: Option<&[String]>) {
        *self.inner.known.lock().unwrap() = names.map(|n| n.iter().cloned().collect());
    }

    /// Forgets streams nobody asked for in a while, and over the budget the ones asked for
    /// least recently; their replays see it and stop.
    pub(crate) fn trim(&self, windows: &Windows) {
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
