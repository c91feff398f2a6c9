//! Playback tokens: JWTs signed with HS256 (a shared secret), ES256 or RS256 (public keys from
//! the config or an operator's JWKS URL), verified on whichever node a viewer asks, and
//! remembered once verified so a viewer's every part costs a map lookup, not a signature.
//!
//! Claims: `sub` (a stream's name, an archive's id or its stream's name), `aud` (`live` or
//! `vod`), `exp`, optional `nbf`, optional `ip` (the only client address it is good for).

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Empty, Limited};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

/// Seconds of clock difference forgiven on `exp` and `nbf`.
const LEEWAY: u64 = 5;
/// Verified tokens remembered (a few hundred bytes each).
const REMEMBERED: usize = 10_000;
/// A token longer than this is refused unread.
const MAX_TOKEN: usize = 4096;
/// A JWKS document larger than this is refused.
const MAX_JWKS: usize = 256 * 1024;
/// A token naming a key id the JWKS does not have fetches it again, at most this often.
const JWKS_RECHECK: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("an HS256 secret must have at least 32 bytes")]
    ShortSecret,
    #[error("public key {0}: not a PEM EC (P-256) or RSA public key")]
    BadPem(String),
    #[error("JWKS URL {0:?}: give http:// or https:// and a host")]
    BadJwksUrl(String),
}

/// What a token is for: live streams, archives, or a viewer's own data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Audience {
    Live,
    Vod,
    /// A viewer's own token (`sub`: the viewer), for the resume API.
    Viewer,
    /// Some other audience of the operator's (grants nothing here).
    #[serde(other)]
    Other,
}

/// A token's claims, as minted and as checked.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    #[serde(with = "one_or_many")]
    pub aud: Vec<Audience>,
    pub exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<IpAddr>,
}

/// `aud` may be one string or an array of them (RFC 7519 §4.1.3).
mod one_or_many {
    use super::Audience;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(Audience),
        Many(Vec<Audience>),
    }

    pub fn serialize<S: Serializer>(v: &[Audience], s: S) -> Result<S::Ok, S::Error> {
        match v {
            [one] => one.serialize(s),
            many => many.serialize(s),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Audience>, D::Error> {
        Ok(match OneOrMany::deserialize(d)? {
            OneOrMany::One(a) => vec![a],
            OneOrMany::Many(v) => v,
        })
    }
}

/// Why a token was refused; [`Refusal::status`] and [`Refusal::reason`] are what the viewer
/// gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    Missing,
    Malformed,
    BadSignature,
    Expired,
    NotYetValid,
    WrongStream,
    WrongAudience,
    WrongAddress,
    /// This node has no key that could have signed it.
    UnknownKey,
}

impl Refusal {
    /// 401 when a (better) token would get in, 403 when this token is for something else.
    pub fn status(self) -> http::StatusCode {
        match self {
            Refusal::WrongStream | Refusal::WrongAudience | Refusal::WrongAddress => {
                http::StatusCode::FORBIDDEN
            }
            _ => http::StatusCode::UNAUTHORIZED,
        }
    }

    pub fn reason(self) -> &'static str {
        match self {
            Refusal::Missing => "missing",
            Refusal::Malformed => "malformed",
            Refusal::BadSignature => "bad_signature",
            Refusal::Expired => "expired",
            Refusal::NotYetValid => "not_yet_valid",
            Refusal::WrongStream => "wrong_stream",
            Refusal::WrongAudience => "wrong_audience",
            Refusal::WrongAddress => "wrong_address",
            Refusal::UnknownKey => "unknown_key",
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            Refusal::Missing => "a token is needed: add ?token=JWT to the playlist or MPD URL (or send Authorization: Bearer JWT)",
            Refusal::Malformed => "the playback token is not a JWT",
            Refusal::BadSignature => "the playback token's signature does not verify",
            Refusal::Expired => "the playback token has expired",
            Refusal::NotYetValid => "the playback token is not valid yet (nbf)",
            Refusal::WrongStream => "the playback token is for another stream or archive",
            Refusal::WrongAudience => "the playback token is not for this kind of playback (aud live or vod)",
            Refusal::WrongAddress => "the playback token is for another client address",
            Refusal::UnknownKey => "no key here verifies the playback token (alg or kid unknown)",
        }
    }
}

/// Where verification keys come from.
#[derive(Clone, Debug, Default)]
pub struct KeyConfig {
    /// HS256 shared secrets; the first one mints.
    pub hs256_secrets: Vec<String>,
    /// PEM public keys (EC P-256 for ES256, RSA for RS256), as text.
    pub public_keys: Vec<(String, String)>,
    /// A JWKS document's URL, fetched at start and every `jwks_refresh`.
    pub jwks_url: Option<String>,
    pub jwks_refresh: Duration,
}

/// The keys a node verifies tokens with, and the tokens it verified.
pub struct Verifier {
    secrets: Vec<DecodingKey>,
    minting: Option<EncodingKey>,
    pems: Vec<(Algorithm, DecodingKey)>,
    jwks: Option<Jwks>,
    remembered: Mutex<lru::LruCache<Box<str>, Arc<Claims>>>,
}

/// Keys from a JWKS URL: the last good document, refetched on a timer and when a token names
/// a key it does not have.
struct Jwks {
    url: http::Uri,
    keys: RwLock<HashMap<Option<String>, (Algorithm, DecodingKey)>>,
    last_fetch: tokio::sync::Mutex<Option<Instant>>,
    client: crate::client::HttpsClient,
}

impl Verifier {
    pub fn new(config: &KeyConfig) -> Result<Arc<Self>, KeyError> {
        let mut secrets = Vec::new();
        for s in &config.hs256_secrets {
            if s.len() < 32 {
                return Err(KeyError::ShortSecret);
            }
            secrets.push(DecodingKey::from_secret(s.as_bytes()));
        }
        let minting = config
            .hs256_secrets
            .first()
            .map(|s| EncodingKey::from_secret(s.as_bytes()));
        let mut pems = Vec::new();
        for (name, pem) in &config.public_keys {
            let key = if let Ok(k) = DecodingKey::from_ec_pem(pem.as_bytes()) {
                (Algorithm::ES256, k)
            } else if let Ok(k) = DecodingKey::from_rsa_pem(pem.as_bytes()) {
                (Algorithm::RS256, k)
            } else {
                return Err(KeyError::BadPem(name.clone()));
            };
            pems.push(key);
        }
        let jwks = match &config.jwks_url {
            None => None,
            Some(url) => {
                let uri: http::Uri = url.parse().map_err(|_| KeyError::BadJwksUrl(url.clone()))?;
                if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
                    return Err(KeyError::BadJwksUrl(url.clone()));
                }
                if uri.scheme_str() == Some("http") {
                    warn!(url = %url, "the JWKS URL is plain http: anyone on the way could swap the keys");
                }
                Some(Jwks {
                    url: uri,
                    keys: RwLock::new(HashMap::new()),
                    last_fetch: tokio::sync::Mutex::new(None),
                    client: crate::client::https(),
                })
            }
        };
        let v = Arc::new(Verifier {
            secrets,
            minting,
            pems,
            jwks,
            remembered: Mutex::new(lru::LruCache::new(
                NonZeroUsize::new(REMEMBERED).expect("not zero"),
            )),
        });
        if v.jwks.is_some() {
            let (weak, every) = (Arc::downgrade(&v), config.jwks_refresh.max(JWKS_RECHECK));
            tokio::spawn(async move {
                loop {
                    let Some(v) = weak.upgrade() else { return };
                    v.fetch_jwks().await;
                    drop(v);
                    tokio::time::sleep(every).await;
                }
            });
        }
        Ok(v)
    }

    /// Whether any key is configured (a signed stream on a node without keys refuses all).
    pub fn has_keys(&self) -> bool {
        !self.secrets.is_empty() || !self.pems.is_empty() || self.jwks.is_some()
    }

    /// A token for `claims`, signed with the first HS256 secret (`None`: no secret here).
    pub fn mint(&self, claims: &Claims) -> Option<String> {
        let key = self.minting.as_ref()?;
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, key).ok()
    }

    /// The claims of `token` if it was verified before and is still within its times; the
    /// common case, with no await.
    pub fn remembered(&self, token: &str) -> Option<Result<Arc<Claims>, Refusal>> {
        let c = self.remembered.lock().unwrap().get(token).cloned()?;
        Some(within_times(&c).map(|()| c))
    }

    /// Verifies `token`'s signature and times (fetching the JWKS again if it names a key id
    /// not seen yet), and remembers it.
    pub async fn verify(&self, token: &str) -> Result<Arc<Claims>, Refusal> {
        if let Some(r) = self.remembered(token) {
            return r;
        }
        if token.len() > MAX_TOKEN || !token_chars(token) {
            return Err(Refusal::Malformed);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| Refusal::Malformed)?;
        let claims = match self.verify_with_known_keys(token, &header) {
            Err(Refusal::UnknownKey) if self.jwks.is_some() => {
                if self.refetch_jwks().await {
                    self.verify_with_known_keys(token, &header)?
                } else {
                    return Err(Refusal::UnknownKey);
                }
            }
            r => r?,
        };
        let claims = Arc::new(claims);
        self.remembered
            .lock()
            .unwrap()
            .put(token.into(), claims.clone());
        Ok(claims)
    }

    fn verify_with_known_keys(&self, token: &str, header: &Header) -> Result<Claims, Refusal> {
        let candidates: Vec<DecodingKey> = match header.alg {
            Algorithm::HS256 => self.secrets.clone(),
            alg @ (Algorithm::ES256 | Algorithm::RS256) => {
                let mut keys: Vec<DecodingKey> = self
                    .pems
                    .iter()
                    .filter(|(a, _)| *a == alg)
                    .map(|(_, k)| k.clone())
                    .collect();
                if let Some(j) = &self.jwks {
                    let set = j.keys.read().unwrap();
                    match &header.kid {
                        Some(kid) => keys.extend(
                            set.get(&Some(kid.clone()))
                                .filter(|(a, _)| *a == alg)
                                .map(|(_, k)| k.clone()),
                        ),
                        None => keys.extend(
                            set.values()
                                .filter(|(a, _)| *a == alg)
                                .map(|(_, k)| k.clone()),
                        ),
                    }
                }
                keys
            }
            _ => return Err(Refusal::UnknownKey),
        };
        if candidates.is_empty() {
            return Err(Refusal::UnknownKey);
        }
        let mut validation = Validation::new(header.alg);
        validation.leeway = LEEWAY;
        validation.validate_aud = false;
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "sub", "aud"]);
        let mut last = Refusal::BadSignature;
        for key in &candidates {
            match jsonwebtoken::decode::<Claims>(token, key, &validation) {
                Ok(data) => return Ok(data.claims),
                Err(e) => {
                    use jsonwebtoken::errors::ErrorKind as K;
                    last = match e.kind() {
                        K::ExpiredSignature => return Err(Refusal::Expired),
                        K::ImmatureSignature => return Err(Refusal::NotYetValid),
                        K::InvalidSignature => Refusal::BadSignature,
                        K::MissingRequiredClaim(_) | K::InvalidClaimFormat(_) | K::Json(_) => {
                            Refusal::Malformed
                        }
                        _ => Refusal::BadSignature,
                    };
                }
            }
        }
        Err(last)
    }

    /// Fetches the JWKS again unless that happened within [`JWKS_RECHECK`]; whether the keys
    /// may have changed. One fetch at a time: those who asked meanwhile use its result.
    async fn refetch_jwks(&self) -> bool {
        let Some(j) = &self.jwks else { return false };
        let asked = Instant::now();
        let mut last = j.last_fetch.lock().await;
        match *last {
            Some(t) if t >= asked => return true,
            Some(t) if t.elapsed() < JWKS_RECHECK => return false,
            _ => {}
        }
        self.fetch_locked(j, &mut last).await
    }

    async fn fetch_jwks(&self) -> bool {
        let Some(j) = &self.jwks else { return false };
        let mut last = j.last_fetch.lock().await;
        self.fetch_locked(j, &mut last).await
    }

    /// Fetches the JWKS (`last`: when the last fetch ended, locked by the caller).
    async fn fetch_locked(&self, j: &Jwks, last: &mut Option<Instant>) -> bool {
        let fetched = fetch(j).await;
        *last = Some(Instant::now());
        match fetched {
            Ok(set) => {
                let mut keys = HashMap::new();
                for jwk in &set.keys {
                    let alg = match jwk.common.key_algorithm {
                        Some(jsonwebtoken::jwk::KeyAlgorithm::ES256) => Algorithm::ES256,
                        Some(jsonwebtoken::jwk::KeyAlgorithm::RS256) => Algorithm::RS256,
                        None => match &jwk.algorithm {
                            jsonwebtoken::jwk::AlgorithmParameters::EllipticCurve(_) => {
                                Algorithm::ES256
                            }
                            jsonwebtoken::jwk::AlgorithmParameters::RSA(_) => Algorithm::RS256,
                            _ => continue,
                        },
                        _ => continue,
                    };
                    if let Ok(k) = DecodingKey::from_jwk(jwk) {
                        keys.insert(jwk.common.key_id.clone(), (alg, k));
                    }
                }
                info!(url = %j.url, keys = keys.len(), "JWKS fetched");
                *j.keys.write().unwrap() = keys;
                true
            }
            Err(e) => {
                warn!(url = %j.url, error = %e, "JWKS fetch failed; keeping the keys we had");
                false
            }
        }
    }
}

async fn fetch(j: &Jwks) -> Result<JwkSet, String> {
    let req = http::Request::get(j.url.clone())
        .header(http::header::ACCEPT, "application/json")
        .body(Empty::new())
        .map_err(|e| e.to_string())?;
    let resp = tokio::time::timeout(Duration::from_secs(10), j.client.request(req))
        .await
        .map_err(|_| "timed out".to_string())?
        .map_err(|e| e.to_string())?;
    if !resp.status().is_success() {
        return Err(format!("status {}", resp.status()));
    }
    let body = Limited::new(resp.into_body(), MAX_JWKS)
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    serde_json::from_slice(&body).map_err(|e| format!("not a JWKS document: {e}"))
}

fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

fn within_times(c: &Claims) -> Result<(), Refusal> {
    let now = now();
    if c.exp + LEEWAY < now {
        return Err(Refusal::Expired);
    }
    if c.nbf.is_some_and(|nbf| nbf > now + LEEWAY) {
        return Err(Refusal::NotYetValid);
    }
    Ok(())
}

/// A JWT's alphabet (base64url and dots): a token carried into playlists can hold nothing else.
pub fn token_chars(t: &str) -> bool {
    !t.is_empty()
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "an-hs256-secret-of-at-least-32-bytes";

    fn verifier() -> Arc<Verifier> {
        Verifier::new(&KeyConfig {
            hs256_secrets: vec![SECRET.into()],
            ..Default::default()
        })
        .unwrap()
    }

    fn claims(exp_in: i64) -> Claims {
        Claims {
            sub: "s".into(),
            aud: vec![Audience::Live],
            exp: (now() as i64 + exp_in) as u64,
            nbf: None,
            ip: None,
        }
    }

    #[tokio::test]
    async fn minted_tokens_verify_and_are_remembered() {
        let v = verifier();
        let t = v.mint(&claims(60)).unwrap();
        assert!(v.remembered(&t).is_none());
        assert_eq!(v.verify(&t).await.unwrap().sub, "s");
        assert!(v.remembered(&t).unwrap().is_ok());
    }

    #[tokio::test]
    async fn refusals() {
        let v = verifier();
        assert_eq!(
            v.verify(&v.mint(&claims(-60)).unwrap()).await.unwrap_err(),
            Refusal::Expired
        );
        let mut c = claims(60);
        c.nbf = Some(now() + 600);
        assert_eq!(
            v.verify(&v.mint(&c).unwrap()).await.unwrap_err(),
            Refusal::NotYetValid
        );
        let other = Verifier::new(&KeyConfig {
            hs256_secrets: vec!["another-secret-that-is-32-bytes-long!".into()],
            ..Default::default()
        })
        .unwrap();
        let forged = other.mint(&claims(60)).unwrap();
        assert_eq!(v.verify(&forged).await.unwrap_err(), Refusal::BadSignature);
        assert_eq!(v.verify("not a jwt").await.unwrap_err(), Refusal::Malformed);
        assert_eq!(v.verify("a.b.c").await.unwrap_err(), Refusal::Malformed);
        // `alg: none` is nobody's key.
        let none = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJzIn0.";
        assert!(v.verify(none).await.is_err());
        // An ES256 token on a node with only a secret.
        let header = "eyJhbGciOiJFUzI1NiJ9";
        let body = forged.split('.').nth(1).unwrap();
        assert_eq!(
            v.verify(&format!("{header}.{body}.AAAA"))
                .await
                .unwrap_err(),
            Refusal::UnknownKey
        );
    }

    #[test]
    fn audience_is_one_or_many() {
        let one: Claims = serde_json::from_str(r#"{"sub":"s","aud":"vod","exp":1}"#).unwrap();
        assert_eq!(one.aud, [Audience::Vod]);
        let many: Claims =
            serde_json::from_str(r#"{"sub":"s","aud":["live","vod"],"exp":1}"#).unwrap();
        assert_eq!(many.aud, [Audience::Live, Audience::Vod]);
        let theirs: Claims =
            serde_json::from_str(r#"{"sub":"s","aud":["their-app","vod"],"exp":1}"#).unwrap();
        assert_eq!(theirs.aud, [Audience::Other, Audience::Vod]);
    }

    #[test]
    fn short_secrets_are_refused() {
        assert!(Verifier::new(&KeyConfig {
            hs256_secrets: vec!["short".into()],
            ..Default::default()
        })
        .is_err());
    }
}
