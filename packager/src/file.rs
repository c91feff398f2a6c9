//! Uploaded files packaged as they are, without re-encoding: a file's demuxed frames (H.264 or
//! HEVC video, AAC audio) cut into CMAF segments on the video's keyframes and written to the
//! archive store in the live archives' layout, with VOD playlists and a static MPD
//! ([`crate::vod`]), `meta.json` last (`"source": "file"`).
//!
//! [`Cutter`] decides the segments. The leading track (the video) ends a segment on its first
//! keyframe at or past the target duration. Every other track is cut where the leader was cut,
//! by time, once it has a frame past that boundary: files interleave their tracks loosely, so a
//! boundary may be known before or after the other tracks' frames around it arrive. Each track
//! numbers its own segments. Nothing is held beyond the segments being made, and those are
//! capped ([`MAX_SEGMENT_BYTES`]): a file whose keyframes are too far apart, or whose tracks are
//! stored far apart, is refused rather than read into memory.

use std::collections::VecDeque;
use std::time::Duration;

use bytes::Bytes;
use media::{Frame, Timestamp, TrackInfo, TrackKind};
use object_store::ObjectStore;

use crate::archive::Dir;
use crate::cmaf::{self, CmafError, Sample};
use crate::hls::rfc3339;
use crate::vod::{self, Rendition, Segment};
use crate::window::rendition_names;

/// The most one track's segment being made may hold.
pub const MAX_SEGMENT_BYTES: usize = 64 << 20;

#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("the file has no frames to package")]
    Empty,
    #[error(
        "a segment of {track} grew past 64 MiB: keyframes (or the file's tracks) are too far apart to package without re-encoding"
    )]
    SegmentTooLarge { track: String },
    #[error(transparent)]
    Cmaf(#[from] CmafError),
    #[error("archive storage: {0}")]
    Store(#[from] object_store::Error),
}

/// One segment made by the [`Cutter`].
#[derive(Debug)]
pub struct Finished {
    pub track: usize,
    pub segment: Segment,
    /// Its `moof`+`mdat`.
    pub data: Bytes,
    pub samples: usize,
}

/// One track being cut.
struct Cut {
    name: String,
    scale: media::Timescale,
    /// The frames of the segment being made.
    pending: Vec<Frame>,
    bytes: usize,
    /// The leader's boundaries this track has not passed yet (other tracks only).
    bounds: VecDeque<Duration>,
    msn: u64,
    last_dts: Option<i64>,
    /// The last step from one frame's decode time to the next: the last frame's duration.
    step: i64,
}

impl Cut {
    fn time(&self, ticks: i64) -> Duration {
        Timestamp::new(ticks.max(0), self.scale).as_duration()
    }

    /// The first `count` pending frames as a segment that ends at `end` (ticks).
    fn close(&mut self, track: usize, count: usize, end: i64) -> Result<Finished, FileError> {
        let rest = self.pending.split_off(count);
        let frames = std::mem::replace(&mut self.pending, rest);
        self.bytes = self.pending.iter().map(|f| f.data.len()).sum();
        let base = frames[0].dts.ticks;
        let samples: Vec<Sample> = frames
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let next = frames.get(i + 1).map_or(end, |n| n.dts.ticks);
                Sample {
                    duration: (next - f.dts.ticks).clamp(0, u32::MAX as i64) as u32,
                    cts_offset: (f.pts.ticks - f.dts.ticks).clamp(i32::MIN as i64, i32::MAX as i64)
                        as i32,
                    keyframe: f.keyframe,
                    data: f.data.clone(),
                }
            })
            .collect();
        let data = cmaf::fragment((self.msn + 1) as u32, base.max(0) as u64, &samples)?;
        let segment = Segment {
            msn: self.msn,
            start: self.time(base),
            duration: self.time(end) - self.time(base),
            discontinuity: false,
            date: None,
        };
        self.msn += 1;
        Ok(Finished {
            track,
            segment,
            data,
            samples: samples.len(),
        })
    }

    /// Cuts at every boundary this track's frames have passed.
    fn settle(&mut self, track: usize, out: &mut Vec<Finished>) -> Result<(), FileError> {
        while let Some(&bound) = self.bounds.front() {
            let half = self.step / 2;
            let Some(k) = self
                .pending
                .iter()
                .position(|f| self.time(f.dts.ticks + half) >= bound)
            else {
                return Ok(());
            };
            self.bounds.pop_front();
            // No frame of this track before the boundary (a gap): no segment.
            if k > 0 {
                let end = self.pending[k].dts.ticks;
                out.push(self.close(track, k, end)?);
            }
        }
        Ok(())
    }
}

/// Cuts a file's frames into segments (see the module's documentation).
pub struct Cutter {
    tracks: Vec<Cut>,
    leader: usize,
    target: Duration,
}

impl Cutter {
    /// Segments of about `target` (at least; they end on the leader's keyframes).
    pub fn new(tracks: &[TrackInfo], target: Duration) -> Cutter {
        let names = rendition_names(tracks.iter());
        Cutter {
            leader: tracks
                .iter()
                .position(|t| t.kind() == TrackKind::Video)
                .unwrap_or(0),
            tracks: tracks
                .iter()
                .zip(names)
                .map(|(info, name)| Cut {
                    name,
                    scale: info.timescale,
                    pending: Vec::new(),
                    bytes: 0,
                    bounds: VecDeque::new(),
                    msn: 0,
                    last_dts: None,
                    step: 0,
                })
                .collect(),
            target,
        }
    }

    /// Takes the next frame (in the file's order); the segments it finished.
    pub fn push(&mut self, mut f: Frame) -> Result<Vec<Finished>, FileError> {
        let track = f.track;
        let leader = self.leader;
        let Some(t) = self.tracks.get_mut(track) else {
            return Ok(Vec::new());
        };
        if f.dts.scale != t.scale {
            f.dts = f.dts.rescale(t.scale);
            f.pts = f.pts.rescale(t.scale);
        }
        // Decode times must rise; a repeated one (some MPEG-TS muxers) moves a tick on.
        if let Some(last) = t.last_dts {
            if f.dts.ticks <= last {
                f.shift(last + 1 - f.dts.ticks);
            }
            t.step = f.dts.ticks - last;
        }
        t.last_dts = Some(f.dts.ticks);
        let mut out = Vec::new();
        if track == leader {
            let cut_here = f.keyframe
                && t.pending.first().is_some_and(|first| {
                    t.time(f.dts.ticks) - t.time(first.dts.ticks) + Duration::from_millis(1)
                        >= self.target
                });
            if cut_here {
                let count = t.pending.len();
                out.push(t.close(track, count, f.dts.ticks)?);
                let bound = t.time(f.dts.ticks);
                for (i, other) in self.tracks.iter_mut().enumerate() {
                    if i != leader {
                        other.bounds.push_back(bound);
                        other.settle(i, &mut out)?;
                    }
                }
            }
            let t = &mut self.tracks[track];
            t.bytes += f.data.len();
            t.pending.push(f);
        } else {
            t.bytes += f.data.len();
            t.pending.push(f);
            t.settle(track, &mut out)?;
        }
        let t = &self.tracks[track];
        if t.bytes > MAX_SEGMENT_BYTES {
            return Err(FileError::SegmentTooLarge {
                track: t.name.clone(),
            });
        }
        Ok(out)
    }

    /// The file ended: its last segments.
    pub fn finish(mut self) -> Result<Vec<Finished>, FileError> {
        let mut out = Vec::new();
        for (i, t) in self.tracks.iter_mut().enumerate() {
            // Boundaries no frame passed: the rest is the last segment.
            t.bounds.clear();
            if let Some(last) = t.pending.last() {
                let end = last.dts.ticks + t.step.max(1);
                let count = t.pending.len();
                out.push(t.close(i, count, end)?);
            }
        }
        Ok(out)
    }
}

/// What a packaged file turned out to be.
#[derive(Clone, Debug, Default)]
pub struct Packaged {
    /// Of the leading (video) rendition.
    pub duration: Duration,
    pub renditions: Vec<String>,
    /// RFC 6381 codec strings, each once.
    pub codecs: Vec<String>,
    /// The video's picture.
    pub width: u32,
    pub height: u32,
    /// Samples written, per rendition.
    pub samples: Vec<u64>,
}

/// Writes one file's renditions into the store under `{id}/` as its frames come.
pub struct Packager<'a> {
    dir: Dir<'a>,
    cutter: Cutter,
    renditions: Vec<Rendition>,
    bytes: Vec<u64>,
    samples: Vec<u64>,
}

impl<'a> Packager<'a> {
    /// Starts asset `id` with one rendition per track (their init segments written now).
    pub async fn start(
        store: &'a dyn ObjectStore,
        id: &'a str,
        tracks: &[TrackInfo],
        segment_target: Duration,
    ) -> Result<Packager<'a>, FileError> {
        let dir = Dir { store, id };
        let names = rendition_names(tracks.iter());
        let mut renditions = Vec::new();
        for (info, name) in tracks.iter().zip(names) {
            dir.put(&format!("{name}/init.mp4"), cmaf::init_segment(info)?)
                .await?;
            renditions.push(Rendition {
                name,
                info: info.clone(),
                peak: 0,
                average: 0,
                frame_rate: None,
                segments: Vec::new(),
            });
        }
        Ok(Packager {
            dir,
            cutter: Cutter::new(tracks, segment_target),
            bytes: vec![0; tracks.len()],
            samples: vec![0; tracks.len()],
            renditions,
        })
    }

    /// The next frame of the file.
    pub async fn push(&mut self, f: Frame) -> Result<(), FileError> {
        let done = self.cutter.push(f)?;
        self.store(done).await
    }

    async fn store(&mut self, done: Vec<Finished>) -> Result<(), FileError> {
        for f in done {
            let r = &mut self.renditions[f.track];
            self.dir
                .put(&format!("{}/{}.m4s", r.name, f.segment.msn), f.data.clone())
                .await?;
            let secs = f.segment.duration.as_secs_f64();
            let bits = f.data.len() as u64 * 8;
            // A short last segment says little of the rate.
            if secs >= 1.0 {
                r.peak = r.peak.max((bits as f64 / secs) as u64);
            }
            self.bytes[f.track] += f.data.len() as u64;
            self.samples[f.track] += f.samples as u64;
            r.segments.push(f.segment);
        }
        Ok(())
    }

    /// The file ended: the last segments, the playlists, the MPD, then `meta.json` (with it the
    /// asset is complete). `signed`: its playback needs a token.
    pub async fn finish(mut self, signed: bool) -> Result<Packaged, FileError> {
        let cutter = std::mem::replace(&mut self.cutter, Cutter::new(&[], Duration::ZERO));
        let last = cutter.finish()?;
        self.store(last).await?;
        if self.renditions.iter().all(|r| r.segments.is_empty()) {
            return Err(FileError::Empty);
        }
        for (r, bytes) in self.renditions.iter_mut().zip(&self.bytes) {
            let total: Duration = r.segments.iter().map(|s| s.duration).sum();
            let secs = total.as_secs_f64().max(0.001);
            r.average = (*bytes as f64 * 8.0 / secs) as u64;
            r.peak = r.peak.max(r.average);
        }
        for (r, samples) in self.renditions.iter_mut().zip(&self.samples) {
            if r.info.kind() == TrackKind::Video {
                let secs: f64 = r.segments.iter().map(|s| s.duration.as_secs_f64()).sum();
                r.frame_rate = (secs > 0.0).then(|| *samples as f64 / secs);
            }
        }
        let td = self
            .renditions
            .iter()
            .map(|r| vod::target_duration(&r.segments))
            .max()
            .unwrap_or(1);
        for r in &self.renditions {
            let p = vod::media_playlist(&r.segments, td, true);
            self.dir
                .put(&format!("{}/index.m3u8", r.name), Bytes::from(p))
                .await?;
        }
        let multivariant = vod::multivariant(&self.renditions);
        self.dir
            .put("index.m3u8", Bytes::from(multivariant))
            .await?;
        let mpd = vod::static_mpd(&self.renditions);
        self.dir.put("manifest.mpd", Bytes::from(mpd)).await?;

        let mut p = Packaged {
            samples: self.samples.clone(),
            ..Packaged::default()
        };
        let leader = self.cutter_leader();
        p.duration = self.renditions[leader]
            .segments
            .iter()
            .map(|s| s.duration)
            .sum();
        let mut tracks = Vec::new();
        for r in &self.renditions {
            p.renditions.push(r.name.clone());
            let codec = r.info.codec.codec_string();
            if !p.codecs.contains(&codec) {
                p.codecs.push(codec.clone());
            }
            if r.info.kind() == TrackKind::Video && r.info.height > p.height {
                (p.width, p.height) = (r.info.width, r.info.height);
            }
            tracks.push(serde_json::json!({
                "rendition": r.name,
                "codec": codec,
                "width": (r.info.width > 0).then_some(r.info.width),
                "height": (r.info.height > 0).then_some(r.info.height),
            }));
        }
        let now = rfc3339(std::time::SystemTime::now());
        let meta = serde_json::json!({
            "id": self.dir.id,
            "name": self.dir.id,
            "source": "file",
            "started": now,
            "ended": now,
            "signed": signed,
            "tracks": tracks,
        });
        self.dir
            .put("meta.json", Bytes::from(meta.to_string()))
            .await?;
        Ok(p)
    }

    fn cutter_leader(&self) -> usize {
        self.renditions
            .iter()
            .position(|r| r.info.kind() == TrackKind::Video)
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use media::{CodecConfig, Timescale};

    fn tracks() -> Vec<TrackInfo> {
        let mut v = TrackInfo::video(CodecConfig::H264 {
            avcc: Bytes::from_static(&[1, 100, 0, 31, 0xff, 0xe0, 0]),
        });
        v.timescale = Timescale(90_000);
        let a = TrackInfo::audio(
            CodecConfig::Aac {
                asc: Bytes::from_static(&[0x12, 0x10]),
            },
            48_000,
            2,
        );
        vec![v, a]
    }

    fn frame(track: usize, dts: i64, scale: u32, keyframe: bool) -> Frame {
        Frame {
            track,
            dts: Timestamp::new(dts, Timescale(scale)),
            pts: Timestamp::new(dts + if track == 0 { 6000 } else { 0 }, Timescale(scale)),
            keyframe,
            data: Bytes::from_static(b"frame"),
        }
    }

    /// 30 fps video with a keyframe every 2 s and 48 kHz AAC, the audio stored `lead`
    /// seconds ahead of the video in the file (as muxers interleave).
    fn cut(secs: i64, lead: f64) -> Vec<Finished> {
        let mut c = Cutter::new(&tracks(), Duration::from_secs(6));
        let mut frames: Vec<(f64, Frame)> = Vec::new();
        for i in 0..secs * 30 {
            frames.push((i as f64 / 30.0, frame(0, i * 3000, 90_000, i % 60 == 0)));
        }
        for i in 0..secs * 48_000 / 1024 {
            let at = i as f64 * 1024.0 / 48_000.0;
            frames.push((at - lead, frame(1, i * 1024, 48_000, true)));
        }
        frames.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut out = Vec::new();
        for (_, f) in frames {
            out.extend(c.push(f).unwrap());
        }
        out.extend(c.finish().unwrap());
        out
    }

    #[test]
    fn segments_end_on_keyframes_past_the_target_and_audio_follows_the_cuts() {
        for lead in [-0.5, 0.0, 0.5] {
            let out = cut(20, lead);
            let video: Vec<&Finished> = out.iter().filter(|f| f.track == 0).collect();
            let audio: Vec<&Finished> = out.iter().filter(|f| f.track == 1).collect();
            let starts: Vec<u64> = video
                .iter()
                .map(|f| f.segment.start.as_millis() as u64)
                .collect();
            assert_eq!(starts, [0, 6000, 12000, 18000], "lead {lead}");
            assert_eq!(video.last().unwrap().segment.duration.as_millis(), 2000);
            assert_eq!(video.iter().map(|f| f.samples).sum::<usize>(), 600);
            // Audio is cut where the video was, to the frame.
            assert_eq!(audio.len(), 4, "lead {lead}");
            for (a, v) in audio.iter().zip(&video).skip(1) {
                let gap = a.segment.start.as_secs_f64() - v.segment.start.as_secs_f64();
                assert!(gap.abs() < 0.022, "lead {lead}: {gap}");
            }
            assert_eq!(
                audio.iter().map(|f| f.samples).sum::<usize>(),
                20 * 48_000 / 1024,
                "every audio frame once"
            );
            let msns: Vec<u64> = audio.iter().map(|f| f.segment.msn).collect();
            assert_eq!(msns, [0, 1, 2, 3]);
            // Each segment continues the last.
            for pair in audio.windows(2) {
                let end = pair[0].segment.start + pair[0].segment.duration;
                assert_eq!(end, pair[1].segment.start);
            }
        }
    }

    #[test]
    fn a_file_without_keyframes_is_refused_before_it_fills_memory() {
        let mut c = Cutter::new(&tracks(), Duration::from_secs(6));
        let big = Bytes::from(vec![0u8; 1 << 20]);
        let mut refused = None;
        for i in 0..100 {
            let mut f = frame(0, i * 3000, 90_000, i == 0);
            f.data = big.clone();
            if let Err(e) = c.push(f) {
                refused = Some((i, e));
                break;
            }
        }
        let (at, e) = refused.expect("refused");
        assert_eq!(at, 64, "at 64 MiB");
        assert!(e.to_string().contains("too far apart"), "{e}");
    }

    #[test]
    fn repeated_decode_times_move_on() {
        let mut c = Cutter::new(&tracks()[..1], Duration::from_secs(6));
        for dts in [0, 3000, 3000, 6000] {
            c.push(frame(0, dts, 90_000, dts == 0)).unwrap();
        }
        let out = c.finish().unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].samples, 4);
        let secs = out[0].segment.duration.as_secs_f64();
        assert!((secs - 0.1).abs() < 0.001, "{secs}");
    }
}
