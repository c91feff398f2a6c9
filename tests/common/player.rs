//! Real players in Debian's headless Chromium: hls.js, dash.js (4 and 5) and Shaka pages
//! served from an origin of their own (`tests/player`, whose `node_modules` `scripts/test.sh`
//! installs), driven by `play.mjs`, which prints each player's state once a second.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub fn player_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/player")
}

/// Serves the test pages and the players on its own port (its own origin): `index.html`
/// (hls.js), `dash.html` (dash.js 4), `dash5.html` (dash.js 5), `shaka.html` (Shaka Player),
/// `upload.html` (tus-js-client).
pub fn serve_page() -> u16 {
    serve_page_with(Vec::new())
}

/// [`serve_page`], and `extra` files (path, content type, bytes) beside the pages.
pub fn serve_page_with(extra: Vec<(&'static str, &'static str, Vec<u8>)>) -> u16 {
    let dir = player_dir();
    let read = |path: &str| {
        std::fs::read(dir.join(path)).unwrap_or_else(|e| {
            panic!("tests/player/{path}: {e} (players are installed by scripts/test.sh, which runs npm ci in tests/player)")
        })
    };
    let js = "application/javascript";
    let mut files = vec![
        ("/index.html", "text/html", read("index.html")),
        ("/dash.html", "text/html", read("dash.html")),
        ("/dash5.html", "text/html", read("dash5.html")),
        ("/shaka.html", "text/html", read("shaka.html")),
        ("/page.js", js, read("page.js")),
        ("/upload.html", "text/html", read("upload.html")),
        (
            "/tus.min.js",
            js,
            read("node_modules/tus-js-client/dist/tus.min.js"),
        ),
        (
            "/hls.min.js",
            js,
            read("node_modules/hls.js/dist/hls.min.js"),
        ),
        (
            "/dash.all.min.js",
            js,
            read("node_modules/dashjs/dist/dash.all.min.js"),
        ),
        (
            "/dash5.all.min.js",
            js,
            read("node_modules/dashjs5/dist/modern/umd/dash.all.min.js"),
        ),
        (
            "/shaka-player.compiled.js",
            js,
            read("node_modules/shaka-player/dist/shaka-player.compiled.js"),
        ),
        (
            "/shaka-player.compiled.debug.js",
            js,
            read("node_modules/shaka-player/dist/shaka-player.compiled.debug.js"),
        ),
    ];
    files.extend(extra);
    super::serve_files(files)
}

pub fn field(line: &str, key: &str) -> Option<f64> {
    let start = line.find(&format!("\"{key}\":"))? + key.len() + 3;
    let rest = &line[start..];
    let end = rest.find([',', '}']).unwrap_or(rest.len());
    rest[..end].trim().parse().ok()
}

/// Opens `url` (a page of [`serve_page`]'s with `?src=`) for `secs` seconds; the player's
/// state lines, the last one `{"done": true}`.
pub fn run_player(url: &str, secs: u32) -> Vec<String> {
    run_players(&[url.to_string()], secs)
}

/// Opens every page of `urls` at once in one browser for `secs` seconds; their state lines,
/// each with `"page": i` (its index), the last one `{"done": true, "g2g": [...]}`.
pub fn run_players(urls: &[String], secs: u32) -> Vec<String> {
    let mut child = Command::new("node")
        .arg("play.mjs")
        .arg(&urls[0])
        .arg(secs.to_string())
        .args(&urls[1..])
        .current_dir(player_dir())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("node must be installed (scripts/test.sh installs it)");
    let lines: Vec<String> = BufReader::new(child.stdout.take().unwrap())
        .lines()
        .map_while(Result::ok)
        .collect();
    let status = child.wait().unwrap();
    assert!(status.success(), "player script failed: {lines:?}");
    assert!(
        lines.last().is_some_and(|l| l.contains("\"done\":true")),
        "{lines:?}"
    );
    lines
}
