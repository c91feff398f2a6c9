//! Packaging finished uploads as they are. A loop takes uploaded assets whose media waits to be
//! made from the catalog, one at a time (with a shared catalog, origins share the work, and one
//! that stops mid-file leaves it to another after [`STALE`]), reads the file with FFmpeg's
//! demuxers on a blocking thread and packages its frames without re-encoding
//! ([`packager::file`]) into the archive store, where `/vod/{asset}/` plays it. An asset made
//! from a URL (`POST /api/v1/assets`) has its file fetched first ([`fetch`]), then goes the
//! same way; so does an upload kept in object storage, copied to the uploads directory first
//! ([`stored`]).
//!
//! The asset shows its progress while `preparing`; then it is `ready` with its duration,
//! picture, codecs and renditions, and the upload's bytes are deleted. A file that needs
//! re-encoding stays `waiting` with the reason (for the transcoding pipeline); one that cannot
//! be read ends `errored` with the reason, and its bytes go.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub mod fetch;
pub mod stored;

use catalog::{Asset, Catalog, Input, Media, Status};
use packager::archive::Store;
use packager::file::{FileError, Packaged, Packager};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use transcode::demux::{DemuxError, Demuxer};

/// Segments of at least this long, cut on the video's keyframes.
pub const SEGMENT_TARGET: Duration = Duration::from_secs(6);
/// How often the asset's progress is recorded (which also says its packaging is alive).
const PROGRESS_EVERY: Duration = Duration::from_secs(2);
/// An asset left `preparing` and untouched this long was left by a process that stopped.
const STALE: Duration = Duration::from_secs(60);
/// Without news of a completed upload, the catalog is looked at this often (another origin's
/// uploads, a shared catalog).
const POLL: Duration = Duration::from_secs(2);

/// How one asset's packaging ended, when it did not make it ready.
enum Outcome {
    /// It cannot be streamed as it is: it waits for the transcoding pipeline.
    NeedsTranscode(String),
    /// It never will be playable as uploaded.
    Failed(String),
    /// Storage failed: the upload's bytes are kept.
    Storage(String),
    /// The server is stopping: taken again at the next start.
    Interrupted,
}

impl From<DemuxError> for Outcome {
    fn from(e: DemuxError) -> Self {
        match e {
            DemuxError::NeedsTranscode(_) | DemuxError::NotBuilt => {
                Outcome::NeedsTranscode(e.to_string())
            }
            DemuxError::NoVideo | DemuxError::NotMedia(_) | DemuxError::Read(_) => {
                Outcome::Failed(e.to_string())
            }
        }
    }
}

impl From<FileError> for Outcome {
    fn from(e: FileError) -> Self {
        match e {
            // Re-encoding with regular keyframes makes it packageable.
            FileError::SegmentTooLarge { .. } => Outcome::NeedsTranscode(e.to_string()),
            FileError::Store(_) => Outcome::Storage(e.to_string()),
            FileError::Empty | FileError::Cmaf(_) => Outcome::Failed(e.to_string()),
        }
    }
}

/// Records how far asset `id`'s making has come (`what`: for the log when the catalog fails);
/// an error once the asset is no longer being made (deleted meanwhile), so the work stops.
pub(crate) async fn progress(
    catalog: &Catalog,
    id: &str,
    percent: f64,
    what: &str,
) -> Result<(), String> {
    match catalog.set_progress(id, percent).await {
        Ok(true) => Ok(()),
        Ok(false) => Err("the asset is no longer being made (deleted?)".into()),
        Err(e) => {
            warn!(asset = id, error = %e, "cannot record {what}'s progress");
            Ok(())
        }
    }
}

/// The share of an asset's progress its download has, when its file is fetched.
const FETCH_SHARE: f64 = 50.0;
/// The share of an asset's progress the copy of an upload out of object storage has.
const COPY_SHARE: f64 = 20.0;

/// Where assets' files come from.
pub struct Inputs {
    /// The uploads directory: uploads on disk, and the files read here.
    pub dir: PathBuf,
    /// Where uploads' bytes are.
    pub uploads: httpd::upload::store::Store,
    pub fetcher: fetch::Fetcher,
}

/// Packages uploaded and fetched assets until `cancel`; `completed` is told of each finished
/// upload and each new asset to fetch.
pub async fn run(
    catalog: Catalog,
    store: Store,
    inputs: Inputs,
    completed: Arc<Notify>,
    cancel: CancellationToken,
) {
    let Inputs {
        dir: uploads,
        uploads: upload_store,
        fetcher,
    } = inputs;
    // At start with a catalog of this process's own, an asset left `preparing` was left by
    // this process: taken again at once.
    let mut starting = !catalog.is_shared();
    loop {
        let now = catalog::now_ms();
        let stale_before = if starting {
            now + 1
        } else {
            now - STALE.as_millis() as i64
        };
        match catalog.claim_asset_to_prepare(stale_before).await {
            Ok(Some((asset, Input::Upload(upload)))) => {
                let path = uploads.join(&upload);
                let (ready, from) = match &upload_store {
                    httpd::upload::store::Store::Objects(objects) => {
                        let copy =
                            stored::copy(&catalog, objects, &upload, &path, &asset.id, COPY_SHARE);
                        let got =
                            got_file(&catalog, &asset, "object storage", &path, &cancel, copy);
                        (got.await, COPY_SHARE)
                    }
                    httpd::upload::store::Store::Disk(_) => (true, 0.0),
                };
                if ready && prepare(&catalog, &store, &path, from, asset, &cancel).await {
                    upload_store.remove(&upload, None).await;
                }
                if cancel.is_cancelled() {
                    return;
                }
                continue;
            }
            Ok(Some((asset, Input::Url(url)))) => {
                let path = fetcher.path(&asset.id);
                let fetch = fetcher.fetch(&url, &asset.id, &catalog, FETCH_SHARE);
                if got_file(&catalog, &asset, "its URL", &path, &cancel, fetch).await {
                    let _ = prepare(&catalog, &store, &path, FETCH_SHARE, asset, &cancel).await;
                }
                if cancel.is_cancelled() {
                    return;
                }
                continue;
            }
            Ok(None) => starting = false,
            Err(e) => warn!(error = %e, "cannot look for uploads to package now"),
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = completed.notified() => {}
            _ = tokio::time::sleep(POLL) => {}
        }
    }
}

/// Gets asset `asset`'s file to `path` with `work` (fetching it from its URL, copying it out of
/// object storage: `from` says which, for the log) unless the server stops first; false when
/// it is not there to prepare: the asset then says why (`errored` with `work`'s reason) or
/// waits for the next start, and nothing of the file is left.
async fn got_file(
    catalog: &Catalog,
    asset: &Asset,
    from: &str,
    path: &Path,
    cancel: &CancellationToken,
    work: impl std::future::Future<Output = Result<u64, String>>,
) -> bool {
    let id = asset.id.as_str();
    let started = Instant::now();
    info!(asset = id, from, "getting an asset's file");
    let outcome = tokio::select! {
        r = work => Some(r),
        _ = cancel.cancelled() => None,
    };
    let recorded = match outcome {
        Some(Ok(bytes)) => {
            info!(
                asset = id,
                from,
                bytes,
                took_s = started.elapsed().as_secs_f64(),
                "got an asset's file"
            );
            return true;
        }
        Some(Err(reason)) => {
            remove_bytes(path).await;
            warn!(asset = id, from, reason, "cannot get an asset's file");
            catalog.set_status(id, Status::Errored, Some(&reason)).await
        }
        None => {
            remove_bytes(path).await;
            info!(
                asset = id,
                from, "getting an asset's file stopped with the server; it starts again"
            );
            catalog.set_status(id, Status::Waiting, None).await
        }
    };
    if let Err(e) = recorded {
        warn!(asset = id, error = %e, "the catalog did not take this asset's new status");
    }
    false
}

/// Packages the file at `path` as asset `asset`, its progress going on from `from` percent;
/// whether its bytes are done with (deleted: the asset is ready, or never will be).
async fn prepare(
    catalog: &Catalog,
    store: &Store,
    path: &Path,
    from: f64,
    asset: Asset,
    cancel: &CancellationToken,
) -> bool {
    let id = asset.id.as_str();
    let started = Instant::now();
    info!(asset = id, file = %path.display(), "packaging a file as it is");
    let outcome = package(catalog, store, path, from, &asset, cancel).await;
    let mut done_with = false;
    let result = match outcome {
        Ok(p) => {
            let media = Media {
                duration: Some(p.duration.as_secs_f64()),
                width: (p.width > 0).then_some(p.width),
                height: (p.height > 0).then_some(p.height),
                codecs: p.codecs.clone(),
                renditions: p.renditions.clone(),
            };
            let took = started.elapsed().as_secs_f64();
            let recorded = match catalog.set_media(id, &media).await {
                Ok(_) => catalog.set_status(id, Status::Ready, None).await,
                Err(e) => Err(e),
            };
            if matches!(recorded, Ok(true)) {
                remove_bytes(path).await;
                done_with = true;
                info!(
                    asset = id,
                    duration_s = p.duration.as_secs_f64(),
                    took_s = took,
                    times_real_time = p.duration.as_secs_f64() / took.max(0.001),
                    renditions = ?p.renditions,
                    "asset ready: packaged without re-encoding"
                );
            }
            recorded
        }
        Err(Outcome::NeedsTranscode(reason)) => {
            let _ = packager::archive::remove(store.as_ref(), id).await;
            info!(asset = id, reason, "this upload waits for re-encoding");
            catalog.set_status(id, Status::Waiting, Some(&reason)).await
        }
        Err(Outcome::Failed(reason)) => {
            let _ = packager::archive::remove(store.as_ref(), id).await;
            remove_bytes(path).await;
            done_with = true;
            warn!(asset = id, reason, "this file cannot be played");
            catalog.set_status(id, Status::Errored, Some(&reason)).await
        }
        Err(Outcome::Storage(reason)) => {
            let _ = packager::archive::remove(store.as_ref(), id).await;
            warn!(
                asset = id,
                reason, "packaging failed; the upload's bytes are kept"
            );
            catalog.set_status(id, Status::Errored, Some(&reason)).await
        }
        Err(Outcome::Interrupted) => {
            let _ = packager::archive::remove(store.as_ref(), id).await;
            info!(
                asset = id,
                "packaging stopped with the server; it starts again"
            );
            catalog.set_status(id, Status::Waiting, None).await
        }
    };
    match result {
        Err(e) => warn!(asset = id, error = %e, "the catalog did not take this asset's new status"),
        // Deleted while it was being made: nothing of it is kept.
        Ok(false) => {
            let _ = packager::archive::remove(store.as_ref(), id).await;
            remove_bytes(path).await;
            done_with = true;
            info!(
                asset = id,
                "the asset was deleted while it was made; its media and file are deleted too"
            );
        }
        Ok(true) => {}
    }
    done_with
}

async fn remove_bytes(path: &Path) {
    if let Err(e) = tokio::fs::remove_file(path).await {
        if e.kind() != std::io::ErrorKind::NotFound {
            warn!(file = %path.display(), error = %e, "cannot delete an upload's bytes");
        }
    }
}

async fn package(
    catalog: &Catalog,
    store: &Store,
    path: &Path,
    from: f64,
    asset: &Asset,
    cancel: &CancellationToken,
) -> Result<Packaged, Outcome> {
    if !tokio::fs::try_exists(path).await.unwrap_or(false) {
        return Err(Outcome::Storage(format!(
            "the upload's bytes are not at {} on this origin (several origins need one shared [uploads] dir)",
            path.display()
        )));
    }
    let gone = |e: tokio::task::JoinError| Outcome::Failed(format!("the file reader stopped: {e}"));
    let file = path.to_path_buf();
    let demuxer = tokio::task::spawn_blocking(move || Demuxer::open(&file))
        .await
        .map_err(gone)??;
    let tracks = demuxer.tracks().to_vec();
    let (tx, mut rx) = tokio::sync::mpsc::channel(256);
    let read = Arc::new(AtomicU64::new(0f64.to_bits()));
    let reader = {
        let read = read.clone();
        tokio::task::spawn_blocking(move || {
            let mut d = demuxer;
            while let Some(f) = d.next_frame()? {
                read.store(d.progress().to_bits(), Ordering::Relaxed);
                if tx.blocking_send(f).is_err() {
                    break; // packaging stopped
                }
            }
            Ok::<_, DemuxError>(())
        })
    };
    let mut packager = Packager::start(store.as_ref(), &asset.id, &tracks, SEGMENT_TARGET).await?;
    let mut told = Instant::now();
    loop {
        let frame = tokio::select! {
            f = rx.recv() => f,
            _ = cancel.cancelled() => return Err(Outcome::Interrupted),
        };
        let Some(frame) = frame else {
            break;
        };
        packager.push(frame).await?;
        if told.elapsed() >= PROGRESS_EVERY {
            told = Instant::now();
            let read = f64::from_bits(read.load(Ordering::Relaxed));
            let percent = from + read * (100.0 - from);
            progress(catalog, &asset.id, percent.min(99.0), "packaging")
                .await
                .map_err(Outcome::Failed)?;
        }
    }
    reader.await.map_err(gone)??;
    Ok(packager.finish(asset.playback == "signed").await?)
}
