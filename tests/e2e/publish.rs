//! `zone init`, `dataset publish|list|show`, and every bad input leaving the zone exactly as it was.

use std::fs;
use std::path::Path;
use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};

use crate::common::{TestZone, cleanroom, fixture, policy, s, snapshot};

fn publish_fixture(zone: &TestZone, dataset: &str) -> serde_json::Value {
    let run = zone.run(&["--json", "dataset", "publish", "--policy", s(&policy(dataset)), s(&fixture(dataset))]);
    let value = run.json();
    run.ok();
    value
}

#[test]
fn init_creates_an_owner_only_zone_and_refuses_twice() {
    let zone = TestZone::new();
    for f in ["zone.toml", "catalog.db", "keys/signing.ed25519.p8", "keys/token.hmac.key"] {
        assert!(zone.zone.join(f).exists(), "{f} missing");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &str| fs::metadata(zone.zone.join(p)).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode("keys"), 0o700);
        assert_eq!(mode("keys/signing.ed25519.p8"), 0o600);
        assert_eq!(mode("keys/token.hmac.key"), 0o600);
    }
    let before = snapshot(&zone.zone);
    let err = zone.run(&["zone", "init"]).fails();
    assert!(err.contains("is already a zone"), "{err}");
    assert_eq!(snapshot(&zone.zone), before);

    // A folder with other files is not taken over.
    let other = zone.path("other");
    fs::create_dir_all(&other).expect("mkdir");
    fs::write(other.join("notes.txt"), "mine").expect("write");
    let err = cleanroom(&other, &["zone", "init"]).fails();
    assert!(err.contains("is not empty and is not a zone"), "{err}");
    assert_eq!(fs::read_to_string(other.join("notes.txt")).expect("read"), "mine");
}

#[test]
fn publish_the_three_fixtures_list_and_show() {
    let zone = TestZone::new();
    for dataset in datasets_fixtures::DATASETS {
        let v = publish_fixture(&zone, dataset);
        assert_eq!(v["outcome"], "published");
        assert_eq!(v["dataset"], dataset);
        assert_eq!(v["version"], 1);
    }
    let list = zone.run(&["--json", "dataset", "list"]);
    let list = list.json();
    let names: Vec<&str> = list.as_array().expect("array").iter().filter_map(|d| d["name"].as_str()).collect();
    assert_eq!(names, ["clinic_visits", "enterprise_registry", "tax_credit"]);
    assert_eq!(list[1]["rows"], datasets_fixtures::COMMITTED_ROWS);

    let show = zone.run(&["--json", "dataset", "show", "enterprise_registry@1"]).json();
    let class_of = |name: &str| {
        show["columns"].as_array().expect("columns").iter().find(|c| c["name"] == name).map(|c| c["class"].clone())
    };
    assert_eq!(class_of("uscc"), Some("subject".into()));
    assert_eq!(class_of("name"), Some("hidden".into()));
    assert_eq!(class_of("phone"), Some("masked".into()));
    // The authority sees the keyed commitment a manifest carries, not the raw file's hash; the provider sees both.
    assert!(show["files"][0]["sha256"].is_null(), "{show}");
    assert_eq!(show["files"][0]["commitment"].as_str().map(str::len), Some(64));
    let own = zone.run_as("market-regulation", &["--json", "dataset", "show", "enterprise_registry@1"]).json();
    assert_eq!(own["files"][0]["sha256"].as_str().map(str::len), Some(64));
    assert_eq!(own["files"][0]["commitment"], show["files"][0]["commitment"]);
    assert_eq!(show["release"]["min_group_size"], 10);

    // The human table names columns and classes and never prints a value of the data.
    let human = zone.run(&["dataset", "show", "clinic_visits"]).ok();
    assert!(human.contains("patient_id") && human.contains("subject"), "{human}");
    let visits = crate::common::read_strings(&fixture("clinic_visits"), "patient_id");
    for id in visits.iter().take(200) {
        assert!(!human.contains(id.as_str()), "a patient ID appears in `dataset show`");
    }

    // The same bytes and policy again: nothing changes, and the CLI says so.
    let before = snapshot(&zone.zone);
    let again = publish_fixture(&zone, "tax_credit");
    assert_eq!(again["outcome"], "unchanged");
    let human = zone.run(&["dataset", "publish", "--policy", s(&policy("tax_credit")), s(&fixture("tax_credit"))]).ok();
    assert!(human.contains("unchanged"), "{human}");
    assert_eq!(snapshot(&zone.zone), before);

    // A changed policy is a new version; the old one stays readable.
    let stricter =
        fs::read_to_string(policy("tax_credit")).expect("policy").replace("min_group_size = 10", "min_group_size = 25");
    let stricter_path = zone.path("tax_credit_k25.toml");
    fs::write(&stricter_path, stricter).expect("write");
    let v2 =
        zone.run(&["--json", "dataset", "publish", "--policy", s(&stricter_path), s(&fixture("tax_credit"))]).json();
    assert_eq!(v2["version"], 2);
    let v1 = zone.run(&["--json", "dataset", "show", "tax_credit@1"]).json();
    assert_eq!(v1["release"]["min_group_size"], 10);
    let latest = zone.run(&["--json", "dataset", "show", "tax_credit"]).json();
    assert_eq!(latest["release"]["min_group_size"], 25);
    let err = zone.run(&["dataset", "show", "tax_credit@7"]).fails();
    assert!(err.contains("has no version 7 (latest is 2)"), "{err}");
    let err = zone.run(&["dataset", "show", "tax"]).fails();
    assert!(err.contains("no dataset `tax`") && err.contains("tax_credit"), "{err}");

    let verify = zone.run(&["--json", "zone", "verify"]).json();
    assert_eq!(verify["damaged"].as_array().map(Vec::len), Some(0));
    assert_eq!(verify["objects_checked"], 3 + 4, "three data files and four policies");
}

#[test]
fn a_dataset_can_span_several_files() {
    let zone = TestZone::new();
    let registry = fixture("enterprise_registry");
    let copy = zone.path("part2.parquet");
    let batch = crate::common::read_batch(&registry);
    crate::common::write_parquet(&copy, &batch.slice(0, 100));
    let v = zone
        .run(&["--json", "dataset", "publish", "--policy", s(&policy("enterprise_registry")), s(&registry), s(&copy)])
        .json();
    assert_eq!(v["rows"], datasets_fixtures::COMMITTED_ROWS + 100);
    assert_eq!(v["files"].as_array().map(Vec::len), Some(2));
}

/// Runs a publish that must fail, checks its message, and checks that the zone did not change.
#[track_caller]
fn refused(zone: &TestZone, args: &[&str], expected: &[&str]) -> String {
    let before = snapshot(&zone.zone);
    let err = zone.run(args).fails();
    for e in expected {
        assert!(err.contains(e), "expected `{e}` in:\n{err}");
    }
    assert_eq!(snapshot(&zone.zone), before, "the zone changed after a refused command");
    assert!(fs::read_dir(zone.zone.join("tmp")).expect("tmp").next().is_none(), "staging files left behind");
    err
}

#[test]
fn bad_inputs_are_refused_and_change_nothing() {
    let zone = TestZone::new();
    publish_fixture(&zone, "enterprise_registry");
    let registry = fixture("enterprise_registry");
    let registry_policy = fs::read_to_string(policy("enterprise_registry")).expect("policy");

    // An unparseable policy: file, line and column, and the rule.
    let broken = zone.path("broken.toml");
    fs::write(&broken, registry_policy.replace("min_group_size = 10", "min_group_size = = 10")).expect("write");
    let err = refused(&zone, &["dataset", "publish", "--policy", s(&broken), s(&registry)], &["[policy.syntax]"]);
    assert!(err.contains(&format!("{}:12:18:", broken.display())), "{err}");

    // A policy for another schema.
    refused(
        &zone,
        &["dataset", "publish", "--policy", s(&policy("clinic_visits")), s(&registry)],
        &["[column.unknown] column `patient_id` is not in the dataset", "[column.unclassified] dataset column `uscc`"],
    );

    // An unclassified column, with the valid classes listed.
    let unclassified = zone.path("unclassified.toml");
    let text: String = registry_policy.lines().filter(|l| !l.starts_with("phone")).map(|l| format!("{l}\n")).collect();
    fs::write(&unclassified, text).expect("write");
    refused(
        &zone,
        &["dataset", "publish", "--policy", s(&unclassified), s(&registry)],
        &["[column.unclassified] dataset column `phone` (Utf8) has no class", "valid: `subject`, `hidden`"],
    );

    // A corrupt Parquet file: the middle overwritten.
    let mut bytes = fs::read(&registry).expect("read");
    let mid = bytes.len() / 2;
    bytes[mid..mid + 4096].fill(0xff);
    let corrupt = zone.path("corrupt.parquet");
    fs::write(&corrupt, &bytes).expect("write");
    refused(&zone, &["dataset", "publish", "--policy", s(&policy("enterprise_registry")), s(&corrupt)], &[s(&corrupt)]);

    // A truncated Parquet file.
    let truncated = zone.path("truncated.parquet");
    fs::write(&truncated, &fs::read(&registry).expect("read")[..100_000]).expect("write");
    refused(
        &zone,
        &["dataset", "publish", "--policy", s(&policy("enterprise_registry")), s(&truncated)],
        &[&format!("{} is not a readable Parquet file", truncated.display())],
    );

    // Not Parquet at all.
    refused(
        &zone,
        &["dataset", "publish", "--policy", s(&policy("enterprise_registry")), s(&policy("enterprise_registry"))],
        &["is not a readable Parquet file"],
    );

    // A missing file, a missing policy.
    let missing = zone.path("nowhere.parquet");
    refused(
        &zone,
        &["dataset", "publish", "--policy", s(&policy("enterprise_registry")), s(&missing)],
        &[&format!("{}: no such file", missing.display())],
    );
    let missing_policy = zone.path("nowhere.toml");
    refused(
        &zone,
        &["dataset", "publish", "--policy", s(&missing_policy), s(&registry)],
        &["nowhere.toml: no such file"],
    );

    // --name that disagrees with the policy.
    refused(
        &zone,
        &["dataset", "publish", "--name", "registry", "--policy", s(&policy("enterprise_registry")), s(&registry)],
        &["the policy is for dataset `enterprise_registry`, but --name says `registry`"],
    );

    // Another agency publishing under an existing dataset's name.
    let hijack = zone.path("hijack.toml");
    fs::write(&hijack, registry_policy.replace("provider = \"market-regulation\"", "provider = \"taxation\""))
        .expect("write");
    refused(
        &zone,
        &["dataset", "publish", "--policy", s(&hijack), s(&registry)],
        &["belongs to provider `market-regulation`"],
    );

    // Files of different schemas in one version.
    refused(
        &zone,
        &["dataset", "publish", "--policy", s(&policy("enterprise_registry")), s(&registry), s(&fixture("tax_credit"))],
        &["schema differs"],
    );
}

#[test]
fn identifiers_in_a_plain_column_are_refused() {
    let zone = TestZone::new();
    // A clerk marks a column of resident IDs as plain, without declaring its format.
    let ids = crate::common::read_strings(&fixture("clinic_visits"), "patient_id");
    let n = 500;
    let schema = Arc::new(Schema::new(vec![
        Field::new("case_no", DataType::Utf8, false),
        Field::new("contact_id", DataType::Utf8, false),
    ]));
    let case_no: ArrayRef = Arc::new(StringArray::from((0..n).map(|i| format!("C{i:05}")).collect::<Vec<_>>()));
    let contact: ArrayRef = Arc::new(StringArray::from(ids[..n].to_vec()));
    let batch = RecordBatch::try_new(schema, vec![case_no, contact]).expect("batch");
    let file = zone.path("cases.parquet");
    crate::common::write_parquet(&file, &batch);
    let policy_path = zone.path("cases.toml");
    fs::write(
        &policy_path,
        r#"version = 1
[dataset]
name = "cases"
provider = "health-commission"
domains = ["health"]
[release]
min_group_size = 10
max_output_rows = 100
max_output_bytes = 65536
max_groups_per_subject = 1
modes = ["aggregate"]
[columns]
case_no = { class = "subject" }
contact_id = { class = "plain" }
"#,
    )
    .expect("write");
    refused(
        &zone,
        &["dataset", "publish", "--policy", s(&policy_path), s(&file)],
        &["column `contact_id` is `plain` but 500 of 500 sampled values are valid resident_id values"],
    );
}

#[test]
fn commands_on_an_uninitialized_zone_fail_clearly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let nowhere = dir.path().join("no-zone");
    for args in [
        vec!["dataset", "list"],
        vec!["dataset", "show", "x"],
        vec!["dataset", "publish", "--policy", s(&policy("tax_credit")), s(&fixture("tax_credit"))],
    ] {
        let err = cleanroom(&nowhere, &args).fails();
        assert!(err.contains("is not an initialized zone"), "{err}");
        assert!(err.contains("zone init"), "the error says how to fix it: {err}");
    }
    assert!(!nowhere.exists(), "a failed command must not create the zone folder");
    // No zone at all.
    let out = std::process::Command::new(crate::common::BIN)
        .args(["dataset", "list"])
        .env_remove("CLEANROOM_ZONE")
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("pass --zone DIR or set CLEANROOM_ZONE"));
}

#[test]
fn json_errors_carry_the_class_and_rules() {
    let zone = TestZone::new();
    let run =
        zone.run(&["--json", "dataset", "publish", "--policy", s(&policy("clinic_visits")), s(&fixture("tax_credit"))]);
    let value = run.json();
    assert!(!run.status.success());
    assert_eq!(value["error"]["class"], "policy.refused");
    let rules: Vec<&str> =
        value["error"]["rules"].as_array().expect("rules").iter().filter_map(|r| r.as_str()).collect();
    assert!(rules.contains(&"column.unknown") && rules.contains(&"column.unclassified"), "{rules:?}");
}

#[test]
fn cleanroom_zone_and_cleanroom_as_env_stand_for_the_flags() {
    let zone = TestZone::new();
    let out = std::process::Command::new(crate::common::BIN)
        .args(["--json", "zone", "status"])
        .env("CLEANROOM_ZONE", &zone.zone)
        .env("CLEANROOM_AS", crate::common::AUTHORITY)
        .output()
        .expect("run");
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["datasets"], 0);
    let _ = Path::new(".");
}
