//! Uploads that outlive what breaks them, at the sizes creators send. A 200 MB video uploaded
//! by tus-js-client's Node build whose process is killed twice and whose server restarts once
//! on the way, ending as the same video. And an upload begun on one origin and finished on
//! another behind the same load balancer (one PostgreSQL catalog, one Redis, one shared
//! uploads directory): one writer at a time across both, the dead writer's hold let go after
//! its lease, the asset served by both. And a writer whose lease is lost stopping, its bytes
//! uncounted.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use common::postgres::Postgres;
use common::upload::*;
use common::*;

#[test]
fn a_200_mb_upload_from_node_survives_two_kills_and_a_restart() {
    let mut srv = Server::start("");
    let made = TempDir::new("upload-big");
    // 45 s of 720p noise at about 40 Mbit/s, with sound: over 200 MB that do not compress.
    let video = noisy_clip(&made.0, "big.mp4", 45, 36);
    let size = std::fs::metadata(&video).unwrap().len();
    assert!(size >= 200_000_000, "{size} bytes");
    let d = direct(&srv, r#"{"new_asset_settings": {"title": "Big"}}"#);
    let id = d["id"].as_str().unwrap().to_string();
    let url = d["url"].as_str().unwrap().to_string();
    let store = made.0.join("tus-urls.json");

    // Killed at 40% (its request open, so the server sees it break): what arrived stays.
    let first = NodeUpload::holding(&video, &url, &store, size * 2 / 5);
    // The bytes of a cut request are counted once the server has seen it break.
    let after_first = first.kill_when_held(&srv, &id, size * 2 / 5);
    assert_eq!(after_first, size * 2 / 5, "of {size}");

    // Resumed, killed again at 70%, and the server restarts.
    let second = NodeUpload::holding(&video, &url, &store, size * 7 / 10);
    let said = second.until("resuming", |v| v["sent"].is_u64());
    assert_eq!(said[0]["resumed"], true, "{said:?}");
    let first_sent = said.iter().find_map(|v| v["sent"].as_u64()).unwrap();
    assert!(
        first_sent >= after_first,
        "went on from {after_first}, not from 0: {said:?}"
    );
    let after_second = second.kill_when_held(&srv, &id, size * 7 / 10);
    assert_eq!(after_second, size * 7 / 10, "of {size}");
    // The server restarts: what was counted stays.
    srv.restart();
    let d = json(api_get(srv.http, &format!("/api/v1/uploads/{id}")).unwrap());
    assert_eq!(d["offset"], after_second, "{d}");

    // The third run ends it.
    let third = NodeUpload::start(&video, &url, &store);
    let said = third.until("done", |v| v["done"] == true);
    assert_eq!(said[0]["resumed"], true, "{said:?}");
    drop(third);
    let d = json(api_get(srv.http, &format!("/api/v1/uploads/{id}")).unwrap());
    assert_eq!(d["status"], "asset_created", "{d}");
    assert_eq!(d["offset"], size, "{d}");
    let asset = d["asset_id"].as_str().unwrap().to_string();
    let a = settled(&srv, &asset);
    assert_eq!(a["status"], "ready", "{a}");
    assert_eq!(a["title"], "Big", "{a}");
    assert!((a["duration"].as_f64().unwrap() - 45.0).abs() < 0.05, "{a}");

    // The same video, every packet of it, playing.
    let (packaged, _) = download_vod(&srv, &asset, "video");
    let (audio, _) = download_vod(&srv, &asset, "audio");
    let (source_video, source_audio) = packet_counts(&video);
    assert_eq!(packet_counts(&packaged).0, source_video);
    assert_eq!(packet_counts(&audio).1, source_audio);
    plays_in_hls_js_and_dash_js(&srv, &asset);
}

#[test]
fn an_upload_begun_on_one_origin_goes_on_on_another() {
    let pg = Postgres::start();
    let redis_port = free_port();
    let _redis = Redis::start(redis_port);
    let shared = TempDir::new("two-origins");
    let config = format!(
        "[catalog]\nurl = \"{}\"\n[redis]\nurl = \"redis://127.0.0.1:{redis_port}\"\n\
         [uploads]\ndir = \"{}\"\n[archive]\ndir = \"{}\"\n",
        pg.url(),
        shared.0.join("uploads").display(),
        shared.0.join("archive").display()
    );
    let mut a = Server::start(&config);
    let b = Server::start(&config);

    // 6 s at 25 frames a second: 150 video packets.
    let video = test_clip(&shared.0, "two.mp4", "640x360", 6);
    let bytes = std::fs::read(&video).unwrap();
    let size = bytes.len();
    let third = size / 3;
    let d = direct(&a, "{}");
    let id = d["id"].as_str().unwrap().to_string();
    let length = size.to_string();
    let made = tus(
        a.http,
        "POST",
        &format!("/uploads/{id}"),
        &[("Upload-Length", &length)],
        b"",
    );
    assert_eq!(made.status, 201, "{}", made.text());
    let at = made.header("location").unwrap().to_string();
    let octets = ("Content-Type", "application/offset+octet-stream");
    let patch = |port: u16, from: usize, to: usize| {
        tus(
            port,
            "PATCH",
            &at,
            &[octets, ("Upload-Offset", &from.to_string())],
            &bytes[from..to],
        )
    };
    assert_eq!(patch(a.http, 0, third).status, 204);

    // A writes the rest slowly: 1000 bytes, then nothing.
    let mut held = TcpStream::connect(("127.0.0.1", a.http)).unwrap();
    write!(
        held,
        "PATCH {at} HTTP/1.1\r\nHost: x\r\nTus-Resumable: 1.0.0\r\nContent-Type: application/offset+octet-stream\r\nUpload-Offset: {third}\r\nContent-Length: {}\r\n\r\n",
        size - third
    )
    .unwrap();
    held.write_all(&bytes[third..third + 1000]).unwrap();
    let in_flight = wait_for("A's offset in flight", Duration::from_secs(30), || {
        let d = json(api_get(a.http, &format!("/api/v1/uploads/{id}")).ok()?);
        (d["offset"] == third + 1000).then_some(d)
    });
    assert!(in_flight["percent"].as_f64().unwrap() > 33.0, "{in_flight}");
    // B refuses a second writer while A's holds the upload.
    let refused = patch(b.http, third, size);
    assert_eq!(refused.status, 423, "{}", refused.text());
    let on_b = json(api_get(b.http, &format!("/api/v1/uploads/{id}")).unwrap());
    assert_eq!(
        on_b["offset"], third,
        "B sees what the catalog counts: {on_b}"
    );

    // A dies mid-request and comes back: the dead writer's lease holds the upload a while...
    a.restart();
    drop(held);
    let refused = patch(a.http, third, size);
    assert_eq!(refused.status, 423, "{}", refused.text());
    // ... then B goes on from the counted offset (the uncounted 1000 bytes cut) and ends it.
    let done = wait_for(
        "the dead writer's lease to lapse",
        Duration::from_secs(60),
        || {
            let r = patch(b.http, third, size);
            (r.status != 423).then_some(r)
        },
    );
    assert_eq!(done.status, 204, "{}", done.text());
    assert_eq!(done.header("upload-offset"), Some(length.as_str()));
    let upload = at.rsplit('/').next().unwrap();
    let kept = std::fs::read(shared.0.join("uploads").join(upload));
    // (Packaging may already have taken the bytes away.)
    if let Ok(kept) = kept {
        assert!(kept == bytes, "the bytes as sent");
    }

    let d = json(api_get(a.http, &format!("/api/v1/uploads/{id}")).unwrap());
    assert_eq!(d["status"], "asset_created", "{d}");
    let asset = d["asset_id"].as_str().unwrap().to_string();
    let settled_a = settled(&a, &asset);
    assert_eq!(settled_a["status"], "ready", "{settled_a}");
    for srv in [&a, &b] {
        let listed = json(api_get(srv.http, "/api/v1/assets").unwrap());
        assert!(
            listed["assets"]
                .as_array()
                .unwrap()
                .iter()
                .any(|x| x["id"] == asset.as_str()),
            "{listed}"
        );
        let (packaged, _) = download_vod(srv, &asset, "video");
        assert_eq!(packet_counts(&packaged).0, 150);
    }
}

/// A writer whose lease in Redis is gone (Redis out of reach for its life, or the key lost)
/// stops at its next renewal: another origin may be writing the upload by then, so the request
/// ends `423` with its bytes uncounted, and the file is not cut back under the other writer.
#[test]
fn a_writer_that_loses_its_lease_stops_and_counts_nothing() {
    let redis_port = free_port();
    let _redis = Redis::start(redis_port);
    let srv = Server::start(&format!(
        "[redis]\nurl = \"redis://127.0.0.1:{redis_port}\"\n[uploads]\npackage = false\n"
    ));
    let size = 100_000usize;
    let bytes: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
    let d = direct(&srv, "{}");
    let id = d["id"].as_str().unwrap().to_string();
    let made = tus(
        srv.http,
        "POST",
        &format!("/uploads/{id}"),
        &[("Upload-Length", &size.to_string())],
        b"",
    );
    assert_eq!(made.status, 201, "{}", made.text());
    let at = made.header("location").unwrap().to_string();
    let upload = at.rsplit('/').next().unwrap().to_string();

    // 1000 bytes, then nothing: the request holds the upload.
    let mut held = TcpStream::connect(("127.0.0.1", srv.http)).unwrap();
    write!(
        held,
        "PATCH {at} HTTP/1.1\r\nHost: x\r\nTus-Resumable: 1.0.0\r\nContent-Type: application/offset+octet-stream\r\nUpload-Offset: 0\r\nContent-Length: {size}\r\n\r\n"
    )
    .unwrap();
    held.write_all(&bytes[..1000]).unwrap();
    wait_for("the offset in flight", Duration::from_secs(30), || {
        let d = json(api_get(srv.http, &format!("/api/v1/uploads/{id}")).ok()?);
        (d["offset"] == 1000).then_some(())
    });
    let key = format!("estuary:upload-writer:{upload}");
    assert!(cmd(redis_port, &format!("EXISTS {key}"))
        .unwrap()
        .contains(":1"));

    // The lease goes; at its next renewal (every 10 s) the writer finds out.
    assert!(cmd(redis_port, &format!("DEL {key}"))
        .unwrap()
        .contains(":1"));
    held.set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut answer = [0u8; 1024];
    let n = std::io::Read::read(&mut held, &mut answer).unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]).to_string();
    assert!(answer.starts_with("HTTP/1.1 423"), "{answer}");
    let head = tus(srv.http, "HEAD", &at, &[], b"");
    assert_eq!(head.header("upload-offset"), Some("0"), "nothing counted");
    let file = srv.dir.0.join("data/uploads").join(&upload);
    assert_eq!(
        std::fs::metadata(&file).unwrap().len(),
        1000,
        "the file is left as it is"
    );

    // A writer going on from the counted offset ends it, with the bytes as sent.
    let done = tus(
        srv.http,
        "PATCH",
        &at,
        &[
            ("Content-Type", "application/offset+octet-stream"),
            ("Upload-Offset", "0"),
        ],
        &bytes,
    );
    assert_eq!(done.status, 204, "{}", done.text());
    assert_eq!(std::fs::read(&file).unwrap(), bytes);
}
