//! How long the packager takes to publish a part: from the frame that completed it reaching
//! the packager to the part being in the window (where blocked viewers are woken). Counted in
//! fixed buckets with atomics, so the packager only adds to counters and the HTTP server's
//! `/metrics` reads them as a Prometheus histogram.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the buckets, in seconds.
pub const BUCKETS: [f64; 10] = [
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.1, 1.0,
];

#[derive(Debug, Default)]
pub struct DelayHistogram {
    /// Observations at or below each bound (not cumulative).
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_ns: AtomicU64,
}

impl DelayHistogram {
    pub fn observe(&self, d: Duration) {
        let s = d.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|b| s <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_ns
            .fetch_add(d.as_nanos().min(u64::MAX as u128) as u64, Ordering::Relaxed);
    }

    /// (sum in seconds, count, cumulative (bound, count) pairs, the last one `+Inf`) as
    /// Prometheus has them.
    pub fn snapshot(&self) -> (f64, u64, Vec<(f64, u64)>) {
        let count = self.count.load(Ordering::Relaxed);
        let mut acc = 0;
        let mut buckets: Vec<(f64, u64)> = BUCKETS
            .iter()
            .zip(&self.buckets)
            .map(|(b, c)| {
                acc += c.load(Ordering::Relaxed);
                (*b, acc)
            })
            .collect();
        buckets.push((f64::INFINITY, count.max(acc)));
        let sum = self.sum_ns.load(Ordering::Relaxed) as f64 / 1e9;
        (sum, count, buckets)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cumulative_buckets() {
        let h = DelayHistogram::default();
        h.observe(Duration::from_micros(50));
        h.observe(Duration::from_micros(700));
        h.observe(Duration::from_secs(3));
        let (sum, count, b) = h.snapshot();
        assert_eq!(count, 3);
        assert!((sum - 3.00075).abs() < 1e-9);
        assert_eq!(b[0], (0.0001, 1));
        assert_eq!(b[3], (0.001, 2));
        assert_eq!(
            b[BUCKETS.len() - 1],
            (1.0, 2),
            "above the last bound: only in +Inf"
        );
        assert_eq!(b.last(), Some(&(f64::INFINITY, 3)));
    }
}
