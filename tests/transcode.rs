//! The ABR ladder: a 1280x720 RTMP source becomes source + 480p + 360p renditions (the 720p
//! rung is skipped: not below the source), each listed with its real attributes, decodable at
//! its size, with segments starting at the same time in every rendition. Players switching
//! between them are in tests/player.rs.

mod common;

use std::time::Duration;

use common::*;

/// The first video packet's time and the keyframe flags of segment `msn` of `rendition`.
fn segment_start(srv: &Server, rendition: &str, playlist: &str, msn: u64) -> (f64, usize, bool) {
    let map = attr(tags(playlist, "#EXT-X-MAP:")[0], "URI").unwrap();
    let session = map.split('/').next().unwrap();
    let mut file = get(srv.http, &format!("/live/demo/{rendition}/{map}"))
        .unwrap()
        .body;
    let seg = get(
        srv.http,
        &format!("/live/demo/{rendition}/{session}/{msn}.m4s"),
    )
    .unwrap();
    assert_eq!(seg.status, 200, "{rendition} {msn}");
    file.extend_from_slice(&seg.body);
    let path = srv.dir.0.join(format!("{rendition}-{msn}.mp4"));
    std::fs::write(&path, &file).unwrap();
    let out = std::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "packet=dts_time,flags",
            "-of",
            "csv=p=0",
        ])
        .arg(&path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let packets: Vec<&str> = text.lines().filter(|l| !l.is_empty()).collect();
    let first = packets[0].split(',').next().unwrap().parse().unwrap();
    (first, packets.len(), packets[0].contains('K'))
}

#[test]
fn ladder_renditions_are_listed_decode_and_line_up() {
    let srv = Server::start("[transcode]\nenabled = true\n");
    let _publisher = Publisher::rtmp(&srv.rtmp_url(KEY), 60);
    let mv = wait_for("three renditions", Duration::from_secs(60), || {
        let m = get(srv.http, "/live/demo/index.m3u8").ok()?.text();
        (tags(&m, "#EXT-X-STREAM-INF").len() >= 4).then_some(m)
    });
    let all = tags(&mv, "#EXT-X-STREAM-INF");
    // The audio-only variant: the audio rendition on its own.
    let audio_only: Vec<&&str> = all
        .iter()
        .filter(|v| attr(v, "RESOLUTION").is_none())
        .collect();
    assert_eq!(audio_only.len(), 1, "{mv}");
    assert_eq!(attr(audio_only[0], "CODECS"), Some("mp4a.40.2"), "{mv}");
    assert!(mv.contains(",AUDIO=\"audio\"\naudio/index.m3u8\n"), "{mv}");
    let variants: Vec<&str> = all
        .iter()
        .filter(|v| attr(v, "RESOLUTION").is_some())
        .copied()
        .collect();
    let sizes: Vec<&str> = variants
        .iter()
        .filter_map(|v| attr(v, "RESOLUTION"))
        .collect();
    assert_eq!(sizes, ["1280x720", "854x480", "640x360"], "{mv}");
    for v in &variants {
        assert!(attr(v, "CODECS").unwrap().starts_with("avc1."), "{v}");
        assert!(attr(v, "CODECS").unwrap().ends_with(",mp4a.40.2"), "{v}");
        assert_eq!(attr(v, "AUDIO"), Some("audio"), "{v}");
        assert!(attr(v, "FRAME-RATE").is_some(), "{v}");
    }
    let bw: Vec<u64> = variants
        .iter()
        .map(|v| attr(v, "BANDWIDTH").unwrap().parse().unwrap())
        .collect();
    assert!(
        bw[0] > bw[1] && bw[1] > bw[2],
        "measured bandwidths fall with the rungs: {bw:?}"
    );

    let renditions = ["video", "video2", "video3"];
    let sizes = [(1280, 720), (854, 480), (640, 360)];
    let mut playlists = Vec::new();
    for (r, (w, h)) in renditions.iter().zip(sizes) {
        let p = wait_for("three segments", Duration::from_secs(90), || {
            let p = get(srv.http, &format!("/live/demo/{r}/index.m3u8"))
                .ok()?
                .text();
            (tags(&p, "#EXTINF").len() >= 3).then_some(p)
        });
        // Each reports the others, so players can switch at the live edge.
        for other in renditions
            .iter()
            .chain(["audio"].iter())
            .filter(|o| *o != r)
        {
            assert!(
                p.contains(&format!(
                    "#EXT-X-RENDITION-REPORT:URI=\"../{other}/index.m3u8\""
                )),
                "{r} reports {other}:\n{p}"
            );
        }
        let probe = ffprobe_frames(&download_rendition(&srv, NAME, r, &p));
        assert_eq!((probe[0].1, probe[0].2), (w, h), "{r}: {probe:?}");
        assert!(probe[0].3 > 50, "{r}: {probe:?}");
        playlists.push(p);
    }
    // Segment N starts at the same time, on a keyframe, with as many frames, everywhere.
    for msn in [1, 2] {
        let starts: Vec<(f64, usize, bool)> = renditions
            .iter()
            .zip(&playlists)
            .map(|(r, p)| segment_start(&srv, r, p, msn))
            .collect();
        for s in &starts {
            assert!(s.2, "segment {msn} starts on a keyframe: {starts:?}");
            assert!(
                (s.0 - starts[0].0).abs() < 0.002,
                "segment {msn}: {starts:?}"
            );
            assert_eq!(s.1, starts[0].1, "segment {msn} frame counts: {starts:?}");
        }
    }
    // The MPD lists the same three as Representations of one AdaptationSet.
    let mpd = get(srv.http, "/live/demo/manifest.mpd").unwrap().text();
    for (r, (w, h)) in renditions.iter().zip(sizes) {
        assert!(
            mpd.contains(&format!("<Representation id=\"{r}\""))
                && mpd.contains(&format!("width=\"{w}\" height=\"{h}\"")),
            "{r}: {mpd}"
        );
    }
    assert!(srv.log_text().contains("transcoding rung"));
}

#[test]
fn transcode_false_serves_the_stream_as_it_comes() {
    let srv = Server::start(&format!(
        "[transcode]\nenabled = true\n{STREAM}transcode = false\n"
    ));
    let _publisher = Publisher::rtmp(&srv.rtmp_url(KEY), 30);
    assert_advances(&srv, NAME);
    let mv = get(srv.http, "/live/demo/index.m3u8").unwrap().text();
    let video = tags(&mv, "#EXT-X-STREAM-INF")
        .iter()
        .filter(|v| attr(v, "RESOLUTION").is_some())
        .count();
    assert_eq!(video, 1, "{mv}");
}

#[test]
fn without_a_copy_rung_the_rungs_keep_a_fixed_gop() {
    // The source's keyframes are 4 s apart; a ladder with no `copy` rung cuts 2 s segments.
    let srv = Server::start(
        "[transcode]\nenabled = true\n[[ladder]]\nname = \"480p\"\nheight = 480\nbitrate_kbps = 1200\n[[ladder]]\nname = \"360p\"\nheight = 360\nbitrate_kbps = 700\n",
    );
    let _publisher = Publisher::rtmp_args(&srv.rtmp_url(KEY), 40, &["-g", "120"]);
    let p = wait_for("four segments", Duration::from_secs(90), || {
        let p = get(srv.http, "/live/demo/video/index.m3u8").ok()?.text();
        (tags(&p, "#EXTINF").len() >= 4).then_some(p)
    });
    let mv = get(srv.http, "/live/demo/index.m3u8").unwrap().text();
    assert!(
        mv.contains("RESOLUTION=854x480") && mv.contains("RESOLUTION=640x360"),
        "{mv}"
    );
    assert!(!mv.contains("RESOLUTION=1280x720"), "no copy rung: {mv}");
    for d in tags(&p, "#EXTINF:") {
        let secs: f64 = d[8..].trim_end_matches(',').parse().unwrap();
        assert!((1.9..2.2).contains(&secs), "{d}\n{p}");
    }
}
