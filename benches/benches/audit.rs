//! The audit log: `verify` of 1M entries (`ZONE_BENCH_AUDIT_ENTRIES`) against plain SHA-256 over the same bytes,
//! and append throughput with group commit (one fsync and one signed checkpoint per group) for several group sizes.

use std::hint::black_box;
use std::time::Instant;

use cleanroom_benches::{compare, ratio, report};
use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, KeyPair};
use sha2::{Digest, Sha256};
use zone_audit::{AuditLog, Entry, Outcome, verify_bytes};

fn entry(i: u64) -> Entry {
    Entry::new("2026-11-27T09:00:00Z", "operator-7", "operator", "job.run", Outcome::Ok)
        .object(format!("app:{}", i % 97))
        .object("dataset:enterprise_registry@1")
        .hash(format!("sha256:{:064x}", i.wrapping_mul(0x9E37_79B9_7F4A_7C15)))
}

fn main() {
    let n: u64 = std::env::var("ZONE_BENCH_AUDIT_ENTRIES").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).expect("keygen");
    let key = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).expect("key");
    let dir = tempfile::tempdir().expect("tmp");

    // Append throughput, group commit: one fsync of the log and one signed, fsynced checkpoint per group.
    for group in [1u64, 100, 10_000] {
        let sub = dir.path().join(format!("g{group}"));
        let (mut log, _) = AuditLog::open(&sub, "bench", &key, "t").expect("open");
        let total = (group * 200).min(n);
        let started = Instant::now();
        let mut i = 0;
        while i < total {
            let mut batch: Vec<Entry> = (i..(i + group).min(total)).map(entry).collect();
            log.append(&mut batch, &key, "2026-11-27T09:00:00Z").expect("append");
            i += group;
        }
        let secs = started.elapsed().as_secs_f64();
        println!(
            "append, groups of {group:>6}: {:>10.0} entries/s ({total} entries, {:.2} s)",
            total as f64 / secs,
            secs
        );
    }

    // A log of n entries, then verify it against a plain SHA-256 pass over the same bytes.
    let path = dir.path().join("big");
    let (mut log, _) = AuditLog::open(&path, "bench", &key, "t").expect("open");
    let mut i = 0;
    while i < n {
        let mut batch: Vec<Entry> = (i..(i + 50_000).min(n)).map(entry).collect();
        log.append(&mut batch, &key, "2026-11-27T09:00:00Z").expect("append");
        i += 50_000;
    }
    let (bytes, checkpoints) = log.raw().expect("raw");
    drop(log);
    // Opening (what every zone action does before it appends): from the saved frontier, and from scratch.
    for (label, keep_frontier) in [("open, saved frontier", true), ("open, full verification", false)] {
        if !keep_frontier {
            std::fs::remove_file(path.join("frontier.json")).expect("remove frontier");
        }
        let started = Instant::now();
        let (log, report) = AuditLog::open(&path, "bench", &key, "t").expect("open");
        println!("{label:<26} {:>10.2} ms ({} entries scanned)", started.elapsed().as_secs_f64() * 1e3, report.scanned);
        drop(log);
    }
    let public = key.public_key().as_ref().to_vec();
    println!(
        "{n} entries, {} bytes of log, {} checkpoints",
        bytes.len(),
        checkpoints.iter().filter(|b| **b == b'\n').count()
    );
    let results = compare(
        5,
        &mut [
            ("sha256 over the log (baseline)", &mut || {
                black_box(Sha256::digest(&bytes));
            }),
            ("audit verify", &mut || {
                black_box(verify_bytes(&bytes, &checkpoints, "bench", &public).expect("verifies"));
            }),
        ],
    );
    report(&results, "sha256 over the log (baseline)", n as usize);
    println!("ratio verify/sha256: {:.2}x", ratio(&results, "audit verify", "sha256 over the log (baseline)"));
}
