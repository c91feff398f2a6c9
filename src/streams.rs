//! The streams an origin takes, and how the API changes them.
//!
//! - `[[streams]]` from the config (and `[[pull]]` cameras): fixed, the file is their truth;
//! - with none configured, one stream `stream` whose key is made on first start, shown once
//!   and kept as a digest ([`crate::secrets`]);
//! - streams created through the API (`POST /api/v1/streams`): kept with their key's digest
//!   and playback policy in `streams.json` in the data directory (written whole, through a
//!   rename), or with `[redis] url` in the Redis hash `estuary:streams` (origins sharing one
//!   Redis read it when they start), so they survive a restart.
//!
//! And the start-up banner that tells a user what to type into OBS.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use httpd::access::Playback;
use httpd::api::admin::{AdminError, AdminFuture, Created, NewStream, PlaybackPolicy, StreamAdmin};
use ingest::Authorizer;
use media::Hub;
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use crate::config::{Config, Policy};
use crate::secrets;

/// Characters in a generated stream key.
const KEY_LEN: usize = 24;

/// A stream of the config (or the first-start one), for the banner.
pub struct Stream {
    pub name: String,
    /// The key when it was made by this start (shown once).
    pub shown_key: Option<String>,
}

/// A stream created through the API, as kept.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Kept {
    /// SHA-256 of the key, hex.
    key_sha256: String,
    playback: PlaybackPolicy,
    created: String,
}

#[derive(Default, Serialize, Deserialize)]
struct File {
    streams: BTreeMap<String, Kept>,
}

/// The origin's streams: who may publish where, and what the API may change.
#[derive(Clone)]
pub struct Streams {
    inner: Arc<Inner>,
}

struct Inner {
    auth: Arc<Authorizer>,
    playback: Arc<Playback>,
    hub: Hub,
    default_signed: bool,
    /// Names the API may not touch (configured, pulled, or the first-start one).
    fixed: HashSet<String>,
    store: Store,
    /// Held across a change's write, so changes are kept in the order they are made.
    created: tokio::sync::Mutex<File>,
}

/// Where created streams are kept.
enum Store {
    /// `streams.json` in the data directory, written whole through a rename.
    File(PathBuf),
    /// The hash `estuary:streams` (name → the kept JSON), shared by origins on one Redis.
    Redis(Box<replica::RedisClient>),
}

const REDIS_KEY: &str = "estuary:streams";

impl Store {
    fn describe(&self) -> String {
        match self {
            Store::File(p) => p.display().to_string(),
            Store::Redis(c) => format!("{REDIS_KEY} in {}", c.url()),
        }
    }

    async fn load(&self) -> anyhow::Result<File> {
        match self {
            Store::File(path) => match std::fs::read_to_string(path) {
                Ok(text) => serde_json::from_str(&text).with_context(|| {
                    format!(
                        "reading {} (streams created through the API)",
                        path.display()
                    )
                }),
                Err(_) => Ok(File::default()),
            },
            Store::Redis(client) => {
                let mut c = client
                    .shared()
                    .await
                    .with_context(|| format!("reading {REDIS_KEY} from Redis"))?;
                let all: std::collections::HashMap<String, String> =
                    redis::AsyncCommands::hgetall(&mut c, REDIS_KEY)
                        .await
                        .with_context(|| format!("reading {REDIS_KEY} from Redis"))?;
                let mut file = File::default();
                for (name, json) in all {
                    match serde_json::from_str::<Kept>(&json) {
                        Ok(k) if crate::config::valid_name(&name) => {
                            file.streams.insert(name, k);
                        }
                        _ => {
                            warn!(stream = %name, "a kept stream in Redis does not parse; skipped")
                        }
                    }
                }
                Ok(file)
            }
        }
    }

    /// Keeps the change to `name` (`None`: deleted); `all` is every created stream after it.
    async fn save(&self, all: &File, name: &str, kept: Option<&Kept>) -> Result<(), AdminError> {
        let failed = |e: String| {
            warn!(store = %self.describe(), error = %e, "could not keep the streams created through the API");
            AdminError::Store(e)
        };
        match self {
            Store::File(path) => {
                let text = serde_json::to_string_pretty(all).map_err(|e| failed(e.to_string()))?;
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir).map_err(|e| failed(e.to_string()))?;
                }
                secrets::write_private(path, &text)
                    .map_err(|e| failed(format!("writing {}: {e}", path.display())))
            }
            Store::Redis(client) => {
                let mut c = client.shared().await.map_err(|e| failed(e.to_string()))?;
                let r: redis::RedisResult<()> = match kept {
                    Some(k) => {
                        let json = serde_json::to_string(k).map_err(|e| failed(e.to_string()))?;
                        redis::AsyncCommands::hset(&mut c, REDIS_KEY, name, json).await
                    }
                    None => redis::AsyncCommands::hdel(&mut c, REDIS_KEY, name).await,
                };
                if let Err(e) = r {
                    client.reset_shared().await;
                    return Err(failed(e.to_string()));
                }
                Ok(())
            }
        }
    }
}

impl Streams {
    /// The configured streams (or the first-start one) and those created earlier (kept in
    /// Redis when `redis` is given, else in the data directory); the authorizer that admits
    /// their publishers; what the banner shows.
    pub async fn open(
        config: &Config,
        playback: Arc<Playback>,
        hub: Hub,
        auth: Authorizer,
        redis: Option<replica::RedisClient>,
    ) -> anyhow::Result<(Streams, Vec<Stream>)> {
        let mut fixed = HashSet::new();
        let mut shown = Vec::new();
        if config.streams.is_empty() {
            let dir = config.data_dir();
            let kept = secrets::kept(&dir, "stream-key", KEY_LEN)?;
            match &kept.made {
                Some(_) => {
                    warn!(file = %kept.file.display(), "no [[streams]] configured; made a stream key, shown below this once (only its digest is kept)")
                }
                None => {
                    info!(file = %kept.file.display(), "no [[streams]] configured; using the stream key made on an earlier start (not shown again; delete the file for a new one)")
                }
            }
            auth.insert(kept.digest, "stream".into());
            fixed.insert("stream".to_string());
            shown.push(Stream {
                name: "stream".into(),
                shown_key: kept.made,
            });
        }
        for s in &config.streams {
            auth.insert(ingest::auth::digest(&s.key), s.name.clone());
            fixed.insert(s.name.clone());
            shown.push(Stream {
                name: s.name.clone(),
                shown_key: None,
            });
        }
        fixed.extend(config.pull.iter().map(|p| p.name.clone()));
        let store = match redis {
            Some(client) => Store::Redis(Box::new(client)),
            None => Store::File(config.data_dir().join("streams.json")),
        };
        let created = store.load().await?;
        for (name, k) in &created.streams {
            let Some(digest) = secrets::parse_hex(&k.key_sha256) else {
                warn!(stream = %name, store = %store.describe(), "a kept stream's key digest does not parse; skipped");
                continue;
            };
            auth.insert(digest, name.clone());
            playback.set(name, k.playback == PlaybackPolicy::Signed);
        }
        if !created.streams.is_empty() {
            info!(count = created.streams.len(), store = %store.describe(), "streams created through the API");
        }
        let streams = Streams {
            inner: Arc::new(Inner {
                auth: Arc::new(auth),
                playback,
                hub,
                default_signed: config.playback.default == Policy::Signed,
                fixed,
                store,
                created: tokio::sync::Mutex::new(created),
            }),
        };
        Ok((streams, shown))
    }

    pub fn authorizer(&self) -> Arc<Authorizer> {
        self.inner.auth.clone()
    }

    fn not_fixed(&self, name: &str) -> Result<(), AdminError> {
        if self.inner.fixed.contains(name) {
            return Err(AdminError::Configured(name.to_string()));
        }
        Ok(())
    }

    async fn create(&self, new: NewStream) -> Result<Created, AdminError> {
        self.not_fixed(&new.name)
            .map_err(|_| AdminError::Exists(new.name.clone()))?;
        let mut file = self.inner.created.lock().await;
        if file.streams.contains_key(&new.name) {
            return Err(AdminError::Exists(new.name));
        }
        let playback = new.playback.unwrap_or(if self.inner.default_signed {
            PlaybackPolicy::Signed
        } else {
            PlaybackPolicy::Public
        });
        if playback == PlaybackPolicy::Signed && self.inner.playback.verifier().is_none() {
            return Err(AdminError::Invalid(
                "a signed stream needs [playback] keys to verify its tokens; none are configured"
                    .into(),
            ));
        }
        let key = secrets::random(KEY_LEN);
        let digest = ingest::auth::digest(&key);
        let kept = Kept {
            key_sha256: secrets::hex(&digest),
            playback,
            created: packager::hls::rfc3339(std::time::SystemTime::now()),
        };
        file.streams.insert(new.name.clone(), kept.clone());
        if let Err(e) = self.inner.store.save(&file, &new.name, Some(&kept)).await {
            file.streams.remove(&new.name);
            return Err(e);
        }
        self.inner.auth.insert(digest, new.name.clone());
        self.inner
            .playback
            .set(&new.name, playback == PlaybackPolicy::Signed);
        info!(stream = %new.name, ?playback, "stream created through the API");
        Ok(Created {
            name: new.name,
            key,
            playback,
        })
    }

    async fn delete(&self, name: &str) -> Result<(), AdminError> {
        self.not_fixed(name)?;
        let mut file = self.inner.created.lock().await;
        let Some(old) = file.streams.remove(name) else {
            return Err(AdminError::NotFound(name.to_string()));
        };
        if let Err(e) = self.inner.store.save(&file, name, None).await {
            file.streams.insert(name.to_string(), old);
            return Err(e);
        }
        self.inner.auth.remove_stream(name);
        self.inner.playback.forget(name);
        self.inner.hub.kick(name);
        info!(stream = %name, "stream deleted through the API");
        Ok(())
    }

    async fn rotate(&self, name: &str) -> Result<String, AdminError> {
        self.not_fixed(name)?;
        let mut file = self.inner.created.lock().await;
        let Some(entry) = file.streams.get_mut(name) else {
            return Err(AdminError::NotFound(name.to_string()));
        };
        let key = secrets::random(KEY_LEN);
        let digest = ingest::auth::digest(&key);
        let old = std::mem::replace(&mut entry.key_sha256, secrets::hex(&digest));
        let kept = entry.clone();
        if let Err(e) = self.inner.store.save(&file, name, Some(&kept)).await {
            if let Some(entry) = file.streams.get_mut(name) {
                entry.key_sha256 = old;
            }
            return Err(e);
        }
        self.inner.auth.remove_stream(name);
        self.inner.auth.insert(digest, name.to_string());
        info!(stream = %name, "stream key rotated through the API");
        Ok(key)
    }
}

impl StreamAdmin for Streams {
    fn create(&self, new: NewStream) -> AdminFuture<'_, Created> {
        Box::pin(Streams::create(self, new))
    }

    fn delete<'a>(&'a self, name: &'a str) -> AdminFuture<'a, ()> {
        Box::pin(Streams::delete(self, name))
    }

    fn rotate<'a>(&'a self, name: &'a str) -> AdminFuture<'a, String> {
        Box::pin(Streams::rotate(self, name))
    }

    fn kick(&self, name: &str) -> Result<(), AdminError> {
        if self.inner.hub.kick(name) {
            info!(stream = %name, "publisher kicked through the API");
            Ok(())
        } else {
            Err(AdminError::NotLive(name.to_string()))
        }
    }
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
        let (key, shown) = match &s.shown_key {
            Some(k) => (k.as_str(), k.as_str()),
            None => ("KEY", "(yours)"),
        };
        info!(
            "stream {:?}: OBS Server rtmp://{host}:{}/{}  Stream Key {shown}  |  SRT srt://{host}:{}?streamid=publish:{key}  |  WHIP {scheme}://{host}:{}/whip (Bearer {key})  |  play {scheme}://{host}:{}/live/{}/index.m3u8",
            s.name,
            rtmp.port(),
            config.rtmp.app,
            config.srt.listen.port(),
            http.port(),
            http.port(),
            s.name
        );
    }
}
