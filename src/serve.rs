//! `estuary serve`: an origin, everything on one machine.
//!
//! Wiring, as the data flows: ingest (RTMP, SRT, WHIP, RTSP pulls) publishes into the hub →
//! the [`pipeline`] (transcoder, then a packager per broadcast with its archive writer) → the
//! windows → HTTP, and the Redis mirror when `[redis] url` is set. Finished uploads →
//! [`crate::prepare`] → the archive store → HTTP (`/vod/`).
//!
//! Shutdown, when `cancel` fires: the listeners stop, every publisher is ended (the hub holds
//! nothing back for a reconnect), each transcoder encodes what it was given and ends its
//! renditions, each packager closes its last segments and ends its window at once, each archive
//! writer stores them with the final VOD playlists, each Redis mirror sends the end, and open
//! HTTP responses finish. Every task is on one tracker; [`run`] returns when all are done
//! (or after [`crate::shutdown::SHUTDOWN_LIMIT`]).

use std::sync::Arc;

use anyhow::Context;
use media::Hub;
use packager::Windows;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::config::Config;
use crate::whip::WhipBridge;
use crate::{pipeline, shutdown, streams};

pub async fn run(config: Config, cancel: CancellationToken) -> anyhow::Result<()> {
    let tasks = TaskTracker::new();
    let redis = config.redis_client()?;
    packager::shm::set_enabled(config.sendfile());
    let hub = Hub::new();
    let playback = config.playback()?;
    let (streams, shown) = streams::Streams::open(
        &config,
        playback.clone(),
        hub.clone(),
        config.authorizer()?,
        redis.clone(),
    )
    .await?;
    let auth = streams.authorizer();
    hub.set_reconnect_grace(config.reconnect_grace());
    let windows = Windows::new();

    let catalog = crate::assets::open(&config).await?;
    let (archive, archive_at) = config.archive_store()?.unzip();
    if let (Some(store), Some(at)) = (&archive, &archive_at) {
        info!(
            at,
            retention_hours = config.archive.retention_hours,
            "archiving every stream as VOD (/vod/ID/index.m3u8, listed at /api/v1/vod and /api/v1/assets)"
        );
        crate::assets::bring_in(&catalog, store).await;
        tasks.spawn(pipeline::retention(
            store.clone(),
            catalog.clone(),
            config.retention(),
            cancel.clone(),
        ));
    }
    let hooks = crate::webhooks::Webhooks::start(&config.webhooks, &hub, &tasks, &cancel)?;
    let mut packager_config = config.packager_config(archive.clone());
    // Archives go into the catalog, then to the webhooks' endpoints.
    let recorded = crate::assets::archive_hook(catalog.clone());
    packager_config.on_archived = Some(match hooks.on_archived() {
        Some(webhooks) => packager::OnArchived(Arc::new(move |news| {
            let (recorded, webhooks) = (recorded.clone(), webhooks.clone());
            Box::pin(async move {
                (recorded.0)(news.clone()).await;
                (webhooks.0)(news).await;
            })
        })),
        None => recorded,
    });
    pipeline::start(
        &config,
        &hub,
        &windows,
        packager_config,
        playback.clone(),
        &tasks,
        &cancel,
    );
    let mirror_stats = Arc::new(replica::MirrorStats::default());
    if let Some(client) = redis.clone() {
        tasks.spawn(replica::mirror_all(
            windows.clone(),
            client,
            mirror_stats.clone(),
            tasks.clone(),
            cancel.clone(),
        ));
    }

    let http_listener = httpd::server::bind(config.http.listen)
        .with_context(|| format!("binding HTTP on {}", config.http.listen))?;
    let rtmp_listener = tokio::net::TcpListener::bind(config.rtmp.listen)
        .await
        .with_context(|| format!("binding RTMP on {}", config.rtmp.listen))?;
    let srt_bound = ingest::srt::bind(config.srt.listen, config.srt_latency())
        .await
        .with_context(|| format!("binding SRT on {} (udp)", config.srt.listen))?;
    let rtmps = match config.rtmp.tls_listen {
        Some(addr) => Some((
            tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding RTMPS on {addr}"))?,
            config.rtmps_acceptor()?,
        )),
        None => None,
    };
    let http_addr = http_listener.local_addr()?;
    let rtmp_addr = rtmp_listener.local_addr()?;
    let rtmps_addr = rtmps.as_ref().map(|(l, _)| l.local_addr()).transpose()?;

    let mut service = httpd::Service::new(windows.clone(), config.http_config(config.http.viewers))
        .with_playback(playback)
        .with_api_tokens(config.api_tokens()?)
        .with_admin(streams);
    service = service.with_catalog(catalog.clone(), archive.clone());
    if config.uploads.enabled {
        let (upload_config, dir) = config.uploads();
        let (uploads_store, at) = config.upload_store(&dir)?;
        let files = httpd::upload::disk::Disk::open(dir.clone())
            .with_context(|| format!("the uploads directory {}", dir.display()))?;
        let uploads = httpd::upload::Uploads::new(
            catalog.clone(),
            uploads_store.clone(),
            files,
            upload_config,
            redis.clone(),
        );
        tasks.spawn(uploads.clone().sweep(cancel.clone()));
        info!(at = %at, "taking uploads (direct upload URLs from POST /api/v1/uploads, tus)");
        match (&archive, config.uploads.package) {
            (Some(store), true) => {
                tasks.spawn(crate::prepare::run(
                    catalog.clone(),
                    store.clone(),
                    crate::prepare::Inputs {
                        dir: dir.clone(),
                        uploads: uploads_store,
                        fetcher: config.fetcher(dir.clone())?,
                    },
                    uploads.completed(),
                    cancel.clone(),
                ));
            }
            (None, true) => warn!("uploads are not packaged: packaged uploads go to the archive store, and [archive] is disabled"),
            (_, false) => {}
        }
        service = service.with_uploads(uploads);
    }
    if let Some(store) = archive {
        service = service.with_archive(store);
    }
    if let Err(e) = std::fs::create_dir_all(config.data_dir()) {
        warn!(dir = %config.data_dir().display(), error = %e, "cannot create the data directory; resume positions will not be kept");
    }
    service = service.with_resume(config.resume_store(redis.as_ref()));
    if config.whip.enabled {
        let whip = ingest::whip::Whip::start(
            config.whip_config(auth.clone(), hub.clone()),
            &tasks,
            cancel.clone(),
        )
        .await
        .with_context(|| format!("binding WHIP media on {} (udp)", config.whip.listen))?;
        service = service
            .with_gauges(Arc::new(crate::whip::WhipGauges(whip.clone())))
            .with_whip(WhipBridge(whip));
    }
    if redis.is_some() {
        service = service.with_gauges(Arc::new(MirrorGauges(mirror_stats)));
    }
    let tls = config.tls_acceptor()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    tasks.spawn(httpd::serve_tls(
        http_listener,
        tls,
        service,
        cancel.clone(),
    ));
    tasks.spawn(ingest::srt::serve(
        srt_bound,
        config.srt_config(auth.clone(), hub.clone()),
        cancel.clone(),
    ));
    let rtmp_config = config.rtmp_config(auth, hub.clone());
    if let Some((listener, tls)) = rtmps {
        tasks.spawn(ingest::rtmp::serve(
            listener,
            tls,
            rtmp_config.clone(),
            cancel.clone(),
        ));
    }
    tasks.spawn(ingest::rtmp::serve(
        rtmp_listener,
        None,
        rtmp_config,
        cancel.clone(),
    ));
    for p in &config.pull {
        tasks.spawn(ingest::rtsp::run(
            Config::pull_config(p),
            hub.clone(),
            cancel.clone(),
        ));
    }
    info!(%http_addr, %scheme, "HTTP listening (LL-HLS under /live/NAME/index.m3u8; HTTP/1.1 and HTTP/2)");
    info!(%rtmp_addr, "RTMP listening");
    if let Some(addr) = rtmps_addr {
        info!(rtmps_addr = %addr, "RTMPS listening");
    }
    info!(listen = %config.srt.listen, encrypted = config.srt.passphrase.is_some(), "SRT listening (udp)");
    streams::banner(
        &config,
        &shown,
        http_addr,
        rtmp_addr,
        rtmps_addr,
        scheme == "https",
    );

    cancel.cancelled().await;
    info!("shutting down: ending every stream, then its archive and mirror");
    hub.shut_down();
    shutdown::drain(&tasks).await;
    catalog.close().await;
    Ok(())
}

/// `estuary_redis_mirror_*` for `/metrics`.
struct MirrorGauges(Arc<replica::MirrorStats>);

impl httpd::metrics::Gauges for MirrorGauges {
    fn read(&self) -> Vec<(&'static str, &'static str, bool, f64)> {
        use std::sync::atomic::Ordering::Relaxed;
        let s = &self.0;
        vec![
            (
                "estuary_redis_mirror_events",
                "Events the origin wrote to Redis",
                true,
                s.sent.load(Relaxed) as f64,
            ),
            (
                "estuary_redis_mirror_failures",
                "Redis writes that failed (each followed by a reconnect)",
                true,
                s.failed.load(Relaxed) as f64,
            ),
            (
                "estuary_redis_mirror_last_write_seconds",
                "How long the last write to Redis took, from the window's change",
                false,
                s.last_write_us.load(Relaxed) as f64 / 1e6,
            ),
        ]
    }
}
