//! Reading a file's frames with FFmpeg's demuxers, for packaging without re-encoding: the best
//! video stream (H.264 or HEVC) and the best audio stream (AAC) of an MP4, MOV, MPEG-TS or any
//! other container FFmpeg reads, as the shared media model's tracks and frames (length-prefixed
//! NAL units, raw AAC), timestamps moved so the earliest decode time is zero.
//!
//! What cannot be packaged as it is says why ([`DemuxError::NeedsTranscode`]: another codec, a
//! rotated picture); the pipeline of a later issue re-encodes those. Blocking: run it on a
//! thread of its own.

use std::path::Path;

use media::{Frame, TrackInfo};

#[derive(Debug, thiserror::Error)]
pub enum DemuxError {
    #[error(
        "this build has no FFmpeg (the transcode crate's ffmpeg feature), so files cannot be read"
    )]
    NotBuilt,
    #[error("not a media file FFmpeg can read ({0})")]
    NotMedia(String),
    #[error("no video stream")]
    NoVideo,
    #[error("{0} (needs re-encoding)")]
    NeedsTranscode(String),
    #[error("reading the file: {0}")]
    Read(String),
}

/// An open file.
pub struct Demuxer {
    #[cfg(feature = "ffmpeg")]
    inner: crate::ffmpeg::demux::Inner,
}

impl Demuxer {
    /// Opens `path` and finds its tracks (reading ahead where a stream's configuration is in
    /// its first frames, as in MPEG-TS).
    pub fn open(path: &Path) -> Result<Demuxer, DemuxError> {
        #[cfg(feature = "ffmpeg")]
        {
            crate::ffmpeg::demux::Inner::open(path).map(|inner| Demuxer { inner })
        }
        #[cfg(not(feature = "ffmpeg"))]
        {
            let _ = path;
            Err(DemuxError::NotBuilt)
        }
    }

    /// Video first, then audio where the file has it.
    pub fn tracks(&self) -> &[TrackInfo] {
        #[cfg(feature = "ffmpeg")]
        {
            self.inner.tracks()
        }
        #[cfg(not(feature = "ffmpeg"))]
        {
            &[]
        }
    }

    /// The container's duration, where it says.
    pub fn duration(&self) -> Option<std::time::Duration> {
        #[cfg(feature = "ffmpeg")]
        {
            self.inner.duration()
        }
        #[cfg(not(feature = "ffmpeg"))]
        {
            None
        }
    }

    /// The next frame in the file's order; `None` at its end.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, DemuxError> {
        #[cfg(feature = "ffmpeg")]
        {
            self.inner.next_frame()
        }
        #[cfg(not(feature = "ffmpeg"))]
        {
            Ok(None)
        }
    }

    /// How much of the file has been read, from 0 to 1.
    pub fn progress(&self) -> f64 {
        #[cfg(feature = "ffmpeg")]
        {
            self.inner.progress()
        }
        #[cfg(not(feature = "ffmpeg"))]
        {
            0.0
        }
    }
}
