//! Oversight through the CLI: a suspension stops the operator's running job within a second (the sandbox's
//! interruption, not a check at the end), blocks new runs and holds products until the grant is resumed.

use std::process::{Command, Stdio};

use sha2::Digest as _;
use std::time::{Duration, Instant};

use crate::common::{self, BIN, TestZone, day, registry_zone, s};

const HOSTILE: &str = example_guests::HOSTILE_RELEASE.path;
const FINANCE: &str = example_guests::FINANCE_CAPITAL.path;

fn approved_app(zone: &TestZone, module: &str, params: &[&str]) -> String {
    common::approved_app(zone, module, "enterprise_registry", "aggregate", params)
}

/// Approves a guest that burns about 20 s in 100-row batches and starts `job run` on it as `acme`, in the background.
fn spawn_slow_job(zone: &TestZone) -> std::process::Child {
    spawn_job_spinning(zone, 1_000_000)
}

/// Approves a guest that burns `spin` iterations per row (1,000,000: about 20 s) and starts `job run` on it as
/// `acme`, in the background.
fn spawn_job_spinning(zone: &TestZone, spin: u64) -> std::process::Child {
    let spin = format!("spin={spin}");
    let slow = common::approved_app_with(
        zone,
        HOSTILE,
        "enterprise_registry",
        "aggregate",
        &["attack=slow", &spin],
        &["--batch-rows", "100"],
    );
    Command::new(BIN)
        .args(["--zone", s(&zone.zone), "--json", "job", "run", &slow])
        .env("CLEANROOM_AS", "acme")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn job run")
}

#[test]
fn a_suspension_stops_a_running_job_within_a_second_and_holds_products() {
    let zone = registry_zone();
    // A product released before the suspension, and a long run.
    let quick = approved_app(&zone, FINANCE, &[]);
    zone.run_as("acme", &["job", "run", &quick]).ok();
    let mut child = spawn_slow_job(&zone);
    // Wait until the job is running, then a little more, so that the guest is mid-run.
    let started = Instant::now();
    loop {
        let jobs = zone.run_as("acme", &["--json", "job", "list"]).json();
        if jobs.as_array().is_some_and(|j| j.iter().any(|j| j["state"] == "running")) {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "the job never started");
        assert!(child.try_wait().expect("wait").is_none(), "the slow job ended before it was suspended");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(1500));
    assert!(child.try_wait().expect("wait").is_none(), "the slow job ended before it was suspended");

    let correct_by = day(30);
    zone.run(&["grant", "suspend", "acme", "--reason", "data leak under investigation", "--correct-by", &correct_by])
        .ok();
    let suspended_at = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        assert!(suspended_at.elapsed() < Duration::from_secs(10), "the job kept running after the suspension");
        std::thread::sleep(Duration::from_millis(10));
    };
    let stopped_after = suspended_at.elapsed();
    eprintln!("the job process ended {stopped_after:?} after `grant suspend` returned");
    let output = child.wait_with_output().expect("output");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(!status.success(), "{stdout}");
    // The process exits after recording the stop; the interruption itself is one epoch tick after the watch sees it.
    assert!(stopped_after < Duration::from_secs(2), "stopped {stopped_after:?} after the suspension");
    let v: serde_json::Value = serde_json::from_str(&stdout).expect("json error");
    assert_eq!(v["error"]["class"], "access.grant", "{v}");

    // The job is recorded as stopped by the grant, with nothing released.
    let jobs = zone.run_as("acme", &["--json", "job", "list"]).json();
    let stopped = jobs.as_array().and_then(|j| j.last()).expect("job").clone();
    assert_eq!(stopped["state"], "failed");
    assert_eq!(stopped["error_class"], "access.grant");
    let detail = stopped["error_detail"].as_str().unwrap_or_default();
    assert!(detail.contains("suspended") && detail.contains("stopped while it ran"), "{detail}");
    assert!(stopped["counts"].is_null() || stopped["counts"]["rows_released"] == 0, "{stopped}");

    // New runs are refused, and the product released before is held in the zone.
    let refused = zone.run_as("acme", &["--json", "job", "run", &quick]);
    assert!(!refused.status.success());
    assert_eq!(refused.json()["error"]["class"], "access.grant");
    let held = zone.run_as("acme", &["--json", "job", "output", "1", "--out", s(&zone.path("held"))]);
    assert!(!held.status.success());
    assert_eq!(held.json()["error"]["class"], "access.grant");
    assert!(!zone.path("held").join("product.parquet").exists());

    // Resumed: the product can be taken out again, and runs go.
    zone.run(&["grant", "resume", "1", "--reason", "corrected"]).ok();
    zone.run_as("acme", &["job", "output", "1", "--out", s(&zone.path("after"))]).ok();
    zone.run_as("acme", &["job", "run", &quick]).ok();

    // The audit log has the suspension and the stopped run.
    let audit = zone.audit();
    let has = |action: &str, outcome: &str| {
        audit.iter().any(|e| e["action"] == action && e["outcome"] == outcome && e["reason"] == "access.grant")
    };
    assert!(has("job.finish", "refused"), "the stopped run is not in the log");
    assert!(audit.iter().any(|e| e["action"] == "grant.suspend"));
}

/// The first `n` subjects (credit codes) of the raw registry fixture.
fn registry_subjects(n: usize) -> Vec<String> {
    use arrow_array::cast::AsArray;
    let file = std::fs::File::open(common::fixture("enterprise_registry")).expect("fixture");
    let mut reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .expect("parquet")
        .build()
        .expect("reader");
    let batch = reader.next().expect("a batch").expect("batch");
    let uscc = batch.column_by_name("uscc").expect("uscc").as_string::<i32>();
    (0..n).map(|i| uscc.value(i).to_owned()).collect()
}

/// Every file of the zone but its object store (which holds the raw data the agency published).
fn zone_files_outside_objects(zone: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![zone.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).expect("read dir").flatten() {
            let p = e.path();
            if p.is_dir() {
                if p.file_name().is_some_and(|n| n != "objects") {
                    stack.push(p);
                }
            } else {
                out.push(p);
            }
        }
    }
    out
}

fn rows_read(zone: &TestZone, app: &str) -> u64 {
    let out = zone.run_as("acme", &["--json", "job", "run", app]).json();
    out["manifest"]["rows_read"].as_u64().unwrap_or_else(|| panic!("no release: {out}"))
}

#[test]
fn a_complaint_withdraws_a_subject_and_no_later_run_reads_its_rows() {
    let zone = registry_zone();
    let app = approved_app(&zone, FINANCE, &[]);
    assert_eq!(rows_read(&zone, &app), 20_000);
    // An application pinned to version 1, approved before the complaint.
    let pinned = common::approved_app(&zone, FINANCE, "enterprise_registry@1", "aggregate", &[]);

    let subjects = registry_subjects(3);
    let evidence = zone.path("evidence.txt");
    std::fs::write(&evidence, "letter from the company's counsel, received 2026-11-20").expect("evidence");
    let file = |who: &str, subject: &str| {
        zone.run_as(
            who,
            &[
                "--json",
                "complaint",
                "file",
                "--dataset",
                "enterprise_registry",
                "--subject",
                subject,
                "--evidence",
                s(&evidence),
            ],
        )
    };
    // Only the providing agency files complaints about its data.
    for (who, class) in [("acme", "access.role"), ("taxation", "access.scope"), ("dsb", "access.role")] {
        let run = file(who, &subjects[0]);
        assert!(!run.status.success());
        assert_eq!(run.json()["error"]["class"], class, "{who}");
    }
    let filed = file("market-regulation", &subjects[0]).json();
    assert_eq!(filed["state"], "open");
    assert_eq!(filed["subject_token"].as_str().map(str::len), Some(32));
    let id = filed["id"].as_u64().expect("id").to_string();

    // Withdraw, moving approvals: a new version without the row; the unpinned application runs on it, and
    // reads one row fewer: the subject's.
    let resolved = zone
        .run_as(
            "market-regulation",
            &[
                "--json",
                "complaint",
                "resolve",
                &id,
                "--withdraw",
                "--keep-approvals",
                "--reason",
                "verified: withdraw",
            ],
        )
        .json();
    assert_eq!(resolved["new_version"], 2, "{resolved}");
    assert_eq!(resolved["rows_withdrawn"], 1);
    assert_eq!(resolved["apps_moved"][0].as_u64(), Some(1), "{resolved}");
    assert_eq!(rows_read(&zone, &app), 19_999);
    // The pinned application may not read the withdrawn version.
    let run = zone.run_as("acme", &["--json", "job", "run", &pinned]);
    assert!(!run.status.success());
    assert_eq!(run.json()["error"]["class"], "dataset.withdrawn");
    // A complaint is answered once.
    let again =
        zone.run_as("market-regulation", &["--json", "complaint", "resolve", &id, "--dismiss", "--reason", "x"]);
    assert_eq!(again.json()["error"]["class"], "complaint.resolved");

    // Without --keep-approvals, the application needs approval again for the new version.
    let second = file("market-regulation", &subjects[1]).json()["id"].as_u64().expect("id").to_string();
    zone.run_as("market-regulation", &["complaint", "resolve", &second, "--withdraw", "--reason", "verified"]).ok();
    let run = zone.run_as("acme", &["--json", "job", "run", &app]);
    assert!(!run.status.success());
    assert_eq!(run.json()["error"]["class"], "job.drift");
    zone.run(&["app", "approve", &app, "--reason", "re-approved for version 3"]).ok();
    zone.run_as("market-regulation", &["app", "approve", &app, "--reason", "re-approved for version 3"]).ok();
    assert_eq!(rows_read(&zone, &app), 19_998);
    // Withdrawals stick: publishing the original file again is refused, naming the complaint and the row; the
    // withdrawn subjects are never read again.
    let republish = zone.run_as(
        "market-regulation",
        &[
            "--json",
            "dataset",
            "publish",
            "--policy",
            s(&common::policy("enterprise_registry")),
            s(&common::fixture("enterprise_registry")),
        ],
    );
    assert!(!republish.status.success(), "{}", republish.stdout);
    let error = &republish.json()["error"];
    assert_eq!(error["class"], "complaint.withdrawn_subject", "{error}");
    assert!(error["message"].as_str().is_some_and(|m| m.contains("row ") && m.contains("complaint")), "{error}");
    assert_eq!(zone.run(&["--json", "dataset", "show", "enterprise_registry"]).json()["version"], 3);
    assert_eq!(rows_read(&zone, &app), 19_998);

    // Suspend: every active grant covering the dataset is suspended, and runs stop.
    let third = file("market-regulation", &subjects[2]).json()["id"].as_u64().expect("id").to_string();
    let correct_by = day(14);
    let suspended = zone
        .run_as(
            "market-regulation",
            &[
                "--json",
                "complaint",
                "resolve",
                &third,
                "--suspend",
                "--correct-by",
                &correct_by,
                "--reason",
                "pending",
            ],
        )
        .json();
    assert_eq!(suspended["grants_suspended"][0].as_u64(), Some(1), "{suspended}");
    let run = zone.run_as("acme", &["--json", "job", "run", &app]);
    assert_eq!(run.json()["error"]["class"], "access.grant");

    // Reprocess and dismiss are recorded answers that change no data.
    for answer in ["--reprocess", "--dismiss"] {
        let id = file("market-regulation", &subjects[0]).json()["id"].as_u64().expect("id").to_string();
        let done =
            zone.run_as("market-regulation", &["--json", "complaint", "resolve", &id, answer, "--reason", "r"]).json();
        assert_eq!(done["resolution"], answer.trim_start_matches('-'), "{done}");
        assert!(done["new_version"].is_null());
    }
    let versions = zone.run_as("market-regulation", &["--json", "dataset", "list"]).json();
    assert_eq!(versions[0]["latest_version"], 3, "{versions}");

    // The subjects' values are nowhere in the zone outside the published data: not in the catalog, not in the log.
    for path in zone_files_outside_objects(&zone.zone) {
        let bytes = std::fs::read(&path).expect("read");
        for subject in &subjects {
            assert!(
                !bytes.windows(subject.len()).any(|w| w == subject.as_bytes()),
                "{} holds a complainant's value",
                path.display()
            );
        }
    }
    // The inspector reads the complaints (tokens only); the operator may not.
    let listed = zone.run_as("inspector", &["--json", "complaint", "list"]).json();
    assert_eq!(listed.as_array().map(Vec::len), Some(5));
    let operator = zone.run_as("acme", &["--json", "complaint", "list"]).json();
    assert_eq!(operator.as_array().map(Vec::len), Some(0));
    let audit = zone.audit();
    assert_eq!(audit.iter().filter(|e| e["action"] == "complaint.resolve" && e["outcome"] == "ok").count(), 5);
}

#[test]
fn an_incident_suspends_stops_freezes_and_gathers_verifiable_evidence() {
    let zone = registry_zone();
    let quick = approved_app(&zone, FINANCE, &[]);
    zone.run_as("acme", &["job", "run", &quick]).ok();
    // A reviewed run whose artifacts wait for the agency.
    let reviewed =
        common::approved_app(&zone, example_guests::CAPITAL_MODEL.path, "enterprise_registry", "reviewed", &[]);
    zone.run_as("acme", &["job", "run", &reviewed]).ok();

    // A long job is running when the incident opens.
    let child = spawn_slow_job(&zone);
    let started = Instant::now();
    while !zone
        .run_as("acme", &["--json", "job", "list"])
        .json()
        .as_array()
        .is_some_and(|j| j.iter().any(|j| j["state"] == "running"))
    {
        assert!(started.elapsed() < Duration::from_secs(60), "the job never started");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(1000));

    // Only the authority opens incidents.
    let refused = zone.run_as("inspector", &["--json", "incident", "open", "--operator", "acme", "--reason", "x"]);
    assert_eq!(refused.json()["error"]["class"], "access.role");
    let opened = zone.run(&["--json", "incident", "open", "--operator", "acme", "--reason", "suspected leak"]).json();
    let opened_at = Instant::now();
    assert_eq!(opened["grants_suspended"][0].as_u64(), Some(1), "{opened}");
    let output = child.wait_with_output().expect("job run");
    assert!(opened_at.elapsed() < Duration::from_secs(3), "the job ran on {:?}", opened_at.elapsed());
    let v: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json");
    assert_eq!(v["error"]["class"], "access.grant", "{v}");

    // The evidence folder: a summary naming every file's hash, the product manifests, and the whole log as a bundle
    // that verifies offline.
    let dir = zone.zone.join("incidents/1");
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("summary.json")).expect("summary")).expect("json");
    assert_eq!(summary["operator"], "acme");
    assert!(summary["applications"].as_array().is_some_and(|a| a.len() == 3), "{summary}");
    assert!(!summary["relevant_entries"].as_array().expect("entries").is_empty());
    for f in summary["files"].as_array().expect("files") {
        let bytes = std::fs::read(dir.join(f["name"].as_str().expect("name"))).expect("evidence file");
        assert_eq!(f["sha256"].as_str(), Some(hex::encode(sha2::Sha256::digest(&bytes)).as_str()));
    }
    assert!(dir.join("manifests/1.json").is_file());
    zone.run(&["audit", "verify", "--bundle", s(&dir.join("audit-bundle.json"))]).ok();

    // Frozen: the held artifact cannot be released while the incident is open; products stay in the zone.
    let artifacts = zone.run_as("market-regulation", &["--json", "artifact", "list"]).json();
    let artifact = artifacts[0]["id"].as_u64().expect("artifact").to_string();
    let release = zone.run_as("market-regulation", &["--json", "artifact", "release", &artifact, "--reason", "ok"]);
    assert_eq!(release.json()["error"]["class"], "incident.frozen");
    let held = zone.run_as("acme", &["--json", "job", "output", "1", "--out", s(&zone.path("held"))]);
    assert_eq!(held.json()["error"]["class"], "access.grant");

    // Closed: the agency may decide again; the grant stays suspended until the authority resumes it.
    zone.run(&["incident", "close", "1", "--reason", "no leak found"]).ok();
    zone.run_as("market-regulation", &["artifact", "release", &artifact, "--reason", "ok"]).ok();
    let list = zone.run_as("inspector", &["--json", "incident", "list"]).json();
    assert_eq!(list[0]["state"], "closed");
    let run = zone.run_as("acme", &["--json", "job", "run", &quick]);
    assert_eq!(run.json()["error"]["class"], "access.grant");
    zone.run(&["grant", "resume", "1", "--reason", "cleared"]).ok();
    zone.run_as("acme", &["job", "run", &quick]).ok();
}

#[test]
fn usage_reports_come_from_the_log_and_the_run_records() {
    let zone = registry_zone();
    let app = approved_app(&zone, FINANCE, &[]);
    zone.run_as("acme", &["job", "run", &app]).ok();
    zone.run_as("acme", &["job", "run", &app]).ok();
    // Refusals: another operator tries to run acme's application; acme runs while suspended.
    zone.run_as("zenith", &["job", "run", &app]).fails();
    let correct_by = day(10);
    zone.run(&["grant", "suspend", "1", "--reason", "audit", "--correct-by", &correct_by]).ok();
    zone.run_as("acme", &["job", "run", &app]).fails();
    zone.run(&["grant", "resume", "1", "--reason", "done"]).ok();

    let csv = zone.path("report");
    let report = zone.run_as("inspector", &["--json", "report", "usage", "--csv", s(&csv)]).json();
    assert_eq!(report["log_and_records_agree"], true, "{report}");
    let acme =
        report["operators"].as_array().expect("operators").iter().find(|o| o["operator"] == "acme").expect("acme");
    assert_eq!(acme["runs"], 2, "{acme}");
    assert_eq!(acme["runs_released"], 2);
    assert_eq!(acme["rows_read"]["enterprise_registry"], 40_000);
    assert_eq!(acme["refusals"]["access.grant"], 1, "{acme}");
    let zenith =
        report["operators"].as_array().expect("operators").iter().find(|o| o["operator"] == "zenith").expect("z");
    assert_eq!(zenith["refusals"]["access.scope"], 1, "{zenith}");
    let registry = report["datasets"].as_array().expect("datasets")[0].clone();
    assert_eq!(registry["dataset"], "enterprise_registry");
    assert_eq!(registry["applications"], 1);
    assert_eq!(registry["runs"], 2);
    assert_eq!(registry["rows_read"], 40_000);
    assert_eq!(registry["operators"][0], "acme");
    assert_eq!(registry["domains"][0], "finance");
    let operators_csv = std::fs::read_to_string(csv.join("operators.csv")).expect("csv");
    assert!(operators_csv.starts_with("operator,runs,released,failed,refusals,"), "{operators_csv}");
    assert!(operators_csv.contains("acme,2,2,0,access.grant=1,enterprise_registry=40000,"), "{operators_csv}");

    // A period before anything happened is empty; an agency sees its datasets and no operator; operators none.
    let empty = zone.run(&["--json", "report", "usage", "--to", "2020-01-01"]).json();
    assert_eq!(empty["entries_read"], 0);
    let agency = zone.run_as("taxation", &["--json", "report", "usage"]).json();
    assert_eq!(agency["operators"].as_array().map(Vec::len), Some(0));
    assert_eq!(agency["datasets"].as_array().map(Vec::len), Some(0));
    let refused = zone.run_as("acme", &["--json", "report", "usage"]);
    assert_eq!(refused.json()["error"]["class"], "access.role");
}

#[test]
fn audit_entries_are_kept_for_the_retention_period() {
    let zone = TestZone::new();
    let before_count = zone.audit().len();
    // Within the default three years: refused and recorded.
    let run = zone.run(&["--json", "audit", "compact", "--before", &day(-30)]);
    assert_eq!(run.json()["error"]["class"], "audit.retention");
    // Past the retention period: still refused (the log is append-only), and recorded.
    let run = zone.run(&["--json", "audit", "compact", "--before", "2000-01-01"]);
    assert_eq!(run.json()["error"]["class"], "audit.append_only");
    // Not the authority: refused for the role first.
    let run = zone.run_as("inspector", &["--json", "audit", "compact", "--before", "2000-01-01"]);
    assert_eq!(run.json()["error"]["class"], "access.role");
    let entries = zone.audit();
    let refused: Vec<_> = entries.iter().filter(|e| e["action"] == "audit.compact").collect();
    assert_eq!(refused.len(), 3);
    assert!(refused.iter().all(|e| e["outcome"] == "refused"));
    assert!(entries.len() >= before_count + 3);
    zone.run(&["audit", "verify"]).ok();

    // A configured period: one year; out-of-range values are named with their position.
    let toml = zone.zone.join("zone.toml");
    let text = std::fs::read_to_string(&toml).expect("zone.toml");
    std::fs::write(&toml, format!("{text}\n[audit]\nretention_days = 365\n")).expect("write");
    let run = zone.run(&["--json", "audit", "compact", "--before", &day(-400)]);
    assert_eq!(run.json()["error"]["class"], "audit.append_only");
    let run = zone.run(&["--json", "audit", "compact", "--before", &day(-300)]);
    assert_eq!(run.json()["error"]["class"], "audit.retention");
    std::fs::write(&toml, format!("{text}\n[audit]\nretention_days = 7\n")).expect("write");
    let err = zone.run(&["audit", "compact", "--before", "2000-01-01"]).fails();
    assert!(err.contains("retention_days = 7: must be between 30 and 36500"), "{err}");
}

/// Write-ahead release: a run whose `job.release` entry cannot be appended releases nothing — no product folder, the
/// job ends `failed` with `audit.append` — and the log stays whole.
#[test]
fn a_release_that_cannot_be_logged_releases_nothing() {
    let zone = registry_zone();
    let child = spawn_job_spinning(&zone, 300_000);
    let started = Instant::now();
    // Wait for the run's `job.start` entry; then the disk under the log fails while the guest spins.
    let job = loop {
        let started_entry = zone.audit().into_iter().find(|e| e["action"] == "job.start" && e["outcome"] == "ok");
        if let Some(e) = started_entry {
            let object = e["objects"].as_array().and_then(|o| o.iter().find_map(|o| o.as_str()?.strip_prefix("job:")));
            break object.and_then(|id| id.parse::<u64>().ok()).expect("job id");
        }
        assert!(started.elapsed() < Duration::from_secs(60), "the job never started");
        std::thread::sleep(Duration::from_millis(50));
    };
    let failing = common::FailingAuditLog::start(&zone);
    let out = child.wait_with_output().expect("job run");
    failing.restore();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the run must fail: {stderr}");
    assert!(stderr.contains("checkpoints.jsonl"), "the error names the log: {stderr}");

    let status = zone.run_as("acme", &["--json", "job", "status", &job.to_string()]).json();
    assert_eq!(status["state"].as_str(), Some("failed"), "{status}");
    assert_eq!(status["error_class"].as_str(), Some("audit.append"), "{status}");
    assert!(!zone.zone.join("products").join(job.to_string()).exists(), "no product folder");
    let out_dir = zone.path("out");
    zone.run_as("acme", &["job", "output", &job.to_string(), "--out", s(&out_dir)]).fails();
    zone.run_as("inspector", &["audit", "verify"]).ok();
    let released = zone.audit().iter().filter(|e| e["action"] == "job.release" && e["outcome"] == "ok").count();
    assert_eq!(released, 0, "no release in the log");
}

#[test]
fn suspending_the_operator_stops_its_running_job_and_refuses_its_next() {
    let zone = registry_zone();
    let mut child = spawn_slow_job(&zone);
    let started = Instant::now();
    loop {
        let jobs = zone.run(&["--json", "job", "list"]).json();
        if jobs.as_array().is_some_and(|j| j.iter().any(|j| j["state"] == "running")) {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "the job never started");
        assert!(child.try_wait().expect("wait").is_none(), "the slow job ended before the suspension");
        std::thread::sleep(Duration::from_millis(100));
    }
    zone.run(&["principal", "suspend", "acme", "--reason", "credentials leaked"]).ok();
    let suspended_at = Instant::now();
    while child.try_wait().expect("wait").is_none() {
        assert!(suspended_at.elapsed() < Duration::from_secs(10), "the job kept running after the suspension");
        std::thread::sleep(Duration::from_millis(10));
    }
    // Read as the authority: the suspended operator reads nothing any more.
    let jobs = zone.run(&["--json", "job", "list"]).json();
    let stopped = jobs.as_array().and_then(|j| j.last()).expect("job").clone();
    assert_eq!(stopped["state"], "failed", "{stopped}");
    assert!(!zone.zone.join("products/1").exists());
    let refused = zone.run_as("acme", &["--json", "job", "run", "1"]);
    assert_eq!(refused.json()["error"]["class"], "access.suspended", "{}", refused.stdout);
}
