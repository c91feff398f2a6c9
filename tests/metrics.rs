//! `/metrics` scraped by a real Prometheus (Debian's `prometheus`, started here on a port of
//! its own with the API token as its bearer credentials), and series read back through
//! Prometheus's HTTP API while ffmpeg publishes.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;

const LONG: Duration = Duration::from_secs(90);

struct Prometheus(Child);

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The value of the first series `query` gives, through Prometheus's HTTP API.
fn query(port: u16, query: &str) -> Option<f64> {
    let q: String = query
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    let r = get(port, &format!("/api/v1/query?query={q}")).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&r.body).ok()?;
    v["data"]["result"][0]["value"][1].as_str()?.parse().ok()
}

#[test]
fn prometheus_scrapes_metrics_with_the_api_token() {
    let srv = Server::start("");
    let r = get(srv.http, "/metrics").unwrap();
    assert_eq!(r.status, 401, "the metrics need the API token");
    let _publisher = Publisher::rtmp(&srv.rtmp_url(KEY), 90);
    assert_advances(&srv, "demo");
    let m = api_get(srv.http, "/metrics").unwrap();
    assert_eq!(m.status, 200);
    let text = m.text();
    assert!(
        text.contains("estuary_stream_frames_total{stream=\"demo\",rendition=\"video\"}"),
        "{text}"
    );

    let dir = TempDir::new("prometheus");
    let port = free_port();
    let config = dir.0.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: estuary\n    \
             authorization:\n      credentials: {API_TOKEN}\n    static_configs:\n      \
             - targets: ['127.0.0.1:{}']\n",
            srv.http
        ),
    )
    .unwrap();
    let _prom = Prometheus(
        Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.0.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus must be installed (scripts/test.sh installs it)"),
    );
    let up = wait_for("Prometheus to scrape Estuary", LONG, || {
        query(port, "up{job=\"estuary\"}").filter(|v| *v == 1.0)
    });
    assert_eq!(up, 1.0);
    let frames = wait_for("a frame count through Prometheus", LONG, || {
        query(
            port,
            "estuary_stream_frames_total{stream=\"demo\",rendition=\"video\"}",
        )
        .filter(|v| *v > 0.0)
    });
    assert!(frames > 0.0);
    // The packager's publish delay, as a histogram: parts counted, and the median under the
    // last bucket bound (a second).
    let parts = wait_for("publish delays through Prometheus", LONG, || {
        query(
            port,
            "estuary_part_publish_delay_seconds_count{stream=\"demo\"}",
        )
        .filter(|v| *v > 0.0)
    });
    assert!(parts > 0.0);
    let median = wait_for("a median publish delay", LONG, || {
        query(
            port,
            "histogram_quantile(0.5, rate(estuary_part_publish_delay_seconds_bucket[30s]))",
        )
        .filter(|v| v.is_finite())
    });
    assert!(median < 1.0, "median publish delay {median} s");
    let playlists = wait_for("HTTP requests counted", LONG, || {
        query(
            port,
            "estuary_http_requests_total{class=\"metrics\",status=\"2xx\"}",
        )
        .filter(|v| *v > 0.0)
    });
    assert!(playlists > 0.0);
}
