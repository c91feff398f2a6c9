//! Uploads into object storage: with `[archive] url` on S3 (a real S3-compatible server,
//! moto's), tus uploads go into S3 multipart uploads rather than the origin's disk. A video
//! uploaded by tus-js-client's Node build, killed part way and resumed after a restart of the
//! server, ends as the same video; while it is unfinished its bytes are parts and one tail
//! object in the bucket, nothing on the origin's disk; once it is ready nothing of it is left
//! but the packaged asset. A chunk with a wrong checksum keeps nothing, and an upload ended by
//! its client leaves nothing behind.

mod common;

use common::s3::S3;
use common::upload::*;
use common::*;

const BUCKET: &str = "estuary-media";

/// The keys under the uploads' prefix.
fn upload_keys(s3: &S3) -> Vec<String> {
    s3.keys(BUCKET, "media/uploads/")
}

#[test]
fn uploads_go_to_object_storage_in_parts_and_survive_a_restart() {
    let s3 = S3::start(BUCKET);
    let mut srv = Server::start(&s3.archive_config(BUCKET, "media"));
    let made = TempDir::new("upload-s3");
    // 12 s of 720p noise at about 24 Mbit/s, with sound: some 36 MB, four parts and a tail.
    let video = noisy_clip(&made.0, "noisy.mp4", 12, 24);
    let size = std::fs::metadata(&video).unwrap().len();
    assert!(size >= 25 << 20, "{size} bytes");
    let d = direct(&srv, r#"{"new_asset_settings": {"title": "In parts"}}"#);
    let id = d["id"].as_str().unwrap().to_string();
    let url = d["url"].as_str().unwrap().to_string();
    let store = made.0.join("tus-urls.json");

    // Killed at 40%, then the server restarts: what was counted stays, in the bucket.
    let first = NodeUpload::holding(&video, &url, &store, size * 2 / 5);
    let after_first = first.kill_when_held(&srv, &id, size * 2 / 5);
    assert_eq!(after_first, size * 2 / 5, "of {size}");
    let upload = json(api_get(srv.http, &format!("/api/v1/uploads/{id}")).unwrap())["upload_id"]
        .as_str()
        .unwrap()
        .to_string();
    // At most one tail object (none when the cut came right after a part was put).
    let keys = upload_keys(&s3);
    eprintln!("{after_first} of {size} bytes counted; in the bucket: {keys:?}");
    assert!(
        keys.len() <= 1
            && keys
                .iter()
                .all(|k| k.starts_with(&format!("media/uploads/{upload}.tail."))),
        "only a tail object while unfinished: {keys:?}"
    );
    assert_eq!(
        s3.multipart_uploads(BUCKET),
        [format!("media/uploads/{upload}")],
        "its parts"
    );
    let on_disk = srv.dir.0.join("data/uploads").join(&upload);
    assert!(!on_disk.exists(), "nothing on the origin's disk");
    srv.restart();
    assert_eq!(
        json(api_get(srv.http, &format!("/api/v1/uploads/{id}")).unwrap())["offset"],
        after_first
    );

    // Resumed from where it stood, and ended.
    let second = NodeUpload::start(&video, &url, &store);
    let said = second.until("done", |v| v["done"] == true);
    assert_eq!(said[0]["resumed"], true, "{said:?}");
    let first_sent = said.iter().find_map(|v| v["sent"].as_u64()).unwrap();
    assert!(
        first_sent >= after_first,
        "went on from {after_first}: {said:?}"
    );
    drop(second);
    let d = json(api_get(srv.http, &format!("/api/v1/uploads/{id}")).unwrap());
    assert_eq!(d["status"], "asset_created", "{d}");
    let asset = d["asset_id"].as_str().unwrap().to_string();
    let a = settled(&srv, &asset);
    assert_eq!(a["status"], "ready", "{a}");
    assert_eq!(a["title"], "In parts", "{a}");

    // The same video, every packet of it, playing; its asset in the bucket, nothing of the
    // upload left there or on disk.
    let (packaged, _) = download_vod(&srv, &asset, "video");
    let (audio, _) = download_vod(&srv, &asset, "audio");
    let (source_video, source_audio) = packet_counts(&video);
    assert_eq!(packet_counts(&packaged).0, source_video);
    assert_eq!(packet_counts(&audio).1, source_audio);
    assert!(
        s3.keys(BUCKET, &format!("media/{asset}/"))
            .contains(&format!("media/{asset}/index.m3u8")),
        "the asset is in the bucket"
    );
    assert_eq!(upload_keys(&s3), Vec::<String>::new());
    assert_eq!(s3.multipart_uploads(BUCKET), Vec::<String>::new());
    assert!(!on_disk.exists());
}

#[test]
fn a_refused_chunk_and_an_ended_upload_leave_nothing_in_the_bucket() {
    let s3 = S3::start(BUCKET);
    let srv = Server::start(&s3.archive_config(BUCKET, "media"));
    let http = srv.http;
    let d = direct(&srv, "{}");
    let id = d["id"].as_str().unwrap();
    let octets = ("Content-Type", "application/offset+octet-stream");
    let made = tus(
        http,
        "POST",
        &format!("/uploads/{id}"),
        &[("Upload-Length", "20971520"), octets],
        b"hello ",
    );
    assert_eq!(made.status, 201, "{}", made.text());
    let at = made.header("location").unwrap().to_string();
    let upload = at.rsplit('/').next().unwrap().to_string();
    let tail = |offset: u64| {
        let keys = upload_keys(&s3);
        let prefix = format!("media/uploads/{upload}.tail.{offset}.");
        assert!(
            keys.len() == 1 && keys[0].starts_with(&prefix),
            "one tail, ending at {offset}: {keys:?}"
        );
        keys[0].clone()
    };
    let first = tail(6);

    wrong_checksum_refused(http, &at, "6");
    assert_eq!(tail(6), first, "nothing of the refused chunk");
    let good = tus(
        http,
        "PATCH",
        &at,
        &[octets, ("Upload-Offset", "6")],
        b"world",
    );
    assert_eq!(good.status, 204, "{}", good.text());
    tail(11);

    // A refused chunk that filled a part (8 MiB): the multipart upload it began goes with it.
    let big = vec![7u8; 9 << 20];
    let refused = tus(
        http,
        "PATCH",
        &at,
        &[
            octets,
            ("Upload-Offset", "11"),
            ("Upload-Checksum", "sha1 AAAAAAAAAAAAAAAAAAAAAAAAAAA="),
        ],
        &big,
    );
    assert_eq!(refused.status, 460, "{}", refused.text());
    assert_eq!(s3.multipart_uploads(BUCKET), Vec::<String>::new());
    tail(11);
    // A counted one keeps its part in a multipart upload, which termination aborts.
    let kept = tus(http, "PATCH", &at, &[octets, ("Upload-Offset", "11")], &big);
    assert_eq!(kept.status, 204, "{}", kept.text());
    assert_eq!(
        s3.multipart_uploads(BUCKET),
        [format!("media/uploads/{upload}")]
    );
    tail(11 + (9 << 20));

    let ended = tus(http, "DELETE", &at, &[], b"");
    assert_eq!(ended.status, 204, "{}", ended.text());
    assert_eq!(upload_keys(&s3), Vec::<String>::new());
    assert_eq!(s3.multipart_uploads(BUCKET), Vec::<String>::new());
}
