//! A real PostgreSQL server (Debian's `postgresql` package; scripts/test.sh installs it) in a
//! temporary directory, on a port of the test's own, with trust authentication on loopback.
//! `initdb` refuses to run as root, so as root the server runs as the `postgres` user the
//! package creates.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use super::{free_port, TempDir};

/// A running server; stopped (immediately: nothing in it is kept) on drop.
pub struct Postgres {
    dir: TempDir,
    bin: PathBuf,
    root: bool,
    port: u16,
}

impl Postgres {
    pub fn start() -> Postgres {
        let bin = bin_dir().expect(
            "PostgreSQL's server (initdb, pg_ctl) must be installed (scripts/test.sh installs the postgresql package)",
        );
        let dir = TempDir::new("postgres");
        let root = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
        let pg = Postgres {
            dir,
            bin,
            root,
            port: free_port(),
        };
        if root {
            let ok = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&pg.dir.0)
                .status()
                .is_ok_and(|s| s.success());
            assert!(
                ok,
                "cannot give the temporary directory to the postgres user"
            );
        }
        let data = pg.dir.0.join("data");
        pg.run(
            "initdb",
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-U".as_ref(),
                "estuary".as_ref(),
                "-A".as_ref(),
                "trust".as_ref(),
                "-E".as_ref(),
                "UTF8".as_ref(),
                "--no-locale".as_ref(),
                "--no-sync".as_ref(),
            ],
        );
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            pg.port,
            pg.dir.0.display()
        );
        pg.run(
            "pg_ctl",
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-o".as_ref(),
                options.as_ref(),
                "-l".as_ref(),
                pg.dir.0.join("log").as_os_str(),
                "-w".as_ref(),
                "-t".as_ref(),
                "60".as_ref(),
                "start".as_ref(),
            ],
        );
        pg
    }

    /// `postgres://…` for the server's own `postgres` database.
    pub fn url(&self) -> String {
        format!("postgres://estuary@127.0.0.1:{}/postgres", self.port)
    }

    /// One of the server's programs, as the user that owns its directory.
    fn command(&self, tool: &str) -> Command {
        let path = self.bin.join(tool);
        if self.root {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&path);
            c
        } else {
            Command::new(&path)
        }
    }

    fn run(&self, tool: &str, args: &[&std::ffi::OsStr]) -> Output {
        let out = self
            .command(tool)
            .args(args)
            .current_dir(&self.dir.0)
            .output()
            .unwrap_or_else(|e| panic!("{tool}: {e}"));
        assert!(
            out.status.success(),
            "{tool} failed: {}{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(self.dir.0.join("log")).unwrap_or_default()
        );
        out
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let data = self.dir.0.join("data");
        let _ = self
            .command("pg_ctl")
            .arg("-D")
            .arg(&data)
            .args(["-m", "immediate", "stop"])
            .output();
    }
}

/// Debian keeps the server's programs out of PATH, under /usr/lib/postgresql/VERSION/bin.
fn bin_dir() -> Option<PathBuf> {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| Some(e.ok()?.path().join("bin")))
        .filter(|b| b.join("initdb").exists())
        .collect();
    versions.sort();
    versions.pop().or_else(|| {
        let which = Command::new("sh")
            .args(["-c", "command -v initdb"])
            .output()
            .ok()?;
        let p = String::from_utf8_lossy(&which.stdout).trim().to_string();
        Path::new(&p).parent().map(Path::to_path_buf)
    })
}
