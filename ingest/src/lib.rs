//! Ingest: each protocol turns a publisher's connection into a [`media::Broadcast`].
//!
//! Data flow, the same in every protocol folder (`rtmp/`, `srt/`, `whip/`, `rtsp/`): a
//! sans-IO core parses the protocol (ours where no library does it well: the RTMP server,
//! `ts.rs`, `sdp.rs`; str0m and retina otherwise), `adapter.rs` turns its messages
//! into tracks and frames ([`AdapterEvent`]s, push/pull), and `task.rs` is the thin tokio task
//! around them: sockets, timers, admission. Every task hands the adapter's events to one
//! [`publisher::Publisher`], which owns the publisher's life (reserve → live → end) and its log
//! lines. What they share: [`early`] (media kept until a broadcast can start) and
//! [`SampleClock`] (audio on an exact sample clock).
//!
//! Publishers are authenticated by [`auth::Authorizer`] (stream keys kept as digests, or an
//! operator's callback; refusals slowed per address); an RTSP camera is pulled by name from
//! the config.

pub mod auth;
pub mod early;
pub mod publisher;
pub mod rtmp;
pub mod rtsp;
pub mod srt;
pub mod whip;

pub use auth::Authorizer;

/// A key safe to write in a log: enough to tell keys apart, not enough to publish with.
pub fn redact_key(key: &str) -> String {
    let shown: String = key.chars().take(3).collect();
    format!("{shown}…({} chars)", key.chars().count())
}

/// What a protocol adapter produces, in order.
#[derive(Debug, PartialEq)]
pub enum AdapterEvent {
    /// The broadcast can start with these tracks; frames follow.
    Start(Vec<media::TrackInfo>),
    Frame(media::Frame),
    /// The source restarted (a camera reconnected) and the timeline continues after a gap.
    Discontinuity,
    /// Something worth one log line (a dropped frame, an ignored change).
    Notice(String),
}

/// Keeps an audio track on an exact sample clock. Publishers stamp audio coarsely (RTMP in
/// milliseconds, MPEG-TS once per PES); frames that continue the previous one are placed right
/// after it, and only a real jump (more than 100 ms, a gap or drift) resets the clock.
#[derive(Debug, Default)]
pub struct SampleClock {
    next: Option<i64>,
}

impl SampleClock {
    /// Where audio that the source stamped at `ticks` (in `rate` ticks per second) and that
    /// lasts `samples` goes on the track's timeline.
    pub fn place(&mut self, ticks: i64, rate: u32, samples: i64) -> i64 {
        let start = match self.next {
            Some(expected) if (ticks - expected).abs() <= rate as i64 / 10 => expected,
            _ => ticks,
        };
        self.next = Some(start + samples);
        start
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_clock_smooths_jitter_and_follows_jumps() {
        let mut c = SampleClock::default();
        assert_eq!(c.place(1000, 48_000, 1024), 1000);
        assert_eq!(
            c.place(2030, 48_000, 1024),
            2024,
            "47 ticks of rounding is not a jump"
        );
        assert_eq!(
            c.place(60_000, 48_000, 1024),
            60_000,
            "a gap resets the clock"
        );
    }
}
