//! The FFmpeg side: decoder, scalers and encoders of one stream, on its own thread; and
//! [`demux`], reading files.

pub mod demux;

use std::sync::{Arc, Once};

use bytes::Bytes;
use ff::codec::{self, packet, Id};
use ff::format::Pixel;
use ff::software::scaling;
use ff::util::frame;
use ff::util::picture;
use ffmpeg_next as ff;
use media::annexb::{self, AnnexB};
use media::{Broadcast, BroadcastReader, CodecConfig, Frame, ReadEvent, Timescale};
use media::{Timestamp, TrackInfo, TrackKind};
use tracing::{info, warn};

use crate::{rungs_for, width_for, Rung, TranscodeConfig, TranscodeError};

static INIT: Once = Once::new();

pub(crate) fn init() {
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
) -> Result<crate::Finished, TranscodeError> {
    check(&config)?;
    let video = source
        .tracks()
        .iter()
        .position(|t| t.kind() == TrackKind::Video)
        .ok_or(TranscodeError::NoVideo)?;
    let name = source.name().to_string();
    let (finished, done) = futures::channel::oneshot::channel::<()>();
    std::thread::Builder::new()
        .name(format!("transcode {name}"))
        .spawn(move || {
            if let Err(e) = run(source, video, config, on_output) {
                warn!(stream = %name, error = %e, "transcoder stopped");
            }
            drop(finished);
        })
        .map_err(|e| TranscodeError::Ffmpeg(e.to_string()))?;
    Ok(crate::Finished(done))
}

fn err(e: impl std::fmt::Display) -> TranscodeError {
    TranscodeError::Ffmpeg(e.to_string())
}

/// An encoded rung: its encoder and frame-rate limiter. (Its scaler lives on its thread: it is
/// made there for the source's picture format on first use.)
struct Encoded {
    rung: Rung,
    track: usize,
    width: u32,
    height: u32,
    encoder: ff::encoder::video::Encoder,
    /// The encoder's Annex B output as samples (its parameter sets are in the track's avcC).
    stream: AnnexB,
    /// Earliest pts (90 kHz) the next non-key frame may have.
    next_pts: i64,
}

enum Output {
    Copy {
        track: usize,
    },
    /// Scaled and encoded on the rung's own thread, fed decoded pictures in order.
    Encoded(std::sync::mpsc::SyncSender<RungMsg>),
}

enum RungMsg {
    /// A decoded picture (shared, not copied) and whether it is a keyframe.
    Picture(frame::Video, bool),
    /// Everything sent before has been pushed: answer.
    Sync(std::sync::mpsc::Sender<()>),
}

/// A reference to the same picture buffers (no copy).
fn share(src: &frame::Video) -> frame::Video {
    let mut f = frame::Video::empty();
    // SAFETY: both are valid frames; av_frame_ref adds references to src's buffers.
    unsafe {
        ff::ffi::av_frame_ref(f.as_mut_ptr(), src.as_ptr());
    }
    f
}

impl Pipeline {
    /// The source ended: every rung encodes what it was given, then the renditions end.
    fn finish(self) {
        let Pipeline { rungs, threads, .. } = self;
        drop(rungs);
        for t in threads {
            let _ = t.join();
        }
    }

    /// Waits until every rung thread has pushed what it was given.
    fn sync(&self) {
        let (tx, rx) = std::sync::mpsc::channel();
        let mut waiting = 0;
        for r in &self.rungs {
            if let Output::Encoded(ch) = r {
                if ch.send(RungMsg::Sync(tx.clone())).is_ok() {
                    waiting += 1;
                }
            }
        }
        for _ in 0..waiting {
            let _ = rx.recv();
        }
    }

    /// A discontinuity after everything before it, in every track.
    fn discontinuity(&self) {
        self.sync();
        self.out.discontinuity();
    }
}

struct Pipeline {
    out: Arc<Broadcast>,
    rungs: Vec<Output>,
    /// The encoded rungs' threads.
    threads: Vec<std::thread::JoinHandle<()>>,
    /// Source track index → output track index (audio passed through).
    audio: Vec<(usize, usize)>,
    /// Source audio that is not AAC (WHIP's Opus), made AAC once for every rendition.
    to_aac: Option<(usize, Box<AacEncoder>)>,
}

/// Opus (or any audio FFmpeg decodes) → AAC-LC at the same rate and channel count.
struct AacEncoder {
    decoder: ff::decoder::Audio,
    encoder: ff::encoder::audio::Encoder,
    track: usize,
    channels: usize,
    frame_size: usize,
    /// Decoded samples not yet encoded, one buffer per channel.
    pending: Vec<Vec<f32>>,
    /// Time (in the sample rate) of `pending`'s first sample.
    pending_pts: Option<i64>,
    rate: u32,
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
    // A decoder error: skip to the next source keyframe and start over from there.
    let mut restart = false;
    // The source's picture size, to notice a change.
    let mut source_size: Option<(u32, u32)> = None;
    let fixed_gop = (!config.ladder.iter().any(|r| r.copy))
        .then(|| (config.gop.as_secs_f64() * 90_000.0).round() as i64)
        .filter(|g| *g > 0);
    let mut next_key: Option<i64> = None;
    while let Some(ev) = futures::executor::block_on(source.recv()) {
        let f = match ev {
            ReadEvent::Frame(f) => f,
            ReadEvent::Lagged { skipped } => {
                warn!(stream = %name, skipped, "transcoder behind real time: skipped to the next keyframe");
                if let Some(p) = &pipeline {
                    p.out
                        .stats()
                        .skipped
                        .fetch_add(skipped, std::sync::atomic::Ordering::Relaxed);
                }
                continue;
            }
            ReadEvent::Discontinuity => {
                if let Some(p) = &pipeline {
                    p.discontinuity();
                }
                continue;
            }
        };
        if f.track != video {
            match &mut pipeline {
                Some(p) => p.audio_frame(f),
                None if early_audio.len() < 512 => early_audio.push(f),
                None => {}
            }
            continue;
        }
        if restart {
            if !f.keyframe {
                continue; // every rendition resumes together at the source's next keyframe
            }
            restart = false;
            decoder = open_decoder(&src_info)?;
            if let Some(p) = &pipeline {
                p.discontinuity();
            }
            info!(stream = %name, "transcoder pipeline restarted at a keyframe");
        }
        let mut pkt = ff::Packet::copy(&f.data);
        pkt.set_pts(Some(f.pts.ticks));
        pkt.set_dts(Some(f.dts.ticks));
        if f.keyframe {
            pkt.set_flags(packet::Flags::KEY);
        }
        if let Err(e) = decoder.send_packet(&pkt) {
            warn!(stream = %name, error = %e, "the source's video does not decode; restarting the transcoder pipeline at the next keyframe");
            restart = true;
            continue;
        }
        if pipeline.is_none() {
            if f.keyframe {
                early_video.clear();
            }
            if early_video.len() < 1024 {
                early_video.push(f.clone());
            }
        }
        let had_pipeline = pipeline.is_some();
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
                let mut p = p;
                for a in early_audio.drain(..) {
                    if a.pts.as_secs_f64() >= start {
                        p.audio_frame(a);
                    }
                }
                pipeline = Some(p);
            }
            let p = pipeline.as_mut().expect("built above");
            let size = (decoded.width(), decoded.height());
            if source_size.is_some_and(|was| was != size) {
                // New parameters in the source (its resolution changed): the rungs keep their
                // sizes and scale the new picture; players see a discontinuity here.
                warn!(stream = %name, width = size.0, height = size.1, "the source's picture size changed; the rungs scale the new picture");
                p.discontinuity();
            }
            source_size = Some(size);
            let source_key = decoded.is_key() || decoded.kind() == picture::Type::I;
            // With the source passed through, its keyframes; otherwise a fixed GOP on the
            // picture timeline (the same decision for every rung).
            let key = match fixed_gop {
                None => source_key,
                Some(gop) => {
                    let pts = decoded.pts().unwrap_or(0);
                    let due = next_key.is_none_or(|k| pts >= k);
                    if due {
                        next_key = Some(pts + gop);
                    }
                    due
                }
            };
            for r in &p.rungs {
                if let Output::Encoded(ch) = r {
                    // Blocks while the rung is four pictures behind: the decoder then falls
                    // behind too, and the source's reader skips to a keyframe (counted).
                    let _ = ch.send(RungMsg::Picture(share(&decoded), key));
                }
            }
        }
        // Copy rungs follow the source frame by frame (after any discontinuity its picture
        // caused; a pipeline built just now has sent it with the frames before it).
        if let (true, Some(p)) = (had_pipeline, &pipeline) {
            for r in &p.rungs {
                if let Output::Copy { track } = r {
                    p.out.push(Frame {
                        track: *track,
                        ..f.clone()
                    });
                }
            }
        }
    }
    if let Some(p) = pipeline {
        p.finish();
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

/// An opened codec context's extradata (the encoder's parameter sets or AudioSpecificConfig).
fn extradata(ctx: &codec::context::Context) -> Vec<u8> {
    // SAFETY: reading the opened context's extradata buffer of the size it states.
    unsafe {
        let raw = ctx.as_ptr();
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
    // Copy rungs now; encoded rungs once their threads start (after the broadcast exists).
    let mut rungs: Vec<Option<Output>> = Vec::new();
    let mut pending: Vec<Encoded> = Vec::new();
    let fps = src_info.frame_rate_hint.unwrap_or(30.0).clamp(1.0, 120.0);
    for rung in rungs_for(&config.ladder, src_h) {
        if rung.copy {
            rungs.push(Some(Output::Copy {
                track: tracks.len(),
            }));
            tracks.push(src_info.clone());
            continue;
        }
        let height = rung.height & !1;
        let width = width_for(src_w, src_h, height);
        let encoder = open_encoder(config, &rung, width, height, fps)?;
        let mut stream = AnnexB::new(annexb::Codec::H264);
        stream.push(&extradata(&encoder)); // parameter sets only: no sample
        let avcc = stream
            .config()
            .cloned()
            .ok_or_else(|| err(format!("{}: the encoder gave no SPS/PPS", rung.name)))?;
        let mut info = TrackInfo::video(avcc);
        info.bitrate_hint = Some(rung.bitrate);
        info.frame_rate_hint = Some(rung.max_fps.map_or(fps, |m| m.min(fps)));
        info!(stream = %name, rung = %rung.name, width, height, bitrate = rung.bitrate, "transcoding rung");
        pending.push(Encoded {
            rung,
            track: tracks.len(),
            width,
            height,
            encoder,
            stream,
            next_pts: i64::MIN,
        });
        rungs.push(None);
        tracks.push(info);
    }
    let mut audio = Vec::new();
    let mut to_aac = None;
    for (i, t) in source.tracks().iter().enumerate() {
        if i == video || t.kind() != TrackKind::Audio {
            continue;
        }
        if matches!(t.codec, CodecConfig::Aac { .. }) || to_aac.is_some() {
            audio.push((i, tracks.len()));
            tracks.push(t.clone());
            continue;
        }
        match AacEncoder::open(t, tracks.len()) {
            Ok((enc, info)) => {
                info!(stream = %name, from = %t.codec.codec_string(), "audio transcoded to AAC for every rendition");
                to_aac = Some((i, Box::new(enc)));
                tracks.push(info);
            }
            Err(e) => {
                warn!(stream = %name, error = %e, "cannot transcode the audio to AAC; passing it through");
                audio.push((i, tracks.len()));
                tracks.push(t.clone());
            }
        }
    }
    let out = Arc::new(Broadcast::new(name, tracks));
    let mut encoded = pending.into_iter();
    let mut outputs = Vec::new();
    let mut threads = Vec::new();
    for r in rungs {
        let o = match r {
            Some(o) => o,
            None => {
                let mut e = encoded.next().expect("one Encoded per placeholder");
                let (tx, rx) = std::sync::mpsc::sync_channel::<RungMsg>(4);
                let out = out.clone();
                let stream = name.to_string();
                let thread = std::thread::Builder::new()
                    .name(format!("rung {}", e.rung.name))
                    .spawn(move || {
                        let mut scaler = None;
                        for msg in rx {
                            match msg {
                                RungMsg::Picture(pic, key) => {
                                    if let Err(err) = encode(&mut e, &mut scaler, &pic, key, &out) {
                                        warn!(stream = %stream, rung = %e.rung.name, error = %err, "rung stopped");
                                        return;
                                    }
                                }
                                RungMsg::Sync(ack) => {
                                    let _ = ack.send(());
                                }
                            }
                        }
                    })
                    .map_err(err)?;
                threads.push(thread);
                Output::Encoded(tx)
            }
        };
        outputs.push(o);
    }
    Ok(Pipeline {
        out,
        rungs: outputs,
        threads,
        audio,
        to_aac,
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
    match open_named(&name, config, rung, width, height, fps) {
        Err(e) if name != "libx264" => {
            // A hardware encoder FFmpeg knows but this machine cannot open (no device, or one
            // that needs frames uploaded to it): the software encoder does the work.
            warn!(encoder = %name, error = %e, rung = %rung.name, "hardware encoder failed to open; using libx264");
            open_named("libx264", config, rung, width, height, fps)
        }
        r => r,
    }
}

fn open_named(
    name: &str,
    config: &TranscodeConfig,
    rung: &Rung,
    width: u32,
    height: u32,
    fps: f64,
) -> Result<ff::encoder::video::Encoder, TranscodeError> {
    let codec =
        ff::encoder::find_by_name(name).ok_or(TranscodeError::NoEncoder(name.to_string()))?;
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

type Scaler = Option<(scaling::Context, Pixel, u32, u32)>;

fn encode(
    e: &mut Encoded,
    scaler: &mut Scaler,
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
    if scaler
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
        *scaler = Some((ctx, fmt, w, h));
    }
    let mut scaled = frame::Video::empty();
    let ctx = &mut scaler.as_mut().expect("set above").0;
    ctx.run(src, &mut scaled).map_err(err)?;
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
        let Some(sample) = e.stream.push(data) else {
            continue;
        };
        let at = Timestamp::new(pkt.pts().unwrap_or(pts), Timescale::VIDEO);
        out.push(Frame {
            track: e.track,
            pts: at,
            dts: Timestamp::new(pkt.dts().unwrap_or(at.ticks), Timescale::VIDEO),
            keyframe: pkt.is_key(),
            data: sample.data,
        });
    }
    Ok(())
}

impl Pipeline {
    fn audio_frame(&mut self, f: Frame) {
        if let Some(&(_, out)) = self.audio.iter().find(|(s, _)| *s == f.track) {
            self.out.push(Frame { track: out, ..f });
            return;
        }
        if let Some((src, enc)) = &mut self.to_aac {
            if *src == f.track {
                for frame in enc.push(&f) {
                    self.out.push(frame);
                }
            }
        }
    }
}

impl AacEncoder {
    fn open(src: &TrackInfo, track: usize) -> Result<(AacEncoder, TrackInfo), TranscodeError> {
        let (id, channels) = match &src.codec {
            CodecConfig::Opus { channels, .. } => (Id::OPUS, (*channels).clamp(1, 2) as usize),
            _ => return Err(err("only Opus is transcoded to AAC")),
        };
        let rate = src.sample_rate.max(8_000);
        let layout = if channels == 2 {
            ff::ChannelLayout::STEREO
        } else {
            ff::ChannelLayout::MONO
        };
        let codec = ff::decoder::find(id).ok_or_else(|| err("no Opus decoder"))?;
        let mut dctx = codec::context::Context::new_with_codec(codec).decoder();
        // SAFETY: plain fields of the not yet opened context.
        unsafe {
            let raw = dctx.as_mut_ptr();
            (*raw).sample_rate = rate as i32;
        }
        let mut decoder = dctx.audio().map_err(err)?;
        decoder.set_channel_layout(layout);
        let aac = ff::encoder::find_by_name("aac").ok_or_else(|| err("no AAC encoder"))?;
        let mut enc = codec::context::Context::new_with_codec(aac)
            .encoder()
            .audio()
            .map_err(err)?;
        enc.set_rate(rate as i32);
        enc.set_channel_layout(layout);
        enc.set_channels(channels as i32);
        enc.set_format(ff::format::Sample::F32(ff::format::sample::Type::Planar));
        enc.set_bit_rate(64_000 * channels);
        enc.set_time_base((1, rate as i32));
        enc.set_flags(codec::Flags::GLOBAL_HEADER);
        let encoder = enc.open().map_err(err)?;
        let asc = extradata(&encoder);
        if asc.is_empty() {
            return Err(err("the AAC encoder gave no AudioSpecificConfig"));
        }
        let frame_size = (encoder.frame_size() as usize).max(1024);
        let info = TrackInfo::audio(CodecConfig::Aac { asc: asc.into() }, rate, channels as u16);
        Ok((
            AacEncoder {
                decoder,
                encoder,
                track,
                channels,
                frame_size,
                pending: vec![Vec::new(); channels],
                pending_pts: None,
                rate,
            },
            info,
        ))
    }

    /// Decodes one source packet and returns the AAC frames that are now complete.
    fn push(&mut self, f: &Frame) -> Vec<Frame> {
        let mut out = Vec::new();
        let mut pkt = ff::Packet::copy(&f.data);
        let pts = Timescale(self.rate).convert(f.pts.ticks, f.pts.scale);
        pkt.set_pts(Some(pts));
        if self.decoder.send_packet(&pkt).is_err() {
            return out;
        }
        let mut decoded = frame::Audio::empty();
        while self.decoder.receive_frame(&mut decoded).is_ok() {
            if decoded.format() != ff::format::Sample::F32(ff::format::sample::Type::Planar) {
                continue; // FFmpeg's Opus decoder gives planar float
            }
            let n = decoded.samples();
            if self.pending_pts.is_none() || self.pending[0].is_empty() {
                self.pending_pts =
                    Some(decoded.pts().unwrap_or(pts) - self.pending[0].len() as i64);
            }
            for ch in 0..self.channels {
                let plane = if (ch as u16) < decoded.channels() {
                    ch
                } else {
                    0
                };
                let samples: &[f32] = decoded.plane(plane);
                self.pending[ch].extend_from_slice(&samples[..n.min(samples.len())]);
            }
            while self.pending[0].len() >= self.frame_size {
                let at = self.pending_pts.unwrap_or(0);
                let mut input = frame::Audio::new(
                    ff::format::Sample::F32(ff::format::sample::Type::Planar),
                    self.frame_size,
                    if self.channels == 2 {
                        ff::ChannelLayout::STEREO
                    } else {
                        ff::ChannelLayout::MONO
                    },
                );
                input.set_rate(self.rate);
                for ch in 0..self.channels {
                    input
                        .plane_mut::<f32>(ch)
                        .copy_from_slice(&self.pending[ch][..self.frame_size]);
                    self.pending[ch].drain(..self.frame_size);
                }
                input.set_pts(Some(at));
                self.pending_pts = Some(at + self.frame_size as i64);
                if self.encoder.send_frame(&input).is_err() {
                    continue;
                }
                let mut p = ff::Packet::empty();
                while self.encoder.receive_packet(&mut p).is_ok() {
                    let (Some(data), Some(t)) = (p.data(), p.pts()) else {
                        continue;
                    };
                    if t < 0 {
                        continue; // the encoder's priming
                    }
                    let ts = Timestamp::new(t, Timescale(self.rate));
                    out.push(Frame {
                        track: self.track,
                        pts: ts,
                        dts: ts,
                        keyframe: true,
                        data: Bytes::copy_from_slice(data),
                    });
                }
            }
        }
        out
    }
}
