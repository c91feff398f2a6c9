//! A playback token given once, on the multivariant playlist or the MPD, carried by the server
//! into every URL it writes (media playlists, init segments, segments, parts, preload hints,
//! rendition reports, MPD templates), so players need nothing special: each request they make
//! from what they were given holds the token again.

use bytes::{BufMut, Bytes, BytesMut};

/// Appends `query` (`token=...`) to every URI of an HLS playlist: URI lines and `URI="..."`
/// attributes.
pub fn hls(text: &str, query: &str) -> String {
    String::from_utf8(fill(&template(text), query)).expect("UTF-8 in, UTF-8 out")
}

/// An HLS playlist prepared for [`fill`]: where each URI ends (and whether it has a query
/// already), found once per rendering, so carrying a token per request is only copying.
///
/// Layout: the count of marks (u32), each mark's offset (u32) and separator (`?` or `&`),
/// then the text.
pub fn template(text: &str) -> Bytes {
    let mut marks: Vec<(u32, u8)> = Vec::new();
    let mut at = 0;
    for line in text.split_inclusive('\n') {
        let body = line.trim_end_matches(['\n', '\r']);
        if body.is_empty() {
        } else if !body.starts_with('#') {
            marks.push(((at + body.len()) as u32, separator(body)));
        } else {
            let mut from = 0;
            while let Some(i) = body[from..].find("URI=\"") {
                let start = from + i + 5;
                let Some(len) = body[start..].find('"') else {
                    break;
                };
                marks.push((
                    (at + start + len) as u32,
                    separator(&body[start..start + len]),
                ));
                from = start + len;
            }
        }
        at += line.len();
    }
    let mut out = BytesMut::with_capacity(4 + marks.len() * 5 + text.len());
    out.put_u32(marks.len() as u32);
    for (offset, sep) in marks {
        out.put_u32(offset);
        out.put_u8(sep);
    }
    out.put_slice(text.as_bytes());
    out.freeze()
}

/// The playlist of `template` with `query` after each URI.
pub fn fill(template: &[u8], query: &str) -> Vec<u8> {
    let n = u32::from_be_bytes(template[..4].try_into().expect("a template")) as usize;
    let (marks, text) = template[4..].split_at(n * 5);
    let mut out = Vec::with_capacity(text.len() + n * (query.len() + 1));
    let mut from = 0;
    for m in marks.chunks_exact(5) {
        let at = u32::from_be_bytes(m[..4].try_into().expect("5 bytes")) as usize;
        out.extend_from_slice(&text[from..at]);
        out.push(m[4]);
        out.extend_from_slice(query.as_bytes());
        from = at;
    }
    out.extend_from_slice(&text[from..]);
    out
}

fn separator(uri: &str) -> u8 {
    if uri.contains('?') {
        b'&'
    } else {
        b'?'
    }
}

/// Appends `query` to the MPD's segment templates (`media`, `initialization`): the URLs a
/// player makes from an MPD, which does not pass its own query on.
pub fn mpd(text: &str, query: &str) -> String {
    let mut out = String::with_capacity(text.len() + 256);
    for line in text.lines() {
        let mut l = String::new();
        attribute(&mut l, line, " media=\"", query);
        attribute(&mut out, &l, " initialization=\"", query);
        out.push('\n');
    }
    out
}

/// `line` with `query` added to the value of each `name...` attribute (`name` ends in `"`).
fn attribute(out: &mut String, line: &str, name: &str, query: &str) {
    let mut rest = line;
    while let Some(at) = rest.find(name) {
        let start = at + name.len();
        let Some(len) = rest[start..].find('"') else {
            break;
        };
        out.push_str(&rest[..start]);
        push_with_query(out, &rest[start..start + len], query);
        rest = &rest[start + len..];
    }
    out.push_str(rest);
}

/// An XML attribute's URI with `query` after it (`&` written as `&amp;`).
fn push_with_query(out: &mut String, uri: &str, query: &str) {
    out.push_str(uri);
    out.push_str(if uri.contains('?') { "&amp;" } else { "?" });
    out.push_str(query);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_uri_of_a_media_playlist() {
        let p = "#EXTM3U\n#EXT-X-MAP:URI=\"abc/init.mp4\"\n#EXTINF:2.0,\nabc/7.m4s\n\
                 #EXT-X-PART:DURATION=0.33333,URI=\"abc/8.0.m4s\",INDEPENDENT=YES\n\
                 #EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"abc/8.1.m4s\"\n\
                 #EXT-X-RENDITION-REPORT:URI=\"../audio/index.m3u8\",LAST-MSN=7,LAST-PART=5\n";
        assert_eq!(
            hls(p, "token=T"),
            "#EXTM3U\n#EXT-X-MAP:URI=\"abc/init.mp4?token=T\"\n#EXTINF:2.0,\nabc/7.m4s?token=T\n\
             #EXT-X-PART:DURATION=0.33333,URI=\"abc/8.0.m4s?token=T\",INDEPENDENT=YES\n\
             #EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"abc/8.1.m4s?token=T\"\n\
             #EXT-X-RENDITION-REPORT:URI=\"../audio/index.m3u8?token=T\",LAST-MSN=7,LAST-PART=5\n"
        );
    }

    #[test]
    fn multivariant_links_with_a_query_already() {
        let m =
            "#EXTM3U\n#EXT-X-MEDIA:TYPE=AUDIO,URI=\"audio/index.m3u8?start=3\"\nvideo/index.m3u8\n";
        assert_eq!(
            hls(m, "token=T"),
            "#EXTM3U\n#EXT-X-MEDIA:TYPE=AUDIO,URI=\"audio/index.m3u8?start=3&token=T\"\nvideo/index.m3u8?token=T\n"
        );
    }

    #[test]
    fn mpd_templates() {
        let m = "<SegmentTemplate timescale=\"90000\" initialization=\"$RepresentationID$/abc/init.mp4\" media=\"$RepresentationID$/abc/$Number$.m4s\" startNumber=\"0\">\n";
        assert_eq!(
            mpd(m, "token=T"),
            "<SegmentTemplate timescale=\"90000\" initialization=\"$RepresentationID$/abc/init.mp4?token=T\" media=\"$RepresentationID$/abc/$Number$.m4s?token=T\" startNumber=\"0\">\n"
        );
    }
}
