//! The catalog's side of `estuary serve`: opening it, recording every live archive in it as it
//! is written (an asset `preparing` when archiving starts, `ready` with its duration and
//! renditions when it is complete), and bringing in archives written before the catalog knew
//! of them, so `/api/v1/vod` and `/api/v1/assets` agree.

use std::sync::Arc;

use anyhow::Context;
use catalog::{Catalog, Media, NewAsset, Source, Status};
use packager::archive::News;
use tracing::{info, warn};

use crate::config::Config;

/// Opens the configured catalog (creating SQLite's file, applying migrations).
pub async fn open(config: &Config) -> anyhow::Result<Catalog> {
    let url = config.catalog_url();
    if config.catalog.url.is_none() {
        let dir = config.data_dir();
        std::fs::create_dir_all(&dir).with_context(|| {
            format!(
                "creating the data directory {} (for the catalog)",
                dir.display()
            )
        })?;
    }
    let shown = match url.rsplit_once('@') {
        // postgres://user:password@host/db: the password stays out of the log.
        Some((_, host)) => format!("postgres://…@{host}"),
        None => url.clone(),
    };
    let c = Catalog::open(&url)
        .await
        .with_context(|| format!("opening the catalog at {shown}"))?;
    info!(catalog = %shown, "catalog open");
    Ok(c)
}

/// A hook for the packager that records archives in `catalog`. The archive writer waits for
/// each record, so a short stream's completion never overtakes its start, and one still being
/// recorded at shutdown is recorded before the process ends.
pub fn archive_hook(catalog: Catalog) -> packager::OnArchived {
    packager::OnArchived(Arc::new(move |news: News| {
        let catalog = catalog.clone();
        Box::pin(async move { record(&catalog, &news).await })
    }))
}

async fn record(catalog: &Catalog, news: &News) {
    let result = match &news.complete {
        None => match catalog.create(&live_asset(news, Status::Preparing)).await {
            Err(catalog::Error::Exists(_)) | Ok(_) => Ok(()),
            Err(e) => Err(e),
        },
        Some(summary) => {
            let media = Media {
                duration: Some(summary.duration.as_secs_f64()),
                width: (summary.width > 0).then_some(summary.width),
                height: (summary.height > 0).then_some(summary.height),
                codecs: summary.codecs.clone(),
                renditions: summary.renditions.clone(),
            };
            let known = match catalog.set_media(&news.id, &media).await {
                // Its start was not recorded (the catalog did not answer then): recorded now.
                Ok(false) => match catalog.create(&live_asset(news, Status::Ready)).await {
                    Ok(_) | Err(catalog::Error::Exists(_)) => {
                        catalog.set_media(&news.id, &media).await.map(|_| ())
                    }
                    Err(e) => Err(e),
                },
                other => other.map(|_| ()),
            };
            match known {
                Ok(()) => catalog
                    .set_status(&news.id, Status::Ready, None)
                    .await
                    .map(|_| ()),
                Err(e) => Err(e),
            }
        }
    };
    if let Err(e) = result {
        warn!(archive = %news.id, error = %e, "the catalog did not take this archive");
    }
}

/// An RFC 3339 time as `meta.json` writes it (`2026-12-01T05:06:07.123Z`), in Unix ms.
fn unix_ms(t: &str) -> Option<i64> {
    let (date, time) = t.strip_suffix('Z')?.split_once('T')?;
    let mut d = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (y, mo, day) = (d.next()??, d.next()??, d.next()??);
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let mut h = hms.splitn(3, ':').map(|p| p.parse::<i64>().ok());
    let (hh, mm, ss) = (h.next()??, h.next()??, h.next()??);
    let ms: i64 = format!("{frac:0<3}").get(..3)?.parse().ok()?;
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (mo + if mo > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 24 + hh) * 60 + mm) * 60_000 + ss * 1000 + ms)
}

fn live_asset(news: &News, status: Status) -> NewAsset {
    NewAsset {
        id: news.id.clone(),
        status,
        source: Source::Live,
        stream: Some(news.stream.clone()),
        title: None,
        description: None,
        tags: Vec::new(),
        passthrough: None,
        playback: if news.signed { "signed" } else { "public" }.into(),
        created_at: None,
        input_url: None,
    }
}

/// Records archives in `store` that the catalog does not know (written before it existed, or
/// by a process that stopped before telling it). One that ended is `ready`. One that did not
/// is `ready` too when the catalog is this process's own (SQLite: nothing is being recorded at
/// start, so it plays as far as it got); with a shared catalog another origin may be recording
/// it, so it is left `preparing`.
pub async fn bring_in(catalog: &Catalog, store: &packager::archive::Store) {
    let listed = match packager::archive::list(store.as_ref()).await {
        Ok(l) => l,
        Err(e) => {
            warn!(error = %e, "cannot list the archive to bring it into the catalog");
            return;
        }
    };
    let mut added = 0;
    for l in listed {
        let m = &l.meta;
        let (Some(id), Some(stream)) = (m["id"].as_str(), m["name"].as_str()) else {
            continue;
        };
        // A packaged upload: its asset was made by the upload.
        if packager::archive::is_file(m) {
            continue;
        }
        let news = News {
            id: id.into(),
            stream: stream.into(),
            signed: m["signed"].as_bool().unwrap_or(false),
            complete: None,
        };
        let done = !m["ended"].is_null() || !catalog.is_shared();
        let status = if done {
            Status::Ready
        } else {
            Status::Preparing
        };
        let mut asset = live_asset(&news, status);
        asset.created_at = m["started"].as_str().and_then(unix_ms);
        match catalog.create(&asset).await {
            Ok(_) => added += 1,
            Err(catalog::Error::Exists(_)) => {}
            Err(e) => {
                warn!(archive = id, error = %e, "cannot bring this archive into the catalog");
                continue;
            }
        }
        // What its meta.json says of its renditions, for one recorded before the catalog was.
        let tracks = m["tracks"].as_array().cloned().unwrap_or_default();
        let dim =
            |t: &serde_json::Value, k: &str| t[k].as_u64().and_then(|v| u32::try_from(v).ok());
        let biggest = tracks
            .iter()
            .max_by_key(|t| t["height"].as_u64().unwrap_or(0));
        let mut codecs: Vec<String> = Vec::new();
        for c in tracks.iter().filter_map(|t| t["codec"].as_str()) {
            if !codecs.iter().any(|k| k == c) {
                codecs.push(c.into());
            }
        }
        if let Ok(Some(a)) = catalog.get(id).await {
            if a.status == Status::Preparing && done {
                // Its recording stopped with the process that made it.
                let _ = catalog.set_status(id, Status::Ready, None).await;
            }
            if a.renditions.is_empty() {
                let media = Media {
                    duration: None,
                    width: biggest.and_then(|t| dim(t, "width")),
                    height: biggest.and_then(|t| dim(t, "height")),
                    codecs,
                    renditions: tracks
                        .iter()
                        .filter_map(|t| t["rendition"].as_str().map(Into::into))
                        .collect(),
                };
                let _ = catalog.set_media(id, &media).await;
            }
        }
    }
    if added > 0 {
        info!(added, "archives brought into the catalog");
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn meta_times() {
        assert_eq!(super::unix_ms("1970-01-01T00:00:00.000Z"), Some(0));
        assert_eq!(
            super::unix_ms("2026-12-01T05:06:07.123Z"),
            Some(1_796_101_567_123)
        );
        assert_eq!(
            super::unix_ms("2000-02-29T23:59:59Z"),
            Some(951_868_799_000)
        );
        assert_eq!(super::unix_ms("yesterday"), None);
    }
}
