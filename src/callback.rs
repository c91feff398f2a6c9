//! `[auth] publish_url`: the operator's HTTP callback that decides every publish, as
//! nginx-rtmp's `on_publish` and MediaMTX's HTTP authentication do.
//!
//! Estuary `POST`s JSON `{"protocol": "rtmp"|"srt"|"whip", "key": KEY, "stream": NAME|null,
//! "remote_addr": "IP:PORT"}` (`stream`: the stream this node knows the key for). A `2xx`
//! allows the publish, to the stream named in an optional JSON answer `{"stream": NAME}`, else
//! the known one; anything else refuses it (the answer's first line goes to the log). A
//! callback that does not answer in `publish_timeout_secs` refuses it too.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use httpd::client::Client;
use ingest::auth::{Attempt, CallbackFuture, Denied, PublishCallback};

pub struct HttpCallback {
    url: http::Uri,
    client: Client<Full<Bytes>>,
    timeout: Duration,
}

impl HttpCallback {
    pub fn new(url: http::Uri, timeout: Duration) -> anyhow::Result<Self> {
        Ok(HttpCallback {
            url,
            client: httpd::client::build(&[])?,
            timeout,
        })
    }

    async fn ask(&self, at: Attempt<'_>) -> Result<String, Denied> {
        let body = serde_json::json!({
            "protocol": at.protocol.as_str(),
            "key": at.key,
            "stream": at.stream,
            "remote_addr": at.peer.to_string(),
        });
        let req = http::Request::post(self.url.clone())
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body.to_string())))
            .map_err(|e| Denied::CallbackFailed(e.to_string()))?;
        let resp = tokio::time::timeout(self.timeout, self.client.request(req))
            .await
            .map_err(|_| Denied::CallbackFailed(format!("no answer in {:?}", self.timeout)))?
            .map_err(|e| Denied::CallbackFailed(e.to_string()))?;
        let status = resp.status();
        let answer = tokio::time::timeout(
            self.timeout,
            Limited::new(resp.into_body(), 16 * 1024).collect(),
        )
        .await
        .ok()
        .and_then(Result::ok)
        .map(|b| b.to_bytes())
        .unwrap_or_default();
        if !status.is_success() {
            let text = String::from_utf8_lossy(&answer);
            let line = text
                .lines()
                .next()
                .unwrap_or("")
                .chars()
                .take(200)
                .collect::<String>();
            return Err(Denied::Refused(
                format!("{status} {line}").trim().to_string(),
            ));
        }
        let named = serde_json::from_slice::<serde_json::Value>(&answer)
            .ok()
            .and_then(|v| v.get("stream")?.as_str().map(str::to_string));
        match named.or(at.stream.map(str::to_string)) {
            Some(name) if crate::config::valid_name(&name) => Ok(name),
            Some(name) => Err(Denied::Refused(format!(
                "the callback named stream {name:?}, which is not a valid name"
            ))),
            None => Err(Denied::Refused(
                "the callback allowed it but named no stream (answer {\"stream\": NAME})".into(),
            )),
        }
    }
}

impl PublishCallback for HttpCallback {
    fn check<'a>(&'a self, attempt: Attempt<'a>) -> CallbackFuture<'a> {
        Box::pin(self.ask(attempt))
    }
}
