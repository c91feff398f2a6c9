//! The access keys of `estuary.toml`, checked at start-up: `[playback]` (who may watch: public
//! or signed streams, the keys that verify playback tokens; the HTTP server's [`Playback`]),
//! `[api]` (the operator's API tokens, as digests) and `[auth]` (the publish callback).

use std::path::PathBuf;
use std::sync::Arc;

use std::time::Duration;

use anyhow::{bail, Context};
use httpd::access::api::ApiTokens;
use httpd::access::{KeyConfig, Playback, Verifier};
use ingest::Authorizer;
use serde::Deserialize;

use super::{Config, Seconds};

/// `playback = "public" | "signed"`, per stream and as `[playback] default`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Policy {
    #[default]
    Public,
    Signed,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PlaybackSection {
    /// The policy of streams that do not name one (on an edge: applies on top of what the
    /// origin says of each stream).
    pub default: Policy,
    /// HS256 shared secrets, each at least 32 bytes; the first one mints tokens.
    pub hs256_secrets: Vec<String>,
    /// PEM public keys (EC P-256 for ES256, RSA for RS256).
    pub public_keys: Vec<PathBuf>,
    /// An auth service's JSON Web Key Set (ES256/RS256 keys, picked by `kid`).
    pub jwks_url: Option<String>,
    pub jwks_refresh_secs: Seconds,
}

impl Default for PlaybackSection {
    fn default() -> Self {
        Self {
            default: Policy::Public,
            hs256_secrets: Vec::new(),
            public_keys: Vec::new(),
            jwks_url: None,
            jwks_refresh_secs: Seconds::from_secs(300),
        }
    }
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct ApiSection {
    /// SHA-256 digests of API bearer tokens, `sha256:HEX` (`estuary token` makes one).
    /// None: a token is made on first start, shown once, and its digest kept in the data
    /// directory.
    pub tokens: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSection {
    /// An HTTP callback asked about every publish (see `crate::callback`).
    pub publish_url: Option<String>,
    pub publish_timeout_secs: Seconds,
}

impl Default for AuthSection {
    fn default() -> Self {
        Self {
            publish_url: None,
            publish_timeout_secs: Seconds::from_secs(5),
        }
    }
}

/// Secrets that are examples, not secrets: refused at start-up.
const PLACEHOLDERS: [&str; 4] = ["change-me", "changeme", "example", "secret-secret"];

/// Whether `s` looks like a value copied from an example.
pub fn placeholder(s: &str) -> bool {
    let lower = s.to_ascii_lowercase();
    PLACEHOLDERS.iter().any(|p| lower.contains(p))
}

impl Config {
    /// Whether any stream (or the default) is signed.
    fn signs_anything(&self) -> bool {
        self.playback.default == Policy::Signed
            || self
                .streams
                .iter()
                .any(|s| s.playback == Some(Policy::Signed))
            || self.pull.iter().any(|p| p.playback == Some(Policy::Signed))
    }

    pub(super) fn validate_access(&self) -> anyhow::Result<()> {
        let p = &self.playback;
        for s in &p.hs256_secrets {
            if s.len() < 32 {
                bail!("[playback] hs256_secrets: each secret must have at least 32 bytes (openssl rand -base64 48)");
            }
            if placeholder(s) {
                bail!("[playback] hs256_secrets: {s:?} is an example; make one of your own (openssl rand -base64 48)");
            }
        }
        let has_keys =
            !p.hs256_secrets.is_empty() || !p.public_keys.is_empty() || p.jwks_url.is_some();
        if self.signs_anything() && !has_keys {
            bail!("a stream's playback is signed but [playback] has no hs256_secrets, public_keys or jwks_url to verify tokens with");
        }
        ApiTokens::from_digests(self.api.tokens.iter().map(String::as_str))
            .context("[api] tokens")?;
        if let Some(url) = &self.auth.publish_url {
            let uri: http::Uri = url.parse().context("[auth] publish_url")?;
            if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
                bail!("[auth] publish_url {url:?}: give http:// or https:// and a host");
            }
        }
        Ok(())
    }

    /// The operator's API tokens: `[api] tokens`, or the one made on first start (shown in
    /// the log that once).
    pub fn api_tokens(&self) -> anyhow::Result<ApiTokens> {
        if !self.api.tokens.is_empty() {
            return Ok(ApiTokens::from_digests(
                self.api.tokens.iter().map(String::as_str),
            )?);
        }
        let kept = crate::secrets::kept(&self.data_dir(), "api-token", 32)?;
        match &kept.made {
            Some(token) => tracing::warn!(
                file = %kept.file.display(),
                "no [api] tokens configured; made an API token, shown this once (only its digest is kept): {token}  (use: Authorization: Bearer TOKEN)"
            ),
            None => {
                tracing::info!(file = %kept.file.display(), "no [api] tokens configured; using the API token made on an earlier start (not shown again; delete the file for a new one, or set [api] tokens)")
            }
        }
        let digest = format!("sha256:{}", crate::secrets::hex(&kept.digest));
        Ok(ApiTokens::from_digests([digest.as_str()])?)
    }

    /// Who may publish: the streams' keys (added by [`crate::streams::Streams::open`]) and
    /// `[auth] publish_url`.
    pub fn authorizer(&self) -> anyhow::Result<Authorizer> {
        let auth = Authorizer::default();
        Ok(match &self.auth.publish_url {
            Some(url) => {
                tracing::info!(url = %url, "every publish is decided by the publish callback");
                auth.with_callback(crate::callback::HttpCallback::new(
                    url.parse()?,
                    self.auth
                        .publish_timeout_secs
                        .0
                        .max(Duration::from_millis(100)),
                )?)
            }
            None => auth,
        })
    }

    /// The playback policy and keys; the streams' own policies are set with
    /// [`Config::set_policies`]. Needs a runtime (a JWKS URL is fetched in the background).
    pub fn playback(&self) -> anyhow::Result<Arc<Playback>> {
        let p = &self.playback;
        let mut public_keys = Vec::new();
        for path in &p.public_keys {
            let pem = std::fs::read_to_string(path)
                .with_context(|| format!("reading [playback] public key {}", path.display()))?;
            public_keys.push((path.display().to_string(), pem));
        }
        let keys = KeyConfig {
            hs256_secrets: p.hs256_secrets.clone(),
            public_keys,
            jwks_url: p.jwks_url.clone(),
            jwks_refresh: p.jwks_refresh_secs.0,
        };
        let verifier = Verifier::new(&keys).context("[playback] keys")?;
        let verifier = verifier.has_keys().then_some(verifier);
        let playback = Arc::new(Playback::new(verifier, p.default == Policy::Signed));
        for s in &self.streams {
            if let Some(policy) = s.playback {
                playback.set(&s.name, policy == Policy::Signed);
            }
        }
        for s in &self.pull {
            if let Some(policy) = s.playback {
                playback.set(&s.name, policy == Policy::Signed);
            }
        }
        Ok(playback)
    }
}
