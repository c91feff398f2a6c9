//! The FFmpeg side: decoder, scalers and encoders of one stream, on its own thread.

use std::sync::{Arc, Once};

use bytes::{BufMut, Bytes, BytesMut};
use ff::codec::{self, packet, Id};
use ff::format::Pixel;
use ff::software::scaling;
use ff::util::frame;
use ff::util::picture;
use ffmpeg_next as ff;
use media::{h264, Broadcast, BroadcastReader, CodecConfig, Frame, ReadEvent, Timescale};
use media::{Timestamp, TrackInfo, TrackKind};
use tracing::{info, warn};

use crate::{rungs_for, width_for, Rung, TranscodeConfig, TranscodeError};

static INIT: Once = Once::new();

fn init() {
    INIT.call_once(|| {
        let _ = ff::init();
        ff::util::log::set_level(ff::util::log::Level::Error);
    });
}

pub fn check(config: &TranscodeConfig) -> Result<(), TranscodeError> {
    init();
    ff::encoder::find_by_name(&encoder_name(config))
        .map(|_| ())
        .ok_or_else(|| TranscodeError::NoEncoder(config.encoder.clone()))
}

/// The configured encoder where FFmpeg has it here, else libx264 (a hardware encoder is used
/// only on machines that have one).
pub fn encoder_name(config: &TranscodeConfig) -> String {
    if ff::encoder::find_by_name(&config.encoder).is_some() {
        return config.encoder.clone();
    }
    warn!(wanted = %config.encoder, "encoder not available here; using libx264");
    "libx264".into()
}

pub fn start(
    source: BroadcastReader,
    config: TranscodeConfig,
    on_output: Arc<dyn Fn(BroadcastReader) + Send + Sync>,
) -> Result<(), TranscodeError> {
    check(&config)?;
    let video = source
        .tracks()
        .iter()
        .position(|t| t.kind() == TrackKind::Video)
        .ok_or(TranscodeError::NoVideo)?;
    let name = source.name().to_string();
    std::thread::Builder::new()
        .name(format!("transcode {name}"))
        .spawn(move || {
            if let Err(e) = run(source, video, config, on_output) {
                warn!(stream = %name, error = %e, "transcoder stopped");
            }
        })
        .map_err(|e| TranscodeError::Ffmpeg(e.to_string()))?;
    Ok(())
}

fn err(e: impl std::fmt::Display) -> TranscodeError {
    TranscodeError::Ffmpeg(e.to_string())
}

/// An encoded rung: its scaler (made for the source's picture format on first use), encoder
/// and frame-rate limiter.
struct Encoded {
    rung: Rung,
    track: usize,
    width: u32,
    height: u32,
    scaler: Option<(scaling::Context, Pixel, u32, u32)>,
    encoder: ff::encoder::video::Encoder,
    /// Earliest pts (90 kHz) the next non-key frame may have.
    next_pts: i64,
}

enum Output {
    Copy { track: usize },
    Encoded(Box<Encoded>),
}

struct Pipeline {
    out: Broadcast,
    rungs: Vec<Output>,
    /// Source track index → output track index (audio).
    audio: Vec<(usize, usize)>,
}

fn run(
    mut source: BroadcastReader,
    video: usize,
    config: TranscodeConfig,
    on_output: Arc<dyn Fn(BroadcastReader) + Send + Sync>,
) -> Result<(), TranscodeError> {
    let name = source.name().to_string();
    let src_info = source.tracks()[video].clone();
    let mut decoder = open_decoder(&src_info)?;
    let mut pipeline: Option<Pipeline> = None;
    let mut decoded = frame::Video::empty();
    let mut early_audio: Vec<Frame> = Vec::new();
    // Source video since its last keyframe, until the first picture decodes.
    let mut early_video: Vec<Frame> = Vec::new();
    while let Some(ev) = futures::executor::block_on(source.recv()) {
        let f = match ev {
            ReadEvent::Frame(f) => f,
            ReadEvent::Lagged { skipped } => {
                warn!(stream = %name, skipped, "transcoder behind real time: skipped to the next keyframe");
                continue;
            }
            ReadEvent::Discontinuity => {
                if let Some(p) = &pipeline {
                    p.out.discontinuity();
                }
                continue;
            }
        };
        if f.track != video {
            match &pipeline {
                Some(p) => {
                    if let Some(&(_, out)) = p.audio.iter().find(|(s, _)| *s == f.track) {
                        p.out.push(Frame { track: out, ..f });
                    }
                }
                None if early_audio.len() < 512 => early_audio.push(f),
                None => {}
            }
            continue;
        }
        let mut pkt = ff::Packet::copy(&f.data);
        pkt.set_pts(Some(f.pts.ticks));
        pkt.set_dts(Some(f.dts.ticks));
        if f.keyframe {
            pkt.set_flags(packet::Flags::KEY);
        }
        if let Err(e) = decoder.send_packet(&pkt) {
            warn!(stream = %name, error = %e, "undecodable video frame");
            continue;
        }
        // Copy rungs follow the source frame by frame.
        match &pipeline {
            Some(p) => {
                for r in &p.rungs {
                    if let Output::Copy { track } = r {
                        p.out.push(Frame {
                            track: *track,
                            ..f.clone()
                        });
                    }
                }
            }
            None => {
                if f.keyframe {
                    early_video.clear();
                }
                if early_video.len() < 1024 {
                    early_video.push(f.clone());
                }
            }
        }
        while decoder.receive_frame(&mut decoded).is_ok() {
            if pipeline.is_none() {
                let p = match build(&name, &source, video, &src_info, &decoded, &config) {
                    Ok(p) => p,
                    Err(e) => {
                        // Serve the stream as it comes rather than not at all.
                        warn!(stream = %name, error = %e, "could not open the ladder's encoders; serving the source only");
                        let only_source = TranscodeConfig {
                            ladder: vec![Rung::copy("source")],
                            ..config.clone()
                        };
                        build(&name, &source, video, &src_info, &decoded, &only_source)?
                    }
                };
                on_output(p.out.reader());
                // What came before the first picture: the source since its keyframe, and the
                // audio from then on.
                let start = early_video
                    .first()
                    .map_or(f.pts.as_secs_f64(), |v| v.pts.as_secs_f64());
                for v in early_video.drain(..) {
                    for r in &p.rungs {
                        if let Output::Copy { track } = r {
                            p.out.push(Frame {
                                track: *track,
                                ..v.clone()
                            });
                        }
                    }
                }
                for a in early_audio.drain(..) {
                    if let Some(&(_, out)) = p.audio.iter().find(|(s, _)| *s == a.track) {
                        if a.pts.as_secs_f64() >= start {
                            p.out.push(Frame { track: out, ..a });
                        }
                    }
                }
                pipeline = Some(p);
            }
            let p = pipeline.as_mut().expect("built above");
            let key = decoded.is_key() || decoded.kind() == picture::Type::I;
            for r in &mut p.rungs {
                if let Output::Encoded(e) = r {
                    encode(e, &decoded, key, &p.out)?;
                }
            }
        }
    }
    info!(stream = %name, "source ended; transcoder done");
    Ok(())
}

fn open_decoder(info: &TrackInfo) -> Result<ff::decoder::Video, TranscodeError> {
    init();
    let (id, extradata) = match &info.codec {
        CodecConfig::H264 { avcc } => (Id::H264, avcc.clone()),
        CodecConfig::H265 { hvcc } => (Id::HEVC, hvcc.clone()),
        CodecConfig::Av1 { av1c } => (Id::AV1, av1c.clone()),
        CodecConfig::Vp9 { .. } => (Id::VP9, Bytes::new()),
        _ => return Err(TranscodeError::NoVideo),
    };
    let codec = if id == Id::AV1 {
        ff::decoder::find_by_name("libdav1d").or_else(|| ff::decoder::find(id))
    } else {
        ff::decoder::find(id)
    }
    .ok_or_else(|| err(format!("no {id:?} decoder")))?;
    let mut ctx = codec::context::Context::new_with_codec(codec);
    set_extradata(&mut ctx, &extradata);
    ctx.set_time_base((1, 90_000));
    ctx.decoder().video().map_err(err)
}

fn set_extradata(ctx: &mut codec::context::Context, data: &[u8]) {
    if data.is_empty() {
        return;
    }
    // SAFETY: the buffer is allocated with av_malloc (padded as FFmpeg requires) and handed
    // to the codec context, which frees it.
    unsafe {
        let pad = ff::ffi::AV_INPUT_BUFFER_PADDING_SIZE as usize;
        let buf = ff::ffi::av_mallocz(data.len() + pad) as *mut u8;
        if buf.is_null() {
            return;
        }
        std::ptr::copy_nonoverlapping(data.as_ptr(), buf, data.len());
        let raw = ctx.as_mut_ptr();
        (*raw).extradata = buf;
        (*raw).extradata_size = data.len() as i32;
    }
}

fn extradata(enc: &ff::encoder::video::Encoder) -> Vec<u8> {
    // SAFETY: reading the opened encoder's extradata buffer of the size it states.
    unsafe {
        let raw = enc.as_ptr();
        if (*raw).extradata.is_null() || (*raw).extradata_size <= 0 {
            return Vec::new();
        }
        std::slice::from_raw_parts((*raw).extradata, (*raw).extradata_size as usize).to_vec()
    }
}

/// Opens the rungs' encoders for the first decoded picture and builds the output broadcast.
fn build(
    name: &str,
    source: &BroadcastReader,
    video: usize,
    src_info: &TrackInfo,
    first: &frame::Video,
    config: &TranscodeConfig,
) -> Result<Pipeline, TranscodeError> {
    let (src_w, src_h) = (first.width(), first.height());
    let mut tracks = Vec::new();
    let mut rungs = Vec::new();
    let fps = src_info.frame_rate_hint.unwrap_or(30.0).clamp(1.0, 120.0);
    for rung in rungs_for(&config.ladder, src_h) {
        if rung.copy {
            rungs.push(Output::Copy {
                track: tracks.len(),
            });
            tracks.push(src_info.clone());
            continue;
        }
        let height = rung.height & !1;
        let width = width_for(src_w, src_h, height);
        let encoder = open_encoder(config, &rung, width, height, fps)?;
        let headers = extradata(&encoder);
        let nals = h264::annexb_nals(&headers);
        let sps = nals.iter().find(|n| n[0] & 0x1f == 7);
        let pps = nals.iter().find(|n| n[0] & 0x1f == 8);
        let avcc = match (sps, pps) {
            (Some(s), Some(p)) => h264::avcc_from(s, p),
            _ => None,
        }
        .ok_or_else(|| err(format!("{}: the encoder gave no SPS/PPS", rung.name)))?;
        let mut info = TrackInfo::video(CodecConfig::H264 { avcc: avcc.into() });
        info.bitrate_hint = Some(rung.bitrate);
        info.frame_rate_hint = Some(rung.max_fps.map_or(fps, |m| m.min(fps)));
        info!(stream = %name, rung = %rung.name, width, height, bitrate = rung.bitrate, "transcoding rung");
        rungs.push(Output::Encoded(Box::new(Encoded {
            rung,
            track: tracks.len(),
            width,
            height,
            scaler: None,
            encoder,
            next_pts: i64::MIN,
        })));
        tracks.push(info);
    }
    let mut audio = Vec::new();
    for (i, t) in source.tracks().iter().enumerate() {
        if i != video && t.kind() == TrackKind::Audio {
            audio.push((i, tracks.len()));
            tracks.push(t.clone());
        }
    }
    Ok(Pipeline {
        out: Broadcast::new(name, tracks),
        rungs,
        audio,
    })
}

fn open_encoder(
    config: &TranscodeConfig,
    rung: &Rung,
    width: u32,
    height: u32,
    fps: f64,
) -> Result<ff::encoder::video::Encoder, TranscodeError> {
    let name = encoder_name(config);
    let codec = ff::encoder::find_by_name(&name).ok_or(TranscodeError::NoEncoder(name.clone()))?;
    let mut enc = codec::context::Context::new_with_codec(codec)
        .encoder()
        .video()
        .map_err(err)?;
    enc.set_width(width);
    enc.set_height(height);
    enc.set_format(Pixel::YUV420P);
    enc.set_time_base((1, 90_000));
    let rate = rung.max_fps.map_or(fps, |m| m.min(fps)).round().max(1.0) as i32;
    enc.set_frame_rate(Some((rate, 1)));
    enc.set_bit_rate(rung.bitrate as usize);
    enc.set_max_bit_rate(rung.bitrate as usize * 3 / 2);
    enc.set_max_b_frames(0);
    // Keyframes come from the source; this only bounds a source that sends none.
    enc.set_gop(rate as u32 * 10);
    enc.set_flags(codec::Flags::GLOBAL_HEADER);
    let mut opts = ff::Dictionary::new();
    if name == "libx264" {
        opts.set("preset", &config.preset);
        opts.set("tune", &config.tune);
        opts.set("forced-idr", "1");
        opts.set("x264-params", "scenecut=0:rc-lookahead=0");
        opts.set("bufsize", &(rung.bitrate as u64 * 2).to_string());
    }
    if let Some(p) = &rung.profile {
        opts.set("profile", p);
    }
    if let Some(l) = &rung.level {
        opts.set("level", l);
    }
    enc.open_with(opts).map_err(err)
}

fn encode(
    e: &mut Encoded,
    src: &frame::Video,
    key: bool,
    out: &Broadcast,
) -> Result<(), TranscodeError> {
    let Some(pts) = src.pts() else { return Ok(()) };
    if !key && pts < e.next_pts {
        return Ok(()); // over the rung's frame rate
    }
    if let Some(max) = e.rung.max_fps {
        // A little slack so a source at exactly the limit keeps every frame.
        e.next_pts = pts + (90_000.0 / max * 0.9) as i64;
    }
    let (fmt, w, h) = (src.format(), src.width(), src.height());
    if e.scaler
        .as_ref()
        .is_none_or(|s| (s.1, s.2, s.3) != (fmt, w, h))
    {
        let ctx = scaling::Context::get(
            fmt,
            w,
            h,
            Pixel::YUV420P,
            e.width,
            e.height,
            scaling::Flags::BILINEAR,
        )
        .map_err(err)?;
        e.scaler = Some((ctx, fmt, w, h));
    }
    let mut scaled = frame::Video::empty();
    let scaler = &mut e.scaler.as_mut().expect("set above").0;
    scaler.run(src, &mut scaled).map_err(err)?;
    scaled.set_pts(Some(pts));
    scaled.set_kind(if key {
        picture::Type::I
    } else {
        picture::Type::None
    });
    e.encoder.send_frame(&scaled).map_err(err)?;
    let mut pkt = ff::Packet::empty();
    while e.encoder.receive_packet(&mut pkt).is_ok() {
        let Some(data) = pkt.data() else { continue };
        let mut body = BytesMut::with_capacity(data.len() + 16);
        for nal in h264::annexb_nals(data) {
            match nal[0] & 0x1f {
                7..=9 => {} // parameter sets (in the avcC) and delimiters
                _ => {
                    body.put_u32(nal.len() as u32);
                    body.put_slice(nal);
                }
            }
        }
        let at = Timestamp::new(pkt.pts().unwrap_or(pts), Timescale::VIDEO);
        out.push(Frame {
            track: e.track,
            pts: at,
            dts: Timestamp::new(pkt.dts().unwrap_or(at.ticks), Timescale::VIDEO),
            keyframe: pkt.is_key(),
            data: body.freeze(),
        });
    }
    Ok(())
}
