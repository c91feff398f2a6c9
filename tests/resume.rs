//! A publisher whose connection drops and comes back within the reconnect grace continues the
//! same live stream: same URLs, media sequence numbers go on, an EXT-X-DISCONTINUITY at the
//! join, no ENDLIST in between. A publisher that stops on purpose ends the stream at once.

mod common;

use std::time::Duration;

use common::*;

fn session_of(playlist: &str) -> String {
    attr(tags(playlist, "#EXT-X-MAP:")[0], "URI")
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn a_publisher_that_reconnects_within_the_grace_continues_the_stream() {
    let srv = Server::start_with_grace("[hls]\nend_grace = 1.0\n", 20);
    let first = Publisher::rtmp(&srv.rtmp_url(KEY), 60);
    let before = wait_for("two segments", Duration::from_secs(60), || {
        let p = get(srv.http, "/live/demo/video/index.m3u8").ok()?.text();
        (tags(&p, "#EXTINF").len() >= 2).then_some(p)
    });
    let session = session_of(&before);
    // The connection breaks (the encoder is killed, no unpublish).
    drop(first);
    std::thread::sleep(Duration::from_secs(4));
    let during = get(srv.http, "/live/demo/video/index.m3u8").unwrap();
    assert_eq!(during.status, 200);
    assert!(
        !during.text().contains("#EXT-X-ENDLIST"),
        "{}",
        during.text()
    );
    assert!(srv
        .log_text()
        .contains("holding the stream for a reconnect"));

    let _second = Publisher::rtmp(&srv.rtmp_url(KEY), 60);
    let after = wait_for("segments after the join", Duration::from_secs(60), || {
        let p = get(srv.http, "/live/demo/video/index.m3u8").ok()?.text();
        let joined = p.split("#EXT-X-DISCONTINUITY\n").nth(1)?;
        (tags(joined, "#EXTINF").len() >= 2).then_some(p)
    });
    assert_eq!(
        session_of(&after),
        session,
        "same URLs: the same stream goes on"
    );
    assert!(!after.contains("#EXT-X-ENDLIST"));
    let msns: Vec<u64> = after
        .lines()
        .filter(|l| l.ends_with(".m4s") && !l.starts_with('#'))
        .map(|l| {
            l.split('/')
                .nth(1)
                .unwrap()
                .trim_end_matches(".m4s")
                .parse()
                .unwrap()
        })
        .collect();
    assert!(msns.windows(2).all(|w| w[1] == w[0] + 1), "{msns:?}");
    assert!(srv
        .log_text()
        .contains("publisher back; the stream continues"));
    // Every segment, across the join, still decodes at the stream's size.
    assert_video_decodes(&srv, NAME, 4, 1280, 720);
}

#[test]
fn a_publisher_that_stops_ends_the_stream_at_once() {
    let srv = Server::start_with_grace("[hls]\nend_grace = 1.0\n", 30);
    // ffmpeg reaching the end of its input unpublishes (FCUnpublish, deleteStream).
    let _p = Publisher::rtmp(&srv.rtmp_url(KEY), 5);
    assert_advances(&srv, NAME);
    wait_for(
        "EXT-X-ENDLIST well before the grace",
        Duration::from_secs(15),
        || {
            get(srv.http, "/live/demo/video/index.m3u8")
                .ok()
                .filter(|r| r.text().contains("#EXT-X-ENDLIST"))
                .map(|_| ())
        },
    );
}
