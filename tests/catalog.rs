//! The catalog on both of its databases: SQLite in a temporary directory (the default) and a
//! real PostgreSQL server started for the test. Every check runs on both, through the one code
//! path the server uses.

mod common;

use catalog::{
    AssetSettings, Catalog, DirectStatus, Error, Filter, Input, Media, NewAsset, Patch, Source,
    Status,
};
use common::postgres::Postgres;
use common::TempDir;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn new(id: &str, tags: &[&str], passthrough: Option<&str>) -> NewAsset {
    NewAsset {
        id: id.into(),
        status: Status::Preparing,
        source: Source::Live,
        stream: Some("demo".into()),
        title: None,
        description: None,
        tags: tags.iter().map(|t| t.to_string()).collect(),
        passthrough: passthrough.map(Into::into),
        playback: "public".into(),
        created_at: None,
        input_url: None,
    }
}

/// Creating, reading, listing with filters and pages, changing, deleting.
async fn lifecycle(url: &str) {
    let c = Catalog::open(url).await.unwrap();
    // Made in this order (ids not in it, so the listing's order is the creation time's).
    let a = c
        .create(&new("a1", &["news", "news", "live"], Some("ext-1")))
        .await
        .unwrap();
    assert_eq!(
        a.tags,
        ["news", "live"],
        "tags are kept once each, in order"
    );
    for (id, tags) in [
        ("a4", &["sport"][..]),
        ("a2", &[]),
        ("a5", &["sport"]),
        ("a3", &[]),
    ] {
        // Distinct creation times order the listing.
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        c.create(&new(id, tags, None)).await.unwrap();
    }
    assert!(matches!(c.create(&new("a1", &[], None)).await, Err(Error::Exists(id)) if id == "a1"));
    let got = c.get("a1").await.unwrap().unwrap();
    assert_eq!(got, a);
    assert!(c.get("nope").await.unwrap().is_none());

    // Newest first, two to a page.
    let ids = |p: &catalog::Page| p.assets.iter().map(|a| a.id.clone()).collect::<Vec<_>>();
    let page = |n| Filter {
        limit: 2,
        page: n,
        ..Filter::default()
    };
    let p1 = c.list(&page(1)).await.unwrap();
    assert_eq!(ids(&p1), ["a3", "a5"]);
    assert!(p1.more);
    let p2 = c.list(&page(2)).await.unwrap();
    assert_eq!(ids(&p2), ["a2", "a4"]);
    let p3 = c.list(&page(3)).await.unwrap();
    assert_eq!(ids(&p3), ["a1"]);
    assert!(!p3.more);
    let tagged = c
        .list(&Filter {
            tag: Some("sport".into()),
            ..Filter::default()
        })
        .await
        .unwrap();
    assert_eq!(ids(&tagged), ["a5", "a4"]);
    let by_passthrough = c
        .list(&Filter {
            passthrough: Some("ext-1".into()),
            ..Filter::default()
        })
        .await
        .unwrap();
    assert_eq!(ids(&by_passthrough), ["a1"]);
    // What a client sends is bound, never spliced into the SQL.
    let hostile = c
        .list(&Filter {
            tag: Some("x' OR '1'='1".into()),
            ..Filter::default()
        })
        .await
        .unwrap();
    assert!(hostile.assets.is_empty());

    // Status and media.
    assert!(c.set_status("a2", Status::Ready, None).await.unwrap());
    assert!(c
        .set_status("a3", Status::Errored, Some("no video stream"))
        .await
        .unwrap());
    assert!(!c.set_status("nope", Status::Ready, None).await.unwrap());
    let media = Media {
        duration: Some(12.345),
        width: Some(1280),
        height: Some(720),
        codecs: vec!["avc1.64001f".into(), "mp4a.40.2".into()],
        renditions: vec!["video".into(), "video2".into(), "audio".into()],
    };
    assert!(c.set_media("a2", &media).await.unwrap());
    let a2 = c.get("a2").await.unwrap().unwrap();
    assert_eq!(a2.status, Status::Ready);
    assert_eq!(
        (a2.duration, a2.width, a2.height),
        (Some(12.345), Some(1280), Some(720))
    );
    assert_eq!(a2.codecs, media.codecs);
    assert_eq!(a2.renditions, media.renditions);
    let errored = c.get("a3").await.unwrap().unwrap();
    assert_eq!(errored.error.as_deref(), Some("no video stream"));
    let ready = c
        .list(&Filter {
            status: Some(Status::Ready),
            ..Filter::default()
        })
        .await
        .unwrap();
    assert_eq!(ids(&ready), ["a2"]);

    // A change names what it changes; null clears.
    let patch: Patch = serde_json::from_str(
        r#"{"title": "Match day", "tags": ["sport", "final"], "passthrough": null}"#,
    )
    .unwrap();
    let changed = c.update("a1", &patch).await.unwrap().unwrap();
    assert_eq!(changed.title.as_deref(), Some("Match day"));
    assert_eq!(changed.tags, ["sport", "final"]);
    assert_eq!(changed.passthrough, None);
    assert_eq!(c.get("a1").await.unwrap().unwrap(), changed);
    let untouched: Patch = serde_json::from_str(r#"{"description": "x"}"#).unwrap();
    let again = c.update("a1", &untouched).await.unwrap().unwrap();
    assert_eq!(
        again.title.as_deref(),
        Some("Match day"),
        "a field not named is kept"
    );
    let tagged = c
        .list(&Filter {
            tag: Some("sport".into()),
            ..Filter::default()
        })
        .await
        .unwrap();
    assert_eq!(ids(&tagged), ["a5", "a4", "a1"]);
    assert!(c
        .list(&Filter {
            tag: Some("news".into()),
            ..Filter::default()
        })
        .await
        .unwrap()
        .assets
        .is_empty());
    let long: Patch =
        serde_json::from_value(serde_json::json!({ "title": "x".repeat(513) })).unwrap();
    assert!(matches!(
        c.update("a1", &long).await,
        Err(Error::Invalid(_))
    ));
    assert!(c.update("nope", &untouched).await.unwrap().is_none());
    assert!(
        serde_json::from_str::<Patch>(r#"{"status": "ready"}"#).is_err(),
        "only metadata may be patched"
    );

    // Deleting takes its tags with it.
    assert!(c.delete("a4").await.unwrap());
    assert!(!c.delete("a4").await.unwrap());
    assert!(c.get("a4").await.unwrap().is_none());
    let tagged = c
        .list(&Filter {
            tag: Some("sport".into()),
            ..Filter::default()
        })
        .await
        .unwrap();
    assert_eq!(ids(&tagged), ["a5", "a1"]);

    // A creation time given (an archive brought in from storage) orders it among the others.
    let mut old = new("a0", &[], None);
    old.created_at = Some(a.created_at - 60_000);
    c.create(&old).await.unwrap();
    let all = c.list(&Filter::default()).await.unwrap();
    assert_eq!(ids(&all).last().map(String::as_str), Some("a0"));
    c.close().await;

    // Opened again (migrations already applied), everything is still there.
    let c = Catalog::open(url).await.unwrap();
    assert_eq!(c.list(&Filter::default()).await.unwrap().assets.len(), 5);
    c.close().await;
}

/// Direct uploads and their tus uploads: one upload per URL, the offset moved on only from
/// where it stood, completion making the asset, termination, expiry.
async fn uploads(url: &str) {
    let c = Catalog::open(url).await.unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let settings = AssetSettings {
        title: Some("Clip".into()),
        tags: vec!["x".into()],
        ..AssetSettings::default()
    };
    let d = c
        .create_direct_upload("d1", Some("https://a.example"), &settings, now + 60_000)
        .await
        .unwrap();
    assert_eq!(d.status, DirectStatus::Waiting);
    assert_eq!(c.direct_upload("d1").await.unwrap().unwrap(), d);
    let u = c
        .start_upload("d1", "u1", None, "filename YQ==", now + 60_000)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((u.length, u.received), (None, 0));
    assert!(
        c.start_upload("d1", "u2", Some(5), "", now + 60_000)
            .await
            .unwrap()
            .is_none(),
        "one upload per URL"
    );
    assert!(c.upload("u2").await.unwrap().is_none());
    assert!(c.advance_upload("u1", 0, 10, None).await.unwrap());
    assert!(
        !c.advance_upload("u1", 0, 20, None).await.unwrap(),
        "only from where it stands"
    );
    assert!(c.set_upload_length("u1", 30).await.unwrap());
    assert!(!c.set_upload_length("u1", 40).await.unwrap(), "once");
    assert!(c
        .advance_upload("u1", 10, 30, Some("{\"parts\":[]}"))
        .await
        .unwrap());
    let u = c.upload("u1").await.unwrap().unwrap();
    assert_eq!(
        u.stored.as_deref(),
        Some("{\"parts\":[]}"),
        "where its bytes are, with them"
    );
    assert_eq!(
        (u.length, u.received, u.metadata.as_str()),
        (Some(30), 30, "filename YQ==")
    );
    let asset = NewAsset {
        source: Source::Upload,
        stream: None,
        status: Status::Waiting,
        title: settings.title.clone(),
        ..new("as1", &["x"], None)
    };
    let made = c.complete_upload(&u, &asset).await.unwrap().unwrap();
    assert_eq!(made.title.as_deref(), Some("Clip"));
    assert!(
        c.complete_upload(&u, &asset).await.unwrap().is_none(),
        "once"
    );
    assert!(
        !c.advance_upload("u1", 30, 31, None).await.unwrap(),
        "a complete upload takes nothing"
    );
    let d = c.direct_upload("d1").await.unwrap().unwrap();
    assert_eq!(
        (d.status, d.asset_id.as_deref()),
        (DirectStatus::AssetCreated, Some("as1"))
    );
    assert!(
        !c.cancel_upload(&u).await.unwrap(),
        "a complete upload is not cancelled"
    );

    // Packaging takes the asset once, with the upload its bytes are in; progress shows until
    // its status moves on.
    let (taken, input) = c.claim_asset_to_prepare(0).await.unwrap().unwrap();
    assert_eq!(
        (taken.id.as_str(), input),
        ("as1", Input::Upload("u1".into()))
    );
    assert_eq!(
        (taken.status, taken.progress),
        (Status::Preparing, Some(0.0))
    );
    assert!(
        c.claim_asset_to_prepare(0).await.unwrap().is_none(),
        "taken"
    );
    assert!(c.set_progress("as1", 42.5).await.unwrap());
    assert_eq!(c.get("as1").await.unwrap().unwrap().progress, Some(42.5));
    // Left preparing by a process that stopped: taken again once stale.
    let later = catalog::now_ms() + 1000;
    let (again, _) = c.claim_asset_to_prepare(later).await.unwrap().unwrap();
    assert_eq!(again.id, "as1");
    c.set_status(
        "as1",
        Status::Waiting,
        Some("video codec vp9 (needs re-encoding)"),
    )
    .await
    .unwrap();
    let waiting = c.get("as1").await.unwrap().unwrap();
    assert_eq!(waiting.progress, None);
    assert!(
        c.claim_asset_to_prepare(later).await.unwrap().is_none(),
        "waiting for a reason: not taken"
    );
    assert!(!c.set_progress("as1", 50.0).await.unwrap());

    // An asset fetched from a URL is taken with its URL, which the asset itself does not show.
    let fetched = NewAsset {
        source: Source::Url,
        stream: None,
        status: Status::Waiting,
        input_url: Some("https://example.com/a.mp4?sig=x".into()),
        ..new("as2", &[], None)
    };
    c.create(&fetched).await.unwrap();
    let (taken, input) = c.claim_asset_to_prepare(later).await.unwrap().unwrap();
    assert_eq!(
        (taken.id.as_str(), input),
        ("as2", Input::Url("https://example.com/a.mp4?sig=x".into()))
    );
    assert!(!serde_json::to_string(&taken)
        .unwrap()
        .contains("example.com"));
    assert!(
        c.claim_asset_to_prepare(0).await.unwrap().is_none(),
        "taken"
    );

    // Termination.
    c.create_direct_upload("d2", None, &AssetSettings::default(), now + 60_000)
        .await
        .unwrap();
    let u3 = c
        .start_upload("d2", "u3", Some(9), "", now + 60_000)
        .await
        .unwrap()
        .unwrap();
    assert!(c.cancel_upload(&u3).await.unwrap());
    assert!(c.upload("u3").await.unwrap().is_none());
    assert_eq!(
        c.direct_upload("d2").await.unwrap().unwrap().status,
        DirectStatus::Cancelled
    );

    // Expiry: an unfinished upload past its time goes; a URL never used times out; one whose
    // upload is still going does not.
    c.create_direct_upload("d3", None, &AssetSettings::default(), now + 60_000)
        .await
        .unwrap();
    c.start_upload("d3", "u4", Some(9), "", now - 1)
        .await
        .unwrap()
        .unwrap();
    c.create_direct_upload("d4", None, &AssetSettings::default(), now - 1)
        .await
        .unwrap();
    assert!(
        c.start_upload("d4", "u5", Some(9), "", now + 60_000)
            .await
            .unwrap()
            .is_none(),
        "expired"
    );
    let soon = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        + 300;
    c.create_direct_upload("d5", None, &AssetSettings::default(), soon)
        .await
        .unwrap();
    c.start_upload("d5", "u6", Some(9), "", now + 60_000)
        .await
        .unwrap()
        .unwrap();
    // A whole upload whose asset was not made yet is not expired either.
    c.create_direct_upload("d6", None, &AssetSettings::default(), now + 60_000)
        .await
        .unwrap();
    c.start_upload("d6", "u7", Some(4), "", now - 1)
        .await
        .unwrap()
        .unwrap();
    assert!(c.advance_upload("u7", 0, 4, None).await.unwrap());
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    let expired: Vec<_> = c
        .expire_uploads()
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.id)
        .collect();
    assert_eq!(expired, ["u4"]);
    assert!(c.upload("u4").await.unwrap().is_none());
    assert!(c.upload("u6").await.unwrap().is_some());
    assert!(c.upload("u7").await.unwrap().is_some());
    assert_eq!(
        c.direct_upload("d4").await.unwrap().unwrap().status,
        DirectStatus::TimedOut
    );
    assert_eq!(
        c.direct_upload("d5").await.unwrap().unwrap().status,
        DirectStatus::Waiting
    );
    assert_eq!(
        c.direct_upload("d1").await.unwrap().unwrap().status,
        DirectStatus::AssetCreated
    );
    c.close().await;
}

#[test]
fn catalog_on_sqlite() {
    let dir = TempDir::new("catalog");
    let url = format!("sqlite://{}", dir.0.join("catalog.db").display());
    runtime().block_on(async {
        lifecycle(&url).await;
        uploads(&url).await;
    });
}

#[test]
fn catalog_on_postgres() {
    let pg = Postgres::start();
    runtime().block_on(async {
        lifecycle(&pg.url()).await;
        uploads(&pg.url()).await;
    });
}

#[test]
fn a_catalog_url_of_another_kind_is_refused() {
    let r = runtime().block_on(Catalog::open("mysql://localhost/x"));
    assert!(matches!(r, Err(Error::Url(_))), "{r:?}");
}
