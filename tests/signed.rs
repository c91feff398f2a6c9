//! Signed playback, as viewers and attackers meet it: a stream marked `playback = "signed"`
//! plays in hls.js and dash.js given a JWT once, as `?token=` on the first URL (the server
//! writes it into every URL after that), at the origin and at an edge that verifies tokens
//! itself (ES256 and RS256 keys from a JWKS document) and goes on verifying them with its
//! origin down; tokens that are missing, expired, forged or for something else are refused
//! with a JSON reason; the same for the stream's archive, at the origin and at an edge reading
//! the same storage with the origin down.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;
use jsonwebtoken::{Algorithm, EncodingKey, Header};

/// The operator's own auth service signs with the secret the test servers have.
const SECRET: &str = TEST_SECRET;

fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

fn claims(sub: &str, aud: &str, exp_in: i64) -> serde_json::Value {
    serde_json::json!({ "sub": sub, "aud": aud, "exp": (now() as i64 + exp_in) as u64 })
}

fn hs256(claims: &serde_json::Value, secret: &str) -> String {
    let key = EncodingKey::from_secret(secret.as_bytes());
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &key).unwrap()
}

fn signed_stream(extra: &str) -> String {
    format!(
        "[hls]\nend_grace = 0.5\n[[streams]]\nname = \"demo\"\nkey = \"{KEY}\"\nplayback = \"signed\"\n{extra}"
    )
}

/// Asserts `path` is refused with `status` and the JSON `reason`.
fn refused(port: u16, path: &str, status: u16, reason: &str) {
    let r = get(port, path).unwrap();
    assert_eq!(r.status, status, "{path}: {}", r.text());
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["reason"], reason, "{path}: {v}");
    assert_eq!(r.header("cache-control"), Some("no-store"));
}

/// Every URI of an HLS playlist carries `token`.
fn all_uris_carry(playlist: &str, token: &str) {
    let mut uris = 0;
    for line in playlist.lines() {
        let found: Vec<&str> = if line.starts_with('#') {
            line.split("URI=\"")
                .skip(1)
                .map(|r| r.split('"').next().unwrap())
                .collect()
        } else if line.is_empty() {
            vec![]
        } else {
            vec![line]
        };
        for uri in found {
            assert!(
                uri.ends_with(&format!("token={token}")),
                "{uri} in\n{playlist}"
            );
            uris += 1;
        }
    }
    assert!(uris > 0, "no URIs in\n{playlist}");
}

/// The player played on through its last `secs` lines without a fatal error.
fn assert_played(lines: &[String], at_least: f64) {
    let stats: Vec<&String> = lines.iter().filter(|l| l.contains("currentTime")).collect();
    let last = stats.last().expect("player stats");
    eprintln!("player: {last}");
    assert!(!last.contains("\"fatal\":true"), "{last}");
    let played = field(last, "currentTime").unwrap() - field(stats[0], "currentTime").unwrap();
    assert!(played > at_least, "played {played:.2} s: {lines:?}");
}

/// hls.js plays `{base}/index.m3u8` and dash.js `{base}/manifest.mpd`, each given `token`
/// once, for `secs` seconds, each advancing more than `at_least` seconds.
fn play_both(base: &str, token: &str, secs: u32, at_least: f64) {
    for (page, manifest) in [("index.html", "index.m3u8"), ("dash.html", "manifest.mpd")] {
        let url = format!("{base}/{manifest}?token={token}");
        assert_played(&play(page, &url, secs), at_least);
    }
}

/// Plays `url` (already carrying `?token=`) in `page` for `secs` seconds.
fn play(page: &str, url: &str, secs: u32) -> Vec<String> {
    let page_port = serve_page();
    // The source URL is one query value of the page's URL.
    let src = url
        .replace('?', "%3F")
        .replace('=', "%3D")
        .replace('&', "%26");
    run_player(
        &format!("http://127.0.0.1:{page_port}/{page}?src={src}"),
        secs,
    )
}

#[test]
fn a_signed_stream_and_its_archive_play_with_a_token_on_the_first_url_only() {
    let mut srv = Server::start(&signed_stream(""));
    let publisher = Publisher::rtmp(&srv.rtmp_url(KEY), 60);
    let live = hs256(&claims("demo", "live", 600), SECRET);
    let media = wait_for("stream live", Duration::from_secs(60), || {
        get(
            srv.http,
            &format!("/live/demo/video/index.m3u8?token={live}"),
        )
        .ok()
        .filter(|r| r.status == 200 && r.text().contains("#EXTINF"))
        .map(|r| r.text())
    });

    // Refusals, each with its reason.
    let h = srv.http;
    refused(h, "/live/demo/index.m3u8", 401, "missing");
    refused(h, "/live/demo/video/index.m3u8", 401, "missing");
    let part = media
        .lines()
        .filter_map(|l| l.split("URI=\"").nth(1))
        .filter(|u| u.contains(".m4s?token="))
        .map(|u| u.split('?').next().unwrap().to_string())
        .next_back()
        .expect("a part");
    refused(h, &format!("/live/demo/video/{part}"), 401, "missing");
    let expired = hs256(&claims("demo", "live", -120), SECRET);
    refused(
        h,
        &format!("/live/demo/index.m3u8?token={expired}"),
        401,
        "expired",
    );
    let other = hs256(&claims("another", "live", 600), SECRET);
    refused(
        h,
        &format!("/live/demo/index.m3u8?token={other}"),
        403,
        "wrong_stream",
    );
    let vod_only = hs256(&claims("demo", "vod", 600), SECRET);
    refused(
        h,
        &format!("/live/demo/index.m3u8?token={vod_only}"),
        403,
        "wrong_audience",
    );
    let forged = hs256(
        &claims("demo", "live", 600),
        "someone-elses-secret-of-32-bytes-and-more",
    );
    refused(
        h,
        &format!("/live/demo/index.m3u8?token={forged}"),
        401,
        "bad_signature",
    );
    refused(h, "/live/demo/index.m3u8?token=not.a.jwt", 401, "malformed");

    // The token given once is in every URL the server writes.
    let multivariant = get(h, &format!("/live/demo/index.m3u8?token={live}")).unwrap();
    assert_eq!(multivariant.status, 200);
    all_uris_carry(&multivariant.text(), &live);
    all_uris_carry(&media, &live);
    let mpd = get(h, &format!("/live/demo/manifest.mpd?token={live}"))
        .unwrap()
        .text();
    for attr in ["media=\"", "initialization=\""] {
        for v in mpd.split(attr).skip(1) {
            let v = v.split('"').next().unwrap();
            assert!(v.ends_with(&format!("?token={live}")), "{v} in\n{mpd}");
        }
    }
    let r = get(h, &format!("/live/demo/video/{part}?token={live}")).unwrap();
    assert_eq!(r.status, 200, "a part with the token");
    // ... and as a bearer token, for players that send headers.
    let r = get_with(
        h,
        "/live/demo/video/index.m3u8",
        &[("Authorization", &format!("Bearer {live}"))],
    )
    .unwrap();
    assert_eq!(r.status, 200);

    // Real players, given the token once.
    play_both(&format!("http://127.0.0.1:{h}/live/demo"), &live, 12, 5.0);

    // The archive: signed as its stream was.
    drop(publisher);
    let id = wait_for("the archive ended", Duration::from_secs(60), || {
        let v: serde_json::Value =
            serde_json::from_slice(&api_get(h, "/api/v1/vod").ok()?.body).ok()?;
        let a = v["archives"].as_array()?.first()?.clone();
        (!a["ended"].is_null()).then(|| a["id"].as_str().unwrap().to_string())
    });
    let vod = format!("/vod/{id}/index.m3u8");
    refused(h, &vod, 401, "missing");
    refused(h, &format!("{vod}?token={live}"), 403, "wrong_audience");
    let other_vod = hs256(&claims("another", "vod", 600), SECRET);
    refused(h, &format!("{vod}?token={other_vod}"), 403, "wrong_stream");
    let expired_vod = hs256(&claims(&id, "vod", -120), SECRET);
    refused(h, &format!("{vod}?token={expired_vod}"), 401, "expired");
    refused(h, &format!("/vod/{id}/video/init.mp4"), 401, "missing");
    // A token for the archive by its id, or for everything its stream recorded.
    for sub in [id.as_str(), "demo"] {
        let t = hs256(&claims(sub, "vod", 600), SECRET);
        let r = get(h, &format!("{vod}?token={t}")).unwrap();
        assert_eq!(r.status, 200, "{sub}: {}", r.text());
        all_uris_carry(&r.text(), &t);
        let r = get(h, &format!("/vod/{id}/video/index.m3u8?token={t}")).unwrap();
        all_uris_carry(&r.text(), &t);
    }
    let t = hs256(&claims(&id, "vod", 600), SECRET);
    let base = format!("http://127.0.0.1:{h}/vod/{id}");
    play_both(&base, &t, 8, 2.0);

    // The archive at an edge that reads the same storage, with the origin down: the edge
    // learns the policy from the archive itself and checks tokens on its own.
    srv.process.kill();
    let archive = srv.dir.0.join("data/archive");
    let edge = Server::edge(&format!("[archive]\ndir = \"{}\"\n", archive.display()));
    let e = edge.http;
    refused(e, &vod, 401, "missing");
    refused(e, &format!("{vod}?token={live}"), 403, "wrong_audience");
    refused(e, &format!("{vod}?token={expired_vod}"), 401, "expired");
    refused(e, &format!("{vod}?token={other_vod}"), 403, "wrong_stream");
    let r = get(e, &format!("/vod/{id}/video/index.m3u8?token={t}")).unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    all_uris_carry(&r.text(), &t);
    let base = format!("http://127.0.0.1:{e}/vod/{id}");
    play_both(&base, &t, 8, 2.0);
}

/// An EC P-256 and an RSA key pair made with openssl: (private PEM (PKCS#8), algorithm).
fn key_pairs(dir: &TempDir) -> Vec<(String, Algorithm)> {
    let mut out = Vec::new();
    for (name, args, alg) in [
        (
            "ec",
            &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"][..],
            Algorithm::ES256,
        ),
        (
            "rsa",
            &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"][..],
            Algorithm::RS256,
        ),
    ] {
        let path = dir.0.join(format!("{name}.pem"));
        let ok = Command::new("openssl")
            .args(["genpkey", "-quiet"])
            .args(args)
            .arg("-out")
            .arg(&path)
            .status()
            .expect("openssl must be installed")
            .success();
        assert!(ok, "openssl genpkey {name}");
        out.push((std::fs::read_to_string(&path).unwrap(), alg));
    }
    out
}

/// Serves `body` as `/jwks.json` on a port of its own; the port.
fn serve_jwks(body: String) -> u16 {
    serve_files(vec![("/jwks.json", "application/json", body.into_bytes())])
}

#[test]
fn an_edge_verifies_es256_and_rs256_tokens_itself_also_with_its_origin_down() {
    let dir = TempDir::new("jwks");
    let pairs = key_pairs(&dir);
    let mut jwks = Vec::new();
    let mut signers = Vec::new();
    for (i, (pem, alg)) in pairs.iter().enumerate() {
        let key = match alg {
            Algorithm::ES256 => EncodingKey::from_ec_pem(pem.as_bytes()).unwrap(),
            _ => EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap(),
        };
        let mut jwk = jsonwebtoken::jwk::Jwk::from_encoding_key(&key, *alg).unwrap();
        jwk.common.key_id = Some(format!("key-{i}"));
        jwks.push(jwk);
        signers.push((key, *alg, format!("key-{i}")));
    }
    let jwks_port = serve_jwks(serde_json::json!({ "keys": jwks }).to_string());
    let token = |claims: &serde_json::Value, which: usize| {
        let (key, alg, kid) = &signers[which];
        let mut header = Header::new(*alg);
        header.kid = Some(kid.clone());
        jsonwebtoken::encode(&header, claims, key).unwrap()
    };
    // Only the JWKS's keys (not the test servers' HS256 secret).
    let jwks_url = format!(
        "[playback]\nhs256_secrets = []\njwks_url = \"http://127.0.0.1:{jwks_port}/jwks.json\"\n"
    );

    let redis_port = free_port();
    let _redis = Redis::start(redis_port);
    let redis = format!("[redis]\nurl = \"redis://127.0.0.1:{redis_port}\"\n");
    let mut origin = Server::start(&signed_stream(&format!("{jwks_url}{redis}")));
    // The edge knows no stream: that this one is signed comes with its window from Redis.
    let edge = Server::edge(&format!(
        "{jwks_url}{redis}[edge]\norigins = [\"http://127.0.0.1:{}\"]\n",
        origin.http
    ));
    let _publisher = Publisher::rtmp(&origin.rtmp_url(KEY), 60);
    let es = token(&claims("demo", "live", 600), 0);
    let rs = token(&claims("demo", "live", 600), 1);
    wait_for("stream live at the edge", Duration::from_secs(60), || {
        get(
            edge.http,
            &format!("/live/demo/video/index.m3u8?token={es}"),
        )
        .ok()
        .filter(|r| r.status == 200 && r.text().contains("#EXTINF"))
        .map(|_| ())
    });
    refused(edge.http, "/live/demo/index.m3u8", 401, "missing");
    let url = format!(
        "http://127.0.0.1:{}/live/demo/index.m3u8?token={rs}",
        edge.http
    );
    assert_played(&play("index.html", &url, 12), 5.0);
    let url = format!(
        "http://127.0.0.1:{}/live/demo/manifest.mpd?token={es}",
        edge.http
    );
    assert_played(&play("dash.html", &url, 12), 5.0);

    // The origin goes down: the edge serves what Redis holds and checks tokens on its own.
    origin.process.kill();
    for t in [&es, &rs] {
        let r = get(edge.http, &format!("/live/demo/video/index.m3u8?token={t}")).unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
        all_uris_carry(&r.text(), t);
        let text = r.text();
        let seg = text
            .lines()
            .rfind(|l| !l.starts_with('#') && l.contains(".m4s?"))
            .expect("a segment");
        let r = get(edge.http, &format!("/live/demo/video/{seg}")).unwrap();
        assert_eq!(r.status, 200, "a segment at the edge");
    }
    refused(edge.http, "/live/demo/video/index.m3u8", 401, "missing");
    let expired = token(&claims("demo", "live", -120), 0);
    refused(
        edge.http,
        &format!("/live/demo/index.m3u8?token={expired}"),
        401,
        "expired",
    );
    let other = token(&claims("another", "live", 600), 1);
    refused(
        edge.http,
        &format!("/live/demo/index.m3u8?token={other}"),
        403,
        "wrong_stream",
    );
    // Signed with a key the JWKS does not hold.
    let stranger = hs256(&claims("demo", "live", 600), SECRET);
    refused(
        edge.http,
        &format!("/live/demo/index.m3u8?token={stranger}"),
        401,
        "unknown_key",
    );
}
