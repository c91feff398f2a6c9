//! Secrets made on first start (the stream key when no `[[streams]]` are configured, the API
//! token when no `[api] tokens` are): random, shown in the log once, when made, and kept in
//! the data directory only as SHA-256 digests, so neither a later start nor a copy of the
//! directory gives them away.

use std::path::{Path, PathBuf};

use anyhow::Context;
use rand::Rng;
use tracing::info;

/// A new secret: `len` letters and digits from the operating system's CSPRNG (via
/// `rand::thread_rng`, ChaCha seeded from it).
pub fn random(len: usize) -> String {
    rand::thread_rng()
        .sample_iter(&rand::distributions::Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

/// Hex of a SHA-256 digest.
pub fn hex(d: &[u8]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn parse_hex(s: &str) -> Option<[u8; 32]> {
    let s = s.trim();
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// A secret kept as a digest in `{dir}/{name}.sha256`.
pub struct Kept {
    pub digest: [u8; 32],
    /// The secret itself, when it was made by this start (to be shown once).
    pub made: Option<String>,
    pub file: PathBuf,
}

/// The digest kept in `{dir}/{name}.sha256`, or a new secret of `len` characters (made,
/// its digest written). A plain `{dir}/{name}` of an older version is taken over: hashed,
/// then removed.
pub fn kept(dir: &Path, name: &str, len: usize) -> anyhow::Result<Kept> {
    let file = dir.join(format!("{name}.sha256"));
    if let Ok(text) = std::fs::read_to_string(&file) {
        if let Some(digest) = parse_hex(&text) {
            return Ok(Kept {
                digest,
                made: None,
                file,
            });
        }
    }
    let old = dir.join(name);
    let (secret, made) = match std::fs::read_to_string(&old) {
        Ok(k) if k.trim().len() >= 8 => (k.trim().to_string(), None),
        _ => {
            let s = random(len);
            (s.clone(), Some(s))
        }
    };
    let digest = ingest::auth::digest(&secret);
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    write_private(&file, &hex(&digest)).with_context(|| format!("writing {}", file.display()))?;
    if made.is_none() {
        let _ = std::fs::remove_file(&old);
        info!(file = %file.display(), "the {name} kept in plain text by an earlier version is now kept as a digest");
    }
    Ok(Kept { digest, made, file })
}

/// Writes `contents` readable by the owner only, through a temporary file and a rename.
pub fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(&tmp)?;
    writeln!(f, "{contents}")?;
    f.sync_all()?;
    std::fs::rename(tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn made_once_then_only_its_digest() {
        let dir = std::env::temp_dir().join(format!("estuary-secrets-{}", std::process::id()));
        let first = kept(&dir, "api-token", 32).unwrap();
        let secret = first.made.clone().expect("made on first start");
        assert_eq!(first.digest, ingest::auth::digest(&secret));
        let again = kept(&dir, "api-token", 32).unwrap();
        assert!(again.made.is_none(), "not shown again");
        assert_eq!(again.digest, first.digest);
        let on_disk = std::fs::read_to_string(&first.file).unwrap();
        assert!(!on_disk.contains(&secret));
        // An older version's plain file is taken over.
        std::fs::write(dir.join("stream-key"), "old-plain-key-123\n").unwrap();
        let taken = kept(&dir, "stream-key", 24).unwrap();
        assert!(taken.made.is_none());
        assert_eq!(taken.digest, ingest::auth::digest("old-plain-key-123"));
        assert!(!dir.join("stream-key").exists());
        let _ = std::fs::remove_dir_all(dir);
    }
}
