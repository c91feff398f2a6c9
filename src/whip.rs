//! The HTTP server's WHIP endpoint (`httpd::whip`) connected to the ingest crate's WebRTC stack:
//! the two crates never see each other. Also its session count for `/metrics`.

use std::net::SocketAddr;

use httpd::whip::{BoxFuture, Refused, WhipIngest, WhipRefusal, WhipSession};
use ingest::whip::{OfferError, Whip, WhipError};

pub struct WhipBridge(pub Whip);

/// `estuary_whip_sessions`.
pub struct WhipGauges(pub Whip);

impl httpd::metrics::Gauges for WhipGauges {
    fn read(&self) -> Vec<(&'static str, &'static str, bool, f64)> {
        vec![(
            "estuary_whip_sessions",
            "WebRTC (WHIP) publishers connected",
            false,
            self.0.sessions() as f64,
        )]
    }
}

impl WhipIngest for WhipBridge {
    fn publish<'a>(
        &'a self,
        key: &'a str,
        offer: &'a str,
        peer: SocketAddr,
    ) -> BoxFuture<'a, Result<WhipSession, WhipRefusal>> {
        Box::pin(async move {
            match self.0.publish(key, offer, peer).await {
                Ok(created) => Ok(WhipSession {
                    id: created.id,
                    answer: created.answer,
                }),
                Err(e) => Err(WhipRefusal {
                    reason: match &e {
                        WhipError::Unauthorized => Refused::Unauthorized,
                        WhipError::AlreadyLive(_) => Refused::AlreadyLive,
                        WhipError::Offer(OfferError::NoCodec { .. }) => Refused::NoCodec,
                        WhipError::Offer(_) | WhipError::Sdp(_) => Refused::BadOffer,
                        WhipError::Busy | WhipError::Closed => Refused::Busy,
                    },
                    message: e.to_string(),
                }),
            }
        })
    }

    fn end<'a>(&'a self, id: &'a str) -> BoxFuture<'a, bool> {
        Box::pin(self.0.end(id))
    }
}
