//! Direct uploads and the tus uploads they create, as the catalog keeps them.
//!
//! A direct upload is what an operator's backend asks for (`POST /api/v1/uploads`): a URL it
//! hands to a creator's browser, good for one upload until it expires. The upload's record
//! holds how many bytes are in: the truth a client resumes from, moved on only from the value
//! a writer started at, so two writers can never both commit bytes at one offset.

use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;

use crate::asset::{Asset, NewAsset};
use crate::{col, json, now_ms, Catalog, Error, Result};

/// Where a direct upload is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DirectStatus {
    /// Its URL may be used (or is being used: `upload_id` says).
    Waiting,
    /// The upload finished and made `asset_id`.
    AssetCreated,
    /// The upload was ended by its client (tus termination).
    Cancelled,
    /// Nobody finished an upload before it expired.
    TimedOut,
}

impl DirectStatus {
    fn parse(s: &str) -> Option<DirectStatus> {
        Some(match s {
            "waiting" => DirectStatus::Waiting,
            "asset_created" => DirectStatus::AssetCreated,
            "cancelled" => DirectStatus::Cancelled,
            "timed_out" => DirectStatus::TimedOut,
            _ => return None,
        })
    }
}

/// What the asset an upload makes starts with (`new_asset_settings`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssetSettings {
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub passthrough: Option<String>,
    /// `public` (default) or `signed`.
    #[serde(default)]
    pub playback: Option<String>,
}

impl AssetSettings {
    /// Whether these settings are ones an asset may have.
    pub fn check(&self) -> Result<()> {
        if let Some(p) = &self.playback {
            if p != "public" && p != "signed" {
                return Err(Error::Invalid("playback: public or signed"));
            }
        }
        crate::Patch {
            title: Some(self.title.clone()),
            description: Some(self.description.clone()),
            tags: Some(self.tags.clone()),
            passthrough: Some(self.passthrough.clone()),
        }
        .check()
    }
}

/// Where the file of an asset to prepare is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// In the upload of this id.
    Upload(String),
    /// At this URL, to be fetched.
    Url(String),
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DirectUpload {
    pub id: String,
    pub status: DirectStatus,
    /// The one web origin whose pages may upload (`None`: the server's CORS setting).
    pub cors_origin: Option<String>,
    pub new_asset_settings: AssetSettings,
    pub upload_id: Option<String>,
    pub asset_id: Option<String>,
    pub created_at: i64,
    pub expires_at: i64,
}

/// One tus upload.
#[derive(Clone, Debug, PartialEq)]
pub struct Upload {
    pub id: String,
    pub direct_id: String,
    /// `None` until a deferred length is told.
    pub length: Option<u64>,
    /// Bytes in, from the start.
    pub received: u64,
    /// `Upload-Metadata` as the client sent it.
    pub metadata: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub completed_at: Option<i64>,
    /// Where its bytes are so far, as the uploads' store describes it (object storage); `None`
    /// on local disk.
    pub stored: Option<String>,
}

fn direct_from_row(r: &AnyRow) -> Result<DirectUpload> {
    let status: String = col(r, "status")?;
    let settings: String = col(r, "settings")?;
    Ok(DirectUpload {
        id: col(r, "id")?,
        status: DirectStatus::parse(&status)
            .ok_or(Error::Invalid("a direct upload has an unknown status"))?,
        cors_origin: col(r, "cors_origin")?,
        new_asset_settings: serde_json::from_str(&settings).unwrap_or_default(),
        upload_id: col(r, "upload_id")?,
        asset_id: col(r, "asset_id")?,
        created_at: col(r, "created_at")?,
        expires_at: col(r, "expires_at")?,
    })
}

fn upload_from_row(r: &AnyRow) -> Result<Upload> {
    let count = |v: i64| u64::try_from(v).map_err(|_| Error::Invalid("a negative byte count"));
    Ok(Upload {
        id: col(r, "id")?,
        direct_id: col(r, "direct_id")?,
        length: col::<Option<i64>>(r, "length")?.map(count).transpose()?,
        received: count(col(r, "received")?)?,
        metadata: col(r, "metadata")?,
        created_at: col(r, "created_at")?,
        expires_at: col(r, "expires_at")?,
        completed_at: col(r, "completed_at")?,
        stored: col(r, "stored")?,
    })
}

fn signed(n: u64) -> Result<i64> {
    i64::try_from(n).map_err(|_| Error::Invalid("a byte count beyond 2^63"))
}

const DIRECT_COLUMNS: &str =
    "id, status, cors_origin, settings, upload_id, asset_id, created_at, expires_at";
const UPLOAD_COLUMNS: &str =
    "id, direct_id, length, received, metadata, created_at, expires_at, completed_at, stored";

impl Catalog {
    /// A new direct upload, `waiting` until `expires_at` (Unix ms).
    pub async fn create_direct_upload(
        &self,
        id: &str,
        cors_origin: Option<&str>,
        settings: &AssetSettings,
        expires_at: i64,
    ) -> Result<DirectUpload> {
        let now = now_ms();
        sqlx::query(
            "INSERT INTO direct_uploads (id, status, cors_origin, settings, upload_id, asset_id, \
             created_at, expires_at) VALUES ($1, 'waiting', $2, $3, NULL, NULL, $4, $5)",
        )
        .bind(id)
        .bind(cors_origin)
        .bind(json(settings))
        .bind(now)
        .bind(expires_at)
        .execute(&self.pool)
        .await?;
        Ok(DirectUpload {
            id: id.into(),
            status: DirectStatus::Waiting,
            cors_origin: cors_origin.map(Into::into),
            new_asset_settings: settings.clone(),
            upload_id: None,
            asset_id: None,
            created_at: now,
            expires_at,
        })
    }

    pub async fn direct_upload(&self, id: &str) -> Result<Option<DirectUpload>> {
        let sql = format!("SELECT {DIRECT_COLUMNS} FROM direct_uploads WHERE id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| direct_from_row(&r)).transpose()
    }

    /// Starts the one upload a direct upload allows: `None` when it has one already, has
    /// expired or is gone. The claim and the upload's record are one transaction.
    pub async fn start_upload(
        &self,
        direct_id: &str,
        upload_id: &str,
        length: Option<u64>,
        metadata: &str,
        expires_at: i64,
    ) -> Result<Option<Upload>> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        let claimed = sqlx::query(
            "UPDATE direct_uploads SET upload_id = $2 WHERE id = $1 AND status = 'waiting' \
             AND upload_id IS NULL AND expires_at > $3",
        )
        .bind(direct_id)
        .bind(upload_id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if claimed.rows_affected() != 1 {
            return Ok(None);
        }
        let length = length.map(signed).transpose()?;
        sqlx::query(
            "INSERT INTO uploads (id, direct_id, length, received, metadata, created_at, \
             expires_at, completed_at) VALUES ($1, $2, $3, 0, $4, $5, $6, NULL)",
        )
        .bind(upload_id)
        .bind(direct_id)
        .bind(length)
        .bind(metadata)
        .bind(now)
        .bind(expires_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(Upload {
            id: upload_id.into(),
            direct_id: direct_id.into(),
            length: length.map(|l| l as u64),
            received: 0,
            metadata: metadata.into(),
            created_at: now,
            expires_at,
            completed_at: None,
            stored: None,
        }))
    }

    pub async fn upload(&self, id: &str) -> Result<Option<Upload>> {
        let sql = format!("SELECT {UPLOAD_COLUMNS} FROM uploads WHERE id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| upload_from_row(&r)).transpose()
    }

    /// The upload that made asset `asset`, if one did.
    pub async fn upload_of_asset(&self, asset: &str) -> Result<Option<Upload>> {
        let sql = format!(
            "SELECT {UPLOAD_COLUMNS} FROM uploads WHERE id = \
             (SELECT upload_id FROM direct_uploads WHERE asset_id = $1)"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(asset)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| upload_from_row(&r)).transpose()
    }

    /// Records that the bytes from `from` to `to` are in, and where they are (`stored`: see
    /// [`Upload::stored`]), if `from` is still where the upload stands (false: another writer
    /// moved it, or it is gone).
    pub async fn advance_upload(
        &self,
        id: &str,
        from: u64,
        to: u64,
        stored: Option<&str>,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE uploads SET received = $3, stored = $4 WHERE id = $1 AND received = $2 \
             AND completed_at IS NULL",
        )
        .bind(id)
        .bind(signed(from)?)
        .bind(signed(to)?)
        .bind(stored)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Sets a deferred length, once (false: it was known already).
    pub async fn set_upload_length(&self, id: &str, length: u64) -> Result<bool> {
        let done = sqlx::query("UPDATE uploads SET length = $2 WHERE id = $1 AND length IS NULL")
            .bind(id)
            .bind(signed(length)?)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Marks a finished upload complete and makes its asset, in one transaction; the direct
    /// upload then says which asset. `None` when it was completed already.
    pub async fn complete_upload(
        &self,
        upload: &Upload,
        asset: &NewAsset,
    ) -> Result<Option<Asset>> {
        let mut tx = self.pool.begin().await?;
        let now = now_ms();
        let marked = sqlx::query(
            "UPDATE uploads SET completed_at = $2 WHERE id = $1 AND completed_at IS NULL",
        )
        .bind(&upload.id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if marked.rows_affected() != 1 {
            return Ok(None);
        }
        let made = crate::insert_asset(&mut tx, asset).await?;
        sqlx::query(
            "UPDATE direct_uploads SET status = 'asset_created', asset_id = $2 WHERE id = $1",
        )
        .bind(&upload.direct_id)
        .bind(&made.id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(made))
    }

    /// Ends an unfinished upload (tus termination): its record goes, its direct upload is
    /// `cancelled`. False when there was no such unfinished upload.
    pub async fn cancel_upload(&self, upload: &Upload) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let gone = sqlx::query("DELETE FROM uploads WHERE id = $1 AND completed_at IS NULL")
            .bind(&upload.id)
            .execute(&mut *tx)
            .await?;
        if gone.rows_affected() != 1 {
            return Ok(false);
        }
        sqlx::query("UPDATE direct_uploads SET status = 'cancelled' WHERE id = $1")
            .bind(&upload.direct_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Takes the oldest uploaded or fetched asset whose media waits to be made, moving it to
    /// `preparing`: one `waiting` with no reason given (a reason says it waits for something
    /// else), or one left `preparing` and untouched since `stale_before` (Unix ms) by a process
    /// that stopped. With it, where its file is. When several processes try at once, one wins.
    pub async fn claim_asset_to_prepare(
        &self,
        stale_before: i64,
    ) -> Result<Option<(Asset, Input)>> {
        for _ in 0..8 {
            let found = sqlx::query(
                "SELECT a.id AS id, a.status AS status, a.updated_at AS updated_at, \
                 d.upload_id AS upload_id, a.input_url AS input_url FROM assets a \
                 LEFT JOIN direct_uploads d ON d.asset_id = a.id \
                 WHERE ((a.source = 'upload' AND d.upload_id IS NOT NULL) OR \
                 (a.source = 'url' AND a.input_url IS NOT NULL)) AND \
                 ((a.status = 'waiting' AND a.error IS NULL) OR \
                 (a.status = 'preparing' AND a.updated_at < $1)) \
                 ORDER BY a.created_at, a.id LIMIT 1",
            )
            .bind(stale_before)
            .fetch_optional(&self.pool)
            .await?;
            let Some(row) = found else {
                return Ok(None);
            };
            let id: String = col(&row, "id")?;
            let status: String = col(&row, "status")?;
            let updated_at: i64 = col(&row, "updated_at")?;
            let input = match (
                col::<Option<String>>(&row, "upload_id")?,
                col::<Option<String>>(&row, "input_url")?,
            ) {
                (Some(upload), _) => Input::Upload(upload),
                (None, Some(url)) => Input::Url(url),
                (None, None) => return Err(Error::Invalid("an asset to prepare has no input")),
            };
            let claimed = sqlx::query(
                "UPDATE assets SET status = 'preparing', error = NULL, progress = 0, \
                 updated_at = $4 WHERE id = $1 AND status = $2 AND updated_at = $3",
            )
            .bind(&id)
            .bind(&status)
            .bind(updated_at)
            .bind(now_ms().max(updated_at + 1))
            .execute(&self.pool)
            .await?;
            if claimed.rows_affected() == 1 {
                return Ok(self.get(&id).await?.map(|a| (a, input)));
            }
            // Another process took it first: look again.
        }
        Ok(None)
    }

    /// Records how far an asset's preparation has come (0 to 100); false when it is no
    /// longer `preparing`.
    pub async fn set_progress(&self, id: &str, percent: f64) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE assets SET progress = $2, updated_at = $3 WHERE id = $1 AND status = 'preparing'",
        )
        .bind(id)
        .bind(percent.clamp(0.0, 100.0))
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Unfinished uploads past their expiry are removed (and returned, for their bytes to be
    /// deleted) and direct uploads never finished in time are `timed_out`. An upload whose
    /// bytes are all in but whose asset was not made yet is kept.
    pub async fn expire_uploads(&self) -> Result<Vec<Upload>> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        let sql = format!(
            "SELECT {UPLOAD_COLUMNS} FROM uploads WHERE completed_at IS NULL AND expires_at <= $1 \
             AND (length IS NULL OR received < length)"
        );
        let gone: Vec<Upload> = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(now)
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(upload_from_row)
            .collect::<Result<_>>()?;
        sqlx::query(
            "DELETE FROM uploads WHERE completed_at IS NULL AND expires_at <= $1 \
             AND (length IS NULL OR received < length)",
        )
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE direct_uploads SET status = 'timed_out' WHERE status = 'waiting' AND \
             expires_at <= $1 AND (upload_id IS NULL OR upload_id NOT IN (SELECT id FROM uploads))",
        )
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(gone)
    }
}
