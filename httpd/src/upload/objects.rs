//! Upload bytes in object storage (with `[archive] url` on S3): each upload is a multipart
//! upload at `{prefix}/{upload id}`, its bytes put as parts of at least [`PART`] as they
//! come (more for uploads so large that S3's 10,000 parts would not hold them). What does not
//! fill a part when a request ends is kept as an object of its own (the *tail*, named by the
//! offset it ends at and a random tag, so two requests racing from one offset never share
//! one) until the next request, on this origin or another,
//! reads it back and goes on. Where everything is ([`Stored`]) goes into the catalog with the
//! offset, in one statement, so the two always agree; nothing is held in memory but the part
//! being filled. When the upload is whole the tail is its last part and the multipart upload
//! is completed into one object ([`Objects::path`]), which packaging fetches.
//!
//! A request whose bytes are refused (a wrong checksum, too many bytes) or not counted leaves
//! the catalog as it was: the parts it put are put again under the same numbers by the next
//! request (S3 keeps the last), its tail object is deleted.

use std::sync::Arc;

use bytes::Bytes;
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};

/// Bytes per part, at least (S3 takes parts of 5 MiB to 5 GiB, but the last).
pub const PART: usize = 8 << 20;
/// Parts an upload may need, at most (S3 takes 10,000).
const MAX_PARTS: u64 = 9_000;

/// Where an unfinished upload's bytes are, as the catalog keeps it (JSON).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Stored {
    /// The multipart upload, once a part was put.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multipart: Option<String>,
    /// Each part's content id (its ETag), in order.
    #[serde(default)]
    pub parts: Vec<String>,
    /// The bytes in those parts.
    #[serde(default)]
    pub in_parts: u64,
    /// The object holding the bytes after the parts, when there are any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tail: Option<String>,
}

impl Stored {
    pub fn parse(text: Option<&str>) -> std::io::Result<Stored> {
        match text {
            None => Ok(Stored::default()),
            Some(t) => serde_json::from_str(t).map_err(|e| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("the catalog's record of an upload's parts: {e}"),
                )
            }),
        }
    }

    fn text(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

fn failed(e: object_store::Error) -> std::io::Error {
    std::io::Error::other(e)
}

/// Uploads under one prefix of a bucket.
#[derive(Clone)]
pub struct Objects {
    objects: Arc<dyn ObjectStore>,
    multipart: Arc<dyn MultipartStore>,
    prefix: Path,
    /// Bytes per part: [`PART`], or more when uploads of `max_size` would need more than
    /// [`MAX_PARTS`].
    part: usize,
}

impl std::fmt::Debug for Objects {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Objects({})", self.prefix)
    }
}

impl Objects {
    /// Uploads of at most `max_size` bytes at `prefix` in a store (S3's client is both an
    /// [`ObjectStore`] and a [`MultipartStore`]).
    pub fn new(
        objects: Arc<dyn ObjectStore>,
        multipart: Arc<dyn MultipartStore>,
        prefix: &str,
        max_size: u64,
    ) -> Objects {
        let part = PART.max(max_size.div_ceil(MAX_PARTS) as usize);
        Objects {
            objects,
            multipart,
            prefix: Path::from(prefix),
            part,
        }
    }

    /// Where upload `id` is once whole.
    pub fn path(&self, id: &str) -> Path {
        self.prefix.clone().join(id)
    }

    fn tail_path(&self, name: &str) -> Path {
        self.prefix.clone().join(name)
    }

    /// The store the whole uploads are read from.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.objects
    }

    /// A writer going on from `offset`, where `stored` says the bytes are.
    pub async fn writer(
        &self,
        id: &str,
        offset: u64,
        stored: Option<&str>,
    ) -> std::io::Result<Writer<'_>> {
        let state = Stored::parse(stored)?;
        let mut filling = Filling::default();
        if let Some(tail) = &state.tail {
            let got = self
                .objects
                .get(&self.tail_path(tail))
                .await
                .map_err(failed)?;
            filling.push(got.bytes().await.map_err(failed)?);
        }
        if state.in_parts + filling.len != offset {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "upload {id}: {} bytes in parts and {} in its tail, not the {offset} counted",
                    state.in_parts, filling.len
                ),
            ));
        }
        Ok(Writer {
            objects: self,
            id: id.to_string(),
            state,
            filling,
            offset,
        })
    }

    /// Makes the whole upload one object at [`Objects::path`]: its tail put as the last part
    /// and the multipart upload completed (or, under one part, put as it is). Done again
    /// after a failure, it finds the object there.
    pub async fn complete(&self, id: &str, stored: Option<&str>) -> std::io::Result<()> {
        let state = Stored::parse(stored)?;
        let path = self.path(id);
        if self.objects.head(&path).await.is_ok() {
            return Ok(());
        }
        let tail = match &state.tail {
            Some(t) => self
                .objects
                .get(&self.tail_path(t))
                .await
                .map_err(failed)?
                .bytes()
                .await
                .map_err(failed)?,
            None => Bytes::new(),
        };
        match &state.multipart {
            None => {
                self.objects
                    .put(&path, PutPayload::from(tail))
                    .await
                    .map_err(failed)?;
            }
            Some(multipart) => {
                let mut parts: Vec<PartId> = state
                    .parts
                    .iter()
                    .map(|c| PartId {
                        content_id: c.clone(),
                    })
                    .collect();
                if !tail.is_empty() {
                    let last = self
                        .multipart
                        .put_part(&path, multipart, parts.len(), PutPayload::from(tail))
                        .await
                        .map_err(failed)?;
                    parts.push(last);
                }
                self.multipart
                    .complete_multipart(&path, multipart, parts)
                    .await
                    .map_err(failed)?;
            }
        }
        if let Some(t) = &state.tail {
            self.delete(&self.tail_path(t)).await;
        }
        Ok(())
    }

    /// After the catalog took `new` in place of `old`: `old`'s tail goes.
    pub async fn counted(&self, old: Option<&str>, new: Option<&str>) {
        let (Ok(old), Ok(new)) = (Stored::parse(old), Stored::parse(new)) else {
            return;
        };
        if let Some(t) = old.tail.filter(|t| new.tail.as_ref() != Some(t)) {
            self.delete(&self.tail_path(&t)).await;
        }
    }

    /// A request's `new` state was not counted (the catalog keeps `old`): what only it has goes.
    pub async fn discard(&self, id: &str, old: Option<&str>, new: Option<&str>) {
        let (Ok(old), Ok(new)) = (Stored::parse(old), Stored::parse(new)) else {
            return;
        };
        if let Some(t) = new.tail.filter(|t| old.tail.as_ref() != Some(t)) {
            self.delete(&self.tail_path(&t)).await;
        }
        if let Some(m) = new.multipart.filter(|_| old.multipart.is_none()) {
            self.abort(id, &m).await;
        }
    }

    /// Everything of upload `id`: its multipart upload, its tail, the whole object.
    pub async fn remove(&self, id: &str, stored: Option<&str>) {
        if let Ok(state) = Stored::parse(stored) {
            if let Some(m) = &state.multipart {
                self.abort(id, m).await;
            }
            if let Some(t) = &state.tail {
                self.delete(&self.tail_path(t)).await;
            }
        }
        self.delete(&self.path(id)).await;
    }

    async fn abort(&self, id: &str, multipart: &str) {
        let multipart = multipart.to_string();
        if let Err(e) = self
            .multipart
            .abort_multipart(&self.path(id), &multipart)
            .await
        {
            if !matches!(e, object_store::Error::NotFound { .. }) {
                tracing::warn!(upload = id, error = %e, "cannot abort an upload's multipart upload");
            }
        }
    }

    async fn delete(&self, path: &Path) {
        match self.objects.delete(path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => {
                tracing::warn!(object = %path, error = %e, "cannot delete an upload's object")
            }
        }
    }
}

/// Bytes waiting for their part, as they came off the network (no copy: a part's payload is
/// the list of them).
#[derive(Default)]
struct Filling {
    chunks: Vec<Bytes>,
    len: u64,
}

impl Filling {
    fn push(&mut self, b: Bytes) {
        self.len += b.len() as u64;
        self.chunks.push(b);
    }

    /// Everything waiting, as one payload, and its length.
    fn take(&mut self) -> (PutPayload, u64) {
        let len = std::mem::take(&mut self.len);
        (std::mem::take(&mut self.chunks).into_iter().collect(), len)
    }
}

/// Puts an upload's bytes as parts as they fill; [`Writer::finish`] keeps the rest as the
/// tail and says where everything is.
pub struct Writer<'a> {
    objects: &'a Objects,
    id: String,
    state: Stored,
    /// Bytes after the parts (the old tail's first), less than a part between pushes.
    filling: Filling,
    offset: u64,
}

impl Writer<'_> {
    pub async fn push(&mut self, bytes: Bytes) -> std::io::Result<()> {
        self.offset += bytes.len() as u64;
        self.filling.push(bytes);
        if self.filling.len >= self.objects.part as u64 {
            self.put_part().await?;
        }
        Ok(())
    }

    async fn put_part(&mut self) -> std::io::Result<()> {
        let o = self.objects;
        let path = o.path(&self.id);
        let multipart = match &self.state.multipart {
            Some(m) => m.clone(),
            None => {
                let m = o.multipart.create_multipart(&path).await.map_err(failed)?;
                self.state.multipart = Some(m.clone());
                m
            }
        };
        let (data, len) = self.filling.take();
        let part = o
            .multipart
            .put_part(&path, &multipart, self.state.parts.len(), data)
            .await
            .map_err(failed)?;
        self.state.parts.push(part.content_id);
        self.state.in_parts += len;
        self.state.tail = None;
        Ok(())
    }

    /// Keeps what did not fill a part as the tail object; where everything is now, for the
    /// catalog.
    pub async fn finish(mut self) -> std::io::Result<String> {
        if self.filling.len == 0 {
            self.state.tail = None;
        } else {
            let name = format!(
                "{}.tail.{}.{:08x}",
                self.id,
                self.offset,
                rand::random::<u32>()
            );
            let (data, _) = self.filling.take();
            self.objects
                .objects
                .put(&self.objects.tail_path(&name), data)
                .await
                .map_err(failed)?;
            self.state.tail = Some(name);
        }
        Ok(self.state.text())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;

    async fn write(
        o: &Objects,
        id: &str,
        offset: u64,
        stored: Option<&str>,
        bytes: &[u8],
    ) -> String {
        let mut w = o.writer(id, offset, stored).await.unwrap();
        for chunk in bytes.chunks(100_000) {
            w.push(Bytes::copy_from_slice(chunk)).await.unwrap();
        }
        w.finish().await.unwrap()
    }

    #[tokio::test]
    async fn requests_of_any_size_make_one_object() {
        let mem = Arc::new(InMemory::new());
        let o = Objects::new(mem.clone(), mem.clone(), "up", 1 << 30);
        let data: Vec<u8> = (0..(PART * 2 + 12_345)).map(|i| (i % 251) as u8).collect();
        // Three requests: a small one (a tail only), one across a part, the rest.
        let a = write(&o, "u", 0, None, &data[..1000]).await;
        assert_eq!(Stored::parse(Some(&a)).unwrap().parts.len(), 0);
        let cut = PART + 5000;
        let b = write(&o, "u", 1000, Some(&a), &data[1000..cut]).await;
        let sb = Stored::parse(Some(&b)).unwrap();
        assert_eq!(sb.parts.len(), 1, "{sb:?}");
        assert!(sb.in_parts >= PART as u64, "{sb:?}");
        o.counted(Some(&a), Some(&b)).await;
        // A request refused: its tail goes, the catalog's state stays good.
        let refused = write(&o, "u", cut as u64, Some(&b), &data[cut..cut + 10]).await;
        o.discard("u", Some(&b), Some(&refused)).await;
        let c = write(&o, "u", cut as u64, Some(&b), &data[cut..]).await;
        o.counted(Some(&b), Some(&c)).await;
        o.complete("u", Some(&c)).await.unwrap();
        o.complete("u", Some(&c)).await.unwrap();
        let whole = mem.get(&o.path("u")).await.unwrap().bytes().await.unwrap();
        assert_eq!(whole.len(), data.len());
        assert!(whole == data, "the same bytes");
        // Nothing else is left under the prefix.
        let left = mem
            .list_with_delimiter(Some(&Path::from("up")))
            .await
            .unwrap()
            .objects;
        assert_eq!(left.len(), 1, "{left:?}");
        o.remove("u", Some(&c)).await;
        assert!(mem.head(&o.path("u")).await.is_err());
    }

    #[tokio::test]
    async fn an_offset_that_does_not_match_is_an_error() {
        let mem = Arc::new(InMemory::new());
        let o = Objects::new(mem.clone(), mem, "up", 1 << 30);
        let a = write(&o, "u", 0, None, &[1; 10]).await;
        assert!(o.writer("u", 11, Some(&a)).await.is_err());
        assert!(o.writer("u", 0, Some("not json")).await.is_err());
    }

    #[tokio::test]
    async fn an_empty_upload_is_an_empty_object() {
        let mem = Arc::new(InMemory::new());
        let o = Objects::new(mem.clone(), mem.clone(), "up", 1 << 30);
        o.complete("z", None).await.unwrap();
        assert_eq!(mem.head(&o.path("z")).await.unwrap().size, 0);
    }
}
