//! Upload bytes on local disk: one file per upload (`{dir}/{upload id}`), written at the
//! offset the catalog says is in, cut back when a chunk is refused, deleted when the upload
//! is ended or expires.

use std::io::SeekFrom;
use std::path::PathBuf;

use tokio::fs::{File, OpenOptions};
use tokio::io::AsyncSeekExt;

#[derive(Clone, Debug)]
pub struct Disk {
    dir: PathBuf,
}

impl Disk {
    /// Keeps uploads in `dir` (made if missing).
    pub fn open(dir: PathBuf) -> std::io::Result<Disk> {
        std::fs::create_dir_all(&dir)?;
        Ok(Disk { dir })
    }

    /// Where upload `id`'s bytes are (the ids are ours: letters and digits).
    pub fn path(&self, id: &str) -> PathBuf {
        self.dir.join(id)
    }

    /// A new, empty file for upload `id`.
    pub async fn create(&self, id: &str) -> std::io::Result<()> {
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(self.path(id))
            .await
            .map(drop)
    }

    /// Upload `id`'s file, to write from `offset` on. Bytes past `offset` (a chunk that was
    /// written but not counted) are cut first.
    pub async fn writer(&self, id: &str, offset: u64) -> std::io::Result<File> {
        let mut f = OpenOptions::new().write(true).open(self.path(id)).await?;
        f.set_len(offset).await?;
        f.seek(SeekFrom::Start(offset)).await?;
        Ok(f)
    }

    /// Cuts upload `id`'s file back to `len` bytes (a refused chunk).
    pub async fn truncate(&self, id: &str, len: u64) -> std::io::Result<()> {
        let f = OpenOptions::new().write(true).open(self.path(id)).await?;
        f.set_len(len).await
    }

    /// Deletes upload `id`'s bytes, if any.
    pub async fn remove(&self, id: &str) {
        if let Err(e) = tokio::fs::remove_file(self.path(id)).await {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(upload = id, error = %e, "cannot delete an upload's bytes");
            }
        }
    }
}
