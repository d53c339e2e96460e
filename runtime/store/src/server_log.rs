//! The zone server's access log (`server/access.jsonl`), sealed into the audit log: the server records the SHA-256
//! of the log's first N bytes as a `server.access_seal` entry from time to time, and `zone verify` checks every
//! seal against the file, so a line changed, removed or inserted before the last seal is found.

use std::fs;
use std::io::Read;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zone_audit::{Entry, Outcome};

use crate::error::StoreError;
use crate::record::now;
use crate::zone::Zone;

/// The access log, relative to the zone's root.
pub const ACCESS_LOG: &str = "server/access.jsonl";

/// The audit action of a seal.
pub const ACCESS_SEAL: &str = "server.access_seal";

/// What `zone verify` found of the access log's seals.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AccessLogCheck {
    /// Seals in the audit log, each checked.
    pub seals: usize,
    /// Bytes covered by the last seal.
    pub sealed_bytes: u64,
    /// Bytes in the file now (what follows the last seal is not covered yet).
    pub file_bytes: u64,
    /// The first seal the file no longer matches, with why.
    pub broken: Option<String>,
}

/// One seal, read back from its audit entry.
struct Seal {
    seq: u64,
    bytes: u64,
    sha256: String,
}

fn seal_of(e: &Entry) -> Option<Seal> {
    let bytes = e.objects.iter().find_map(|o| o.strip_prefix("access-log@")?.parse().ok())?;
    let sha256 = e.hashes.iter().find_map(|h| h.strip_prefix("sha256:"))?.to_owned();
    Some(Seal { seq: e.seq, bytes, sha256 })
}

impl Zone {
    /// Records a seal: the access log's first `bytes` bytes (`lines` lines) hash to `sha256`. The server calls this
    /// after an fsync of the file, so what the seal covers is on disk before the seal is.
    pub fn seal_access_log(&self, bytes: u64, lines: u64, sha256: &str) -> Result<(), StoreError> {
        self.record(&mut [Entry::new(now(), "zone-server", "system", ACCESS_SEAL, Outcome::Ok)
            .object(format!("access-log@{bytes}"))
            .hash(format!("sha256:{sha256}"))
            .detail(format!("{ACCESS_LOG}: its first {bytes} bytes ({lines} lines)"))])
    }

    /// Checks every seal of the audit log against the access log, in one pass over the file.
    pub(crate) fn check_access_log(&self) -> Result<AccessLogCheck, StoreError> {
        let mut seals: Vec<Seal> = self
            .audit_entries_unchecked()?
            .iter()
            .filter(|e| e.action == ACCESS_SEAL && e.outcome == Outcome::Ok)
            .filter_map(seal_of)
            .collect();
        seals.sort_by_key(|s| s.bytes);
        let path = self.root().join(ACCESS_LOG);
        let mut check = AccessLogCheck {
            seals: seals.len(),
            sealed_bytes: seals.last().map_or(0, |s| s.bytes),
            ..Default::default()
        };
        let mut file = match fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if let Some(s) = seals.iter().find(|s| s.bytes > 0) {
                    check.broken =
                        Some(format!("{ACCESS_LOG} is gone, but audit entry {} sealed {} bytes", s.seq, s.bytes));
                }
                return Ok(check);
            }
            Err(e) => return Err(StoreError::io("open", &path)(e)),
        };
        check.file_bytes = file.metadata().map_err(StoreError::io("read", &path))?.len();
        let mut hasher = Sha256::new();
        let mut read = 0u64;
        let mut buffer = vec![0u8; 1 << 16];
        for seal in &seals {
            while read < seal.bytes {
                let want = usize::try_from((seal.bytes - read).min(buffer.len() as u64)).unwrap_or(buffer.len());
                let n = file.read(&mut buffer[..want]).map_err(StoreError::io("read", &path))?;
                if n == 0 {
                    check.broken = Some(format!(
                        "{ACCESS_LOG} holds {read} bytes, but audit entry {} sealed its first {}: it was truncated",
                        seal.seq, seal.bytes
                    ));
                    return Ok(check);
                }
                hasher.update(&buffer[..n]);
                read += n as u64;
            }
            let actual = hex::encode(hasher.clone().finalize());
            if actual != seal.sha256 {
                check.broken = Some(format!(
                    "{ACCESS_LOG}: its first {} bytes no longer hash to what audit entry {} sealed: a line before \
                     byte {} was changed, removed or inserted",
                    seal.bytes, seal.seq, seal.bytes
                ));
                return Ok(check);
            }
        }
        Ok(check)
    }
}

/// The running SHA-256 of the access log as its writer (the server) appends to it, continued from what the file
/// already holds when the server starts.
#[derive(Debug, Clone, Default)]
pub struct AccessLogHash {
    hasher: Sha256,
    bytes: u64,
    lines: u64,
}

impl AccessLogHash {
    /// The hash of everything `path` holds now (nothing, when it does not exist yet).
    pub fn of_file(path: &Path) -> Result<AccessLogHash, StoreError> {
        let mut hash = AccessLogHash::default();
        let mut file = match fs::File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(hash),
            Err(e) => return Err(StoreError::io("open", path)(e)),
        };
        let mut buffer = vec![0u8; 1 << 16];
        loop {
            let n = file.read(&mut buffer).map_err(StoreError::io("read", path))?;
            if n == 0 {
                return Ok(hash);
            }
            hash.update(&buffer[..n]);
        }
    }

    /// Bytes appended to the file.
    pub fn update(&mut self, bytes: &[u8]) {
        self.hasher.update(bytes);
        self.bytes += bytes.len() as u64;
        self.lines += bytes.iter().filter(|b| **b == b'\n').count() as u64;
    }

    /// Bytes hashed so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// (bytes, lines, hex SHA-256) of everything hashed so far: what a seal records.
    pub fn snapshot(&self) -> (u64, u64, String) {
        (self.bytes, self.lines, hex::encode(self.hasher.clone().finalize()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealed_zone(root: &Path, lines: &[&str]) -> (Zone, std::path::PathBuf) {
        let zone = Zone::init(root, "dsb", Some("data-bureau")).expect("init");
        let path = root.join(ACCESS_LOG);
        fs::create_dir_all(path.parent().expect("parent")).expect("server dir");
        let mut hash = AccessLogHash::of_file(&path).expect("empty");
        let mut text = String::new();
        // A seal after each line, as a server sealing between requests would.
        for line in lines {
            let line = format!("{line}\n");
            text.push_str(&line);
            fs::write(&path, &text).expect("write");
            hash.update(line.as_bytes());
            let (bytes, count, sha) = hash.snapshot();
            zone.seal_access_log(bytes, count, &sha).expect("seal");
        }
        assert_eq!(AccessLogHash::of_file(&path).expect("reread").snapshot(), hash.snapshot());
        (zone, path)
    }

    #[test]
    fn every_seal_is_checked_and_the_first_broken_one_is_named() {
        let dir = tempfile::tempdir().expect("tmp");
        let (zone, path) = sealed_zone(&dir.path().join("z"), &[r#"{"status":200}"#, r#"{"status":404}"#]);
        let check = zone.check_access_log().expect("check");
        assert_eq!((check.seals, check.broken.as_deref()), (2, None));
        assert_eq!(check.sealed_bytes, check.file_bytes);

        // A line after the last seal is not covered yet: still intact.
        let mut text = fs::read_to_string(&path).expect("read");
        fs::write(&path, format!("{text}{{\"status\":500}}\n")).expect("append");
        assert_eq!(zone.check_access_log().expect("check").broken, None);

        // The second line changed: the first seal still holds, the second is named.
        text = text.replace("404", "200");
        fs::write(&path, &text).expect("tamper");
        let broken = zone.check_access_log().expect("check").broken.expect("broken");
        assert!(broken.contains("first 30 bytes no longer hash"), "{broken}");

        fs::write(&path, &text[..10]).expect("truncate");
        let broken = zone.check_access_log().expect("check").broken.expect("broken");
        assert!(broken.contains("holds 10 bytes") && broken.contains("truncated"), "{broken}");

        fs::remove_file(&path).expect("remove");
        let broken = zone.check_access_log().expect("check").broken.expect("broken");
        assert!(broken.contains("is gone"), "{broken}");
    }

    #[test]
    fn a_zone_without_a_server_has_nothing_to_check() {
        let dir = tempfile::tempdir().expect("tmp");
        let zone = Zone::init(&dir.path().join("z"), "dsb", Some("data-bureau")).expect("init");
        assert_eq!(zone.check_access_log().expect("check"), AccessLogCheck::default());
    }
}
