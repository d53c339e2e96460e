//! The audit log through the CLI: every action and every refusal recorded, `audit verify` naming what changed.

use crate::common::{TestZone, fixture, s};

#[test]
fn actions_and_refusals_are_recorded_and_tampering_is_named() {
    let zone = TestZone::new();
    let base = zone.audit().len();
    assert_eq!(base, 1 + crate::common::PRINCIPALS.len(), "zone.init and one principal.add each");
    zone.publish_fixture("enterprise_registry");
    let missing = zone.path("missing.toml");
    zone.run_as("taxation", &["dataset", "publish", "--policy", s(&missing), s(&fixture("tax_credit"))]).fails();

    let all = zone.audit();
    let entries = &all[base..];
    let actions: Vec<(&str, &str, &str)> = all
        .iter()
        .map(|e| {
            let f = |k: &str| e[k].as_str().unwrap_or("");
            (f("actor"), f("action"), f("outcome"))
        })
        .collect();
    assert_eq!(actions[0], ("dsb", "zone.init", "ok"));
    assert_eq!(actions[1], ("dsb", "principal.add", "ok"));
    assert_eq!(
        actions[base..],
        [("market-regulation", "dataset.publish", "ok"), ("taxation", "dataset.publish", "refused")]
    );
    let entries = [entries[0].clone(), entries[0].clone(), entries[1].clone()];
    assert_eq!(entries[1]["objects"][0], "dataset:enterprise_registry@1");
    assert!(
        entries[1]["hashes"]
            .as_array()
            .expect("hashes")
            .iter()
            .any(|h| h.as_str().is_some_and(|h| h.starts_with("file:commitment:")))
    );
    assert_eq!(entries[2]["reason"], "input.missing");
    let only = zone.run(&["--json", "audit", "log", "--dataset", "enterprise_registry"]).json();
    assert_eq!(only.as_array().map(Vec::len), Some(1));

    let n = base as u64 + 2;
    let v = zone.run(&["--json", "audit", "verify"]).json();
    assert_eq!(
        (v["entries"].as_u64(), v["checkpoints"].as_u64(), v["intact"].as_bool()),
        (Some(n), Some(n), Some(true))
    );
    let human = zone.run(&["audit", "verify"]).ok();
    assert!(human.contains(&format!("audit log intact: {n} entries")), "{human}");

    // Change one byte inside entry 1: verify fails and names it.
    let log = zone.path("zone/audit/log.bin");
    let good = std::fs::read(&log).expect("log");
    let first_len = u32::from_le_bytes(good[..4].try_into().expect("len")) as usize;
    let mut bad = good.clone();
    bad[4 + first_len + 32 + 4 + 20] ^= 0x04;
    std::fs::write(&log, &bad).expect("write");
    let err = zone.run(&["audit", "verify"]).fails();
    assert!(err.contains("entry 1") && err.contains("changed"), "{err}");

    // Drop the last entry: the signed checkpoint says one more.
    let mut offset = 0;
    for _ in 0..n - 1 {
        let len = u32::from_le_bytes(good[offset..][..4].try_into().expect("len")) as usize;
        offset += 4 + len + 32;
    }
    std::fs::write(&log, &good[..offset]).expect("write");
    let err = zone.run(&["audit", "verify"]).fails();
    assert!(err.contains("truncated"), "{err}");
    std::fs::write(&log, &good).expect("restore");
    zone.run(&["audit", "verify"]).ok();
}
