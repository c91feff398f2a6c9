//! Fan-out of one publisher's frames to many consumers without ever blocking the publisher.
//!
//! Each reader has its own bounded queue. When a reader's queue is full the reader has fallen
//! behind: its queue is emptied and it skips ahead to the next keyframe of the broadcast's
//! leading track (the first video track, or audio where there is no video). The frames it
//! missed are counted, reported to the reader once as [`ReadEvent::Lagged`], and logged in
//! aggregate. A GOP cache (frames since the last keyframe, bounded) lets a reader that
//! joins late start on a keyframe.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use bytes::Bytes;
use tokio::sync::Notify;

use crate::codec::{TrackInfo, TrackKind};
use crate::time::Timestamp;

/// One access unit of one track.
#[derive(Clone, Debug, PartialEq)]
pub struct Frame {
    /// Index into the broadcast's tracks.
    pub track: usize,
    pub dts: Timestamp,
    pub pts: Timestamp,
    /// A random access point: an IDR/IRAP picture, or any audio frame.
    pub keyframe: bool,
    /// Length-prefixed NAL units for H.264/H.265, OBUs for AV1, a raw access unit for audio.
    pub data: Bytes,
}

impl Frame {
    /// Moves the frame by `ticks` of its own timescale, decode and presentation time alike.
    pub fn shift(&mut self, ticks: i64) {
        self.dts = Timestamp::new(self.dts.ticks + ticks, self.dts.scale);
        self.pts = Timestamp::new(self.pts.ticks + ticks, self.pts.scale);
    }
}

/// Default capacity of a reader's queue, in frames: a few seconds of a 60 fps stream with audio.
pub const DEFAULT_READER_CAPACITY: usize = 1024;
/// The GOP cache stops growing past this many bytes (a pathological keyframe interval).
const GOP_CACHE_MAX_BYTES: usize = 64 << 20;

/// What a reader gets.
#[derive(Clone, Debug, PartialEq)]
pub enum ReadEvent {
    Frame(Frame),
    /// The reader fell behind and `skipped` frames were dropped; the next frame of the
    /// leading track is a keyframe.
    Lagged {
        skipped: u64,
    },
    /// The source restarted (a camera reconnected): frames after this one continue the
    /// timeline after a gap, from a keyframe.
    Discontinuity,
}

#[derive(Debug, Default)]
pub struct BroadcastStats {
    /// Frames dropped across all readers because a reader was too slow.
    pub skipped: AtomicU64,
}

/// What a reader's queue holds: frames, and markers between them.
enum Entry {
    Frame(Frame),
    Discontinuity,
}

struct ReaderQueue {
    frames: VecDeque<Entry>,
    capacity: usize,
    skipping: bool,
    /// Skipped since the reader last heard about it.
    unreported: u64,
    closed: bool,
}

struct ReaderSlot {
    queue: Mutex<ReaderQueue>,
    notify: Notify,
}

struct State {
    readers: Vec<Weak<ReaderSlot>>,
    gop: Vec<Frame>,
    gop_bytes: usize,
    gop_overflow: bool,
    closed: bool,
}

struct Shared {
    name: String,
    tracks: Vec<TrackInfo>,
    leader: usize,
    state: Mutex<State>,
    stats: BroadcastStats,
}

/// The publishing side. Dropping it (or calling [`Broadcast::close`]) ends the broadcast:
/// readers drain what is queued and then see the end.
pub struct Broadcast {
    shared: Arc<Shared>,
}

/// A consumer's side: an independent, bounded view of the broadcast.
pub struct BroadcastReader {
    shared: Arc<Shared>,
    slot: Arc<ReaderSlot>,
}

impl Broadcast {
    pub fn new(name: impl Into<String>, tracks: Vec<TrackInfo>) -> Broadcast {
        let leader = tracks
            .iter()
            .position(|t| t.kind() == TrackKind::Video)
            .unwrap_or(0);
        Broadcast {
            shared: Arc::new(Shared {
                name: name.into(),
                tracks,
                leader,
                state: Mutex::new(State {
                    readers: Vec::new(),
                    gop: Vec::new(),
                    gop_bytes: 0,
                    gop_overflow: false,
                    closed: false,
                }),
                stats: BroadcastStats::default(),
            }),
        }
    }

    pub fn name(&self) -> &str {
        &self.shared.name
    }

    pub fn tracks(&self) -> &[TrackInfo] {
        &self.shared.tracks
    }

    pub fn stats(&self) -> &BroadcastStats {
        &self.shared.stats
    }

    /// A new reader with the default capacity, starting at the GOP cache.
    pub fn reader(&self) -> BroadcastReader {
        self.reader_with_capacity(DEFAULT_READER_CAPACITY)
    }

    pub fn reader_with_capacity(&self, capacity: usize) -> BroadcastReader {
        let capacity = capacity.max(2);
        let mut state = self.shared.state.lock().unwrap();
        let mut frames: VecDeque<Entry> = VecDeque::with_capacity(capacity.min(256));
        let start = state.gop.len().saturating_sub(capacity);
        // Starting mid-GOP would hand the reader frames it cannot decode; if the cache does
        // not fit, the reader waits for the next keyframe instead.
        let skipping = start > 0 || state.gop_overflow;
        if !skipping {
            frames.extend(state.gop.iter().cloned().map(Entry::Frame));
        }
        let slot = Arc::new(ReaderSlot {
            queue: Mutex::new(ReaderQueue {
                frames,
                capacity,
                skipping,
                unreported: 0,
                closed: state.closed,
            }),
            notify: Notify::new(),
        });
        state.readers.push(Arc::downgrade(&slot));
        BroadcastReader {
            shared: self.shared.clone(),
            slot,
        }
    }

    /// Hands a frame to every reader. Never blocks on a reader; O(readers).
    pub fn push(&self, frame: Frame) {
        let shared = &self.shared;
        let leads = frame.track == shared.leader && frame.keyframe;
        let mut state = shared.state.lock().unwrap();
        if leads {
            state.gop.clear();
            state.gop_bytes = 0;
            state.gop_overflow = false;
        }
        if !state.gop_overflow {
            state.gop_bytes += frame.data.len();
            if state.gop_bytes > GOP_CACHE_MAX_BYTES {
                state.gop.clear();
                state.gop_overflow = true;
            } else {
                state.gop.push(frame.clone());
            }
        }
        let mut skipped_now = 0u64;
        state.readers.retain(|weak| {
            let Some(slot) = weak.upgrade() else {
                return false;
            };
            let mut q = slot.queue.lock().unwrap();
            if q.skipping && !leads {
                q.unreported += 1;
                skipped_now += 1;
                return true;
            }
            if q.frames.len() >= q.capacity {
                // Too slow: drop the backlog and resume at the next keyframe.
                let dropped = q.frames.len() as u64;
                q.frames.clear();
                q.unreported += dropped;
                skipped_now += dropped;
                if !leads {
                    q.skipping = true;
                    q.unreported += 1;
                    skipped_now += 1;
                    drop(q);
                    slot.notify.notify_one();
                    return true;
                }
            }
            q.skipping = false;
            q.frames.push_back(Entry::Frame(frame.clone()));
            drop(q);
            slot.notify.notify_one();
            true
        });
        drop(state);
        if skipped_now > 0 {
            shared
                .stats
                .skipped
                .fetch_add(skipped_now, Ordering::Relaxed);
        }
    }

    /// Tells every reader that the source restarted; the next frames start at a keyframe
    /// after a gap. The GOP cache starts over.
    pub fn discontinuity(&self) {
        let mut state = self.shared.state.lock().unwrap();
        state.gop.clear();
        state.gop_bytes = 0;
        state.gop_overflow = false;
        state.readers.retain(|weak| {
            let Some(slot) = weak.upgrade() else {
                return false;
            };
            let mut q = slot.queue.lock().unwrap();
            if !q.skipping {
                q.frames.push_back(Entry::Discontinuity);
                drop(q);
                slot.notify.notify_one();
            }
            true
        });
    }

    /// Ends the broadcast for every reader (they drain their queues first).
    pub fn close(&self) {
        let mut state = self.shared.state.lock().unwrap();
        if state.closed {
            return;
        }
        state.closed = true;
        for weak in state.readers.drain(..) {
            if let Some(slot) = weak.upgrade() {
                slot.queue.lock().unwrap().closed = true;
                slot.notify.notify_one();
            }
        }
    }
}

impl Drop for Broadcast {
    fn drop(&mut self) {
        self.close();
    }
}

impl BroadcastReader {
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    pub fn tracks(&self) -> &[TrackInfo] {
        &self.shared.tracks
    }

    pub fn stats(&self) -> &BroadcastStats {
        &self.shared.stats
    }

    /// The next event, or `None` once the broadcast has ended and the queue is drained.
    pub async fn recv(&mut self) -> Option<ReadEvent> {
        loop {
            if let Some(ev) = self.try_recv() {
                return ev;
            }
            self.slot.notify.notified().await;
        }
    }

    /// `Some(event)` or `Some(None)` at the end; `None` when nothing is ready yet.
    #[allow(clippy::option_option)]
    pub fn try_recv(&mut self) -> Option<Option<ReadEvent>> {
        let mut q = self.slot.queue.lock().unwrap();
        if q.unreported > 0 {
            let skipped = std::mem::take(&mut q.unreported);
            return Some(Some(ReadEvent::Lagged { skipped }));
        }
        match q.frames.pop_front() {
            Some(Entry::Frame(f)) => return Some(Some(ReadEvent::Frame(f))),
            Some(Entry::Discontinuity) => return Some(Some(ReadEvent::Discontinuity)),
            None => {}
        }
        if q.closed {
            return Some(None);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::CodecConfig;
    use crate::time::Timescale;

    fn tracks() -> Vec<TrackInfo> {
        vec![
            TrackInfo::video(CodecConfig::H264 { avcc: Bytes::new() }),
            TrackInfo::audio(
                CodecConfig::Aac {
                    asc: Bytes::from_static(&[0x12, 0x10]),
                },
                44100,
                2,
            ),
        ]
    }

    fn frame(track: usize, t: i64, key: bool) -> Frame {
        let ts = Timestamp::new(t, Timescale::VIDEO);
        Frame {
            track,
            dts: ts,
            pts: ts,
            keyframe: key,
            data: Bytes::from_static(b"x"),
        }
    }

    #[tokio::test]
    async fn late_reader_starts_at_gop() {
        let b = Broadcast::new("s", tracks());
        b.push(frame(0, 0, true));
        b.push(frame(0, 1, false));
        b.push(frame(0, 2, true));
        b.push(frame(1, 2, true));
        b.push(frame(0, 3, false));
        let mut r = b.reader();
        let mut got = vec![];
        b.close();
        while let Some(ReadEvent::Frame(f)) = r.recv().await {
            got.push((f.track, f.dts.ticks));
        }
        assert_eq!(got, vec![(0, 2), (1, 2), (0, 3)]);
    }

    #[tokio::test]
    async fn slow_reader_skips_to_keyframe_and_publisher_never_blocks() {
        let b = Broadcast::new("s", tracks());
        let mut r = b.reader_with_capacity(4);
        b.push(frame(0, 0, true));
        for t in 1..10 {
            b.push(frame(0, t, false));
        }
        b.push(frame(0, 10, true));
        b.push(frame(0, 11, false));
        b.close();
        let first = r.recv().await.unwrap();
        assert!(matches!(first, ReadEvent::Lagged { skipped } if skipped == 10));
        let mut got = vec![];
        while let Some(ev) = r.recv().await {
            match ev {
                ReadEvent::Frame(f) => got.push(f.dts.ticks),
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(got, vec![10, 11]);
        assert_eq!(b.stats().skipped.load(Ordering::Relaxed), 10);
    }

    #[tokio::test]
    async fn a_discontinuity_arrives_between_the_frames_around_it() {
        let b = Broadcast::new("s", tracks());
        let mut r = b.reader();
        b.push(frame(0, 0, true));
        b.discontinuity();
        b.push(frame(0, 90, true));
        b.close();
        let mut got = vec![];
        while let Some(ev) = r.recv().await {
            got.push(match ev {
                ReadEvent::Frame(f) => f.dts.ticks,
                ReadEvent::Discontinuity => -1,
                ReadEvent::Lagged { .. } => -2,
            });
        }
        assert_eq!(got, vec![0, -1, 90]);
    }

    #[tokio::test]
    async fn drop_ends_readers() {
        let b = Broadcast::new("s", tracks());
        let mut r = b.reader();
        let task = tokio::spawn(async move { r.recv().await });
        tokio::task::yield_now().await;
        drop(b);
        assert_eq!(task.await.unwrap(), None);
    }
}
