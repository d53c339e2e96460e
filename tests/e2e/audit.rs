//! The audit log through the CLI: every action and every refusal recorded, `audit verify` naming what changed.

use crate::common::{TestZone, fixture, s};

#[test]
fn actions_and_refusals_are_recorded_and_tampering_is_named() {
    let zone = TestZone::new();
    zone.publish_fixture("enterprise_registry");
    let missing = zone.path("missing.toml");
    zone.run(&["dataset", "publish", "--policy", s(&missing), s(&fixture("tax_credit"))]).fails();

    let entries = zone.run(&["--json", "audit", "log"]).json();
    let entries = entries.as_array().expect("entries");
    let actions: Vec<(&str, &str)> =
        entries.iter().map(|e| (e["action"].as_str().unwrap_or(""), e["outcome"].as_str().unwrap_or(""))).collect();
    assert_eq!(actions, [("zone.init", "ok"), ("dataset.publish", "ok"), ("dataset.publish", "refused")]);
    assert_eq!(entries[1]["objects"][0], "dataset:enterprise_registry@1");
    assert!(
        entries[1]["hashes"]
            .as_array()
            .expect("hashes")
            .iter()
            .any(|h| h.as_str().is_some_and(|h| h.starts_with("sha256:")))
    );
    assert_eq!(entries[2]["reason"], "input.missing");
    let only = zone.run(&["--json", "audit", "log", "--dataset", "enterprise_registry"]).json();
    assert_eq!(only.as_array().map(Vec::len), Some(1));

    let v = zone.run(&["--json", "audit", "verify"]).json();
    assert_eq!(
        (v["entries"].as_u64(), v["checkpoints"].as_u64(), v["intact"].as_bool()),
        (Some(3), Some(3), Some(true))
    );
    let human = zone.run(&["audit", "verify"]).ok();
    assert!(human.contains("audit log intact: 3 entries"), "{human}");

    // Change one byte inside entry 1: verify fails and names it.
    let log = zone.path("zone/audit/log.bin");
    let good = std::fs::read(&log).expect("log");
    let first_len = u32::from_le_bytes(good[..4].try_into().expect("len")) as usize;
    let mut bad = good.clone();
    bad[4 + first_len + 32 + 4 + 20] ^= 0x04;
    std::fs::write(&log, &bad).expect("write");
    let err = zone.run(&["audit", "verify"]).fails();
    assert!(err.contains("entry 1") && err.contains("changed"), "{err}");

    // Drop the last entry: the signed checkpoint says 3.
    let second_len = u32::from_le_bytes(good[4 + first_len + 32..][..4].try_into().expect("len")) as usize;
    let two = 2 * 36 + first_len + second_len;
    std::fs::write(&log, &good[..two]).expect("write");
    let err = zone.run(&["audit", "verify"]).fails();
    assert!(err.contains("truncated"), "{err}");
    std::fs::write(&log, &good).expect("restore");
    zone.run(&["audit", "verify"]).ok();
}
