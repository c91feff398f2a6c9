//! The RTMP handshake, server side, sans-IO: C0+C1 in, S0+S1+S2 out, C2 in, done.
//!
//! Two forms are answered. The one in Adobe's RTMP specification: S2 echoes C1, which is what
//! a client sending zeros for its version (GStreamer's `rtmp2sink`) checks. And the one Flash
//! Player 9 introduced, which ffmpeg and OBS send: C1 carries an HMAC-SHA256 digest at an
//! offset it encodes; when that digest verifies, S1 and S2 carry digests of their own, keyed
//! as the scheme requires (its keys are public constants; see
//! <https://www.cs.cmu.edu/~dst/Adobe/Gallery/RTMPE.txt>). Only version 3 (no encryption) is
//! taken.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Each handshake packet after the version byte.
pub const PACKET: usize = 1536;
const DIGEST: usize = 32;
/// "Genuine Adobe Flash Player 001"
const PLAYER_KEY: &[u8] = b"Genuine Adobe Flash Player 001";
/// "Genuine Adobe Flash Media Server 001", and the 32 bytes the scheme appends for S2's key.
const SERVER_KEY: [u8; 68] = *b"Genuine Adobe Flash Media Server 001\
\xf0\xee\xc2\x4a\x80\x68\xbe\xe8\x2e\x00\xd0\xd1\x02\x9e\x7e\x57\x6e\xec\x5d\x2d\x29\x80\x6f\xab\x93\xb8\xe6\x36\xcf\xeb\x31\xae";
/// The version our S1 announces (any non-zero value says "digest scheme").
const SERVER_VERSION: [u8; 4] = [4, 5, 0, 1];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    #[error("RTMP version {0} is not taken (only 3, unencrypted)")]
    Version(u8),
}

#[derive(Debug, PartialEq, Eq)]
enum State {
    /// Waiting for C0 and C1.
    Hello,
    /// S0-S2 sent; waiting for C2.
    Echo,
    Done,
}

/// One side of one handshake.
#[derive(Debug)]
pub struct Handshake {
    state: State,
    /// What has arrived of the packet being waited for (at most one packet and a byte).
    buf: Vec<u8>,
}

impl Default for Handshake {
    fn default() -> Self {
        Handshake {
            state: State::Hello,
            buf: Vec::with_capacity(1 + PACKET),
        }
    }
}

/// Where the digest sits in a packet by the given scheme (0: offset bytes at 8, 1: at 772).
fn digest_offset(packet: &[u8], scheme: usize) -> usize {
    let base = if scheme == 0 { 8 } else { 772 };
    let sum: usize = packet[base..base + 4].iter().map(|&b| b as usize).sum();
    sum % 728 + base + 4
}

/// HMAC-SHA256 of `packet` without the 32 bytes at `offset`.
fn digest_of(packet: &[u8], offset: usize, key: &[u8]) -> [u8; DIGEST] {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(&packet[..offset]);
    mac.update(&packet[offset + DIGEST..]);
    mac.finalize().into_bytes().into()
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; DIGEST] {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// The client's digest, if C1 carries a valid one by either scheme.
fn client_digest(c1: &[u8]) -> Option<([u8; DIGEST], usize)> {
    if c1[4..8] == [0, 0, 0, 0] {
        return None; // the specification's handshake: no digest
    }
    (0..2).find_map(|scheme| {
        let at = digest_offset(c1, scheme);
        let want = digest_of(c1, at, PLAYER_KEY);
        (c1[at..at + DIGEST] == want).then_some((want, scheme))
    })
}

fn random_packet() -> Vec<u8> {
    let mut p = vec![0u8; PACKET];
    rand::Rng::fill(&mut rand::thread_rng(), &mut p[..]);
    p
}

impl Handshake {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Takes bytes from the client; what to send back is appended to `out`. Returns the bytes
    /// that came after the handshake once it is done (the first chunks), else `None`.
    pub fn push(
        &mut self,
        data: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<Option<Vec<u8>>, HandshakeError> {
        let mut data = data;
        loop {
            let want = match self.state {
                State::Hello => 1 + PACKET,
                State::Echo => PACKET,
                State::Done => return Ok(Some(data.to_vec())),
            };
            let take = (want - self.buf.len()).min(data.len());
            self.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.buf.len() < want {
                return Ok(None);
            }
            match self.state {
                State::Hello => {
                    if self.buf[0] != 3 {
                        return Err(HandshakeError::Version(self.buf[0]));
                    }
                    self.answer(out);
                    self.state = State::Echo;
                }
                // C2 echoes S1; clients differ in how faithfully, so it is not checked.
                State::Echo => self.state = State::Done,
                State::Done => unreachable!("returned above"),
            }
            self.buf.clear();
        }
    }

    /// S0, S1 and S2 for the C1 in `buf`.
    fn answer(&self, out: &mut Vec<u8>) {
        let c1 = &self.buf[1..];
        out.push(3);
        let mut s1 = random_packet();
        s1[..4].copy_from_slice(&[0; 4]);
        match client_digest(c1) {
            None => {
                s1[4..8].copy_from_slice(&[0; 4]);
                out.extend_from_slice(&s1);
                out.extend_from_slice(c1); // S2: C1 echoed
            }
            Some((theirs, scheme)) => {
                s1[4..8].copy_from_slice(&SERVER_VERSION);
                let at = digest_offset(&s1, scheme);
                let ours = digest_of(&s1, at, &SERVER_KEY[..36]);
                s1[at..at + DIGEST].copy_from_slice(&ours);
                out.extend_from_slice(&s1);
                let mut s2 = random_packet();
                let key = hmac(&SERVER_KEY, &theirs);
                let sig = hmac(&key, &s2[..PACKET - DIGEST]);
                s2[PACKET - DIGEST..].copy_from_slice(&sig);
                out.extend_from_slice(&s2);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A C1 as a Flash-9 style client (ffmpeg, OBS) makes it, digest by `scheme`.
    fn digest_c1(scheme: usize) -> Vec<u8> {
        let mut c1 = random_packet();
        c1[4..8].copy_from_slice(&[9, 0, 124, 2]);
        let at = digest_offset(&c1, scheme);
        let d = digest_of(&c1, at, PLAYER_KEY);
        c1[at..at + DIGEST].copy_from_slice(&d);
        c1
    }

    fn run(c1: &[u8]) -> Vec<u8> {
        let mut h = Handshake::new();
        let mut out = Vec::new();
        let mut hello = vec![3];
        hello.extend_from_slice(c1);
        // In odd pieces, as TCP may deliver them.
        for piece in hello.chunks(700) {
            assert_eq!(h.push(piece, &mut out).unwrap(), None);
        }
        assert_eq!(out.len(), 1 + 2 * PACKET);
        let mut c2_and_more = vec![7u8; PACKET];
        c2_and_more.extend_from_slice(b"chunks");
        let rest = h.push(&c2_and_more, &mut out).unwrap();
        assert_eq!(rest.as_deref(), Some(&b"chunks"[..]));
        assert!(h.is_done());
        out
    }

    #[test]
    fn the_specifications_handshake_echoes_c1() {
        let mut c1 = random_packet();
        c1[4..8].copy_from_slice(&[0; 4]);
        let out = run(&c1);
        assert_eq!(out[0], 3);
        assert_eq!(&out[1 + PACKET..], &c1[..], "S2 is C1");
    }

    #[test]
    fn a_digest_handshake_is_answered_with_digests_the_client_can_check() {
        for scheme in 0..2 {
            let c1 = digest_c1(scheme);
            let out = run(&c1);
            let (s1, s2) = (&out[1..1 + PACKET], &out[1 + PACKET..]);
            // What ffmpeg checks when it plays: S1's digest by the server's key...
            let at = digest_offset(s1, scheme);
            assert_eq!(&s1[at..at + DIGEST], &digest_of(s1, at, &SERVER_KEY[..36]));
            // ... and S2 signed with a key made from the client's digest.
            let theirs = &c1[digest_offset(&c1, scheme)..][..DIGEST];
            let key = hmac(&SERVER_KEY, theirs);
            assert_eq!(&s2[PACKET - DIGEST..], &hmac(&key, &s2[..PACKET - DIGEST]));
        }
    }

    #[test]
    fn only_version_3() {
        let mut h = Handshake::new();
        assert_eq!(
            h.push(&[6; 10], &mut Vec::new()).and(Ok(())),
            Ok(()),
            "not enough yet"
        );
        let mut h = Handshake::new();
        let mut hello = vec![6u8];
        hello.extend_from_slice(&[0; PACKET]);
        assert_eq!(
            h.push(&hello, &mut Vec::new()),
            Err(HandshakeError::Version(6))
        );
    }
}
