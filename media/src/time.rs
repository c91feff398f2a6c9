//! Timestamps that carry their timescale.

use std::fmt;
use std::time::Duration;

/// Ticks per second of a track's clock (90 000 for video, the sample rate for audio).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Timescale(pub u32);

impl Timescale {
    pub const VIDEO: Timescale = Timescale(90_000);
    pub const MILLIS: Timescale = Timescale(1_000);
    /// For clocks rather than tracks: arrival times, RTCP's NTP wall clock.
    pub const MICROS: Timescale = Timescale(1_000_000);

    /// Converts `ticks` of `from` into this timescale, rounding to nearest.
    pub fn convert(self, ticks: i64, from: Timescale) -> i64 {
        if self == from {
            return ticks;
        }
        let num = ticks as i128 * self.0 as i128;
        let den = from.0 as i128;
        let half = if num >= 0 { den / 2 } else { -den / 2 };
        ((num + half) / den) as i64
    }
}

/// A point on a timeline (a track's, or a clock's), in ticks of its timescale.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Timestamp {
    pub ticks: i64,
    pub scale: Timescale,
}

impl Timestamp {
    pub fn new(ticks: i64, scale: Timescale) -> Self {
        Self { ticks, scale }
    }

    /// `d` after the timeline's zero, in ticks of `scale` (rounded to nearest).
    pub fn from_duration(d: Duration, scale: Timescale) -> Self {
        let ticks = (d.as_nanos() * scale.0 as u128 + 500_000_000) / 1_000_000_000;
        Self::new(ticks.min(i64::MAX as u128) as i64, scale)
    }

    /// The same point in ticks of `scale` (rounded to nearest).
    pub fn rescale(self, scale: Timescale) -> Self {
        Self::new(scale.convert(self.ticks, self.scale), scale)
    }

    /// Time from the timeline's zero (zero for a point before it).
    pub fn as_duration(self) -> Duration {
        let nanos = self.ticks.max(0) as u128 * 1_000_000_000 / self.scale.0.max(1) as u128;
        Duration::from_nanos(nanos.min(u64::MAX as u128) as u64)
    }

    /// Time from `earlier` to this point (zero if `earlier` is later).
    pub fn since(self, earlier: Timestamp) -> Duration {
        let earlier = earlier.rescale(self.scale);
        Timestamp::new(self.ticks.saturating_sub(earlier.ticks), self.scale).as_duration()
    }

    pub fn as_secs_f64(self) -> f64 {
        self.ticks as f64 / self.scale.0 as f64
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.3}s", self.as_secs_f64())
    }
}

/// Extends a wrapping 32-bit millisecond clock (RTMP) into a monotonic 64-bit one.
#[derive(Debug, Default, Clone)]
pub struct Unwrapper32 {
    last: Option<u32>,
    offset: i64,
}

impl Unwrapper32 {
    pub fn unwrap(&mut self, v: u32) -> i64 {
        if let Some(last) = self.last {
            // A jump of more than half the range backwards is a wrap, not reordering.
            if v < last && last - v > u32::MAX / 2 {
                self.offset += 1i64 << 32;
            } else if v > last && v - last > u32::MAX / 2 {
                self.offset -= 1i64 << 32;
            }
        }
        self.last = Some(v);
        self.offset + v as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn convert_rounds() {
        assert_eq!(Timescale::VIDEO.convert(33, Timescale::MILLIS), 2970);
        assert_eq!(Timescale(48_000).convert(90_000, Timescale::VIDEO), 48_000);
        assert_eq!(Timescale::MILLIS.convert(-1500, Timescale::VIDEO), -17);
    }

    #[test]
    fn durations() {
        let t = Timestamp::new(135_000, Timescale::VIDEO);
        assert_eq!(t.as_duration(), Duration::from_millis(1500));
        assert_eq!(
            Timestamp::from_duration(t.as_duration(), Timescale::VIDEO),
            t
        );
        assert_eq!(
            t.rescale(Timescale(48_000)),
            Timestamp::new(72_000, Timescale(48_000))
        );
        assert_eq!(
            t.since(Timestamp::new(24_000, Timescale(48_000))),
            Duration::from_millis(1000)
        );
        assert_eq!(
            Timestamp::new(-5, Timescale::VIDEO).as_duration(),
            Duration::ZERO
        );
        assert_eq!(
            Timestamp::new(1, Timescale::VIDEO).since(t),
            Duration::ZERO,
            "never negative"
        );
    }

    #[test]
    fn unwrap_32() {
        let mut u = Unwrapper32::default();
        assert_eq!(u.unwrap(u32::MAX - 10), (u32::MAX - 10) as i64);
        assert_eq!(u.unwrap(5), (1i64 << 32) + 5);
        assert_eq!(u.unwrap(3), (1i64 << 32) + 3);
    }
}
