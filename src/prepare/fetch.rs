//! An asset's file fetched from the URL an API user gave (`POST /api/v1/assets`), into the
//! uploads directory, where it is prepared as an upload is. Only `https://`; only addresses on
//! the public internet, for every name as it resolves and every redirect (up to
//! [`MAX_REDIRECTS`]), unless `[uploads] fetch_private_addresses` allows others (a LAN-only
//! deployment, a test); no larger than an upload may be; a server that sends nothing for
//! [`IDLE`] is given up on. Every way it can fail is a reason a person can act on, which ends
//! the asset `errored`.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;
use catalog::Catalog;
use http::{header, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Empty};
use httpd::client::{is_public, GuardedClient};
use httpd::upload::disk::Disk;

/// Redirects followed, at most.
const MAX_REDIRECTS: usize = 5;
/// The longest wait for an answer's head, or for the next bytes of its body.
const IDLE: Duration = Duration::from_secs(30);
/// How often the download's progress is recorded (which also says the asset's preparation is
/// alive, whether or not its length is known).
const PROGRESS_EVERY: Duration = Duration::from_secs(2);
/// After this long, a download slower on average than [`SLOWEST`] is given up on: one server
/// trickling bytes must not hold the packaging of every other asset.
const SLOW_AFTER: Duration = Duration::from_secs(60);
const SLOWEST: u64 = 64 << 10;

pub struct Fetcher {
    client: GuardedClient,
    allow_private: bool,
    max_size: u64,
    disk: Disk,
}

impl Fetcher {
    /// Fetches into `dir`, trusting the system's roots and `extra_ca`, files of at most
    /// `max_size` bytes.
    pub fn new(
        dir: PathBuf,
        extra_ca: &[&Path],
        allow_private: bool,
        max_size: u64,
    ) -> anyhow::Result<Fetcher> {
        Ok(Fetcher {
            client: httpd::client::guarded(extra_ca, allow_private)?,
            allow_private,
            max_size,
            disk: Disk::open(dir)?,
        })
    }

    /// Where asset `id`'s fetched file is.
    pub fn path(&self, id: &str) -> PathBuf {
        self.disk.path(&httpd::upload::fetched(id))
    }

    /// Fetches `url` to [`Fetcher::path`] (anything there before is replaced), recording its
    /// progress as 0 to `share` percent of asset `id`'s; the bytes it holds, or why not.
    pub async fn fetch(
        &self,
        url: &str,
        id: &str,
        catalog: &Catalog,
        share: f64,
    ) -> Result<u64, String> {
        let name = httpd::upload::fetched(id);
        let mut uri: Uri = url
            .parse()
            .map_err(|_| "the input is not a URL".to_string())?;
        let mut hops = 0;
        let response = loop {
            self.check(&uri)?;
            let host = uri.host().unwrap_or_default().to_string();
            let req = Request::get(uri.clone())
                .header(
                    header::USER_AGENT,
                    concat!("Estuary/", env!("CARGO_PKG_VERSION")),
                )
                .body(Empty::<Bytes>::new())
                .map_err(|e| format!("the input URL: {e}"))?;
            let response = tokio::time::timeout(IDLE, self.client.request(req))
                .await
                .map_err(|_| format!("{host} did not answer within {} s", IDLE.as_secs()))?
                .map_err(|e| format!("fetching from {host}: {}", chain(&e)))?;
            let status = response.status();
            if status.is_redirection() {
                let Some(next) = response
                    .headers()
                    .get(header::LOCATION)
                    .and_then(|l| l.to_str().ok())
                else {
                    return Err(format!("{host} answered {status} without a Location"));
                };
                hops += 1;
                if hops > MAX_REDIRECTS {
                    return Err(format!("more than {MAX_REDIRECTS} redirects"));
                }
                uri = resolve(&uri, next)
                    .ok_or_else(|| format!("{host} redirected to {next:?}, which is not a URL"))?;
                continue;
            }
            if status != StatusCode::OK {
                return Err(format!("{host} answered {status} for the input URL"));
            }
            break response;
        };
        let length = response
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        if let Some(len) = length.filter(|l| *l > self.max_size) {
            return Err(self.too_large(len));
        }
        self.disk.remove(&name).await;
        self.disk
            .create(&name)
            .await
            .map_err(|e| format!("cannot write the fetched file: {e}"))?;
        let mut writer = self
            .disk
            .writer(&name, 0)
            .await
            .map_err(|e| format!("cannot write the fetched file: {e}"))?;
        let mut body = response.into_body();
        let mut got = 0u64;
        let started = Instant::now();
        let mut told = Instant::now();
        loop {
            let frame = tokio::time::timeout(IDLE, body.frame())
                .await
                .map_err(|_| format!("the download stalled for {} s", IDLE.as_secs()))?;
            let Some(frame) = frame else {
                break;
            };
            let frame = frame.map_err(|e| format!("the download broke off: {}", chain(&e)))?;
            let Ok(data) = frame.into_data() else {
                continue; // trailers
            };
            got += data.len() as u64;
            if got > self.max_size {
                return Err(self.too_large(got));
            }
            writer
                .push(data)
                .await
                .map_err(|e| format!("cannot write the fetched file: {e}"))?;
            if told.elapsed() >= PROGRESS_EVERY {
                told = Instant::now();
                let took = started.elapsed();
                if took >= SLOW_AFTER && got < SLOWEST * took.as_secs() {
                    return Err(format!(
                        "the download is slower than {} KiB/s ({} KiB in {} s)",
                        SLOWEST >> 10,
                        got >> 10,
                        took.as_secs()
                    ));
                }
                let percent = match length.filter(|l| *l > 0) {
                    Some(len) => share * (got as f64 / len as f64).min(1.0),
                    None => 0.0,
                };
                super::progress(catalog, id, percent, "the download").await?;
            }
        }
        if length.is_some_and(|l| l != got) {
            return Err(format!(
                "the download ended after {got} of {} bytes",
                length.unwrap_or_default()
            ));
        }
        writer
            .finish()
            .await
            .map_err(|e| format!("cannot write the fetched file: {e}"))?;
        Ok(got)
    }

    /// Refuses a URL that is not `https://`, or whose host is an address not on the public
    /// internet (names are checked as they resolve).
    fn check(&self, uri: &Uri) -> Result<(), String> {
        if uri.scheme_str() != Some("https") {
            return Err(format!("only https:// URLs are fetched, not {uri}"));
        }
        let host = uri.host().unwrap_or_default();
        let literal = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = literal.parse::<IpAddr>() {
            if !self.allow_private && !is_public(ip) {
                return Err(format!("{ip} is not an address on the public internet"));
            }
        }
        Ok(())
    }

    fn too_large(&self, len: u64) -> String {
        format!(
            "the file is larger than the {} MiB an upload may be ({} MiB or more)",
            self.max_size >> 20,
            len >> 20
        )
    }
}

/// A `Location` against the URL it answered.
fn resolve(base: &Uri, location: &str) -> Option<Uri> {
    // Absolute when it starts with a scheme (a "://" later, in a query, does not count).
    let scheme = location.split_once("://").map(|(s, _)| s);
    if scheme.is_some_and(|s| {
        s.starts_with(|c: char| c.is_ascii_alphabetic())
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
    }) {
        return location.parse().ok();
    }
    let scheme = base.scheme_str()?;
    if let Some(rest) = location.strip_prefix("//") {
        return format!("{scheme}://{rest}").parse().ok();
    }
    let authority = base.authority()?.as_str();
    if location.starts_with('/') {
        return format!("{scheme}://{authority}{location}").parse().ok();
    }
    let dir = base.path().rsplit_once('/').map_or("", |(d, _)| d);
    format!("{scheme}://{authority}{dir}/{location}")
        .parse()
        .ok()
}

/// An error with its causes ("connection refused", "certificate unknown").
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations() {
        let base: Uri = "https://a.example/v/clip.mp4?x=1".parse().unwrap();
        let r = |l: &str| resolve(&base, l).map(|u| u.to_string());
        assert_eq!(
            r("https://b.example/c.mp4").as_deref(),
            Some("https://b.example/c.mp4")
        );
        assert_eq!(
            r("//b.example/c.mp4").as_deref(),
            Some("https://b.example/c.mp4")
        );
        assert_eq!(
            r("/c.mp4?s=2").as_deref(),
            Some("https://a.example/c.mp4?s=2")
        );
        assert_eq!(r("d.mp4").as_deref(), Some("https://a.example/v/d.mp4"));
        assert_eq!(
            r("/next?from=https://a.example/").as_deref(),
            Some("https://a.example/next?from=https://a.example/")
        );
    }
}
