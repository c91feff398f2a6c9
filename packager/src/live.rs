//! The packager task: one per live broadcast. Reads frames, cuts them into CMAF parts with the
//! segmenter and publishes each part to the stream's window the moment it is complete.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use media::{BroadcastReader, ReadEvent};
use tracing::{info, warn};

use crate::cmaf;
use crate::segmenter::{Output, Segmenter, SegmenterConfig};
use crate::window::{PartIn, StreamWindow, WindowConfig, Windows};

#[derive(Clone, Debug)]
pub struct PackagerConfig {
    pub window: WindowConfig,
    /// After the publisher leaves, playlists stay live this long before EXT-X-ENDLIST.
    pub end_grace: Duration,
    /// An ended stream's window is kept this long (so players see the ENDLIST) before it goes.
    pub linger: Duration,
    /// Where finished segments are archived as VOD (`None`: not archived).
    pub archive: Option<crate::archive::Store>,
}

impl Default for PackagerConfig {
    fn default() -> Self {
        Self {
            window: WindowConfig::default(),
            end_grace: Duration::from_secs(2),
            linger: Duration::from_secs(30),
            archive: None,
        }
    }
}

fn session_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos() as u64;
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{:x}", (nanos ^ (n << 48)) & 0xffff_ffff_ffff)
}

/// Packages one broadcast into `windows` until it ends.
pub async fn run(mut reader: BroadcastReader, windows: Windows, config: PackagerConfig) {
    let name = reader.name().to_string();
    let tracks = reader.tracks().to_vec();
    let mut inits = Vec::with_capacity(tracks.len());
    for t in &tracks {
        match cmaf::init_segment(t) {
            Ok(init) => inits.push((t.clone(), init)),
            Err(e) => {
                warn!(stream = %name, error = %e, "cannot package this stream");
                return;
            }
        }
    }
    let window = Arc::new(StreamWindow::new(
        &name,
        session_id(),
        config.window.clone(),
        inits,
    ));
    windows.insert(window.clone());
    if let Some(root) = &config.archive {
        tokio::spawn(crate::archive::run(window.clone(), root.clone()));
    }
    let seg_cfg = SegmenterConfig {
        segment_target: config.window.segment_target,
        part_target: config.window.part_target,
    };
    let mut segmenter = Segmenter::new(&tracks, seg_cfg);
    let mut sequence = vec![0u32; tracks.len()];
    let mut lagged_total = 0u64;
    info!(stream = %name, session = %window.session, "packaging");
    loop {
        let event = reader.recv().await;
        window.skipped.store(
            reader
                .stats()
                .skipped
                .load(std::sync::atomic::Ordering::Relaxed),
            std::sync::atomic::Ordering::Relaxed,
        );
        match event {
            Some(ReadEvent::Frame(f)) => segmenter.push(f),
            Some(ReadEvent::Lagged { skipped }) => {
                lagged_total += skipped;
                warn!(stream = %name, skipped, total = lagged_total, "packager too slow, skipped to the next keyframe");
                segmenter.lagged();
            }
            Some(ReadEvent::Discontinuity) => {
                info!(stream = %name, "source restarted; the playlist continues after a discontinuity");
                segmenter.lagged();
            }
            None => {
                segmenter.finish();
                drain(&mut segmenter, &window, &tracks, &mut sequence);
                break;
            }
        }
        drain(&mut segmenter, &window, &tracks, &mut sequence);
    }
    info!(stream = %name, "publisher gone; ending the playlist after the grace period");
    tokio::time::sleep(config.end_grace).await;
    window.end();
    tokio::time::sleep(config.linger).await;
    windows.remove(&window);
}

/// Moves every finished part out of the segmenter into the window as CMAF; returns how many.
/// `sequence` holds each track's last `mfhd` sequence number.
pub fn drain(
    seg: &mut Segmenter,
    window: &StreamWindow,
    tracks: &[media::TrackInfo],
    sequence: &mut [u32],
) -> usize {
    let mut n = 0;
    while let Some(out) = seg.pull() {
        let p = match out {
            Output::Part(p) => p,
            Output::SegmentEnd { track, msn } => {
                window.complete_segment(track, msn);
                continue;
            }
        };
        n += 1;
        let scale = tracks[p.track].timescale.0 as f64;
        let gap = p.samples.is_empty();
        let data = if gap {
            bytes::Bytes::new()
        } else {
            sequence[p.track] += 1;
            match cmaf::fragment(sequence[p.track], p.base_dts.max(0) as u64, &p.samples) {
                Ok(d) => d,
                Err(e) => {
                    warn!(stream = %window.name, error = %e, "could not write a fragment");
                    continue;
                }
            }
        };
        window.push_part(PartIn {
            track: p.track,
            msn: p.msn,
            index: p.index,
            data,
            duration: p.duration as f64 / scale,
            independent: p.independent,
            gap,
            last_in_segment: p.last_in_segment,
            end_expected: p.end_expected,
            discontinuity: p.discontinuity,
            start: p.base_dts as f64 / scale,
            samples: p.samples.len() as u32,
        });
    }
    n
}
