//! Upload bytes on local disk: one file per upload (`{dir}/{upload id}`), written at the
//! offset the catalog says is in, cut back when a chunk is refused, deleted when the upload
//! is ended or expires.

use std::io::{SeekFrom, Write};
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use tokio::fs::OpenOptions;
use tokio::io::AsyncSeekExt;

/// A writer hands its bytes to a blocking thread once this many are waiting: one hand-off
/// per mebibyte rather than one per body frame (16 KiB or less), and no copy on the way.
const BATCH: usize = 1 << 20;

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
    pub async fn writer(&self, id: &str, offset: u64) -> std::io::Result<Writer> {
        let mut f = OpenOptions::new().write(true).open(self.path(id)).await?;
        f.set_len(offset).await?;
        f.seek(SeekFrom::Start(offset)).await?;
        Ok(Writer {
            file: Arc::new(f.into_std().await),
            waiting: Vec::new(),
            waiting_len: 0,
        })
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

/// Appends to an upload's file: bytes as they came off the network, written in batches on a
/// blocking thread; [`Writer::finish`] writes the rest and flushes it all to disk.
pub struct Writer {
    file: Arc<std::fs::File>,
    /// At most [`BATCH`] bytes (and one frame) not yet handed to the file.
    waiting: Vec<Bytes>,
    waiting_len: usize,
}

impl Writer {
    pub async fn push(&mut self, bytes: Bytes) -> std::io::Result<()> {
        self.waiting_len += bytes.len();
        self.waiting.push(bytes);
        if self.waiting_len >= BATCH {
            self.write_waiting().await?;
        }
        Ok(())
    }

    async fn write_waiting(&mut self) -> std::io::Result<()> {
        let batch = std::mem::take(&mut self.waiting);
        self.waiting_len = 0;
        let file = self.file.clone();
        tokio::task::spawn_blocking(move || batch.iter().try_for_each(|b| (&*file).write_all(b)))
            .await
            .map_err(std::io::Error::other)?
    }

    /// Writes what waits and flushes the file's data to disk.
    pub async fn finish(mut self) -> std::io::Result<()> {
        self.write_waiting().await?;
        let file = self.file.clone();
        tokio::task::spawn_blocking(move || file.sync_data())
            .await
            .map_err(std::io::Error::other)?
    }
}
