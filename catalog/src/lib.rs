//! The catalog: every asset (a live stream's archive; later, an uploaded video) with its status
//! and metadata, in SQL, apart from the media it describes.
//!
//! SQLite in the data directory by default (nothing to install), PostgreSQL
//! (`postgres://…`) for one catalog that several origins and workers share. One code path for
//! both through sqlx's `Any` driver: the schema ([`migrations`]) uses only the types both have
//! (TEXT, BIGINT, DOUBLE PRECISION: times are Unix milliseconds, lists JSON text), queries use
//! `$n` placeholders, and migrations run when the catalog opens (on PostgreSQL under sqlx's
//! advisory lock, so origins starting together apply them once).

mod asset;
mod migrations;
mod upload;

use std::time::Duration;

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, AssertSqlSafe, Row};

pub use asset::{Asset, Filter, Media, NewAsset, Page, Patch, Source, Status, MAX_TITLE};
pub use upload::{AssetSettings, DirectStatus, DirectUpload, Input, Upload};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("catalog url {0:?}: only sqlite: and postgres:// catalogs are supported")]
    Url(String),
    #[error("catalog: {0}")]
    Db(#[from] sqlx::Error),
    #[error("catalog migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("catalog: asset {0} already exists")]
    Exists(String),
    #[error("catalog: {0}")]
    Invalid(&'static str),
}

pub type Result<T> = std::result::Result<T, Error>;

/// An open catalog; cheap to clone (a connection pool).
#[derive(Clone, Debug)]
pub struct Catalog {
    pool: AnyPool,
    shared: bool,
}

impl Catalog {
    /// A catalog other processes may use too (PostgreSQL), rather than this process's own.
    pub fn is_shared(&self) -> bool {
        self.shared
    }

    /// Opens the catalog at `url` (`sqlite://PATH`, created if missing, or `sqlite::memory:`;
    /// `postgres://USER@HOST/DB`) and brings its schema up to date.
    pub async fn open(url: &str) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let sqlite = url.starts_with("sqlite:");
        if !sqlite && !url.starts_with("postgres://") && !url.starts_with("postgresql://") {
            return Err(Error::Url(url.into()));
        }
        let url = if sqlite && !url.contains(":memory:") && !url.contains("mode=") {
            format!("{url}{}mode=rwc", if url.contains('?') { '&' } else { '?' })
        } else {
            url.to_string()
        };
        let options = AnyPoolOptions::new().acquire_timeout(Duration::from_secs(10));
        // One SQLite connection, kept for good: writes serialise anyway, and an in-memory
        // database lives and dies with its connection.
        let options = if sqlite {
            options
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
        } else {
            options.max_connections(8)
        };
        let pool = options.connect(&url).await?;
        if sqlite && !url.contains(":memory:") {
            // A write appends to the log instead of rewriting pages in place: a crash mid-write
            // loses that write only, and other processes (sqlite3, a backup) can read meanwhile.
            sqlx::query("PRAGMA journal_mode = WAL")
                .execute(&pool)
                .await?;
        }
        migrations::run(&pool).await?;
        Ok(Catalog {
            pool,
            shared: !sqlite,
        })
    }

    /// Adds an asset; [`Error::Exists`] when its id is taken.
    pub async fn create(&self, new: &NewAsset) -> Result<Asset> {
        let mut tx = self.pool.begin().await?;
        let asset = insert_asset(&mut tx, new).await?;
        tx.commit().await?;
        Ok(asset)
    }

    pub async fn get(&self, id: &str) -> Result<Option<Asset>> {
        let row = sqlx::query(SELECT_ASSET_WHERE_ID)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| asset::from_row(&r)).transpose()
    }

    /// Assets newest first, `filter.limit` to a page.
    pub async fn list(&self, filter: &Filter) -> Result<Page> {
        let mut clauses = Vec::new();
        let mut args: Vec<String> = Vec::new();
        if let Some(s) = filter.status {
            args.push(s.as_str().into());
            clauses.push(format!("status = ${}", args.len()));
        }
        if let Some(p) = &filter.passthrough {
            args.push(p.clone());
            clauses.push(format!("passthrough = ${}", args.len()));
        }
        if let Some(t) = &filter.tag {
            args.push(t.clone());
            clauses.push(format!(
                "id IN (SELECT asset_id FROM asset_tags WHERE tag = ${})",
                args.len()
            ));
        }
        let condition = if clauses.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", clauses.join(" AND "))
        };
        let limit = filter.limit.clamp(1, Filter::MAX_LIMIT);
        let offset = (filter.page.max(1) - 1).saturating_mul(limit);
        // The limit and offset are numbers of ours; everything a client sent is bound.
        let sql = format!(
            "{SELECT_ASSET}{condition} ORDER BY created_at DESC, id DESC LIMIT {} OFFSET {offset}",
            limit + 1
        );
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for a in &args {
            query = query.bind(a.clone());
        }
        let rows = query.fetch_all(&self.pool).await?;
        let more = rows.len() as u64 > limit;
        let assets = rows
            .iter()
            .take(limit as usize)
            .map(asset::from_row)
            .collect::<Result<Vec<_>>>()?;
        Ok(Page { assets, more })
    }

    /// Changes what `patch` names, and only that (two changes at once to different fields
    /// both stay); the asset as it is now, `None` when there is none.
    pub async fn update(&self, id: &str, patch: &Patch) -> Result<Option<Asset>> {
        patch.check()?;
        let tags = patch.tags();
        // $1 is the id, $2 the time; then one parameter per field named.
        let mut sets = vec!["updated_at = $2".to_string()];
        let mut values: Vec<Option<String>> = Vec::new();
        for (column, value) in [
            ("title", patch.title.clone()),
            ("description", patch.description.clone()),
            ("tags", tags.as_ref().map(|t| Some(json(t)))),
            ("passthrough", patch.passthrough.clone()),
        ] {
            if let Some(v) = value {
                values.push(v);
                sets.push(format!("{column} = ${}", values.len() + 2));
            }
        }
        let sql = format!("UPDATE assets SET {} WHERE id = $1", sets.join(", "));
        let mut tx = self.pool.begin().await?;
        let mut query = sqlx::query(AssertSqlSafe(sql)).bind(id).bind(now_ms());
        for v in values {
            query = query.bind(v);
        }
        if query.execute(&mut *tx).await?.rows_affected() == 0 {
            return Ok(None);
        }
        if let Some(tags) = &tags {
            set_tags(&mut tx, id, tags).await?;
        }
        let row = sqlx::query(SELECT_ASSET_WHERE_ID)
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        asset::from_row(&row).map(Some)
    }

    /// Moves an asset to `status` (`error`: why, for `errored`, or why it waits); false when
    /// there is none. Its progress is cleared.
    pub async fn set_status(&self, id: &str, status: Status, error: Option<&str>) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE assets SET status = $2, error = $3, progress = NULL, updated_at = $4 WHERE id = $1",
        )
                .bind(id)
                .bind(status.as_str())
                .bind(error)
                .bind(now_ms())
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Records what the media turned out to be; false when there is no such asset.
    pub async fn set_media(&self, id: &str, media: &Media) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE assets SET duration = $2, width = $3, height = $4, codecs = $5, \
             renditions = $6, updated_at = $7 WHERE id = $1",
        )
        .bind(id)
        .bind(media.duration)
        .bind(media.width.map(i64::from))
        .bind(media.height.map(i64::from))
        .bind(json(&media.codecs))
        .bind(json(&media.renditions))
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Removes an asset's record; false when there was none. (Its media is the caller's.)
    pub async fn delete(&self, id: &str) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM asset_tags WHERE asset_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let done = sqlx::query("DELETE FROM assets WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    /// Closes every connection (a clean shutdown, so SQLite checkpoints its log).
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

const SELECT_ASSET: &str = "SELECT id, status, error, source, stream, title, description, tags, \
     passthrough, playback, duration, width, height, codecs, renditions, progress, created_at, \
     updated_at FROM assets";
const SELECT_ASSET_WHERE_ID: &str = "SELECT id, status, error, source, stream, title, \
     description, tags, passthrough, playback, duration, width, height, codecs, renditions, \
     progress, created_at, updated_at FROM assets WHERE id = $1";

/// Adds an asset inside `tx`; [`Error::Exists`] when its id is taken.
pub(crate) async fn insert_asset(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    new: &NewAsset,
) -> Result<Asset> {
    let asset = Asset::new(new, now_ms());
    let inserted = sqlx::query(
        "INSERT INTO assets (id, status, error, source, stream, title, description, tags, \
         passthrough, playback, duration, width, height, codecs, renditions, created_at, updated_at, \
         input_url) \
         VALUES ($1, $2, NULL, $3, $4, $5, $6, $7, $8, $9, NULL, NULL, NULL, '[]', '[]', $10, $11, $12) \
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(&asset.id)
    .bind(asset.status.as_str())
    .bind(asset.source.as_str())
    .bind(&asset.stream)
    .bind(&asset.title)
    .bind(&asset.description)
    .bind(json(&asset.tags))
    .bind(&asset.passthrough)
    .bind(&asset.playback)
    .bind(asset.created_at)
    .bind(asset.updated_at)
    .bind(&new.input_url)
    .execute(&mut **tx)
    .await?;
    if inserted.rows_affected() == 0 {
        return Err(Error::Exists(asset.id));
    }
    set_tags(tx, &asset.id, &asset.tags).await?;
    Ok(asset)
}

async fn set_tags(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    id: &str,
    tags: &[String],
) -> Result<()> {
    sqlx::query("DELETE FROM asset_tags WHERE asset_id = $1")
        .bind(id)
        .execute(&mut **tx)
        .await?;
    for tag in tags {
        sqlx::query(
            "INSERT INTO asset_tags (asset_id, tag) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(id)
        .bind(tag)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

pub(crate) fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "[]".into())
}

/// Now, in Unix milliseconds (the catalog's times).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// A column that must be there.
pub(crate) fn col<'r, T: sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any>>(
    row: &'r AnyRow,
    name: &str,
) -> Result<T> {
    Ok(row.try_get(name)?)
}
