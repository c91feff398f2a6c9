//! What a WHIP offer asks for, read before it reaches the WebRTC stack: which media sections it
//! sends and which codecs each offers, so that an offer we cannot take is refused with a
//! message naming what was offered.

/// Video codecs Estuary takes over WHIP, in the order it prefers them.
pub const VIDEO_CODECS: &[&str] = &["H264", "AV1", "VP9"];
/// Audio codecs Estuary takes over WHIP.
pub const AUDIO_CODECS: &[&str] = &["opus"];

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Section {
    /// `audio`, `video`, `application`, ...
    pub kind: String,
    /// Codec names from `a=rtpmap` (`H264`, `VP8`, `opus`, ...), in offer order, deduplicated.
    pub codecs: Vec<String>,
    /// The section sends media (not `recvonly`/`inactive`, port not 0).
    pub sends: bool,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OfferError {
    #[error("the body is not an SDP offer (no m= line)")]
    NotSdp,
    #[error("the offer sends no audio or video")]
    NoMedia,
    #[error("no {kind} codec Estuary takes: offered {offered}; Estuary takes {takes}")]
    NoCodec {
        kind: String,
        offered: String,
        takes: String,
    },
}

/// The media sections of an offer.
pub fn sections(sdp: &str) -> Vec<Section> {
    let mut out: Vec<Section> = Vec::new();
    for line in sdp.lines() {
        let line = line.trim_end_matches('\r');
        if let Some(m) = line.strip_prefix("m=") {
            let mut f = m.split_whitespace();
            let kind = f.next().unwrap_or("").to_string();
            let port = f.next().unwrap_or("0");
            out.push(Section {
                kind,
                codecs: Vec::new(),
                sends: port != "0",
            });
            continue;
        }
        let Some(s) = out.last_mut() else { continue };
        if let Some(map) = line.strip_prefix("a=rtpmap:") {
            let name = map
                .split_whitespace()
                .nth(1)
                .and_then(|e| e.split('/').next())
                .unwrap_or("");
            let ignored = [
                "rtx",
                "red",
                "ulpfec",
                "flexfec-03",
                "CN",
                "telephone-event",
            ];
            if !name.is_empty()
                && !ignored.iter().any(|i| i.eq_ignore_ascii_case(name))
                && !s.codecs.iter().any(|c| c.eq_ignore_ascii_case(name))
            {
                s.codecs.push(name.to_string());
            }
        } else if line == "a=recvonly" || line == "a=inactive" {
            s.sends = false;
        }
    }
    out
}

/// Checks that every audio and video section the offer sends has a codec we take.
pub fn check_offer(sdp: &str) -> Result<Vec<Section>, OfferError> {
    let sections = sections(sdp);
    if sections.is_empty() {
        return Err(OfferError::NotSdp);
    }
    let mut any = false;
    for s in &sections {
        let takes = match s.kind.as_str() {
            "video" => VIDEO_CODECS,
            "audio" => AUDIO_CODECS,
            _ => continue,
        };
        if !s.sends {
            continue;
        }
        any = true;
        if !s
            .codecs
            .iter()
            .any(|c| takes.iter().any(|t| t.eq_ignore_ascii_case(c)))
        {
            return Err(OfferError::NoCodec {
                kind: s.kind.clone(),
                offered: if s.codecs.is_empty() {
                    "nothing".into()
                } else {
                    s.codecs.join(", ")
                },
                takes: takes.join(", "),
            });
        }
    }
    if !any {
        return Err(OfferError::NoMedia);
    }
    Ok(sections)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHROME: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
        m=audio 9 UDP/TLS/RTP/SAVPF 111 63\r\na=sendonly\r\na=rtpmap:111 opus/48000/2\r\na=rtpmap:63 red/48000/2\r\n\
        m=video 9 UDP/TLS/RTP/SAVPF 96 97 102\r\na=sendonly\r\na=rtpmap:96 VP8/90000\r\na=rtpmap:97 rtx/90000\r\na=rtpmap:102 H264/90000\r\n";

    #[test]
    fn reads_sections_and_codecs() {
        let s = check_offer(CHROME).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].codecs, vec!["opus"]);
        assert_eq!(s[1].codecs, vec!["VP8", "H264"]);
    }

    #[test]
    fn a_real_chrome_offer_sends_opus_and_h264() {
        let offer = include_str!("../../tests/fixtures/chrome-whip-offer.sdp");
        let s = check_offer(offer).unwrap();
        let kinds: Vec<&str> = s.iter().map(|s| s.kind.as_str()).collect();
        assert_eq!(kinds, ["audio", "video"]);
        assert!(s.iter().all(|s| s.sends));
        assert_eq!(s[0].codecs[0], "opus");
        assert!(s[1].codecs.iter().all(|c| c == "H264"), "{:?}", s[1].codecs);
    }

    #[test]
    fn an_offer_without_a_codec_we_take_names_what_it_offered() {
        let vp8_only = CHROME.replace("a=rtpmap:102 H264/90000\r\n", "");
        let e = check_offer(&vp8_only).unwrap_err();
        assert_eq!(
            e.to_string(),
            "no video codec Estuary takes: offered VP8; Estuary takes H264, AV1, VP9"
        );
        assert_eq!(check_offer("hello"), Err(OfferError::NotSdp));
        let recv = CHROME.replace("a=sendonly", "a=recvonly");
        assert_eq!(check_offer(&recv), Err(OfferError::NoMedia));
    }
}
