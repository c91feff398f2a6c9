//! What happens to each stream that goes live on the hub: the transcoder makes its ladder (on
//! a thread of its own; unless the stream is served as it comes, or has no video), and a
//! packager per broadcast (the source, or the transcoder's renditions) makes its window (marked
//! signed when the stream's playback is) and archives it. And the archive's retention.

use std::sync::Arc;
use std::time::Duration;

use httpd::access::Playback;
use media::{BroadcastReader, Hub, TrackKind};
use packager::{PackagerConfig, Windows};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::config::Config;

/// Registers the pipeline as the hub's consumer: every broadcast from now on is transcoded and
/// packaged, each part on `tasks`.
pub fn start(
    config: &Config,
    hub: &Hub,
    windows: &Windows,
    packager_config: PackagerConfig,
    playback: Arc<Playback>,
    tasks: &TaskTracker,
    shutdown: &CancellationToken,
) {
    let package = Packaging {
        windows: windows.clone(),
        config: packager_config,
        playback,
        tasks: tasks.clone(),
        shutdown: shutdown.clone(),
        runtime: tokio::runtime::Handle::current(),
    };
    let transcode = transcoder(config);
    let untranscoded = config.untranscoded();
    let tasks = tasks.clone();
    hub.on_publish(move |a| {
        let has_video = a
            .reader
            .tracks()
            .iter()
            .any(|t| t.kind() == TrackKind::Video);
        let Some(ladder) = transcode
            .as_ref()
            .filter(|_| has_video && !untranscoded.contains(&a.name))
        else {
            package.start(a.reader);
            return;
        };
        let package = package.clone();
        let output = Arc::new(move |reader| package.start(reader));
        match transcode::start(a.reader, ladder.clone(), output) {
            Ok(done) => {
                tasks.spawn(done);
            }
            Err(e) => warn!(stream = %a.name, error = %e, "could not start the transcoder"),
        }
    });
}

/// Starts a packager for each broadcast it is given.
#[derive(Clone)]
struct Packaging {
    windows: Windows,
    config: PackagerConfig,
    playback: Arc<Playback>,
    tasks: TaskTracker,
    shutdown: CancellationToken,
    /// The transcoder hands its renditions over from a thread of its own.
    runtime: tokio::runtime::Handle,
}

impl Packaging {
    fn start(&self, reader: BroadcastReader) {
        let mut config = self.config.clone();
        config.window.signed = self.playback.is_signed(reader.name(), false);
        let run = packager::run(reader, self.windows.clone(), config, self.shutdown.clone());
        self.tasks.spawn_on(run, &self.runtime);
    }
}

/// The ladder, when transcoding is on and possible here (a log line says which).
fn transcoder(config: &Config) -> Option<transcode::TranscodeConfig> {
    if !config.transcode.enabled {
        return None;
    }
    let ladder = config.transcode_config();
    match transcode::available(&ladder) {
        Ok(()) => {
            let rungs: Vec<&str> = ladder.ladder.iter().map(|r| r.name.as_str()).collect();
            info!(ladder = ?rungs, encoder = %ladder.encoder, preset = %ladder.preset, "transcoding every stream into the ladder (rungs at or above the source's height are skipped)");
            Some(ladder)
        }
        Err(e) => {
            warn!(error = %e, "transcoder unavailable; streams are served as they come");
            None
        }
    }
}

/// Deletes archives that ended more than `keep` ago, and their assets, every ten minutes,
/// until `cancel`.
pub async fn retention(
    store: packager::archive::Store,
    catalog: catalog::Catalog,
    keep: Duration,
    cancel: CancellationToken,
) {
    loop {
        let removed = packager::archive::prune(store.as_ref(), keep).await;
        if !removed.is_empty() {
            info!(removed = removed.len(), "old archives deleted (retention)");
        }
        for id in removed {
            if let Err(e) = catalog.delete(&id).await {
                warn!(archive = %id, error = %e, "a deleted archive stays in the catalog");
            }
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(600)) => {}
        }
    }
}
