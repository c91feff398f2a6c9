//! Prometheus `/metrics` (with the API token): what a node's parts have counted, read when
//! scraped (nothing is kept for it but the HTTP request counters here).
//!
//! | metric | labels | from |
//! | --- | --- | --- |
//! | `estuary_streams` | | live windows on this node |
//! | `estuary_stream_bitrate_bits_per_second` | stream, rendition | each track's measured bitrate |
//! | `estuary_stream_frames_total` | stream, rendition | frames packaged (`rate()`: a rendition's fps, the transcoder's for encoded rungs) |
//! | `estuary_stream_parts_total` | stream, rendition | parts published |
//! | `estuary_stream_skipped_frames_total` | stream | frames consumers dropped to stay real time |
//! | `estuary_part_publish_delay_seconds` | stream | histogram: frame at the packager → part in the window |
//! | `estuary_held_requests` | | requests waiting for parts |
//! | `estuary_http_requests_total` | class, status | requests by route class and status class |
//! | `estuary_edge_upstream_*_total` | | an edge's fetches, cache hits, coalesced requests, failures |
//! | `estuary_whip_sessions` | | WebRTC publishers |
//! | `estuary_redis_mirror_*` | | events sent, failures, the last write's time (an origin's) |

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use http::{Response, StatusCode};
use packager::Windows;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::body::Body;
use crate::response::{self, error, Cache};

/// Route classes of `estuary_http_requests_total`.
const CLASSES: [&str; 9] = [
    "playlist", "mpd", "media", "vod", "api", "whip", "health", "metrics", "other",
];
const STATUSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// Requests served, by route class and status class.
#[derive(Debug, Default)]
pub struct HttpCounts {
    counts: [[AtomicU64; STATUSES.len()]; CLASSES.len()],
}

impl HttpCounts {
    /// The class of a request for `path`.
    pub fn class(path: &str) -> usize {
        if let Some(live) = path.strip_prefix("/live/") {
            if live.ends_with(".m3u8") {
                0
            } else if live.ends_with(".mpd") {
                1
            } else {
                2
            }
        } else if path.starts_with("/vod/") {
            3
        } else if path.starts_with("/api/") {
            4
        } else if path == "/whip" || path.starts_with("/whip/") {
            5
        } else if path == "/healthz" {
            6
        } else if path == "/metrics" {
            7
        } else {
            8
        }
    }

    /// Counts one response of `class`.
    pub fn record(&self, class: usize, status: StatusCode) {
        let s = (status.as_u16() / 100).clamp(1, 5) as usize - 1;
        self.counts[class][s].fetch_add(1, Ordering::Relaxed);
    }
}

/// Numbers that live outside this crate's reach (WHIP sessions, the Redis mirror), read
/// when scraped.
pub trait Gauges: Send + Sync + 'static {
    /// `(name, help, is a counter, value)`.
    fn read(&self) -> Vec<(&'static str, &'static str, bool, f64)>;
}

/// What a scrape reads.
pub struct Sources {
    pub windows: Windows,
    pub held: crate::live::blocking::Held,
    pub http: Arc<HttpCounts>,
    pub upstream: Option<crate::edge::upstream::Upstream>,
    pub extra: Vec<Arc<dyn Gauges>>,
}

impl std::fmt::Debug for Sources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("metrics sources")
    }
}

impl Collector for Sources {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let windows = self.windows.all();
        gauge(
            &mut enc,
            "estuary_streams",
            "Live streams on this node",
            &[],
            windows.len() as f64,
        )?;
        let mut bitrate = Vec::new();
        let mut frames = Vec::new();
        let mut parts = Vec::new();
        for w in &windows {
            w.read(|st| {
                for t in &st.tracks {
                    let labels = vec![
                        ("stream", w.name.clone()),
                        ("rendition", t.rendition.clone()),
                    ];
                    bitrate.push((labels.clone(), t.average_bitrate() as f64));
                    frames.push((labels.clone(), t.total_samples));
                    parts.push((labels, t.total_parts));
                }
            });
        }
        let e = &mut enc;
        let mut m = e.encode_descriptor(
            "estuary_stream_bitrate_bits_per_second",
            "Each track's bitrate, measured over what was packaged",
            None,
            MetricType::Gauge,
        )?;
        for (l, v) in &bitrate {
            m.encode_family(l)?.encode_gauge(v)?;
        }
        for (name, help, values) in [
            (
                "estuary_stream_frames",
                "Frames packaged per track (rate(): a rendition's frame rate)",
                &frames,
            ),
            ("estuary_stream_parts", "Parts published per track", &parts),
        ] {
            let mut m = e.encode_descriptor(name, help, None, MetricType::Counter)?;
            for (l, v) in values {
                m.encode_family(l)?
                    .encode_counter::<NoLabelSet, _, f64>(v, None)?;
            }
        }
        let mut m = e.encode_descriptor(
            "estuary_stream_skipped_frames",
            "Frames a stream's consumers dropped to stay real time",
            None,
            MetricType::Counter,
        )?;
        for w in &windows {
            let v = w.skipped.load(Ordering::Relaxed);
            m.encode_family(&[("stream", w.name.as_str())])?
                .encode_counter::<NoLabelSet, _, f64>(&v, None)?;
        }
        let mut m = e.encode_descriptor(
            "estuary_part_publish_delay_seconds",
            "From the frame that completed a part reaching the packager to the part in the window",
            None,
            MetricType::Histogram,
        )?;
        for w in &windows {
            let (sum, count, buckets) = w.publish_delay.snapshot();
            m.encode_family(&[("stream", w.name.as_str())])?
                .encode_histogram::<NoLabelSet>(sum, count, &buckets, None)?;
        }
        gauge(
            e,
            "estuary_held_requests",
            "Requests waiting for parts",
            &[],
            self.held.now() as f64,
        )?;
        let mut m = e.encode_descriptor(
            "estuary_http_requests",
            "HTTP requests by route class and status class",
            None,
            MetricType::Counter,
        )?;
        for (ci, class) in CLASSES.iter().enumerate() {
            for (si, status) in STATUSES.iter().enumerate() {
                let v = self.http.counts[ci][si].load(Ordering::Relaxed);
                if v > 0 {
                    m.encode_family(&[("class", *class), ("status", *status)])?
                        .encode_counter::<NoLabelSet, _, f64>(&v, None)?;
                }
            }
        }
        if let Some(up) = &self.upstream {
            let s = up.stats();
            for (name, help, v) in [
                (
                    "estuary_edge_upstream_fetches",
                    "Requests an edge sent to its origins",
                    &s.fetches,
                ),
                (
                    "estuary_edge_upstream_cache_hits",
                    "Viewer requests answered from the edge's cache",
                    &s.hits,
                ),
                (
                    "estuary_edge_upstream_coalesced",
                    "Viewer requests that joined a fetch on its way",
                    &s.coalesced,
                ),
                (
                    "estuary_edge_upstream_failures",
                    "Fetches no origin answered",
                    &s.failures,
                ),
            ] {
                counter(e, name, help, v.load(Ordering::Relaxed))?;
            }
        }
        for g in &self.extra {
            for (name, help, is_counter, v) in g.read() {
                if is_counter {
                    counter(e, name, help, v as u64)?;
                } else {
                    gauge(e, name, help, &[], v)?;
                }
            }
        }
        Ok(())
    }
}

fn gauge(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    labels: &[(&str, &str)],
    v: f64,
) -> Result<(), std::fmt::Error> {
    let mut m = e.encode_descriptor(name, help, None, MetricType::Gauge)?;
    if labels.is_empty() {
        m.encode_gauge(&v)
    } else {
        m.encode_family(&labels)?.encode_gauge(&v)
    }
}

fn counter(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    v: u64,
) -> Result<(), std::fmt::Error> {
    e.encode_descriptor(name, help, None, MetricType::Counter)?
        .encode_counter::<NoLabelSet, _, f64>(&v, None)
}

/// The exposition of `sources` (Prometheus text format).
pub fn render(sources: Arc<Sources>) -> Response<Body> {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(sources));
    let mut text = String::new();
    if prometheus_client::encoding::text::encode(&mut text, &registry).is_err() {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "metrics could not be written",
        );
    }
    response::sized(
        Body::from(text),
        "application/openmetrics-text; version=1.0.0; charset=utf-8",
        Cache::NoStore,
    )
}
