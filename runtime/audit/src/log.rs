//! The log on disk: `log.bin` holds the entries, `checkpoints.jsonl` the signed tree heads.
//!
//! A record of `log.bin` is `u32 LE length | JSON entry | SHA-256(0x00 | JSON)`: the trailing leaf hash is both the
//! Merkle leaf and the record's checksum. Appends are group commits: every entry of a call is written, the file is
//! fsynced, then one checkpoint (size, root, time, Ed25519 signature) is appended to `checkpoints.jsonl` and fsynced;
//! only then does `append` return. An fsync error is fatal (the log refuses further appends), never retried.
//! On open, an incomplete or unreadable record after the last checkpoint is a torn write from a crash: it was never
//! acknowledged, so it is cut off. Anything wrong inside the checkpointed part is tampering: open refuses, and
//! `verify` names the first entry that differs.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use serde::{Deserialize, Serialize};

use crate::entry::Entry;
use crate::merkle::{self, Frontier, Hash};

/// The log's records, in its folder.
pub const LOG_FILE: &str = "log.bin";
const CHECKPOINT_FILE: &str = "checkpoints.jsonl";
/// Held exclusively by the one [`AuditLog`] open for appending (any process), shared by verifiers.
const LOCK_FILE: &str = "lock";
/// The right edge of the tree at the last checkpoint, so that opening reads only what came after it. A cache: not
/// signed and not fsynced; used only when its root is the last signed checkpoint's root.
const FRONTIER_FILE: &str = "frontier.json";

/// A saved frontier that matched the last checkpoint: the frontier, the log offset it ends at, the last leaf, and
/// the checkpoint.
type SavedFrontier = (Frontier, u64, Option<Hash>, Checkpoint);

/// What `frontier.json` holds.
#[derive(Debug, Serialize, Deserialize)]
struct FrontierCache {
    size: u64,
    /// Byte length of `log.bin` holding exactly `size` records.
    offset: u64,
    /// The last record's leaf hash (hex): the bytes just before `offset`.
    last_leaf: String,
    peaks: Vec<(u32, String)>,
}
/// Largest entry accepted (JSON bytes).
pub const MAX_ENTRY_BYTES: usize = 1 << 20;

/// Errors of the audit log.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("audit log {path}: {op}: {source}")]
    Io { op: &'static str, path: PathBuf, source: std::io::Error },
    #[error("audit log {path}: fsync failed ({source}); the log refuses further appends until the zone is reopened")]
    Sync { path: PathBuf, source: std::io::Error },
    #[error("the audit log is closed after an earlier fsync failure")]
    Poisoned,
    #[error("audit log {path}: {problem}")]
    Tampered { path: PathBuf, problem: Problem },
    #[error("an audit entry of {0} bytes is larger than {MAX_ENTRY_BYTES}")]
    EntryTooLarge(usize),
    #[error("audit entry could not be encoded: {0}")]
    Encode(String),
}

/// What `verify` found wrong, pointing at the first place it happened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    #[error("entry {index} (byte {offset}) was changed: its bytes no longer match its hash")]
    Changed { index: u64, offset: u64 },
    #[error(
        "entry {index} (byte {offset}) is out of place: it says it is entry {claimed} (inserted, deleted or reordered)"
    )]
    OutOfPlace { index: u64, offset: u64, claimed: u64 },
    #[error("entry {index} (byte {offset}) is not a readable record: {detail}")]
    Unreadable { index: u64, offset: u64, detail: String },
    #[error("the log holds {entries} entries but checkpoint {checkpoint} signed {size}: it was truncated")]
    Truncated { entries: u64, checkpoint: usize, size: u64 },
    #[error(
        "checkpoint {checkpoint} (size {size}) does not match the log's root at that size: entries before {size} were changed"
    )]
    RootMismatch { checkpoint: usize, size: u64 },
    #[error("checkpoint {checkpoint} has a bad signature (not by this zone's key, or altered)")]
    BadSignature { checkpoint: usize },
    #[error("checkpoint {checkpoint} is unreadable: {detail}")]
    BadCheckpoint { checkpoint: usize, detail: String },
    #[error("checkpoint {checkpoint} (size {size}) is smaller than the one before it")]
    CheckpointsOutOfOrder { checkpoint: usize, size: u64 },
}

/// A signed tree head.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub log_id: String,
    pub size: u64,
    /// Hex SHA-256 root.
    pub root: String,
    pub time: String,
    /// Hex Ed25519 signature over [`Checkpoint::message`].
    pub signature: String,
}

impl Checkpoint {
    /// The signed bytes: a domain-separated text, one field per line.
    pub fn message(log_id: &str, size: u64, root: &str, time: &str) -> Vec<u8> {
        format!("cleanroom-audit-checkpoint/v1\n{log_id}\n{size}\n{root}\n{time}\n").into_bytes()
    }

    /// Whether the signature is by `public_key` (and written in the one canonical form: lowercase hex).
    pub fn signature_valid(&self, public_key: &[u8]) -> bool {
        let canonical = |h: &str| h.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !canonical(&self.signature) || !canonical(&self.root) {
            return false;
        }
        let Ok(signature) = hex::decode(&self.signature) else {
            return false;
        };
        let message = Checkpoint::message(&self.log_id, self.size, &self.root, &self.time);
        UnparsedPublicKey::new(&ED25519, public_key).verify(&message, &signature).is_ok()
    }
}

/// What `verify` read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    pub entries: u64,
    pub checkpoints: usize,
    pub root: String,
    /// Entries after the last checkpoint (a crash between the log's fsync and the checkpoint's).
    pub unsigned_tail: u64,
}

/// One record of `log.bin`.
struct Record<'a> {
    offset: u64,
    payload: &'a [u8],
    stored_hash: Hash,
}

/// The complete records of `log.bin`, in order, read in place; [`RecordIter::end`] is where complete records end
/// (a torn tail starts there).
struct RecordIter<'a> {
    bytes: &'a [u8],
    offset: usize,
}

impl<'a> RecordIter<'a> {
    fn new(bytes: &'a [u8]) -> RecordIter<'a> {
        RecordIter { bytes, offset: 0 }
    }

    /// Where the complete records read so far end.
    fn end(&self) -> u64 {
        self.offset as u64
    }
}

impl<'a> Iterator for RecordIter<'a> {
    type Item = Record<'a>;

    fn next(&mut self) -> Option<Record<'a>> {
        let offset = self.offset;
        let len = self.bytes.get(offset..offset + 4)?;
        let len = u32::from_le_bytes([len[0], len[1], len[2], len[3]]) as usize;
        let end = offset + 4 + len + 32;
        if len > MAX_ENTRY_BYTES || end > self.bytes.len() {
            return None;
        }
        let payload = &self.bytes[offset + 4..offset + 4 + len];
        let mut stored_hash = [0u8; 32];
        stored_hash.copy_from_slice(&self.bytes[offset + 4 + len..end]);
        self.offset = end;
        Some(Record { offset: offset as u64, payload, stored_hash })
    }
}

/// Splits `log.bin` into complete records; returns them and the offset where complete records end (a torn tail
/// starts there).
fn records(bytes: &[u8]) -> (Vec<Record<'_>>, u64) {
    let mut iter = RecordIter::new(bytes);
    let out: Vec<Record<'_>> = iter.by_ref().collect();
    (out, iter.end())
}

/// Parses `checkpoints.jsonl`; returns each line's checkpoint (or why it is unreadable) and the length of the
/// complete lines (a torn last line is ignored: it was never acknowledged).
fn parse_checkpoints(bytes: &[u8]) -> (Vec<Result<Checkpoint, String>>, u64) {
    let complete = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |p| p + 1);
    let lines = bytes[..complete].split(|b| *b == b'\n').filter(|l| !l.is_empty());
    (lines.map(|l| serde_json::from_slice::<Checkpoint>(l).map_err(|e| e.to_string())).collect(), complete as u64)
}

/// Every complete record as (payload, stored leaf hash), and where complete records end.
pub(crate) fn split_records(bytes: &[u8]) -> (Vec<(&[u8], Hash)>, u64) {
    let (recs, end) = records(bytes);
    (recs.into_iter().map(|r| (r.payload, r.stored_hash)).collect(), end)
}

/// The readable checkpoints of `checkpoints.jsonl`, in order.
pub(crate) fn signed_checkpoints(bytes: &[u8]) -> Vec<Checkpoint> {
    parse_checkpoints(bytes).0.into_iter().filter_map(Result::ok).collect()
}

/// The sequence number an entry's JSON starts with (`{"seq":N,` — how the log writes every entry), without
/// parsing the rest; `None` for any other shape (the full parse in pass 3 then decides).
fn leading_seq(payload: &[u8]) -> Option<u64> {
    let rest = payload.strip_prefix(br#"{"seq":"#)?;
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || digits > 19 || rest.get(digits) != Some(&b',') {
        return None;
    }
    std::str::from_utf8(&rest[..digits]).ok()?.parse().ok()
}

/// The last complete, readable checkpoint of `checkpoints.jsonl`, read from the file's end (the file grows by a line
/// per append; opening must not read all of it). `None` when there is none or the last line is unreadable.
fn last_checkpoint_line(file: &File, path: &Path) -> Result<Option<Checkpoint>, AuditError> {
    let io = |op| {
        let path = path.to_path_buf();
        move |source| AuditError::Io { op, path, source }
    };
    let mut file = file.try_clone().map_err(io("open"))?;
    let len = file.metadata().map_err(io("stat"))?.len();
    let start = len.saturating_sub(16 * 1024);
    file.seek(SeekFrom::Start(start)).map_err(io("seek"))?;
    let mut tail = Vec::new();
    Read::read_to_end(&mut file, &mut tail).map_err(io("read"))?;
    // Only a file that ends with a complete line: a torn checkpoint line sends open the slow way, which repairs it.
    if tail.last() != Some(&b'\n') {
        return Ok(None);
    }
    let body = &tail[..tail.len() - 1];
    let line_start = body.iter().rposition(|b| *b == b'\n').map(|p| p + 1);
    let line = match line_start {
        Some(p) => &body[p..],
        None if start == 0 => body,
        None => return Ok(None),
    };
    Ok(serde_json::from_slice(line).ok())
}

/// Takes the log's lock, waiting for it: exclusive for appending, shared for reading. `None` when there is no log
/// folder to read (a read never creates it). Locks are per open file: one process must not open two logs of
/// the same folder at once.
fn lock(dir: &Path, exclusive: bool) -> Result<Option<File>, AuditError> {
    if !exclusive && !dir.exists() {
        return Ok(None);
    }
    let path = dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|source| AuditError::Io { op: "open", path: path.clone(), source })?;
    if exclusive { file.lock() } else { file.lock_shared() }.map_err(|source| AuditError::Io {
        op: "lock",
        path,
        source,
    })?;
    Ok(Some(file))
}

fn read_file(path: &Path) -> Result<Vec<u8>, AuditError> {
    match fs::read(path) {
        Ok(b) => Ok(b),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(source) => Err(AuditError::Io { op: "read", path: path.to_path_buf(), source }),
    }
}

fn sync(file: &File, path: &Path) -> Result<(), AuditError> {
    file.sync_all().map_err(|source| AuditError::Sync { path: path.to_path_buf(), source })
}

fn sync_dir(dir: &Path) -> Result<(), AuditError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(|source| AuditError::Sync { path: dir.to_path_buf(), source })
}

/// Checks every record and checkpoint of the log in `dir` against `public_key`: the first problem, or a report.
///
/// It takes the log's lock shared, so no appender is between its write and its checkpoint while it reads; it
/// waits for an [`AuditLog`] open in any process (this one included) to be dropped.
pub fn verify(dir: &Path, log_id: &str, public_key: &[u8]) -> Result<VerifyReport, AuditError> {
    let _lock = lock(dir, false)?;
    verify_unlocked(dir, log_id, public_key)
}

fn verify_unlocked(dir: &Path, log_id: &str, public_key: &[u8]) -> Result<VerifyReport, AuditError> {
    let log_path = dir.join(LOG_FILE);
    let log = read_file(&log_path)?;
    let cps = read_file(&dir.join(CHECKPOINT_FILE))?;
    verify_bytes(&log, &cps, log_id, public_key).map_err(|problem| AuditError::Tampered { path: log_path, problem })
}

/// [`verify`] on the bytes of `log.bin` and `checkpoints.jsonl` (an evidence bundle, or a test's copy).
pub fn verify_bytes(log: &[u8], cps: &[u8], log_id: &str, public_key: &[u8]) -> Result<VerifyReport, Problem> {
    let (checkpoints, cp_complete) = parse_checkpoints(cps);
    if cp_complete < cps.len() as u64 {
        return Err(Problem::BadCheckpoint {
            checkpoint: checkpoints.len(),
            detail: "a partial last line (a crash while signing: reopen the zone to repair it)".into(),
        });
    }
    let mut signed: Vec<Checkpoint> = Vec::with_capacity(checkpoints.len());
    for (i, c) in checkpoints.into_iter().enumerate() {
        let c = c.map_err(|detail| Problem::BadCheckpoint { checkpoint: i, detail })?;
        if c.log_id != log_id {
            return Err(Problem::BadSignature { checkpoint: i });
        }
        if signed.last().is_some_and(|p| p.size > c.size) {
            return Err(Problem::CheckpointsOutOfOrder { checkpoint: i, size: c.size });
        }
        signed.push(c);
    }
    let last_signed = signed.last().map_or(0, |c| c.size);
    let mut frontier = Frontier::default();
    let mut next = 0;
    let check_heads = |frontier: &Frontier, next: &mut usize| -> Result<(), Problem> {
        while let Some(c) = signed.get(*next) {
            if c.size != frontier.size() {
                break;
            }
            if c.root != hex::encode(frontier.root()) {
                return Err(Problem::RootMismatch { checkpoint: *next, size: c.size });
            }
            *next += 1;
        }
        Ok(())
    };
    check_heads(&frontier, &mut next)?;
    let mut unusual = Vec::new();
    // Pass 1, cheap: every record's bytes against its hash, its position against the sequence number it starts
    // with, and every signed root. Almost any change stops here.
    let mut iter = RecordIter::new(log);
    for (index, record) in iter.by_ref().enumerate() {
        let hash = merkle::leaf_hash(record.payload);
        if hash != record.stored_hash {
            return Err(Problem::Changed { index: index as u64, offset: record.offset });
        }
        match leading_seq(record.payload) {
            Some(claimed) if claimed != index as u64 => {
                return Err(Problem::OutOfPlace { index: index as u64, offset: record.offset, claimed });
            }
            Some(_) => {}
            None => unusual.push((index as u64, record)),
        }
        frontier.push(hash);
        check_heads(&frontier, &mut next)?;
    }
    let (record_count, complete) = (frontier.size(), iter.end());
    if complete < log.len() as u64 && record_count < last_signed {
        let index = record_count;
        return Err(Problem::Unreadable { index, offset: complete, detail: "the record is cut short".into() });
    }
    if next < signed.len()
        && let Some(last) = signed.last()
    {
        return Err(Problem::Truncated { entries: frontier.size(), checkpoint: signed.len() - 1, size: last.size });
    }
    if complete < log.len() as u64 {
        let index = record_count;
        return Err(Problem::Unreadable {
            index,
            offset: complete,
            detail: "trailing bytes that are not a record".into(),
        });
    }
    // Pass 2: the signatures (the roots they sign were compared in pass 1).
    for (i, c) in signed.iter().enumerate() {
        if !c.signature_valid(public_key) {
            return Err(Problem::BadSignature { checkpoint: i });
        }
    }
    // Pass 3: an entry that does not start the way the log writes entries is parsed in full: it must still be an
    // entry, in its place. (The others were placed in pass 1; their bytes are fixed by the signed roots.)
    for (index, record) in unusual {
        let entry: Entry = serde_json::from_slice(record.payload).map_err(|e| Problem::Unreadable {
            index,
            offset: record.offset,
            detail: e.to_string(),
        })?;
        if entry.seq != index {
            return Err(Problem::OutOfPlace { index, offset: record.offset, claimed: entry.seq });
        }
    }
    Ok(VerifyReport {
        entries: frontier.size(),
        checkpoints: signed.len(),
        root: hex::encode(frontier.root()),
        unsigned_tail: frontier.size() - last_signed,
    })
}

/// An open audit log, ready to append.
#[derive(Debug)]
pub struct AuditLog {
    dir: PathBuf,
    log_id: String,
    log: File,
    checkpoints: File,
    /// Length of `log.bin` (all of it is complete records).
    end: u64,
    /// The last record's leaf hash (saved with the frontier, so a fast open can check where records end).
    last_leaf: Option<Hash>,
    frontier: Frontier,
    last_checkpoint: Option<Checkpoint>,
    poisoned: bool,
    /// The exclusive lock on the log (released on drop): one appender at a time, across processes.
    _lock: Option<File>,
}

/// What opening found and mended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpenReport {
    /// Bytes of a torn last record (never acknowledged) cut off the log.
    pub torn_bytes: u64,
    /// Whether a new checkpoint was signed for entries a crash left unsigned.
    pub resigned: bool,
    /// Entries read and checked before the log was ready: only those after the saved frontier when it matched the
    /// last signed checkpoint, every entry otherwise.
    pub scanned: u64,
}

impl AuditLog {
    /// Opens the log in `dir` (creating an empty one), verifying it fully; cuts a torn tail; signs a checkpoint if
    /// the last entries are unsigned.
    pub fn open(
        dir: &Path,
        log_id: &str,
        key: &Ed25519KeyPair,
        now: &str,
    ) -> Result<(AuditLog, OpenReport), AuditError> {
        let io = |op, path: &Path| {
            let path = path.to_path_buf();
            move |source| AuditError::Io { op, path, source }
        };
        fs::create_dir_all(dir).map_err(io("create directory", dir))?;
        // Appends from two processes must never interleave: everything below happens under the lock.
        let lock_file = lock(dir, true)?;
        let log_path = dir.join(LOG_FILE);
        let cp_path = dir.join(CHECKPOINT_FILE);
        let mut log =
            OpenOptions::new().create(true).read(true).append(true).open(&log_path).map_err(io("open", &log_path))?;
        let checkpoints =
            OpenOptions::new().create(true).read(true).append(true).open(&cp_path).map_err(io("open", &cp_path))?;
        sync_dir(dir)?;
        let mut report = OpenReport::default();
        let public_key = key.public_key().as_ref().to_vec();

        // The fast way: the frontier saved at the last checkpoint, and only the records after it.
        if let Some((frontier, offset, last_leaf, last_checkpoint)) =
            Self::saved_frontier(dir, log_id, &public_key, &checkpoints)?
        {
            let mut audit = AuditLog {
                dir: dir.to_path_buf(),
                log_id: log_id.to_owned(),
                log,
                checkpoints,
                end: offset,
                last_leaf,
                frontier,
                last_checkpoint: Some(last_checkpoint),
                poisoned: false,
                _lock: lock_file,
            };
            audit.read_tail(key, now, &mut report)?;
            return Ok((audit, report));
        }

        // Cut torn tails first (they were never acknowledged), then verify what remains.
        let bytes = read_file(&log_path)?;
        let cp_bytes = read_file(&cp_path)?;
        let (cps, cp_complete) = parse_checkpoints(&cp_bytes);
        let last_signed = cps.iter().rev().find_map(|c| c.as_ref().ok()).map_or(0, |c| c.size);
        let (recs, complete) = records(&bytes);
        let mut keep = recs.len();
        // A trailing record with a bad hash beyond the last checkpoint is a torn write too.
        while keep > 0
            && keep as u64 > last_signed
            && merkle::leaf_hash(recs[keep - 1].payload) != recs[keep - 1].stored_hash
        {
            keep -= 1;
        }
        let cut_at = if keep < recs.len() { recs[keep].offset } else { complete };
        let total = bytes.len() as u64;
        if cut_at < total && (keep as u64) >= last_signed {
            log.set_len(cut_at).map_err(io("truncate", &log_path))?;
            sync(&log, &log_path)?;
            report.torn_bytes = total - cut_at;
        }
        if cp_complete < cp_bytes.len() as u64 {
            checkpoints.set_len(cp_complete).map_err(io("truncate", &cp_path))?;
            sync(&checkpoints, &cp_path)?;
        }
        log.seek(SeekFrom::End(0)).map_err(io("seek", &log_path))?;
        let verified = verify_unlocked(dir, log_id, &public_key)?;
        report.scanned = verified.entries;

        let bytes = read_file(&log_path)?;
        let mut frontier = Frontier::default();
        let mut last_leaf = None;
        for r in RecordIter::new(&bytes) {
            frontier.push(r.stored_hash);
            last_leaf = Some(r.stored_hash);
        }
        let last_checkpoint = parse_checkpoints(&read_file(&cp_path)?).0.into_iter().rev().find_map(Result::ok);
        let mut audit = AuditLog {
            dir: dir.to_path_buf(),
            log_id: log_id.to_owned(),
            log,
            checkpoints,
            end: bytes.len() as u64,
            last_leaf,
            frontier,
            last_checkpoint,
            poisoned: false,
            _lock: lock_file,
        };
        if verified.unsigned_tail > 0 {
            audit.checkpoint(key, now)?;
            report.resigned = true;
        } else {
            audit.save_frontier();
        }
        Ok((audit, report))
    }

    /// The saved frontier, if it is the one the last signed checkpoint signs and it ends on a record boundary of
    /// `log.bin`; anything else (no file, stale, damaged, foreign) sends `open` the slow way.
    fn saved_frontier(
        dir: &Path,
        log_id: &str,
        public_key: &[u8],
        checkpoints: &File,
    ) -> Result<Option<SavedFrontier>, AuditError> {
        let Ok(text) = fs::read(dir.join(FRONTIER_FILE)) else {
            return Ok(None);
        };
        let Ok(cache) = serde_json::from_slice::<FrontierCache>(&text) else {
            return Ok(None);
        };
        let Some(last) = last_checkpoint_line(checkpoints, &dir.join(CHECKPOINT_FILE))? else {
            return Ok(None);
        };
        let peaks: Option<Vec<(u32, Hash)>> = cache
            .peaks
            .iter()
            .map(|(h, hex_root)| {
                hex::decode(hex_root).ok().and_then(|b| Hash::try_from(b.as_slice()).ok()).map(|r| (*h, r))
            })
            .collect();
        let Some(frontier) = peaks.and_then(|p| Frontier::from_peaks(cache.size, p)) else {
            return Ok(None);
        };
        let signed = last.log_id == log_id
            && last.size == cache.size
            && last.root == hex::encode(frontier.root())
            && last.signature_valid(public_key);
        if !signed {
            return Ok(None);
        }
        // The saved offset must end with the last record's leaf hash.
        let log_path = dir.join(LOG_FILE);
        let io = |op| {
            let path = log_path.clone();
            move |source| AuditError::Io { op, path, source }
        };
        let mut file = File::open(&log_path).map_err(io("open"))?;
        let len = file.metadata().map_err(io("stat"))?.len();
        if cache.offset > len || (cache.size > 0 && cache.offset < 36) || (cache.size == 0 && cache.offset != 0) {
            return Ok(None);
        }
        let mut last_leaf = None;
        if cache.size > 0 {
            let mut leaf = [0u8; 32];
            file.seek(SeekFrom::Start(cache.offset - 32))
                .and_then(|_| Read::read_exact(&mut file, &mut leaf))
                .map_err(io("read"))?;
            if hex::encode(leaf) != cache.last_leaf {
                return Ok(None);
            }
            last_leaf = Some(leaf);
        }
        Ok(Some((frontier, cache.offset, last_leaf, last)))
    }

    /// After a fast open: the records written after the saved frontier. Complete ones (a crash between the log's
    /// fsync and the checkpoint's) are signed now; a torn or garbled tail (never acknowledged) is cut off.
    fn read_tail(&mut self, key: &Ed25519KeyPair, now: &str, report: &mut OpenReport) -> Result<(), AuditError> {
        let log_path = self.dir.join(LOG_FILE);
        let io = |op| {
            let path = log_path.clone();
            move |source| AuditError::Io { op, path, source }
        };
        let mut tail = Vec::new();
        self.log.seek(SeekFrom::Start(self.end)).map_err(io("seek"))?;
        Read::read_to_end(&mut self.log, &mut tail).map_err(io("read"))?;
        let mut iter = RecordIter::new(&tail);
        let mut added = 0u64;
        for record in iter.by_ref() {
            let expected = self.frontier.size();
            if merkle::leaf_hash(record.payload) != record.stored_hash || leading_seq(record.payload) != Some(expected)
            {
                iter.offset = record.offset as usize;
                break;
            }
            self.frontier.push(record.stored_hash);
            self.last_leaf = Some(record.stored_hash);
            added += 1;
        }
        report.scanned = added;
        let good = iter.end();
        if good < tail.len() as u64 {
            self.log.set_len(self.end + good).map_err(io("truncate"))?;
            sync(&self.log, &log_path)?;
            report.torn_bytes = tail.len() as u64 - good;
        }
        self.end += good;
        self.log.seek(SeekFrom::End(0)).map_err(io("seek"))?;
        if added > 0 {
            self.checkpoint(key, now)?;
            report.resigned = true;
        }
        Ok(())
    }

    /// Saves the frontier for the next open (best effort: a missing or stale file only makes that open slower).
    fn save_frontier(&self) {
        let cache = FrontierCache {
            size: self.frontier.size(),
            offset: self.end,
            last_leaf: self.last_leaf.map(hex::encode).unwrap_or_default(),
            peaks: self.frontier.peaks().iter().map(|(h, r)| (*h, hex::encode(r))).collect(),
        };
        let Ok(text) = serde_json::to_vec(&cache) else {
            return;
        };
        let tmp = self.dir.join("frontier.json.partial");
        if fs::write(&tmp, text).is_ok() {
            let _ = fs::rename(&tmp, self.dir.join(FRONTIER_FILE));
        }
    }

    /// Every leaf hash, read from `log.bin` (for proofs).
    fn leaves(&self) -> Option<Vec<Hash>> {
        let bytes = read_file(&self.dir.join(LOG_FILE)).ok()?;
        Some(RecordIter::new(&bytes).map(|r| r.stored_hash).collect())
    }

    pub fn len(&self) -> u64 {
        self.frontier.size()
    }

    /// Where the log's complete records end, in bytes: with [`AuditLog::len`], a place to read on from later.
    pub fn end_offset(&self) -> u64 {
        self.end
    }

    /// The entries from `seq` on, reading from byte `offset`, which a caller saved (with `seq`) from
    /// [`AuditLog::end_offset`] and [`AuditLog::len`]; when the record there is not entry `seq`, every entry is read
    /// and those before `seq` skipped.
    pub fn entries_from(&self, seq: u64, offset: u64) -> Result<Vec<Entry>, AuditError> {
        let log_path = self.dir.join(LOG_FILE);
        if seq >= self.len() {
            return Ok(Vec::new());
        }
        let io = |op| {
            let path = log_path.clone();
            move |source| AuditError::Io { op, path, source }
        };
        let start = offset.min(self.end);
        let mut file = File::open(&log_path).map_err(io("open"))?;
        file.seek(SeekFrom::Start(start)).map_err(io("seek"))?;
        let mut tail = Vec::new();
        file.take(self.end - start).read_to_end(&mut tail).map_err(io("read"))?;
        let starts_there = RecordIter::new(&tail).next().is_some_and(|r| leading_seq(r.payload) == Some(seq));
        let bytes = if starts_there { tail } else { read_file(&log_path)? };
        let mut out = Vec::new();
        for (i, r) in RecordIter::new(&bytes).enumerate() {
            if !starts_there && leading_seq(r.payload).is_some_and(|s| s < seq) {
                continue;
            }
            let entry: Entry = serde_json::from_slice(r.payload).map_err(|e| AuditError::Tampered {
                path: log_path.clone(),
                problem: Problem::Unreadable { index: i as u64, offset: r.offset, detail: e.to_string() },
            })?;
            out.push(entry);
        }
        Ok(out)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn root(&self) -> Hash {
        self.frontier.root()
    }

    pub fn last_checkpoint(&self) -> Option<&Checkpoint> {
        self.last_checkpoint.as_ref()
    }

    /// Appends entries as one group commit; returns the checkpoint that covers them. Each entry's `seq` is set.
    pub fn append(&mut self, entries: &mut [Entry], key: &Ed25519KeyPair, now: &str) -> Result<Checkpoint, AuditError> {
        if self.poisoned {
            return Err(AuditError::Poisoned);
        }
        let log_path = self.dir.join(LOG_FILE);
        let mut buffer = Vec::new();
        let mut hashes = Vec::with_capacity(entries.len());
        for (i, entry) in entries.iter_mut().enumerate() {
            entry.seq = self.len() + i as u64;
            let payload = serde_json::to_vec(entry).map_err(|e| AuditError::Encode(e.to_string()))?;
            if payload.len() > MAX_ENTRY_BYTES {
                return Err(AuditError::EntryTooLarge(payload.len()));
            }
            let hash = merkle::leaf_hash(&payload);
            buffer.extend_from_slice(&(payload.len() as u32).to_le_bytes());
            buffer.extend_from_slice(&payload);
            buffer.extend_from_slice(&hash);
            hashes.push(hash);
        }
        if let Err(source) = self.log.write_all(&buffer) {
            self.poisoned = true;
            return Err(AuditError::Io { op: "append", path: log_path, source });
        }
        if let Err(e) = sync(&self.log, &log_path) {
            self.poisoned = true;
            return Err(e);
        }
        for hash in hashes {
            self.frontier.push(hash);
            self.last_leaf = Some(hash);
        }
        self.end += buffer.len() as u64;
        self.checkpoint(key, now)
    }

    /// Signs and appends a checkpoint of the current tree head.
    fn checkpoint(&mut self, key: &Ed25519KeyPair, now: &str) -> Result<Checkpoint, AuditError> {
        let cp_path = self.dir.join(CHECKPOINT_FILE);
        let root = hex::encode(self.frontier.root());
        let message = Checkpoint::message(&self.log_id, self.len(), &root, now);
        let checkpoint = Checkpoint {
            log_id: self.log_id.clone(),
            size: self.len(),
            root,
            time: now.to_owned(),
            signature: hex::encode(key.sign(&message).as_ref()),
        };
        let mut line = serde_json::to_vec(&checkpoint).map_err(|e| AuditError::Encode(e.to_string()))?;
        line.push(b'\n');
        if let Err(source) = self.checkpoints.write_all(&line) {
            self.poisoned = true;
            return Err(AuditError::Io { op: "append", path: cp_path, source });
        }
        if let Err(e) = sync(&self.checkpoints, &cp_path) {
            self.poisoned = true;
            return Err(e);
        }
        self.last_checkpoint = Some(checkpoint.clone());
        self.save_frontier();
        Ok(checkpoint)
    }

    /// Every entry, in order (read back from disk).
    pub fn entries(&self) -> Result<Vec<Entry>, AuditError> {
        let log_path = self.dir.join(LOG_FILE);
        let bytes = read_file(&log_path)?;
        records(&bytes)
            .0
            .iter()
            .enumerate()
            .map(|(i, r)| {
                serde_json::from_slice(r.payload).map_err(|e| AuditError::Tampered {
                    path: log_path.clone(),
                    problem: Problem::Unreadable { index: i as u64, offset: r.offset, detail: e.to_string() },
                })
            })
            .collect()
    }

    /// The bytes of `log.bin` and `checkpoints.jsonl`, for an evidence bundle.
    pub fn raw(&self) -> Result<(Vec<u8>, Vec<u8>), AuditError> {
        Ok((read_file(&self.dir.join(LOG_FILE))?, read_file(&self.dir.join(CHECKPOINT_FILE))?))
    }

    /// The audit path of entry `index` in the tree of `size` entries.
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Option<Vec<Hash>> {
        let leaves = self.leaves()?;
        let size = usize::try_from(size).ok().filter(|s| *s <= leaves.len())?;
        merkle::inclusion_proof(&leaves[..size], usize::try_from(index).ok()?)
    }

    /// The consistency proof between the trees of `old` and `new` entries.
    pub fn consistency_proof(&self, old: u64, new: u64) -> Option<Vec<Hash>> {
        let leaves = self.leaves()?;
        let new = usize::try_from(new).ok().filter(|s| *s <= leaves.len())?;
        merkle::consistency_proof(&leaves[..new], usize::try_from(old).ok()?)
    }

    /// The leaf hash of entry `index`.
    pub fn leaf(&self, index: u64) -> Option<Hash> {
        self.leaves()?.get(usize::try_from(index).ok()?).copied()
    }

    /// The tree head of the first `size` entries.
    pub fn root_at(&self, size: u64) -> Option<Hash> {
        let leaves = self.leaves()?;
        let size = usize::try_from(size).ok().filter(|s| *s <= leaves.len())?;
        Some(merkle::root(&leaves[..size]))
    }
}

#[cfg(test)]
mod tests {
    //! A failed write or fsync closes the log for good: nothing is retried, and what reached the disk still verifies.

    use ring::rand::SystemRandom;

    use super::*;
    use crate::Outcome;

    fn key() -> Ed25519KeyPair {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).expect("keygen");
        Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).expect("key")
    }

    fn entries(n: u64) -> Vec<Entry> {
        (0..n)
            .map(|i| {
                Entry::new("2026-11-27T09:00:00Z", "dsb", "authority", "grant.create", Outcome::Ok)
                    .object(format!("grant:{i}"))
            })
            .collect()
    }

    /// A handle on `path` that cannot be written: every write fails with an I/O error, as a dying disk would.
    fn unwritable(path: &Path) -> File {
        File::open(path).expect("read-only handle")
    }

    #[test]
    fn a_failed_record_write_poisons_the_log_and_nothing_more_is_written() {
        let dir = tempfile::tempdir().expect("tmp");
        let key = key();
        let (mut log, _) = AuditLog::open(dir.path(), "zone-test", &key, "t0").expect("open");
        log.append(&mut entries(3), &key, "t1").expect("append");
        let before = log.raw().expect("raw");

        log.log = unwritable(&dir.path().join(LOG_FILE));
        let failed = log.append(&mut entries(2), &key, "t2");
        assert!(matches!(failed, Err(AuditError::Io { op: "append", .. })), "{failed:?}");
        // Never retried: even with a good handle again, this log object refuses to append.
        log.log = OpenOptions::new().append(true).open(dir.path().join(LOG_FILE)).expect("reopen handle");
        assert!(matches!(log.append(&mut entries(1), &key, "t3"), Err(AuditError::Poisoned)));
        assert_eq!(log.raw().expect("raw"), before, "a poisoned log writes nothing");
        drop(log);

        let (log, report) = AuditLog::open(dir.path(), "zone-test", &key, "t4").expect("reopen");
        assert_eq!(log.len(), 3);
        assert_eq!(report.torn_bytes, 0);
        drop(log); // verify takes the log's lock shared
        verify(dir.path(), "zone-test", key.public_key().as_ref()).expect("verifies");
    }

    #[test]
    fn a_failed_checkpoint_write_poisons_the_log_and_reopening_signs_what_reached_the_disk() {
        let dir = tempfile::tempdir().expect("tmp");
        let key = key();
        let (mut log, _) = AuditLog::open(dir.path(), "zone-test", &key, "t0").expect("open");
        log.append(&mut entries(3), &key, "t1").expect("append");

        log.checkpoints = unwritable(&dir.path().join(CHECKPOINT_FILE));
        let failed = log.append(&mut entries(2), &key, "t2");
        assert!(matches!(failed, Err(AuditError::Io { op: "append", .. })), "{failed:?}");
        assert!(matches!(log.append(&mut entries(1), &key, "t3"), Err(AuditError::Poisoned)));
        assert_eq!(log.last_checkpoint().map(|c| c.size), Some(3), "the failed group was never signed");
        drop(log);

        // The two records were written and fsynced before the checkpoint failed; reopening signs them.
        let (log, report) = AuditLog::open(dir.path(), "zone-test", &key, "t4").expect("reopen");
        assert_eq!(log.len(), 5);
        assert!(report.resigned);
        drop(log);
        let verified = verify(dir.path(), "zone-test", key.public_key().as_ref()).expect("verifies");
        assert_eq!(verified.entries, 5);
    }
}
