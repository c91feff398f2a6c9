//! Who may have what: the check every viewer's request passes before its area answers, on
//! origins and edges alike.
//!
//! Playback is `public` or `signed` per stream (and per archive, as its stream was when it
//! was recorded); a signed one needs a JWT ([`jwt`]) given as `?token=` (or
//! `Authorization: Bearer`), which the server then carries into every URL it writes
//! ([`carry`]). A refusal is `401` (no token, or one that does not verify) or `403` (a token
//! for something else), with a JSON reason. The APIs under `/api/v1/` take an operator's
//! bearer token ([`api`]); the resume API a viewer's token.

pub mod api;
pub mod carry;
pub mod jwt;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, RwLock};

use http::{header, HeaderMap, HeaderValue, Response};
use tracing::debug;

use crate::body::Body;
use crate::response::{self, Cache};
pub use jwt::{Audience, Claims, KeyConfig, Refusal, Verifier};

/// What a viewer's request is for.
#[derive(Clone, Copy, Debug)]
pub enum Subject<'a> {
    /// A live stream, by name.
    Live(&'a str),
    /// An archive: its id, and the stream it recorded.
    Archive { id: &'a str, stream: &'a str },
    /// A viewer's own data (resume positions).
    Viewer,
}

/// The playback policy of a node: which streams are signed, and the keys that verify tokens.
pub struct Playback {
    verifier: Option<Arc<Verifier>>,
    default_signed: bool,
    /// Streams whose policy is set (an origin's configured and created streams).
    streams: RwLock<HashMap<String, bool>>,
}

impl Playback {
    /// `default_signed`: the policy of streams this node has no word on.
    pub fn new(verifier: Option<Arc<Verifier>>, default_signed: bool) -> Self {
        Playback {
            verifier,
            default_signed,
            streams: RwLock::new(HashMap::new()),
        }
    }

    /// Everything public, no keys (tests, and nodes that sign nothing).
    pub fn public() -> Self {
        Playback::new(None, false)
    }

    pub fn verifier(&self) -> Option<&Arc<Verifier>> {
        self.verifier.as_ref()
    }

    /// Sets a stream's policy (`signed` or public).
    pub fn set(&self, name: &str, signed: bool) {
        self.streams.write().unwrap().insert(name.into(), signed);
    }

    pub fn forget(&self, name: &str) {
        self.streams.write().unwrap().remove(name);
    }

    /// Whether stream `name` needs a token here: its own policy (or the default), or what
    /// the thing served says of itself (`marked`: a window's or archive's flag, set where it
    /// was made; an edge learns the origin's policy from it).
    pub fn is_signed(&self, name: &str, marked: bool) -> bool {
        marked
            || self
                .streams
                .read()
                .unwrap()
                .get(name)
                .copied()
                .unwrap_or(self.default_signed)
    }

    /// Checks a signed subject's token: the token to carry on when it may be served.
    pub async fn check<'r>(
        &self,
        subject: Subject<'_>,
        token: Option<&'r str>,
        client: IpAddr,
    ) -> Result<&'r str, Refusal> {
        let token = token.ok_or(Refusal::Missing)?;
        let Some(v) = &self.verifier else {
            return Err(Refusal::UnknownKey);
        };
        let claims = match v.remembered(token) {
            Some(r) => r?,
            // Boxed: a signature check (and maybe a JWKS fetch) is the rare path.
            None => Box::pin(v.verify(token)).await?,
        };
        let (aud, matches) = match subject {
            Subject::Live(name) => (Audience::Live, claims.sub == name),
            Subject::Archive { id, stream } => {
                (Audience::Vod, claims.sub == id || claims.sub == stream)
            }
            Subject::Viewer => (Audience::Viewer, true),
        };
        if !claims.aud.contains(&aud) {
            return Err(Refusal::WrongAudience);
        }
        if !matches {
            return Err(Refusal::WrongStream);
        }
        if claims.ip.is_some_and(|ip| !same_address(ip, client)) {
            return Err(Refusal::WrongAddress);
        }
        Ok(token)
    }
}

impl Playback {
    /// The viewer a viewer token (`aud` viewer) names.
    pub async fn viewer(&self, token: Option<&str>, client: IpAddr) -> Result<String, Refusal> {
        let token = token.ok_or(Refusal::Missing)?;
        let v = self.verifier.as_ref().ok_or(Refusal::UnknownKey)?;
        let claims = match v.remembered(token) {
            Some(r) => r?,
            None => Box::pin(v.verify(token)).await?,
        };
        if !claims.aud.contains(&Audience::Viewer) {
            return Err(Refusal::WrongAudience);
        }
        if claims.ip.is_some_and(|ip| !same_address(ip, client)) {
            return Err(Refusal::WrongAddress);
        }
        Ok(claims.sub.clone())
    }
}

/// `::ffff:a.b.c.d` is `a.b.c.d`.
fn same_address(a: IpAddr, b: IpAddr) -> bool {
    a.to_canonical() == b.to_canonical()
}

/// The token a request carries: `?token=`, else `Authorization: Bearer`.
pub fn token<'a>(query: &'a str, headers: &'a HeaderMap) -> Option<&'a str> {
    query
        .split('&')
        .find_map(|kv| kv.strip_prefix("token="))
        .or_else(|| bearer(headers))
        .filter(|t| !t.is_empty())
}

/// The credentials of `Authorization: Bearer …` (the scheme's case does not matter).
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
}

/// A refusal as the viewer gets it: `401`/`403`, a JSON reason, never cached.
pub fn refused(r: Refusal, subject: Subject<'_>) -> Response<Body> {
    debug!(?subject, reason = r.reason(), "playback refused");
    let body = serde_json::json!({ "error": r.message(), "reason": r.reason() }).to_string();
    let mut resp = response::sized(Body::from(body), response::JSON, Cache::NoStore);
    *resp.status_mut() = r.status();
    if r.status() == http::StatusCode::UNAUTHORIZED {
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"playback\""),
        );
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "an-hs256-secret-of-at-least-32-bytes";

    fn playback() -> Playback {
        let v = Verifier::new(&KeyConfig {
            hs256_secrets: vec![SECRET.into()],
            ..Default::default()
        })
        .unwrap();
        Playback::new(Some(v), false)
    }

    fn token(p: &Playback, sub: &str, aud: Audience, ip: Option<IpAddr>) -> String {
        p.verifier()
            .unwrap()
            .mint(&Claims {
                sub: sub.into(),
                aud: vec![aud],
                exp: jsonwebtoken::get_current_timestamp() + 60,
                nbf: None,
                ip,
            })
            .unwrap()
    }

    #[tokio::test]
    async fn a_token_is_for_one_stream_one_audience_and_maybe_one_address() {
        let p = playback();
        let here: IpAddr = [10, 0, 0, 1].into();
        let live = token(&p, "cam", Audience::Live, None);
        assert!(p
            .check(Subject::Live("cam"), Some(&live), here)
            .await
            .is_ok());
        // Twice: the second from memory.
        assert!(p
            .check(Subject::Live("cam"), Some(&live), here)
            .await
            .is_ok());
        assert_eq!(
            p.check(Subject::Live("other"), Some(&live), here).await,
            Err(Refusal::WrongStream)
        );
        let archive = Subject::Archive {
            id: "cam-abc",
            stream: "cam",
        };
        assert_eq!(
            p.check(archive, Some(&live), here).await,
            Err(Refusal::WrongAudience)
        );
        let vod = token(&p, "cam-abc", Audience::Vod, None);
        assert!(p.check(archive, Some(&vod), here).await.is_ok());
        let pinned = token(&p, "cam", Audience::Live, Some([10, 0, 0, 2].into()));
        assert_eq!(
            p.check(Subject::Live("cam"), Some(&pinned), here).await,
            Err(Refusal::WrongAddress)
        );
        assert_eq!(
            p.check(Subject::Live("cam"), None, here).await,
            Err(Refusal::Missing)
        );
    }

    #[test]
    fn policies() {
        let p = playback();
        p.set("paid", true);
        p.set("free", false);
        assert!(p.is_signed("paid", false));
        assert!(!p.is_signed("free", false) && !p.is_signed("unknown", false));
        assert!(
            p.is_signed("free", true),
            "what the window says of itself counts"
        );
        let strict = Playback::new(None, true);
        assert!(strict.is_signed("unknown", false));
    }

    #[test]
    fn tokens_from_the_query_or_the_header() {
        let mut h = HeaderMap::new();
        assert_eq!(super::token("_HLS_msn=3&token=abc", &h), Some("abc"));
        assert_eq!(super::token("", &h), None);
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer xyz"),
        );
        assert_eq!(super::token("", &h), Some("xyz"));
    }
}
