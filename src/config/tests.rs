//! The shipped configs parse and validate; keys that must be refused are.
use super::*;

/// The compose file's configs start as they are (no example keys in them).
#[test]
fn docker_configs_parse() {
    for text in [
        include_str!("../../docker/origin.toml"),
        include_str!("../../docker/edge.toml"),
    ] {
        let cfg: Config = toml::from_str(text).unwrap();
        cfg.validate().unwrap();
    }
}

#[test]
fn reference_config_parses() {
    let text = include_str!("../../config/estuary.toml");
    let cfg: Config = toml::from_str(text).unwrap();
    cfg.validate().unwrap();
    assert_eq!(cfg.http.listen.port(), 8080);
    assert_eq!(cfg.rtmp.listen.port(), 1935);
    assert_eq!(cfg.srt.listen.port(), 9000);
    // Its sample stream is commented out: its key is an example, refused at start-up.
    let sample = text
        .lines()
        .skip_while(|l| *l != "# [[streams]]")
        .take(3)
        .map(|l| l.trim_start_matches("# "))
        .collect::<Vec<_>>()
        .join("\n");
    let with_sample: Config = toml::from_str(&sample).unwrap();
    let e = with_sample.validate().unwrap_err().to_string();
    assert!(e.contains("is an example"), "{e}");
}

#[test]
fn typos_are_errors() {
    assert!(toml::from_str::<Config>("[http]\nlisten_on = \"0.0.0.0:1\"").is_err());
    let pull = "[[pull]]\nname = \"c\"\nurl = \"rtsp://c/s\"\ntransport = \"carrier-pigeon\"";
    assert!(toml::from_str::<Config>(pull).is_err());
}

#[test]
fn seconds_are_whole_or_fractional_never_negative() {
    let c: Config =
        toml::from_str("[server]\nreconnect_grace_secs = 20\n[hls]\nend_grace = 0.5").unwrap();
    assert_eq!(c.reconnect_grace(), Duration::from_secs(20));
    assert_eq!(c.hls.end_grace.0, Duration::from_millis(500));
    assert_eq!(Config::default().reconnect_grace(), Duration::from_secs(15));
    assert!(toml::from_str::<Config>("[rtmp]\nidle_timeout_secs = -1").is_err());
    assert!(toml::from_str::<Config>("[edge]\nidle_secs = nan").is_err());
}
