//! Where a node keeps and finds its state, as the config says: the data directory, archive
//! storage (a directory or S3), Redis, resume positions, and an edge's origins.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};

use super::Config;

impl Config {
    /// The Redis (or Redis Cluster) client, when `[redis] url` is set.
    pub fn redis_client(&self) -> anyhow::Result<Option<replica::RedisClient>> {
        let Some(url) = &self.redis.url else {
            return Ok(None);
        };
        let password = self.redis.password.clone().or_else(|| {
            std::env::var("ESTUARY_REDIS_PASSWORD")
                .ok()
                .filter(|p| !p.is_empty())
        });
        let ca = match &self.redis.ca {
            Some(path) => Some(
                std::fs::read(path)
                    .with_context(|| format!("reading [redis] ca {}", path.display()))?,
            ),
            None => None,
        };
        replica::RedisClient::open_with(
            url,
            self.redis.cluster,
            replica::RedisOptions { password, ca },
        )
        .map(Some)
        .with_context(|| format!("[redis] url = {:?}", replica::client::redacted(url)))
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
        let (s3, prefix) = self.s3(url)?;
        Ok(if prefix.is_empty() {
            s3
        } else {
            Arc::new(object_store::prefix::PrefixStore::new(s3, prefix))
        })
    }

    /// Where uploads' bytes go: with `[archive] url` on object storage, multipart uploads
    /// under its `uploads/`; otherwise files in `dir`. Also says where, for the log.
    pub fn upload_store(
        &self,
        dir: &Path,
    ) -> anyhow::Result<(httpd::upload::store::Store, String)> {
        use httpd::upload::{disk::Disk, objects::Objects, store::Store};
        match &self.archive.url {
            Some(url) if self.archive.enabled => {
                let (s3, prefix) = self.s3(url)?;
                let at = if prefix.is_empty() {
                    "uploads".to_string()
                } else {
                    format!("{prefix}/uploads")
                };
                let said = format!("{}/uploads", url.trim_end_matches('/'));
                let max_size = self.uploads.max_size_mb << 20;
                let objects = Objects::new(s3.clone(), s3, &at, max_size);
                Ok((Store::Objects(objects), said))
            }
            _ => {
                let disk = Disk::open(dir.to_path_buf())
                    .with_context(|| format!("the uploads directory {}", dir.display()))?;
                Ok((Store::Disk(disk), dir.display().to_string()))
            }
        }
    }

    /// The S3 client of `[archive] url` and the prefix in its bucket (no slashes around).
    fn s3(&self, url: &str) -> anyhow::Result<(Arc<object_store::aws::AmazonS3>, String)> {
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
        Ok((Arc::new(s3), prefix.trim_matches('/').to_string()))
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

    /// An edge's fallback to its origins over HTTP, when `[edge] origins` names any.
    pub fn upstream(&self) -> anyhow::Result<Option<httpd::edge::upstream::Upstream>> {
        if self.edge.origins.is_empty() {
            return Ok(None);
        }
        let ca: Vec<&Path> = self.edge.origin_ca.iter().map(PathBuf::as_path).collect();
        httpd::edge::upstream::Upstream::new(&self.edge.origins, self.edge.cache_mb << 20, &ca)
            .map(Some)
            .context("[edge] origins")
    }

    /// An edge's bookkeeping of which streams its viewers ask for.
    pub fn demand(&self) -> replica::Demand {
        replica::Demand::new(self.edge.idle_secs.0, self.edge.replica_mb << 20)
    }

    /// The catalog's database: `[catalog] url`, or SQLite in the data directory.
    pub fn catalog_url(&self) -> String {
        match &self.catalog.url {
            Some(url) => url.clone(),
            None => format!("sqlite://{}", self.data_dir().join("catalog.db").display()),
        }
    }

    /// Uploads' settings, and where their bytes go.
    pub fn uploads(&self) -> (httpd::upload::UploadConfig, PathBuf) {
        let u = &self.uploads;
        let config = httpd::upload::UploadConfig {
            max_size: u.max_size_mb << 20,
            expire: std::time::Duration::from_secs_f64(u.expire_hours * 3600.0),
            ..Default::default()
        };
        let dir = u
            .dir
            .clone()
            .unwrap_or_else(|| self.data_dir().join("uploads"));
        (config, dir)
    }

    /// What fetches an asset's file from a URL (`POST /api/v1/assets`) into the uploads
    /// directory `dir`.
    pub fn fetcher(&self, dir: PathBuf) -> anyhow::Result<crate::prepare::fetch::Fetcher> {
        let u = &self.uploads;
        let ca: Vec<&Path> = u.fetch_ca.iter().map(PathBuf::as_path).collect();
        crate::prepare::fetch::Fetcher::new(
            dir,
            &ca,
            u.fetch_private_addresses,
            u.max_size_mb << 20,
        )
        .context("[uploads] fetch_ca")
    }

    /// Viewers' resume positions: in Redis when configured (shared with the edges), else in the
    /// data directory.
    pub fn resume_store(
        &self,
        redis: Option<&replica::RedisClient>,
    ) -> httpd::api::resume::ResumeStore {
        match redis {
            Some(client) => httpd::api::resume::ResumeStore::redis(client.clone()),
            None => httpd::api::resume::ResumeStore::open(self.data_dir().join("resume.json")),
        }
    }
}
