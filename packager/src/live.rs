//! The packager task: one per live broadcast. Reads frames, cuts them into CMAF parts with the
//! segmenter, publishes each part to the stream's window the moment it is complete, and (when
//! an archive is configured) runs the stream's archive writer beside it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use media::{BroadcastReader, ReadEvent};
use tokio_util::sync::CancellationToken;
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
    /// Told when an archive starts and when it is complete.
    pub on_archived: Option<OnArchived>,
}

/// What [`OnArchived`] calls; the archive waits for what it returns (so a hook's record of
/// the start is made before the record of the end).
pub type ArchivedFn =
    dyn Fn(crate::archive::News) -> futures_util::future::BoxFuture<'static, ()> + Send + Sync;

/// A hook told when an archive starts and when it is complete.
#[derive(Clone)]
pub struct OnArchived(pub Arc<ArchivedFn>);

impl std::fmt::Debug for OnArchived {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OnArchived")
    }
}

impl Default for PackagerConfig {
    fn default() -> Self {
        Self {
            window: WindowConfig::default(),
            end_grace: Duration::from_secs(2),
            linger: Duration::from_secs(30),
            archive: None,
            on_archived: None,
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

/// Packages one broadcast into `windows` until it ends, and archives it alongside; returns once
/// the archive holds everything and the window is gone. On `shutdown` the broadcast is still
/// read to its end (the ingest ends it), but the end grace and the linger are cut short.
pub async fn run(
    reader: BroadcastReader,
    windows: Windows,
    config: PackagerConfig,
    shutdown: CancellationToken,
) {
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
    let archive = async {
        if let Some(store) = &config.archive {
            crate::archive::run(window.clone(), store.clone(), config.on_archived.as_ref()).await;
        }
    };
    let package = async {
        package(reader, &window, &config).await;
        info!(stream = %name, "publisher gone; ending the playlist after the grace period");
        pause(config.end_grace, &shutdown).await;
        window.end();
        pause(config.linger, &shutdown).await;
        windows.remove(&window);
    };
    tokio::join!(package, archive);
}

/// Sleeps for `d`, or until shutdown.
async fn pause(d: Duration, shutdown: &CancellationToken) {
    tokio::select! {
        _ = tokio::time::sleep(d) => {}
        _ = shutdown.cancelled() => {}
    }
}

/// Reads the broadcast to its end into the window.
async fn package(mut reader: BroadcastReader, window: &StreamWindow, config: &PackagerConfig) {
    let tracks = reader.tracks().to_vec();
    let seg_cfg = SegmenterConfig {
        segment_target: config.window.segment_target,
        part_target: config.window.part_target,
    };
    let mut segmenter = Segmenter::new(&tracks, seg_cfg);
    let mut sequence = vec![0u32; tracks.len()];
    let mut lagged_total = 0u64;
    let name = &window.name;
    info!(stream = %name, session = %window.session, "packaging");
    loop {
        let event = reader.recv().await;
        let received = std::time::Instant::now();
        window.skipped.store(
            reader.stats().skipped.load(Ordering::Relaxed),
            Ordering::Relaxed,
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
                segmenter.restarted();
            }
            None => {
                segmenter.finish();
                drain(&mut segmenter, window, &tracks, &mut sequence);
                return;
            }
        }
        let parts = drain(&mut segmenter, window, &tracks, &mut sequence);
        if parts > 0 {
            let took = received.elapsed();
            for _ in 0..parts {
                window.publish_delay.observe(took);
            }
        }
    }
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
            Output::SegmentEnd {
                track,
                msn,
                target_duration,
            } => {
                window.complete_segment(track, msn, target_duration);
                continue;
            }
            Output::Capped { msn, length } => {
                warn!(stream = %window.name, msn, secs = length.as_secs(), "no keyframe to start a new segment with: segment closed at the cap; video waits for the next keyframe (set the encoder's keyframe interval to the segment target, 2 s by default)");
                continue;
            }
            Output::Behind { track } => {
                warn!(stream = %window.name, track = %tracks[track].codec.codec_string(), "a track has sent nothing for a while, or is far behind the video: its parts are closed without it (gaps) until it catches up");
                continue;
            }
        };
        n += 1;
        let gap = p.samples.is_empty();
        let data = if gap {
            bytes::Bytes::new()
        } else {
            sequence[p.track] += 1;
            match cmaf::fragment(sequence[p.track], p.start.ticks.max(0) as u64, &p.samples) {
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
            duration: p.end.since(p.start),
            independent: p.independent,
            gap,
            last_in_segment: p.last_in_segment,
            end_expected: p.end_expected,
            discontinuity: p.discontinuity,
            start: p.start.as_duration(),
            samples: p.samples.len() as u32,
            target_duration: p.target_duration,
            announced: p.announced,
            period: None,
            wall_offset: p.wall_offset.unwrap_or_else(|| seg.removed()),
        });
    }
    n
}
