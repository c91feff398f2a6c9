//! `estuary.toml`: every key, its default and its meaning are in `config/estuary.toml`. This
//! module reads it and is the one place that turns it into the crates' runtime settings
//! (`*_config` methods), so nothing else knows the file's shape.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use ingest::Authorizer;
use media::Hub;
use serde::{Deserialize, Deserializer};

mod access;
mod stores;
pub use access::{placeholder, ApiSection, AuthSection, PlaybackSection, Policy};

/// A length of time written in seconds (`15`, `0.5`): every `*_secs` key and the `[hls]`
/// times.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Seconds(pub Duration);

impl Seconds {
    pub const fn from_secs(s: u64) -> Seconds {
        Seconds(Duration::from_secs(s))
    }

    pub const fn from_millis(ms: u64) -> Seconds {
        Seconds(Duration::from_millis(ms))
    }
}

impl<'de> Deserialize<'de> for Seconds {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = f64::deserialize(d)?;
        if !v.is_finite() || v < 0.0 {
            return Err(serde::de::Error::custom("a number of seconds, 0 or more"));
        }
        Duration::try_from_secs_f64(v)
            .map(Seconds)
            .map_err(serde::de::Error::custom)
    }
}

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
    pub catalog: CatalogSection,
    #[serde(default)]
    pub uploads: UploadsSection,
    #[serde(default)]
    pub redis: RedisSection,
    #[serde(default)]
    pub edge: EdgeSection,
    #[serde(default)]
    pub playback: PlaybackSection,
    #[serde(default)]
    pub api: ApiSection,
    #[serde(default)]
    pub auth: AuthSection,
    #[serde(default)]
    pub webhooks: Vec<crate::webhooks::WebhookEntry>,
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
    /// The `AUTH` password, kept out of the URL (or `$ESTUARY_REDIS_PASSWORD`).
    pub password: Option<String>,
    /// For `rediss://`: a PEM file of CA certificates to trust instead of the system's.
    pub ca: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EdgeSection {
    /// Origins' base URLs (`http://origin:8080`, `https://origin`): what an edge cannot serve
    /// from Redis (Redis unreachable, a stream not mirrored, VOD) it fetches from them, cached
    /// and coalesced.
    pub origins: Vec<String>,
    /// A PEM file of CA certificates to trust for HTTPS origins besides the system's.
    pub origin_ca: Option<PathBuf>,
    /// Megabytes the edge's cache of origin responses may hold.
    pub cache_mb: usize,
    /// Megabytes the live windows replayed from Redis may hold together.
    pub replica_mb: usize,
    /// How long a stream nobody asked this edge for stays replayed from Redis.
    pub idle_secs: Seconds,
}

impl Default for EdgeSection {
    fn default() -> Self {
        Self {
            origins: Vec::new(),
            origin_ca: None,
            cache_mb: 256,
            replica_mb: 1024,
            idle_secs: Seconds::from_secs(60),
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

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct CatalogSection {
    /// `postgres://USER:PASSWORD@HOST/DATABASE` to share one catalog among origins (default:
    /// SQLite, `catalog.db` in the data directory).
    pub url: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UploadsSection {
    /// Take uploads (direct upload URLs, tus).
    pub enabled: bool,
    /// Where their bytes go (default: `uploads/` in the data directory).
    pub dir: Option<PathBuf>,
    /// The largest upload, in MiB.
    pub max_size_mb: u64,
    /// Hours after which an unfinished upload is deleted.
    pub expire_hours: f64,
    /// Package finished uploads whose codecs can be streamed as they are (H.264/HEVC, AAC)
    /// into the archive store, playable at `/vod/{asset}/`; others wait for the transcoding
    /// pipeline.
    pub package: bool,
    /// Extra CA certificates (PEM) trusted when fetching an asset's file from a URL.
    pub fetch_ca: Option<PathBuf>,
    /// Fetch from addresses that are not on the public internet (loopback, private,
    /// link-local...) too.
    pub fetch_private_addresses: bool,
}

impl Default for UploadsSection {
    fn default() -> Self {
        Self {
            enabled: true,
            dir: None,
            max_size_mb: 20 * 1024,
            expire_hours: 24.0,
            package: true,
            fetch_ca: None,
            fetch_private_addresses: false,
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSection {
    /// Where generated state (the first-start stream key) is kept.
    pub data_dir: Option<PathBuf>,
    /// Host name used in the URLs printed at start-up.
    pub public_host: Option<String>,
    /// How long a stream whose publisher dropped (not stopped) waits for it to reconnect and
    /// continue (OBS reconnects automatically after 10 s by default).
    pub reconnect_grace_secs: Seconds,
}

impl Default for ServerSection {
    fn default() -> Self {
        Self {
            data_dir: None,
            public_host: None,
            reconnect_grace_secs: Seconds::from_secs(15),
        }
    }
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
    /// A request's headers must arrive within this (also the keep-alive idle time).
    pub header_timeout_secs: Seconds,
    /// Connections one remote address may hold open; 0: no cap.
    pub max_connections_per_ip: usize,
    /// Addresses or networks whose X-Forwarded-For/-Host/-Proto are believed (load
    /// balancers, CDNs, this origin's edges).
    pub trusted_proxies: Vec<String>,
    /// Requests waiting for a part at once; more get 503 with Retry-After.
    pub max_held_requests: usize,
    /// HTTP/2 streams one connection may have open.
    pub http2_max_streams: u32,
    /// HTTP/2 keep-alive ping interval (and how long an answer may take).
    pub http2_keepalive_secs: Seconds,
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
            trusted_proxies: Vec::new(),
            header_timeout_secs: Seconds::from_secs(30),
            max_connections_per_ip: 0,
            max_held_requests: 50_000,
            http2_max_streams: 128,
            http2_keepalive_secs: Seconds::from_secs(30),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RtmpSection {
    pub listen: SocketAddr,
    /// RTMPS (RTMP over TLS): off unless set; 1936 is the customary port.
    pub tls_listen: Option<SocketAddr>,
    /// RTMPS's certificate and key; without them, `[http]`'s.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub app: String,
    pub idle_timeout_secs: Seconds,
    /// A connection that has not been let publish this long after it connected is closed.
    pub publish_timeout_secs: Seconds,
    pub max_connections: usize,
}

impl Default for RtmpSection {
    fn default() -> Self {
        Self {
            listen: ([0, 0, 0, 0], 1935).into(),
            tls_listen: None,
            tls_cert: None,
            tls_key: None,
            app: "live".into(),
            idle_timeout_secs: Seconds::from_secs(30),
            publish_timeout_secs: Seconds::from_secs(10),
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
    pub idle_timeout_secs: Seconds,
}

impl Default for SrtSection {
    fn default() -> Self {
        Self {
            listen: ([0, 0, 0, 0], 9000).into(),
            latency_ms: 120,
            passphrase: None,
            idle_timeout_secs: Seconds::from_secs(10),
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
    pub connect_timeout_secs: Seconds,
    pub idle_timeout_secs: Seconds,
    pub max_sessions: usize,
}

impl Default for WhipSection {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: ([0, 0, 0, 0], 8189).into(),
            announce: Vec::new(),
            connect_timeout_secs: Seconds::from_secs(15),
            idle_timeout_secs: Seconds::from_secs(10),
            max_sessions: 256,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HlsSection {
    /// Segments start on a keyframe once this much has passed.
    pub segment_target: Seconds,
    /// LL-HLS part (and LL-DASH chunk) target.
    pub part_target: Seconds,
    /// Complete segments kept in memory per track.
    pub window_segments: usize,
    /// How long the playlist stays live after the publisher leaves.
    pub end_grace: Seconds,
}

impl Default for HlsSection {
    fn default() -> Self {
        Self {
            segment_target: Seconds::from_secs(2),
            part_target: Seconds::from_millis(167),
            window_segments: 10,
            end_grace: Seconds::from_secs(2),
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
    /// `"signed"`: viewers need a playback token (default: `[playback] default`).
    pub playback: Option<Policy>,
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
    #[serde(default)]
    pub transport: Transport,
    /// How long the stream stays live while the camera is away and being reconnected.
    #[serde(default = "default_reconnect_grace")]
    pub reconnect_grace_secs: Seconds,
    #[serde(default = "yes")]
    pub transcode: bool,
    /// `"signed"`: viewers need a playback token (default: `[playback] default`).
    pub playback: Option<Policy>,
}

/// How RTP comes from an RTSP camera.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// TCP, or UDP when the camera refuses TCP.
    #[default]
    Auto,
    Tcp,
    Udp,
}

fn default_reconnect_grace() -> Seconds {
    Seconds::from_secs(30)
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
        if !(Seconds::from_millis(500)..=Seconds::from_secs(30)).contains(&h.segment_target) {
            bail!("[hls] segment_target must be between 0.5 and 30 seconds");
        }
        if !(self.uploads.expire_hours > 0.0 && self.uploads.expire_hours <= 24.0 * 365.0) {
            bail!("[uploads] expire_hours must be a number of hours above 0, at most a year");
        }
        if self.uploads.max_size_mb == 0 {
            bail!("[uploads] max_size_mb must be above 0");
        }
        if !(Seconds::from_millis(50)..=h.segment_target).contains(&h.part_target) {
            bail!("[hls] part_target must be between 0.05 s and segment_target");
        }
        if !(self.archive.retention_hours.is_finite() && self.archive.retention_hours >= 0.0) {
            bail!("[archive] retention_hours must be a number of hours, 0 or more");
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
        if self.rtmp.tls_cert.is_some() != self.rtmp.tls_key.is_some() {
            bail!("[rtmp] tls_cert and tls_key go together");
        }
        if self.rtmp.tls_listen.is_some()
            && self.rtmp.tls_cert.is_none()
            && self.http.tls_cert.is_none()
        {
            bail!(
                "[rtmp] tls_listen needs a certificate: [rtmp] tls_cert and tls_key, or [http]'s"
            );
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
            if placeholder(&s.key) {
                bail!(
                    "stream {:?}: the key {:?} is an example; set a key of your own \
                     (openssl rand -hex 16), or remove [[streams]] to have one made",
                    s.name,
                    s.key
                );
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
        for w in &self.webhooks {
            w.validate()?;
        }
        httpd::forwarded::TrustedProxies::parse(&self.http.trusted_proxies)
            .map_err(|e| anyhow::anyhow!("[http] trusted_proxies: {e}"))?;
        self.validate_access()
    }

    /// An edge needs something to serve: what the origin mirrors into Redis, what origins
    /// answer over HTTP, or archives in shared storage.
    pub fn edge_sources(&self) -> anyhow::Result<()> {
        if self.redis.url.is_none()
            && self.edge.origins.is_empty()
            && self.archive.url.is_none()
            && self.archive.dir.is_none()
        {
            bail!(
                "an edge serves what the origin mirrors into Redis, what origins answer over \
                 HTTP, or archives in shared storage: set [redis] url, [edge] origins or \
                 [archive] url/dir"
            );
        }
        Ok(())
    }

    /// The HTTP service's settings; `viewers`: serve `/live` and `/vod` (an edge always does).
    pub fn http_config(&self, viewers: bool) -> httpd::HttpConfig {
        httpd::HttpConfig {
            max_connections: self.http.max_connections,
            cors_origin: self.http.cors_origin.clone(),
            tls: self.http.tls_cert.is_some(),
            viewers,
            workers: match self.http.workers {
                0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
                n => n,
            },
            header_timeout: at_least_a_second(self.http.header_timeout_secs),
            max_connections_per_ip: self.http.max_connections_per_ip,
            max_held: self.http.max_held_requests,
            http2_max_streams: self.http.http2_max_streams.max(1),
            http2_keepalive: at_least_a_second(self.http.http2_keepalive_secs),
            trusted_proxies: httpd::forwarded::TrustedProxies::parse(&self.http.trusted_proxies)
                .unwrap_or_default(),
        }
    }

    /// Parts in shared memory, sent with sendfile: `[http] sendfile`, and only without TLS
    /// (TLS encrypts in user space).
    pub fn sendfile(&self) -> bool {
        self.http.sendfile && self.http.tls_cert.is_none()
    }

    /// The TLS acceptor when `[http] tls_cert` and `tls_key` are set.
    pub fn tls_acceptor(&self) -> anyhow::Result<Option<httpd::tls::TlsAcceptor>> {
        match (&self.http.tls_cert, &self.http.tls_key) {
            (Some(cert), Some(key)) => Ok(Some(
                httpd::tls::acceptor(cert, key).context("loading the TLS certificate")?,
            )),
            _ => Ok(None),
        }
    }

    /// The RTMPS acceptor when `[rtmp] tls_listen` is set: `[rtmp]`'s certificate, else
    /// `[http]`'s.
    pub fn rtmps_acceptor(&self) -> anyhow::Result<Option<httpd::tls::TlsAcceptor>> {
        if self.rtmp.tls_listen.is_none() {
            return Ok(None);
        }
        let (cert, key) = match (&self.rtmp.tls_cert, &self.rtmp.tls_key) {
            (Some(c), Some(k)) => (c, k),
            _ => match (&self.http.tls_cert, &self.http.tls_key) {
                (Some(c), Some(k)) => (c, k),
                _ => bail!("[rtmp] tls_listen needs a certificate"),
            },
        };
        let config = httpd::tls::server_config(cert, key)
            .with_context(|| format!("loading the RTMPS certificate {}", cert.display()))?;
        Ok(Some(httpd::tls::TlsAcceptor::from(Arc::new(config))))
    }

    /// The ladder as the transcoder takes it: `[[ladder]]`, or the default one.
    pub fn transcode_config(&self) -> transcode::TranscodeConfig {
        let mut c = transcode::TranscodeConfig {
            encoder: self.transcode.encoder.clone(),
            preset: self.transcode.preset.clone(),
            tune: self.transcode.tune.clone(),
            gop: self.hls.segment_target.0,
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

    /// The streams served as they come (`transcode = false`), by name.
    pub fn untranscoded(&self) -> std::collections::HashSet<String> {
        let streams = self
            .streams
            .iter()
            .filter(|s| !s.transcode)
            .map(|s| &s.name);
        let pulls = self.pull.iter().filter(|p| !p.transcode).map(|p| &p.name);
        streams.chain(pulls).cloned().collect()
    }

    pub fn packager_config(
        &self,
        archive: Option<packager::archive::Store>,
    ) -> packager::PackagerConfig {
        packager::PackagerConfig {
            window: packager::WindowConfig {
                segments: self.hls.window_segments,
                segment_target: self.hls.segment_target.0,
                part_target: self.hls.part_target.0,
                signed: false,
            },
            end_grace: self.hls.end_grace.0,
            archive,
            ..Default::default()
        }
    }

    /// Archives that ended longer ago than this are deleted.
    pub fn retention(&self) -> Duration {
        Duration::try_from_secs_f64(self.archive.retention_hours * 3600.0).unwrap_or(Duration::MAX)
    }

    pub fn reconnect_grace(&self) -> Duration {
        self.server.reconnect_grace_secs.0
    }

    pub fn rtmp_config(&self, auth: Arc<Authorizer>, hub: Hub) -> ingest::rtmp::RtmpConfig {
        ingest::rtmp::RtmpConfig {
            auth,
            hub,
            app: self.rtmp.app.clone(),
            idle_timeout: at_least_a_second(self.rtmp.idle_timeout_secs),
            publish_timeout: at_least_a_second(self.rtmp.publish_timeout_secs),
            max_connections: self.rtmp.max_connections,
        }
    }

    pub fn srt_latency(&self) -> Duration {
        Duration::from_millis(self.srt.latency_ms)
    }

    pub fn srt_config(&self, auth: Arc<Authorizer>, hub: Hub) -> ingest::srt::SrtConfig {
        ingest::srt::SrtConfig {
            auth,
            hub,
            latency: self.srt_latency(),
            passphrase: self.srt.passphrase.clone(),
            idle_timeout: at_least_a_second(self.srt.idle_timeout_secs),
        }
    }

    pub fn whip_config(&self, auth: Arc<Authorizer>, hub: Hub) -> ingest::whip::WhipConfig {
        ingest::whip::WhipConfig {
            auth,
            hub,
            listen: self.whip.listen,
            announce: self.whip.announce.clone(),
            connect_timeout: at_least_a_second(self.whip.connect_timeout_secs),
            idle_timeout: at_least_a_second(self.whip.idle_timeout_secs),
            max_sessions: self.whip.max_sessions,
            keyframe_interval: self.hls.segment_target.0,
        }
    }

    pub fn pull_config(p: &PullEntry) -> ingest::rtsp::PullConfig {
        ingest::rtsp::PullConfig {
            name: p.name.clone(),
            url: p.url.clone(),
            username: p.username.clone(),
            password: p.password.clone(),
            transport: match p.transport {
                Transport::Auto => ingest::rtsp::RtspTransport::Auto,
                Transport::Tcp => ingest::rtsp::RtspTransport::Tcp,
                Transport::Udp => ingest::rtsp::RtspTransport::Udp,
            },
            reconnect_grace: p.reconnect_grace_secs.0,
        }
    }
}

/// Timeouts below a second would drop everyone.
fn at_least_a_second(s: Seconds) -> Duration {
    s.0.max(Duration::from_secs(1))
}

/// A public stream name: one URL path segment.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

#[cfg(test)]
mod tests;
