//! Evidence bundles: the log taken out of the zone so that an inspector can check it offline with nothing but
//! the bundle (and, ideally, the zone's public key obtained separately).
//!
//! A **full** bundle holds every entry (its exact bytes and leaf hash), every signed checkpoint, and a consistency
//! proof between each pair of consecutive checkpoints: a verifier who kept an older checkpoint can check that the
//! newer log extends it without rereading the entries. A **receipt** holds one entry, the last checkpoint and the
//! entry's inclusion proof: it proves that one action is in the signed log without showing any other entry.

use serde::{Deserialize, Serialize};

use crate::log::{Checkpoint, Problem, verify_bytes};
use crate::merkle::{self, Hash};

/// The format tag of a bundle.
pub const BUNDLE_FORMAT: &str = "cleanroom-audit-bundle/v1";

/// One entry: its exact JSON bytes (as text) and its stored leaf hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleEntry {
    pub leaf: String,
    pub entry: String,
}

/// A consistency proof between two signed tree heads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsistencyProof {
    pub old_size: u64,
    pub new_size: u64,
    pub path: Vec<String>,
}

/// An inclusion proof of entry `index` in the tree of `size` entries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InclusionProof {
    pub index: u64,
    pub size: u64,
    pub path: Vec<String>,
}

/// An evidence bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bundle {
    pub format: String,
    pub log_id: String,
    /// Hex Ed25519 public key the checkpoints are signed with.
    pub public_key: String,
    pub exported_at: String,
    /// Index of `entries[0]` in the log (0 for a full bundle).
    pub first_index: u64,
    pub entries: Vec<BundleEntry>,
    pub checkpoints: Vec<Checkpoint>,
    #[serde(default)]
    pub consistency: Vec<ConsistencyProof>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inclusion: Option<InclusionProof>,
}

/// Why a bundle does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BundleError {
    #[error("not an evidence bundle: {0}")]
    Format(String),
    #[error("the bundle is signed by key {bundle}, not by the trusted key {trusted}")]
    KeyMismatch { bundle: String, trusted: String },
    #[error("{0}")]
    Log(Problem),
    #[error("{0}")]
    Proof(String),
}

/// What a bundle proved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct BundleReport {
    /// `full` or `receipt`.
    pub kind: String,
    pub log_id: String,
    pub public_key: String,
    pub entries: u64,
    pub checkpoints: usize,
    /// Size and root of the last signed checkpoint.
    pub size: u64,
    pub root: String,
    pub consistency_proofs: usize,
    pub inclusion_proofs: usize,
}

fn hex_hash(text: &str, what: &str) -> Result<Hash, BundleError> {
    let canonical = text.len() == 64 && text.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    let bytes = hex::decode(text).ok().filter(|_| canonical);
    bytes
        .and_then(|b| <Hash>::try_from(b.as_slice()).ok())
        .ok_or_else(|| BundleError::Format(format!("{what} `{text}` is not a lowercase hex SHA-256")))
}

fn hex_path(path: &[String], what: &str) -> Result<Vec<Hash>, BundleError> {
    path.iter().map(|h| hex_hash(h, what)).collect()
}

/// A full bundle of a log given as the bytes of `log.bin` and `checkpoints.jsonl`. The log is verified first: a
/// damaged log is not exported as evidence.
pub fn full_bundle(log: &[u8], cps: &[u8], log_id: &str, public_key: &[u8], now: &str) -> Result<Bundle, BundleError> {
    verify_bytes(log, cps, log_id, public_key).map_err(BundleError::Log)?;
    let (records, _) = crate::log::split_records(log);
    let leaves: Vec<Hash> = records.iter().map(|r| r.1).collect();
    let checkpoints = crate::log::signed_checkpoints(cps);
    let mut consistency = Vec::new();
    for pair in checkpoints.windows(2) {
        let (old, new) = (&pair[0], &pair[1]);
        let path = usize::try_from(new.size)
            .ok()
            .and_then(|n| leaves.get(..n))
            .and_then(|l| merkle::consistency_proof(l, usize::try_from(old.size).ok()?))
            .ok_or_else(|| BundleError::Proof(format!("no consistency proof {} → {}", old.size, new.size)))?;
        consistency.push(ConsistencyProof {
            old_size: old.size,
            new_size: new.size,
            path: path.iter().map(hex::encode).collect(),
        });
    }
    let entries = records
        .iter()
        .map(|(payload, leaf)| BundleEntry {
            leaf: hex::encode(leaf),
            // Entries are JSON written by the log: UTF-8 (checked by the verification above for every one).
            entry: String::from_utf8_lossy(payload).into_owned(),
        })
        .collect();
    Ok(Bundle {
        format: BUNDLE_FORMAT.to_owned(),
        log_id: log_id.to_owned(),
        public_key: hex::encode(public_key),
        exported_at: now.to_owned(),
        first_index: 0,
        entries,
        checkpoints,
        consistency,
        inclusion: None,
    })
}

/// A receipt for entry `index`: the entry, the last checkpoint, and the inclusion proof.
pub fn receipt(
    log: &[u8],
    cps: &[u8],
    log_id: &str,
    public_key: &[u8],
    index: u64,
    now: &str,
) -> Result<Bundle, BundleError> {
    let mut full = full_bundle(log, cps, log_id, public_key, now)?;
    let last = full.checkpoints.pop().ok_or_else(|| BundleError::Proof("the log has no checkpoint".into()))?;
    let leaves: Vec<Hash> = full.entries.iter().map(|e| hex_hash(&e.leaf, "leaf")).collect::<Result<_, _>>()?;
    let position = usize::try_from(index).ok().filter(|i| (*i as u64) < last.size).ok_or_else(|| {
        BundleError::Proof(format!("entry {index} is not in the signed log (it holds {} entries)", last.size))
    })?;
    let size = usize::try_from(last.size).map_err(|_| BundleError::Proof("log too large".into()))?;
    let path = merkle::inclusion_proof(&leaves[..size], position)
        .ok_or_else(|| BundleError::Proof(format!("no inclusion proof for entry {index}")))?;
    let entry = full.entries.swap_remove(position);
    Ok(Bundle {
        first_index: index,
        entries: vec![entry],
        checkpoints: vec![last.clone()],
        consistency: Vec::new(),
        inclusion: Some(InclusionProof { index, size: last.size, path: path.iter().map(hex::encode).collect() }),
        ..full
    })
}

/// Verifies a bundle offline. With `trusted_key`, the bundle must be signed by it (a bundle naming its own key
/// proves only that someone holding that key signed it).
pub fn verify_bundle(bundle: &Bundle, trusted_key: Option<&[u8]>) -> Result<BundleReport, BundleError> {
    if bundle.format != BUNDLE_FORMAT {
        return Err(BundleError::Format(format!("format `{}` is not {BUNDLE_FORMAT}", bundle.format)));
    }
    let public_key = hex::decode(&bundle.public_key)
        .ok()
        .filter(|k| k.len() == 32)
        .ok_or_else(|| BundleError::Format("public_key is not a hex Ed25519 key".into()))?;
    if let Some(trusted) = trusted_key
        && trusted != public_key.as_slice()
    {
        return Err(BundleError::KeyMismatch { bundle: bundle.public_key.clone(), trusted: hex::encode(trusted) });
    }
    match &bundle.inclusion {
        None => verify_full(bundle, &public_key),
        Some(proof) => verify_receipt(bundle, proof, &public_key),
    }
}

fn verify_full(bundle: &Bundle, public_key: &[u8]) -> Result<BundleReport, BundleError> {
    if bundle.first_index != 0 {
        return Err(BundleError::Format("a bundle without an inclusion proof must start at entry 0".into()));
    }
    // Rebuild the two files exactly as the zone writes them, and run the zone's own verification on them.
    let mut log = Vec::new();
    for (i, e) in bundle.entries.iter().enumerate() {
        let leaf = hex_hash(&e.leaf, &format!("leaf of entry {i}"))?;
        let len = u32::try_from(e.entry.len()).map_err(|_| BundleError::Format(format!("entry {i} is too large")))?;
        log.extend_from_slice(&len.to_le_bytes());
        log.extend_from_slice(e.entry.as_bytes());
        log.extend_from_slice(&leaf);
    }
    let mut cps = Vec::new();
    for c in &bundle.checkpoints {
        cps.extend(serde_json::to_vec(c).map_err(|e| BundleError::Format(e.to_string()))?);
        cps.push(b'\n');
    }
    let report = verify_bytes(&log, &cps, &bundle.log_id, public_key).map_err(BundleError::Log)?;
    if report.unsigned_tail > 0 {
        return Err(BundleError::Proof(format!(
            "{} entries after the last checkpoint are not signed",
            report.unsigned_tail
        )));
    }
    // Each consecutive pair of checkpoints has its consistency proof, and it verifies against the signed roots.
    let pairs = bundle.checkpoints.windows(2).count();
    if bundle.consistency.len() != pairs {
        return Err(BundleError::Proof(format!(
            "{} consistency proofs for {} pairs of checkpoints",
            bundle.consistency.len(),
            pairs
        )));
    }
    for (pair, proof) in bundle.checkpoints.windows(2).zip(&bundle.consistency) {
        let (old, new) = (&pair[0], &pair[1]);
        if (proof.old_size, proof.new_size) != (old.size, new.size) {
            return Err(BundleError::Proof(format!(
                "the consistency proof {} → {} does not belong to checkpoints of sizes {} and {}",
                proof.old_size, proof.new_size, old.size, new.size
            )));
        }
        let path = hex_path(&proof.path, "consistency proof node")?;
        let ok = merkle::verify_consistency(
            old.size,
            new.size,
            &hex_hash(&old.root, "checkpoint root")?,
            &hex_hash(&new.root, "checkpoint root")?,
            &path,
        );
        if !ok {
            return Err(BundleError::Proof(format!(
                "the consistency proof between checkpoints of sizes {} and {} does not verify",
                old.size, new.size
            )));
        }
    }
    let last = bundle.checkpoints.last();
    Ok(BundleReport {
        kind: "full".to_owned(),
        log_id: bundle.log_id.clone(),
        public_key: bundle.public_key.clone(),
        entries: report.entries,
        checkpoints: report.checkpoints,
        size: last.map_or(0, |c| c.size),
        root: last.map_or_else(|| hex::encode(merkle::empty_root()), |c| c.root.clone()),
        consistency_proofs: bundle.consistency.len(),
        inclusion_proofs: 0,
    })
}

fn verify_receipt(bundle: &Bundle, proof: &InclusionProof, public_key: &[u8]) -> Result<BundleReport, BundleError> {
    let [entry] = bundle.entries.as_slice() else {
        return Err(BundleError::Format(format!("a receipt holds one entry, not {}", bundle.entries.len())));
    };
    let [checkpoint] = bundle.checkpoints.as_slice() else {
        return Err(BundleError::Format(format!("a receipt holds one checkpoint, not {}", bundle.checkpoints.len())));
    };
    if checkpoint.log_id != bundle.log_id || !checkpoint.signature_valid(public_key) {
        return Err(BundleError::Log(Problem::BadSignature { checkpoint: 0 }));
    }
    if proof.index != bundle.first_index || proof.size != checkpoint.size || proof.index >= proof.size {
        return Err(BundleError::Proof(format!(
            "the inclusion proof is for entry {} of {}, the receipt for entry {} of {}",
            proof.index, proof.size, bundle.first_index, checkpoint.size
        )));
    }
    let leaf = merkle::leaf_hash(entry.entry.as_bytes());
    if hex::encode(leaf) != entry.leaf {
        return Err(BundleError::Log(Problem::Changed { index: proof.index, offset: 0 }));
    }
    let parsed: crate::Entry = serde_json::from_str(&entry.entry)
        .map_err(|e| BundleError::Log(Problem::Unreadable { index: proof.index, offset: 0, detail: e.to_string() }))?;
    if parsed.seq != proof.index {
        return Err(BundleError::Log(Problem::OutOfPlace { index: proof.index, offset: 0, claimed: parsed.seq }));
    }
    let path = hex_path(&proof.path, "inclusion proof node")?;
    let root = hex_hash(&checkpoint.root, "checkpoint root")?;
    if !merkle::verify_inclusion(&leaf, proof.index, proof.size, &path, &root) {
        return Err(BundleError::Proof(format!(
            "entry {} is not in the signed tree of {} entries: the inclusion proof does not verify",
            proof.index, proof.size
        )));
    }
    Ok(BundleReport {
        kind: "receipt".to_owned(),
        log_id: bundle.log_id.clone(),
        public_key: bundle.public_key.clone(),
        entries: 1,
        checkpoints: 1,
        size: checkpoint.size,
        root: checkpoint.root.clone(),
        consistency_proofs: 0,
        inclusion_proofs: 1,
    })
}
