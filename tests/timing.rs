//! The media timeline as players see it: every part of every rendition starts where the one
//! before it ended (no holes a player must jump, no overlaps), samples sit on the frame grid
//! with no composition offsets when the encoder makes no B-frames, and the playlists' part
//! durations say what the media holds.

mod common;

use std::io::Cursor;
use std::time::Duration;

use common::*;
use mp4_atom::{Any, Decode};

/// (tfdt, sum of sample durations, composition offsets) of each `moof` in `data`.
fn fragments(data: &[u8]) -> Vec<(u64, u64, Vec<i64>)> {
    let mut cur = Cursor::new(data);
    let mut out = Vec::new();
    while (cur.position() as usize) < data.len() {
        match Any::decode(&mut cur) {
            Ok(Any::Moof(moof)) => {
                for traf in moof.traf {
                    let tfdt = traf.tfdt.map(|t| t.base_media_decode_time).unwrap_or(0);
                    let mut total = 0u64;
                    let mut cts = Vec::new();
                    for trun in &traf.trun {
                        for e in trun.samples.iter() {
                            total += e.duration.unwrap_or(0) as u64;
                            cts.push(e.cts.unwrap_or(0));
                        }
                    }
                    out.push((tfdt, total, cts));
                }
            }
            Ok(_) => {}
            Err(e) => panic!("a part that does not parse: {e}"),
        }
    }
    out
}

#[test]
fn parts_follow_each_other_on_the_frame_grid_in_every_rendition() {
    let srv = Server::start("[transcode]\nenabled = true\n");
    let _publisher = Publisher::rtmp(&srv.rtmp_url(KEY), 40);
    check_parts(&srv, 4);
}

/// The same with x264's default keyframe interval (250 frames: 8.3 s segments).
#[test]
fn parts_follow_each_other_with_long_segments() {
    let srv = Server::start("");
    let _publisher = Publisher::rtmp_args(&srv.rtmp_url(KEY), 60, &["-g", "250"]);
    check_parts(&srv, 3);
}

/// Waits for `segments` complete segments, then checks every listed part of every rendition.
fn check_parts(srv: &Server, segments: usize) {
    wait_for("a few segments", Duration::from_secs(90), || {
        let p = get(srv.http, "/live/demo/video/index.m3u8").ok()?.text();
        (tags(&p, "#EXTINF").len() >= segments).then_some(())
    });
    let multivariant = get(srv.http, "/live/demo/index.m3u8").unwrap().text();
    let renditions: Vec<String> = multivariant
        .lines()
        .filter(|l| l.ends_with("/index.m3u8") && !l.starts_with('#'))
        .map(|l| l.trim_end_matches("/index.m3u8").to_string())
        .chain(std::iter::once("audio".to_string()))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    assert!(renditions.len() >= 2, "{multivariant}");
    for r in &renditions {
        let playlist = get(srv.http, &format!("/live/demo/{r}/index.m3u8"))
            .unwrap()
            .text();
        let parts: Vec<(String, f64)> = tags(&playlist, "#EXT-X-PART:")
            .into_iter()
            .map(|l| {
                (
                    attr(l, "URI").unwrap().to_string(),
                    attr(l, "DURATION").unwrap().parse().unwrap(),
                )
            })
            .collect();
        assert!(parts.len() > 12, "{playlist}");
        let timescale: f64 = if r.starts_with("audio") {
            48_000.0
        } else {
            90_000.0
        };
        let mut previous_end: Option<u64> = None;
        // Where the playlist places each part (its durations added up from the first listed)
        // and where its media is: never earlier, and within a millisecond (Shaka resets its
        // buffer, dropping frames to the next keyframe, on anything else).
        let mut placed = 0.0;
        let mut first_tfdt = None;
        for (uri, listed) in &parts {
            let body = get(srv.http, &format!("/live/demo/{r}/{uri}")).unwrap();
            assert_eq!(body.status, 200, "{r}/{uri}");
            for (tfdt, total, cts) in fragments(&body.body) {
                if let Some(end) = previous_end {
                    assert_eq!(
                        tfdt, end,
                        "{r}/{uri} starts at {tfdt}, the part before ended at {end}"
                    );
                }
                previous_end = Some(tfdt + total);
                let media = (tfdt - *first_tfdt.get_or_insert(tfdt)) as f64 / timescale;
                assert!(
                    placed >= media - 1e-9 && placed - media < 0.001,
                    "{r}/{uri}: the playlist places it at {placed} s, its media is at {media} s"
                );
                let seconds = total as f64 / timescale;
                assert!(
                    (seconds - listed).abs() < 0.0005,
                    "{r}/{uri}: the playlist says {listed} s, the media holds {seconds} s"
                );
                if !r.starts_with("audio") {
                    assert!(cts.iter().all(|c| *c == 0), "{r}/{uri}: offsets {cts:?}");
                }
            }
            placed += listed;
        }
    }
}
