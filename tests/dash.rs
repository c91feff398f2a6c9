//! LL-DASH over HTTP: the MPD's shape, its segment URLs, the segment being written sent with
//! chunked transfer as it grows, the time endpoint, and a static MPD once the stream ends.
//! (tests/player.rs plays it with dash.js.)

mod common;

use std::time::Duration;

use common::*;

fn attr_of(xml: &str, element: &str, name: &str) -> Option<String> {
    let start = xml.find(&format!("<{element}"))?;
    let tag = &xml[start..start + xml[start..].find('>')?];
    let at = tag.find(&format!(" {name}=\""))? + name.len() + 3;
    Some(tag[at..at + tag[at..].find('"')?].to_string())
}

#[test]
fn mpd_segments_and_the_growing_segment() {
    let srv = Server::start("[hls]\nend_grace = 1.0\n");
    let publisher = Publisher::rtmp(&srv.rtmp_url(KEY), 60);
    assert_advances(&srv, NAME);
    let mpd = get(srv.http, "/live/demo/manifest.mpd").unwrap();
    assert_eq!(mpd.status, 200);
    assert_eq!(mpd.header("content-type"), Some("application/dash+xml"));
    let m = mpd.text();
    assert_eq!(
        attr_of(&m, "MPD", "type").as_deref(),
        Some("dynamic"),
        "{m}"
    );
    for a in [
        "availabilityStartTime",
        "publishTime",
        "minimumUpdatePeriod",
        "timeShiftBufferDepth",
    ] {
        assert!(attr_of(&m, "MPD", a).is_some(), "{a}: {m}");
    }
    assert!(m.contains("<Latency referenceId=\"0\" target="), "{m}");
    assert_eq!(
        attr_of(&m, "SegmentTemplate", "availabilityTimeComplete").as_deref(),
        Some("false")
    );
    let time_url = attr_of(&m, "UTCTiming", "value").unwrap();
    assert_eq!(
        time_url,
        format!("http://127.0.0.1:{}/api/v1/time", srv.http)
    );
    let now = get(srv.http, "/api/v1/time").unwrap().text();
    assert!(
        now.len() == 24 && now.ends_with('Z') && now.contains('T'),
        "{now}"
    );
    assert!(
        m.contains("codecs=\"avc1.") && m.contains("codecs=\"mp4a.40.2\""),
        "{m}"
    );
    assert!(m.contains("width=\"1280\" height=\"720\""), "{m}");

    // $Number$ is the HLS media sequence number: the template's URLs are the HLS ones.
    let media = attr_of(&m, "SegmentTemplate", "media").unwrap();
    let start: u64 = attr_of(&m, "SegmentTemplate", "startNumber")
        .unwrap()
        .parse()
        .unwrap();
    let video = get(srv.http, "/live/demo/video/index.m3u8").unwrap().text();
    assert!(
        video.contains(&format!("#EXT-X-MEDIA-SEQUENCE:{start}")),
        "{video}"
    );
    let url = |n: u64| {
        format!(
            "/live/demo/{}",
            media
                .replace("$RepresentationID$", "video")
                .replace("$Number$", &n.to_string())
        )
    };
    assert_eq!(get(srv.http, &url(start)).unwrap().status, 200);

    // The next segment, asked for before it exists: streamed (chunked) as it is written, and
    // the same bytes as the finished segment.
    let open = tags(&video, "#EXT-X-PART:")
        .last()
        .and_then(|l| attr(l, "URI"))
        .and_then(|u| u.split('/').nth(1))
        .and_then(|f| f.split('.').next())
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap();
    let early = get(srv.http, &url(open + 1)).unwrap();
    assert_eq!(early.status, 200);
    assert_eq!(early.header("transfer-encoding"), Some("chunked"));
    let done = get(srv.http, &url(open + 1)).unwrap();
    assert!(done.header("content-length").is_some());
    assert_eq!(
        early.body, done.body,
        "the streamed segment is the finished one"
    );
    let init = get(srv.http, &url(0).replace(&format!("{}.m4s", 0), "init.mp4")).unwrap();
    let mut file = init.body;
    file.extend_from_slice(&early.body);
    let path = srv.dir.0.join("streamed.mp4");
    std::fs::write(&path, &file).unwrap();
    let probe = ffprobe_frames(&path);
    assert_eq!((probe[0].1, probe[0].2), (1280, 720), "{probe:?}");
    assert!(probe[0].3 >= 50, "a whole 2 s segment: {probe:?}");

    // A segment far ahead is not waited for.
    assert_eq!(get(srv.http, &url(open + 5)).unwrap().status, 404);

    // Once the stream ends the MPD is static.
    drop(publisher);
    let m = wait_for("a static MPD", Duration::from_secs(30), || {
        let m = get(srv.http, "/live/demo/manifest.mpd").ok()?.text();
        m.contains("type=\"static\"").then_some(m)
    });
    assert!(
        attr_of(&m, "MPD", "mediaPresentationDuration").is_some(),
        "{m}"
    );
    assert!(!m.contains("availabilityTimeComplete"), "{m}");
}
