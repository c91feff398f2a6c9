//! The streams an origin takes: `[[streams]]` from the config, or, with none, one stream whose
//! key is made on first start and kept in the data directory (publishing is never
//! unauthenticated). And the start-up banner that tells a user what to type into OBS.

use std::net::SocketAddr;

use anyhow::Context;
use ingest::StreamKeys;
use tracing::{info, warn};

use crate::config::Config;

pub struct Stream {
    pub name: String,
    pub key: String,
    /// Made on first start (so the banner may show it).
    pub generated: bool,
}

/// The configured streams, or the one kept in the data directory.
pub fn entries(config: &Config) -> anyhow::Result<Vec<Stream>> {
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

pub fn keys(streams: &[Stream]) -> StreamKeys {
    StreamKeys::new(streams.iter().map(|s| (s.key.clone(), s.name.clone())))
}

/// Where to publish and play each stream, as a user types it.
pub fn banner(
    config: &Config,
    streams: &[Stream],
    http: SocketAddr,
    rtmp: SocketAddr,
    rtmps: Option<SocketAddr>,
    tls: bool,
) {
    let scheme = if tls { "https" } else { "http" };
    let host = config.server.public_host.as_deref().unwrap_or("localhost");
    if let Some(rtmps) = rtmps {
        info!(
            "RTMPS: OBS Server rtmps://{host}:{}/{} with the same stream keys",
            rtmps.port(),
            config.rtmp.app
        );
    }
    for p in &config.pull {
        info!(stream = %p.name, "pulling an RTSP camera; play {scheme}://{host}:{}/live/{}/index.m3u8", http.port(), p.name);
    }
    for s in streams {
        let key = if s.generated { s.key.as_str() } else { "KEY" };
        info!(
            "stream {:?}: OBS Server rtmp://{host}:{}/{}  Stream Key {}  |  SRT srt://{host}:{}?streamid=publish:{key}  |  WHIP {scheme}://{host}:{}/whip (Bearer {key})  |  play {scheme}://{host}:{}/live/{}/index.m3u8",
            s.name,
            rtmp.port(),
            config.rtmp.app,
            if s.generated { s.key.as_str() } else { "(from the config)" },
            config.srt.listen.port(),
            http.port(),
            http.port(),
            s.name
        );
    }
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
