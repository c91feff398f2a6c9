//! Helpers for end-to-end tests: a real `estuary` process on free ports in a temporary
//! directory, a real `ffmpeg` publisher, a tiny HTTP/1.1 client, and `ffprobe`.
//! Everything started here is killed and removed on drop.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A free port below Linux's ephemeral range (32768+), so no client socket of a parallel test
/// (ffmpeg, curl, the tests' own HTTP) can take it between our check and the server's bind;
/// a process-wide counter keeps the tests of one binary apart.
fn pick_port(free: impl Fn(u16) -> bool) -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let base = (std::process::id() % 60) * 200;
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = (20_000 + (base + n) % 12_000) as u16;
        if free(port) {
            return port;
        }
    }
}

pub fn free_port() -> u16 {
    pick_port(|p| TcpListener::bind(("127.0.0.1", p)).is_ok())
}

pub fn free_udp_port() -> u16 {
    pick_port(|p| std::net::UdpSocket::bind(("127.0.0.1", p)).is_ok())
}

pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!(
            "estuary-test-{tag}-{}-{}",
            std::process::id(),
            Instant::now().elapsed().as_nanos() ^ rand_u64()
        ));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

fn rand_u64() -> u128 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(1);
    h.finish() as u128
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub struct Server {
    pub child: Child,
    pub http: u16,
    pub rtmp: u16,
    pub srt: u16,
    /// WHIP media (UDP).
    pub whip: u16,
    pub dir: TempDir,
    pub log: PathBuf,
}

pub const KEY: &str = "test-key-0123";
pub const NAME: &str = "demo";

impl Server {
    /// Starts `estuary serve` with `[[streams]] demo / test-key-0123` plus `extra` TOML.
    pub fn start(extra: &str) -> Server {
        Self::start_with(&format!(
            "[[streams]]\nname = \"{NAME}\"\nkey = \"{KEY}\"\n{extra}"
        ))
    }

    /// Starts `estuary serve` with the given streams/extra config (ports and data dir are added).
    pub fn start_with(body: &str) -> Server {
        Self::start_full(body, "", "", free_port(), true)
    }

    /// As [`Server::start`], with extra keys in `[whip]` (timeouts).
    pub fn start_whip(whip_extra: &str) -> Server {
        let streams =
            format!("[[streams]]\nname = \"{NAME}\"\nkey = \"{KEY}\"\n[hls]\nend_grace = 1.0\n");
        Self::start_full(
            &format!("{whip_extra}\n{streams}"),
            "",
            "",
            free_port(),
            true,
        )
    }

    /// As [`Server::start`], with extra keys in `[srt]` (e.g. a passphrase).
    pub fn start_srt(srt_extra: &str) -> Server {
        let streams = format!("[[streams]]\nname = \"{NAME}\"\nkey = \"{KEY}\"\n");
        Self::start_full(&streams, "", &format!("{srt_extra}\n"), free_port(), true)
    }

    /// HTTPS on `port` with the given PEM files; health is checked by the caller.
    pub fn start_tls(cert: &Path, key: &Path, port: u16) -> Server {
        let http = format!(
            "tls_cert = \"{}\"\ntls_key = \"{}\"\n",
            cert.display(),
            key.display()
        );
        Self::start_full("", &http, "", port, false)
    }

    fn start_full(
        body: &str,
        http_extra: &str,
        srt_extra: &str,
        http: u16,
        check_health: bool,
    ) -> Server {
        Self::start_full_transcoding(body, http_extra, srt_extra, http, check_health, false, 0)
    }

    /// As [`Server::start`], with a publisher that drops allowed `grace` seconds to come back
    /// (the other servers of the tests end a stream as soon as its publisher goes).
    pub fn start_with_grace(extra: &str, grace: u64) -> Server {
        let streams = format!("[[streams]]\nname = \"{NAME}\"\nkey = \"{KEY}\"\n{extra}");
        Self::start_full_transcoding(&streams, "", "", free_port(), true, false, grace)
    }

    /// As [`Server::start`], with extra keys in `[http]`.
    pub fn start_with_http(extra: &str, http_extra: &str) -> Server {
        let streams = format!("[[streams]]\nname = \"{NAME}\"\nkey = \"{KEY}\"\n{extra}");
        Self::start_full(&streams, http_extra, "", free_port(), true)
    }

    /// As [`Server::start`], with the transcoder on (the other servers of the tests serve
    /// streams as they come, so parallel tests do not all transcode on a 2-core machine).
    pub fn start_transcoding(extra: &str) -> Server {
        let streams = format!("[[streams]]\nname = \"{NAME}\"\nkey = \"{KEY}\"\n{extra}");
        Self::start_full_transcoding(&streams, "", "", free_port(), true, true, 0)
    }

    fn start_full_transcoding(
        body: &str,
        http_extra: &str,
        srt_extra: &str,
        http: u16,
        check_health: bool,
        transcode: bool,
        grace: u64,
    ) -> Server {
        let dir = TempDir::new("srv");
        let rtmp = free_port();
        let srt = free_udp_port();
        let whip = free_udp_port();
        let cfg = format!(
            "[server]\ndata_dir = \"{}\"\nreconnect_grace_secs = {}\n[http]\nlisten = \"127.0.0.1:{http}\"\n{http_extra}[rtmp]\nlisten = \"127.0.0.1:{rtmp}\"\n[srt]\nlisten = \"127.0.0.1:{srt}\"\n{srt_extra}[transcode]\nenabled = {}\n[whip]\nlisten = \"127.0.0.1:{whip}\"\n{body}\n",
            dir.0.join("data").display(),
            grace,
            transcode
        );
        // Sections must not repeat; callers put [hls] etc. in `body`.
        let cfg_path = dir.0.join("estuary.toml");
        std::fs::write(&cfg_path, cfg).unwrap();
        let log = dir.0.join("server.log");
        let child = Command::new(env!("CARGO_BIN_EXE_estuary"))
            .args(["serve", "--config"])
            .arg(&cfg_path)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::from(std::fs::File::create(&log).unwrap()))
            .stderr(Stdio::from(
                std::fs::File::options().append(true).open(&log).unwrap(),
            ))
            .spawn()
            .expect("start estuary");
        let s = Server {
            child,
            http,
            rtmp,
            srt,
            whip,
            dir,
            log,
        };
        if check_health {
            wait_for("server healthy", Duration::from_secs(60), || {
                get(s.http, "/healthz")
                    .ok()
                    .filter(|r| r.status == 200)
                    .map(|_| ())
            });
        } else {
            wait_for("server listening", Duration::from_secs(60), || {
                TcpStream::connect(("127.0.0.1", s.http)).ok().map(|_| ())
            });
        }
        s
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn rtmp_url(&self, key: &str) -> String {
        format!("rtmp://127.0.0.1:{}/live/{key}", self.rtmp)
    }

    /// An ffmpeg SRT URL. ffmpeg 5.1 takes option values verbatim up to the next `&` (no
    /// percent-decoding), so `streamid` goes in as it is.
    pub fn srt_url(&self, streamid: &str, extra: &str) -> String {
        assert!(!streamid.contains('&'));
        format!(
            "srt://127.0.0.1:{}?streamid={streamid}&latency=120000{extra}",
            self.srt
        )
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- server log ---\n{}", self.log_text());
        }
    }
}

/// An ffmpeg publisher; killed on drop.
/// An `estuary edge` process; killed on drop.
pub struct Edge {
    pub child: Child,
    pub http: u16,
    _dir: TempDir,
}

impl Edge {
    /// An edge with `body` as the rest of its config (`[redis]`, `[edge]`, `[archive]`).
    pub fn start_with(body: &str) -> Edge {
        let dir = TempDir::new("edge");
        let http = free_port();
        let cfg = dir.0.join("edge.toml");
        std::fs::write(
            &cfg,
            format!(
                "[server]\ndata_dir = \"{}\"\n[http]\nlisten = \"127.0.0.1:{http}\"\n{body}",
                dir.0.join("data").display()
            ),
        )
        .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_estuary"))
            .args(["edge", "--config"])
            .arg(&cfg)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_for("the edge", Duration::from_secs(60), || {
            get(http, "/healthz")
                .ok()
                .filter(|r| r.status == 200)
                .map(|_| ())
        });
        Edge {
            child,
            http,
            _dir: dir,
        }
    }
}

impl Drop for Edge {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct Publisher(pub Child);

impl Publisher {
    /// 1280x720 30 fps H.264 (keyframe every 2 s) + 48 kHz AAC, in real time, for `secs`.
    pub fn rtmp(url: &str, secs: u32) -> Publisher {
        Self::rtmp_args(url, secs, &[])
    }

    /// The same test source as MPEG-TS over SRT.
    pub fn srt(url: &str, secs: u32) -> Publisher {
        Self::rtmp_args(url, secs, &["-f", "mpegts"])
    }

    pub fn rtmp_args(url: &str, secs: u32, extra: &[&str]) -> Publisher {
        let mut cmd = Command::new("ffmpeg");
        cmd.args(["-hide_banner", "-loglevel", "error", "-nostdin", "-re"])
            .args(["-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30"])
            .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
            .args([
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-tune",
                "zerolatency",
                "-g",
                "60",
                "-pix_fmt",
                "yuv420p",
            ])
            .args(["-c:a", "aac", "-b:a", "96k", "-ac", "2"])
            .args(["-t", &secs.to_string()])
            .args(if extra.contains(&"-f") {
                &[][..]
            } else {
                &["-f", "flv"][..]
            })
            .args(extra)
            .arg(url)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        Publisher(cmd.spawn().expect("ffmpeg must be installed (see README)"))
    }

    /// Waits for ffmpeg to exit; returns (success, stderr).
    pub fn wait(mut self, timeout: Duration) -> (bool, String) {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.0.try_wait().unwrap() {
                let mut err = String::new();
                if let Some(mut e) = self.0.stderr.take() {
                    let _ = e.read_to_string(&mut err);
                }
                return (status.success(), err);
            }
            if Instant::now() > deadline {
                panic!("ffmpeg did not exit within {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

pub fn get(port: u16, path: &str) -> std::io::Result<Resp> {
    get_with(port, path, &[])
}

/// A minimal HTTP/1.1 GET (Connection: close), enough to see status, headers and body bytes.
pub fn get_with(port: u16, path: &str, headers: &[(&str, &str)]) -> std::io::Result<Resp> {
    request(port, "GET", path, headers, b"")
}

/// One HTTP/1.1 request with any method and body.
pub fn request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Resp> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut req =
        format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() || method == "POST" {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())?;
    // A server may answer (413) before reading all of a large body.
    let _ = s.write_all(body);
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no header end"))?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| {
            l.split_once(':')
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        })
        .collect();
    let mut body = raw[split + 4..].to_vec();
    if headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"))
    {
        body = dechunk(&body);
    }
    Ok(Resp {
        status,
        headers,
        body,
    })
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(end) = b.windows(2).position(|w| w == b"\r\n") {
        let size =
            usize::from_str_radix(String::from_utf8_lossy(&b[..end]).trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        out.extend_from_slice(&b[end + 2..end + 2 + size]);
        b = &b[end + 2 + size + 2..];
    }
    out
}

/// Polls `f` until it returns `Some`, or panics after `timeout` naming `what`.
pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Decodes a file with ffprobe and returns (codec, width, height, decoded frames) per stream.
pub fn ffprobe_frames(path: &Path) -> Vec<(String, u32, u32, u64)> {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-count_frames",
            "-show_entries",
            "stream=codec_name,width,height,nb_read_frames",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .expect("ffprobe must be installed (see README)");
    assert!(
        out.status.success(),
        "ffprobe failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            let n = |i: usize| f.get(i).and_then(|v| v.trim().parse().ok()).unwrap_or(0);
            (f[0].to_string(), n(1) as u32, n(2) as u32, n(f.len() - 1))
        })
        .collect()
}

/// Lines of a playlist that start with `tag`.
pub fn tags<'a>(playlist: &'a str, tag: &str) -> Vec<&'a str> {
    playlist.lines().filter(|l| l.starts_with(tag)).collect()
}

/// Value of `KEY=` in an attribute list line (quotes removed).
pub fn attr<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let start = line.find(&format!("{key}="))? + key.len() + 1;
    let rest = &line[start..];
    if let Some(r) = rest.strip_prefix('"') {
        return r.split('"').next();
    }
    rest.split(',').next()
}

/// Waits until `/live/{name}` has `segments` complete video segments, then checks that init +
/// those segments decode with ffprobe at `width`x`height`. Returns the decoded frame count.
pub fn assert_video_decodes(
    srv: &Server,
    name: &str,
    segments: usize,
    width: u32,
    height: u32,
) -> u64 {
    assert_codec_decodes(srv, name, segments, width, height, "h264")
}

/// As [`assert_video_decodes`], for a given ffprobe codec name.
pub fn assert_codec_decodes(
    srv: &Server,
    name: &str,
    segments: usize,
    width: u32,
    height: u32,
    codec: &str,
) -> u64 {
    let playlist = wait_for("complete segments", Duration::from_secs(90), || {
        let r = get(srv.http, &format!("/live/{name}/video/index.m3u8")).ok()?;
        (r.status == 200 && tags(&r.text(), "#EXTINF").len() >= segments).then(|| r.text())
    });
    let path = download_rendition(srv, name, "video", &playlist);
    let probe = ffprobe_frames(&path);
    assert_eq!(probe[0].0, codec, "{probe:?}");
    assert_eq!((probe[0].1, probe[0].2), (width, height), "{probe:?}");
    assert!(probe[0].3 > 0, "{probe:?}");
    probe[0].3
}

/// Fetches the init segment and every segment `playlist` lists for one rendition, checking each
/// answers 200, and writes them into one file for ffprobe.
pub fn download_rendition(srv: &Server, name: &str, rendition: &str, playlist: &str) -> PathBuf {
    let map = attr(tags(playlist, "#EXT-X-MAP:")[0], "URI").expect("EXT-X-MAP URI");
    let init = get(srv.http, &format!("/live/{name}/{rendition}/{map}")).unwrap();
    assert_eq!(init.status, 200, "{map}");
    let mut file = init.body;
    for seg in playlist
        .lines()
        .filter(|l| l.ends_with(".m4s") && !l.starts_with('#'))
    {
        let r = get(srv.http, &format!("/live/{name}/{rendition}/{seg}")).unwrap();
        assert_eq!(r.status, 200, "{seg}");
        file.extend_from_slice(&r.body);
    }
    let path = srv.dir.0.join(format!("{name}-{rendition}.mp4"));
    std::fs::write(&path, &file).unwrap();
    path
}

/// Waits until the video playlist of `name` lists a part it did not list before, and is not
/// ended: the stream is live and advancing.
pub fn assert_advances(srv: &Server, name: &str) {
    let path = format!("/live/{name}/video/index.m3u8");
    let last_part = |p: &str| {
        tags(p, "#EXT-X-PART:")
            .last()
            .and_then(|l| attr(l, "URI"))
            .map(str::to_string)
    };
    let before = last_part(&get(srv.http, &path).unwrap().text());
    wait_for("the stream to advance", Duration::from_secs(60), || {
        let now = get(srv.http, &path).ok()?.text();
        assert!(!now.contains("#EXT-X-ENDLIST"), "the stream ended:\n{now}");
        (last_part(&now).is_some() && last_part(&now) != before).then_some(())
    });
}
