//! A real `redis-server` (Debian's; scripts/test.sh installs it) on a port of the test's own,
//! without persistence, and one-line commands to it.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::wait_for;

/// A redis-server on `port` (no persistence); killed on drop.
pub struct Redis(Child);

impl Redis {
    pub fn start(port: u16) -> Redis {
        Redis::start_args(port, &[])
    }

    pub fn start_args(port: u16, extra: &[&str]) -> Redis {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .args(["--bind", "127.0.0.1"])
            .args(extra)
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (scripts/test.sh installs it)");
        wait_for("redis-server", Duration::from_secs(30), || {
            cmd(port, "PING").filter(|r| r.contains("PONG")).map(|_| ())
        });
        Redis(child)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One inline Redis command; the raw reply.
pub fn cmd(port: u16, line: &str) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(format!("{line}\r\n").as_bytes()).ok()?;
    let mut buf = [0u8; 4096];
    let n = s.read(&mut buf).ok()?;
    Some(String::from_utf8_lossy(&buf[..n]).into_owned())
}
