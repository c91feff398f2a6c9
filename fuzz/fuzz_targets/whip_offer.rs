//! A WHIP offer as a publisher could send it: our codec check, then the WebRTC stack's SDP
//! parser and offer/answer with the configuration every session uses. Nothing may panic.
#![no_main]

use std::sync::Arc;
use std::time::Instant;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = ingest::whip::sdp::sections(text);
    if ingest::whip::sdp::check_offer(text).is_err() {
        return;
    }
    let Ok(offer) = str0m::change::SdpOffer::from_sdp_string(text) else { return };
    let crypto = Arc::new(str0m::crypto::from_feature_flags());
    let mut rtc = ingest::whip::rtc_config(crypto).build(Instant::now());
    if let Ok(answer) = rtc.sdp_api().accept_offer(offer) {
        let _ = answer.to_sdp_string();
    }
});
