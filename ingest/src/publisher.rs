//! One publisher's life, the same for every protocol: **reserve** the stream name once the
//! key is known (a second publisher is refused from then on) → **live** when the adapter knows
//! the tracks (the broadcast is announced to the hub's consumers) → **end**.
//!
//! An end comes two ways. [`Publisher::end`] is a stop on purpose (RTMP `deleteStream`, WHIP
//! `DELETE`): the stream ends now. Dropping the publisher is a connection that broke: the hub
//! holds the broadcast for its reconnect grace, so a publisher that comes back continues it.
//!
//! The lines every protocol logs are written here, with the stream and the protocol: the
//! publish accepted (info; not for an RTSP pull, which nobody has to admit), the stream live
//! with its codecs (info), the adapter's notices (warn: they describe a problem in what the
//! publisher sends), a source coming back (info) and a stop on purpose (info). A broken
//! connection is logged by its task, and the hub logs the stream held for a reconnect.

use media::{Hub, HubError, Published, Reservation};
use tracing::{info, warn};

use crate::AdapterEvent;

/// Which ingest a publisher came in on, for logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    Rtmp,
    Srt,
    Whip,
    Rtsp,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Rtmp => "rtmp",
            Protocol::Srt => "srt",
            Protocol::Whip => "whip",
            Protocol::Rtsp => "rtsp",
        }
    }
}

enum State {
    /// The name is claimed; the tracks are not known yet.
    Reserved(Reservation),
    Live(Published),
    /// A source that claims its name only when its media starts (an RTSP pull: there is no
    /// publisher to refuse).
    Unclaimed,
}

/// A publisher between its admission and its end.
pub struct Publisher {
    hub: Hub,
    name: String,
    protocol: Protocol,
    state: State,
}

impl Publisher {
    /// Claims `name` for a publisher whose key was accepted.
    pub fn reserve(hub: &Hub, name: &str, protocol: Protocol) -> Result<Publisher, HubError> {
        let reservation = hub.reserve(name)?;
        info!(stream = %name, protocol = protocol.as_str(), "publish accepted");
        Ok(Publisher {
            hub: hub.clone(),
            name: name.to_string(),
            protocol,
            state: State::Reserved(reservation),
        })
    }

    /// A source that claims `name` when its media starts ([`AdapterEvent::Start`]).
    pub fn unclaimed(hub: &Hub, name: &str, protocol: Protocol) -> Publisher {
        Publisher {
            hub: hub.clone(),
            name: name.to_string(),
            protocol,
            state: State::Unclaimed,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The broadcast has started.
    pub fn is_live(&self) -> bool {
        matches!(self.state, State::Live(_))
    }

    /// Hands on everything the adapter has ready (`pull` until `None`). Fails only when a
    /// start finds the name taken by another publisher (possible for an unclaimed source).
    pub fn drain(
        &mut self,
        mut pull: impl FnMut() -> Option<AdapterEvent>,
    ) -> Result<(), HubError> {
        while let Some(ev) = pull() {
            self.handle(ev)?;
        }
        Ok(())
    }

    /// Hands on one adapter event: a start announces the broadcast (a second start, when the
    /// source's tracks changed, ends the first broadcast and starts a new one), frames go to
    /// it, a discontinuity marks a source that restarted.
    pub fn handle(&mut self, ev: AdapterEvent) -> Result<(), HubError> {
        match ev {
            AdapterEvent::Frame(f) => {
                if let State::Live(p) = &self.state {
                    if p.kicked() {
                        if let State::Live(p) = std::mem::replace(&mut self.state, State::Unclaimed)
                        {
                            info!(stream = %self.name, protocol = self.protocol.as_str(), "publisher kicked; the stream ends");
                            p.end();
                        }
                        return Err(HubError::Kicked(self.name.clone()));
                    }
                    p.push(f);
                }
            }
            AdapterEvent::Start(tracks) => {
                let codecs: Vec<String> = tracks.iter().map(|t| t.codec.codec_string()).collect();
                let published = match std::mem::replace(&mut self.state, State::Unclaimed) {
                    State::Reserved(r) => r.publish(tracks),
                    State::Live(p) => {
                        info!(stream = %self.name, protocol = self.protocol.as_str(), "the source's tracks changed; starting the stream over");
                        p.end();
                        self.hub.publish(&self.name, tracks)?
                    }
                    State::Unclaimed => self.hub.publish(&self.name, tracks)?,
                };
                info!(stream = %self.name, protocol = self.protocol.as_str(), ?codecs, "live");
                self.state = State::Live(published);
            }
            AdapterEvent::Discontinuity => {
                if let State::Live(p) = &self.state {
                    info!(stream = %self.name, protocol = self.protocol.as_str(), "the source is back; the stream continues");
                    p.discontinuity();
                }
            }
            AdapterEvent::Notice(n) => {
                warn!(stream = %self.name, protocol = self.protocol.as_str(), "{n}")
            }
        }
        Ok(())
    }

    /// The publisher stopped on purpose: the stream ends now, without a reconnect grace.
    pub fn end(mut self) {
        if let State::Live(p) = std::mem::replace(&mut self.state, State::Unclaimed) {
            info!(stream = %self.name, protocol = self.protocol.as_str(), "publisher stopped; the stream ends");
            p.end();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use media::{CodecConfig, TrackInfo};
    use std::sync::{Arc, Mutex};

    fn tracks(w: u8) -> Vec<TrackInfo> {
        vec![TrackInfo::video(CodecConfig::H264 {
            avcc: bytes::Bytes::from(vec![1, 0x64, 0, 0x1f, w]),
        })]
    }

    #[test]
    fn reserve_live_end() {
        let hub = Hub::new();
        let announced = Arc::new(Mutex::new(0));
        let a = announced.clone();
        hub.on_publish(move |_| *a.lock().unwrap() += 1);
        let mut p = Publisher::reserve(&hub, "s", Protocol::Rtmp).unwrap();
        assert!(
            Publisher::reserve(&hub, "s", Protocol::Srt).is_err(),
            "one publisher per name from the reservation on"
        );
        assert!(!p.is_live());
        p.handle(AdapterEvent::Start(tracks(1))).unwrap();
        assert!(p.is_live());
        // New tracks: the first broadcast ends, a second one starts under the same name.
        p.handle(AdapterEvent::Start(tracks(2))).unwrap();
        assert_eq!(*announced.lock().unwrap(), 2);
        p.end();
        assert!(!hub.is_live("s"));
    }

    #[test]
    fn an_unclaimed_source_claims_its_name_when_media_starts() {
        let hub = Hub::new();
        let mut p = Publisher::unclaimed(&hub, "cam", Protocol::Rtsp);
        assert!(!hub.is_live("cam"));
        let other = hub.publish("cam", tracks(1)).unwrap();
        assert_eq!(
            p.handle(AdapterEvent::Start(tracks(1))),
            Err(HubError::AlreadyLive("cam".into()))
        );
        drop(other);
        p.handle(AdapterEvent::Start(tracks(1))).unwrap();
        assert!(hub.is_live("cam"));
    }
}
