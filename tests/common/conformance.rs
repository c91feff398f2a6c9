//! A conformance check of every playlist and MPD the suite fetches through [`super::http`]:
//! the MUSTs of RFC 8216bis (and the LL-HLS rules in it) a media or multivariant playlist can
//! break on its own, the ones across reloads (TARGETDURATION never changes within a playlist;
//! PART-TARGET and SERVER-CONTROL the same in every rendition), and for the MPD the DASH timing
//! model's rule that an update never changes a segment or Period it has published. A response
//! that breaks one fails the test that fetched it, with the rule and the text.

use std::collections::HashMap;

use super::media::attr;
use std::sync::Mutex;

/// (port, MPD path, availabilityStartTime, Period id): one Period of one presentation.
type PeriodKey = (u16, String, String, String);

/// What earlier responses said, to check later ones against.
#[derive(Default)]
struct Seen {
    /// (port, playlist path, session) → TARGETDURATION.
    target: HashMap<(u16, String, String), u64>,
    /// (port, stream path, session) → (SERVER-CONTROL, PART-INF) lines.
    control: HashMap<(u16, String, String), (String, String)>,
    /// Period → its start.
    periods: HashMap<PeriodKey, String>,
    /// (Period, AdaptationSet id, number) → (t, d).
    segments: HashMap<(PeriodKey, String, u64), (u64, u64)>,
    /// (Period, AdaptationSet id) → a `@duration` template's timescale,
    /// presentationTimeOffset, startNumber and duration.
    templates: HashMap<(PeriodKey, String), [Option<String>; 4]>,
}

static SEEN: Mutex<Option<Seen>> = Mutex::new(None);

/// Checks a 200 response of `path` on `port` if it is a playlist or an MPD; panics with every
/// rule it breaks.
pub fn check_response(port: u16, path: &str, content_type: &str, body: &[u8]) {
    let path = path.split('?').next().unwrap_or(path);
    let Ok(text) = std::str::from_utf8(body) else {
        return; // compressed or binary: not ours to read here
    };
    let errors = if content_type.contains("mpegurl") {
        playlist(port, path, text)
    } else if content_type.contains("dash+xml") {
        mpd(port, path, text)
    } else {
        return;
    };
    assert!(
        errors.is_empty(),
        "{path} breaks the spec:\n- {}\n{text}",
        errors.join("\n- ")
    );
}

fn num(line: &str, key: &str) -> Option<f64> {
    attr(line, key)?.parse().ok()
}

fn playlist(port: u16, path: &str, text: &str) -> Vec<String> {
    let mut errors = Vec::new();
    if !text.starts_with("#EXTM3U\n") {
        errors.push("the first line is not #EXTM3U".into());
    }
    let lines: Vec<&str> = text.lines().collect();
    let tag = |name: &'static str| lines.iter().filter(move |l| l.starts_with(name)).copied();
    if tag("#EXT-X-STREAM-INF").next().is_some() {
        // Multivariant: every variant's URI follows it; no media-playlist tags.
        for (i, l) in lines.iter().enumerate() {
            if l.starts_with("#EXT-X-STREAM-INF") {
                if attr(l, "BANDWIDTH").is_none() {
                    errors.push(format!("EXT-X-STREAM-INF without BANDWIDTH: {l}"));
                }
                if lines
                    .get(i + 1)
                    .is_none_or(|u| u.starts_with('#') || u.is_empty())
                {
                    errors.push(format!("EXT-X-STREAM-INF not followed by a URI: {l}"));
                }
            }
        }
        if tag("#EXT-X-TARGETDURATION").next().is_some() || tag("#EXTINF").next().is_some() {
            errors.push("media playlist tags in a multivariant playlist".into());
        }
        return errors;
    }
    let version: u64 = tag("#EXT-X-VERSION:")
        .next()
        .and_then(|l| l[15..].parse().ok())
        .unwrap_or(1);
    let td: Vec<u64> = tag("#EXT-X-TARGETDURATION:")
        .filter_map(|l| l[22..].parse().ok())
        .collect();
    let [td] = td[..] else {
        errors.push("not exactly one EXT-X-TARGETDURATION".into());
        return errors;
    };
    for l in tag("#EXTINF:") {
        let d: f64 = l[8..]
            .split(',')
            .next()
            .unwrap_or("")
            .parse()
            .unwrap_or(f64::MAX);
        if d.round() as u64 > td {
            errors.push(format!("{l} rounds above TARGETDURATION {td}"));
        }
    }
    // Protocol version (§8): EXT-X-MAP needs 6, EXT-X-SKIP 9, a skip of date ranges 10; ours
    // says no more than it needs.
    let skip = tag("#EXT-X-SKIP:").next();
    let needed = match skip {
        Some(s) if attr(s, "RECENTLY-REMOVED-DATERANGES").is_some() => 10,
        Some(_) => 9,
        None if tag("#EXT-X-MAP:").next().is_some() => 6,
        None => 1,
    };
    if version != needed {
        errors.push(format!("EXT-X-VERSION {version}, needs {needed}"));
    }
    let part_inf = tag("#EXT-X-PART-INF:").next();
    let control = tag("#EXT-X-SERVER-CONTROL:").next();
    let part_target = part_inf.and_then(|l| num(l, "PART-TARGET"));
    if tag("#EXT-X-PART:").next().is_some() && part_target.is_none() {
        errors.push("EXT-X-PART without EXT-X-PART-INF".into());
    }
    if let Some(pt) = part_target {
        for l in tag("#EXT-X-PART:") {
            // Durations are written to five places, PART-TARGET to three.
            if num(l, "DURATION").is_none_or(|d| d > pt + 0.0005) {
                errors.push(format!("{l} is longer than PART-TARGET {pt}"));
            }
        }
        match control.and_then(|c| num(c, "PART-HOLD-BACK")) {
            Some(h) if h >= 2.0 * pt => {}
            _ => errors.push("PART-HOLD-BACK missing or under twice PART-TARGET".into()),
        }
        for l in tag("#EXT-X-RENDITION-REPORT:") {
            if attr(l, "LAST-MSN").is_none() || attr(l, "LAST-PART").is_none() {
                errors.push(format!("{l} lacks LAST-MSN or LAST-PART"));
            }
        }
    }
    if let Some(until) = control.and_then(|c| num(c, "CAN-SKIP-UNTIL")) {
        if until < 6.0 * td as f64 {
            errors.push("CAN-SKIP-UNTIL under six target durations".into());
        }
    }
    if tag("#EXT-X-PRELOAD-HINT:").count() > 1 {
        errors.push("more than one EXT-X-PRELOAD-HINT".into());
    }
    let ended = tag("#EXT-X-ENDLIST").next().is_some();
    if ended && tag("#EXT-X-PRELOAD-HINT:").next().is_some() {
        errors.push("a preload hint after EXT-X-ENDLIST".into());
    }
    if tag("#EXTINF:").next().is_none() && skip.is_none() {
        errors.push("no complete segment".into());
    }
    // A live playlist dates its media (an uploaded file's VOD playlist has no dates to give).
    let vod = tag("#EXT-X-PLAYLIST-TYPE:VOD").next().is_some();
    if !vod && tag("#EXT-X-PROGRAM-DATE-TIME:").next().is_none() {
        errors.push("no EXT-X-PROGRAM-DATE-TIME".into());
    }
    // Across reloads: the same target duration for the life of the playlist, one
    // SERVER-CONTROL and PART-INF for every rendition of a stream.
    let session = tag("#EXT-X-MAP:")
        .next()
        .and_then(|l| attr(l, "URI"))
        .and_then(|u| u.split('/').next())
        .unwrap_or("")
        .to_string();
    let stream = path.rsplitn(3, '/').nth(2).unwrap_or("").to_string();
    let mut seen = SEEN.lock().unwrap();
    let seen = seen.get_or_insert_with(Seen::default);
    let was = *seen
        .target
        .entry((port, path.to_string(), session.clone()))
        .or_insert(td);
    if was != td {
        errors.push(format!("TARGETDURATION changed from {was} to {td}"));
    }
    let lines = (
        control.unwrap_or("").to_string(),
        part_inf.unwrap_or("").to_string(),
    );
    let first = seen
        .control
        .entry((port, stream, session))
        .or_insert_with(|| lines.clone());
    if *first != lines {
        errors.push(format!(
            "SERVER-CONTROL/PART-INF {lines:?} differ from another rendition's {first:?}"
        ));
    }
    errors
}

fn el<'a, 'i>(n: roxmltree::Node<'a, 'i>, name: &str) -> Vec<roxmltree::Node<'a, 'i>> {
    n.children().filter(|c| c.has_tag_name(name)).collect()
}

fn mpd(port: u16, path: &str, text: &str) -> Vec<String> {
    let mut errors = Vec::new();
    let doc = match roxmltree::Document::parse(text) {
        Ok(d) => d,
        Err(e) => return vec![format!("not XML: {e}")],
    };
    let root = doc.root_element();
    let dynamic = root.attribute("type") == Some("dynamic");
    let ast = root
        .attribute("availabilityStartTime")
        .unwrap_or("")
        .to_string();
    let prt_ids: Vec<&str> = root
        .descendants()
        .filter(|n| n.has_tag_name("ProducerReferenceTime"))
        .filter_map(|n| n.attribute("id"))
        .collect();
    for l in root.descendants().filter(|n| n.has_tag_name("Latency")) {
        if let Some(r) = l.attribute("referenceId") {
            if !prt_ids.contains(&r) {
                errors.push(format!(
                    "Latency@referenceId={r} names no ProducerReferenceTime"
                ));
            }
        }
    }
    let mut seen = SEEN.lock().unwrap();
    let seen = seen.get_or_insert_with(Seen::default);
    let periods = el(root, "Period");
    if periods.is_empty() {
        errors.push("no Period".into());
    }
    for period in periods {
        let id = period.attribute("id").unwrap_or("").to_string();
        let start = period.attribute("start").unwrap_or("").to_string();
        let period_key: PeriodKey = (port, path.to_string(), ast.clone(), id.clone());
        let was = seen
            .periods
            .entry(period_key.clone())
            .or_insert_with(|| start.clone());
        if *was != start {
            errors.push(format!("Period {id} moved from {was} to {start}"));
        }
        for set in el(period, "AdaptationSet") {
            let set_id = set.attribute("id").unwrap_or("").to_string();
            for tpl in el(set, "SegmentTemplate") {
                if dynamic
                    && (tpl.attribute("availabilityTimeOffset").is_none()
                        || tpl.attribute("availabilityTimeComplete") != Some("false"))
                {
                    errors.push(format!(
                        "AdaptationSet {set_id} of Period {id}: no availabilityTimeOffset"
                    ));
                }
                if tpl.attribute("duration").is_some() {
                    // Number-based: the segments it describes are its attributes.
                    let key = (period_key.clone(), set_id.clone());
                    let now = [
                        "timescale",
                        "presentationTimeOffset",
                        "startNumber",
                        "duration",
                    ]
                    .map(|a| tpl.attribute(a).map(str::to_string));
                    let was = seen.templates.entry(key).or_insert_with(|| now.clone());
                    if *was != now {
                        errors.push(format!(
                            "AdaptationSet {set_id} of Period {id}: segments were {was:?}, now {now:?}"
                        ));
                    }
                }
                let mut number: u64 = tpl
                    .attribute("startNumber")
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(1);
                let mut next_t = None;
                for timeline in el(tpl, "SegmentTimeline") {
                    for s in el(timeline, "S") {
                        let d: u64 = s.attribute("d").and_then(|d| d.parse().ok()).unwrap_or(0);
                        let t = s
                            .attribute("t")
                            .and_then(|t| t.parse().ok())
                            .or(next_t)
                            .unwrap_or(0);
                        if next_t.is_some_and(|n| t < n) {
                            errors.push(format!("S@t={t} overlaps the segment before"));
                        }
                        let repeat: u64 =
                            s.attribute("r").and_then(|r| r.parse().ok()).unwrap_or(0);
                        for k in 0..=repeat {
                            let st = t + k * d;
                            let key = (period_key.clone(), set_id.clone(), number);
                            let was = *seen.segments.entry(key).or_insert((st, d));
                            if was != (st, d) {
                                errors.push(format!(
                                    "segment {number} of AdaptationSet {set_id} in Period {id} was (t={}, d={}), now (t={st}, d={d})",
                                    was.0, was.1
                                ));
                            }
                            number += 1;
                        }
                        next_t = Some(t + (repeat + 1) * d);
                    }
                }
            }
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_with_quotes_and_commas() {
        let l = "#EXT-X-PART:DURATION=0.33333,URI=\"a/1.0.m4s\",INDEPENDENT=YES";
        assert_eq!(attr(l, "URI"), Some("a/1.0.m4s"));
        assert_eq!(attr(l, "INDEPENDENT"), Some("YES"));
        assert_eq!(num(l, "DURATION"), Some(0.33333));
    }
}
