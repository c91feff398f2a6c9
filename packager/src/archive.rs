//! The VOD archive: every finished segment of every rendition of a live stream, written to
//! archive storage as it completes, with playlists that make it a stream of its own.
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

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use media::{Timestamp, TrackKind};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use tracing::{info, warn};

use crate::hls::{self, rfc3339};
use crate::window::StreamWindow;

#[derive(Clone, Debug)]
struct Archived {
    msn: u64,
    duration: Duration,
    discontinuity: bool,
    start: SystemTime,
}

/// Where archives are kept.
pub type Store = Arc<dyn ObjectStore>;

/// One archive file: `{id}/{rest}`.
struct Dir<'a> {
    store: &'a dyn ObjectStore,
    id: &'a str,
}

impl Dir<'_> {
    fn path(&self, rest: &str) -> Path {
        Path::from(format!("{}/{rest}", self.id))
    }

    async fn put(&self, rest: &str, data: impl Into<PutPayload>) -> object_store::Result<()> {
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
    let mut done: Vec<Vec<Archived>> = vec![Vec::new(); tracks];
    let mut rx = w.subscribe();
    loop {
        let (new, ended) = w.read(|st| {
            let mut new = Vec::new();
            for (i, t) in st.tracks.iter().enumerate() {
                let last = done[i].last().map(|a| a.msn);
                for s in t.segments.iter().filter(|s| s.complete) {
                    if last.is_none_or(|l| s.msn > l) {
                        let a = Archived {
                            msn: s.msn,
                            duration: s.duration,
                            discontinuity: s.discontinuity,
                            start: s.program_date_time,
                        };
                        new.push((i, t.rendition.clone(), a, s.chunks()));
                    }
                }
            }
            (new, st.ended)
        });
        let changed = !new.is_empty();
        for (i, rendition, a, chunks) in new {
            // The segment's parts as they are in the window: one object, no copy into one buffer.
            let data: PutPayload = chunks.into_iter().collect();
            if let Err(e) = dir.put(&format!("{rendition}/{}.m4s", a.msn), data).await {
                warn!(stream = %w.name, error = %e, "archive write failed; segment skipped");
                continue;
            }
            done[i].push(a);
        }
        if changed || ended {
            if let Err(e) = playlists(&w, &dir, &done, ended).await {
                warn!(stream = %w.name, error = %e, "archive playlist write failed");
            }
        }
        if ended || rx.changed().await.is_err() {
            if !ended {
                let _ = playlists(&w, &dir, &done, true).await;
            }
            info!(stream = %w.name, archive = %id, segments = done.first().map_or(0, Vec::len), "archive complete");
            tell(Some(summary(&w, &done))).await;
            return;
        }
    }
}

fn summary(w: &StreamWindow, done: &[Vec<Archived>]) -> Summary {
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
    done: &[Vec<Archived>],
    ended: bool,
) -> object_store::Result<()> {
    let (renditions, multivariant, infos) = w.read(|st| {
        (
            st.tracks
                .iter()
                .map(|t| t.rendition.clone())
                .collect::<Vec<_>>(),
            hls::multivariant(w, st),
            st.tracks
                .iter()
                .map(|t| {
                    (
                        t.info.clone(),
                        t.peak_bitrate.max(t.average_bitrate()).max(1),
                    )
                })
                .collect::<Vec<_>>(),
        )
    });
    for (i, rendition) in renditions.iter().enumerate() {
        let segs = &done[i];
        // The live stream's, fixed when its first segment ended: an EVENT playlist keeps it.
        let td = w.read(|st| w.target_duration(st));
        let mut p = String::from("#EXTM3U\n#EXT-X-VERSION:6\n");
        let _ = writeln!(p, "#EXT-X-TARGETDURATION:{td}");
        let _ = writeln!(
            p,
            "#EXT-X-PLAYLIST-TYPE:{}",
            if ended { "VOD" } else { "EVENT" }
        );
        let _ = writeln!(
            p,
            "#EXT-X-MEDIA-SEQUENCE:{}",
            segs.first().map_or(0, |s| s.msn)
        );
        p.push_str("#EXT-X-INDEPENDENT-SEGMENTS\n#EXT-X-MAP:URI=\"init.mp4\"\n");
        for (k, s) in segs.iter().enumerate() {
            if k > 0 && s.discontinuity {
                p.push_str("#EXT-X-DISCONTINUITY\n");
            }
            if k == 0 || s.discontinuity {
                let _ = writeln!(
                    p,
                    "#EXT-X-PROGRAM-DATE-TIME:{}",
                    hls::program_date_time(s.start)
                );
            }
            let _ = writeln!(p, "#EXTINF:{},\n{}.m4s", hls::seconds(s.duration), s.msn);
        }
        if ended {
            p.push_str("#EXT-X-ENDLIST\n");
        }
        dir.put(&format!("{rendition}/index.m3u8"), Bytes::from(p))
            .await?;
    }
    dir.put("index.m3u8", Bytes::from(multivariant)).await?;
    if ended {
        let mpd = static_mpd(w, &renditions, &infos, done);
        dir.put("manifest.mpd", Bytes::from(mpd)).await?;
        meta(w, dir, Some(SystemTime::now())).await?;
    }
    Ok(())
}

/// A static MPD over the archived segments (the same layout as the live one).
fn static_mpd(
    w: &StreamWindow,
    renditions: &[String],
    infos: &[(media::TrackInfo, u64)],
    done: &[Vec<Archived>],
) -> String {
    let since_start = |t: SystemTime| t.duration_since(w.started).unwrap_or_default();
    let total = done
        .first()
        .and_then(|s| s.last().map(|l| since_start(l.start) + l.duration))
        .unwrap_or_default()
        .as_secs_f64();
    let mut out = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<MPD xmlns=\"urn:mpeg:dash:schema:mpd:2011\" profiles=\"urn:mpeg:dash:profile:isoff-live:2011\" type=\"static\" mediaPresentationDuration=\"PT{total:.3}S\" minBufferTime=\"PT2S\">\n  <Period id=\"0\" start=\"PT0S\">\n"
    );
    for (set, kind) in [TrackKind::Video, TrackKind::Audio].into_iter().enumerate() {
        let members: Vec<usize> = (0..infos.len())
            .filter(|&i| infos[i].0.kind() == kind)
            .collect();
        let Some(&first) = members.first() else {
            continue;
        };
        let (content, mime) = match kind {
            TrackKind::Video => ("video", "video/mp4"),
            TrackKind::Audio => ("audio", "audio/mp4"),
        };
        let scale = infos[first].0.timescale;
        let _ = write!(
            out,
            "    <AdaptationSet id=\"{set}\" contentType=\"{content}\" mimeType=\"{mime}\" segmentAlignment=\"true\" startWithSAP=\"1\">\n      <SegmentTemplate timescale=\"{}\" initialization=\"$RepresentationID$/init.mp4\" media=\"$RepresentationID$/$Number$.m4s\" startNumber=\"{}\">\n        <SegmentTimeline>\n",
            infos[first].0.timescale.0,
            done[first].first().map_or(0, |s| s.msn)
        );
        for s in &done[first] {
            let _ = writeln!(
                out,
                "          <S t=\"{}\" d=\"{}\"/>",
                Timestamp::from_duration(since_start(s.start), scale).ticks,
                Timestamp::from_duration(s.duration, scale).ticks
            );
        }
        out.push_str("        </SegmentTimeline>\n      </SegmentTemplate>\n");
        for i in members {
            let (info, bw) = &infos[i];
            let _ = write!(
                out,
                "      <Representation id=\"{}\" codecs=\"{}\" bandwidth=\"{bw}\"",
                renditions[i],
                info.codec.codec_string()
            );
            if info.width > 0 {
                let _ = write!(out, " width=\"{}\" height=\"{}\"", info.width, info.height);
            }
            if kind == TrackKind::Audio {
                let _ = write!(out, " audioSamplingRate=\"{}\"", info.sample_rate);
            }
            out.push_str("/>\n");
        }
        out.push_str("    </AdaptationSet>\n");
    }
    out.push_str("  </Period>\n</MPD>\n");
    out
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

/// Deletes archives that ended more than `keep` ago. Returns the ids of those that went.
pub async fn prune(store: &dyn ObjectStore, keep: Duration) -> Vec<String> {
    let Ok(listed) = list(store).await else {
        return Vec::new();
    };
    let mut removed = Vec::new();
    for Listed { prefix, meta, age } in listed {
        let ended = !meta["ended"].is_null();
        if !ended || age.is_none_or(|a| a <= keep) {
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
