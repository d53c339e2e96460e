//! `dp` mode through the CLI (issue "Release that holds against hostile code"): what the operator sees of a run
//! (noisy cells with their intervals, ε and δ spent; no exact count the guest controls), hostile guests' attacks
//! released as nothing they chose, and the budget ledger: charged before a row is read, refused with what is left,
//! never overspent by runs at once, kept spent by a run killed with `kill -9`.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use arrow_array::Array;
use arrow_array::cast::AsArray;
use serde_json::Value;

use crate::common::{self, BIN, TestZone, fixture, grant_acme, s};

const DP: &str = example_guests::HOSTILE_DP.path;

/// The hostile-dp module in `dp` mode with `params` and more `app submit` arguments, approved by both parties.
fn dp_app(zone: &TestZone, params: &[&str], extra: &[&str]) -> String {
    common::approved_app_with(zone, DP, "enterprise_registry", "dp", params, extra)
}

/// A zone whose registry allows `operator_budget` ε per month to each operator.
fn registry_with_budget(operator_budget: &str) -> TestZone {
    let zone = TestZone::new();
    let text = std::fs::read_to_string(common::policy("enterprise_registry")).expect("policy");
    let text = text.replace("epsilon_per_operator = 8.0", &format!("epsilon_per_operator = {operator_budget}"));
    let policy = zone.path("registry.toml");
    std::fs::write(&policy, text).expect("write policy");
    zone.run(&["dataset", "publish", "--policy", s(&policy), s(&fixture("enterprise_registry"))]).ok();
    grant_acme(&zone, "market-regulation");
    zone
}

fn budget_of(zone: &TestZone, who: &str, operator: Option<&str>) -> Value {
    let lines = zone.run_as(who, &["--json", "budget", "show"]).json();
    lines
        .as_array()
        .expect("lines")
        .iter()
        .find(|l| l["dataset"] == "enterprise_registry" && l["operator"].as_str() == operator)
        .cloned()
        .unwrap_or_else(|| panic!("no budget line for {operator:?}: {lines}"))
}

/// Counters of a run that only the guest decides; none may reach the operator in dp mode.
const GUEST_COUNTS: [&str; 6] =
    ["groups", "groups_suppressed", "contributions_dropped", "blocks", "failed_blocks", "elapsed_ms"];

#[test]
fn the_operator_sees_noisy_cells_intervals_and_budget_spent_and_no_exact_count_the_guest_controls() {
    let zone = common::registry_zone();
    let app = dp_app(&zone, &["attack=honest"], &["--block-subjects", "16"]);
    let run = zone.run_as("acme", &["--json", "job", "run", &app]);
    let v = run.json();
    assert!(run.status.success(), "{}", run.stderr);
    let privacy = &v["manifest"]["release"]["privacy"];
    assert_eq!((privacy["epsilon"].as_f64(), privacy["block_subjects"].as_u64()), (Some(1.0), Some(16)));
    assert_eq!(privacy["sensitivity_factor"], 32);
    assert!(privacy["selection"]["threshold"].as_u64().is_some_and(|t| t > 16), "{privacy}");
    for m in privacy["measures"].as_array().expect("measures") {
        assert!(m["scale"].as_f64().is_some_and(|x| x > 0.0) && m["ci95_half_width"].as_f64().is_some(), "{m}");
    }
    for key in ["groups", "groups_suppressed", "contributions_dropped"] {
        assert!(v["manifest"][key].is_null(), "the manifest carries {key}");
    }
    let id = v["job"]["id"].to_string();
    for view in [v["job"].clone(), zone.run_as("acme", &["--json", "job", "status", &id]).json()] {
        let counts = &view["counts"];
        for key in GUEST_COUNTS {
            assert!(counts.get(key).is_none(), "the operator sees {key}: {counts}");
        }
        assert_eq!(counts["privacy"]["epsilon"], 1.0);
    }
    // The providing agency sees what the blocks did.
    let agency = zone.run_as("market-regulation", &["--json", "job", "status", &id]).json();
    assert_eq!(agency["counts"]["failed_blocks"], 0, "{agency}");
    // Blocks run: at most the cut's number (every block whole in one partition, never split).
    let ran = agency["counts"]["blocks"].as_u64().expect("blocks");
    assert!(ran > 1 && ran <= privacy["blocks"].as_u64().expect("cut"), "{ran} blocks run");
    // The product: every measure with its 95 % interval around it.
    let out = zone.path("product");
    zone.run_as("acme", &["job", "output", &id, "--out", s(&out)]).ok();
    let batch = common::read_batch(&out.join("product.parquet"));
    let names: Vec<&str> = batch.schema_ref().fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(
        names,
        [
            "group",
            "firms",
            "firms_ci95_low",
            "firms_ci95_high",
            "employees",
            "employees_ci95_low",
            "employees_ci95_high"
        ]
    );
    assert!(batch.num_rows() > 0);
    // The budget: spent by this run, as the operator and as the agency see it; the human table too.
    let mine = budget_of(&zone, "acme", Some("acme"));
    assert_eq!(
        (mine["spent"].as_f64(), mine["remaining"].as_f64(), mine["runs"].as_u64()),
        (Some(1.0), Some(7.0), Some(1))
    );
    let all = budget_of(&zone, "market-regulation", None);
    assert_eq!((all["spent"].as_f64(), all["limit"].as_f64()), (Some(1.0), Some(24.0)));
    assert!(budget_of(&zone, "inspector", Some("acme"))["spent"] == 1.0);
    let table = zone.run_as("acme", &["budget", "show"]).ok();
    assert!(table.contains("enterprise_registry") && table.contains("refreshes"), "{table}");
    // The charge is in the log, before the release.
    let actions: Vec<String> = zone.audit().iter().map(|e| e["action"].as_str().unwrap_or("").to_owned()).collect();
    let charge = actions.iter().position(|a| a == "privacy.charge").expect("charged");
    assert!(charge < actions.iter().rposition(|a| a == "job.release").expect("released"));
}

#[test]
fn hostile_guests_release_nothing_they_chose_and_a_trap_does_not_fail_a_dp_job() {
    let zone = common::registry_zone();
    // The batch-wide key copy: each block's key is a raw value, and no block can make a released group.
    let copy = dp_app(&zone, &["attack=copy"], &["--block-subjects", "16"]);
    let v = zone.run_as("acme", &["--json", "job", "run", &copy]).json();
    assert_eq!(v["job"]["state"], "released", "{v}");
    assert_eq!(v["manifest"]["rows_released"], 0, "{v}");
    // A trap when one firm is there: in dp the job releases all the same, and looks the same to the operator.
    let capital = {
        let batch = common::read_batch(&fixture("enterprise_registry"));
        batch.column_by_name("reg_capital").expect("capital").as_primitive::<arrow_array::types::Int64Type>().value(7)
    };
    let views: Vec<Value> = [capital, -1]
        .into_iter()
        .map(|target| {
            let target = format!("target={target}");
            let app = dp_app(&zone, &["attack=trap", &target], &["--block-subjects", "16"]);
            let v = zone.run_as("acme", &["--json", "job", "run", &app]).json();
            assert_eq!(v["job"]["state"], "released", "{v}");
            v
        })
        .collect();
    let shape = |v: &Value| {
        let counts = v["job"]["counts"].as_object().expect("counts").keys().cloned().collect::<Vec<_>>();
        (v["job"]["state"].clone(), v["job"]["error_class"].clone(), counts)
    };
    assert_eq!(shape(&views[0]), shape(&views[1]));
    // The agency sees that one block was left out, in the run with the target.
    let id = views[0]["job"]["id"].to_string();
    let agency = zone.run_as("market-regulation", &["--json", "job", "status", &id]).json();
    // (The target's capital may be shared by a few firms: each of their blocks is left out.)
    assert!(agency["counts"]["failed_blocks"].as_u64().is_some_and(|n| n >= 1), "{agency}");
    // min and max are refused in dp at submission (one subject decides them): finance-capital has neither, so an
    // application in dp with one passes; the refusal is tested where the plan is built.
    let product = zone.path("copy");
    zone.run_as("acme", &["job", "output", &views[1]["job"]["id"].to_string(), "--out", s(&product)]).ok();
    let batch = common::read_batch(&product.join("product.parquet"));
    let keys = batch.column(0).as_string::<i32>();
    assert!((0..keys.len()).all(|i| !keys.value(i).contains('|')));
}

#[test]
fn runs_at_once_never_overspend_and_a_refusal_says_what_is_left_and_when_it_refreshes() {
    let zone = registry_with_budget("2.5");
    let app = dp_app(&zone, &["attack=honest"], &["--block-subjects", "64"]);
    let started: Vec<std::process::Child> = (0..8)
        .map(|_| {
            Command::new(BIN)
                .args(["--zone", s(&zone.zone), "--json", "job", "run", &app])
                .env("CLEANROOM_AS", "acme")
                .env_remove("CLEANROOM_ZONE")
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn")
        })
        .collect();
    let mut released = 0;
    let mut refusals = Vec::new();
    for child in started {
        let out = child.wait_with_output().expect("wait");
        let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        if out.status.success() {
            released += 1;
        } else {
            refusals.push(v);
        }
    }
    // ε = 1 each against 2.5: exactly two runs, whatever their order.
    assert_eq!(released, 2, "{refusals:?}");
    for r in &refusals {
        assert_eq!(r["error"]["class"], "privacy.budget", "{r}");
        let message = r["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("0.5 left of 2.5") && message.contains("refreshes on"), "{message}");
    }
    let mine = budget_of(&zone, "acme", Some("acme"));
    assert_eq!((mine["spent"].as_f64(), mine["runs"].as_u64()), (Some(2.0), Some(2)));
    // Every refusal is in the log.
    let refused = zone.audit().iter().filter(|e| e["reason"] == "privacy.budget").count();
    assert_eq!(refused, 6);
}

#[test]
fn a_run_killed_after_its_charge_keeps_the_budget_spent() {
    let zone = common::registry_zone();
    // b = 1: one instance per firm, a run long enough to be killed in the middle.
    let app = dp_app(&zone, &["attack=honest"], &["--block-subjects", "1"]);
    let mut child = Command::new(BIN)
        .args(["--zone", s(&zone.zone), "job", "run", &app])
        .env("CLEANROOM_AS", "acme")
        .env_remove("CLEANROOM_ZONE")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let charged = zone.audit().iter().any(|e| e["action"] == "privacy.charge");
        if charged {
            break;
        }
        assert!(Instant::now() < deadline, "no charge within 120 s");
        assert!(child.try_wait().expect("wait").is_none(), "the run ended before it could be killed");
        std::thread::sleep(Duration::from_millis(20));
    }
    // SIGKILL: no destructor, no handler.
    child.kill().expect("kill -9");
    child.wait().expect("reaped");
    let mine = budget_of(&zone, "acme", Some("acme"));
    assert_eq!((mine["spent"].as_f64(), mine["runs"].as_u64()), (Some(1.0), Some(1)), "{mine}");
    assert!(zone.audit().iter().all(|e| e["action"] != "job.release"));
}

/// hostile-dp's `in_subset`: whether a firm of this registered capital is in query `seed`'s subset.
fn in_subset(capital: i64, seed: u64) -> bool {
    let mut z = (capital as u64) ^ seed.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (z ^ (z >> 31)) & 1 == 1
}

#[test]
fn a_reconstruction_attack_on_1000_firms_runs_out_of_budget_before_it_recovers_60_percent() {
    use arrow_array::types::{Int32Type, Int64Type};
    // 1,000 firms; the secret is one bit each: at least the median number of employees.
    let zone = TestZone::new();
    let firms = common::read_batch(&fixture("enterprise_registry")).slice(0, 1_000);
    let file = zone.path("firms.parquet");
    common::write_parquet(&file, &firms);
    zone.run(&["dataset", "publish", "--policy", s(&common::policy("enterprise_registry")), s(&file)]).ok();
    grant_acme(&zone, "market-regulation");
    let capital = firms.column_by_name("reg_capital").expect("capital").as_primitive::<Int64Type>().clone();
    let staff = firms.column_by_name("employees").expect("employees").as_primitive::<Int32Type>().clone();
    let mut sorted: Vec<i32> = staff.iter().flatten().collect();
    sorted.sort_unstable();
    let at = sorted[sorted.len() / 2];
    let truth: Vec<bool> = (0..1_000).map(|i| staff.is_valid(i) && staff.value(i) >= at).collect();
    // The attacker asks random subset sums (Dinur–Nissim), one approved application each, as tightly bounded as
    // it can (the sum's bound is 1), with the least noise the policy allows (b = 1), until the zone says no.
    let mut answers: Vec<(u64, f64)> = Vec::new();
    for seed in 1..=40u64 {
        let params = ["attack=subset".to_owned(), format!("seed={seed}"), format!("at={at}"), "max=1".to_owned()];
        let params: Vec<&str> = params.iter().map(String::as_str).collect();
        let app = dp_app(&zone, &params, &["--block-subjects", "1"]);
        let run = zone.run_as("acme", &["--json", "job", "run", &app]);
        if !run.status.success() {
            assert_eq!(run.json()["error"]["class"], "privacy.budget", "{}", run.stdout);
            break;
        }
        let id = run.json()["job"]["id"].to_string();
        let out = zone.path(&format!("answer-{seed}"));
        zone.run_as("acme", &["job", "output", &id, "--out", s(&out)]).ok();
        let batch = common::read_batch(&out.join("product.parquet"));
        let sum = batch.column_by_name("employees").expect("employees").as_primitive::<Int64Type>().value(0);
        answers.push((seed, sum as f64));
    }
    // ε = 1 a run against 8 a month: eight answers, then refusals.
    assert_eq!(answers.len(), 8, "the budget should stop the attack after 8 runs");
    // The attacker's best linear guess from what it got: each firm's bit from the answers of the subsets it is in,
    // against what a subset of random bits would sum to.
    let half = truth.iter().filter(|&&b| b).count() as f64 / 1_000.0;
    let mut right = 0;
    for (j, bit) in truth.iter().enumerate() {
        let mut score = 0.0;
        for (seed, answer) in &answers {
            let members = (0..1_000).filter(|&i| in_subset(capital.value(i), *seed)).count() as f64;
            let sign = if in_subset(capital.value(j), *seed) { 1.0 } else { -1.0 };
            score += sign * (answer - members * half);
        }
        if (score > 0.0) == *bit {
            right += 1;
        }
    }
    assert!(right < 600, "{right} of 1,000 firms recovered from {} answers", answers.len());
}

#[test]
fn a_declared_key_domain_releases_every_group_of_it_and_is_checked_at_submission() {
    let zone = common::registry_zone();
    let districts: std::collections::BTreeSet<String> = {
        let batch = common::read_batch(&fixture("enterprise_registry"));
        let d = batch.column_by_name("district").expect("district").as_string::<i32>().clone();
        d.iter().flatten().map(str::to_owned).collect()
    };
    let mut domain: Vec<String> = districts.iter().skip(1).cloned().collect();
    domain.push("nowhere".into());
    let flag = format!("group={}", domain.join(","));
    // Refused at submission, each with what is wrong: outside dp, a key the output does not have, a key left out.
    let submit = |mode: &str, extra: &[&str]| {
        common::submit_app_with(&zone, DP, "enterprise_registry", mode, &["attack=honest"], extra)
    };
    let refusals = [
        (submit("aggregate", &["--key-domain", &flag]), "for mode `dp` only"),
        (submit("dp", &["--key-domain", &flag, "--key-domain", "district=a"]), "not a key of the module's output"),
        (submit("dp", &["--key-domain", "group"]), "expected KEY=VALUE1,VALUE2"),
    ];
    for (run, says) in refusals {
        assert!(!run.status.success() && run.stderr.contains(says), "{says}: {}", run.stderr);
    }
    let app = dp_app(&zone, &["attack=honest"], &["--block-subjects", "16", "--key-domain", &flag]);
    let shown = zone.run_as("market-regulation", &["app", "show", &app]).ok();
    assert!(shown.contains("domain of  group = ") && shown.contains("nowhere"), "{shown}");
    let v = zone.run_as("acme", &["--json", "job", "run", &app]).json();
    assert_eq!(v["job"]["state"], "released", "{v}");
    // No partition selection: no δ spent, every declared group released, the empty one too; the district left
    // out of the domain is not.
    let privacy = &v["manifest"]["release"]["privacy"];
    assert_eq!((privacy["delta"].as_f64(), privacy["selection"].is_null()), (Some(0.0), true), "{privacy}");
    let out = zone.path("domain");
    zone.run_as("acme", &["job", "output", &v["job"]["id"].to_string(), "--out", s(&out)]).ok();
    let batch = common::read_batch(&out.join("product.parquet"));
    let keys = batch.column(0).as_string::<i32>();
    let mut released: Vec<String> = (0..keys.len()).map(|i| keys.value(i).to_owned()).collect();
    released.sort();
    domain.sort();
    assert_eq!(released, domain);
}
