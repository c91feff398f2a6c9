//! Signed webhooks out (`[[webhooks]]`), in the Standard Webhooks format: `stream.started`,
//! `stream.reconnected`, `stream.ended` (from the hub) and `recording.ready` (an archive is
//! complete).
//!
//! Each delivery is a `POST` of `{"type", "timestamp", "data"}` with `webhook-id` (the same on
//! every retry of one event, so receivers can tell repeats), `webhook-timestamp` (Unix seconds
//! of this attempt) and `webhook-signature: v1,BASE64(HMAC-SHA256(secret, "id.timestamp.body"))`
//! (a `whsec_` secret is base64). Each endpoint has a queue of its own, bounded
//! ([`QUEUE`] events; beyond it new events are dropped with a log line), delivered in order by
//! a task that retries a failed delivery (no `2xx` in 10 s) with backoff (1 s doubling to
//! 60 s, [`ATTEMPTS`] attempts). Events are queued with `try_send` from the hub's callbacks:
//! ingest never waits on a receiver.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use bytes::Bytes;
use hmac::{Hmac, Mac};
use http_body_util::Full;
use media::{Hub, StreamEvent};
use serde::Deserialize;
use sha2::Sha256;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

/// Events an endpoint's queue holds.
pub const QUEUE: usize = 1024;
/// Attempts per event before it is given up (about a quarter of an hour with the backoff).
pub const ATTEMPTS: u32 = 20;
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(60);
const TIMEOUT: Duration = Duration::from_secs(10);

/// The event types, as `events` filters name them.
pub const TYPES: [&str; 4] = [
    "stream.started",
    "stream.reconnected",
    "stream.ended",
    "recording.ready",
];

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct WebhookEntry {
    pub url: String,
    /// `whsec_` followed by base64 (as Standard Webhooks libraries make them), or any string.
    pub secret: String,
    /// Only these types (default: all).
    #[serde(default)]
    pub events: Vec<String>,
}

impl WebhookEntry {
    pub fn validate(&self) -> anyhow::Result<()> {
        let uri: http::Uri = self.url.parse()?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
            anyhow::bail!(
                "[[webhooks]] url {:?}: give http:// or https:// and a host",
                self.url
            );
        }
        if let Some(b) = self.secret.strip_prefix("whsec_") {
            if base64::engine::general_purpose::STANDARD.decode(b).is_err() {
                anyhow::bail!(
                    "[[webhooks]] {}: a whsec_ secret is base64 after the prefix",
                    self.url
                );
            }
        }
        if key(&self.secret).len() < 16 {
            anyhow::bail!(
                "[[webhooks]] {}: the secret must have at least 16 bytes",
                self.url
            );
        }
        if crate::config::placeholder(&self.secret) {
            anyhow::bail!(
                "[[webhooks]] {}: the secret is an example; make one of your own",
                self.url
            );
        }
        if let Some(e) = self.events.iter().find(|e| !TYPES.contains(&e.as_str())) {
            anyhow::bail!(
                "[[webhooks]] {}: unknown event {e:?} (known: {})",
                self.url,
                TYPES.join(", ")
            );
        }
        Ok(())
    }
}

/// The HMAC key of a secret: the bytes after `whsec_`, base64-decoded; else the text.
fn key(secret: &str) -> Vec<u8> {
    secret
        .strip_prefix("whsec_")
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .unwrap_or_else(|| secret.as_bytes().to_vec())
}

/// `v1,BASE64(HMAC-SHA256(key, "{id}.{timestamp}.{body}"))`.
pub fn signature(secret: &str, id: &str, timestamp: u64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(&key(secret)).expect("HMAC takes any key");
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    )
}

struct Event {
    id: String,
    kind: &'static str,
    body: Bytes,
}

impl Event {
    fn new(kind: &'static str, data: serde_json::Value) -> Event {
        let body = serde_json::json!({
            "type": kind,
            "timestamp": packager::hls::rfc3339(SystemTime::now()),
            "data": data,
        });
        Event {
            id: format!("msg_{}", crate::secrets::random(24)),
            kind,
            body: Bytes::from(body.to_string()),
        }
    }
}

/// Where events go: each endpoint's queue.
#[derive(Clone, Default)]
pub struct Webhooks {
    endpoints: Arc<Vec<(WebhookEntry, mpsc::Sender<Arc<Event>>)>>,
}

impl Webhooks {
    /// Starts a delivery task per endpoint (on `tasks`, until `cancel`) and queues the hub's
    /// stream events.
    pub fn start(
        entries: &[WebhookEntry],
        hub: &Hub,
        tasks: &TaskTracker,
        cancel: &CancellationToken,
    ) -> anyhow::Result<Webhooks> {
        let mut endpoints = Vec::new();
        for e in entries {
            let (tx, rx) = mpsc::channel(QUEUE);
            let client = httpd::client::build::<Full<Bytes>>(&[])?;
            tasks.spawn(deliver(e.clone(), client, rx, cancel.clone()));
            endpoints.push((e.clone(), tx));
            info!(url = %e.url, "webhooks on");
        }
        let hooks = Webhooks {
            endpoints: Arc::new(endpoints),
        };
        if !hooks.endpoints.is_empty() {
            let h = hooks.clone();
            hub.on_event(move |e| {
                let (kind, name) = match e {
                    StreamEvent::Started(n) => ("stream.started", n),
                    StreamEvent::Reconnected(n) => ("stream.reconnected", n),
                    StreamEvent::Ended(n) => ("stream.ended", n),
                };
                h.send(kind, serde_json::json!({ "stream": name }));
            });
        }
        Ok(hooks)
    }

    /// The hook for the packager: `recording.ready` with the archive's id and URLs.
    pub fn on_archived(&self) -> Option<packager::OnArchived> {
        if self.endpoints.is_empty() {
            return None;
        }
        let h = self.clone();
        Some(packager::OnArchived(Arc::new(move |news| {
            if news.complete.is_some() {
                h.archived(&news.id, &news.stream);
            }
            Box::pin(std::future::ready(()))
        })))
    }

    fn archived(&self, id: &str, name: &str) {
        self.send(
            "recording.ready",
            serde_json::json!({
                "stream": name,
                "archive": id,
                "hls": format!("/vod/{id}/index.m3u8"),
                "dash": format!("/vod/{id}/manifest.mpd"),
            }),
        );
    }

    /// Queues an event for every endpoint that takes its type; never waits.
    fn send(&self, kind: &'static str, data: serde_json::Value) {
        let event = Arc::new(Event::new(kind, data));
        for (e, tx) in self.endpoints.iter() {
            if !e.events.is_empty() && !e.events.iter().any(|t| t == kind) {
                continue;
            }
            if tx.try_send(event.clone()).is_err() {
                warn!(url = %e.url, event = kind, "webhook queue full (the receiver is down or slow); event dropped");
            }
        }
    }
}

/// Delivers one endpoint's events in order, each until it is taken or out of attempts.
async fn deliver(
    e: WebhookEntry,
    client: httpd::client::Client<Full<Bytes>>,
    mut rx: mpsc::Receiver<Arc<Event>>,
    cancel: CancellationToken,
) {
    let Ok(uri) = e.url.parse::<http::Uri>() else {
        return;
    };
    loop {
        let event = tokio::select! {
            _ = cancel.cancelled() => return,
            ev = rx.recv() => match ev {
                Some(ev) => ev,
                None => return,
            },
        };
        let mut backoff = FIRST_BACKOFF;
        for attempt in 1..=ATTEMPTS {
            match post(&client, &uri, &e.secret, &event).await {
                Ok(()) => {
                    debug!(url = %e.url, event = event.kind, id = %event.id, attempt, "webhook delivered");
                    break;
                }
                Err(why) if attempt == ATTEMPTS => {
                    warn!(url = %e.url, event = event.kind, id = %event.id, "webhook given up after {ATTEMPTS} attempts: {why}");
                }
                Err(why) => {
                    debug!(url = %e.url, event = event.kind, attempt, "webhook not taken ({why}); retrying in {backoff:?}");
                    tokio::select! {
                        _ = cancel.cancelled() => return,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }
}

async fn post(
    client: &httpd::client::Client<Full<Bytes>>,
    uri: &http::Uri,
    secret: &str,
    event: &Event,
) -> Result<(), String> {
    let ts = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let req = http::Request::post(uri.clone())
        .header(http::header::CONTENT_TYPE, "application/json")
        .header("webhook-id", &event.id)
        .header("webhook-timestamp", ts.to_string())
        .header(
            "webhook-signature",
            signature(secret, &event.id, ts, &event.body),
        )
        .body(Full::new(event.body.clone()))
        .map_err(|e| e.to_string())?;
    let resp = tokio::time::timeout(TIMEOUT, client.request(req))
        .await
        .map_err(|_| "no answer in 10 s".to_string())?
        .map_err(|e| e.to_string())?;
    if resp.status().is_success() {
        Ok(())
    } else {
        Err(format!("status {}", resp.status()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the Standard Webhooks specification.
    #[test]
    fn the_specifications_example_signature() {
        let sig = signature(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }
}
