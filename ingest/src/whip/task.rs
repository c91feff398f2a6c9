//! The WHIP session task: one UDP socket, every session's `Rtc`, timers and deadlines; each
//! session's adapter output goes to its [`Publisher`].

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, UNIX_EPOCH};

use media::{Timescale, Timestamp};
use str0m::media::{KeyframeRequestKind, MediaKind, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::adapter::{RtpFrame, SenderClock, WhipAdapter, WhipCodec};
use super::{Command, Created, WhipConfig, WhipError};
use crate::publisher::Publisher;

/// Deadlines, adapter ticks and keyframe-request retries are checked this often.
const HOUSEKEEPING: Duration = Duration::from_millis(250);
/// While video waits for a keyframe, ask again this often.
const PLI_INTERVAL: Duration = Duration::from_millis(1000);

struct Session {
    id: String,
    name: String,
    peer: SocketAddr,
    rtc: Rtc,
    publisher: Publisher,
    adapter: WhipAdapter,
    video_mid: Option<Mid>,
    created: Instant,
    connected: bool,
    last_media: Instant,
    last_pli: Option<Instant>,
    last_keyframe: Instant,
    next_timeout: Instant,
    frames: u64,
}

struct Engine {
    socket: UdpSocket,
    local: SocketAddr,
    candidates: Vec<SocketAddr>,
    config: WhipConfig,
    crypto: Arc<str0m::crypto::CryptoProvider>,
    sessions: HashMap<String, Session>,
    by_addr: HashMap<SocketAddr, String>,
    epoch: Instant,
}

pub(crate) async fn run(
    socket: UdpSocket,
    candidates: Vec<SocketAddr>,
    config: WhipConfig,
    mut rx: mpsc::Receiver<Command>,
    sessions: Arc<std::sync::atomic::AtomicUsize>,
    cancel: CancellationToken,
) {
    let local = socket.local_addr().expect("a bound socket has an address");
    let mut e = Engine {
        socket,
        local,
        candidates,
        config,
        crypto: Arc::new(str0m::crypto::from_feature_flags()),
        sessions: HashMap::new(),
        by_addr: HashMap::new(),
        epoch: Instant::now(),
    };
    let mut buf = vec![0u8; 2048];
    let mut housekeeping = Instant::now() + HOUSEKEEPING;
    loop {
        let wake = e
            .sessions
            .values()
            .map(|s| s.next_timeout)
            .min()
            .unwrap_or(housekeeping)
            .min(housekeeping);
        tokio::select! {
            _ = cancel.cancelled() => break,
            cmd = rx.recv() => match cmd {
                Some(cmd) => e.command(cmd),
                None => break,
            },
            r = e.socket.recv_from(&mut buf) => match r {
                Ok((n, source)) => e.datagram(&buf[..n], source),
                Err(err) => debug!(error = %err, "WHIP socket receive error"),
            },
            _ = tokio::time::sleep_until(wake.into()) => {}
        }
        let now = Instant::now();
        e.timeouts(now);
        if now >= housekeeping {
            e.housekeeping(now);
            housekeeping = now + HOUSEKEEPING;
        }
        sessions.store(e.sessions.len(), std::sync::atomic::Ordering::Relaxed);
    }
    let ids: Vec<String> = e.sessions.keys().cloned().collect();
    for id in ids {
        e.close(&id, "server shutting down");
    }
}

impl Engine {
    fn command(&mut self, cmd: Command) {
        match cmd {
            Command::Create {
                offer,
                sections,
                publisher,
                peer,
                reply,
            } => {
                let _ = reply.send(self.create(offer, sections, publisher, peer));
            }
            Command::End { id, reply } => {
                let found = self.sessions.contains_key(&id);
                if found {
                    self.close(&id, "publisher sent DELETE");
                }
                let _ = reply.send(found);
            }
        }
    }

    fn create(
        &mut self,
        offer: str0m::change::SdpOffer,
        sections: Vec<super::sdp::Section>,
        publisher: Publisher,
        peer: SocketAddr,
    ) -> Result<Created, WhipError> {
        if self.sessions.len() >= self.config.max_sessions {
            warn!(%peer, stream = publisher.name(), "WHIP publish refused: too many sessions");
            return Err(WhipError::Busy);
        }
        let now = Instant::now();
        let mut rtc = super::rtc_config(self.crypto.clone()).build(now);
        for addr in &self.candidates {
            match Candidate::host(*addr, "udp") {
                Ok(c) => {
                    rtc.add_local_candidate(c);
                }
                Err(e) => debug!(%addr, error = %e, "skipping an ICE candidate"),
            }
        }
        let answer = rtc.sdp_api().accept_offer(offer).map_err(|e| {
            warn!(%peer, stream = publisher.name(), error = %e, "WHIP offer refused by WebRTC");
            WhipError::Sdp(e.to_string())
        })?;
        let sends = |kind: &str| sections.iter().any(|s| s.kind == kind && s.sends);
        let id = session_id();
        let name = publisher.name().to_string();
        let answer = answer.to_sdp_string();
        info!(session = %id, stream = %name, %peer, "WHIP session created; waiting for ICE/DTLS");
        let mut s = Session {
            id: id.clone(),
            name: name.clone(),
            peer,
            rtc,
            publisher,
            adapter: WhipAdapter::new(sends("video"), sends("audio")),
            video_mid: None,
            created: now,
            connected: false,
            last_media: now,
            last_pli: None,
            last_keyframe: now,
            next_timeout: now,
            frames: 0,
        };
        let result = self.drive(&mut s);
        self.sessions.insert(id.clone(), s);
        if let Err(reason) = result {
            self.close(&id, &reason);
            return Err(WhipError::Sdp(reason));
        }
        Ok(Created { id, name, answer })
    }

    fn datagram(&mut self, data: &[u8], source: SocketAddr) {
        let Ok(contents) = data.try_into() else {
            debug!(%source, len = data.len(), "WHIP port: ignoring a datagram that is not STUN, DTLS or RTP");
            return;
        };
        let input = Input::Receive(
            Instant::now(),
            Receive {
                proto: Protocol::Udp,
                source,
                destination: self.local,
                contents,
            },
        );
        let known = self
            .by_addr
            .get(&source)
            .filter(|id| {
                self.sessions
                    .get(*id)
                    .is_some_and(|s| s.rtc.accepts(&input))
            })
            .cloned();
        let id = match known {
            Some(id) => id,
            None => match self
                .sessions
                .values()
                .find(|s| s.rtc.accepts(&input))
                .map(|s| s.id.clone())
            {
                Some(id) => {
                    self.by_addr.insert(source, id.clone());
                    id
                }
                None => {
                    debug!(%source, "WHIP port: datagram for no session");
                    return;
                }
            },
        };
        let s = self
            .sessions
            .get_mut(&id)
            .expect("routed to a live session");
        let result = match s.rtc.handle_input(input) {
            Ok(()) => self.drive_id(&id),
            Err(e) => Err(format!("WebRTC error: {e}")),
        };
        if let Err(reason) = result {
            self.close(&id, &reason);
        }
    }

    fn timeouts(&mut self, now: Instant) {
        let due: Vec<String> = self
            .sessions
            .values()
            .filter(|s| s.next_timeout <= now)
            .map(|s| s.id.clone())
            .collect();
        for id in due {
            let s = self.sessions.get_mut(&id).expect("listed above");
            let result = match s.rtc.handle_input(Input::Timeout(now)) {
                Ok(()) => self.drive_id(&id),
                Err(e) => Err(format!("WebRTC error: {e}")),
            };
            if let Err(reason) = result {
                self.close(&id, &reason);
            }
        }
    }

    fn housekeeping(&mut self, now: Instant) {
        let arrival = self.arrival(now);
        let mut ended = Vec::new();
        for s in self.sessions.values_mut() {
            if !s.connected && now - s.created > self.config.connect_timeout {
                ended.push((
                    s.id.clone(),
                    "ICE/DTLS did not complete in time".to_string(),
                ));
                continue;
            }
            if s.connected && now - s.last_media > self.config.idle_timeout {
                ended.push((s.id.clone(), "no media (idle timeout)".to_string()));
                continue;
            }
            s.adapter.tick(arrival);
            if let Err(reason) = s.outputs() {
                ended.push((s.id.clone(), reason));
            }
        }
        for (id, reason) in ended {
            self.close(&id, &reason);
        }
        // Keyframe requests are mutations: each is followed by a drain.
        let ids: Vec<String> = self.sessions.keys().cloned().collect();
        for id in ids {
            let s = self.sessions.get_mut(&id).expect("listed above");
            let waiting = s.connected
                && (s.adapter.waits_for_keyframe()
                    || now - s.last_keyframe >= self.config.keyframe_interval);
            if waiting && s.last_pli.is_none_or(|t| now - t >= PLI_INTERVAL) {
                s.request_keyframe(now);
                if let Err(reason) = self.drive_id(&id) {
                    self.close(&id, &reason);
                }
            }
        }
    }

    /// `t` on the adapters' arrival clock.
    fn arrival(&self, t: Instant) -> Timestamp {
        let us = t.saturating_duration_since(self.epoch).as_micros();
        Timestamp::new(us as i64, Timescale::MICROS)
    }

    fn drive_id(&mut self, id: &str) -> Result<(), String> {
        let mut s = self.sessions.remove(id).expect("a live session");
        let r = self.drive(&mut s);
        self.sessions.insert(id.to_string(), s);
        r
    }

    /// Drains the session's output until its next timeout: sends datagrams, handles events.
    fn drive(&self, s: &mut Session) -> Result<(), String> {
        loop {
            let out = s
                .rtc
                .poll_output()
                .map_err(|e| format!("WebRTC error: {e}"))?;
            match out {
                Output::Timeout(t) => {
                    s.next_timeout = t;
                    return Ok(());
                }
                Output::Transmit(t) => {
                    if let Err(e) = self.socket.try_send_to(&t.contents, t.destination) {
                        debug!(session = %s.id, destination = %t.destination, error = %e, "WHIP send failed");
                    }
                }
                Output::Event(ev) => self.event(s, ev)?,
            }
        }
    }

    fn event(&self, s: &mut Session, ev: Event) -> Result<(), String> {
        match ev {
            Event::Connected => {
                s.connected = true;
                s.last_media = Instant::now();
                info!(session = %s.id, stream = %s.name, peer = %s.peer, after_ms = s.created.elapsed().as_millis() as u64, "WHIP publisher connected (ICE + DTLS)");
            }
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                return Err("ICE disconnected".into());
            }
            Event::MediaAdded(m) if m.kind == MediaKind::Video && s.video_mid.is_none() => {
                s.video_mid = Some(m.mid);
            }
            Event::MediaData(d) => {
                let spec = d.params.spec();
                let codec = match spec.codec {
                    str0m::format::Codec::H264 => WhipCodec::H264,
                    str0m::format::Codec::Av1 => WhipCodec::Av1,
                    str0m::format::Codec::Vp9 => WhipCodec::Vp9,
                    str0m::format::Codec::Opus => WhipCodec::Opus,
                    other => {
                        debug!(session = %s.id, codec = ?other, "ignoring media in a codec we did not negotiate");
                        return Ok(());
                    }
                };
                let rtp_time = d.time.numer();
                let clock = Timescale(spec.clock_rate.get());
                let sender = d.last_sender_info.map(|i| SenderClock {
                    ntp: Timestamp::from_duration(
                        i.ntp_time.duration_since(UNIX_EPOCH).unwrap_or_default(),
                        Timescale::MICROS,
                    ),
                    rtp: Timestamp::new(
                        nearest_extended(i.rtp_time.numer(), rtp_time) as i64,
                        clock,
                    ),
                });
                s.last_media = Instant::now();
                if d.is_keyframe() {
                    s.last_keyframe = s.last_media;
                }
                s.frames += 1;
                s.adapter.push(RtpFrame {
                    codec,
                    time: Timestamp::new(rtp_time as i64, clock),
                    arrival: self.arrival(d.network_time),
                    contiguous: d.contiguous,
                    keyframe: d.is_keyframe(),
                    // The depacketized frame itself, not a copy.
                    data: bytes::Bytes::from_owner(d.data),
                    sender,
                });
                s.outputs()?;
                if s.adapter.wants_keyframe() {
                    s.request_keyframe(Instant::now());
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn close(&mut self, id: &str, reason: &str) {
        let Some(mut s) = self.sessions.remove(id) else {
            return;
        };
        self.by_addr.retain(|_, v| v != id);
        s.rtc.disconnect();
        while let Ok(out) = s.rtc.poll_output() {
            match out {
                Output::Transmit(t) => {
                    let _ = self.socket.try_send_to(&t.contents, t.destination);
                }
                Output::Timeout(_) => break,
                Output::Event(_) => {}
            }
        }
        let lived = s.created.elapsed().as_secs_f64();
        if s.frames > 0 {
            info!(session = %s.id, stream = %s.name, peer = %s.peer, reason, frames = s.frames, secs = format!("{lived:.1}"), "WHIP session ended");
        } else {
            warn!(session = %s.id, stream = %s.name, peer = %s.peer, reason, secs = format!("{lived:.1}"), "WHIP session ended before media started");
        }
        // DELETE and shutdown end the stream; a connection that broke (ICE, silence) leaves it
        // held for the publisher to come back.
        if matches!(reason, "publisher sent DELETE" | "server shutting down") {
            s.publisher.end();
        }
    }
}

impl Session {
    /// Hands the adapter's output to the broadcast.
    fn outputs(&mut self) -> Result<(), String> {
        let adapter = &mut self.adapter;
        self.publisher
            .drain(|| adapter.pull())
            .map_err(|e| e.to_string())
    }

    fn request_keyframe(&mut self, now: Instant) {
        let Some(mid) = self.video_mid else { return };
        self.last_pli = Some(now);
        if let Some(mut w) = self.rtc.writer(mid) {
            if let Err(e) = w.request_keyframe(None, KeyframeRequestKind::Pli) {
                debug!(session = %self.id, error = %e, "could not request a keyframe yet");
            } else {
                debug!(session = %self.id, "requested a keyframe (PLI)");
            }
        }
    }
}

/// A sender report carries a 32-bit RTP time; put it in the same 2^32 cycle as `near`.
fn nearest_extended(rtp: u64, near: u64) -> u64 {
    let low = rtp & 0xffff_ffff;
    let base = near & !0xffff_ffff;
    [base.wrapping_sub(1 << 32), base, base + (1 << 32)]
        .into_iter()
        .map(|b| b.wrapping_add(low))
        .min_by_key(|c| c.abs_diff(near))
        .unwrap_or(low)
}

/// 128 bits from a CSPRNG: the session's resource URL is all a `DELETE` needs.
fn session_id() -> String {
    let bits: u128 = rand::random();
    format!("{bits:032x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sender_report_time_joins_the_frames_cycle() {
        assert_eq!(nearest_extended(10, (1 << 32) + 5), (1 << 32) + 10);
        assert_eq!(
            nearest_extended(0xffff_fff0, (1 << 32) + 5),
            0xffff_fff0,
            "a report from just before the wrap"
        );
        assert_eq!(nearest_extended(7, 3), 7);
    }
}
