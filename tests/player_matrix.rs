//! The player matrix: hls.js (with catch-up as a low-latency page sets it, and with its
//! defaults), dash.js 4 and 5, and Shaka Player on LL-HLS and on LL-DASH, three at a time side
//! by side in one headless Chromium (the HLS players, then the DASH players), each page on an
//! origin of its own, playing a live RTMP stream for a minute: joining as soon as the stream is published and later, on the source and on the
//! transcoded ladder through a forced switch, with a 2 s keyframe interval and with x264's
//! default (250 frames), and through a publisher whose connection drops and comes back.
//!
//! The source draws its send time into every frame (`clock_source.py`), so each page also
//! reports glass-to-glass latency (`page.js`); the tests hold it to a loose bound (the
//! machine runs the encoder, the server, the transcoder and three players on two cores), and
//! `benches/glass.sh` records the numbers.

mod common;

use std::time::Duration;

use common::*;

/// The pages of the matrix: (name, page, manifest, extra query).
const PLAYERS: [(&str, &str, &str, &str); 6] = [
    ("hls.js", "index.html", "index.m3u8", ""),
    ("hls.js defaults", "index.html", "index.m3u8", "&catchup=0"),
    ("dash.js 4", "dash.html", "manifest.mpd", ""),
    ("dash.js 5", "dash5.html", "manifest.mpd", ""),
    ("Shaka HLS", "shaka.html", "index.m3u8", ""),
    ("Shaka DASH", "shaka.html", "manifest.mpd", ""),
];

#[derive(Clone, Copy)]
struct Case {
    /// Names the case's log (`ESTUARY_MATRIX_LOG`).
    name: &'static str,
    transcode: bool,
    /// Keyframe interval in frames (`None`: x264's default).
    gop: Option<u32>,
    /// Seconds after the stream is published at which the players open.
    join_after: u64,
    /// Seconds into playback at which the publisher drops for 1.5 s and comes back.
    reconnect_at: Option<u64>,
    /// Force this video rendition (in bitrate order) after 8 s.
    switch: Option<u32>,
}

const SECS: u32 = 60;

/// The players play a case in two turns, the HLS players then the DASH players, each turn
/// with a server and publisher of its own: six players decoding at once beside the encoder,
/// the server and the transcoder saturated two cores (load 6.5), and hls.js, which does not
/// jump back to the live edge once a starved machine has stalled it, stayed seconds behind.
const TURNS: [(&str, [&str; 3]); 2] = [
    ("hls", ["hls.js", "hls.js defaults", "Shaka HLS"]),
    ("dash", ["dash.js 4", "dash.js 5", "Shaka DASH"]),
];

/// One turn at a time.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Plays the case in every player, a turn at a time; returns each player's per-second stats
/// lines.
fn play_matrix(case: Case) -> Vec<(&'static str, Vec<String>)> {
    // ESTUARY_MATRIX_ONLY=name,name: only these players (to look into one).
    let only = std::env::var("ESTUARY_MATRIX_ONLY").ok();
    let mut results = Vec::new();
    for (turn, names) in TURNS {
        let players: Vec<_> = PLAYERS
            .iter()
            .filter(|(name, ..)| names.contains(name))
            .filter(|(name, ..)| {
                only.as_ref()
                    .is_none_or(|o| o.split(',').any(|n| n == *name))
            })
            .collect();
        if !players.is_empty() {
            results.extend(play_turn(case, turn, &players));
        }
    }
    results
}

/// Plays the case in `players` at once.
fn play_turn(
    case: Case,
    turn: &str,
    players: &[&(&'static str, &str, &str, &str)],
) -> Vec<(&'static str, Vec<String>)> {
    let _turn = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    // A publisher that comes back within the grace continues its stream.
    let mut config = String::from("[server]\nreconnect_grace_secs = 15\n");
    if case.transcode {
        config.push_str("[transcode]\nenabled = true\n");
    }
    let srv = Server::start(&config);
    let url = srv.rtmp_url(KEY);
    let size = (854, 480);
    let total = SECS + case.join_after as u32 + 30;
    let mut publisher = Some(ClockPublisher::rtmp(&url, total, size, case.gop));
    wait_for("the stream published", Duration::from_secs(60), || {
        (get(srv.http, "/live/demo/index.m3u8").ok()?.status == 200).then_some(())
    });
    std::thread::sleep(Duration::from_secs(case.join_after));
    let page_port = serve_page();
    let switch = case
        .switch
        .map(|n| format!("&switch={n}"))
        .unwrap_or_default();
    // ESTUARY_MATRIX_QUERY=&debug=1: added to every page's query (Shaka's own log, with
    // play.mjs's CONSOLELOG=FILE).
    let extra = std::env::var("ESTUARY_MATRIX_QUERY").unwrap_or_default();
    let urls: Vec<String> = players
        .iter()
        .map(|(_, page, manifest, query)| {
            format!(
                "http://127.0.0.1:{page_port}/{page}?src=http://127.0.0.1:{}/live/demo/{manifest}{query}{switch}{extra}",
                srv.http
            )
        })
        .collect();
    let reconnect = case.reconnect_at.map(|at| {
        let mut old = publisher.take();
        let url = url.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(at));
            drop(old.take());
            std::thread::sleep(Duration::from_millis(1500));
            ClockPublisher::rtmp(&url, total, size, case.gop)
        })
    });
    let lines = run_players(&urls, SECS);
    // Every player's every second and glass-to-glass samples, for a person looking into a
    // failure and for benches/glass.sh: ESTUARY_MATRIX_LOG=DIR writes DIR/{case}-{turn}.jsonl.
    if let Ok(dir) = std::env::var("ESTUARY_MATRIX_LOG") {
        let names: Vec<&str> = players.iter().map(|(name, ..)| *name).collect();
        let head = serde_json::json!({ "case": case.name, "players": names }).to_string();
        let _ = std::fs::create_dir_all(&dir);
        let path = std::path::Path::new(&dir).join(format!("{}-{turn}.jsonl", case.name));
        let _ = std::fs::write(path, format!("{head}\n{}\n", lines.join("\n")));
    }
    let _again = reconnect.map(|r| r.join().unwrap());
    drop(publisher);
    players
        .iter()
        .enumerate()
        .map(|(i, (name, ..))| {
            let tag = format!("{{\"page\":{i},");
            let own = lines
                .iter()
                .filter(|l| l.starts_with(&tag) && l.contains("currentTime"))
                .cloned()
                .collect();
            (*name, own)
        })
        .collect()
}

/// Every player played without a fatal error, kept advancing over the last 20 s, and (when
/// `stall_free`) did not stall once playing; the glass-to-glass median is under a loose bound.
/// `known`: players this case does not hold yet (issue 13 says which and why): their results
/// are printed, not asserted. `unbound`: players whose glass-to-glass is printed, not bounded.
fn assert_all_played(
    results: &[(&str, Vec<String>)],
    stall_free: bool,
    known: &[&str],
    unbound: &[&str],
) {
    let mut failures = Vec::new();
    for (name, lines) in results {
        let Some(last) = lines.last() else {
            failures.push(format!("{name}: no stats"));
            continue;
        };
        eprintln!("{name}: {last}");
        if known.contains(name) {
            eprintln!("{name}: not held to this case yet");
            continue;
        }
        if last.contains("\"fatal\":true") {
            failures.push(format!("{name}: fatal error: {last}"));
            continue;
        }
        let n = lines.len();
        let at = |i: usize| field(&lines[i], "currentTime").unwrap_or(0.0);
        if n < SECS as usize - 5 {
            failures.push(format!("{name}: only {n} stats lines"));
            continue;
        }
        // The last 20 s play (in real time, give or take catching up).
        let played = at(n - 1) - at(n - 21);
        if played < 18.0 {
            failures.push(format!(
                "{name}: played {played:.1} s in the last 20 s: {last}"
            ));
        }
        // Playing from 15 s on: time advances every second, no stall.
        if stall_free {
            let waits_at = |i: usize| field(&lines[i], "waits").unwrap_or(0.0);
            if waits_at(n - 1) > waits_at(14) {
                failures.push(format!(
                    "{name}: stalled {} times after starting: {last}",
                    waits_at(n - 1) - waits_at(14)
                ));
            }
        }
        match field(last, "g2gMedian") {
            Some(g2g) if g2g < 4000.0 || unbound.contains(name) => {}
            other => failures.push(format!(
                "{name}: glass-to-glass median {other:?} ms: {last}"
            )),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_player_plays_a_stream_from_its_start_with_a_2s_gop() {
    let r = play_matrix(Case {
        name: "source-2s-gop-from-the-start",
        transcode: false,
        gop: Some(60),
        join_after: 0,
        reconnect_at: None,
        switch: None,
    });
    assert_all_played(&r, true, &[], &[]);
}

/// hls.js with its defaults (no catching up) stays as far behind as where it joined, and with
/// x264's 8.3 s GOP that is anywhere from about one second to several (1.8 s and 4.45 s in two
/// runs on 2026-12-01 and -02; issue 13 has it open): its latency is printed, not bounded.
#[test]
fn every_player_joins_later_with_x264s_default_gop() {
    let r = play_matrix(Case {
        name: "source-x264-gop-joining-later",
        transcode: false,
        gop: None,
        join_after: 12,
        reconnect_at: None,
        switch: None,
    });
    assert_all_played(&r, true, &[], &["hls.js defaults"]);
}

#[test]
fn every_player_switches_down_the_ladder() {
    let r = play_matrix(Case {
        name: "ladder-2s-gop-switched-down",
        transcode: true,
        gop: Some(60),
        join_after: 4,
        reconnect_at: None,
        switch: Some(0),
    });
    assert_all_played(&r, true, &[], &[]);
    for (name, lines) in &r {
        let last = lines.last().unwrap();
        assert_eq!(
            field(last, "height"),
            Some(360.0),
            "{name} switched: {last}"
        );
    }
}

/// Every player is held here. dash.js 4 and 5 once stopped at the new Period (readyState 1,
/// no more data; in one CI run of four on 2026-12-01) when the Period after a pause began
/// before the one ahead of it ended; the Period before a pause now ends where its media does.
/// Shaka on LL-HLS chased its wall-clock live edge past the newest media after a reconnect
/// (stalling again and again, once for good in CI on 2026-12-02) until the pause became
/// `EXT-X-GAP` segments.
#[test]
fn every_player_plays_through_a_publisher_reconnecting() {
    let r = play_matrix(Case {
        name: "source-2s-gop-reconnecting",
        transcode: false,
        gop: Some(60),
        join_after: 4,
        reconnect_at: Some(25),
        switch: None,
    });
    assert_all_played(&r, false, &[], &[]);
}
