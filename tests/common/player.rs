//! Real players in Debian's headless Chromium: hls.js and dash.js pages served from an origin
//! of their own (`tests/player`, whose `node_modules` `scripts/test.sh` installs), driven by
//! `play.mjs`, which prints the player's state once a second.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub fn player_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/player")
}

/// Serves the test pages, hls.js and dash.js on its own port (its own origin).
pub fn serve_page() -> u16 {
    let dir = player_dir();
    let page = std::fs::read(dir.join("index.html")).expect("tests/player/index.html");
    let dash_page = std::fs::read(dir.join("dash.html")).expect("tests/player/dash.html");
    let missing = "players are not installed: run scripts/test.sh (it runs npm ci in tests/player)";
    let hls = std::fs::read(dir.join("node_modules/hls.js/dist/hls.min.js")).expect(missing);
    let dash = std::fs::read(dir.join("node_modules/dashjs/dist/dash.all.min.js")).expect(missing);
    super::serve_files(vec![
        ("/index.html", "text/html", page),
        ("/hls.min.js", "application/javascript", hls),
        ("/dash.html", "text/html", dash_page),
        ("/dash.all.min.js", "application/javascript", dash),
    ])
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
    let mut child = Command::new("node")
        .arg("play.mjs")
        .arg(url)
        .arg(secs.to_string())
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
