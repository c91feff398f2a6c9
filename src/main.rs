//! `estuary`: the server binary. Loads the config, starts RTMP ingest, the packager and the
//! HTTP service around one [`media::Hub`], and shuts them down on Ctrl-C / SIGTERM.

mod config;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use config::Config;
use ingest::StreamKeys;
use media::Hub;
use packager::{PackagerConfig, WindowConfig, Windows};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

const USAGE: &str = "\
estuary: live-streaming ingest server

USAGE:
    estuary serve [--config FILE]   run an origin (embedded defaults without --config)
    estuary edge --config FILE      run an edge node
    estuary --version

Publish with OBS: Server rtmp://HOST/live, Stream Key = a key from [[streams]].
Play: http://HOST:8080/live/NAME/index.m3u8
Logs: RUST_LOG=debug for more detail.";

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut config_path: Option<PathBuf> = None;
    let mut command: Option<&str> = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-h" | "--help" | "help" => {
                println!("{USAGE}");
                return Ok(());
            }
            "-V" | "--version" => {
                println!("estuary {}", env!("CARGO_PKG_VERSION"));
                return Ok(());
            }
            "-c" | "--config" => {
                config_path = Some(it.next().context("--config needs a file")?.into())
            }
            "serve" | "edge" if command.is_none() => command = Some(a.as_str()),
            other => bail!("unexpected argument {other:?}\n\n{USAGE}"),
        }
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let edge = match command {
        Some("serve") => false,
        Some("edge") => true,
        _ => bail!("no command given\n\n{USAGE}"),
    };
    let config = match &config_path {
        Some(p) => Config::load(p)?,
        None => Config::default(),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    if edge {
        return runtime.block_on(run_edge(config, config_path));
    }
    runtime.block_on(serve(config, config_path))
}

/// `estuary edge`: viewers' routes only, from the windows the origin mirrors into Redis, and
/// from the origins over HTTP (cached, coalesced) for whatever Redis does not give.
async fn run_edge(config: Config, path: Option<PathBuf>) -> anyhow::Result<()> {
    let url = config.redis.url.clone();
    let redis = config.redis_client()?;
    packager::shm::set_enabled(config.sendfile());
    if url.is_none()
        && config.edge.origins.is_empty()
        && config.archive.url.is_none()
        && config.archive.dir.is_none()
    {
        bail!(
            "an edge serves what the origin mirrors into Redis, what origins answer over HTTP, or \
             archives in shared storage: set [redis] url, [edge] origins or [archive] url/dir in {}",
            path.map(|p| p.display().to_string())
                .unwrap_or_else(|| "the config".into())
        );
    }
    let windows = Windows::new();
    let cancel = CancellationToken::new();
    let listener = bind_http(config.http.listen)
        .with_context(|| format!("binding HTTP on {}", config.http.listen))?;
    let http_addr = listener.local_addr()?;
    let mut service = edge::Service::new(windows.clone(), config.http_config(true))
        .with_resume(resume_store(&config, redis.as_ref()));
    if let Some((store, at)) = config.edge_archive_store()? {
        info!(at, "serving VOD archives from shared storage");
        service = service.with_archive(store);
    }
    let fallback = !config.edge.origins.is_empty();
    if fallback {
        let upstream =
            edge::upstream::Upstream::new(&config.edge.origins, config.edge.cache_mb << 20)
                .context("[edge] origins")?;
        service = service.with_upstream(upstream);
    }
    let tls = config.tls_acceptor()?;
    if let Some(client) = redis {
        let demand = edge::store::redis::Demand::new(
            Config::secs(config.edge.idle_secs),
            config.edge.replica_mb << 20,
        );
        service = service.with_demand(demand.clone());
        tokio::spawn(edge::store::redis::replay_all(
            windows, client, demand, fallback,
        ));
    }
    let http = tokio::spawn(edge::serve_tls(listener, tls, service, cancel.clone()));
    info!(
        %http_addr,
        redis = url.as_deref().unwrap_or("(none)"),
        origins = ?config.edge.origins,
        "edge node listening (LL-HLS and LL-DASH)"
    );
    shutdown_signal().await;
    cancel.cancel();
    let _ = http.await;
    Ok(())
}

async fn serve(config: Config, path: Option<PathBuf>) -> anyhow::Result<()> {
    match &path {
        Some(p) => info!(config = %p.display(), "starting"),
        None => info!("starting with embedded defaults (no --config)"),
    }
    let redis = config.redis_client()?;
    packager::shm::set_enabled(config.sendfile());
    let streams = stream_entries(&config)?;
    let keys = Arc::new(StreamKeys::new(
        streams.iter().map(|s| (s.key.clone(), s.name.clone())),
    ));

    let hub = Hub::new();
    hub.set_reconnect_grace(Config::secs(
        config.server.reconnect_grace_secs.unwrap_or(15.0),
    ));
    let windows = Windows::new();
    let (archive, archive_at) = config.archive_store()?.unzip();
    let packager_config = PackagerConfig {
        window: WindowConfig {
            segments: config.hls.window_segments,
            segment_target: Config::secs(config.hls.segment_target),
            part_target: Config::secs(config.hls.part_target),
        },
        end_grace: Config::secs(config.hls.end_grace),
        archive: archive.clone(),
        ..Default::default()
    };
    if let (Some(store), Some(at)) = (archive.clone(), &archive_at) {
        info!(
            at,
            retention_hours = config.archive.retention_hours,
            "archiving every stream as VOD (/vod/ID/index.m3u8, listed at /api/v1/vod)"
        );
        let keep = Config::secs(config.archive.retention_hours * 3600.0);
        tokio::spawn(async move {
            loop {
                let removed = packager::archive::prune(store.as_ref(), keep).await;
                if removed > 0 {
                    info!(removed, "old archives deleted (retention)");
                }
                tokio::time::sleep(Duration::from_secs(600)).await;
            }
        });
    }
    let transcode_config = config.transcode_config();
    let transcoding = config.transcode.enabled
        && match transcode::available(&transcode_config) {
            Ok(()) => {
                let rungs: Vec<&str> = transcode_config
                    .ladder
                    .iter()
                    .map(|r| r.name.as_str())
                    .collect();
                info!(ladder = ?rungs, encoder = %transcode_config.encoder, preset = %transcode_config.preset, "transcoding every stream into the ladder (rungs at or above the source's height are skipped)");
                true
            }
            Err(e) => {
                warn!(error = %e, "transcoder unavailable; streams are served as they come");
                false
            }
        };
    let untranscoded: std::collections::HashSet<String> = config
        .streams
        .iter()
        .filter(|s| !s.transcode)
        .map(|s| s.name.clone())
        .chain(
            config
                .pull
                .iter()
                .filter(|p| !p.transcode)
                .map(|p| p.name.clone()),
        )
        .collect();
    {
        let windows = windows.clone();
        hub.on_publish(move |a| {
            let package = {
                let windows = windows.clone();
                let packager_config = packager_config.clone();
                let runtime = tokio::runtime::Handle::current();
                move |reader: media::BroadcastReader| {
                    runtime.spawn(packager::run(
                        reader,
                        windows.clone(),
                        packager_config.clone(),
                    ));
                }
            };
            let has_video = a
                .reader
                .tracks()
                .iter()
                .any(|t| t.kind() == media::TrackKind::Video);
            if transcoding && has_video && !untranscoded.contains(&a.name) {
                if let Err(e) =
                    transcode::start(a.reader, transcode_config.clone(), Arc::new(package))
                {
                    warn!(stream = %a.name, error = %e, "could not start the transcoder");
                }
            } else {
                package(a.reader);
            }
        });
    }

    if let Some(client) = redis.clone() {
        tokio::spawn(edge::store::redis::mirror_all(windows.clone(), client));
    }
    let cancel = CancellationToken::new();
    let http_listener = bind_http(config.http.listen)
        .with_context(|| format!("binding HTTP on {}", config.http.listen))?;
    let rtmp_listener = tokio::net::TcpListener::bind(config.rtmp.listen)
        .await
        .with_context(|| format!("binding RTMP on {}", config.rtmp.listen))?;
    let srt_bound = ingest::srt::conn::bind(
        config.srt.listen,
        Duration::from_millis(config.srt.latency_ms),
    )
    .await
    .with_context(|| format!("binding SRT on {} (udp)", config.srt.listen))?;
    let http_addr = http_listener.local_addr()?;
    let rtmp_addr = rtmp_listener.local_addr()?;

    let mut service = edge::Service::new(windows.clone(), config.http_config(config.http.viewers));
    if let Some(store) = archive {
        service = service.with_archive(store);
    }
    if let Err(e) = std::fs::create_dir_all(config.data_dir()) {
        warn!(dir = %config.data_dir().display(), error = %e, "cannot create the data directory; resume positions will not be kept");
    }
    service = service.with_resume(resume_store(&config, redis.as_ref()));
    if config.whip.enabled {
        let whip = ingest::whip::Whip::start(
            ingest::whip::WhipConfig {
                keys: keys.clone(),
                hub: hub.clone(),
                listen: config.whip.listen,
                announce: config.whip.announce.clone(),
                connect_timeout: Duration::from_secs(config.whip.connect_timeout_secs.max(1)),
                idle_timeout: Duration::from_secs(config.whip.idle_timeout_secs.max(1)),
                max_sessions: config.whip.max_sessions,
                keyframe_interval: Config::secs(config.hls.segment_target),
            },
            cancel.clone(),
        )
        .await
        .with_context(|| format!("binding WHIP media on {} (udp)", config.whip.listen))?;
        service = service.with_whip(whip);
    }
    let tls = config.tls_acceptor()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let http = tokio::spawn(edge::serve_tls(http_listener, tls, service, cancel.clone()));
    let srt = tokio::spawn(ingest::srt::serve(
        srt_bound,
        ingest::srt::SrtConfig {
            keys: keys.clone(),
            hub: hub.clone(),
            latency: Duration::from_millis(config.srt.latency_ms),
            passphrase: config.srt.passphrase.clone(),
            idle_timeout: Duration::from_secs(config.srt.idle_timeout_secs.max(1)),
        },
        cancel.clone(),
    ));
    let rtmp = tokio::spawn(ingest::rtmp::serve(
        rtmp_listener,
        ingest::rtmp::RtmpConfig {
            keys,
            hub: hub.clone(),
            app: config.rtmp.app.clone(),
            idle_timeout: Duration::from_secs(config.rtmp.idle_timeout_secs.max(1)),
            max_connections: config.rtmp.max_connections,
        },
        cancel.clone(),
    ));
    let mut pulls = Vec::new();
    for p in &config.pull {
        info!(stream = %p.name, "pulling an RTSP camera; play {scheme}://{}:{}/live/{}/index.m3u8", config.server.public_host.as_deref().unwrap_or("localhost"), http_addr.port(), p.name);
        pulls.push(tokio::spawn(ingest::rtsp::run(
            ingest::rtsp::PullConfig {
                name: p.name.clone(),
                url: p.url.clone(),
                username: p.username.clone(),
                password: p.password.clone(),
                transport: match p.transport.as_str() {
                    "udp" => ingest::rtsp::RtspTransport::Udp,
                    "tcp" => ingest::rtsp::RtspTransport::Tcp,
                    _ => ingest::rtsp::RtspTransport::Auto,
                },
                reconnect_grace: Duration::from_secs(p.reconnect_grace_secs),
            },
            hub.clone(),
            cancel.clone(),
        )));
    }
    info!(%http_addr, %scheme, "HTTP listening (LL-HLS under /live/NAME/index.m3u8; HTTP/1.1 and HTTP/2)");
    info!(%rtmp_addr, "RTMP listening");
    info!(listen = %config.srt.listen, encrypted = config.srt.passphrase.is_some(), "SRT listening (udp)");

    let host = config
        .server
        .public_host
        .clone()
        .unwrap_or_else(|| "localhost".into());
    for s in &streams {
        let key = if s.generated { s.key.as_str() } else { "KEY" };
        info!(
            "stream {:?}: OBS Server rtmp://{host}:{}/{}  Stream Key {}  |  SRT srt://{host}:{}?streamid=publish:{key}  |  WHIP {scheme}://{host}:{}/whip (Bearer {key})  |  play {scheme}://{host}:{}/live/{}/index.m3u8",
            s.name,
            rtmp_addr.port(),
            config.rtmp.app,
            if s.generated { s.key.as_str() } else { "(from the config)" },
            config.srt.listen.port(),
            http_addr.port(),
            http_addr.port(),
            s.name
        );
    }

    shutdown_signal().await;
    info!("shutting down");
    cancel.cancel();
    let _ = tokio::join!(http, rtmp, srt);
    for p in pulls {
        let _ = p.await;
    }
    info!("stopped");
    Ok(())
}

/// The HTTP listener, with an accept queue long enough for a crowd of viewers (re)connecting
/// at once (the kernel caps it at `net.core.somaxconn`); tokio's default is 1024.
fn bind_http(addr: std::net::SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(8192)
}

/// Viewers' resume positions: in Redis when configured (shared with the edges), else in the
/// data directory.
fn resume_store(
    config: &Config,
    redis: Option<&edge::store::redis::RedisClient>,
) -> edge::resume::ResumeStore {
    match redis {
        Some(client) => edge::resume::ResumeStore::redis(client.clone()),
        None => edge::resume::ResumeStore::open(config.data_dir().join("resume.json")),
    }
}

struct Stream {
    name: String,
    key: String,
    generated: bool,
}

/// The configured streams, or with none configured, one stream whose key is created on first
/// start and kept in the data directory, so publishing is never unauthenticated.
fn stream_entries(config: &Config) -> anyhow::Result<Vec<Stream>> {
    if !config.streams.is_empty() {
        return Ok(config
            .streams
            .iter()
            .map(|s| Stream {
                name: s.name.clone(),
                key: s.key.clone(),
                generated: false,
            })
            .collect());
    }
    let dir = config.data_dir();
    let path = dir.join("stream-key");
    let key = match std::fs::read_to_string(&path) {
        Ok(k) if k.trim().len() >= 8 => {
            info!(file = %path.display(), "no [[streams]] configured; using the stream key kept from an earlier start");
            k.trim().to_string()
        }
        _ => {
            use rand::Rng;
            let key: String = rand::thread_rng()
                .sample_iter(&rand::distributions::Alphanumeric)
                .take(24)
                .map(char::from)
                .collect();
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            write_private(&path, &key).with_context(|| format!("writing {}", path.display()))?;
            warn!(file = %path.display(), "no [[streams]] configured; created a stream key (kept across restarts)");
            key
        }
    };
    Ok(vec![Stream {
        name: "stream".into(),
        key,
        generated: true,
    }])
}

fn write_private(path: &std::path::Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    writeln!(f, "{contents}")
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}
