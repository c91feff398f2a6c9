//! An upload kept in object storage (`[archive] url` on S3), copied into the uploads
//! directory to be read there: FFmpeg's demuxers seek about a file, which a local copy makes
//! cheap. The copy goes a range of [`CHUNK`] at a time (nothing whole in memory) and counts
//! as the first part of the asset's progress.

use std::path::Path;
use std::time::{Duration, Instant};

use catalog::Catalog;
use httpd::upload::objects::Objects;
use object_store::ObjectStoreExt;
use tokio::io::AsyncWriteExt;

/// Bytes asked for at once.
const CHUNK: u64 = 8 << 20;
/// How often the copy's progress is recorded.
const PROGRESS_EVERY: Duration = Duration::from_secs(2);

/// Copies upload `upload` of `objects` to `path`, recording its progress as 0 to `share`
/// percent of asset `id`'s; the bytes copied, or why not.
pub async fn copy(
    catalog: &Catalog,
    objects: &Objects,
    upload: &str,
    path: &Path,
    id: &str,
    share: f64,
) -> Result<u64, String> {
    let at = objects.path(upload);
    let store = objects.store();
    let size = store
        .head(&at)
        .await
        .map_err(|e| format!("the upload's bytes are not in object storage at {at}: {e}"))?
        .size;
    let mut file = tokio::fs::File::create(path)
        .await
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    let mut copied = 0u64;
    let mut told = Instant::now();
    while copied < size {
        let chunk = store
            .get_range(&at, copied..size.min(copied + CHUNK))
            .await
            .map_err(|e| format!("reading the upload from object storage: {e}"))?;
        if chunk.is_empty() {
            break;
        }
        copied += chunk.len() as u64;
        file.write_all(&chunk)
            .await
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        if told.elapsed() >= PROGRESS_EVERY && size > 0 {
            told = Instant::now();
            let percent = share * (copied as f64 / size as f64).min(1.0);
            super::progress(catalog, id, percent, "the copy").await?;
        }
    }
    file.sync_data()
        .await
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    if copied != size {
        return Err(format!(
            "the upload's object ended after {copied} of {size} bytes"
        ));
    }
    Ok(copied)
}
