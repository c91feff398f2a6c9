//! Places a track's frames on its frame grid.
//!
//! Publishers' clocks are coarse: RTMP stamps frames in milliseconds, so 30 fps video arrives
//! 33, 33, 34 ms apart (2970 or 3060 ticks at 90 kHz) and AAC frames 23 or 24 ms apart. Taken as
//! they are, sample durations jitter, part and segment durations with them, and a frame whose
//! decode time is moved to keep parts contiguous gets a composition offset it did not have.
//!
//! A [`Grid`] measures the frame interval (the mean of recent intervals, snapped to a standard
//! rate when within 1 % of one) and places each frame that lands within half an interval of
//! where the grid expects it exactly there; the caller moves the frame's presentation time by
//! the same amount, so composition offsets stay what the encoder made them (zero without
//! B-frames). A frame further off (a gap, a restart) starts the grid again from its own time.

use std::collections::VecDeque;

/// Intervals averaged to measure the frame rate. Millisecond stamps put each interval off by
/// up to a millisecond, but their sum only by one: over 128 frames the mean is within a tick
/// or so at 90 kHz, enough to tell 30 from 29.97 fps.
const WINDOW: usize = 128;

/// Video frame rates (frames per second, as numerator/denominator) a measured interval snaps to.
const VIDEO_RATES: [(u32, u32); 10] = [
    (24, 1),
    (25, 1),
    (30, 1),
    (48, 1),
    (50, 1),
    (60, 1),
    (24_000, 1001),
    (30_000, 1001),
    (60_000, 1001),
    (15, 1),
];

/// Audio frame lengths in samples (AAC, HE-AAC, Opus 20 ms and 40 ms at 48 kHz, Opus 10 ms).
const AUDIO_FRAMES: [u32; 5] = [1024, 2048, 960, 1920, 480];

#[derive(Clone, Debug)]
pub struct Grid {
    /// Standard intervals, in ticks, that a measured one snaps to.
    standard: Vec<f64>,
    /// The interval assumed before any is measured.
    initial: i64,
    last_raw: Option<i64>,
    /// Where the last frame was placed.
    last: Option<i64>,
    intervals: VecDeque<i64>,
    /// Their sum, kept as they come and go.
    sum: i64,
    /// The interval in use (measured, snapped).
    interval: i64,
    /// A millisecond in ticks: how far off one measured interval may be.
    millisecond: f64,
}

impl Grid {
    /// A grid for video in `scale` ticks per second (`fps`: the publisher's hint, if any).
    pub fn video(scale: u32, fps: Option<f64>) -> Grid {
        let standard = VIDEO_RATES
            .iter()
            .map(|&(n, d)| scale as f64 * d as f64 / n as f64)
            .collect();
        let initial = fps
            .filter(|f| *f >= 1.0 && *f <= 300.0)
            .map(|f| (scale as f64 / f).round() as i64)
            .unwrap_or(scale as i64 / 30);
        Grid::new(standard, initial.max(1), scale)
    }

    /// A grid for audio whose timescale is its sample rate.
    pub fn audio(scale: u32) -> Grid {
        Grid::new(
            AUDIO_FRAMES.iter().map(|&n| n as f64).collect(),
            1024,
            scale,
        )
    }

    fn new(standard: Vec<f64>, initial: i64, scale: u32) -> Grid {
        Grid {
            standard,
            initial,
            last_raw: None,
            last: None,
            intervals: VecDeque::with_capacity(WINDOW),
            sum: 0,
            interval: initial,
            millisecond: scale as f64 / 1000.0,
        }
    }

    /// The frame interval in ticks.
    pub fn interval(&self) -> i64 {
        self.interval
    }

    /// Where a frame stamped `raw` goes: on the grid when within half an interval of it, and
    /// always after the frame before (a frame snapped forward must not pass the next one).
    /// `None` for a frame stamped before the one before: decode order went backwards.
    pub fn place(&mut self, raw: i64) -> Option<i64> {
        if self.last_raw.is_some_and(|prev| raw < prev) {
            return None;
        }
        if let Some(prev) = self.last_raw {
            let d = raw - prev;
            if d > 0 && d < self.interval.max(self.initial) * 4 {
                if self.intervals.len() == WINDOW {
                    self.sum -= self.intervals.pop_front().unwrap_or(0);
                }
                self.intervals.push_back(d);
                self.sum += d;
                self.interval = self.measure();
            }
        }
        self.last_raw = Some(raw);
        let placed = match self.last {
            Some(last) if (raw - (last + self.interval)).abs() <= self.interval / 2 => {
                last + self.interval
            }
            Some(last) => raw.max(last + 1),
            None => raw,
        };
        self.last = Some(placed);
        Some(placed)
    }

    /// The caller moved the last frame placed to `to` (later): the next one goes after it.
    pub fn moved(&mut self, to: i64) {
        self.last = Some(self.last.map_or(to, |l| l.max(to)));
    }

    /// Forgets where the last frame went (the source jumped): the next frame starts the grid.
    pub fn reset(&mut self) {
        self.last = None;
        self.last_raw = None;
    }

    fn measure(&self) -> i64 {
        let n = self.intervals.len() as f64;
        let mean = self.sum as f64 / n;
        // Within 1 %, or as far as a millisecond's error over the intervals measured allows.
        let tolerance = self.millisecond / n;
        let fits = || {
            self.standard
                .iter()
                .copied()
                .filter(move |s| (mean - s).abs() <= s * 0.01 + tolerance)
        };
        // Until the mean is precise, keep the interval in use if it still fits (30 and 29.97
        // fps are 0.1 % apart).
        let current = self.interval as f64;
        if self.intervals.len() < WINDOW / 2 && fits().any(|s| (s - current).abs() < 1.0) {
            return self.interval;
        }
        let snapped = fits()
            .min_by(|a, b| (mean - a).abs().total_cmp(&(mean - b).abs()))
            .unwrap_or(mean);
        (snapped.round() as i64).max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn millisecond_stamps_land_on_the_frame_grid() {
        let mut g = Grid::video(90_000, None);
        // 30 fps stamped in whole milliseconds: 0, 33, 67, 100, ...
        let placed: Vec<i64> = (0..120)
            .map(|i| g.place((i * 1000 / 30) * 90).unwrap())
            .collect();
        for w in placed.windows(2).skip(1) {
            assert_eq!(w[1] - w[0], 3000, "{placed:?}");
        }
        assert_eq!(g.interval(), 3000);
    }

    #[test]
    fn ntsc_rates_and_aac_frames() {
        let mut g = Grid::video(90_000, Some(29.97));
        let placed: Vec<i64> = (0..60)
            .map(|i| {
                g.place((i as f64 * 1001.0 / 30.0).round() as i64 * 90)
                    .unwrap()
            })
            .collect();
        assert!(placed.windows(2).all(|w| w[1] - w[0] == 3003), "{placed:?}");
        let mut a = Grid::audio(44_100);
        // AAC at 44.1 kHz stamped in milliseconds, converted back to samples.
        let placed: Vec<i64> = (0..200)
            .map(|i| ((i * 1024 * 1000 / 44_100) * 44_100 + 500) / 1000)
            .map(|t| a.place(t).unwrap())
            .collect();
        assert!(placed.windows(2).all(|w| w[1] - w[0] == 1024), "{placed:?}");
    }

    #[test]
    fn a_jump_restarts_the_grid() {
        let mut g = Grid::video(90_000, Some(30.0));
        for i in 0..10 {
            g.place(i * 3000).unwrap();
        }
        assert_eq!(g.place(90_000 * 5), Some(450_000), "a gap stays a gap");
        assert_eq!(g.place(453_010), Some(453_000));
        // A frame snapped forward is not passed by the next one, stamped just after it.
        let a = g.place(455_000).unwrap();
        let b = g.place(455_001).unwrap();
        assert!(a >= 455_000 && b > a, "{a} {b}");
        assert_eq!(g.place(455_000), None, "stamped before the one before");
    }
}
