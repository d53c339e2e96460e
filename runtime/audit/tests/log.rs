//! The audit log on disk: appends and proofs, every single-bit change detected, torn writes after a crash
//! repaired, truncation and foreign signatures refused.

use std::path::Path;

use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, KeyPair};
use zone_audit::merkle::{verify_consistency, verify_inclusion};
use zone_audit::{AuditLog, Entry, Outcome, Problem, verify, verify_bytes};

const LOG_ID: &str = "zone-test";

fn key() -> Ed25519KeyPair {
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).expect("keygen");
    Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).expect("key")
}

fn entry(i: u64) -> Entry {
    let outcome = if i % 7 == 3 { Outcome::Refused } else { Outcome::Ok };
    let mut e = Entry::new(
        format!("2026-11-27T08:{:02}:{:02}Z", (i / 60) % 60, i % 60),
        "agency-1",
        "agency",
        "dataset.publish",
        outcome,
    )
    .object(format!("dataset:enterprise_registry@{i}"))
    .hash(format!("sha256:{:064x}", i * 7919));
    if outcome == Outcome::Refused {
        e = e.reason("authz.denied");
    }
    e
}

/// A log of `n` entries appended in groups of `group`.
fn build(dir: &Path, key: &Ed25519KeyPair, n: u64, group: u64) -> AuditLog {
    let (mut log, report) = AuditLog::open(dir, LOG_ID, key, "2026-11-27T08:00:00Z").expect("open");
    assert_eq!(report, Default::default());
    let mut i = 0;
    while i < n {
        let mut batch: Vec<Entry> = (i..(i + group).min(n)).map(entry).collect();
        log.append(&mut batch, key, "2026-11-27T09:00:00Z").expect("append");
        i += group;
    }
    log
}

fn public(key: &Ed25519KeyPair) -> Vec<u8> {
    key.public_key().as_ref().to_vec()
}

#[test]
fn appends_verify_reopen_and_prove() {
    let dir = tempfile::tempdir().expect("tmp");
    let key = key();
    let log = build(dir.path(), &key, 1000, 10);
    let entries = log.entries().expect("entries");
    assert_eq!(entries.len(), 1000);
    assert!(entries.iter().enumerate().all(|(i, e)| e.seq == i as u64));
    assert_eq!(entries[3].reason.as_deref(), Some("authz.denied"));
    let last = log.last_checkpoint().expect("checkpoint").clone();
    assert_eq!(last.size, 1000);
    assert_eq!(last.root, hex::encode(log.root()));
    // The open log holds the lock; a verifier (which takes it shared) runs once it is closed.
    drop(log);
    let report = verify(dir.path(), LOG_ID, &public(&key)).expect("verifies");
    assert_eq!((report.entries, report.checkpoints, report.unsigned_tail), (1000, 100, 0));

    let (log, report) = AuditLog::open(dir.path(), LOG_ID, &key, "2026-11-27T10:00:00Z").expect("reopen");
    assert_eq!(report, Default::default());
    assert_eq!(log.len(), 1000);

    let root = log.root();
    for index in [0u64, 1, 123, 511, 512, 999] {
        let path = log.inclusion_proof(index, 1000).expect("proof");
        let leaf = log.leaf(index).expect("leaf");
        assert!(verify_inclusion(&leaf, index, 1000, &path, &root), "entry {index}");
    }
    let old = log.root_at(110).expect("root at 110");
    let proof = log.consistency_proof(110, 1000).expect("proof");
    assert!(verify_consistency(110, 1000, &old, &root, &proof));
}

/// Flips bits of a 1,000-entry log and its checkpoints. `exhaustive`: all eight bits of every byte of both files.
/// Otherwise: all eight bits of the first and last three records, of every record's length prefix and of the last
/// checkpoint; one bit (rotating) of every byte of the other checkpoints and of every 7th byte elsewhere.
fn flip_bits(exhaustive: bool) -> usize {
    let dir = tempfile::tempdir().expect("tmp");
    let key = key();
    let log = build(dir.path(), &key, 1000, 50);
    let (mut bytes, mut cps) = log.raw().expect("raw");
    let pk = public(&key);
    assert!(verify_bytes(&bytes, &cps, LOG_ID, &pk).is_ok());
    // Which bits of each byte to flip: a mask.
    let mut masks: Vec<u8> = (0..bytes.len()).map(|p| if p % 7 == 0 { 1 << (p / 7 % 8) } else { 0 }).collect();
    let mut starts = Vec::new();
    let mut offset = 0;
    while offset < bytes.len() {
        starts.push(offset);
        let len = u32::from_le_bytes(bytes[offset..offset + 4].try_into().expect("len")) as usize;
        offset += 4 + len + 32;
    }
    starts.push(bytes.len());
    let records = starts.len() - 1;
    for r in 0..records {
        let whole = r < 3 || r + 3 >= records;
        let end = if whole { starts[r + 1] } else { starts[r] + 4 };
        masks[starts[r]..end].iter_mut().for_each(|m| *m = 0xff);
    }
    let last_line = cps[..cps.len() - 1].iter().rposition(|b| *b == b'\n').map_or(0, |p| p + 1);
    let mut cp_masks: Vec<u8> = (0..cps.len()).map(|p| if p >= last_line { 0xff } else { 1 << (p % 8) }).collect();
    if exhaustive {
        masks.iter_mut().for_each(|m| *m = 0xff);
        cp_masks.iter_mut().for_each(|m| *m = 0xff);
    }
    let mut flips = 0;
    for (position, mask) in masks.iter().enumerate() {
        for bit in (0..8).filter(|b| mask & (1 << b) != 0) {
            bytes[position] ^= 1 << bit;
            assert!(
                verify_bytes(&bytes, &cps, LOG_ID, &pk).is_err(),
                "flip of bit {bit} at byte {position} of log.bin"
            );
            bytes[position] ^= 1 << bit;
            flips += 1;
        }
    }
    for (position, mask) in cp_masks.iter().enumerate() {
        for bit in (0..8).filter(|b| mask & (1 << b) != 0) {
            cps[position] ^= 1 << bit;
            assert!(
                verify_bytes(&bytes, &cps, LOG_ID, &pk).is_err(),
                "flip of bit {bit} at byte {position} of checkpoints"
            );
            cps[position] ^= 1 << bit;
            flips += 1;
        }
    }
    assert!(verify_bytes(&bytes, &cps, LOG_ID, &pk).is_ok());
    flips
}

#[test]
fn single_bit_flips_are_detected() {
    assert!(flip_bits(false) > 40_000);
}

/// Every one of the 2,356,376 single-bit flips of the 1,000-entry log and its checkpoints (run in release:
/// `cargo test --release -p zone-audit --test log -- --ignored --nocapture`; about 11 minutes on 2 cores).
#[test]
#[ignore = "exhaustive: ~2.4M verifications, ~11 min in release"]
fn every_single_bit_flip_is_detected() {
    let flips = flip_bits(true);
    println!("{flips} single-bit flips, each refused");
}

#[test]
fn changes_deletions_reorders_and_truncation_are_named() {
    let dir = tempfile::tempdir().expect("tmp");
    let key = key();
    let log = build(dir.path(), &key, 40, 4);
    let (bytes, cps) = log.raw().expect("raw");
    let pk = public(&key);
    // Record boundaries.
    let mut offsets = vec![0usize];
    while *offsets.last().expect("offset") < bytes.len() {
        let o = *offsets.last().expect("offset");
        let len = u32::from_le_bytes(bytes[o..o + 4].try_into().expect("len")) as usize;
        offsets.push(o + 4 + len + 32);
    }
    let record = |i: usize| bytes[offsets[i]..offsets[i + 1]].to_vec();

    // Delete entry 5.
    let deleted = [&bytes[..offsets[5]], &bytes[offsets[6]..]].concat();
    assert!(matches!(verify_bytes(&deleted, &cps, LOG_ID, &pk), Err(Problem::OutOfPlace { index: 5, claimed: 6, .. })));
    // Swap entries 7 and 8.
    let swapped = [&bytes[..offsets[7]], &record(8), &record(7), &bytes[offsets[9]..]].concat();
    assert!(matches!(verify_bytes(&swapped, &cps, LOG_ID, &pk), Err(Problem::OutOfPlace { index: 7, claimed: 8, .. })));
    // Insert a copy of entry 2 after it.
    let inserted = [&bytes[..offsets[3]], &record(2), &bytes[offsets[3]..]].concat();
    assert!(matches!(
        verify_bytes(&inserted, &cps, LOG_ID, &pk),
        Err(Problem::OutOfPlace { index: 3, claimed: 2, .. })
    ));
    // Truncate to 30 entries: the last checkpoint signed 40.
    let truncated = &bytes[..offsets[30]];
    assert!(matches!(
        verify_bytes(truncated, &cps, LOG_ID, &pk),
        Err(Problem::Truncated { entries: 30, size: 40, .. })
    ));
    // A rewritten entry with a recomputed hash (a careful forger) still breaks the signed roots.
    let mut forged_entry = entry(12);
    forged_entry.seq = 12;
    forged_entry.actor = "someone-else".into();
    let payload = serde_json::to_vec(&forged_entry).expect("json");
    let forged_record =
        [&(payload.len() as u32).to_le_bytes()[..], &payload, &zone_audit::merkle::leaf_hash(&payload)].concat();
    let forged = [&bytes[..offsets[12]], &forged_record, &bytes[offsets[13]..]].concat();
    assert!(matches!(verify_bytes(&forged, &cps, LOG_ID, &pk), Err(Problem::RootMismatch { size: 16, .. })));
    // Checkpoints signed by another key.
    let other = key_other();
    assert!(matches!(verify_bytes(&bytes, &cps, LOG_ID, &other), Err(Problem::BadSignature { checkpoint: 0 })));
    // Another zone's log id.
    assert!(matches!(verify_bytes(&bytes, &cps, "zone-other", &pk), Err(Problem::BadSignature { checkpoint: 0 })));
}

fn key_other() -> Vec<u8> {
    public(&key())
}

#[test]
fn a_torn_write_after_a_crash_is_cut_and_acknowledged_entries_survive() {
    let dir = tempfile::tempdir().expect("tmp");
    let key = key();
    drop(build(dir.path(), &key, 20, 5));
    let log_file = dir.path().join("log.bin");
    let good = std::fs::read(&log_file).expect("read");
    // A crash in the middle of the next append: half a record (length, part of the JSON) reached the disk.
    let mut torn = good.clone();
    torn.extend_from_slice(&200u32.to_le_bytes());
    torn.extend_from_slice(br#"{"seq":20,"time":"2026"#);
    std::fs::write(&log_file, &torn).expect("write");
    assert!(verify(dir.path(), LOG_ID, &public(&key)).is_err(), "verify is strict: the torn bytes are not a record");
    let (mut log, report) = AuditLog::open(dir.path(), LOG_ID, &key, "2026-11-27T11:00:00Z").expect("open repairs");
    assert_eq!(report.torn_bytes, (torn.len() - good.len()) as u64);
    assert_eq!(log.len(), 20);
    log.append(&mut [entry(20)], &key, "2026-11-27T11:00:01Z").expect("append after repair");
    drop(log);
    assert_eq!(verify(dir.path(), LOG_ID, &public(&key)).expect("verifies").entries, 21);

    // A crash after the log's fsync but before the checkpoint's: complete entries, unsigned; open signs them.
    let mut unsigned = std::fs::read(&log_file).expect("read");
    let mut e = entry(21);
    e.seq = 21;
    let payload = serde_json::to_vec(&e).expect("json");
    unsigned.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    unsigned.extend_from_slice(&payload);
    unsigned.extend_from_slice(&zone_audit::merkle::leaf_hash(&payload));
    std::fs::write(&log_file, &unsigned).expect("write");
    assert_eq!(verify(dir.path(), LOG_ID, &public(&key)).expect("verifies").unsigned_tail, 1);
    let (log, report) = AuditLog::open(dir.path(), LOG_ID, &key, "2026-11-27T11:00:02Z").expect("open");
    assert!(report.resigned);
    assert_eq!(log.last_checkpoint().map(|c| c.size), Some(22));

    // But a checkpointed entry cut short is tampering, not a torn write: open refuses.
    drop(log);
    let bytes = std::fs::read(&log_file).expect("read");
    std::fs::write(&log_file, &bytes[..bytes.len() - 10]).expect("write");
    assert!(AuditLog::open(dir.path(), LOG_ID, &key, "2026-11-27T11:00:03Z").is_err());
}

#[test]
fn evidence_bundles_verify_offline_and_every_change_is_refused() {
    use zone_audit::{BundleError, full_bundle, receipt, verify_bundle};
    let dir = tempfile::tempdir().expect("tmp");
    let key = key();
    let log = build(dir.path(), &key, 40, 3);
    let (bin, cps) = log.raw().expect("raw");
    let pk = public(&key);
    let bundle = full_bundle(&bin, &cps, LOG_ID, &pk, "2026-11-27T10:00:00Z").expect("bundle");
    let report = verify_bundle(&bundle, Some(&pk)).expect("verifies");
    assert_eq!(
        (report.kind.as_str(), report.entries, report.checkpoints, report.consistency_proofs),
        ("full", 40, 14, 13)
    );
    // Through its JSON form, as an inspector receives it.
    let text = serde_json::to_string(&bundle).expect("json");
    let back: zone_audit::Bundle = serde_json::from_str(&text).expect("parse");
    assert_eq!(verify_bundle(&back, None).expect("verifies").root, report.root);

    // Another key.
    assert!(matches!(verify_bundle(&bundle, Some(&key_other())), Err(BundleError::KeyMismatch { .. })));
    // One character of one entry.
    let mut b = bundle.clone();
    b.entries[17].entry = b.entries[17].entry.replace("agency-1", "agency-2");
    assert!(matches!(verify_bundle(&b, None), Err(BundleError::Log(Problem::Changed { index: 17, .. }))));
    // The entry and its leaf changed together: the signed roots catch it.
    let leaf = hex::encode(zone_audit::merkle::leaf_hash(b.entries[17].entry.as_bytes()));
    b.entries[17].leaf = leaf;
    assert!(
        matches!(verify_bundle(&b, None), Err(BundleError::Log(Problem::RootMismatch { .. }))),
        "{:?}",
        verify_bundle(&b, None)
    );
    // An entry removed, two swapped, the tail cut.
    let mut b = bundle.clone();
    b.entries.remove(5);
    assert!(verify_bundle(&b, None).is_err());
    let mut b = bundle.clone();
    b.entries.swap(8, 9);
    assert!(matches!(verify_bundle(&b, None), Err(BundleError::Log(Problem::OutOfPlace { index: 8, .. }))));
    let mut b = bundle.clone();
    b.entries.truncate(30);
    assert!(matches!(verify_bundle(&b, None), Err(BundleError::Log(Problem::Truncated { .. }))));
    // A consistency proof altered, dropped, or moved.
    let mut b = bundle.clone();
    let node = &mut b.consistency[4].path[0];
    *node = format!("{}{}", if node.starts_with('0') { "1" } else { "0" }, &node[1..]);
    assert!(matches!(verify_bundle(&b, None), Err(BundleError::Proof(_))));
    let mut b = bundle.clone();
    b.consistency.pop();
    assert!(matches!(verify_bundle(&b, None), Err(BundleError::Proof(_))));
    let mut b = bundle.clone();
    b.consistency.swap(1, 2);
    assert!(matches!(verify_bundle(&b, None), Err(BundleError::Proof(_))));
    // A checkpoint re-signed by another key while naming this one.
    let mut b = bundle.clone();
    b.checkpoints[3].time = "2030-01-01T00:00:00Z".into();
    assert!(matches!(verify_bundle(&b, None), Err(BundleError::Log(Problem::BadSignature { checkpoint: 3 }))));

    // A receipt for every entry verifies on its own; any change to it does not.
    for index in 0..40 {
        let r = receipt(&bin, &cps, LOG_ID, &pk, index, "2026-11-27T10:00:00Z").expect("receipt");
        assert_eq!(r.entries.len(), 1);
        let report = verify_bundle(&r, Some(&pk)).expect("receipt verifies");
        assert_eq!((report.kind.as_str(), report.size), ("receipt", 40));
        let mut bad = r.clone();
        bad.entries[0].entry = bad.entries[0].entry.replace("dataset:", "dataset:x");
        assert!(verify_bundle(&bad, None).is_err());
        let mut bad = r.clone();
        if let Some(p) = bad.inclusion.as_mut() {
            p.index = (index + 1) % 40;
        }
        bad.first_index = (index + 1) % 40;
        assert!(verify_bundle(&bad, None).is_err(), "moved receipt {index}");
        let mut bad = r.clone();
        if let Some(p) = bad.inclusion.as_mut()
            && let Some(n) = p.path.first_mut()
        {
            *n = format!("{}{}", if n.starts_with('0') { "1" } else { "0" }, &n[1..]);
            assert!(verify_bundle(&bad, None).is_err(), "altered path {index}");
        }
    }
    assert!(receipt(&bin, &cps, LOG_ID, &pk, 40, "t").is_err());
}

/// The child half of the kill -9 test: appends groups forever, printing the size after each acknowledged append.
#[test]
#[ignore = "run by kill_9_during_appends_leaves_a_log_that_verifies as a child process"]
fn child_appender() {
    let Some(dir) = std::env::var_os("AUDIT_CHILD_DIR") else {
        return;
    };
    let pkcs8 = std::fs::read(Path::new(&dir).join("key.pk8")).expect("key");
    let key = Ed25519KeyPair::from_pkcs8(&pkcs8).expect("key");
    let path = Path::new(&dir).join("log");
    // Like the zone: open the log (taking its lock) for each action, or keep it open.
    let reopen = std::env::var_os("AUDIT_CHILD_REOPEN").is_some();
    let (mut log, _) = AuditLog::open(&path, LOG_ID, &key, "t").expect("open");
    let mut out = std::io::stdout();
    for i in 0.. {
        if reopen {
            drop(log);
            log = AuditLog::open(&path, LOG_ID, &key, "t").expect("open").0;
        }
        let mut batch: Vec<Entry> = (0..1 + i % 5).map(|j| entry(i * 5 + j)).collect();
        log.append(&mut batch, &key, "2026-11-27T09:00:00Z").expect("append");
        use std::io::Write;
        writeln!(out, "{}", log.len()).expect("stdout");
        out.flush().expect("flush");
    }
}

#[test]
fn kill_9_during_appends_leaves_a_log_that_verifies() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().expect("tmp");
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).expect("keygen");
    std::fs::write(dir.path().join("key.pk8"), pkcs8.as_ref()).expect("key");
    let key = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).expect("key");
    let exe = std::env::current_exe().expect("test binary");
    let mut acknowledged = 0u64;
    // Several rounds: each child appends to the log the previous one was killed in.
    for round in 0..4u64 {
        let mut child = std::process::Command::new(&exe)
            .args(["--exact", "child_appender", "--ignored", "--nocapture", "--test-threads=1"])
            .env("AUDIT_CHILD_DIR", dir.path())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn child");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = std::io::BufReader::new(stdout).lines();
        // Let it append a while (a different number of acknowledged appends each round), then SIGKILL it.
        let target = 20 + round * 13;
        let mut seen = 0;
        while let Some(Ok(line)) = lines.next() {
            if let Ok(n) = line.trim().parse::<u64>() {
                acknowledged = n;
                seen += 1;
                if seen == target {
                    break;
                }
            }
        }
        child.kill().expect("kill -9");
        // Whatever the child printed before dying was acknowledged too.
        for line in lines.map_while(Result::ok) {
            if let Ok(n) = line.trim().parse::<u64>() {
                acknowledged = n;
            }
        }
        child.wait().expect("reap");
        // Opening repairs a torn tail (if the kill landed mid-write); nothing acknowledged is lost.
        let (log, _) = AuditLog::open(&dir.path().join("log"), LOG_ID, &key, "t2").expect("open after kill");
        assert!(log.len() >= acknowledged, "round {round}: {} entries < {acknowledged} acknowledged", log.len());
        let log_len = log.len();
        drop(log);
        let report = verify(&dir.path().join("log"), LOG_ID, &public(&key)).expect("verifies after kill");
        assert_eq!(report.entries, log_len);
        assert_eq!(report.unsigned_tail, 0);
    }
    assert!(acknowledged >= 20 + 33 + 46 + 59 - 4, "every round appended: {acknowledged}");
}

#[test]
fn two_processes_appending_at_once_never_interleave() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().expect("tmp");
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).expect("keygen");
    std::fs::write(dir.path().join("key.pk8"), pkcs8.as_ref()).expect("key");
    let key = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).expect("key");
    let exe = std::env::current_exe().expect("test binary");
    let spawn = || {
        std::process::Command::new(&exe)
            .args(["--exact", "child_appender", "--ignored", "--nocapture", "--test-threads=1"])
            .env("AUDIT_CHILD_DIR", dir.path())
            .env("AUDIT_CHILD_REOPEN", "1")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn child")
    };
    let mut children = [spawn(), spawn()];
    // Both must make progress (the lock is taken per action, not held for the process's life).
    let mut readers: Vec<_> =
        children.iter_mut().map(|c| std::io::BufReader::new(c.stdout.take().expect("stdout")).lines()).collect();
    for r in &mut readers {
        for _ in 0..30 {
            assert!(matches!(r.next(), Some(Ok(_))), "a child stopped appending");
        }
    }
    for c in &mut children {
        c.kill().expect("kill");
        c.wait().expect("reap");
    }
    let (log, _) = AuditLog::open(&dir.path().join("log"), LOG_ID, &key, "t2").expect("open");
    let len = log.len();
    drop(log);
    let report = verify(&dir.path().join("log"), LOG_ID, &public(&key)).expect("verifies");
    assert!(report.entries >= 60 && report.entries == len, "{report:?}");
}

#[test]
fn opening_reads_only_what_follows_the_saved_frontier_and_falls_back_when_it_is_wrong() {
    let dir = tempfile::tempdir().expect("tmp");
    let key = key();
    let log = build(dir.path(), &key, 300, 7);
    let mut expected = (log.len(), log.root());
    drop(log);
    let cache = dir.path().join("frontier.json");
    assert!(cache.exists(), "every checkpoint saves the frontier");
    // Opens, checks the tree is the expected one, appends one entry; returns the new tree.
    let reopen = |expected: (u64, [u8; 32]), t: &str, fast: bool| {
        let (mut log, report) = AuditLog::open(dir.path(), LOG_ID, &key, t).expect("open");
        assert_eq!((report.torn_bytes, report.resigned), (0, false));
        assert_eq!(report.scanned, if fast { 0 } else { expected.0 }, "fast: {fast}");
        assert_eq!((log.len(), log.root()), expected);
        log.append(&mut [entry(log.len())], &key, t).expect("append");
        (log.len(), log.root())
    };
    // Fast (the saved frontier), without it, with a wrong one, with garbage: the same tree every time.
    expected = reopen(expected, "2026-11-27T12:00:00Z", true);
    std::fs::remove_file(&cache).expect("rm");
    expected = reopen(expected, "2026-11-27T12:00:01Z", false);
    let mut text = std::fs::read_to_string(&cache).expect("cache");
    let i = text.find("\"peaks\":[[").expect("peaks") + 20;
    let flipped = if text.as_bytes()[i] == b'a' { "b" } else { "a" };
    text.replace_range(i..i + 1, flipped);
    std::fs::write(&cache, &text).expect("write");
    expected = reopen(expected, "2026-11-27T12:00:02Z", false);
    std::fs::write(&cache, b"{not json").expect("write");
    expected = reopen(expected, "2026-11-27T12:00:03Z", false);
    expected = reopen(expected, "2026-11-27T12:00:04Z", true);
    assert_eq!(expected.0, 305);
    assert_eq!(verify(dir.path(), LOG_ID, &public(&key)).expect("verifies").entries, 305);

    // A change inside the signed part is not hidden by a fast open: the next appends sign the true tree, and
    // verify names the change.
    let log_file = dir.path().join("log.bin");
    let mut bytes = std::fs::read(&log_file).expect("read");
    bytes[100] ^= 1;
    std::fs::write(&log_file, &bytes).expect("write");
    let (mut log, _) = AuditLog::open(dir.path(), LOG_ID, &key, "t").expect("fast open");
    log.append(&mut [entry(305)], &key, "t").expect("append");
    drop(log);
    assert!(matches!(
        verify(dir.path(), LOG_ID, &public(&key)),
        Err(zone_audit::AuditError::Tampered { problem: Problem::Changed { index: 0, .. }, .. })
    ));
}
