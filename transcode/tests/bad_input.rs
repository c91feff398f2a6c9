//! The transcoder against bad sources: no audio, a frame the decoder rejects, and a resolution
//! change mid-stream (new in-band SPS). Every time it restarts at the next keyframe with a
//! discontinuity, and the renditions keep coming and decode. Needs ffmpeg/ffprobe.
#![cfg(feature = "ffmpeg")]

use std::process::Command;
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use media::{h264, Broadcast, CodecConfig, Frame, ReadEvent, Timescale, Timestamp, TrackInfo};
use transcode::{Rung, TranscodeConfig};

/// Access units of an ffmpeg H.264 clip: (length-prefixed NALs without AUDs, keyframe,
/// SPS, PPS).
fn clip(dir: &std::path::Path, size: &str, secs: u32) -> Vec<(Bytes, bool, Vec<u8>, Vec<u8>)> {
    let path = dir.join(format!("clip-{size}.h264"));
    let st = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi"])
        .arg("-i")
        .arg(format!("testsrc2=size={size}:rate=30"))
        .args([
            "-t",
            &secs.to_string(),
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
        ])
        .args(["-g", "30", "-bf", "0", "-pix_fmt", "yuv420p"])
        .args(["-bsf:v", "h264_metadata=aud=insert", "-f", "h264"])
        .arg(&path)
        .status()
        .expect("ffmpeg must be installed");
    assert!(st.success());
    let data = std::fs::read(&path).unwrap();
    let mut out = Vec::new();
    let (mut sps, mut pps) = (Vec::new(), Vec::new());
    let mut cur: Option<(BytesMut, bool)> = None;
    for nal in media::annexb::nals(&data) {
        match nal[0] & 0x1f {
            9 => {
                if let Some((b, k)) = cur.take() {
                    out.push((b.freeze(), k, sps.clone(), pps.clone()));
                }
                cur = Some((BytesMut::new(), false));
            }
            t => {
                if t == 7 {
                    sps = nal.to_vec();
                }
                if t == 8 {
                    pps = nal.to_vec();
                }
                if let Some((b, k)) = cur.as_mut() {
                    *k |= t == 5;
                    b.put_u32(nal.len() as u32);
                    b.put_slice(nal);
                }
            }
        }
    }
    if let Some((b, k)) = cur.take() {
        out.push((b.freeze(), k, sps, pps));
    }
    out
}

fn tempdir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("estuary-transcode-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn restarts_at_the_next_keyframe_after_a_bad_frame_and_a_new_resolution() {
    let dir = tempdir();
    let a = clip(&dir, "640x360", 3);
    let b = clip(&dir, "480x272", 3);
    let avcc = h264::avcc_from(&a[0].2, &a[0].3).unwrap();
    let source = Broadcast::new(
        "s",
        vec![TrackInfo::video(CodecConfig::H264 { avcc: avcc.into() })],
    );
    let reader = source.reader();
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    let config = TranscodeConfig {
        ladder: vec![Rung::copy("source"), Rung::encode("180p", 180, 300_000)],
        preset: "ultrafast".into(),
        ..Default::default()
    };
    transcode::start(
        reader,
        config,
        Arc::new(move |out| {
            let _ = tx.lock().unwrap().send(out);
        }),
    )
    .unwrap();

    let mut n = 0i64;
    let push = |data: Bytes, key: bool, n: &mut i64| {
        let at = Timestamp::new(*n * 3000, Timescale::VIDEO);
        source.push(Frame {
            track: 0,
            dts: at,
            pts: at,
            keyframe: key,
            data,
        });
        *n += 1;
    };
    for (i, (data, key, _, _)) in a.iter().enumerate() {
        if i == 40 {
            // A frame whose NAL length runs past its end: the decoder rejects it.
            push(
                Bytes::from_static(&[0, 0, 0, 0x7f, 0x41, 0x9a, 0x02]),
                false,
                &mut n,
            );
        }
        push(data.clone(), *key, &mut n);
    }
    // The source switches resolution: its keyframes now carry the new SPS/PPS in-band.
    for (data, key, sps, pps) in &b {
        let mut with = BytesMut::new();
        if *key {
            for p in [sps, pps] {
                with.put_u32(p.len() as u32);
                with.put_slice(p);
            }
        }
        with.put_slice(data);
        push(with.freeze(), *key, &mut n);
    }
    drop(source);

    let mut out = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("an output broadcast");
    let tracks = out.tracks().to_vec();
    assert_eq!(tracks.len(), 2, "video only: the source has no audio");
    assert_eq!((tracks[1].width, tracks[1].height), (320, 180));
    let mut events = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while let Some(ev) = futures_lite_block_on(&mut out, deadline) {
        events.push(ev);
    }
    let rung: Vec<&Frame> = events
        .iter()
        .filter_map(|e| match e {
            ReadEvent::Frame(f) if f.track == 1 => Some(f),
            _ => None,
        })
        .collect();
    let discontinuities: Vec<usize> = events
        .iter()
        .enumerate()
        .filter(|(_, e)| matches!(e, ReadEvent::Discontinuity))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(
        discontinuities.len(),
        2,
        "one after the bad frame, one at the new resolution"
    );
    // After each discontinuity, the rung resumes with a keyframe.
    for d in discontinuities {
        let next = events[d..]
            .iter()
            .find_map(|e| match e {
                ReadEvent::Frame(f) if f.track == 1 => Some(f),
                _ => None,
            })
            .expect("the rung goes on");
        assert!(next.keyframe, "resumes on a keyframe at {}", next.pts.ticks);
    }
    // Frames 41..60 of the first clip wait for its next keyframe (frame 60): dropped.
    assert!(
        rung.len() >= a.len() + b.len() - 30,
        "{} rung frames",
        rung.len()
    );
    assert!(rung.len() < a.len() + b.len(), "{} rung frames", rung.len());
    assert!(rung.windows(2).all(|w| w[1].pts.ticks > w[0].pts.ticks));

    // The rung decodes: Annex B from its avcC and frames.
    let CodecConfig::H264 { avcc } = &tracks[1].codec else {
        panic!()
    };
    let cfg = h264::AvcConfig::parse(avcc).unwrap();
    let mut annexb = Vec::new();
    for p in cfg.sps.iter().chain(cfg.pps.iter()) {
        annexb.extend_from_slice(&[0, 0, 0, 1]);
        annexb.extend_from_slice(p);
    }
    for f in &rung {
        for nal in h264::length_prefixed_nals(&f.data) {
            annexb.extend_from_slice(&[0, 0, 0, 1]);
            annexb.extend_from_slice(nal);
        }
    }
    let path = dir.join("rung.h264");
    std::fs::write(&path, &annexb).unwrap();
    let probe = Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-show_entries"])
        .args(["stream=width,height,nb_read_frames", "-of", "csv=p=0"])
        .arg(&path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&probe.stdout).into_owned();
    assert_eq!(text.trim(), format!("320,180,{}", rung.len()), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Waits for the reader's next event without an async runtime.
fn futures_lite_block_on(r: &mut media::BroadcastReader, deadline: Instant) -> Option<ReadEvent> {
    loop {
        match r.try_recv() {
            Some(ev) => return ev,
            None if Instant::now() > deadline => panic!("the transcoder stalled"),
            None => std::thread::sleep(Duration::from_millis(5)),
        }
    }
}
