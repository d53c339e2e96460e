//! A publish killed at any step leaves the zone as it was before or after that step (invariant 6).
//! The fail points exist only in debug builds, which is what `cargo test` builds.

use crate::common::{TestZone, cleanroom_env, fixture, policy, s, snapshot};

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
