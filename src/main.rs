//! `estuary`: reads the command line, sets up logging and the runtime, and runs an origin
//! (`serve`) or an edge node (`edge`) until Ctrl-C or SIGTERM. The wiring is in the library
//! half of this crate (`src/lib.rs`).

use std::path::PathBuf;

use anyhow::{bail, Context};
use estuary::config::Config;
use tokio_util::sync::CancellationToken;
use tracing::info;

const USAGE: &str = "\
estuary: live-streaming ingest server

USAGE:
    estuary serve [--config FILE]   run an origin (embedded defaults without --config)
    estuary edge --config FILE      run an edge node
    estuary token                   make an API token and the line for [api] tokens
    estuary healthcheck [URL]       exit 0 when URL (http://127.0.0.1:8080/healthz) answers 200
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
            "token" => {
                let token = estuary::secrets::random(40);
                println!("API token (give it to the API's users; it is not kept anywhere):\n  {token}\nFor the config ([api] tokens):\n  \"{}\"", httpd::access::api::ApiTokens::digest_of(&token));
                return Ok(());
            }
            "healthcheck" => {
                let url = it
                    .next()
                    .map_or("http://127.0.0.1:8080/healthz", String::as_str);
                return healthcheck(url);
            }
            "serve" | "edge" if command.is_none() => command = Some(a.as_str()),
            other => bail!("unexpected argument {other:?}\n\n{USAGE}"),
        }
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                // rustls warns on every client that connects by IP address (an IP in SNI).
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,rustls=error")),
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
    if edge {
        let named = config_path.as_ref().map(|p| format!("in {}", p.display()));
        config
            .edge_sources()
            .with_context(|| named.unwrap_or_else(|| "in the config (--config FILE)".into()))?;
    }
    match &config_path {
        Some(p) => info!(config = %p.display(), "starting"),
        None => info!("starting with embedded defaults (no --config)"),
    }
    // Our TLS is rustls with ring; a dependency also builds aws-lc-rs in, so libraries that
    // ask rustls for its default (the Redis client) need to be told which.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let cancel = CancellationToken::new();
        let stop = cancel.clone();
        tokio::spawn(async move {
            estuary::shutdown::signal().await;
            stop.cancel();
        });
        if edge {
            estuary::edge::run(config, cancel).await
        } else {
            estuary::serve::run(config, cancel).await
        }
    })
}

/// `estuary healthcheck [URL]`: a container's HEALTHCHECK without curl in the image. Plain
/// HTTP/1.1 to `http://HOST:PORT/PATH`; succeeds on a 200 within five seconds.
fn healthcheck(url: &str) -> anyhow::Result<()> {
    use std::io::{Read, Write};
    let rest = url
        .strip_prefix("http://")
        .context("healthcheck: give an http:// URL")?;
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let addr = std::net::ToSocketAddrs::to_socket_addrs(authority)
        .with_context(|| format!("healthcheck: {authority}"))?
        .next()
        .context("healthcheck: no address")?;
    let timeout = std::time::Duration::from_secs(5);
    let mut s = std::net::TcpStream::connect_timeout(&addr, timeout)
        .with_context(|| format!("healthcheck: connecting to {addr}"))?;
    s.set_read_timeout(Some(timeout))?;
    write!(
        s,
        "GET /{path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n"
    )?;
    let mut head = [0u8; 64];
    let n = s.read(&mut head)?;
    let line = String::from_utf8_lossy(&head[..n]);
    if line.starts_with("HTTP/1.1 200") {
        Ok(())
    } else {
        bail!(
            "healthcheck: {url} answered {:?}",
            line.lines().next().unwrap_or("")
        )
    }
}
