//! Oversight through the CLI: a suspension stops the operator's running job within a second (the sandbox's
//! interruption, not a check at the end), blocks new runs and holds products until the grant is resumed.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{BIN, TestZone, s};

const HOSTILE: &str = example_guests::HOSTILE_RELEASE.path;
const FINANCE: &str = example_guests::FINANCE_CAPITAL.path;

fn day(offset: i64) -> String {
    (chrono::Utc::now().date_naive() + chrono::Duration::days(offset)).to_string()
}

fn zone_with_grant() -> TestZone {
    let zone = TestZone::new();
    zone.publish_fixture("enterprise_registry");
    let (from, to) = (day(0), day(365));
    zone.run(&[
        "grant",
        "create",
        "--operator",
        "acme",
        "--providers=market-regulation",
        "--domains",
        "finance",
        "--from",
        &from,
        "--to",
        &to,
    ])
    .ok();
    zone
}

fn approved_app(zone: &TestZone, module: &str, params: &[&str]) -> String {
    let mut args = vec![
        "--json",
        "app",
        "submit",
        "--module",
        module,
        "--dataset",
        "enterprise_registry",
        "--domain",
        "finance",
        "--purpose",
        "oversight test",
        "--mode",
        "aggregate",
    ];
    for p in params {
        args.extend(["--param", p]);
    }
    let run = zone.run_as("acme", &args);
    let id = run.json()["id"].as_u64().expect("application id").to_string();
    zone.run(&["app", "approve", &id, "--reason", "ok"]).ok();
    zone.run_as("market-regulation", &["app", "approve", &id, "--reason", "ok"]).ok();
    id
}

#[test]
fn a_suspension_stops_a_running_job_within_a_second_and_holds_products() {
    let zone = zone_with_grant();
    // A product released before the suspension, and a long run (about 20 s of guest work in 100-row batches).
    let quick = approved_app(&zone, FINANCE, &[]);
    zone.run_as("acme", &["job", "run", &quick]).ok();
    let slow = approved_app(&zone, HOSTILE, &["attack=slow", "spin=1000000"]);
    let mut child = Command::new(BIN)
        .args(["--zone", s(&zone.zone), "--json", "job", "run", &slow, "--batch-rows", "100"])
        .env("CLEANROOM_AS", "acme")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn job run");
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
