//! The VOD archive: every finished segment of every rendition of a live stream, written to a
//! directory as it completes, with playlists that make it a stream of its own.
//!
//! Layout under the archive root, one directory per publish session (`{name}-{session}`):
//!
//! ```text
//! {id}/meta.json                  name, session, started, ended (null while live), tracks
//! {id}/index.m3u8                 multivariant playlist (the live one's renditions)
//! {id}/manifest.mpd               static MPD, once the stream ended
//! {id}/{rendition}/init.mp4
//! {id}/{rendition}/{msn}.m4s      each finished segment (same numbers as live)
//! {id}/{rendition}/index.m3u8     EVENT playlist while live, VOD with ENDLIST after
//! ```
//!
//! Files are written to a temporary name and renamed, so a crash mid-stream loses at most the
//! segment being written, and a playlist never names a segment that is not complete on disk.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use media::TrackKind;
use tracing::{info, warn};

use crate::hls::{self, rfc3339};
use crate::window::StreamWindow;

#[derive(Clone, Debug)]
struct Archived {
    msn: u64,
    duration: f64,
    discontinuity: bool,
    start: SystemTime,
}

/// Archives `w` under `root` until the stream ends.
pub async fn run(w: Arc<StreamWindow>, root: PathBuf) {
    let id = format!("{}-{}", w.name, w.session);
    let dir = root.join(&id);
    if let Err(e) = start(&w, &dir).await {
        warn!(stream = %w.name, dir = %dir.display(), error = %e, "cannot archive this stream");
        return;
    }
    info!(stream = %w.name, archive = %id, "archiving");
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
            let path = dir.join(&rendition).join(format!("{}.m4s", a.msn));
            if let Err(e) = write_atomic(&path, &chunks.concat()).await {
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
            return;
        }
    }
}

async fn start(w: &StreamWindow, dir: &Path) -> std::io::Result<()> {
    let inits: Vec<(String, bytes::Bytes)> = w.read(|st| {
        st.tracks
            .iter()
            .map(|t| (t.rendition.clone(), t.init.clone()))
            .collect()
    });
    for (rendition, init) in inits {
        tokio::fs::create_dir_all(dir.join(&rendition)).await?;
        write_atomic(&dir.join(&rendition).join("init.mp4"), &init).await?;
    }
    meta(w, dir, None).await
}

async fn meta(w: &StreamWindow, dir: &Path, ended: Option<SystemTime>) -> std::io::Result<()> {
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
        "id": dir.file_name().and_then(|n| n.to_str()).unwrap_or_default(),
        "name": w.name,
        "session": w.session,
        "started": rfc3339(w.started),
        "ended": ended.map(rfc3339),
        "tracks": tracks,
    });
    write_atomic(&dir.join("meta.json"), m.to_string().as_bytes()).await
}

async fn playlists(
    w: &StreamWindow,
    dir: &Path,
    done: &[Vec<Archived>],
    ended: bool,
) -> std::io::Result<()> {
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
        let td = segs
            .iter()
            .map(|s| s.duration)
            .fold(w.config.segment_target.as_secs_f64(), f64::max)
            .ceil() as u64;
        let mut p = String::from("#EXTM3U\n#EXT-X-VERSION:7\n");
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
                let _ = writeln!(p, "#EXT-X-PROGRAM-DATE-TIME:{}", rfc3339(s.start));
            }
            let _ = writeln!(p, "#EXTINF:{:.5},\n{}.m4s", s.duration, s.msn);
        }
        if ended {
            p.push_str("#EXT-X-ENDLIST\n");
        }
        write_atomic(&dir.join(rendition).join("index.m3u8"), p.as_bytes()).await?;
    }
    write_atomic(&dir.join("index.m3u8"), multivariant.as_bytes()).await?;
    if ended {
        let mpd = static_mpd(w, &renditions, &infos, done);
        write_atomic(&dir.join("manifest.mpd"), mpd.as_bytes()).await?;
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
    let secs = |t: SystemTime| {
        t.duration_since(w.started)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0)
    };
    let total = done
        .first()
        .and_then(|s| s.last().map(|l| secs(l.start) + l.duration))
        .unwrap_or(0.0);
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
        let scale = infos[first].0.timescale.0 as f64;
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
                (secs(s.start) * scale).round() as u64,
                (s.duration * scale).round() as u64
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

async fn write_atomic(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    tokio::fs::write(&tmp, data).await?;
    tokio::fs::rename(&tmp, path).await
}

/// Deletes archives that ended more than `keep` ago. Returns how many went.
pub async fn prune(root: &Path, keep: Duration) -> usize {
    let Ok(mut dirs) = tokio::fs::read_dir(root).await else {
        return 0;
    };
    let mut removed = 0;
    while let Ok(Some(entry)) = dirs.next_entry().await {
        let meta = entry.path().join("meta.json");
        let Ok(modified) = tokio::fs::metadata(&meta).await.and_then(|m| m.modified()) else {
            continue;
        };
        let ended = tokio::fs::read_to_string(&meta)
            .await
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .is_some_and(|v| !v["ended"].is_null());
        // meta.json is last written when the stream ends.
        if ended
            && modified.elapsed().is_ok_and(|age| age > keep)
            && tokio::fs::remove_dir_all(entry.path()).await.is_ok()
        {
            removed += 1;
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn prune_deletes_only_ended_archives_past_retention() {
        let root = std::env::temp_dir().join(format!("estuary-prune-{}", std::process::id()));
        for (id, ended) in [("a-1", true), ("b-2", false)] {
            tokio::fs::create_dir_all(root.join(id)).await.unwrap();
            let meta = serde_json::json!({ "id": id, "ended": ended.then_some("2026-01-01T00:00:00.000Z") });
            tokio::fs::write(root.join(id).join("meta.json"), meta.to_string())
                .await
                .unwrap();
        }
        assert_eq!(
            prune(&root, Duration::from_secs(3600)).await,
            0,
            "too young"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(prune(&root, Duration::from_millis(1)).await, 1);
        assert!(!root.join("a-1").exists(), "ended and old: deleted");
        assert!(root.join("b-2").exists(), "still live: kept");
        let _ = tokio::fs::remove_dir_all(&root).await;
    }
}
