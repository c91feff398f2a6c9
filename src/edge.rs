//! `estuary edge`: viewers' routes only, from the windows the origin mirrors into Redis
//! (replayed while viewers ask for them), and from the origins over HTTP (cached, coalesced)
//! for whatever Redis does not give. Shutdown as [`crate::serve`]'s: every task on one
//! tracker, waited for.

use anyhow::Context;
use packager::Windows;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::info;

use crate::config::Config;
use crate::shutdown;

/// Runs an edge with `config` (checked with [`Config::edge_sources`]) until `cancel`.
pub async fn run(config: Config, cancel: CancellationToken) -> anyhow::Result<()> {
    let tasks = TaskTracker::new();
    let redis = config.redis_client()?;
    packager::shm::set_enabled(config.sendfile());
    let windows = Windows::new();
    let listener = httpd::server::bind(config.http.listen)
        .with_context(|| format!("binding HTTP on {}", config.http.listen))?;
    let http_addr = listener.local_addr()?;
    let mut service = httpd::Service::new(windows.clone(), config.http_config(true))
        .with_resume(config.resume_store(redis.as_ref()))
        .with_playback(config.playback()?)
        .with_api_tokens(config.api_tokens()?);
    if let Some((store, at)) = config.edge_archive_store()? {
        info!(at, "serving VOD archives from shared storage");
        service = service.with_archive(store);
    }
    let upstream = config.upstream()?;
    let fallback = upstream.is_some();
    if let Some(upstream) = upstream {
        service = service.with_upstream(upstream);
    }
    if let Some(client) = redis {
        let demand = config.demand();
        service = service.with_demand(demand.clone());
        tasks.spawn(replica::replay_all(
            windows,
            client,
            demand,
            fallback,
            tasks.clone(),
            cancel.clone(),
        ));
    }
    let tls = config.tls_acceptor()?;
    tasks.spawn(httpd::serve_tls(listener, tls, service, cancel.clone()));
    info!(
        %http_addr,
        redis = config.redis.url.as_deref().map(replica::client::redacted).unwrap_or_else(|| "(none)".into()),
        origins = ?config.edge.origins,
        "edge node listening (LL-HLS and LL-DASH)"
    );
    cancel.cancelled().await;
    info!("shutting down");
    shutdown::drain(&tasks).await;
    Ok(())
}
