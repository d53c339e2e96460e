//! Jobs through the CLI: what a run releases (only gated aggregates, recomputed here from the raw fixture; no raw
//! value in any byte the operator can read), what hostile guests cannot do, which runs are refused (and recorded),
//! the output guard, signed products verified offline, and the development loop on mock rows.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use arrow_array::cast::AsArray;
use arrow_array::types::{Int32Type, Int64Type};
use arrow_array::{Array, RecordBatch};
use serde_json::Value;

use crate::common::{self, Run, TestZone, day, fixture, grant_acme, policy, registry_zone, s};

const FINANCE: &str = example_guests::FINANCE_CAPITAL.path;
const HOSTILE: &str = example_guests::HOSTILE_RELEASE.path;
const PANIC: &str = example_guests::HOSTILE_PANIC.path;

/// `module` over the registry in aggregate mode with `params`, approved by both parties.
fn approved_app(zone: &TestZone, module: &str, params: &[&str]) -> String {
    common::approved_app(zone, module, "enterprise_registry", "aggregate", params)
}

/// Runs a job as `acme`; its JSON (`job`, `manifest`) when it released, else the failed run.
fn run_job(zone: &TestZone, app: &str) -> Run {
    zone.run_as("acme", &["--json", "job", "run", app])
}

#[track_caller]
fn refused_class(run: Run) -> String {
    let v = run.json();
    assert!(!run.status.success(), "should be refused: {}", run.stdout);
    v["error"]["class"].as_str().unwrap_or_default().to_owned()
}

fn read_parquet(path: &Path) -> Vec<RecordBatch> {
    let file = std::fs::File::open(path).expect("open parquet");
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .expect("parquet")
        .build()
        .expect("reader");
    reader.collect::<Result<Vec<_>, _>>().expect("batches")
}

/// Every value of the raw fixture's columns that must never leave: the subject, hidden columns, and the values
/// before masking and tokenization.
fn raw_secrets() -> Vec<String> {
    let mut out = BTreeSet::new();
    for batch in read_parquet(&fixture("enterprise_registry")) {
        for name in ["uscc", "name", "legal_rep_id", "phone"] {
            let column = batch.column_by_name(name).expect("column");
            let strings = column.as_string::<i32>();
            for v in strings.iter().flatten() {
                if v.len() >= 6 {
                    out.insert(v.to_owned());
                }
            }
        }
    }
    out.into_iter().collect()
}

/// Fails if any secret occurs anywhere in `bytes` (at any byte offset, UTF-8 or not).
#[track_caller]
fn assert_no_secret(what: &str, bytes: &[u8], secrets: &[String]) {
    let mut by_len: BTreeMap<usize, std::collections::HashSet<&[u8]>> = BTreeMap::new();
    for s in secrets {
        by_len.entry(s.len()).or_default().insert(s.as_bytes());
    }
    for (len, set) in &by_len {
        for window in bytes.windows(*len) {
            assert!(!set.contains(window), "{what} holds the raw value {}", String::from_utf8_lossy(window));
        }
    }
}

#[test]
fn a_run_releases_gated_aggregates_in_a_signed_product_and_no_raw_value() {
    let zone = registry_zone();
    let app = approved_app(&zone, FINANCE, &[]);
    let run = run_job(&zone, &app);
    let out = run.json();
    let stdout = run.stdout.clone();
    run.ok();
    assert_eq!(out["job"]["state"], "released");
    let manifest = &out["manifest"];
    assert_eq!(manifest["rows_read"], 20_000);
    let released = manifest["rows_released"].as_u64().expect("rows");
    assert!(released > 0, "{manifest}");
    assert_eq!(manifest["datasets"][0]["dataset"], "enterprise_registry");
    assert_eq!(manifest["release"]["min_group_size"], 10);

    // The operator takes the product out and checks it against the zone's key.
    let dir = zone.path("product");
    zone.run_as("acme", &["job", "output", "1", "--out", s(&dir)]).ok();
    let key = zone.run(&["--json", "zone", "status"]).json()["public_key"].as_str().expect("key").to_owned();
    let verified = zone.run_as("acme", &["product", "verify", s(&dir), "--key", &key]).ok();
    assert!(verified.contains("verified"), "{verified}");
    let table = read_parquet(&dir.join("product.parquet"));
    assert_eq!(table.iter().map(RecordBatch::num_rows).sum::<usize>() as u64, released);

    // No raw identifier anywhere the operator can read: the product's files, and what the commands printed.
    let secrets = raw_secrets();
    assert!(secrets.len() > 40_000, "{} secrets", secrets.len());
    for name in ["product.parquet", "product.csv", "manifest.json"] {
        assert_no_secret(name, &std::fs::read(dir.join(name)).expect("read"), &secrets);
    }
    assert_no_secret("job run output", stdout.as_bytes(), &secrets);
    for args in [&["--json", "job", "status", "1"][..], &["--json", "job", "list"], &["job", "status", "1"]] {
        let printed = zone.run_as("acme", args).ok();
        assert_no_secret("job status", printed.as_bytes(), &secrets);
    }

    // A changed byte of the product, or another key, fails verification.
    let csv = dir.join("product.csv");
    let mut bytes = std::fs::read(&csv).expect("csv");
    let last = bytes.len() - 2;
    bytes[last] ^= 1;
    std::fs::write(&csv, &bytes).expect("write");
    let err = zone.run_as("acme", &["product", "verify", s(&dir)]).fails();
    assert!(err.contains("product.csv") && err.contains("SHA-256"), "{err}");
    bytes[last] ^= 1;
    std::fs::write(&csv, &bytes).expect("write");
    let other = "00".repeat(32);
    let err = zone.run_as("acme", &["product", "verify", s(&dir), "--key", &other]).fails();
    assert!(err.contains("not by the expected zone key"), "{err}");

    // Only the operator who ran it takes the product out; others are refused and recorded.
    let err = zone.run_as("zenith", &["job", "output", "1", "--out", s(&zone.path("z"))]).fails();
    assert!(err.contains("may not take this product out of the zone"), "{err}");
    let err = zone.run_as("inspector", &["job", "output", "1", "--out", s(&zone.path("i"))]).fails();
    assert!(err.contains("may not"), "{err}");
    let audit = zone.audit();
    let actions: Vec<(&str, &str)> =
        audit.iter().map(|e| (e["action"].as_str().unwrap_or(""), e["outcome"].as_str().unwrap_or(""))).collect();
    for expected in [("job.start", "ok"), ("job.release", "ok"), ("product.read", "ok"), ("product.read", "refused")] {
        assert!(actions.contains(&expected), "{expected:?} not in {actions:?}");
    }
}

#[test]
fn every_released_group_has_k_distinct_subjects_recomputed_from_the_raw_rows() {
    let zone = registry_zone();
    let app = approved_app(&zone, HOSTILE, &["attack=none"]);
    let out = run_job(&zone, &app).json();
    assert_eq!(out["job"]["state"], "released", "{out}");
    zone.run_as("acme", &["job", "output", "1", "--out", s(&zone.path("p"))]).ok();
    let released = read_parquet(&zone.path("p").join("product.parquet"));

    // Independently, from the raw fixture: distinct enterprises and clamped employee sums per district.
    let mut subjects: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut employees: BTreeMap<String, f64> = BTreeMap::new();
    for batch in read_parquet(&fixture("enterprise_registry")) {
        let district = batch.column_by_name("district").expect("district").as_string::<i32>().clone();
        let uscc = batch.column_by_name("uscc").expect("uscc").as_string::<i32>().clone();
        let emp = batch.column_by_name("employees").expect("employees").as_primitive::<Int32Type>().clone();
        for i in 0..batch.num_rows() {
            if district.is_null(i) {
                continue;
            }
            let d = district.value(i).to_owned();
            subjects.entry(d.clone()).or_default().insert(uscc.value(i).to_owned());
            if !emp.is_null(i) {
                *employees.entry(d).or_default() += (f64::from(emp.value(i)) / 1000.0).clamp(0.0, 100.0);
            }
        }
    }
    let expected: BTreeMap<&String, usize> =
        subjects.iter().map(|(d, s)| (d, s.len())).filter(|(_, n)| *n >= 10).collect();
    let suppressed = subjects.values().filter(|s| s.len() < 10).count();
    let mut got = BTreeMap::new();
    for batch in &released {
        let group = batch.column_by_name("group").expect("group").as_string::<i32>();
        let n = batch.column_by_name("enterprises").expect("n").as_primitive::<Int64Type>();
        let sum = batch.column_by_name("employees_k").expect("sum").as_primitive::<arrow_array::types::Float64Type>();
        for i in 0..batch.num_rows() {
            let d = group.value(i).to_owned();
            assert!(n.value(i) >= 10, "group {d} released with {} enterprises", n.value(i));
            let want = employees.get(&d).copied().unwrap_or(0.0);
            assert!((sum.value(i) - want).abs() < 1e-6, "{d}: {} vs {want}", sum.value(i));
            got.insert(d, n.value(i) as usize);
        }
    }
    let got: BTreeMap<&String, usize> = got.iter().map(|(d, n)| (d, *n)).collect();
    assert_eq!(got, expected);
    // What the gate suppressed is the agency's to see (a count the guest controls); the manifest does not say.
    assert!(out["manifest"]["groups_suppressed"].is_null(), "{out}");
    let agency = zone.run_as("market-regulation", &["--json", "job", "status", "1"]).json();
    assert_eq!(agency["counts"]["groups_suppressed"].as_u64(), Some(suppressed as u64), "{agency}");
}

#[test]
fn hostile_guests_cannot_get_around_the_release_gate() {
    let zone = registry_zone();
    // Keyed by a per-enterprise value: every group is one enterprise; nothing is released.
    let person = approved_app(&zone, HOSTILE, &["attack=person"]);
    let out = run_job(&zone, &person).json();
    assert_eq!(out["manifest"]["rows_released"], 0, "{out}");
    let agency = zone.run_as("market-regulation", &["--json", "job", "status", "1"]).json();
    assert!(agency["counts"]["groups_suppressed"].as_u64().unwrap_or(0) > 1_000, "{agency}");

    // Copying one row into every row of a batch: each output row is still attributed to its own input row's
    // subject, so the counts are the rows' own and every released group has k distinct enterprises.
    let copy = approved_app(&zone, HOSTILE, &["attack=copy"]);
    let out = run_job(&zone, &copy).json();
    zone.run_as("acme", &["job", "output", "2", "--out", s(&zone.path("copy"))]).ok();
    let mut counted = 0;
    for batch in read_parquet(&zone.path("copy").join("product.parquet")) {
        let n = batch.column_by_name("enterprises").expect("n").as_primitive::<Int64Type>();
        for v in n.values() {
            assert!(*v >= 10);
            counted += v;
        }
    }
    assert!(counted <= 20_000, "{counted} contributions from 20,000 rows: {out}");

    // A measure far out of its bounds is clamped to them (100 per row).
    let bounds = approved_app(&zone, HOSTILE, &["attack=bounds"]);
    run_job(&zone, &bounds).ok();
    zone.run_as("acme", &["job", "output", "3", "--out", s(&zone.path("bounds"))]).ok();
    for batch in read_parquet(&zone.path("bounds").join("product.parquet")) {
        let n = batch.column_by_name("enterprises").expect("n").as_primitive::<Int64Type>();
        let sum = batch.column_by_name("employees_k").expect("sum").as_primitive::<arrow_array::types::Float64Type>();
        for i in 0..batch.num_rows() {
            assert_eq!(sum.value(i), 100.0 * n.value(i) as f64);
        }
    }

    // A guest that panics with values in its message: the operator gets the class, never the text.
    let panic = approved_app(&zone, PANIC, &[]);
    let run = run_job(&zone, &panic);
    let printed = format!("{}{}", run.stdout, run.stderr);
    assert_eq!(refused_class(run), "job.failed");
    assert!(!printed.contains("110101199003077777") && !printed.contains("GuestPanic"), "{printed}");
    let agency = zone.run_as("market-regulation", &["--json", "job", "status", "4"]).json();
    assert_eq!(agency["error_class"], "GuestPanic", "{agency}");
    let status = zone.run_as("acme", &["--json", "job", "status", "4"]).ok();
    assert!(status.contains("\"failed\"") && !status.contains("110101199003077777"), "{status}");
    assert!(!zone.zone.join("products").join("4").exists());
}

#[test]
fn runs_are_refused_when_grant_module_or_data_changed_and_each_refusal_is_recorded() {
    let zone = registry_zone();
    let app = approved_app(&zone, HOSTILE, &["attack=none"]);
    let refusals =
        |zone: &TestZone| zone.audit().iter().filter(|e| e["action"] == "job.run" && e["outcome"] == "refused").count();

    // Another operator cannot run it.
    assert_eq!(refused_class(zone.run_as("zenith", &["--json", "job", "run", &app])), "access.scope");

    // Suspended grant.
    zone.run(&["grant", "suspend", "acme", "--reason", "audit finding", "--correct-by", &day(30)]).ok();
    assert_eq!(refused_class(run_job(&zone, &app)), "access.grant");
    zone.run(&["grant", "resume", "acme", "--reason", "corrected"]).ok();

    // Expired grant: the end date passed (set in the catalog, as time would).
    let catalog = zone.zone.join("catalog.db");
    let conn = rusqlite::Connection::open(&catalog).expect("catalog");
    conn.execute("UPDATE grants SET valid_from = '2020-01-01', valid_to = '2020-12-31'", []).expect("expire");
    drop(conn);
    let run = run_job(&zone, &app);
    let err = run.stderr.clone();
    assert_eq!(refused_class(run), "access.grant");
    assert!(err.contains("expired"), "{err}");
    let conn = rusqlite::Connection::open(&catalog).expect("catalog");
    conn.execute("UPDATE grants SET valid_from = ?1, valid_to = ?2", [day(0), day(365)]).expect("restore");
    drop(conn);

    // Module bytes that differ from the approved hash.
    let sha =
        zone.run_as("acme", &["--json", "app", "show", &app]).json()["module_sha256"].as_str().expect("sha").to_owned();
    let object = zone.zone.join("objects").join(&sha[..2]).join(&sha[2..]);
    let original = std::fs::read(&object).expect("module object");
    let mut tampered = original.clone();
    let mid = tampered.len() / 2;
    tampered[mid] ^= 0xff;
    std::fs::write(&object, &tampered).expect("tamper");
    assert_eq!(refused_class(run_job(&zone, &app)), "job.module_hash");
    std::fs::write(&object, &original).expect("restore");

    // The dataset changed since approval (a new version with a stricter policy).
    let text = std::fs::read_to_string(policy("enterprise_registry")).expect("policy");
    let stricter = zone.path("stricter.toml");
    std::fs::write(&stricter, text.replace("min_group_size = 10", "min_group_size = 25")).expect("write");
    zone.run(&["dataset", "publish", "--policy", s(&stricter), s(&fixture("enterprise_registry"))]).ok();
    let run = run_job(&zone, &app);
    let err = run.stderr.clone();
    assert_eq!(refused_class(run), "job.drift");
    assert!(err.contains("version 1 → 2"), "{err}");
    assert_eq!(refusals(&zone), 5);

    // Approved again, it runs under the new policy's k.
    zone.run(&["app", "approve", &app, "--reason", "k = 25 is fine"]).ok();
    zone.run_as("market-regulation", &["app", "approve", &app, "--reason", "ok"]).ok();
    let out = run_job(&zone, &app).json();
    assert_eq!(out["manifest"]["release"]["min_group_size"], 25, "{out}");
    assert_eq!(out["manifest"]["datasets"][0]["version"], 2);
}

#[test]
fn output_over_the_row_or_byte_limit_is_refused_not_truncated() {
    let zone = registry_zone();
    let text = std::fs::read_to_string(policy("enterprise_registry")).expect("policy");
    let limited = zone.path("limited.toml");
    std::fs::write(&limited, text.replace("max_output_rows = 10_000", "max_output_rows = 3")).expect("write");
    zone.run(&["dataset", "publish", "--policy", s(&limited), s(&fixture("enterprise_registry"))]).ok();
    let app = approved_app(&zone, HOSTILE, &["attack=none"]);
    let run = run_job(&zone, &app);
    assert_eq!(refused_class(run), "job.failed");
    let status = zone.run_as("acme", &["--json", "job", "status", "1"]).json();
    assert_eq!(status["state"], "failed");
    // The agency sees which limit; the limit is the policy's, so the text may name it.
    let agency = zone.run_as("market-regulation", &["--json", "job", "status", "1"]).json();
    assert_eq!(agency["error_class"], "release.max_output_rows");
    assert!(agency["error_detail"].as_str().unwrap_or_default().contains("more than 3 rows"), "{agency}");
    assert!(!zone.zone.join("products").join("1").exists());
    let err = zone.run_as("acme", &["job", "output", "1", "--out", s(&zone.path("none"))]).fails();
    assert!(err.contains("released nothing"), "{err}");

    std::fs::write(&limited, text.replace("max_output_bytes = 1_048_576", "max_output_bytes = 200")).expect("write");
    zone.run(&["dataset", "publish", "--policy", s(&limited), s(&fixture("enterprise_registry"))]).ok();
    zone.run(&["app", "approve", &app, "--reason", "new version"]).ok();
    zone.run_as("market-regulation", &["app", "approve", &app, "--reason", "new version"]).ok();
    let run = run_job(&zone, &app);
    assert_eq!(refused_class(run), "job.failed");
    let agency = zone.run_as("market-regulation", &["--json", "job", "status", "2"]).json();
    assert_eq!(agency["error_class"], "release.max_output_bytes");
    let detail = agency["error_detail"].as_str().unwrap_or_default().to_owned();
    // The limit, never the size the guest made.
    assert!(detail.contains("max_output_bytes of 200"), "{detail}");
    assert_eq!(detail.matches(char::is_numeric).count(), 3, "only the limit's digits: {detail}");
    let finished: Vec<Value> =
        zone.audit().into_iter().filter(|e| e["action"] == "job.finish" && e["outcome"] == "refused").collect();
    assert_eq!(finished.len(), 2);
}

#[test]
fn job_dev_runs_the_same_plan_on_mock_rows_and_shows_the_guest_text() {
    let zone = registry_zone();
    let mock = zone.path("mock.parquet");
    zone.run_as("acme", &["dataset", "mock", "enterprise_registry", "--rows", "3000", "--out", s(&mock)]).ok();
    let out =
        zone.run_as("acme", &["job", "dev", "--module", HOSTILE, "--mock", s(&mock), "--param", "attack=none"]).ok();
    assert!(out.contains("dev run") && out.contains("3000 rows read"), "{out}");
    let run = zone.run_as("acme", &["job", "dev", "--module", PANIC, "--mock", s(&mock)]);
    let err = run.fails();
    assert!(err.contains("110101199003077777"), "a dev run shows the guest's text: {err}");
}

#[test]
fn a_join_of_two_providers_runs_on_the_host_under_the_stricter_release_settings() {
    let zone = TestZone::new();
    zone.publish_fixture("enterprise_registry");
    // The tax bureau asks for k = 30 (the registry's policy says 10): the stricter wins.
    let text = std::fs::read_to_string(policy("tax_credit")).expect("policy");
    let strict = zone.path("tax_credit.toml");
    std::fs::write(&strict, text.replace("min_group_size = 10", "min_group_size = 30")).expect("write");
    zone.run(&["dataset", "publish", "--policy", s(&strict), s(&fixture("tax_credit"))]).ok();
    grant_acme(&zone, "market-regulation,taxation");
    let run = zone.run_as(
        "acme",
        &[
            "--json",
            "app",
            "submit",
            "--module",
            example_guests::CREDIT_GRADES.path,
            "--dataset",
            "enterprise_registry",
            "--dataset",
            "tax_credit",
            "--domain",
            "finance",
            "--purpose",
            "tax credit grades by industry",
            "--mode",
            "aggregate",
            "--param",
            "by=industry",
        ],
    );
    run.ok();
    // Three parties: the authority and both agencies.
    for who in ["dsb", "market-regulation"] {
        zone.run_as(who, &["app", "approve", "1", "--reason", "ok"]).ok();
    }
    assert_eq!(refused_class(run_job(&zone, "1")), "job.not_approved");
    zone.run_as("taxation", &["app", "approve", "1", "--reason", "ok"]).ok();
    let out = run_job(&zone, "1").json();
    let manifest = &out["manifest"];
    assert_eq!(out["job"]["state"], "released", "{out}");
    let datasets: Vec<&str> =
        manifest["datasets"].as_array().expect("datasets").iter().filter_map(|d| d["dataset"].as_str()).collect();
    assert_eq!(datasets, ["enterprise_registry", "tax_credit"]);
    assert_eq!(manifest["release"]["min_group_size"], 30);
    assert_eq!(manifest["release"]["max_groups_per_subject"], 1);
    // Every tax row joins its enterprise: the rows read are the tax rows whose firm is in the registry.
    let firms: BTreeSet<String> = read_parquet(&fixture("enterprise_registry"))
        .iter()
        .flat_map(|b| {
            b.column_by_name("uscc")
                .expect("uscc")
                .as_string::<i32>()
                .iter()
                .flatten()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect();
    let joined: usize = read_parquet(&fixture("tax_credit"))
        .iter()
        .map(|b| {
            let uscc = b.column_by_name("uscc").expect("uscc").as_string::<i32>().clone();
            uscc.iter().flatten().filter(|u| firms.contains(*u)).count()
        })
        .sum();
    assert_eq!(manifest["rows_read"].as_u64(), Some(joined as u64));
    // Firms with several grades over the years are bounded to one group each (what the agencies see).
    let agency = zone.run_as("taxation", &["--json", "job", "status", "1"]).json();
    assert!(agency["counts"]["contributions_dropped"].as_u64().unwrap_or(0) > 0, "{agency}");
    zone.run_as("acme", &["job", "output", "1", "--out", s(&zone.path("joined"))]).ok();
    for batch in read_parquet(&zone.path("joined").join("product.parquet")) {
        let n = batch.column_by_name("enterprises").expect("n").as_primitive::<Int64Type>();
        assert!(n.values().iter().all(|v| *v >= 30), "{:?}", n);
    }
}
