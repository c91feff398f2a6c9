//! WHIP endpoint (RFC 9725): the HTTP half of WebRTC ingest.
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

use std::net::SocketAddr;

use bytes::Bytes;
use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use ingest::whip::{Whip, WhipError};

use crate::body::Body;
use crate::routes::error;

/// Largest offer we read. Browser offers are a few KiB.
pub const MAX_OFFER: usize = 64 * 1024;

pub async fn post<B>(
    whip: &Whip,
    req: Request<B>,
    path_key: Option<&str>,
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
    let bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(|k| k.trim().to_string());
    let Some(key) = bearer.or_else(|| path_key.map(str::to_string)) else {
        let mut r = error(
            StatusCode::UNAUTHORIZED,
            "send the stream key as Authorization: Bearer KEY (or POST /whip/KEY)",
        );
        r.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return r;
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
    match whip.publish(&key, offer, peer).await {
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
        Err(e) => {
            let status = match &e {
                WhipError::Unauthorized => StatusCode::UNAUTHORIZED,
                WhipError::AlreadyLive(_) => StatusCode::CONFLICT,
                WhipError::Offer(ingest::whip::OfferError::NoCodec { .. }) => {
                    StatusCode::NOT_ACCEPTABLE
                }
                WhipError::Offer(_) | WhipError::Sdp(_) => StatusCode::BAD_REQUEST,
                WhipError::Busy | WhipError::Closed => StatusCode::SERVICE_UNAVAILABLE,
            };
            let mut r = error(status, &e.to_string());
            if status == StatusCode::UNAUTHORIZED {
                r.headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            r
        }
    }
}

pub async fn delete(whip: &Whip, id: &str) -> Response<Body> {
    if whip.end(id).await {
        let mut r = Response::new(Body::empty());
        *r.status_mut() = StatusCode::OK;
        r
    } else {
        error(StatusCode::NOT_FOUND, "no such WHIP session")
    }
}

pub fn patch() -> Response<Body> {
    let mut r = error(
        StatusCode::METHOD_NOT_ALLOWED,
        "trickle ICE and ICE restarts are not supported: all candidates are in the answer",
    );
    r.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("DELETE, OPTIONS"));
    r
}
