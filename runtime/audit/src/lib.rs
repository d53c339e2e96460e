//! # zone-audit — the tamper-evident record of everything the zone does
//!
//! Invariant 5: every state change and every refusal is appended here, and an inspector can prove the record was
//! not changed afterwards. The log is an RFC 6962 Merkle log (`merkle.rs`); the zone signs checkpoints — tree
//! size, root, time — with its Ed25519 key (`log.rs`).
//!
//! ```text
//!  AuditLog::append(entries) ─▶ log.bin  (len | JSON entry | leaf hash), fsync ─▶ checkpoint, signed, fsync
//!  AuditLog::verify()        ─▶ rehash every record, compare every checkpoint root and signature
//!  full_bundle / receipt     ─▶ evidence for offline checking (`bundle.rs`), with consistency/inclusion proofs
//! ```
//!
//! Where to extend: a new field of an entry goes in [`Entry`] (older entries keep verifying: the leaf is the
//! exact bytes that were written).

pub mod bundle;
pub mod entry;
pub mod log;
pub mod merkle;

pub use bundle::{Bundle, BundleError, BundleReport, full_bundle, receipt, verify_bundle};
pub use entry::{Entry, Outcome};
pub use log::{AuditError, AuditLog, Checkpoint, LOG_FILE, OpenReport, Problem, VerifyReport, verify, verify_bytes};
