//! API bearer tokens: `Authorization: Bearer TOKEN` on everything under `/api/v1/` but
//! `/api/v1/time` (and the resume API, which takes a viewer's token). Tokens are configured
//! as SHA-256 digests (`sha256:HEX`), never as text; a presented token's digest is compared
//! with each in constant time.

use http::{header, HeaderMap, HeaderValue, Response, StatusCode};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::body::Body;
use crate::response::{self, Cache};

#[derive(Debug, thiserror::Error)]
pub enum TokenConfigError {
    #[error(
        "API token {0:?}: give its digest, sha256:HEX (64 hex digits); `estuary token` makes one"
    )]
    NotADigest(String),
}

/// The API tokens a node takes, by digest.
#[derive(Clone, Debug, Default)]
pub struct ApiTokens {
    digests: Vec<[u8; 32]>,
}

impl ApiTokens {
    /// From `sha256:HEX` entries.
    pub fn from_digests<'a>(
        entries: impl IntoIterator<Item = &'a str>,
    ) -> Result<Self, TokenConfigError> {
        let mut digests = Vec::new();
        for e in entries {
            let d = e
                .strip_prefix("sha256:")
                .and_then(parse_hex)
                .ok_or_else(|| TokenConfigError::NotADigest(shown(e)))?;
            digests.push(d);
        }
        Ok(ApiTokens { digests })
    }

    /// The `sha256:HEX` form of `token`.
    pub fn digest_of(token: &str) -> String {
        let d: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        format!(
            "sha256:{}",
            d.iter().map(|b| format!("{b:02x}")).collect::<String>()
        )
    }

    pub fn is_empty(&self) -> bool {
        self.digests.is_empty()
    }

    /// Whether the request carries one of the tokens.
    pub fn allows(&self, headers: &HeaderMap) -> bool {
        let Some(token) = super::bearer(headers) else {
            return false;
        };
        let d: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let mut ok = subtle::Choice::from(0);
        for known in &self.digests {
            ok |= known.ct_eq(&d);
        }
        ok.into()
    }

    /// `Ok` when the request may use the API, else the `401` it gets.
    #[allow(clippy::result_large_err)] // the refusal is the response, made once per request
    pub fn check(&self, headers: &HeaderMap) -> Result<(), Response<Body>> {
        if self.allows(headers) {
            return Ok(());
        }
        let body = serde_json::json!({
            "error": "this API needs a bearer token: Authorization: Bearer TOKEN ([api] tokens)",
            "reason": if headers.contains_key(header::AUTHORIZATION) { "bad_token" } else { "missing" },
        });
        let mut r = response::sized(Body::from(body.to_string()), response::JSON, Cache::NoStore);
        *r.status_mut() = StatusCode::UNAUTHORIZED;
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"api\""),
        );
        Err(r)
    }
}

fn parse_hex(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// Enough of a misconfigured entry to find it, not enough to use it.
fn shown(e: &str) -> String {
    let head: String = e.chars().take(10).collect();
    format!("{head}…")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bearer(t: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {t}")).unwrap(),
        );
        h
    }

    #[test]
    fn tokens_by_digest() {
        let d = ApiTokens::digest_of("operator-token-1");
        assert!(d.starts_with("sha256:") && d.len() == 71);
        let t = ApiTokens::from_digests([d.as_str()]).unwrap();
        assert!(t.allows(&bearer("operator-token-1")));
        assert!(!t.allows(&bearer("operator-token-2")));
        assert!(!t.allows(&HeaderMap::new()));
        assert_eq!(t.check(&HeaderMap::new()).unwrap_err().status(), 401);
        assert!(
            ApiTokens::from_digests(["operator-token-1"]).is_err(),
            "text is refused"
        );
        assert!(ApiTokens::from_digests(["sha256:abc"]).is_err());
    }
}
