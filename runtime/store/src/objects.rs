//! Content-addressed object files (`objects/ab/cdef…`, named by SHA-256) and the atomic write path every
//! stored byte takes: temp file in `tmp/`, fsync, rename into place, fsync the directory.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::StoreError;

/// A SHA-256 digest as 64 lower-case hex characters.
pub type Sha256Hex = String;

/// Where the zone keeps objects and staging files.
#[derive(Debug, Clone)]
pub(crate) struct ObjectStore {
    objects: PathBuf,
    tmp: PathBuf,
}

/// A staged file in `tmp/`: removed on drop unless it was moved into the object store.
#[derive(Debug)]
pub(crate) struct Staged {
    pub path: PathBuf,
    pub sha256: Sha256Hex,
    pub bytes: u64,
    kept: bool,
    /// The staging file, locked while it lives: a file nobody holds is a dead process's and is removed on open.
    _lock: Option<File>,
}

/// How long a staging file is left alone after its last write, whoever holds it (a file is locked right after
/// it is created).
const STAGING_GRACE: std::time::Duration = std::time::Duration::from_secs(60);

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.kept {
            // Best effort: a leftover staging file is garbage, never data; `zone verify` reports it.
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// fsync a directory so that a rename into it survives a crash.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(StoreError::io("fsync directory", dir))
}

fn unique_tmp_name() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("{}-{nanos}-{n}.partial", std::process::id())
}

impl ObjectStore {
    pub fn new(root: &Path) -> ObjectStore {
        ObjectStore { objects: root.join("objects"), tmp: root.join("tmp") }
    }

    pub fn create_dirs(&self) -> Result<(), StoreError> {
        for dir in [&self.objects, &self.tmp] {
            fs::create_dir_all(dir).map_err(StoreError::io("create directory", dir))?;
        }
        Ok(())
    }

    /// The path of the object with this digest.
    pub fn path(&self, sha256: &str) -> PathBuf {
        let (dir, rest) = sha256.split_at(2.min(sha256.len()));
        self.objects.join(dir).join(rest)
    }

    /// Copies `source` into a staging file, hashing as it goes; `progress` gets the bytes copied.
    pub fn stage_file(&self, source: &Path, progress: &mut dyn FnMut(u64)) -> Result<Staged, StoreError> {
        let mut input = File::open(source).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => StoreError::MissingFile { path: source.to_path_buf() },
            _ => StoreError::Io { op: "open", path: source.to_path_buf(), source: e },
        })?;
        if !input.metadata().map_err(StoreError::io("stat", source))?.is_file() {
            return Err(StoreError::MissingFile { path: source.to_path_buf() });
        }
        let path = self.tmp.join(unique_tmp_name());
        let mut out =
            OpenOptions::new().write(true).create_new(true).open(&path).map_err(StoreError::io("create", &path))?;
        let lock = out.try_clone().ok().filter(|f| f.try_lock().is_ok());
        let mut staged = Staged { path, sha256: String::new(), bytes: 0, kept: false, _lock: lock };
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = input.read(&mut buf).map_err(StoreError::io("read", source))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            out.write_all(&buf[..n]).map_err(StoreError::io("write", &staged.path))?;
            staged.bytes += n as u64;
            progress(n as u64);
        }
        out.sync_all().map_err(StoreError::io("fsync", &staged.path))?;
        staged.sha256 = hex::encode(hasher.finalize());
        Ok(staged)
    }

    /// Writes `bytes` into a staging file and fsyncs it.
    pub fn stage_bytes(&self, bytes: &[u8]) -> Result<Staged, StoreError> {
        let path = self.tmp.join(unique_tmp_name());
        let mut out =
            OpenOptions::new().write(true).create_new(true).open(&path).map_err(StoreError::io("create", &path))?;
        let lock = out.try_clone().ok().filter(|f| f.try_lock().is_ok());
        let staged = Staged {
            path,
            sha256: hex::encode(Sha256::digest(bytes)),
            bytes: bytes.len() as u64,
            kept: false,
            _lock: lock,
        };
        out.write_all(bytes).map_err(StoreError::io("write", &staged.path))?;
        out.sync_all().map_err(StoreError::io("fsync", &staged.path))?;
        Ok(staged)
    }

    /// Moves a staged file to its content address. If the object already exists the staged copy is dropped
    /// (same digest, same bytes). Returns whether a new object was stored.
    pub fn commit(&self, mut staged: Staged) -> Result<bool, StoreError> {
        let target = self.path(&staged.sha256);
        if target.is_file() {
            return Ok(false);
        }
        let dir = target.parent().unwrap_or(&self.objects).to_path_buf();
        fs::create_dir_all(&dir).map_err(StoreError::io("create directory", &dir))?;
        let mut perms = fs::metadata(&staged.path).map_err(StoreError::io("stat", &staged.path))?.permissions();
        perms.set_readonly(true);
        fs::set_permissions(&staged.path, perms).map_err(StoreError::io("set read-only", &staged.path))?;
        fs::rename(&staged.path, &target).map_err(StoreError::io("rename into the object store", &target))?;
        staged.kept = true;
        sync_dir(&dir)?;
        sync_dir(&self.objects)?;
        Ok(true)
    }

    /// Reads an object back, checking its digest.
    pub fn read_verified(&self, sha256: &str) -> Result<Vec<u8>, StoreError> {
        let path = self.path(sha256);
        let bytes = fs::read(&path)
            .map_err(|e| StoreError::DamagedObject { sha256: sha256.to_owned(), detail: e.to_string() })?;
        let actual = hex::encode(Sha256::digest(&bytes));
        if actual != sha256 {
            return Err(StoreError::DamagedObject {
                sha256: sha256.to_owned(),
                detail: format!("content hashes to {actual}"),
            });
        }
        Ok(bytes)
    }

    /// Re-hashes an object file without holding it in memory.
    pub fn hash_file(&self, sha256: &str) -> Result<Sha256Hex, StoreError> {
        let path = self.path(sha256);
        let mut file = File::open(&path)
            .map_err(|e| StoreError::DamagedObject { sha256: sha256.to_owned(), detail: e.to_string() })?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = file.read(&mut buf).map_err(StoreError::io("read", &path))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        Ok(hex::encode(hasher.finalize()))
    }

    /// Every object digest on disk.
    pub fn list(&self) -> Result<Vec<Sha256Hex>, StoreError> {
        let mut out = Vec::new();
        let Ok(dirs) = fs::read_dir(&self.objects) else { return Ok(out) };
        for dir in dirs.flatten() {
            let prefix = dir.file_name().to_string_lossy().into_owned();
            let Ok(files) = fs::read_dir(dir.path()) else { continue };
            for f in files.flatten() {
                out.push(format!("{prefix}{}", f.file_name().to_string_lossy()));
            }
        }
        out.sort();
        Ok(out)
    }

    /// Removes the staging files no live process holds (left by a process that was killed), past a grace period
    /// after their last write; returns them.
    pub fn clean_staging(&self) -> Vec<PathBuf> {
        let mut removed = Vec::new();
        for path in self.leftover_staging() {
            let quiet = fs::metadata(&path)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age >= STAGING_GRACE);
            if !quiet {
                continue;
            }
            let Ok(file) = OpenOptions::new().write(true).open(&path) else { continue };
            if file.try_lock().is_ok() && fs::remove_file(&path).is_ok() {
                removed.push(path);
            }
        }
        removed
    }

    /// Staging files on disk (of live processes, or of dead ones not yet removed).
    pub fn leftover_staging(&self) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> =
            fs::read_dir(&self.tmp).map(|d| d.flatten().map(|e| e.path()).collect()).unwrap_or_default();
        out.sort();
        out
    }
}
