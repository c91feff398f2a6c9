//! The VOD archive: every finished segment of every rendition of a live stream, written to
//! archive storage as it completes, with playlists ([`crate::vod`]) that make it a stream of
//! its own. Uploaded files packaged as they are ([`crate::file`]) share the store and layout.
//!
//! Storage is an [`ObjectStore`]: a local directory (`object_store`'s `LocalFileSystem`) by
//! default, or S3-compatible object storage; the layout is the same in both.
//!
//! Layout under the archive root, one prefix per publish session (`{name}-{session}`):
//!
//! ```text
//! {id}/meta.json                  name, session, started, ended (null while live), signed, tracks
//! {id}/index.m3u8                 multivariant playlist (the live one's renditions)
//! {id}/manifest.mpd               static MPD, once the stream ended
//! {id}/{rendition}/init.mp4
//! {id}/{rendition}/{msn}.m4s      each finished segment (same numbers as live)
//! {id}/{rendition}/index.m3u8     EVENT playlist while live, VOD with ENDLIST after
//! ```
//!
//! Each object is written whole (on disk: to a temporary name, then renamed; in S3 a PUT is
//! atomic), segments before the playlists that name them, so a crash mid-stream loses at most
//! the segment being written, and a playlist never names a segment that is not complete.
//!
//! The cost stays low and flat however long a stream runs: a segment is one write, and the
//! media playlists (which object storage can only rewrite whole; on disk each rewrite is a new
//! file) are rewritten every [`REWRITE_MIN`] at most, and at most once per
//! [`REWRITE_PER_SEGMENT`] of the segments they list, so the work per second does not grow
//! with their length: a young archive's playlists follow its stream within 4 s, a two-hour
//! one's (3,600 segments of 2 s) within 72 s. The multivariant playlist is written with the
//! first media playlists and again at the end. When the stream ends, everything is written at
//! once, complete. (The live stream itself is served from memory, not from here.)

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use media::TrackKind;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use tracing::{info, warn};

use crate::hls::{self, rfc3339};
use crate::vod::{self, Segment};
use crate::window::StreamWindow;

/// Where archives are kept.
pub type Store = Arc<dyn ObjectStore>;

/// While live, playlists are rewritten at least this far apart...
pub const REWRITE_MIN: Duration = Duration::from_secs(4);
/// ... and playlists listing n segments at least n times this apart.
pub const REWRITE_PER_SEGMENT: Duration = Duration::from_millis(20);

/// Whether playlists listing `segments` and last written at `last` are due for a rewrite `now`.
fn rewrite_due(segments: usize, last: Option<Instant>, now: Instant) -> bool {
    last.is_none_or(|l| {
        now.duration_since(l) >= REWRITE_MIN.max(REWRITE_PER_SEGMENT * segments as u32)
    })
}

/// One archive file: `{id}/{rest}`.
pub(crate) struct Dir<'a> {
    pub(crate) store: &'a dyn ObjectStore,
    pub(crate) id: &'a str,
}

impl Dir<'_> {
    fn path(&self, rest: &str) -> Path {
        Path::from(format!("{}/{rest}", self.id))
    }

    pub(crate) async fn put(
        &self,
        rest: &str,
        data: impl Into<PutPayload>,
    ) -> object_store::Result<()> {
        self.store
            .put(&self.path(rest), data.into())
            .await
            .map(|_| ())
    }
}

/// What an archive hook ([`crate::OnArchived`]) is told: once when archiving starts
/// (`complete` is `None`), once when the archive is complete.
#[derive(Clone, Debug)]
pub struct News {
    /// The archive's id (`{name}-{session}`), its VOD URLs' first segment.
    pub id: String,
    /// The stream it records.
    pub stream: String,
    /// Recorded while the stream's playback was signed.
    pub signed: bool,
    pub complete: Option<Summary>,
}

/// A complete archive.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    /// Of the first rendition's segments.
    pub duration: Duration,
    pub renditions: Vec<String>,
    /// RFC 6381 codec strings, each once.
    pub codecs: Vec<String>,
    /// The largest video rendition's picture.
    pub width: u32,
    pub height: u32,
}

/// Archives `w` into `store` until the stream ends, telling `hook` when it starts and when it
/// is complete.
pub async fn run(w: Arc<StreamWindow>, store: Store, hook: Option<&crate::OnArchived>) {
    let id = format!("{}-{}", w.name, w.session);
    let dir = Dir {
        store: store.as_ref(),
        id: &id,
    };
    if let Err(e) = start(&w, &dir).await {
        warn!(stream = %w.name, archive = %id, error = %e, "cannot archive this stream");
        return;
    }
    info!(stream = %w.name, archive = %id, "archiving");
    let tell = |complete: Option<Summary>| {
        let told = hook.map(|h| {
            (h.0)(News {
                id: id.clone(),
                stream: w.name.clone(),
                signed: w.config.signed,
                complete,
            })
        });
        async move {
            if let Some(f) = told {
                f.await;
            }
        }
    };
    tell(None).await;
    let tracks = w.read(|st| st.tracks.len());
    let mut done: Vec<Vec<Segment>> = vec![Vec::new(); tracks];
    // When the playlists were last written, and whether segments came since.
    let mut written: Option<Instant> = None;
    let mut stale = false;
    let mut multivariant_out = false;
    let mut rx = w.subscribe();
    loop {
        let (new, ended) = w.read(|st| {
            let mut new = Vec::new();
            // Not a publisher's pause (no media in any track): on demand it is only a
            // discontinuity, which the next segment says.
            let pause = |msn: u64| {
                st.tracks
                    .iter()
                    .all(|t| t.segment(msn).is_none_or(|s| s.is_gap()))
            };
            for (i, t) in st.tracks.iter().enumerate() {
                let last = done[i].last().map(|a| a.msn);
                let new_here = |s: &&crate::window::Segment| {
                    s.complete && last.is_none_or(|l| s.msn > l) && !pause(s.msn)
                };
                for s in t.segments.iter().filter(new_here) {
                    let a = Segment {
                        msn: s.msn,
                        start: s
                            .program_date_time
                            .duration_since(w.started)
                            .unwrap_or_default(),
                        duration: s.duration,
                        discontinuity: s.discontinuity,
                        date: Some(s.program_date_time),
                    };
                    new.push((i, t.rendition.clone(), a, s.chunks()));
                }
            }
            (new, st.ended)
        });
        stale |= !new.is_empty();
        for (i, rendition, a, chunks) in new {
            // The segment's parts as they are in the window: one object, no copy into one buffer.
            let data: PutPayload = chunks.into_iter().collect();
            if let Err(e) = dir.put(&format!("{rendition}/{}.m4s", a.msn), data).await {
                warn!(stream = %w.name, error = %e, "archive write failed; segment skipped");
                continue;
            }
            done[i].push(a);
        }
        let listed = done.iter().map(Vec::len).max().unwrap_or(0);
        if ended || (stale && rewrite_due(listed, written, Instant::now())) {
            match playlists(&w, &dir, &done, !multivariant_out, ended).await {
                Ok(()) => multivariant_out = true,
                Err(e) => warn!(stream = %w.name, error = %e, "archive playlist write failed"),
            }
            written = Some(Instant::now());
            stale = false;
        }
        if ended || rx.changed().await.is_err() {
            if !ended {
                let _ = playlists(&w, &dir, &done, true, true).await;
            }
            info!(stream = %w.name, archive = %id, segments = done.first().map_or(0, Vec::len), "archive complete");
            tell(Some(summary(&w, &done))).await;
            return;
        }
    }
}

fn summary(w: &StreamWindow, done: &[Vec<Segment>]) -> Summary {
    w.read(|st| {
        let mut s = Summary {
            duration: done
                .first()
                .map_or(Duration::ZERO, |d| d.iter().map(|a| a.duration).sum()),
            ..Summary::default()
        };
        for t in &st.tracks {
            s.renditions.push(t.rendition.clone());
            let codec = t.info.codec.codec_string();
            if !s.codecs.contains(&codec) {
                s.codecs.push(codec);
            }
            if t.info.kind() == TrackKind::Video && t.info.height > s.height {
                (s.width, s.height) = (t.info.width, t.info.height);
            }
        }
        s
    })
}

async fn start(w: &StreamWindow, dir: &Dir<'_>) -> object_store::Result<()> {
    let inits: Vec<(String, Bytes)> = w.read(|st| {
        st.tracks
            .iter()
            .map(|t| (t.rendition.clone(), t.init.clone()))
            .collect()
    });
    for (rendition, init) in inits {
        dir.put(&format!("{rendition}/init.mp4"), init).await?;
    }
    meta(w, dir, None).await
}

async fn meta(
    w: &StreamWindow,
    dir: &Dir<'_>,
    ended: Option<SystemTime>,
) -> object_store::Result<()> {
    let tracks: Vec<serde_json::Value> = w.read(|st| {
        st.tracks
            .iter()
            .map(|t| {
                serde_json::json!({
                    "rendition": t.rendition,
                    "codec": t.info.codec.codec_string(),
                    "width": (t.info.width > 0).then_some(t.info.width),
                    "height": (t.info.height > 0).then_some(t.info.height),
                })
            })
            .collect()
    });
    let m = serde_json::json!({
        "id": dir.id,
        "name": w.name,
        "session": w.session,
        "started": rfc3339(w.started),
        "ended": ended.map(rfc3339),
        "signed": w.config.signed,
        "tracks": tracks,
    });
    dir.put("meta.json", Bytes::from(m.to_string())).await
}

async fn playlists(
    w: &StreamWindow,
    dir: &Dir<'_>,
    done: &[Vec<Segment>],
    first: bool,
    ended: bool,
) -> object_store::Result<()> {
    // The live stream's target duration, fixed when its first segment ended: an EVENT
    // playlist keeps it.
    let (names, multivariant, td) = w.read(|st| {
        let names: Vec<String> = st.tracks.iter().map(|t| t.rendition.clone()).collect();
        (names, hls::multivariant(w, st), w.target_duration(st))
    });
    for (name, segments) in names.iter().zip(done) {
        let p = vod::media_playlist(segments, td, ended);
        dir.put(&format!("{name}/index.m3u8"), Bytes::from(p))
            .await?;
    }
    if first || ended {
        dir.put("index.m3u8", Bytes::from(multivariant)).await?;
    }
    if ended {
        let renditions: Vec<vod::Rendition> = w.read(|st| {
            st.tracks
                .iter()
                .zip(done)
                .map(|(t, segments)| vod::Rendition {
                    name: t.rendition.clone(),
                    info: t.info.clone(),
                    peak: t.peak_bitrate.max(t.average_bitrate()).max(1),
                    average: t.average_bitrate(),
                    frame_rate: t.frame_rate(),
                    segments: segments.clone(),
                })
                .collect()
        });
        let mpd = vod::static_mpd(&renditions);
        dir.put("manifest.mpd", Bytes::from(mpd)).await?;
        meta(w, dir, Some(SystemTime::now())).await?;
    }
    Ok(())
}

/// One archive as listed: its `meta.json` and when that was last written.
pub struct Listed {
    pub prefix: Path,
    pub meta: serde_json::Value,
    /// How long ago `meta.json` was written (it is written last when the stream ends).
    pub age: Option<Duration>,
}

/// Every archive in `store` with its `meta.json`, read a few at a time (one request each on
/// object storage). Errs only when the listing itself fails.
pub async fn list(store: &dyn ObjectStore) -> object_store::Result<Vec<Listed>> {
    let top = store.list_with_delimiter(None).await?;
    let read = |prefix: Path| async move {
        let got = store.get(&prefix.clone().join("meta.json")).await.ok()?;
        let age = u64::try_from(got.meta.last_modified.timestamp_millis())
            .ok()
            .and_then(|ms| {
                (SystemTime::UNIX_EPOCH + Duration::from_millis(ms))
                    .elapsed()
                    .ok()
            });
        let meta = serde_json::from_slice(&got.bytes().await.ok()?).ok()?;
        Some(Listed { prefix, meta, age })
    };
    Ok(futures_util::stream::iter(top.common_prefixes)
        .map(read)
        .buffer_unordered(16)
        .filter_map(|l| async move { l })
        .collect()
        .await)
}

/// Whether a listed prefix holds an uploaded file packaged as it is ([`crate::file`]:
/// `"source": "file"` in its `meta.json`) rather than a live recording.
pub fn is_file(meta: &serde_json::Value) -> bool {
    meta["source"] == "file"
}

/// Deletes live archives that ended more than `keep` ago (packaged files stay until their
/// asset is deleted). Returns the ids of those that went.
pub async fn prune(store: &dyn ObjectStore, keep: Duration) -> Vec<String> {
    let Ok(listed) = list(store).await else {
        return Vec::new();
    };
    let mut removed = Vec::new();
    for Listed { prefix, meta, age } in listed {
        let ended = !meta["ended"].is_null();
        if is_file(&meta) || !ended || age.is_none_or(|a| a <= keep) {
            continue;
        }
        if let Ok(true) = delete_prefix(store, &prefix).await {
            removed.extend(prefix.parts().next().map(|p| p.as_ref().to_string()));
        }
    }
    removed
}

/// Deletes archive `id`'s files; false when it had none.
pub async fn remove(store: &dyn ObjectStore, id: &str) -> object_store::Result<bool> {
    delete_prefix(store, &Path::from(id)).await
}

/// Every file under `prefix`, `meta.json` last: until it goes, a later listing finds the
/// archive again. True when there were files and all went.
async fn delete_prefix(store: &dyn ObjectStore, prefix: &Path) -> object_store::Result<bool> {
    let files: Vec<Path> = store
        .list(Some(prefix))
        .map_ok(|m| m.location)
        .try_collect()
        .await?;
    if files.is_empty() {
        return Ok(false);
    }
    let (metas, rest): (Vec<Path>, Vec<Path>) = files
        .into_iter()
        .partition(|f| f.filename() == Some("meta.json"));
    for f in rest.into_iter().chain(metas) {
        store.delete(&f).await?;
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn playlists_are_rewritten_less_often_as_they_grow() {
        let t0 = Instant::now();
        assert!(rewrite_due(0, None, t0), "the first write at once");
        assert!(rewrite_due(10, Some(t0), t0 + Duration::from_secs(4)));
        assert!(!rewrite_due(10, Some(t0), t0 + Duration::from_millis(3999)));
        // Two hours of 2 s segments: every 72 s.
        assert!(!rewrite_due(3600, Some(t0), t0 + Duration::from_secs(71)));
        assert!(rewrite_due(3600, Some(t0), t0 + Duration::from_secs(72)));
    }

    #[tokio::test]
    async fn prune_deletes_only_ended_archives_past_retention() {
        let root = std::env::temp_dir().join(format!("estuary-prune-{}", std::process::id()));
        std::fs::create_dir_all(&root).unwrap();
        let store = object_store::local::LocalFileSystem::new_with_prefix(&root).unwrap();
        for (id, ended) in [("a-1", true), ("b-2", false)] {
            let meta = serde_json::json!({ "id": id, "ended": ended.then_some("2026-01-01T00:00:00.000Z") });
            for f in ["meta.json", "video/0.m4s"] {
                store
                    .put(
                        &Path::from(format!("{id}/{f}")),
                        PutPayload::from(meta.to_string()),
                    )
                    .await
                    .unwrap();
            }
        }
        assert!(
            prune(&store, Duration::from_secs(3600)).await.is_empty(),
            "too young"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(prune(&store, Duration::from_millis(1)).await, ["a-1"]);
        assert!(
            !root.join("a-1/meta.json").exists(),
            "ended and old: deleted"
        );
        assert!(
            !root.join("a-1/video/0.m4s").exists(),
            "ended and old: deleted"
        );
        assert!(root.join("b-2/meta.json").exists(), "still live: kept");
        assert!(remove(&store, "b-2").await.unwrap(), "removed on request");
        assert!(!root.join("b-2/video/0.m4s").exists());
        assert!(
            !remove(&store, "b-2").await.unwrap(),
            "nothing left to remove"
        );
        let _ = tokio::fs::remove_dir_all(&root).await;
    }
}
