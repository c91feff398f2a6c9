//! WHIP endpoint (RFC 9725): the HTTP half of WebRTC ingest. The WebRTC half is behind the
//! [`WhipIngest`] trait, which the binary implements with the ingest crate's WHIP stack; this
//! crate never sees a protocol stack.
//!
//! | request | answer |
//! | --- | --- |
//! | `POST /whip` (`Authorization: Bearer KEY`) or `POST /whip/{key}`, body `application/sdp` | `201` + SDP answer, `Location: /whip/session/{id}` |
//! | `DELETE /whip/session/{id}` | `200`, the session ends |
//! | `PATCH /whip/session/{id}` | `405`: no trickle ICE or ICE restarts (the server is ICE-lite and its candidates are in the answer) |
//! | `OPTIONS` | CORS preflight, `Accept-Post: application/sdp` |
//!
//! Refusals: `401` unknown or missing key, `409` stream already live, `406` no codec we take
//! (the message names what was offered), `400` unusable SDP, `413` body over 64 KiB, `415` not
//! `application/sdp`, `503` too many sessions.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};

use crate::body::Body;
use crate::response::{error, method_not_allowed};
use crate::route::Whip;

/// Largest offer we read. Browser offers are a few KiB.
pub const MAX_OFFER: usize = 64 * 1024;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A WebRTC ingest that takes WHIP offers.
pub trait WhipIngest: Send + Sync + 'static {
    /// Takes a publisher's SDP offer sent with its stream key; `peer` is the HTTP client, for
    /// logs.
    fn publish<'a>(
        &'a self,
        key: &'a str,
        offer: &'a str,
        peer: SocketAddr,
    ) -> BoxFuture<'a, Result<WhipSession, WhipRefusal>>;

    /// Ends a session (the publisher's `DELETE`); false when there is no such session.
    fn end<'a>(&'a self, id: &'a str) -> BoxFuture<'a, bool>;
}

/// A session that was created.
#[derive(Debug)]
pub struct WhipSession {
    /// What the resource URL carries: `/whip/session/{id}`.
    pub id: String,
    /// The SDP answer.
    pub answer: String,
}

/// Why an offer was refused, and the message for the publisher.
#[derive(Debug)]
pub struct WhipRefusal {
    pub reason: Refused,
    pub message: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// Missing or unknown key (`401`).
    Unauthorized,
    /// The stream already has a publisher (`409`).
    AlreadyLive,
    /// No codec the server takes (`406`).
    NoCodec,
    /// An SDP the server cannot use (`400`).
    BadOffer,
    /// Too many sessions, or shutting down (`503`).
    Busy,
}

/// Answers a request under `/whip`.
pub async fn handle<B>(
    ingest: &dyn WhipIngest,
    route: Whip<'_>,
    req: Request<B>,
    peer: SocketAddr,
) -> Response<Body>
where
    B: http_body::Body + Send,
    B::Data: Send,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    match (req.method(), route) {
        (&Method::POST, Whip::Endpoint(key)) => {
            let key = key.map(str::to_string);
            post(ingest, req, key, peer).await
        }
        (_, Whip::Endpoint(_) | Whip::Sessions) => {
            method_not_allowed("publish with POST", "POST, OPTIONS")
        }
        (&Method::DELETE, Whip::Session(id)) => {
            if ingest.end(id).await {
                let mut r = Response::new(Body::empty());
                *r.status_mut() = StatusCode::OK;
                r
            } else {
                error(StatusCode::NOT_FOUND, "no such WHIP session")
            }
        }
        (&Method::PATCH, Whip::Session(_)) => method_not_allowed(
            "trickle ICE and ICE restarts are not supported: all candidates are in the answer",
            "DELETE, OPTIONS",
        ),
        (_, Whip::Session(_)) => method_not_allowed("only DELETE and OPTIONS", "DELETE, OPTIONS"),
        (_, Whip::Other) => error(StatusCode::NOT_FOUND, "not found"),
    }
}

async fn post<B>(
    ingest: &dyn WhipIngest,
    req: Request<B>,
    path_key: Option<String>,
    peer: SocketAddr,
) -> Response<Body>
where
    B: http_body::Body + Send,
    B::Data: Send,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .eq_ignore_ascii_case("application/sdp")
    {
        return error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "a WHIP offer is sent as Content-Type: application/sdp",
        );
    }
    let bearer = crate::access::bearer(req.headers()).map(str::to_string);
    let Some(key) = bearer.or(path_key) else {
        return unauthorized(
            "send the stream key as Authorization: Bearer KEY (or POST /whip/KEY)",
        );
    };
    let body: Bytes = match Limited::new(req.into_body(), MAX_OFFER).collect().await {
        Ok(c) => c.to_bytes(),
        Err(e) => {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                tracing::warn!(%peer, "WHIP offer refused: body over {MAX_OFFER} bytes");
                return error(StatusCode::PAYLOAD_TOO_LARGE, "the offer is too large");
            }
            return error(StatusCode::BAD_REQUEST, "could not read the offer");
        }
    };
    let Ok(offer) = std::str::from_utf8(&body) else {
        return error(StatusCode::BAD_REQUEST, "the offer is not UTF-8 text");
    };
    match ingest.publish(&key, offer, peer).await {
        Ok(created) => {
            let mut r = Response::new(Body::from(created.answer));
            *r.status_mut() = StatusCode::CREATED;
            let h = r.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/sdp"),
            );
            if let Ok(v) = HeaderValue::from_str(&format!("/whip/session/{}", created.id)) {
                h.insert(header::LOCATION, v);
            }
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            r
        }
        Err(refusal) => {
            let status = match refusal.reason {
                Refused::Unauthorized => return unauthorized(&refusal.message),
                Refused::AlreadyLive => StatusCode::CONFLICT,
                Refused::NoCodec => StatusCode::NOT_ACCEPTABLE,
                Refused::BadOffer => StatusCode::BAD_REQUEST,
                Refused::Busy => StatusCode::SERVICE_UNAVAILABLE,
            };
            error(status, &refusal.message)
        }
    }
}

fn unauthorized(msg: &str) -> Response<Body> {
    let mut r = error(StatusCode::UNAUTHORIZED, msg);
    r.headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    r
}
