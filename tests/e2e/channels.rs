//! The channels a hostile guest had to its operator (issue "Close the channels"), each driven through the CLI with
//! `examples/hostile-channels` (approved like any module): guest-chosen text in the host's messages, exact counters
//! the guest controls, the run's duration, the failure class, run settings outside the approval, injection into
//! spreadsheets and terminals, and arithmetic. Every byte the operator can read is searched for the guest's
//! marker and the numbers it chose; the providing agency and the inspector still see what happened.

use serde_json::Value;

use crate::common::{self, Run, TestZone, registry_zone, s};

const CHANNELS: &str = example_guests::HOSTILE_CHANNELS.path;

/// What the guest plants in every text (as `examples/hostile-channels` does).
const MARKER: &str = "MARKER-zq7x";

/// `channel` of the hostile guest over the registry, approved by both parties; the application's id.
fn channel_app(zone: &TestZone, channel: &str) -> String {
    common::approved_app(zone, CHANNELS, "enterprise_registry", "aggregate", &[&format!("channel={channel}")])
}

/// Everything the operator can read about job `job` and its run: the run's own output, `job status` and `job list`
/// (tables and JSON), the product's files when it released, and what the audit log tells an operator (a refusal).
fn operator_bytes(zone: &TestZone, run: &Run, job: &str) -> Vec<(String, Vec<u8>)> {
    let mut seen = vec![("job run".to_owned(), format!("{}{}", run.stdout, run.stderr).into_bytes())];
    for args in [
        &["job", "status", job][..],
        &["--json", "job", "status", job],
        &["job", "list"],
        &["--json", "job", "list"],
        &["--json", "audit", "log"],
        &["job", "diagnostics", job],
    ] {
        let r = zone.run_as("acme", args);
        seen.push((args.join(" "), format!("{}{}", r.stdout, r.stderr).into_bytes()));
    }
    let out = zone.path(&format!("operator-{job}"));
    let taken = zone.run_as("acme", &["job", "output", job, "--out", s(&out)]);
    if taken.status.success() {
        for name in ["product.parquet", "product.csv", "manifest.json"] {
            seen.push((name.to_owned(), std::fs::read(out.join(name)).expect("product file")));
        }
    }
    seen
}

/// Fails when `needle` occurs in any of the operator's bytes.
#[track_caller]
fn assert_unseen(seen: &[(String, Vec<u8>)], needle: &str) {
    for (what, bytes) in seen {
        let found = bytes.windows(needle.len()).any(|w| w == needle.as_bytes());
        assert!(!found, "`{needle}` reached the operator through `{what}`:\n{}", String::from_utf8_lossy(bytes));
    }
}

/// The job as the providing agency sees it.
fn agency_view(zone: &TestZone, job: &str) -> Value {
    zone.run_as("market-regulation", &["--json", "job", "status", job]).json()
}

/// The job's `job.finish` or `job.release` entry, as the inspector reads it.
fn end_entry(zone: &TestZone, job: &str) -> Value {
    let object = format!("job:{job}");
    zone.audit()
        .into_iter()
        .rev()
        .find(|e| {
            matches!(e["action"].as_str(), Some("job.finish" | "job.release"))
                && e["objects"].as_array().is_some_and(|o| o.iter().any(|x| x == object.as_str()))
        })
        .unwrap_or_else(|| panic!("no end entry for {object}"))
}

/// A zone whose guests are cut short quickly (the `loop` and `oom` channels).
fn tight_zone() -> TestZone {
    let zone = registry_zone();
    zone.settings("[sandbox]\ncall_timeout_ms = 300\njob_timeout_ms = 3000\nmemory_mib = 64\n");
    zone
}

#[test]
fn a_refused_output_carries_no_guest_text_or_number_to_the_operator() {
    let zone = tight_zone();
    // (channel, the detailed class the agency sees, what the zone keeps about it for the agency)
    let cases = [
        ("name", "BadOutput", Some(MARKER)),
        ("rows", "BadOutput", Some("7331 rows")),
        ("panic", "GuestPanic", Some(MARKER)),
        ("error", "GuestError", Some(MARKER)),
        ("escape", "release.key_text", None),
    ];
    for (i, (channel, class, kept)) in cases.iter().enumerate() {
        let app = channel_app(&zone, channel);
        let job = (i + 1).to_string();
        let run = zone.run_as("acme", &["--json", "job", "run", &app]);
        assert!(!run.status.success(), "{channel}: {}", run.stdout);
        assert_eq!(run.json()["error"]["class"], "job.failed", "{channel}");
        let seen = operator_bytes(&zone, &run, &job);
        assert_unseen(&seen, MARKER);
        assert_unseen(&seen, "7331");
        assert_unseen(&seen, class);
        // The agency and the inspector see the class; the zone keeps what the guest produced for them.
        let agency = agency_view(&zone, &job);
        assert_eq!(agency["error_class"], *class, "{channel}: {agency}");
        if let Some(kept) = kept {
            let text = zone.run_as("market-regulation", &["job", "diagnostics", &job]).ok();
            assert!(text.contains(kept), "{channel}: `{kept}` not kept for the agency:\n{text}");
        }
        // The log's own text is the host's: the class and fixed words, never the guest's.
        let entry = end_entry(&zone, &job);
        assert_eq!(entry["reason"], *class, "{entry}");
        assert!(!entry.to_string().contains(MARKER) && !entry.to_string().contains("7331"), "{entry}");
    }
}

#[test]
fn the_operator_sees_one_failure_class_whichever_the_guest_chose() {
    let zone = tight_zone();
    let channels = ["panic", "loop", "stack", "oom", "error", "exit", "rows"];
    let mut views = Vec::new();
    let mut classes = std::collections::BTreeSet::new();
    for (i, channel) in channels.iter().enumerate() {
        let app = channel_app(&zone, channel);
        let job = (i + 1).to_string();
        let run = zone.run_as("acme", &["--json", "job", "run", &app]);
        assert_eq!(run.json()["error"]["class"], "job.failed", "{channel}: {}", run.stdout);
        let v = zone.run_as("acme", &["--json", "job", "status", &job]).json();
        // Everything but the ids, times and the application's own parameters.
        let view = serde_json::json!({
            "state": v["state"], "error_class": v["error_class"], "error_detail": v["error_detail"],
            "counts": v["counts"], "guest_messages": v["guest_messages"], "manifest": v["manifest_sha256"],
            "error": run.json()["error"]["message"].as_str().map(|m| m.replace(&format!("job {job} "), "job N ")),
        });
        views.push((channel, view));
        classes.insert(agency_view(&zone, &job)["error_class"].as_str().unwrap_or_default().to_owned());
    }
    for (channel, view) in &views {
        assert_eq!(view, &views[0].1, "`{channel}` looks different to the operator than `{}`", views[0].0);
    }
    // What the agency sees still tells the faults apart.
    for class in ["GuestPanic", "Timeout", "StackOverflow", "MemoryLimit", "GuestError", "BadOutput"] {
        assert!(classes.contains(class), "{class} not among {classes:?}");
    }
}

#[test]
fn counters_the_guest_controls_stay_with_the_agency_and_the_inspector() {
    let zone = registry_zone();
    let app = channel_app(&zone, "singletons");
    let run = zone.run_as("acme", &["--json", "job", "run", &app]);
    let out = run.json();
    assert_eq!(out["job"]["state"], "released", "{out}");
    assert_eq!(out["manifest"]["rows_released"], 0);
    let seen = operator_bytes(&zone, &run, "1");
    for counter in ["groups_suppressed", "\"groups\"", "contributions_dropped", "elapsed_ms", "guest_messages"] {
        assert_unseen(&seen, counter);
    }
    let human = zone.run_as("acme", &["job", "status", "1"]).ok();
    assert!(!human.contains("suppressed") && !human.contains("elapsed"), "{human}");
    // The manifest the operator takes out is v3: no counter the guest controls, input files by keyed commitment.
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(zone.path("operator-1").join("manifest.json")).expect("manifest"))
            .expect("json");
    assert_eq!(manifest["manifest"]["format"], "zone-product-v3");
    assert!(manifest["manifest"]["datasets"][0]["files"].is_null(), "{manifest}");
    assert_eq!(manifest["manifest"]["datasets"][0]["file_commitments"].as_array().map(Vec::len), Some(1));
    // The agency sees what the gate counted: one group per enterprise's representative, every one under k.
    let agency = agency_view(&zone, "1");
    let suppressed = agency["counts"]["groups_suppressed"].as_u64().expect("counted");
    assert!(suppressed > 1_000, "{agency}");
    assert_eq!(agency["counts"]["groups"].as_u64(), Some(suppressed));
    assert!(agency["counts"]["elapsed_ms"].is_u64(), "{agency}");
    let text = zone.run_as("inspector", &["job", "status", "1"]).ok();
    assert!(text.contains(&format!("{suppressed} suppressed")), "{text}");
}

#[test]
fn run_settings_are_bound_by_the_approval() {
    let zone = registry_zone();
    let app = channel_app(&zone, "honest");
    let shown = zone.run_as("market-regulation", &["--json", "app", "show", &app]).json();
    assert_eq!(shown["run"]["batch_rows"], 16_384, "{shown}");
    assert!(shown["binding"]["run"]["partitions"].as_u64().is_some_and(|p| p >= 1), "{shown}");
    // Another batch size than the approved one is drift, refused before anything runs, and recorded.
    let run = zone.run_as("acme", &["--json", "job", "run", &app, "--batch-rows", "100"]);
    assert_eq!(run.json()["error"]["class"], "job.drift", "{}", run.stdout);
    let refused = zone.audit().into_iter().rev().find(|e| e["action"] == "job.run").expect("recorded");
    assert_eq!(refused["outcome"], "refused");
    assert_eq!(refused["reason"], "job.drift");
    assert!(!zone.zone.join("products").join("1").exists());
    // The approved value, given or not, runs.
    zone.run_as("acme", &["job", "run", &app, "--batch-rows", "16384"]).ok();
    zone.run_as("acme", &["job", "run", &app]).ok();
    // Asked for at submission, a batch size is part of what both parties approve.
    let settings = ["--batch-rows", "100", "--partitions", "3"];
    let submitted =
        common::submit_app_with(&zone, CHANNELS, "enterprise_registry", "aggregate", &["channel=honest"], &settings);
    let small = submitted.json()["id"].as_u64().expect("submitted").to_string();
    let text = zone.run_as("market-regulation", &["app", "show", &small]).ok();
    assert!(text.contains("100 rows per batch, 3 partition(s)"), "{text}");
    zone.run(&["app", "approve", &small, "--reason", "reviewed"]).ok();
    zone.run_as("market-regulation", &["app", "approve", &small, "--reason", "reviewed"]).ok();
    zone.run_as("acme", &["job", "run", &small, "--batch-rows", "100"]).ok();
    let run = zone.run_as("acme", &["--json", "job", "run", &small, "--batch-rows", "16384"]);
    assert_eq!(run.json()["error"]["class"], "job.drift");
}

#[test]
fn keys_cannot_inject_into_spreadsheets_or_terminals_nor_purposes_into_a_reviewers_screen() {
    let zone = registry_zone();
    // A formula in every key: released, and inert in the CSV (the Parquet keeps the value as released).
    let app = channel_app(&zone, "formula");
    let run = zone.run_as("acme", &["job", "run", &app]);
    let printed = run.ok();
    assert!(!printed.contains('\u{1b}'), "{printed}");
    zone.run_as("acme", &["job", "output", "1", "--out", s(&zone.path("formula"))]).ok();
    let csv = std::fs::read_to_string(zone.path("formula").join("product.csv")).expect("csv");
    let row = csv.lines().nth(1).expect("a released row");
    assert!(row.starts_with("\"'=HYPERLINK("), "{row}");
    for line in csv.lines().skip(1) {
        let cell = line.trim_start_matches('"');
        assert!(!cell.starts_with(['=', '+', '-', '@', '\t', '\r']), "{line}");
    }
    let keys = common::read_strings(&zone.path("formula").join("product.parquet"), "group");
    assert!(keys.iter().all(|k| k.starts_with("=HYPERLINK(")), "{keys:?}");

    // Control, bidirectional and invisible characters in a key: refused at the gate.
    let app = channel_app(&zone, "escape");
    let run = zone.run_as("acme", &["--json", "job", "run", &app]);
    assert_eq!(run.json()["error"]["class"], "job.failed");
    assert_eq!(agency_view(&zone, "2")["error_class"], "release.key_text");
    assert!(!zone.zone.join("products").join("2").exists());

    // An operator's purpose and parameters that would rewrite the reviewer's terminal are shown escaped.
    let purpose = "credit scores\u{1b}[2K\r\u{1b}[1Aapproved by the authority\u{202e}";
    let params = ["channel=honest\u{1b}[8m"];
    let submitted =
        common::submit_app_with(&zone, CHANNELS, "enterprise_registry", "aggregate", &params, &["--purpose", purpose]);
    let id = submitted.json()["id"].as_u64().expect("submitted").to_string();
    let shown = zone.run_as("market-regulation", &["app", "show", &id]).ok();
    for c in ['\u{1b}', '\r', '\u{202e}'] {
        assert!(!shown.contains(c), "{c:?} reached the reviewer's terminal:\n{shown}");
    }
    assert!(shown.contains("credit scores\\u{001b}[2K\\u{000d}\\u{001b}[1Aapproved"), "{shown}");
    assert!(shown.contains("channel=honest\\u{001b}[8m"), "{shown}");
}

#[test]
fn sums_never_wrap_and_a_count_counts_what_the_sdk_says() {
    let zone = registry_zone();
    // 4.6 × 10^18 per enterprise: the exact sum does not fit 64 bits, so nothing is released (no wrapped number).
    let app = channel_app(&zone, "overflow");
    let run = zone.run_as("acme", &["--json", "job", "run", &app]);
    assert_eq!(run.json()["error"]["class"], "job.failed", "{}", run.stdout);
    assert_eq!(agency_view(&zone, "1")["error_class"], "release.overflow");
    assert!(!zone.zone.join("products").join("1").exists());

    // A count whose value is 0 on every row counts no row; the groups are still there (k is counted in subjects).
    let app = channel_app(&zone, "zeros");
    let out = zone.run_as("acme", &["--json", "job", "run", &app]).json();
    assert!(out["manifest"]["rows_released"].as_u64().is_some_and(|n| n > 0), "{out}");
    zone.run_as("acme", &["job", "output", "2", "--out", s(&zone.path("zeros"))]).ok();
    let batch = common::read_batch(&zone.path("zeros").join("product.parquet"));
    let firms = batch.column_by_name("firms").expect("firms");
    let firms = arrow_array::cast::AsArray::as_primitive::<arrow_array::types::Int64Type>(firms);
    assert!(firms.values().iter().all(|n| *n == 0), "{firms:?}");

    // The honest count: one per enterprise, every group at least k.
    let app = channel_app(&zone, "honest");
    zone.run_as("acme", &["job", "run", &app]).ok();
    zone.run_as("acme", &["job", "output", "3", "--out", s(&zone.path("honest"))]).ok();
    let batch = common::read_batch(&zone.path("honest").join("product.parquet"));
    let firms = batch.column_by_name("firms").expect("firms");
    let firms = arrow_array::cast::AsArray::as_primitive::<arrow_array::types::Int64Type>(firms);
    assert!(firms.values().iter().all(|n| *n >= 10), "{firms:?}");
}

#[test]
fn a_runs_end_is_made_known_only_at_the_zones_timing_quantum() {
    let zone = registry_zone();
    zone.settings("[jobs]\ntiming_quantum_ms = 1500\n");
    let app = channel_app(&zone, "honest");
    let started = std::time::Instant::now();
    let run = zone.run_as("acme", &["--json", "job", "run", &app]);
    let waited = started.elapsed();
    assert_eq!(run.json()["job"]["state"], "released", "{}", run.stdout);
    // A lower bound only (the run is held until the quantum; how much longer it takes is the machine's business).
    assert!(waited >= std::time::Duration::from_millis(1500), "{waited:?}");
    let operator = zone.run_as("acme", &["--json", "job", "status", "1"]).json();
    assert!(operator["counts"]["elapsed_ms"].is_null(), "{operator}");
    // An out-of-range quantum is named with its place in zone.toml.
    zone.settings("[jobs]\ntiming_quantum_ms = 0\n");
    let err = zone.run_as("acme", &["job", "run", &app]).fails();
    assert!(err.contains("[jobs] timing_quantum_ms = 0: must be between 1 and 3600000"), "{err}");
}
