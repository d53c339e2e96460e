//! A publish killed at any step leaves the zone as it was before or after that step (invariant 6); a change
//! killed between its write-ahead entry and its commit is named `audit.not_applied` once, so that the log never
//! asserts a change the catalog does not have; kills at random moments leave no disagreement.
//! The fail points exist only in debug builds, which is what `cargo test` builds.

use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::common::{BIN, TestZone, cleanroom_env, day, fixture, grant_acme, policy, s, snapshot};

fn catalog_part(snap: &std::collections::BTreeMap<String, String>) -> Vec<(String, String)> {
    snap.iter().filter(|(k, _)| k.starts_with("table ")).map(|(k, v)| (k.clone(), v.clone())).collect()
}

#[test]
fn a_publish_killed_before_its_commit_leaves_no_version() {
    if !cfg!(debug_assertions) {
        eprintln!("fail points are compiled only into debug builds; skipped");
        return;
    }
    for point in ["publish.after_staging", "publish.after_objects", "publish.before_commit"] {
        let zone = TestZone::new();
        zone.run(&["dataset", "publish", "--policy", s(&policy("tax_credit")), s(&fixture("tax_credit"))]).ok();
        let before = snapshot(&zone.zone);
        let (p, f) = (policy("enterprise_registry"), fixture("enterprise_registry"));
        let args = ["dataset", "publish", "--policy", s(&p), s(&f)];
        let env = [("CLEANROOM_FAILPOINT", point), ("CLEANROOM_AS", "market-regulation")];
        let run = cleanroom_env(&zone.zone, &args, &env);
        assert!(!run.status.success(), "{point}: the process should have died");
        assert!(run.stderr.contains(&format!("fail point `{point}` reached")), "{point}: {}", run.stderr);

        // The catalog is exactly as before; the zone verifies; at most harmless leftovers remain.
        let after = snapshot(&zone.zone);
        assert_eq!(catalog_part(&after), catalog_part(&before), "{point}: catalog changed");
        let list = zone.run(&["--json", "dataset", "list"]).json();
        assert_eq!(list.as_array().map(Vec::len), Some(1), "{point}: a half-published dataset is visible");
        let verify = zone.run(&["--json", "zone", "verify"]).json();
        assert_eq!(verify["damaged"].as_array().map(Vec::len), Some(0), "{point}");

        // Publishing again completes, reusing any object that was already in place.
        let v = zone
            .run(&[
                "--json",
                "dataset",
                "publish",
                "--policy",
                s(&policy("enterprise_registry")),
                s(&fixture("enterprise_registry")),
            ])
            .json();
        assert_eq!(v["outcome"], "published", "{point}");
        assert_eq!(v["version"], 1, "{point}");
        let verify = zone.run(&["--json", "zone", "verify"]).json();
        assert_eq!(verify["unreferenced"].as_array().map(Vec::len), Some(0), "{point}: {verify}");
    }
}

#[test]
fn a_publish_killed_after_its_commit_is_complete() {
    if !cfg!(debug_assertions) {
        return;
    }
    let zone = TestZone::new();
    let (p, f) = (policy("tax_credit"), fixture("tax_credit"));
    let args = ["dataset", "publish", "--policy", s(&p), s(&f)];
    let env = [("CLEANROOM_FAILPOINT", "publish.after_commit"), ("CLEANROOM_AS", "taxation")];
    let run = cleanroom_env(&zone.zone, &args, &env);
    assert!(!run.status.success());
    let show = zone.run(&["--json", "dataset", "show", "tax_credit"]).json();
    assert_eq!(show["version"], 1);
    let verify = zone.run(&["--json", "zone", "verify"]).json();
    assert_eq!(verify["damaged"].as_array().map(Vec::len), Some(0));
    assert_eq!(verify["unreferenced"].as_array().map(Vec::len), Some(0));
    // And publishing the same again is recognised as unchanged.
    let again = zone
        .run(&["--json", "dataset", "publish", "--policy", s(&policy("tax_credit")), s(&fixture("tax_credit"))])
        .json();
    assert_eq!(again["outcome"], "unchanged");
}

/// The catalog's tables, without the two that tie it to the log (they move with every reconciliation).
fn catalog_state(zone: &TestZone) -> Vec<(String, String)> {
    catalog_part(&snapshot(&zone.zone))
        .into_iter()
        .filter(|(k, _)| !k.contains("applied_entries") && !k.contains("audit_reconciled"))
        .collect()
}

fn agreement(zone: &TestZone) -> Value {
    let verify = zone.run(&["--json", "zone", "verify"]);
    let v = verify.json();
    v["log_agreement"].clone()
}

fn not_applied(zone: &TestZone) -> Vec<Value> {
    zone.audit().into_iter().filter(|e| e["action"] == "audit.not_applied").collect()
}

#[test]
fn a_change_killed_between_its_entry_and_its_commit_is_named_not_applied_once() {
    if !cfg!(debug_assertions) {
        return;
    }
    let correct_by = day(30);
    // (who, the change, what it logs)
    let changes: Vec<(&str, Vec<String>, &str)> = vec![
        (
            "dsb",
            ["principal", "add", "zed", "--role", "operator", "--org", "zedco"].map(String::from).to_vec(),
            "principal.add",
        ),
        (
            "dsb",
            ["grant", "suspend", "1", "--reason", "audit", "--correct-by", &correct_by].map(String::from).to_vec(),
            "grant.suspend",
        ),
        ("dsb", ["principal", "suspend", "acme", "--reason", "audit"].map(String::from).to_vec(), "principal.suspend"),
        (
            "taxation",
            ["dataset", "publish", "--policy", s(&policy("tax_credit")), s(&fixture("tax_credit"))]
                .map(String::from)
                .to_vec(),
            "dataset.publish",
        ),
    ];
    for point in ["write_ahead.after_append", "write_ahead.before_commit", "write_ahead.after_commit"] {
        for (who, args, action) in &changes {
            let zone = crate::common::registry_zone();
            let before = catalog_state(&zone);
            let entries_before = zone.audit().len();
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let run = cleanroom_env(&zone.zone, &args, &[("CLEANROOM_FAILPOINT", point), ("CLEANROOM_AS", who)]);
            assert!(!run.status.success() && run.stderr.contains("fail point"), "{point} {action}: {}", run.stderr);
            let logged: Vec<Value> =
                zone.audit().into_iter().skip(entries_before).filter(|e| e["action"] == *action).collect();
            assert_eq!(logged.len(), 1, "{point} {action}: the change's entry is in the log");
            assert_eq!(logged[0]["write_ahead"], true, "{point} {action}");
            let seq = logged[0]["seq"].as_u64().expect("seq");
            let a = agreement(&zone);
            assert!(a["first_disagreement"].is_null(), "{point} {action}: {a}");
            let named = not_applied(&zone);
            if point == "write_ahead.after_commit" {
                // Committed: the change is there and nothing says otherwise.
                assert_ne!(catalog_state(&zone), before, "{point} {action}: the change is missing");
                assert!(named.is_empty(), "{point} {action}: {named:?}");
                continue;
            }
            // Not committed: the catalog is as before, and one entry names the change as not applied.
            assert_eq!(catalog_state(&zone), before, "{point} {action}: the catalog changed");
            assert_eq!(named.len(), 1, "{point} {action}: {named:?}");
            assert!(named[0]["objects"].as_array().is_some_and(|o| o[0] == format!("entry:{seq}")), "{named:?}");
            assert_eq!(a["not_applied"], 1, "{point} {action}: {a}");
            // Once: more opens and changes add nothing, and the change can be made again.
            grant_acme(&zone, "market-regulation");
            let _ = agreement(&zone);
            assert_eq!(not_applied(&zone).len(), 1, "{point} {action}");
            let again = cleanroom_env(&zone.zone, &args, &[("CLEANROOM_AS", who)]);
            assert!(again.status.success(), "{point} {action}: {}", again.stderr);
            assert!(agreement(&zone)["first_disagreement"].is_null(), "{point} {action}");
        }
    }
}

#[test]
fn changes_killed_at_random_moments_leave_the_log_and_the_catalog_in_agreement() {
    // A bounded number of kills here; `ZONE_CRASH_TRIALS=100` for the long run.
    let trials: u64 = std::env::var("ZONE_CRASH_TRIALS").ok().and_then(|v| v.parse().ok()).unwrap_or(12);
    let zone = crate::common::registry_zone();
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for trial in 0..trials {
        let name = format!("op{trial}");
        let org = format!("org{trial}");
        let suspend = ["grant", "suspend", "1", "--reason", "burst", "--correct-by", &day(30)].map(String::from);
        let resume = ["grant", "resume", "1", "--reason", "burst"].map(String::from);
        let add = ["principal", "add", &name, "--role", "operator", "--org", &org].map(String::from);
        let args: Vec<String> = match trial % 3 {
            0 => add.to_vec(),
            1 => suspend.to_vec(),
            _ => resume.to_vec(),
        };
        let mut child = Command::new(BIN)
            .arg("--zone")
            .arg(&zone.zone)
            .args(&args)
            .env("CLEANROOM_AS", "dsb")
            .env_remove("CLEANROOM_FAILPOINT")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        std::thread::sleep(Duration::from_millis(next() % 120));
        let _ = child.kill();
        let _ = child.wait();
        let a = agreement(&zone);
        assert!(a["first_disagreement"].is_null(), "trial {trial} ({args:?}): {a}");
    }
    // Every logged change is applied or named, and the log verifies.
    let a = agreement(&zone);
    assert!(a["write_ahead_entries"].as_u64().is_some_and(|n| n > 0), "{a}");
    zone.run_as("inspector", &["audit", "verify"]).ok();
}

#[test]
fn a_local_run_killed_before_its_release_is_ended_on_the_next_open_and_its_product_removed() {
    if !cfg!(debug_assertions) {
        return;
    }
    let zone = crate::common::registry_zone();
    let app = crate::common::approved_app(
        &zone,
        example_guests::FINANCE_CAPITAL.path,
        "enterprise_registry",
        "aggregate",
        &[],
    );
    // Killed after its signed product is on disk and before its release is recorded.
    let run = cleanroom_env(
        &zone.zone,
        &["job", "run", &app],
        &[("CLEANROOM_FAILPOINT", "job.after_product"), ("CLEANROOM_AS", "acme")],
    );
    assert!(!run.status.success() && run.stderr.contains("fail point"), "{}", run.stderr);
    let product = zone.zone.join("products").join("1");
    assert!(product.join("manifest.json").exists(), "the killed run wrote its product");
    // The next command opens the zone: the run is ended, its product removed, and the log says so.
    let status = zone.run_as("market-regulation", &["--json", "job", "status", "1"]).json();
    assert_eq!((status["state"].as_str(), status["error_class"].as_str()), (Some("failed"), Some("job.interrupted")));
    assert!(!product.exists(), "an unreleased product is left on disk");
    let interrupted: Vec<Value> = zone.audit().into_iter().filter(|e| e["action"] == "job.interrupted").collect();
    assert_eq!(interrupted.len(), 1);
    assert_eq!(interrupted[0]["write_ahead"], true);
    let out = zone.path("out");
    let refused = zone.run_as("acme", &["job", "output", "1", "--out", s(&out)]);
    assert!(!refused.status.success(), "an interrupted job's output is served");
    let verify = zone.run(&["--json", "zone", "verify"]).json();
    assert!(verify["log_agreement"]["first_disagreement"].is_null(), "{verify}");
    assert_eq!(verify["unreleased_products"].as_array().map(Vec::len), Some(0), "{verify}");
    // A run killed with SIGKILL while it runs is ended the same way; a live run is never taken for interrupted.
    let mut child = Command::new(BIN)
        .arg("--zone")
        .arg(&zone.zone)
        .args(["job", "run", &app])
        .env("CLEANROOM_AS", "acme")
        .env_remove("CLEANROOM_FAILPOINT")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let running = (0..200).any(|_| {
        std::thread::sleep(Duration::from_millis(10));
        let v = zone.run_as("market-regulation", &["--json", "job", "status", "2"]);
        v.status.success() && v.json()["state"] == "running"
    });
    let _ = child.kill();
    let _ = child.wait();
    let status = zone.run_as("market-regulation", &["--json", "job", "status", "2"]).json();
    if running {
        assert!(status["state"] == "failed" || status["state"] == "released", "{status}");
    }
    assert_ne!(status["state"], "running", "{status}");
    assert!(agreement(&zone)["first_disagreement"].is_null());
}

#[test]
fn staging_files_of_a_dead_process_are_removed_and_reported() {
    let zone = TestZone::new();
    let tmp = zone.zone.join("tmp");
    std::fs::create_dir_all(&tmp).expect("tmp");
    // As a killed publish leaves it: a partial file nobody holds, written two minutes ago.
    let stale = tmp.join("999999-1-0.partial");
    std::fs::write(&stale, vec![0u8; 4096]).expect("write");
    let old = std::time::SystemTime::now() - Duration::from_secs(120);
    std::fs::File::options().write(true).open(&stale).and_then(|f| f.set_modified(old)).expect("age it");
    // A fresh one is left alone (a process may have just created it).
    let fresh = tmp.join("999999-2-0.partial");
    std::fs::write(&fresh, b"x").expect("write");
    let verify = zone.run(&["--json", "zone", "verify"]).json();
    let removed: Vec<&str> =
        verify["removed_staging"].as_array().expect("removed").iter().filter_map(|v| v.as_str()).collect();
    // The open before the check may have removed it already; either way it is gone, and the fresh one is kept.
    assert!(removed.iter().all(|p| p.ends_with("999999-1-0.partial")), "{verify}");
    assert!(!stale.exists());
    assert!(fresh.exists());
    let text = zone.run(&["zone", "verify"]).ok();
    assert!(text.contains("written in the last minute; kept"), "{text}");
}
