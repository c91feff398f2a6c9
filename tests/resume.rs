//! Resume, as users mean it. A publisher whose connection drops and comes back within the
//! reconnect grace continues the same live stream: same URLs, media sequence numbers go on, an
//! EXT-X-DISCONTINUITY at the join, no ENDLIST in between; a publisher that stops on purpose
//! ends the stream at once. A viewer's position round-trips through the API and survives a
//! restart, and a VOD playlist can be asked to start at a time.

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
    let srv = Server::start("[server]\nreconnect_grace_secs = 20\n[hls]\nend_grace = 1.0\n");
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
    let srv = Server::start("[server]\nreconnect_grace_secs = 30\n[hls]\nend_grace = 1.0\n");
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

/// A viewer's position, PUT and read back with the viewer's token: the viewer is the token's,
/// so nobody writes anyone else's positions.
#[test]
fn a_viewers_position_round_trips_and_survives_a_restart() {
    let mut srv = Server::start("");
    let viewer_1 = viewer_token(srv.http, "viewer-1");
    let viewer_2 = viewer_token(srv.http, "viewer-2");
    let bearer = |t: &str| format!("Bearer {t}");
    let put = |srv: &Server, token: &str, body: &str| {
        request(
            srv.http,
            "PUT",
            "/api/v1/resume/demo-abc",
            &[
                ("Content-Type", "application/json"),
                ("Authorization", &bearer(token)),
            ],
            body.as_bytes(),
        )
        .unwrap()
    };
    let read = |srv: &Server, token: &str| {
        get_with(
            srv.http,
            "/api/v1/resume/demo-abc",
            &[("Authorization", &bearer(token))],
        )
        .unwrap()
    };
    assert_eq!(read(&srv, &viewer_1).status, 404);
    let r = put(&srv, &viewer_1, "{\"position\": 93.5}");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(put(&srv, &viewer_1, "{\"position\": -3}").status, 400);
    assert_eq!(put(&srv, &viewer_1, "soon").status, 400);
    let bad = request(
        srv.http,
        "PUT",
        "/api/v1/resume/.hidden",
        &[("Authorization", &bearer(&viewer_1))],
        b"1",
    )
    .unwrap();
    assert_eq!(bad.status, 400);
    // Without a token, or with another viewer's, nothing of viewer 1's.
    let r = request(srv.http, "PUT", "/api/v1/resume/demo-abc", &[], b"1").unwrap();
    assert_eq!(r.status, 401, "{}", r.text());
    assert_eq!(
        get(srv.http, "/api/v1/resume/demo-abc").unwrap().status,
        401
    );
    assert_eq!(read(&srv, &viewer_2).status, 404);
    // A playback token is not a viewer token.
    let playback = api_request(srv.http, "POST", "/api/v1/streams/demo/tokens", "{}").unwrap();
    let playback: serde_json::Value = serde_json::from_slice(&playback.body).unwrap();
    assert_eq!(read(&srv, playback["token"].as_str().unwrap()).status, 403);
    let got = read(&srv, &viewer_1).text();
    assert!(got.contains("\"position\":93.5"), "{got}");

    // The same data directory after a restart.
    srv.restart();
    let got = wait_for("the restarted server", Duration::from_secs(60), || {
        Some(read(&srv, &viewer_1))
            .filter(|r| r.status == 200)
            .map(|r| r.text())
    });
    assert!(got.contains("\"position\":93.5"), "{got}");
}

#[test]
fn a_vod_playlist_starts_where_asked() {
    let srv = Server::start("[hls]\nend_grace = 0.5\n");
    let publisher = Publisher::rtmp(&srv.rtmp_url(KEY), 30);
    let id = wait_for("an archive", Duration::from_secs(60), || {
        let r = api_get(srv.http, "/api/v1/vod").ok()?;
        let v: serde_json::Value = serde_json::from_slice(&r.body).ok()?;
        v["archives"][0]["id"].as_str().map(str::to_string)
    });
    wait_for("two archived segments", Duration::from_secs(60), || {
        let p = get(srv.http, &format!("/vod/{id}/video/index.m3u8"))
            .ok()?
            .text();
        (tags(&p, "#EXTINF").len() >= 2).then_some(())
    });
    drop(publisher);
    let mv = get(srv.http, &format!("/vod/{id}/index.m3u8?start=2.5"))
        .unwrap()
        .text();
    assert!(
        mv.starts_with("#EXTM3U\n#EXT-X-START:TIME-OFFSET=2.5,PRECISE=YES\n"),
        "{mv}"
    );
    assert!(mv.contains("video/index.m3u8?start=2.5"), "{mv}");
    assert!(mv.contains("audio/index.m3u8?start=2.5\""), "{mv}");
    let media = get(srv.http, &format!("/vod/{id}/video/index.m3u8?start=2.5"))
        .unwrap()
        .text();
    assert!(
        media.contains("#EXT-X-START:TIME-OFFSET=2.5,PRECISE=YES"),
        "{media}"
    );
}
