//! Real-time ABR transcoding: one source broadcast in, one broadcast with a video track per
//! ladder rung (and the audio) out. Just another consumer and producer of broadcasts.
//!
//! Data flow, on one dedicated thread per stream (never a tokio worker, so encoding cannot
//! stall ingest or HTTP): the source's bounded reader → decode once (FFmpeg) → for each rung,
//! scale (swscale) and encode H.264 (libx264 by default: `zerolatency`, no B-frames) → the
//! output broadcast. A `copy` rung passes the source's frames through. Every encoded rung
//! makes a keyframe exactly where the source has one (or, when no rung passes the source
//! through, on a fixed GOP), so segment N starts at the same time in every rendition and
//! players switch cleanly.
//!
//! Real time is kept by the broadcast's own bounded reader: when the transcoder falls behind,
//! the reader drops the backlog and resumes at the next keyframe, and the skip is counted in
//! the stream's stats (`skipped`). Nothing queues without bound.
//!
//! Audio: AAC passes through; anything else (WHIP's Opus) is decoded and encoded to AAC-LC
//! once, shared by every rendition.
//!
//! [`start`] returns a [`Finished`] future: when the source ends, the thread encodes what its
//! rungs were given, ends the renditions and finishes it (the binary's shutdown waits for it).
//!
//! Built without the `ffmpeg` feature, [`available`] says why and streams pass through.
//!
//! [`demux`] reads files with FFmpeg's demuxers, for uploads packaged without re-encoding.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use media::BroadcastReader;

pub mod demux;
#[cfg(feature = "ffmpeg")]
mod ffmpeg;

/// One rung of the ladder.
#[derive(Clone, Debug, PartialEq)]
pub struct Rung {
    /// Rendition name, for logs.
    pub name: String,
    /// Pass the source through as this rung (the top one).
    pub copy: bool,
    /// Picture height; the width follows the source's aspect ratio.
    pub height: u32,
    /// Video bitrate, bits/s.
    pub bitrate: u32,
    /// Frames above this rate are dropped (keyframes never).
    pub max_fps: Option<f64>,
    /// H.264 profile and level for the encoder (`main`, `4.0`), if set.
    pub profile: Option<String>,
    pub level: Option<String>,
}

impl Rung {
    pub fn copy(name: &str) -> Rung {
        Rung {
            name: name.into(),
            copy: true,
            height: 0,
            bitrate: 0,
            max_fps: None,
            profile: None,
            level: None,
        }
    }

    pub fn encode(name: &str, height: u32, bitrate: u32) -> Rung {
        Rung {
            name: name.into(),
            copy: false,
            height,
            bitrate,
            max_fps: Some(30.0),
            profile: Some("main".into()),
            level: None,
        }
    }
}

/// The ladder when none is configured: the source, 720p, 480p and 360p (rungs at or above the
/// source's height are skipped).
pub fn default_ladder() -> Vec<Rung> {
    vec![
        Rung::copy("source"),
        Rung::encode("720p", 720, 2_500_000),
        Rung::encode("480p", 480, 1_200_000),
        Rung::encode("360p", 360, 700_000),
    ]
}

#[derive(Clone, Debug)]
pub struct TranscodeConfig {
    pub ladder: Vec<Rung>,
    /// `libx264`, or a hardware encoder such as `h264_nvenc`.
    pub encoder: String,
    pub preset: String,
    pub tune: String,
    /// Keyframe interval of the encoded rungs when no rung passes the source through (with a
    /// `copy` rung they follow the source's keyframes, which the copy must keep).
    pub gop: std::time::Duration,
}

impl Default for TranscodeConfig {
    fn default() -> Self {
        Self {
            ladder: default_ladder(),
            encoder: "libx264".into(),
            preset: "veryfast".into(),
            tune: "zerolatency".into(),
            gop: std::time::Duration::from_secs(2),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TranscodeError {
    #[error("Estuary was built without the transcoder (cargo feature `transcode`); streams pass through")]
    NotBuilt,
    #[error("encoder {0:?} is not available in this FFmpeg")]
    NoEncoder(String),
    #[error("the source has no video track")]
    NoVideo,
    #[error("{0}")]
    Ffmpeg(String),
}

/// Whether transcoding can run here, and if not, why.
pub fn available(config: &TranscodeConfig) -> Result<(), TranscodeError> {
    #[cfg(feature = "ffmpeg")]
    {
        ffmpeg::check(config)
    }
    #[cfg(not(feature = "ffmpeg"))]
    {
        let _ = config;
        Err(TranscodeError::NotBuilt)
    }
}

/// Completes when a transcoder's thread has finished: its source ended, and its renditions were
/// flushed and ended.
pub struct Finished(futures::channel::oneshot::Receiver<()>);

impl Future for Finished {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        // The thread drops its sender as it ends.
        Pin::new(&mut self.0).poll(cx).map(|_| ())
    }
}

/// Transcodes `source` on a new thread. `on_output` gets the reader of the output broadcast
/// (named as the source) once its tracks are known: after the first decoded picture.
pub fn start(
    source: BroadcastReader,
    config: TranscodeConfig,
    on_output: Arc<dyn Fn(BroadcastReader) + Send + Sync>,
) -> Result<Finished, TranscodeError> {
    #[cfg(feature = "ffmpeg")]
    {
        ffmpeg::start(source, config, on_output)
    }
    #[cfg(not(feature = "ffmpeg"))]
    {
        let _ = (source, config, on_output);
        Err(TranscodeError::NotBuilt)
    }
}

/// The rungs that apply to a source of `height` lines: `copy` always, encoded rungs only below
/// the source's height.
pub fn rungs_for(ladder: &[Rung], height: u32) -> Vec<Rung> {
    ladder
        .iter()
        .filter(|r| r.copy || (height > 0 && r.height < height))
        .cloned()
        .collect()
}

/// An even width for `height` lines at the source's aspect ratio.
pub fn width_for(src_w: u32, src_h: u32, height: u32) -> u32 {
    let w = (src_w as u64 * height as u64 + src_h as u64 / 2) / src_h.max(1) as u64;
    ((w as u32 + 1) & !1).max(2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rungs_at_or_above_the_source_are_skipped() {
        let names = |h| -> Vec<String> {
            rungs_for(&default_ladder(), h)
                .into_iter()
                .map(|r| r.name)
                .collect()
        };
        assert_eq!(names(1080), ["source", "720p", "480p", "360p"]);
        assert_eq!(names(720), ["source", "480p", "360p"]);
        assert_eq!(names(360), ["source"]);
        assert_eq!(width_for(1280, 720, 480), 854);
        assert_eq!(width_for(1920, 1080, 360), 640);
        assert_eq!(width_for(640, 480, 360), 480);
    }
}
