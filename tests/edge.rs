//! Scale-out: the origin mirrors its window into a real `redis-server` (started here on a free
//! port); an `estuary edge` process serves the same playlists and bytes from Redis, blocking
//! reloads included, keeps serving when the origin dies, and survives Redis restarting.
//! Needs Debian's redis-server (scripts/test.sh installs it).

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;

/// Waits until the origin's video playlist lists two segments.
fn two_segments(origin: &Server) {
    wait_for("two segments", Duration::from_secs(60), || {
        let p = get(origin.http, "/live/demo/video/index.m3u8").ok()?.text();
        (tags(&p, "#EXTINF").len() >= 2).then_some(())
    });
}

/// Waits until each of `paths` answers the same bytes at the origin and the edge (compared at
/// one instant: a part may land between two requests).
fn same_playlists(origin: &Server, edge: &Server, paths: &[&str]) {
    for path in paths {
        wait_for(
            &format!("{path} identical at the edge"),
            Duration::from_secs(60),
            || {
                let o = get(origin.http, path).ok()?;
                let e = get(edge.http, path).ok()?;
                (o.status == 200 && o.body == e.body).then_some(())
            },
        );
    }
}

/// The last part `playlist` lists, fetched from both: the same bytes. Its URI and the edge's
/// answer.
fn same_last_part(origin: &Server, edge: &Server, playlist: &str) -> (String, Resp) {
    let part = tags(playlist, "#EXT-X-PART:")
        .last()
        .and_then(|l| attr(l, "URI"))
        .unwrap()
        .to_string();
    let o = get(origin.http, &format!("/live/demo/video/{part}")).unwrap();
    let e = get(edge.http, &format!("/live/demo/video/{part}")).unwrap();
    assert_eq!((o.status, e.status), (200, 200));
    assert_eq!(o.body, e.body, "{part}");
    (part, e)
}

/// A position PUT at the origin for `viewer`'s `asset` reads back at the edge (which checks the
/// viewer token itself).
fn assert_resume_shared(origin: &Server, edge: &Server, viewer: &str, asset: &str, position: &str) {
    let path = format!("/api/v1/resume/{asset}");
    let auth = format!("Bearer {}", viewer_token(origin.http, viewer));
    let r = request(
        origin.http,
        "PUT",
        &path,
        &[
            ("Content-Type", "application/json"),
            ("Authorization", &auth),
        ],
        format!("{{\"position\": {position}}}").as_bytes(),
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let got = get_with(edge.http, &path, &[("Authorization", &auth)])
        .unwrap()
        .text();
    assert!(got.contains(&format!("\"position\":{position}")), "{got}");
}

fn redis_config(port: u16) -> String {
    format!("[redis]\nurl = \"redis://127.0.0.1:{port}\"\n")
}

fn origins_config(origin: &Server) -> String {
    format!(
        "[edge]\norigins = [\"http://127.0.0.1:{}\"]\ncache_mb = 64\n",
        origin.http
    )
}

/// The edge's upstream counters (`/api/v1/edge`).
fn upstream_stats(edge: &Server) -> serde_json::Value {
    let r = api_get(edge.http, "/api/v1/edge").unwrap();
    assert_eq!(r.status, 200);
    serde_json::from_str::<serde_json::Value>(&r.text()).unwrap()["upstream"].clone()
}

fn counter(v: &serde_json::Value, name: &str) -> u64 {
    v[name].as_u64().unwrap_or_else(|| panic!("{name} in {v}"))
}

/// `n` viewers ask the edge for `path` at the same moment; their answers.
fn all_at_once(port: u16, path: &str, n: usize) -> Vec<Resp> {
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(n));
    let threads: Vec<_> = (0..n)
        .map(|_| {
            let (barrier, path) = (barrier.clone(), path.to_string());
            std::thread::spawn(move || {
                barrier.wait();
                get(port, &path).unwrap()
            })
        })
        .collect();
    threads.into_iter().map(|t| t.join().unwrap()).collect()
}

/// The next part of `playlist` (its preload hint): (`msn`, `part`, URI).
fn next_part(playlist: &str) -> (String, String, String) {
    let hint = tags(playlist, "#EXT-X-PRELOAD-HINT:")[0];
    let uri = attr(hint, "URI").unwrap().to_string();
    let file = uri.rsplit('/').next().unwrap().trim_end_matches(".m4s");
    let (msn, part) = file.split_once('.').unwrap();
    (msn.to_string(), part.to_string(), uri)
}

#[test]
fn an_edge_serves_what_the_origin_mirrors_and_outlives_it() {
    let port = free_port();
    let _redis = Redis::start(port);
    let mut origin = Server::start(&redis_config(port));
    let edge = Server::edge(&redis_config(port));
    let _publisher = Publisher::rtmp(&origin.rtmp_url(KEY), 60);
    two_segments(&origin);

    // The same playlists.
    same_playlists(
        &origin,
        &edge,
        &[
            "/live/demo/index.m3u8",
            "/live/demo/video/index.m3u8",
            "/live/demo/audio/index.m3u8",
        ],
    );
    // The same bytes.
    let playlist = get(origin.http, "/live/demo/video/index.m3u8")
        .unwrap()
        .text();
    same_last_part(&origin, &edge, &playlist);
    // A blocking reload at the edge wakes on the next part.
    let (msn, part_n, next) = next_part(&playlist);
    let r = get(
        edge.http,
        &format!("/live/demo/video/index.m3u8?_HLS_msn={msn}&_HLS_part={part_n}"),
    )
    .unwrap();
    assert_eq!(r.status, 200);
    // The hinted part is now listed as a part (not only hinted again).
    let text = r.text();
    assert!(
        tags(&text, "#EXT-X-PART:")
            .iter()
            .any(|l| attr(l, "URI") == Some(next.as_str())),
        "{text}"
    );
    // A viewer's position stored at the origin reads back at the edge (both keep it in Redis).
    assert_resume_shared(&origin, &edge, "viewer-9", "demo-vod", "61.25");
    // Everything of the window in Redis expires, and so do resume positions.
    for key in [
        "{s:demo}:meta",
        "{s:demo}:events",
        "{s:demo}:init:0",
        "estuary:resume:viewer-9:demo-vod",
    ] {
        let ttl = cmd(port, &format!("TTL {key}")).unwrap();
        let secs: i64 = ttl.trim().trim_start_matches(':').parse().unwrap();
        assert!(secs > 0, "{key}: {ttl}");
    }

    // The origin dies: the edge keeps serving what Redis holds.
    origin.process.kill();
    let r = get(edge.http, "/live/demo/video/index.m3u8").unwrap();
    assert_eq!(r.status, 200);
    assert!(r.text().contains("#EXTINF"));
    let seg = r
        .text()
        .lines()
        .find(|l| l.ends_with(".m4s") && !l.starts_with('#'))
        .unwrap()
        .to_string();
    assert_eq!(
        get(edge.http, &format!("/live/demo/video/{seg}"))
            .unwrap()
            .status,
        200
    );
}

#[test]
fn redis_restarting_mid_stream_breaks_nothing_and_mirroring_resumes() {
    let port = free_port();
    let redis = Redis::start(port);
    let origin = Server::start(&redis_config(port));
    let edge = Server::edge(&redis_config(port));
    let _publisher = Publisher::rtmp(&origin.rtmp_url(KEY), 90);
    wait_for("the edge live", Duration::from_secs(60), || {
        let r = get(edge.http, "/live/demo/video/index.m3u8").ok()?;
        (r.status == 200).then_some(())
    });
    drop(redis);
    // The origin serves on from memory.
    assert_advances(&origin, NAME);
    std::thread::sleep(Duration::from_secs(2));
    let _redis = Redis::start(port);
    // Mirroring resumes and the edge follows the stream again.
    let before = get(origin.http, "/live/demo/video/index.m3u8")
        .unwrap()
        .text();
    // (msn, part) of a playlist's newest part.
    let newest = |text: &str| -> Option<(u64, u64)> {
        let uri = attr(tags(text, "#EXT-X-PART:").last()?, "URI")?;
        let file = uri.rsplit('/').next()?.strip_suffix(".m4s")?;
        let (msn, part) = file.split_once('.')?;
        Some((msn.parse().ok()?, part.parse().ok()?))
    };
    let last = newest(&before).unwrap();
    wait_for("the edge to catch up", Duration::from_secs(60), || {
        let e = get(edge.http, "/live/demo/video/index.m3u8").ok()?;
        (e.status == 200 && newest(&e.text())? > last).then_some(())
    });
    assert!(origin.log_text().contains("Redis mirror failing"));
    assert!(origin.log_text().contains("Redis mirror back"));
    assert_advances(&origin, NAME);
}

#[test]
fn an_origin_can_leave_viewers_to_the_edges() {
    let port = free_port();
    let _redis = Redis::start(port);
    let origin = Server::start(&format!("{}[http]\nviewers = false\n", redis_config(port)));
    let edge = Server::edge(&redis_config(port));
    let _publisher = Publisher::rtmp(&origin.rtmp_url(KEY), 30);
    wait_for("the stream at the edge", Duration::from_secs(60), || {
        let r = get(edge.http, "/live/demo/video/index.m3u8").ok()?;
        (r.status == 200 && r.text().contains("#EXT-X-PART")).then_some(())
    });
    let r = get(origin.http, "/live/demo/index.m3u8").unwrap();
    assert_eq!(r.status, 404);
    assert!(r.text().contains("served by the edges"), "{}", r.text());
    assert_eq!(get(origin.http, "/healthz").unwrap().status, 200);
    assert!(api_get(origin.http, "/api/v1/streams")
        .unwrap()
        .text()
        .contains("\"demo\""));
}

#[test]
fn an_edge_without_redis_serves_from_its_origin_coalescing_and_caching() {
    // The origin believes its edge's X-Forwarded-Host (for the MPD's time URL).
    let mut origin =
        Server::start("[hls]\nend_grace = 1.0\n[http]\ntrusted_proxies = [\"127.0.0.1\"]\n");
    let edge = Server::edge(&origins_config(&origin));
    let publisher = Publisher::rtmp(&origin.rtmp_url(KEY), 14);
    wait_for("two segments at the edge", Duration::from_secs(60), || {
        let p = get(edge.http, "/live/demo/video/index.m3u8").ok()?;
        (p.status == 200 && tags(&p.text(), "#EXTINF").len() >= 2).then_some(())
    });
    // The same multivariant playlist and the same bytes as the origin.
    let o = get(origin.http, "/live/demo/index.m3u8").unwrap();
    let e = get(edge.http, "/live/demo/index.m3u8").unwrap();
    assert_eq!((o.status, e.status), (200, 200));
    assert_eq!(o.body, e.body);
    assert_eq!(e.header("access-control-allow-origin"), Some("*"));
    let playlist = get(edge.http, "/live/demo/video/index.m3u8")
        .unwrap()
        .text();
    let (part, e) = same_last_part(&origin, &edge, &playlist);
    assert_eq!(e.header("content-type"), Some("video/mp4"));
    assert!(e.header("cache-control").unwrap().contains("immutable"));

    // Thirty viewers block on the next part at once: one request reaches the origin.
    let before = upstream_stats(&edge);
    let (msn, p, uri) = next_part(&playlist);
    let answers = all_at_once(
        edge.http,
        &format!("/live/demo/video/index.m3u8?_HLS_msn={msn}&_HLS_part={p}"),
        30,
    );
    let after = upstream_stats(&edge);
    assert!(answers.iter().all(|r| r.status == 200));
    assert!(answers.iter().all(|r| r.body == answers[0].body));
    assert!(
        tags(&answers[0].text(), "#EXT-X-PART:")
            .iter()
            .any(|l| attr(l, "URI") == Some(uri.as_str())),
        "{}",
        answers[0].text()
    );
    assert_eq!(
        counter(&after, "fetches") - counter(&before, "fetches"),
        1,
        "{before} -> {after}"
    );
    assert_eq!(
        counter(&after, "coalesced") + counter(&after, "cache_hits")
            - counter(&before, "coalesced")
            - counter(&before, "cache_hits"),
        29
    );
    // ... and on the part after it (a preload hint: the origin answers when it is complete).
    let playlist = answers[0].text();
    let (_, _, hinted) = next_part(&playlist);
    let before = upstream_stats(&edge);
    let parts = all_at_once(edge.http, &format!("/live/demo/video/{hinted}"), 30);
    let after = upstream_stats(&edge);
    assert!(parts.iter().all(|r| r.status == 200 && !r.body.is_empty()));
    assert!(parts.iter().all(|r| r.body == parts[0].body));
    assert_eq!(counter(&after, "fetches") - counter(&before, "fetches"), 1);
    assert_eq!(
        get(origin.http, &format!("/live/demo/video/{hinted}"))
            .unwrap()
            .body,
        parts[0].body
    );
    assert!(counter(&after, "coalesced") > counter(&before, "coalesced"));
    // A made-up query parameter does not get past the cache.
    let before = upstream_stats(&edge);
    let r = get(edge.http, &format!("/live/demo/video/{hinted}?nocache=123")).unwrap();
    assert_eq!(r.body, parts[0].body);
    assert_eq!(
        counter(&upstream_stats(&edge), "fetches"),
        counter(&before, "fetches")
    );

    // The MPD names the edge's own time endpoint.
    let mpd = get(edge.http, "/live/demo/manifest.mpd").unwrap();
    assert_eq!(mpd.status, 200);
    assert!(
        mpd.header("vary")
            .unwrap_or("")
            .contains("X-Forwarded-Host"),
        "a shared cache keys the MPD by the host it names"
    );
    assert!(
        mpd.text()
            .contains(&format!("http://127.0.0.1:{}/api/v1/time", edge.http)),
        "{}",
        mpd.text()
    );

    // Unknown streams are the origin's 404, not cached.
    assert_eq!(get(edge.http, "/live/nope/index.m3u8").unwrap().status, 404);

    // The archive is the origin's; the edge serves it too.
    let (ok, _) = publisher.wait(Duration::from_secs(60));
    assert!(ok);
    let list = wait_for(
        "the archive listed at the edge",
        Duration::from_secs(60),
        || {
            let r = api_get(edge.http, "/api/v1/vod").ok()?;
            let v: serde_json::Value = serde_json::from_str(&r.text()).ok()?;
            let a = v["archives"].as_array()?.first()?.clone();
            (!a["ended"].is_null()).then_some(a)
        },
    );
    let id = list["id"].as_str().unwrap();
    let vod = get(edge.http, &format!("/vod/{id}/index.m3u8")).unwrap();
    assert_eq!(vod.status, 200);
    let media = vod
        .text()
        .lines()
        .find(|l| !l.starts_with('#') && l.ends_with(".m3u8"))
        .unwrap()
        .to_string();
    let media_pl = get(edge.http, &format!("/vod/{id}/{media}"))
        .unwrap()
        .text();
    assert!(media_pl.contains("#EXT-X-ENDLIST"), "{media_pl}");
    let rendition = media.split('/').next().unwrap();
    let seg = media_pl
        .lines()
        .find(|l| !l.starts_with('#') && l.ends_with(".m4s"))
        .unwrap();
    let path = format!("/vod/{id}/{rendition}/{seg}");
    let e = get(edge.http, &path).unwrap();
    assert_eq!(e.status, 200);
    assert_eq!(e.body, get(origin.http, &path).unwrap().body);

    // The origin dies: what the edge cached is still served; the rest is a clear 502.
    origin.process.kill();
    let e = get(edge.http, &format!("/live/demo/video/{part}")).unwrap();
    assert_eq!(e.status, 200);
    assert_eq!(get(edge.http, &path).unwrap().status, 200);
    assert_eq!(
        get(edge.http, "/live/other/index.m3u8").unwrap().status,
        502
    );
}

#[test]
fn with_redis_gone_an_edge_falls_back_to_its_origin_and_back() {
    let port = free_port();
    let redis = Redis::start(port);
    let origin = Server::start(&redis_config(port));
    let edge = Server::edge(&format!(
        "{}{}",
        redis_config(port),
        origins_config(&origin)
    ));
    let _publisher = Publisher::rtmp(&origin.rtmp_url(KEY), 120);
    // From Redis: live at the edge and no request to the origin.
    wait_for("the edge live from Redis", Duration::from_secs(60), || {
        let r = get(edge.http, "/live/demo/video/index.m3u8").ok()?;
        let from_redis = api_get(edge.http, "/api/v1/streams")
            .ok()?
            .text()
            .contains("\"demo\"");
        (r.status == 200 && from_redis).then_some(())
    });
    let before = counter(&upstream_stats(&edge), "fetches");
    assert_advances_at(edge.http);
    assert_eq!(counter(&upstream_stats(&edge), "fetches"), before);

    // Redis goes away: the edge serves the live stream from the origin.
    drop(redis);
    wait_for("the edge to fall back", Duration::from_secs(60), || {
        let from_redis = api_get(edge.http, "/api/v1/streams")
            .ok()?
            .text()
            .contains("\"demo\"");
        (!from_redis).then_some(())
    });
    assert_advances_at(edge.http);
    assert!(counter(&upstream_stats(&edge), "fetches") > before);

    // Redis is back: the edge follows the stream from Redis again.
    let _redis = Redis::start(port);
    wait_for("the edge back on Redis", Duration::from_secs(60), || {
        let from_redis = api_get(edge.http, "/api/v1/streams")
            .ok()?
            .text()
            .contains("\"demo\"");
        from_redis.then_some(())
    });
    let before = counter(&upstream_stats(&edge), "fetches");
    assert_advances_at(edge.http);
    assert_eq!(counter(&upstream_stats(&edge), "fetches"), before);
}

/// The edge's video playlist gains parts.
fn assert_advances_at(port: u16) {
    let last = |port| {
        let r = get(port, "/live/demo/video/index.m3u8").ok()?;
        (r.status == 200).then_some(())?;
        tags(&r.text(), "#EXT-X-PART:")
            .last()
            .map(|l| l.to_string())
    };
    let first = wait_for("a playlist", Duration::from_secs(30), || last(port));
    wait_for("the playlist to advance", Duration::from_secs(30), || {
        last(port).filter(|l| *l != first).map(|_| ())
    });
}

/// Three Redis Cluster masters on free ports (each with its bus on port + 10000).
struct Cluster {
    ports: Vec<u16>,
    _nodes: Vec<Redis>,
    _dir: TempDir,
}

impl Cluster {
    fn start() -> Cluster {
        let dir = TempDir::new("cluster");
        let mut ports = Vec::new();
        while ports.len() < 3 {
            let p = free_port();
            let bus_free =
                p < 55_000 && std::net::TcpListener::bind(("127.0.0.1", p + 10_000)).is_ok();
            if bus_free && !ports.contains(&p) {
                ports.push(p);
            }
        }
        let nodes: Vec<Redis> = ports
            .iter()
            .map(|p| {
                let conf = dir.0.join(format!("nodes-{p}.conf"));
                Redis::start_args(
                    *p,
                    &[
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        conf.to_str().unwrap(),
                        "--cluster-node-timeout",
                        "5000",
                        "--dir",
                        dir.0.to_str().unwrap(),
                    ],
                )
            })
            .collect();
        let addrs: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        let out = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addrs)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .expect("redis-cli (scripts/test.sh installs redis-server, which has it)");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
        for p in &ports {
            wait_for("the cluster ready", Duration::from_secs(60), || {
                cmd(*p, "CLUSTER INFO")
                    .filter(|r| r.contains("cluster_state:ok"))
                    .map(|_| ())
            });
        }
        Cluster {
            ports,
            _nodes: nodes,
            _dir: dir,
        }
    }

    fn config(&self, seed: usize) -> String {
        format!(
            "[redis]\nurl = \"redis://127.0.0.1:{}\"\ncluster = true\n",
            self.ports[seed]
        )
    }
}

#[test]
fn an_edge_serves_through_a_redis_cluster() {
    let cluster = Cluster::start();
    let origin = Server::start(&cluster.config(0));
    let edge = Server::edge(&cluster.config(2));
    let _publisher = Publisher::rtmp(&origin.rtmp_url(KEY), 60);
    two_segments(&origin);
    same_playlists(
        &origin,
        &edge,
        &["/live/demo/index.m3u8", "/live/demo/video/index.m3u8"],
    );
    // A stream's keys share one slot, so one node holds them all (the others redirect).
    let holders: Vec<u16> = cluster
        .ports
        .iter()
        .copied()
        .filter(|p| cmd(*p, "EXISTS {s:demo}:events").is_some_and(|r| r.starts_with(":1")))
        .collect();
    assert_eq!(holders.len(), 1, "{holders:?}");
    let holder = holders[0];
    for key in ["{s:demo}:meta", "{s:demo}:init:0", "{s:demo}:init:1"] {
        let r = cmd(holder, &format!("EXISTS {key}")).unwrap();
        assert!(r.starts_with(":1"), "{key}: {r}");
    }
    let other = cluster.ports.iter().find(|p| **p != holder).unwrap();
    assert!(cmd(*other, "EXISTS {s:demo}:meta")
        .unwrap()
        .starts_with("-MOVED"));
    // A blocking reload at the edge wakes on the next part, through the cluster.
    let playlist = get(edge.http, "/live/demo/video/index.m3u8")
        .unwrap()
        .text();
    let (msn, p, uri) = next_part(&playlist);
    let r = get(
        edge.http,
        &format!("/live/demo/video/index.m3u8?_HLS_msn={msn}&_HLS_part={p}"),
    )
    .unwrap();
    assert_eq!(r.status, 200);
    assert!(tags(&r.text(), "#EXT-X-PART:")
        .iter()
        .any(|l| attr(l, "URI") == Some(uri.as_str())));
    let o = get(origin.http, &format!("/live/demo/video/{uri}")).unwrap();
    let e = get(edge.http, &format!("/live/demo/video/{uri}")).unwrap();
    assert_eq!((o.status, e.status), (200, 200));
    assert_eq!(o.body, e.body);
    // Resume positions go through the cluster too.
    assert_resume_shared(&origin, &edge, "viewer-3", "demo", "12.5");
}

/// Whether the edge holds a replica of `demo` (its stream API lists what it holds).
fn replicated(edge: &Server) -> bool {
    api_get(edge.http, "/api/v1/streams")
        .map(|r| r.text().contains("\"demo\""))
        .unwrap_or(false)
}

#[test]
fn an_edge_replays_only_the_streams_its_viewers_watch() {
    let port = free_port();
    let _redis = Redis::start(port);
    let origin = Server::start(&redis_config(port));
    let edge = Server::edge(&format!("{}[edge]\nidle_secs = 3\n", redis_config(port)));
    let _publisher = Publisher::rtmp(&origin.rtmp_url(KEY), 60);
    wait_for("the stream in Redis", Duration::from_secs(60), || {
        cmd(port, "EXISTS {s:demo}:events")
            .filter(|r| r.starts_with(":1"))
            .map(|_| ())
    });
    // Nobody asked: the edge does not hold it.
    std::thread::sleep(Duration::from_secs(2));
    assert!(!replicated(&edge));
    // The first viewer's request opens the replica and is answered from it.
    let r = get(edge.http, "/live/demo/video/index.m3u8").unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("#EXT-X-PART:"), "{}", r.text());
    assert!(replicated(&edge));
    // Nobody watches any more: dropped after idle_secs.
    wait_for("the idle replica dropped", Duration::from_secs(30), || {
        (!replicated(&edge)).then_some(())
    });
    // Unknown streams are answered at once.
    let t = std::time::Instant::now();
    assert_eq!(get(edge.http, "/live/nope/index.m3u8").unwrap().status, 404);
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    // And a viewer coming back opens it again.
    assert_eq!(get(edge.http, "/live/demo/index.m3u8").unwrap().status, 200);
}

/// Edge → origin over HTTPS: an edge that trusts the origin's CA (`[edge] origin_ca`) fetches
/// from it; one that does not refuses the origin's certificate and serves nothing of it.
#[test]
fn an_edge_fetches_from_an_https_origin_whose_certificate_it_verifies() {
    let dir = TempDir::new("origin-ca");
    let (ca, cert, key) = ca_signed_cert(&dir);
    // Over TLS: ready when its port takes connections (the health check speaks plain HTTP).
    let origin = Estuary::serve()
        .config(&format!(
            "[http]\ntls_cert = \"{}\"\ntls_key = \"{}\"\n",
            cert.display(),
            key.display()
        ))
        .unchecked()
        .start();
    let _publisher = Publisher::rtmp(&origin.rtmp_url(KEY), 60);
    let origins = format!(
        "[edge]\norigins = [\"https://127.0.0.1:{}\"]\n",
        origin.http
    );
    let edge = Server::edge(&format!("{origins}origin_ca = \"{}\"\n", ca.display()));
    wait_for(
        "the stream through the edge",
        Duration::from_secs(60),
        || {
            get(edge.http, "/live/demo/video/index.m3u8")
                .ok()
                .filter(|r| r.status == 200 && r.text().contains("#EXTINF"))
        },
    );
    assert!(counter(&upstream_stats(&edge), "fetches") >= 1);
    let stranger = Server::edge(&origins);
    let r = get(stranger.http, "/live/demo/video/index.m3u8").unwrap();
    assert!(
        r.status >= 500,
        "an origin it cannot verify: {} {}",
        r.status,
        r.text()
    );
    assert_eq!(counter(&upstream_stats(&stranger), "failures"), 1);
}

/// Redis over TLS with a password: the origin mirrors into `rediss://` (its CA given, the
/// password kept out of the URL) and an edge serves the stream from there; the password
/// appears in no log line.
#[test]
fn origin_and_edge_use_redis_over_tls_with_a_password() {
    let dir = TempDir::new("redis-tls");
    let (ca, cert, key) = ca_signed_cert(&dir);
    let (plain, tls) = (free_port(), free_port());
    let password = "redis-password-0123456789";
    let mut child = Command::new("redis-server")
        .args(["--port", &plain.to_string(), "--tls-port", &tls.to_string()])
        .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .arg("--tls-cert-file")
        .arg(&cert)
        .arg("--tls-key-file")
        .arg(&key)
        .arg("--tls-ca-cert-file")
        .arg(&ca)
        .args(["--tls-auth-clients", "no", "--requirepass", password])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("redis-server must be installed");
    wait_for("redis-server over TLS", Duration::from_secs(30), || {
        std::net::TcpStream::connect(("127.0.0.1", tls)).ok()
    });
    let redis = format!(
        "[redis]\nurl = \"rediss://127.0.0.1:{tls}\"\npassword = \"{password}\"\nca = \"{}\"\n",
        ca.display()
    );
    let origin = Server::start(&redis);
    let edge = Server::edge(&redis);
    let _publisher = Publisher::rtmp(&origin.rtmp_url(KEY), 60);
    wait_for(
        "the stream at the edge, from Redis",
        Duration::from_secs(60),
        || {
            get(edge.http, "/live/demo/video/index.m3u8")
                .ok()
                .filter(|r| r.status == 200 && r.text().contains("#EXTINF"))
        },
    );
    // Over plain TCP, Redis holds the mirrored keys (and wants the password).
    assert!(cmd(plain, "KEYS *").unwrap_or_default().contains("NOAUTH"));
    let keys = {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", plain)).unwrap();
        s.write_all(format!("AUTH {password}\r\nKEYS *demo*\r\n").as_bytes())
            .unwrap();
        std::thread::sleep(Duration::from_millis(300));
        let mut buf = [0u8; 4096];
        let n = s.read(&mut buf).unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    assert!(keys.contains("{s:demo}"), "{keys}");
    for log in [origin.log_text(), edge.log_text()] {
        assert!(!log.contains(password), "the password in a log: {log}");
        assert!(log.contains("rediss://127.0.0.1"), "{log}");
    }
    let _ = child.kill();
    let _ = child.wait();
}
