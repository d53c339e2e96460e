//! Reviewed mode through the CLI: a job's artifacts are held in the zone, read only by the providing agency, leave
//! only once it has released them (signed, verified offline), and hostile artifacts (a dump of rows, one over the
//! size cap, a name that climbs out of its folder) never reach the operator.

use std::collections::BTreeMap;

use arrow_array::Array;
use arrow_array::cast::AsArray;
use arrow_array::types::{Int32Type, Int64Type};
use serde_json::Value;

use crate::common::{TestZone, approved_app, fixture, grant_acme, registry_zone, s, submit_app};

const MODEL: &str = example_guests::CAPITAL_MODEL.path;
const HOSTILE: &str = example_guests::HOSTILE_RELEASE.path;
const NAMES: &str = example_guests::HOSTILE_COMPRESSED.path;
const FINANCE: &str = example_guests::FINANCE_CAPITAL.path;

/// `module` in reviewed mode over the registry, approved by both parties.
fn reviewed_app(zone: &TestZone, module: &str, params: &[&str]) -> String {
    approved_app(zone, module, "enterprise_registry", "reviewed", params)
}

#[track_caller]
fn class_of(run: crate::common::Run) -> String {
    assert!(!run.status.success(), "should be refused: {} {}", run.stdout, run.stderr);
    run.json()["error"]["class"].as_str().unwrap_or_default().to_owned()
}

/// The artifacts of `job` as `who` lists them, by name.
fn artifacts(zone: &TestZone, who: &str, job: u64) -> BTreeMap<String, Value> {
    let v = zone.run_as(who, &["--json", "artifact", "list", "--job", &job.to_string()]).json();
    v.as_array().expect("list").iter().map(|a| (a["name"].as_str().unwrap_or_default().to_owned(), a.clone())).collect()
}

/// Firms and least-squares slope of ln(1 + capital) on ln(1 + employees) per industry, from the raw fixture.
fn expected_model() -> BTreeMap<String, (u64, f64)> {
    let file = std::fs::File::open(fixture("enterprise_registry")).expect("fixture");
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .expect("parquet")
        .build()
        .expect("reader");
    let mut sums: BTreeMap<String, [f64; 5]> = BTreeMap::new();
    for batch in reader {
        let batch = batch.expect("batch");
        let industry = batch.column_by_name("industry").expect("industry").as_string::<i32>().clone();
        let capital = batch.column_by_name("reg_capital").expect("capital").as_primitive::<Int64Type>().clone();
        let employees = batch.column_by_name("employees").expect("employees").as_primitive::<Int32Type>().clone();
        for i in 0..batch.num_rows() {
            if industry.is_null(i) || capital.is_null(i) || employees.is_null(i) {
                continue;
            }
            let x = f64::from(employees.value(i).max(0)).ln_1p();
            let y = (capital.value(i).max(0) as f64).ln_1p();
            let s = sums.entry(industry.value(i).to_owned()).or_default();
            s[0] += 1.0;
            s[1] += x;
            s[2] += y;
            s[3] += x * x;
            s[4] += x * y;
        }
    }
    sums.into_iter()
        .filter(|(_, s)| s[0] >= 30.0)
        .map(|(k, s)| (k, (s[0] as u64, (s[0] * s[4] - s[1] * s[2]) / (s[0] * s[3] - s[1] * s[1]))))
        .collect()
}

#[test]
fn a_reviewed_run_holds_its_artifacts_until_the_agency_releases_them() {
    let zone = registry_zone();
    let app = reviewed_app(&zone, MODEL, &[]);
    let run = zone.run_as("acme", &["--json", "job", "run", &app]);
    let out = run.json();
    run.ok();
    // The aggregate product is released through the gate as in aggregate mode; the artifacts are only named.
    assert_eq!(out["job"]["state"], "released", "{out}");
    // The operator learns how many artifacts are held, not their names, sizes or hashes (a name, or the hash of a
    // short artifact, could carry a value out).
    assert_eq!(out["manifest"]["artifacts_held"], 2, "{out}");
    let job = out["job"]["id"].as_u64().expect("job");
    let seen = zone.run_as("acme", &["--json", "artifact", "list", "--job", &job.to_string()]).json();
    for a in seen.as_array().expect("list") {
        assert_eq!(
            (&a["name"], &a["sha256"], &a["bytes"], &a["redacted"]),
            (&"".into(), &"".into(), &0.into(), &true.into())
        );
        assert_eq!(a["state"], "held");
        assert_eq!(a["waiting_for"][0], "market-regulation");
    }
    let listed = artifacts(&zone, "market-regulation", job);
    assert_eq!(listed["model.json"]["state"], "held");
    let model_id = listed["model.json"]["id"].as_u64().expect("id").to_string();
    let report_id = listed["report.md"]["id"].as_u64().expect("id").to_string();
    let out_dir = zone.path("model-out");
    let early = zone.run_as("acme", &["--json", "artifact", "output", &model_id, "--out", s(&out_dir)]);
    assert_eq!(class_of(early), "artifact.not_released");
    assert!(!out_dir.join("model.json").exists());

    // Only the providing agency reads the content: not the operator, the authority, the inspector or another
    // agency. Each refusal is recorded.
    for who in ["acme", "dsb", "inspector", "taxation"] {
        let class = class_of(zone.run_as(who, &["--json", "artifact", "review", &model_id]));
        assert!(class.starts_with("access."), "{who}: {class}");
    }
    let review = zone.run_as("market-regulation", &["--json", "artifact", "review", &model_id]).json();
    let text = review["content"]["text"].as_str().expect("text content");
    let model: Value = serde_json::from_str(text).expect("the model is JSON");
    // The model is the one the raw rows give (compute_only columns reach the guest as they are).
    let expected = expected_model();
    let sections = model["sections"].as_object().expect("sections");
    assert_eq!(sections.len(), expected.len(), "{model}");
    for (section, (firms, slope)) in &expected {
        assert_eq!(sections[section]["firms"].as_u64(), Some(*firms), "{section}");
        let got = sections[section]["slope"].as_f64().expect("slope");
        assert!((got - slope).abs() < 1e-5, "{section}: slope {got} vs {slope}");
    }
    let human = zone.run_as("market-regulation", &["artifact", "review", &report_id]).ok();
    assert!(human.contains("content (text)") && human.contains("| section | firms |"), "{human}");

    // A decision needs a reason; the agency releases the model and rejects the report; decisions are final.
    let no_reason = zone.run_as("market-regulation", &["--json", "artifact", "release", &model_id, "--reason", " "]);
    assert_eq!(class_of(no_reason), "input.reason");
    let operator_release = zone.run_as("acme", &["--json", "artifact", "release", &model_id, "--reason", "mine"]);
    assert_eq!(class_of(operator_release), "access.role");
    let released = zone
        .run_as("market-regulation", &["--json", "artifact", "release", &model_id, "--reason", "aggregated"])
        .json();
    assert_eq!(released["state"], "released", "{released}");
    zone.run_as("market-regulation", &["artifact", "reject", &report_id, "--reason", "names small sections"]).ok();
    let again = zone.run_as("market-regulation", &["--json", "artifact", "release", &report_id, "--reason", "oops"]);
    assert_eq!(class_of(again), "artifact.decided");

    // The operator takes the released model out with a signed manifest that verifies offline; the rejected report
    // never leaves.
    zone.run_as("acme", &["artifact", "output", &model_id, "--out", s(&out_dir)]).ok();
    let bytes = std::fs::read(out_dir.join("model.json")).expect("model");
    assert_eq!(bytes, text.as_bytes());
    let verified = zone.run(&["--json", "product", "verify", s(&out_dir)]).json();
    assert_eq!(verified["files"][0]["name"], "model.json", "{verified}");
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(out_dir.join("manifest.json")).expect("manifest")).expect("json");
    assert_eq!(manifest["manifest"]["format"], "zone-artifact-v3");
    assert_eq!(manifest["manifest"]["released_by"][0], "market-regulation:market-regulation");
    assert_eq!(manifest["manifest"]["job"], job);
    let rejected = zone.run_as("acme", &["--json", "artifact", "output", &report_id, "--out", s(&zone.path("r"))]);
    assert_eq!(class_of(rejected), "artifact.not_released");
    // Tampering with the released file is caught offline.
    std::fs::write(out_dir.join("model.json"), b"{}").expect("tamper");
    zone.run(&["product", "verify", s(&out_dir)]).fails();

    // The guest's own log line is for the agency and the inspector, not the operator.
    let job = job.to_string();
    let text = zone.run_as("market-regulation", &["job", "diagnostics", &job]).ok();
    assert!(text.contains("model over"), "{text}");
    zone.run_as("inspector", &["job", "diagnostics", &job]).ok();
    assert_eq!(class_of(zone.run_as("acme", &["--json", "job", "diagnostics", &job])), "access.role");

    // Every step is in the audit log.
    let actions: Vec<String> = zone
        .audit()
        .iter()
        .filter(|e| {
            e["objects"]
                .as_array()
                .is_some_and(|o| o.iter().any(|x| x.as_str() == Some(&format!("artifact:{model_id}"))))
        })
        .map(|e| format!("{}:{}", e["action"].as_str().unwrap_or_default(), e["outcome"].as_str().unwrap_or_default()))
        .collect();
    for expected in ["artifact.hold:ok", "artifact.read:refused", "artifact.review:refused", "artifact.review:ok"] {
        assert!(actions.iter().any(|a| a == expected), "{expected} missing from {actions:?}");
    }
    assert!(actions.iter().any(|a| a == "artifact.release:ok"), "{actions:?}");
    assert!(actions.iter().any(|a| a == "artifact.read:ok"), "{actions:?}");
}

#[test]
fn hostile_artifacts_never_reach_the_operator() {
    let zone = registry_zone();
    // Every row's district and representative token in an artifact: held; the agency sees what it is and rejects.
    let dump = reviewed_app(&zone, HOSTILE, &["artifact=dump"]);
    let out = zone.run_as("acme", &["--json", "job", "run", &dump]).json();
    let job = out["job"]["id"].as_u64().expect("job");
    let listed = artifacts(&zone, "market-regulation", job);
    let id = listed["rows.csv"]["id"].as_u64().expect("id").to_string();
    // The whole content goes to a file on the agency's side; the terminal gets its start.
    let copy = zone.path("review-rows.csv");
    let review = zone.run_as("market-regulation", &["--json", "artifact", "review", &id, "--out", s(&copy)]).json();
    assert_eq!(review["shown_bytes"], 65_536);
    let dumped = std::fs::read_to_string(&copy).expect("review copy");
    assert!(dumped.lines().count() > 19_000, "rows were dumped: {}", dumped.lines().count());
    zone.run_as("market-regulation", &["artifact", "reject", &id, "--reason", "row-level dump"]).ok();
    let refused = zone.run_as("acme", &["--json", "artifact", "output", &id, "--out", s(&zone.path("dump"))]);
    assert_eq!(class_of(refused), "artifact.not_released");
    assert!(!zone.path("dump").join("rows.csv").exists());

    // Over the policy's max_artifact_bytes (8 MiB): the run releases nothing and nothing is held.
    let big = reviewed_app(&zone, HOSTILE, &["artifact=big"]);
    let run = zone.run_as("acme", &["--json", "job", "run", &big]);
    assert_eq!(class_of(run), "job.failed");
    let agency = zone.run_as("market-regulation", &["--json", "job", "status", "2"]).json();
    assert_eq!(agency["error_class"], "release.max_artifact_bytes", "{agency}");
    assert!(artifacts(&zone, "market-regulation", 2).is_empty());

    // A name that climbs out of its folder (the guest bypasses the SDK): refused by the host, nothing written.
    let names = reviewed_app(&zone, NAMES, &["attack=names"]);
    let run = zone.run_as("acme", &["--json", "job", "run", &names]);
    assert_eq!(class_of(run), "job.failed");
    let agency = zone.run_as("market-regulation", &["--json", "job", "status", "3"]).json();
    assert_eq!(agency["error_class"], "BadOutput", "{agency}");
    assert!(artifacts(&zone, "market-regulation", 3).is_empty());
    let escaped: Vec<_> = walk(zone.dir.path()).into_iter().filter(|p| p.ends_with("escape.txt")).collect();
    assert!(escaped.is_empty(), "{escaped:?}");
}

#[test]
fn reviewed_mode_needs_a_module_with_finish_and_a_policy_that_allows_it() {
    let zone = registry_zone();
    // A row-transform module (no `finish`) is refused for reviewed mode at submission, and accepted for aggregate.
    let wasm = zone.path("rows.wasm");
    let declared = arrow_schema::Schema::new(vec![
        zone_sandbox::output::key("district", arrow_schema::DataType::Utf8),
        zone_sandbox::output::measure("firms", arrow_schema::DataType::Int64, zone_sandbox::Aggregate::Count, None),
    ]);
    let component = zone_sandbox::testing::component(
        &declared,
        zone_sandbox::testing::INIT_OK,
        zone_sandbox::testing::ECHO,
        "",
        b"",
        "",
    )
    .expect("wat");
    std::fs::write(&wasm, component).expect("write");
    let submit = |mode: &str| submit_app(&zone, s(&wasm), "enterprise_registry", mode, &[]);
    let run = submit("reviewed");
    let stderr = run.stderr.clone();
    assert_eq!(class_of(run), "ContractMismatch");
    assert!(stderr.contains("artifact world"), "{stderr}");
    submit("aggregate").ok();

    // An SDK module runs in aggregate mode too, where `finish` is never called and nothing is held.
    let id = approved_app(&zone, FINANCE, "enterprise_registry", "aggregate", &[]);
    let out = zone.run_as("acme", &["--json", "job", "run", &id]).json();
    assert!(out["manifest"].get("artifacts_held").is_none(), "{out}");
    assert!(artifacts(&zone, "market-regulation", out["job"]["id"].as_u64().expect("job")).is_empty());

    // tax_credit's policy allows aggregate mode only.
    zone.publish_fixture("tax_credit");
    grant_acme(&zone, "taxation");
    let run = submit_app(&zone, MODEL, "tax_credit", "reviewed", &[]);
    let stderr = run.stderr.clone();
    assert!(!run.status.success());
    assert!(stderr.contains("does not allow mode `reviewed`"), "{stderr}");
}

/// Every file under `dir`.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// A complaint that withdraws a subject from the version a held artifact's run read flags the artifact: it can
/// only be rejected, never released.
#[test]
fn a_held_artifact_of_a_withdrawn_version_can_only_be_rejected() {
    let zone = registry_zone();
    let app = reviewed_app(&zone, MODEL, &[]);
    let out = zone.run_as("acme", &["--json", "job", "run", &app]).json();
    let job = out["job"]["id"].as_u64().expect("job");
    let listed = artifacts(&zone, "market-regulation", job);
    let model_id = listed["model.json"]["id"].as_u64().expect("id").to_string();
    assert!(listed["model.json"].get("withdrawn").is_none(), "{:?}", listed["model.json"]);

    let subject = crate::common::read_strings(&fixture("enterprise_registry"), "uscc").swap_remove(0);
    let evidence = zone.path("evidence.txt");
    std::fs::write(&evidence, "the firm's letter").expect("evidence");
    let file = ["--json", "complaint", "file", "--dataset", "enterprise_registry", "--subject", &subject];
    let mut args = file.to_vec();
    args.extend(["--evidence", s(&evidence)]);
    let complaint = zone.run_as("market-regulation", &args).json()["id"].as_u64().expect("complaint").to_string();
    zone.run_as("market-regulation", &["complaint", "resolve", &complaint, "--withdraw", "--reason", "verified"]).ok();

    let listed = artifacts(&zone, "market-regulation", job);
    let flagged = format!("enterprise_registry@1 (complaint {complaint})");
    assert_eq!(listed["model.json"]["withdrawn"][0].as_str(), Some(flagged.as_str()), "{:?}", listed["model.json"]);
    let human = zone.run_as("market-regulation", &["artifact", "list", "--job", &job.to_string()]).ok();
    assert!(human.contains("reject only"), "{human}");
    let release = zone.run_as("market-regulation", &["--json", "artifact", "release", &model_id, "--reason", "ok"]);
    assert_eq!(class_of(release), "dataset.withdrawn");
    let refused = zone.audit().into_iter().rev().find(|e| e["action"] == "artifact.release").expect("entry");
    assert_eq!((refused["outcome"].as_str(), refused["reason"].as_str()), (Some("refused"), Some("dataset.withdrawn")));
    let rejected = zone
        .run_as("market-regulation", &["--json", "artifact", "reject", &model_id, "--reason", "withdrawn subject"])
        .json();
    assert_eq!(rejected["state"], "rejected", "{rejected}");
}
