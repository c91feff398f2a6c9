//! A real S3-compatible server (moto's, which scripts/test.sh installs in a virtualenv) on a
//! free port, with one bucket; killed on drop.

use std::process::Command;
use std::time::Duration;

use super::*;

pub struct S3 {
    child: std::process::Child,
    pub port: u16,
}

impl S3 {
    /// The server, with `bucket` made in it.
    pub fn start(bucket: &str) -> S3 {
        let bin = std::env::var("ESTUARY_S3_SERVER").unwrap_or_else(|_| {
            format!(
                "{}/.cache/estuary/s3-venv/bin/moto_server",
                std::env::var("HOME").unwrap_or_default()
            )
        });
        let port = free_port();
        let child = Command::new(&bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{bin}: {e} (scripts/test.sh installs it)"));
        wait_for("the S3 server", Duration::from_secs(60), || {
            get(port, "/").ok().map(|_| ())
        });
        let r = request(port, "PUT", &format!("/{bucket}"), &[], b"").unwrap();
        assert_eq!(r.status, 200, "creating the bucket: {}", r.text());
        S3 { child, port }
    }

    /// `[archive]` on this server's `bucket`, under `prefix`.
    pub fn archive_config(&self, bucket: &str, prefix: &str) -> String {
        format!(
            "[archive]\nurl = \"s3://{bucket}/{prefix}\"\nendpoint = \"http://127.0.0.1:{}\"\nregion = \"us-east-1\"\naccess_key_id = \"test\"\nsecret_access_key = \"test\"\n",
            self.port
        )
    }

    /// The keys under `prefix` in `bucket` (ListObjectsV2, one page).
    pub fn keys(&self, bucket: &str, prefix: &str) -> Vec<String> {
        let listing = get(self.port, &format!("/{bucket}?list-type=2&prefix={prefix}"))
            .unwrap()
            .text();
        listing
            .split("<Key>")
            .skip(1)
            .filter_map(|k| k.split("</Key>").next())
            .map(str::to_string)
            .collect()
    }

    /// The keys of the multipart uploads not completed or aborted in `bucket`.
    pub fn multipart_uploads(&self, bucket: &str) -> Vec<String> {
        let listing = get(self.port, &format!("/{bucket}?uploads"))
            .unwrap()
            .text();
        listing
            .split("<Upload>")
            .skip(1)
            .filter_map(|u| u.split("<Key>").nth(1)?.split("</Key>").next())
            .map(str::to_string)
            .collect()
    }
}

impl Drop for S3 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
