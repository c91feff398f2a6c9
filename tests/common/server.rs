//! A real `estuary` process for a test.
//!
//! ```ignore
//! let srv = Server::start("[hls]\nend_grace = 1.0");        // an origin
//! let edge = Server::edge("[redis]\nurl = \"redis://…\"");  // an edge node
//! let tls = Estuary::serve().config(tls).http_port(p).unchecked().start();
//! ```
//!
//! The configuration is TOML merged over the defaults: tables merge key by key, anything else
//! (arrays of tables such as `[[streams]]` included) replaces what the defaults had. An origin's
//! defaults: every listener on a free loopback port, a temporary data directory, the stream
//! [`NAME`] with the key [`KEY`], no transcoding (parallel tests would all transcode on a
//! 2-core machine) and no reconnect grace (a stream ends when its publisher goes).

use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use super::{free_port, free_udp_port, get, wait_for, TempDir};

pub const KEY: &str = "test-key-0123";
pub const NAME: &str = "demo";
/// The default `[[streams]]` entry, for tests that add keys to it.
pub const STREAM: &str = "[[streams]]\nname = \"demo\"\nkey = \"test-key-0123\"\n";
/// The API token every test server takes (its digest is in their config).
pub const API_TOKEN: &str = "test-api-token-0123456789";
/// The HS256 secret every test server signs and verifies tokens with.
pub const TEST_SECRET: &str = "a-test-secret-that-is-at-least-32-bytes";

/// What every test server shares: the API token's digest and the token secret.
fn access_defaults() -> String {
    format!(
        "[api]\ntokens = [\"{}\"]\n[playback]\nhs256_secrets = [\"{TEST_SECRET}\"]\n",
        httpd::access::api::ApiTokens::digest_of(API_TOKEN)
    )
}

/// A configuration to start `estuary` with.
pub struct Estuary {
    command: &'static str,
    config: toml::Table,
    http: u16,
    check_health: bool,
}

impl Estuary {
    /// An origin (`estuary serve`) with the defaults above.
    pub fn serve() -> Estuary {
        let e = Estuary {
            command: "serve",
            config: toml::Table::new(),
            http: free_port(),
            check_health: true,
        };
        let defaults = format!(
            "[server]\nreconnect_grace_secs = 0\n\
             [rtmp]\nlisten = \"127.0.0.1:{}\"\n\
             [srt]\nlisten = \"127.0.0.1:{}\"\n\
             [whip]\nlisten = \"127.0.0.1:{}\"\n\
             [transcode]\nenabled = false\n{STREAM}",
            free_port(),
            free_udp_port(),
            free_udp_port()
        );
        e.config(&defaults).config(&access_defaults())
    }

    /// An edge node (`estuary edge`): only its HTTP port and data directory are set.
    pub fn edge() -> Estuary {
        Estuary {
            command: "edge",
            config: toml::Table::new(),
            http: free_port(),
            check_health: true,
        }
        .config(&access_defaults())
    }

    /// `toml` merged over what is there.
    pub fn config(mut self, toml: &str) -> Estuary {
        let over: toml::Table = toml
            .parse()
            .unwrap_or_else(|e| panic!("test config does not parse: {e}\n{toml}"));
        merge(&mut self.config, over);
        self
    }

    /// HTTP on this port (a test that needs to know it before the start).
    pub fn http_port(mut self, port: u16) -> Estuary {
        self.http = port;
        self
    }

    /// Waits for the HTTP port to accept connections rather than for `/healthz` (over TLS, the
    /// tests' client cannot ask).
    pub fn unchecked(mut self) -> Estuary {
        self.check_health = false;
        self
    }

    pub fn start(mut self) -> Server {
        let dir = TempDir::new(self.command);
        let port = |section: &str| {
            let listen = self.config.get(section)?.get("listen")?.as_str()?;
            listen.rsplit(':').next()?.parse().ok()
        };
        let (rtmp, srt, whip) = (
            port("rtmp").unwrap_or(0),
            port("srt").unwrap_or(0),
            port("whip").unwrap_or(0),
        );
        let fixed = format!(
            "[server]\ndata_dir = \"{}\"\n[http]\nlisten = \"127.0.0.1:{}\"\n",
            dir.0.join("data").display(),
            self.http
        );
        merge(&mut self.config, fixed.parse().expect("valid TOML"));
        let config = dir.0.join("estuary.toml");
        std::fs::write(&config, toml::to_string(&self.config).unwrap()).unwrap();
        let process = Process::spawn(self.command, config, dir.0.join("estuary.log"));
        let srv = Server {
            process,
            http: self.http,
            rtmp,
            srt,
            whip,
            dir,
        };
        srv.wait_ready(self.check_health);
        srv
    }
}

/// Tables merge key by key; any other value replaces.
fn merge(base: &mut toml::Table, over: toml::Table) {
    for (k, v) in over {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

/// A running `estuary` process: killed on drop, its log printed when the test failed.
pub struct Process {
    child: Child,
    command: &'static str,
    config: PathBuf,
    log: PathBuf,
}

impl Process {
    fn spawn(command: &'static str, config: PathBuf, log: PathBuf) -> Process {
        let out = std::fs::File::options()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_estuary"))
            .arg(command)
            .arg("--config")
            .arg(&config)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::from(out.try_clone().unwrap()))
            .stderr(Stdio::from(out))
            .spawn()
            .expect("start estuary");
        Process {
            child,
            command,
            config,
            log,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The exit status, once it has exited.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().unwrap()
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Everything it logged so far (across restarts).
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!(
                "--- estuary {} log ({}) ---\n{}",
                self.command,
                self.config.display(),
                self.log_text()
            );
        }
    }
}

/// A running origin or edge and where it listens.
pub struct Server {
    pub process: Process,
    pub http: u16,
    /// RTMP and SRT ingest, and WHIP's media (UDP); 0 on an edge.
    pub rtmp: u16,
    pub srt: u16,
    pub whip: u16,
    pub dir: TempDir,
}

impl Server {
    /// An origin: the defaults with `toml` merged over them.
    pub fn start(toml: &str) -> Server {
        Estuary::serve().config(toml).start()
    }

    /// An edge node with `toml` (`[redis]`, `[edge]`, `[archive]`) merged over its defaults.
    pub fn edge(toml: &str) -> Server {
        Estuary::edge().config(toml).start()
    }

    fn wait_ready(&self, check_health: bool) {
        let what = format!("estuary {} ready", self.process.command);
        if check_health {
            wait_for(&what, Duration::from_secs(60), || {
                get(self.http, "/healthz")
                    .ok()
                    .filter(|r| r.status == 200)
                    .map(|_| ())
            });
        } else {
            wait_for(&what, Duration::from_secs(60), || {
                std::net::TcpStream::connect(("127.0.0.1", self.http))
                    .ok()
                    .map(|_| ())
            });
        }
    }

    /// Stops the process (as a crash would) and starts it again with the same configuration
    /// and data directory.
    pub fn restart(&mut self) {
        self.process.kill();
        let (command, config, log) = (
            self.process.command,
            self.process.config.clone(),
            self.process.log.clone(),
        );
        self.process = Process::spawn(command, config, log);
        self.wait_ready(true);
    }

    pub fn log_text(&self) -> String {
        self.process.log_text()
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
