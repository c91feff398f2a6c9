//! Media that arrives before a broadcast can start (its tracks are not all configured yet, or
//! the sender reports that align them have not come), kept so the start loses nothing.
//!
//! The buffer holds media from the newest video keyframe on (older media cannot be decoded
//! from where the broadcast will start); with no video, from the first frame. It is bounded:
//! a keyframe interval longer than its capacity empties it, and it waits for the next
//! keyframe, which starts a decodable stream. Both rules are the same for every ingest that
//! waits (SRT, WHIP).

/// Items kept per waiting publisher: several seconds of video and audio at usual rates.
pub const EARLY_CAPACITY: usize = 2048;

#[derive(Debug)]
pub struct Early<T> {
    items: Vec<T>,
    /// Taking media (after a keyframe, or from the start without video).
    open: bool,
    capacity: usize,
    /// Items dropped: over capacity, or before the first keyframe.
    pub dropped: u64,
}

impl<T> Early<T> {
    /// A buffer that waits for a video keyframe (`video`) or takes media from the start.
    pub fn new(video: bool) -> Self {
        Self::with_capacity(video, EARLY_CAPACITY)
    }

    pub fn with_capacity(video: bool, capacity: usize) -> Self {
        Early {
            items: Vec::new(),
            open: !video,
            capacity: capacity.max(1),
            dropped: 0,
        }
    }

    /// A video keyframe: the buffer starts over from it.
    pub fn keyframe(&mut self, item: T) {
        self.dropped += self.items.len() as u64;
        self.items.clear();
        self.open = true;
        self.items.push(item);
    }

    /// Any other media: kept once the buffer is open. Over capacity everything goes and the
    /// buffer waits for the next keyframe.
    pub fn push(&mut self, item: T) {
        if !self.open {
            self.dropped += 1;
            return;
        }
        if self.items.len() >= self.capacity {
            self.dropped += self.items.len() as u64 + 1;
            self.items.clear();
            self.open = false;
            return;
        }
        self.items.push(item);
    }

    /// There is no video after all: take media from now on without waiting for a keyframe.
    pub fn without_video(&mut self) {
        self.open = true;
    }

    pub fn first(&self) -> Option<&T> {
        self.items.first()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.items.iter()
    }

    pub fn retain(&mut self, keep: impl FnMut(&T) -> bool) {
        self.items.retain(keep);
    }

    /// Everything kept, in arrival order; the buffer is done.
    pub fn take(&mut self) -> Vec<T> {
        std::mem::take(&mut self.items)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_from_the_newest_keyframe_and_empties_when_full() {
        let mut e = Early::with_capacity(true, 3);
        e.push('a'); // before any keyframe
        e.keyframe('K');
        e.push('b');
        e.keyframe('L');
        e.push('c');
        assert_eq!(e.iter().copied().collect::<String>(), "Lc");
        e.push('d');
        e.push('e'); // the fourth: over capacity
        assert!(e.is_empty());
        e.push('f'); // waits for a keyframe again
        assert!(e.is_empty());
        e.keyframe('M');
        assert_eq!(e.take(), vec!['M']);
        assert_eq!(e.dropped, 1 + 2 + 4 + 1);
    }

    #[test]
    fn without_video_it_takes_media_at_once() {
        let mut e = Early::new(false);
        e.push(1);
        assert_eq!(e.first(), Some(&1));
        let mut e = Early::new(true);
        e.push(1);
        e.without_video();
        e.push(2);
        assert_eq!(e.take(), vec![2]);
    }
}
