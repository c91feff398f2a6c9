//! Where uploads' bytes go: files on local disk ([`super::disk`], the default) or object
//! storage ([`super::objects`], with `[archive] url` on S3). The tus handlers see one
//! interface: write from the counted offset, undo what was not counted, complete, remove.

use bytes::Bytes;
use catalog::Upload;

use super::disk::{self, Disk};
use super::objects::{self, Objects};

#[derive(Clone, Debug)]
pub enum Store {
    Disk(Disk),
    Objects(Objects),
}

pub enum Writer<'a> {
    Disk(disk::Writer),
    Objects(objects::Writer<'a>),
}

impl Store {
    /// Room for a new upload.
    pub async fn create(&self, id: &str) -> std::io::Result<()> {
        match self {
            Store::Disk(d) => d.create(id).await,
            Store::Objects(_) => Ok(()),
        }
    }

    /// A writer going on from where the catalog says `u` stands.
    pub async fn writer(&self, u: &Upload) -> std::io::Result<Writer<'_>> {
        Ok(match self {
            Store::Disk(d) => Writer::Disk(d.writer(&u.id, u.received).await?),
            Store::Objects(o) => {
                Writer::Objects(o.writer(&u.id, u.received, u.stored.as_deref()).await?)
            }
        })
    }

    /// Bytes a request wrote were not counted (`stored`: where its writer left them): the
    /// upload is back where the catalog has `u`.
    pub async fn undo(&self, u: &Upload, stored: Option<&str>) {
        match self {
            Store::Disk(d) => {
                if let Err(e) = d.truncate(&u.id, u.received).await {
                    tracing::warn!(upload = %u.id, error = %e, "cannot cut back an upload's file");
                }
            }
            Store::Objects(o) => o.discard(&u.id, u.stored.as_deref(), stored).await,
        }
    }

    /// Bytes a request wrote will not be counted, and another writer may have the upload now:
    /// its own objects go (`stored`), a shared file is left as it is.
    pub async fn abandon(&self, u: &Upload, stored: Option<&str>) {
        if let Store::Objects(o) = self {
            o.discard(&u.id, u.stored.as_deref(), stored).await;
        }
    }

    /// The catalog took `stored` in place of what `u` had.
    pub async fn counted(&self, u: &Upload, stored: Option<&str>) {
        if let Store::Objects(o) = self {
            o.counted(u.stored.as_deref(), stored).await;
        }
    }

    /// All of `u` is in: made one whole file or object for packaging.
    pub async fn complete(&self, u: &Upload) -> std::io::Result<()> {
        match self {
            Store::Disk(_) => Ok(()),
            Store::Objects(o) => o.complete(&u.id, u.stored.as_deref()).await,
        }
    }

    /// Deletes everything of upload `id` (`stored`: the catalog's record of it).
    pub async fn remove(&self, id: &str, stored: Option<&str>) {
        match self {
            Store::Disk(d) => d.remove(id).await,
            Store::Objects(o) => o.remove(id, stored).await,
        }
    }
}

impl Writer<'_> {
    pub async fn push(&mut self, bytes: Bytes) -> std::io::Result<()> {
        match self {
            Writer::Disk(w) => w.push(bytes).await,
            Writer::Objects(w) => w.push(bytes).await,
        }
    }

    /// Everything written is stored; where it is, for the catalog (`None` on disk).
    pub async fn finish(self) -> std::io::Result<Option<String>> {
        match self {
            Writer::Disk(w) => w.finish().await.map(|()| None),
            Writer::Objects(w) => w.finish().await.map(Some),
        }
    }
}
