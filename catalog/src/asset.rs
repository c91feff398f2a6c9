//! An asset as the catalog keeps it, and what may be asked of it: a new one, a change, a page.

use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;

use crate::{col, Error, Result};

/// Where an asset is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Its media is not there yet (an upload in progress; work not started).
    Waiting,
    /// Its media is being made (a live stream being archived; a file being packaged).
    Preparing,
    /// Playable.
    Ready,
    /// It will not become playable; `error` says why.
    Errored,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Waiting => "waiting",
            Status::Preparing => "preparing",
            Status::Ready => "ready",
            Status::Errored => "errored",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Some(match s {
            "waiting" => Status::Waiting,
            "preparing" => Status::Preparing,
            "ready" => Status::Ready,
            "errored" => Status::Errored,
            _ => return None,
        })
    }
}

/// Where an asset's media came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// A live stream's archive.
    Live,
    /// A file uploaded to Estuary.
    Upload,
    /// A file fetched from a URL.
    Url,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Live => "live",
            Source::Upload => "upload",
            Source::Url => "url",
        }
    }

    fn parse(s: &str) -> Option<Source> {
        Some(match s {
            "live" => Source::Live,
            "upload" => Source::Upload,
            "url" => Source::Url,
            _ => return None,
        })
    }
}

/// One asset. Times are Unix milliseconds.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Asset {
    pub id: String,
    pub status: Status,
    /// Why it is `errored`, for a person to act on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub source: Source,
    /// The live stream it recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream: Option<String>,
    pub title: Option<String>,
    pub description: Option<String>,
    pub tags: Vec<String>,
    /// The operator's own string, kept as given.
    pub passthrough: Option<String>,
    /// `public` or `signed`.
    pub playback: String,
    /// Seconds.
    pub duration: Option<f64>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    /// RFC 6381 codec strings.
    pub codecs: Vec<String>,
    /// The renditions' names.
    pub renditions: Vec<String>,
    /// How far its preparation has come, 0 to 100, while it is `preparing` (an upload being
    /// packaged).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress: Option<f64>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// What a new asset starts with.
#[derive(Clone, Debug)]
pub struct NewAsset {
    pub id: String,
    pub status: Status,
    pub source: Source,
    pub stream: Option<String>,
    pub title: Option<String>,
    pub description: Option<String>,
    pub tags: Vec<String>,
    pub passthrough: Option<String>,
    pub playback: String,
    /// When it was made, in Unix ms, when not now (an archive brought in from storage).
    pub created_at: Option<i64>,
    /// The URL its file is fetched from ([`Source::Url`]).
    pub input_url: Option<String>,
}

impl Asset {
    pub(crate) fn new(new: &NewAsset, now: i64) -> Asset {
        Asset {
            id: new.id.clone(),
            status: new.status,
            error: None,
            source: new.source,
            stream: new.stream.clone(),
            title: new.title.clone(),
            description: new.description.clone(),
            tags: dedup(&new.tags),
            passthrough: new.passthrough.clone(),
            playback: new.playback.clone(),
            duration: None,
            width: None,
            height: None,
            codecs: Vec::new(),
            renditions: Vec::new(),
            progress: None,
            created_at: new.created_at.unwrap_or(now),
            updated_at: now,
        }
    }
}

/// What the media turned out to be.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Media {
    pub duration: Option<f64>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub codecs: Vec<String>,
    pub renditions: Vec<String>,
}

/// A change to an asset's metadata (`PATCH /api/v1/assets/{id}`): what is `Some` is set; a
/// `Some(None)` clears.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Patch {
    #[serde(default, with = "double_option")]
    pub title: Option<Option<String>>,
    #[serde(default, with = "double_option")]
    pub description: Option<Option<String>>,
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    #[serde(default, with = "double_option")]
    pub passthrough: Option<Option<String>>,
}

/// Longest title, description, tag and passthrough (characters), and most tags.
pub const MAX_TITLE: usize = 512;
pub const MAX_DESCRIPTION: usize = 8192;
pub const MAX_TAG: usize = 64;
pub const MAX_TAGS: usize = 32;
pub const MAX_PASSTHROUGH: usize = 255;

impl Patch {
    /// Checks the lengths; the first thing too long or empty, as an error a client can read.
    pub fn check(&self) -> Result<()> {
        let long = |s: &Option<Option<String>>, max: usize| {
            s.as_ref()
                .and_then(|s| s.as_ref())
                .is_some_and(|s| s.chars().count() > max)
        };
        if long(&self.title, MAX_TITLE) {
            return Err(Error::Invalid("title is longer than 512 characters"));
        }
        if long(&self.description, MAX_DESCRIPTION) {
            return Err(Error::Invalid("description is longer than 8192 characters"));
        }
        if long(&self.passthrough, MAX_PASSTHROUGH) {
            return Err(Error::Invalid("passthrough is longer than 255 characters"));
        }
        if let Some(tags) = &self.tags {
            if tags.len() > MAX_TAGS {
                return Err(Error::Invalid("more than 32 tags"));
            }
            if tags
                .iter()
                .any(|t| t.is_empty() || t.chars().count() > MAX_TAG)
            {
                return Err(Error::Invalid(
                    "a tag is empty or longer than 64 characters",
                ));
            }
        }
        Ok(())
    }

    /// The tags it sets, each once.
    pub(crate) fn tags(&self) -> Option<Vec<String>> {
        self.tags.as_deref().map(dedup)
    }
}

/// `null` → `Some(None)`, absent → `None` (with `#[serde(default)]`).
mod double_option {
    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Option<String>>, D::Error> {
        Option::<String>::deserialize(d).map(Some)
    }
}

/// Which assets, and which page of them.
#[derive(Clone, Debug)]
pub struct Filter {
    pub status: Option<Status>,
    pub tag: Option<String>,
    pub passthrough: Option<String>,
    /// Assets per page (at most [`Filter::MAX_LIMIT`]).
    pub limit: u64,
    /// From 1.
    pub page: u64,
}

impl Filter {
    pub const MAX_LIMIT: u64 = 100;
}

impl Default for Filter {
    fn default() -> Self {
        Filter {
            status: None,
            tag: None,
            passthrough: None,
            limit: 25,
            page: 1,
        }
    }
}

/// One page of a listing.
#[derive(Clone, Debug)]
pub struct Page {
    pub assets: Vec<Asset>,
    /// There is a next page.
    pub more: bool,
}

fn dedup(tags: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(tags.len());
    for t in tags {
        if !out.contains(t) {
            out.push(t.clone());
        }
    }
    out
}

fn list(text: &str) -> Vec<String> {
    serde_json::from_str(text).unwrap_or_default()
}

pub(crate) fn from_row(r: &AnyRow) -> Result<Asset> {
    let status: String = col(r, "status")?;
    let source: String = col(r, "source")?;
    let dimension = |name: &str| -> Result<Option<u32>> {
        Ok(col::<Option<i64>>(r, name)?.and_then(|v| u32::try_from(v).ok()))
    };
    Ok(Asset {
        id: col(r, "id")?,
        status: Status::parse(&status).ok_or(Error::Invalid("an asset has an unknown status"))?,
        error: col(r, "error")?,
        source: Source::parse(&source).ok_or(Error::Invalid("an asset has an unknown source"))?,
        stream: col(r, "stream")?,
        title: col(r, "title")?,
        description: col(r, "description")?,
        tags: list(&col::<String>(r, "tags")?),
        passthrough: col(r, "passthrough")?,
        playback: col(r, "playback")?,
        duration: col(r, "duration")?,
        width: dimension("width")?,
        height: dimension("height")?,
        codecs: list(&col::<String>(r, "codecs")?),
        renditions: list(&col::<String>(r, "renditions")?),
        progress: col(r, "progress")?,
        created_at: col(r, "created_at")?,
        updated_at: col(r, "updated_at")?,
    })
}
