//! `estuary.toml`: every key, its default and its meaning are in `config/estuary.toml`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use serde::Deserialize;

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub server: ServerSection,
    #[serde(default)]
    pub http: HttpSection,
    #[serde(default)]
    pub rtmp: RtmpSection,
    #[serde(default)]
    pub srt: SrtSection,
    #[serde(default)]
    pub whip: WhipSection,
    #[serde(default)]
    pub hls: HlsSection,
    #[serde(default)]
    pub transcode: TranscodeSection,
    #[serde(default)]
    pub archive: ArchiveSection,
    #[serde(default)]
    pub redis: RedisSection,
    #[serde(default)]
    pub edge: EdgeSection,
    #[serde(default)]
    pub ladder: Vec<LadderRung>,
    #[serde(default)]
    pub streams: Vec<StreamEntry>,
    #[serde(default)]
    pub pull: Vec<PullEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TranscodeSection {
    /// Transcode every stream into the ladder (per stream: `transcode = false`).
    pub enabled: bool,
    /// `libx264`, or a hardware encoder FFmpeg has here (`h264_nvenc`).
    pub encoder: String,
    pub preset: String,
    pub tune: String,
}

impl Default for TranscodeSection {
    fn default() -> Self {
        Self {
            enabled: true,
            encoder: "libx264".into(),
            preset: "veryfast".into(),
            tune: "zerolatency".into(),
        }
    }
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct RedisSection {
    /// `redis://host:6379`: the origin mirrors live windows there; edges serve from there.
    /// With `cluster`, seed nodes of a Redis Cluster, separated by commas.
    pub url: Option<String>,
    pub cluster: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EdgeSection {
    /// Origins' base URLs (`http://origin:8080`): what an edge cannot serve from Redis (Redis
    /// unreachable, a stream not mirrored, VOD) it fetches from them, cached and coalesced.
    pub origins: Vec<String>,
    /// Megabytes the edge's cache of origin responses may hold.
    pub cache_mb: usize,
    /// Megabytes the live windows replayed from Redis may hold together.
    pub replica_mb: usize,
    /// Seconds a stream nobody asked this edge for stays replayed from Redis.
    pub idle_secs: f64,
}

impl Default for EdgeSection {
    fn default() -> Self {
        Self {
            origins: Vec::new(),
            cache_mb: 256,
            replica_mb: 1024,
            idle_secs: 60.0,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ArchiveSection {
    /// Archive every live stream as VOD.
    pub enabled: bool,
    /// Where (default: `archive/` in the data directory).
    pub dir: Option<PathBuf>,
    /// Object storage instead of `dir`: `s3://BUCKET` or `s3://BUCKET/PREFIX`.
    pub url: Option<String>,
    /// S3-compatible endpoint (MinIO, Ceph, R2...); none for AWS itself.
    pub endpoint: Option<String>,
    pub region: Option<String>,
    /// Credentials; by default from `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` (and the other
    /// standard AWS variables).
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    /// Archives that ended longer ago than this are deleted.
    pub retention_hours: f64,
}

impl Default for ArchiveSection {
    fn default() -> Self {
        Self {
            enabled: true,
            dir: None,
            url: None,
            endpoint: None,
            region: None,
            access_key_id: None,
            secret_access_key: None,
            retention_hours: 168.0,
        }
    }
}

/// One `[[ladder]]` rung.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct LadderRung {
    pub name: String,
    /// Pass the source through as this rung.
    #[serde(default)]
    pub copy: bool,
    #[serde(default)]
    pub height: u32,
    #[serde(default)]
    pub bitrate_kbps: u32,
    pub max_fps: Option<f64>,
    pub profile: Option<String>,
    pub level: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSection {
    /// Where generated state (the first-start stream key) is kept.
    pub data_dir: Option<PathBuf>,
    /// Host name used in the URLs printed at start-up.
    pub public_host: Option<String>,
    /// Seconds a stream whose publisher dropped (not stopped) waits for it to reconnect and
    /// continue (OBS reconnects automatically after 10 s by default).
    pub reconnect_grace_secs: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpSection {
    pub listen: SocketAddr,
    pub max_connections: usize,
    pub cors_origin: String,
    /// PEM certificate chain; with `tls_key`, the listener speaks HTTPS (h2 + http/1.1 by ALPN).
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Serve viewers (`/live`, `/vod`) here. Off on an origin whose viewers go to edges.
    pub viewers: bool,
    /// Keep parts in shared memory and send them with sendfile(2) on cleartext connections
    /// (Linux): no copy per response.
    pub sendfile: bool,
    /// Threads serving HTTP connections, each with a runtime of its own; 0: one per CPU core.
    pub workers: usize,
}

impl Default for HttpSection {
    fn default() -> Self {
        Self {
            listen: ([0, 0, 0, 0], 8080).into(),
            max_connections: 16_384,
            cors_origin: "*".into(),
            tls_cert: None,
            tls_key: None,
            viewers: true,
            sendfile: true,
            workers: 0,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RtmpSection {
    pub listen: SocketAddr,
    pub app: String,
    pub idle_timeout_secs: u64,
    pub max_connections: usize,
}

impl Default for RtmpSection {
    fn default() -> Self {
        Self {
            listen: ([0, 0, 0, 0], 1935).into(),
            app: "live".into(),
            idle_timeout_secs: 30,
            max_connections: 1024,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SrtSection {
    pub listen: SocketAddr,
    /// Milliseconds of TSBPD latency (the receive buffer that absorbs retransmissions).
    pub latency_ms: u64,
    /// When set, callers must encrypt with it (10 to 79 characters).
    pub passphrase: Option<String>,
    pub idle_timeout_secs: u64,
}

impl Default for SrtSection {
    fn default() -> Self {
        Self {
            listen: ([0, 0, 0, 0], 9000).into(),
            latency_ms: 120,
            passphrase: None,
            idle_timeout_secs: 10,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WhipSection {
    pub enabled: bool,
    /// UDP address for WebRTC media (one port for every session).
    pub listen: SocketAddr,
    /// ICE candidate addresses to announce (public IPs behind NAT); empty: local interfaces.
    pub announce: Vec<std::net::IpAddr>,
    pub connect_timeout_secs: u64,
    pub idle_timeout_secs: u64,
    pub max_sessions: usize,
}

impl Default for WhipSection {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: ([0, 0, 0, 0], 8189).into(),
            announce: Vec::new(),
            connect_timeout_secs: 15,
            idle_timeout_secs: 10,
            max_sessions: 256,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HlsSection {
    /// Seconds. Segments start on a keyframe once this much has passed.
    pub segment_target: f64,
    /// Seconds. LL-HLS part (and LL-DASH chunk) target.
    pub part_target: f64,
    /// Complete segments kept in memory per track.
    pub window_segments: usize,
    /// Seconds the playlist stays live after the publisher leaves.
    pub end_grace: f64,
}

impl Default for HlsSection {
    fn default() -> Self {
        Self {
            segment_target: 2.0,
            part_target: 0.334,
            window_segments: 10,
            end_grace: 2.0,
        }
    }
}

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct StreamEntry {
    /// Public playback name: /live/{name}/index.m3u8
    pub name: String,
    /// Secret publish key.
    pub key: String,
    /// `false`: serve this stream as it comes, without the ladder.
    #[serde(default = "yes")]
    pub transcode: bool,
}

fn yes() -> bool {
    true
}

/// An RTSP camera pulled as a live stream.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct PullEntry {
    /// Public playback name: /live/{name}/index.m3u8
    pub name: String,
    /// rtsp://host[:port]/path (credentials may be in the URL).
    pub url: String,
    pub username: Option<String>,
    pub password: Option<String>,
    /// "auto" (TCP, UDP if the camera refuses TCP; the default), "tcp" or "udp".
    #[serde(default = "default_transport")]
    pub transport: String,
    /// Seconds the stream stays live while the camera is away and being reconnected.
    #[serde(default = "default_reconnect_grace")]
    pub reconnect_grace_secs: u64,
    #[serde(default = "yes")]
    pub transcode: bool,
}

fn default_transport() -> String {
    "auto".into()
}

fn default_reconnect_grace() -> u64 {
    30
}

impl Config {
    pub fn load(path: &Path) -> anyhow::Result<Config> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let cfg: Config =
            toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        cfg.validate()?;
        Ok(cfg)
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        let h = &self.hls;
        if !(0.5..=30.0).contains(&h.segment_target) {
            bail!("[hls] segment_target must be between 0.5 and 30 seconds");
        }
        if !(0.05..=h.segment_target).contains(&h.part_target) {
            bail!("[hls] part_target must be between 0.05 s and segment_target");
        }
        if h.window_segments < 3 {
            bail!("[hls] window_segments must be at least 3");
        }
        if let Some(p) = &self.srt.passphrase {
            if !(10..=79).contains(&p.len()) {
                bail!("[srt] passphrase must be 10 to 79 characters (SRT's rule)");
            }
        }
        if self.http.tls_cert.is_some() != self.http.tls_key.is_some() {
            bail!("[http] tls_cert and tls_key go together");
        }
        for r in &self.ladder {
            if !r.copy && !(32..=4320).contains(&r.height) {
                bail!(
                    "[[ladder]] {:?}: height must be 32 to 4320 (or copy = true)",
                    r.name
                );
            }
            if !r.copy && r.bitrate_kbps == 0 {
                bail!("[[ladder]] {:?}: bitrate_kbps is required", r.name);
            }
        }
        let mut names = std::collections::HashSet::new();
        let mut keys = std::collections::HashSet::new();
        for p in &self.pull {
            if !valid_name(&p.name) {
                bail!(
                    "[[pull]] name {:?}: use letters, digits, '-', '_' and '.'",
                    p.name
                );
            }
            if !p.url.starts_with("rtsp://") {
                bail!("[[pull]] {:?}: url must be rtsp://...", p.name);
            }
            if !matches!(p.transport.as_str(), "auto" | "tcp" | "udp") {
                bail!(
                    "[[pull]] {:?}: transport is \"auto\", \"tcp\" or \"udp\"",
                    p.name
                );
            }
            if !names.insert(&p.name) {
                bail!("[[pull]] name {:?} appears twice", p.name);
            }
        }
        for s in &self.streams {
            if !valid_name(&s.name) {
                bail!(
                    "stream name {:?}: use letters, digits, '-', '_' and '.'",
                    s.name
                );
            }
            if s.key.len() < 8 {
                bail!("stream {:?}: key must be at least 8 characters", s.name);
            }
            if s.key == s.name {
                bail!(
                    "stream {:?}: the key must differ from the public name",
                    s.name
                );
            }
            if !names.insert(&s.name) {
                bail!("stream name {:?} appears twice", s.name);
            }
            if !keys.insert(&s.key) {
                bail!("two streams share one key");
            }
        }
        Ok(())
    }

    /// The HTTP service's settings; `viewers`: serve `/live` and `/vod` (an edge always does).
    pub fn http_config(&self, viewers: bool) -> edge::HttpConfig {
        edge::HttpConfig {
            max_connections: self.http.max_connections,
            cors_origin: self.http.cors_origin.clone(),
            tls: self.http.tls_cert.is_some(),
            viewers,
            workers: match self.http.workers {
                0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
                n => n,
            },
        }
    }

    /// Parts in shared memory, sent with sendfile: `[http] sendfile`, and only without TLS
    /// (TLS encrypts in user space).
    pub fn sendfile(&self) -> bool {
        self.http.sendfile && self.http.tls_cert.is_none()
    }

    /// The TLS acceptor when `[http] tls_cert` and `tls_key` are set.
    pub fn tls_acceptor(&self) -> anyhow::Result<Option<edge::tls::TlsAcceptor>> {
        match (&self.http.tls_cert, &self.http.tls_key) {
            (Some(cert), Some(key)) => Ok(Some(
                edge::tls::acceptor(cert, key).context("loading the TLS certificate")?,
            )),
            _ => Ok(None),
        }
    }

    /// The Redis (or Redis Cluster) client, when `[redis] url` is set.
    pub fn redis_client(&self) -> anyhow::Result<Option<edge::store::redis::RedisClient>> {
        let Some(url) = &self.redis.url else {
            return Ok(None);
        };
        edge::store::redis::RedisClient::open(url, self.redis.cluster)
            .map(Some)
            .with_context(|| format!("[redis] url = {url:?}"))
    }

    /// The VOD archive directory, when archiving is on.
    pub fn archive_dir(&self) -> Option<PathBuf> {
        self.archive.enabled.then(|| {
            self.archive
                .dir
                .clone()
                .unwrap_or_else(|| self.data_dir().join("archive"))
        })
    }

    /// Where archives go when archiving is on: object storage with `[archive] url`, else the
    /// archive directory (created here). Also says where, for the log.
    pub fn archive_store(&self) -> anyhow::Result<Option<(packager::archive::Store, String)>> {
        if !self.archive.enabled {
            return Ok(None);
        }
        if let Some(url) = &self.archive.url {
            return Ok(Some((self.object_store(url)?, url.clone())));
        }
        let dir = self.archive_dir().expect("enabled");
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("creating the archive directory {}", dir.display()))?;
        let store = object_store::local::LocalFileSystem::new_with_prefix(&dir)
            .with_context(|| format!("the archive directory {}", dir.display()))?
            .with_automatic_cleanup(true);
        Ok(Some((Arc::new(store), dir.display().to_string())))
    }

    /// An edge reads archives only where they are shared: object storage, or a directory
    /// named explicitly (a shared volume). Otherwise it asks its origins.
    pub fn edge_archive_store(&self) -> anyhow::Result<Option<(packager::archive::Store, String)>> {
        if self.archive.url.is_none() && self.archive.dir.is_none() {
            return Ok(None);
        }
        self.archive_store()
    }

    fn object_store(&self, url: &str) -> anyhow::Result<packager::archive::Store> {
        let a = &self.archive;
        let rest = url.strip_prefix("s3://").with_context(|| {
            format!("[archive] url {url:?}: only s3://BUCKET[/PREFIX] is supported")
        })?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            bail!("[archive] url {url:?}: no bucket");
        }
        let mut b = object_store::aws::AmazonS3Builder::from_env().with_bucket_name(bucket);
        if let Some(e) = &a.endpoint {
            b = b.with_endpoint(e).with_allow_http(e.starts_with("http://"));
        }
        if let Some(r) = &a.region {
            b = b.with_region(r);
        }
        if let Some(k) = &a.access_key_id {
            b = b.with_access_key_id(k);
        }
        if let Some(k) = &a.secret_access_key {
            b = b.with_secret_access_key(k);
        }
        let s3 = b
            .build()
            .with_context(|| format!("[archive] url {url:?}"))?;
        let prefix = prefix.trim_matches('/');
        Ok(if prefix.is_empty() {
            Arc::new(s3)
        } else {
            Arc::new(object_store::prefix::PrefixStore::new(s3, prefix))
        })
    }

    pub fn data_dir(&self) -> PathBuf {
        if let Some(d) = &self.server.data_dir {
            return d.clone();
        }
        if let Some(d) = std::env::var_os("ESTUARY_DATA_DIR") {
            return d.into();
        }
        match std::env::var_os("XDG_DATA_HOME")
            .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".local/share").into()))
        {
            Some(base) => PathBuf::from(base).join("estuary"),
            None => PathBuf::from("estuary-data"),
        }
    }

    /// The ladder as the transcoder takes it: `[[ladder]]`, or the default one.
    pub fn transcode_config(&self) -> transcode::TranscodeConfig {
        let mut c = transcode::TranscodeConfig {
            encoder: self.transcode.encoder.clone(),
            preset: self.transcode.preset.clone(),
            tune: self.transcode.tune.clone(),
            gop: Self::secs(self.hls.segment_target),
            ..Default::default()
        };
        if !self.ladder.is_empty() {
            c.ladder = self
                .ladder
                .iter()
                .map(|r| transcode::Rung {
                    name: r.name.clone(),
                    copy: r.copy,
                    height: r.height,
                    bitrate: r.bitrate_kbps.saturating_mul(1000),
                    max_fps: r.max_fps,
                    profile: r.profile.clone(),
                    level: r.level.clone(),
                })
                .collect();
        }
        c
    }

    pub fn secs(v: f64) -> Duration {
        Duration::from_secs_f64(v.max(0.0))
    }
}

/// A public stream name: one URL path segment.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_config_parses() {
        let text = include_str!("../config/estuary.toml");
        let cfg: Config = toml::from_str(text).unwrap();
        cfg.validate().unwrap();
        assert_eq!(cfg.http.listen.port(), 8080);
        assert_eq!(cfg.rtmp.listen.port(), 1935);
        assert_eq!(cfg.srt.listen.port(), 9000);
        assert!(!cfg.streams.is_empty());
    }

    #[test]
    fn typos_are_errors() {
        assert!(toml::from_str::<Config>("[http]\nlisten_on = \"0.0.0.0:1\"").is_err());
    }
}
