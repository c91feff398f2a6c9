//! Enhanced RTMP (OBS 30+) video: HEVC (`hvc1`) and AV1 (`av01`) pass through to CMAF.
//!
//! Debian's ffmpeg 5.1 cannot publish Enhanced RTMP, so this takes real libx265 / SVT-AV1
//! bitstreams from an MP4 that ffmpeg writes, wraps each sample in the Enhanced RTMP video
//! message OBS sends (`SequenceStart` with the configuration record, then `CodedFrames`), runs
//! the RTMP adapter, the segmenter and the CMAF writer, and decodes the result with ffprobe.

mod common;

use std::process::Command;

use bytes::{BufMut, Bytes, BytesMut};
use common::*;
use ingest::rtmp::adapter::Adapter;
use ingest::AdapterEvent;
use mp4_atom::{Any, Codec, Decode, Encode, StszSamples};
use packager::segmenter::{Segmenter, SegmenterConfig};

struct Sample {
    ts_ms: u32,
    cts_ms: i32,
    key: bool,
    data: Bytes,
}

/// The configuration record body and the samples of the first track of an MP4 file.
fn read_mp4(path: &std::path::Path) -> (Vec<u8>, Vec<Sample>) {
    let data = std::fs::read(path).unwrap();
    let mut cur = std::io::Cursor::new(&data[..]);
    let mut moov = None;
    while (cur.position() as usize) < data.len() {
        match Any::decode(&mut cur) {
            Ok(Any::Moov(m)) => moov = Some(m),
            Ok(_) => {}
            Err(e) => panic!("mp4: {e}"),
        }
    }
    let moov = moov.expect("moov");
    let trak = &moov.trak[0];
    let timescale = trak.mdia.mdhd.timescale as u64;
    let stbl = &trak.mdia.minf.stbl;
    let mut record = Vec::new();
    match &stbl.stsd.codecs[0] {
        Codec::Hvc1(c) => c.hvcc.encode(&mut record).unwrap(),
        Codec::Hev1(c) => c.hvcc.encode(&mut record).unwrap(),
        Codec::Av01(c) => c.av1c.encode(&mut record).unwrap(),
        other => panic!("unexpected codec {other:?}"),
    }
    let record = record[8..].to_vec(); // the box body, as RTMP carries it
    let sizes: Vec<u32> = match &stbl.stsz.samples {
        StszSamples::Identical { count, size } => vec![*size; *count as usize],
        StszSamples::Different { sizes } => sizes.clone(),
    };
    let chunks = &stbl.stco.as_ref().expect("stco").entries;
    let mut offsets = Vec::new();
    for (ci, &chunk_off) in chunks.iter().enumerate() {
        let chunk_no = ci as u32 + 1;
        let per = stbl
            .stsc
            .entries
            .iter()
            .rev()
            .find(|e| e.first_chunk <= chunk_no)
            .unwrap()
            .samples_per_chunk;
        let mut off = chunk_off as usize;
        for _ in 0..per {
            let i = offsets.len();
            offsets.push(off);
            off += sizes[i] as usize;
        }
    }
    let mut dts = Vec::new();
    let mut t = 0u64;
    for e in &stbl.stts.entries {
        for _ in 0..e.sample_count {
            dts.push(t);
            t += e.sample_delta as u64;
        }
    }
    let mut cts = vec![0i64; sizes.len()];
    if let Some(ctts) = &stbl.ctts {
        let mut i = 0;
        for e in &ctts.entries {
            for _ in 0..e.sample_count {
                cts[i] = e.sample_offset;
                i += 1;
            }
        }
    }
    let sync: Option<Vec<u32>> = stbl.stss.as_ref().map(|s| s.entries.clone());
    let samples = (0..sizes.len())
        .map(|i| Sample {
            ts_ms: (dts[i] * 1000 / timescale) as u32,
            cts_ms: (cts[i] * 1000 / timescale as i64) as i32,
            key: sync.as_ref().is_none_or(|s| s.contains(&(i as u32 + 1))),
            data: Bytes::copy_from_slice(&data[offsets[i]..offsets[i] + sizes[i] as usize]),
        })
        .collect();
    (record, samples)
}

fn roundtrip(fourcc: &[u8; 4], encoder_args: &[&str], expect_codec: &str, expect_string: &str) {
    let dir = TempDir::new("ertmp");
    let src = dir.0.join("src.mp4");
    let st = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x240:rate=30",
            "-t",
            "3",
        ])
        .args(encoder_args)
        .args(["-pix_fmt", "yuv420p", "-an"])
        .arg(&src)
        .status()
        .expect("ffmpeg must be installed");
    assert!(st.success());
    let (record, samples) = read_mp4(&src);
    let mut adapter = Adapter::new();
    let mut header = BytesMut::new();
    header.put_u8(0x80 | (1 << 4)); // ExHeader, keyframe, SequenceStart
    header.put_slice(fourcc);
    header.put_slice(&record);
    adapter.video(0, &header.freeze()).unwrap();
    for s in &samples {
        let mut m = BytesMut::new();
        let frame_type = if s.key { 1 } else { 2 };
        if fourcc == b"av01" {
            m.put_u8(0x80 | (frame_type << 4) | 1); // CodedFrames, no composition time for AV1
            m.put_slice(fourcc);
        } else {
            m.put_u8(0x80 | (frame_type << 4) | 1);
            m.put_slice(fourcc);
            m.put_slice(&s.cts_ms.to_be_bytes()[1..]);
        }
        m.put_slice(&s.data);
        adapter.video(s.ts_ms, &m.freeze()).unwrap();
    }
    let mut tracks = Vec::new();
    let mut frames = Vec::new();
    while let Some(ev) = adapter.pull() {
        match ev {
            AdapterEvent::Start(t) => tracks = t,
            AdapterEvent::Frame(f) => frames.push(f),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(tracks.len(), 1);
    assert_eq!(tracks[0].codec.codec_string(), expect_string);
    assert_eq!(frames.len(), samples.len());
    let mut out = packager::cmaf::init_segment(&tracks[0]).unwrap().to_vec();
    let mut seg = Segmenter::new(&tracks, SegmenterConfig::default());
    let mut seq = 0;
    for f in frames {
        seg.push(f);
    }
    seg.finish();
    while let Some(o) = seg.pull() {
        let packager::segmenter::Output::Part(p) = o else {
            continue;
        };
        seq += 1;
        out.extend_from_slice(
            &packager::cmaf::fragment(seq, p.start.ticks as u64, &p.samples).unwrap(),
        );
    }
    let path = dir.0.join("out.mp4");
    std::fs::write(&path, out).unwrap();
    let probe = ffprobe_frames(&path);
    assert_eq!(probe[0].0, expect_codec);
    assert_eq!((probe[0].1, probe[0].2), (320, 240));
    assert_eq!(probe[0].3, samples.len() as u64, "every frame decodes");
}

#[test]
fn hevc_passes_through() {
    roundtrip(
        b"hvc1",
        &[
            "-c:v",
            "libx265",
            "-preset",
            "ultrafast",
            "-x265-params",
            "log-level=error:keyint=30",
            "-tag:v",
            "hvc1",
        ],
        "hevc",
        "hvc1.1.6.L60.90",
    );
}

#[test]
fn av1_passes_through() {
    roundtrip(
        b"av01",
        &["-c:v", "libsvtav1", "-preset", "12", "-g", "30"],
        "av1",
        "av01.0.00M.08",
    );
}
