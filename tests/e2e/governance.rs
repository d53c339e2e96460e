//! Governance through the CLI: the role × action matrix (every refusal recorded), grant states gating
//! submissions, two-party approval, re-approval when a dataset or policy changes, and audit evidence bundles.

use arrow_schema::{DataType, Schema};
use serde_json::Value;
use zone_sandbox::Aggregate;
use zone_sandbox::output::{key, measure};
use zone_sandbox::testing::{ECHO, INIT_OK, component};

use crate::common::{FailingAuditLog, Run, TestZone, fixture, policy, s};

const FINANCE: &str = example_guests::FINANCE_CAPITAL.path;
const GRADES: &str = example_guests::CREDIT_GRADES.path;

/// `app submit` of the credit-grades guest over tax_credit for finance.
const SUBMIT_GRADES: [&str; 12] = [
    "app",
    "submit",
    "--module",
    GRADES,
    "--dataset",
    "tax_credit",
    "--domain",
    "finance",
    "--purpose",
    "grades",
    "--mode",
    "aggregate",
];

fn in_a_year() -> String {
    (chrono::Utc::now().date_naive() + chrono::Days::new(365)).to_string()
}

fn today() -> String {
    chrono::Utc::now().date_naive().to_string()
}

/// `grant create` for `operator` over `data` (flags such as `--datasets=tax_credit`) and `domains`, from..=to.
fn grant_create<'a>(operator: &'a str, data: &[&'a str], domains: &'a str, from: &'a str, to: &'a str) -> Vec<&'a str> {
    let mut args = vec!["grant", "create", "--operator", operator];
    args.extend_from_slice(data);
    args.extend(["--domains", domains, "--from", from, "--to", to]);
    args
}

/// A zone with the registry and tax data published and grant 1: `acme` may use market-regulation's data and
/// tax_credit for finance for a year.
fn governed_zone() -> TestZone {
    let zone = TestZone::new();
    zone.publish_fixture("enterprise_registry");
    zone.publish_fixture("tax_credit");
    let (from, to) = (today(), in_a_year());
    let data = ["--providers=market-regulation", "--datasets=tax_credit"];
    zone.run(&grant_create("acme", &data, "finance,commerce", &from, &to)).ok();
    zone
}

fn submit_finance(zone: &TestZone) -> Value {
    let run = zone.run_as(
        "acme",
        &[
            "--json",
            "app",
            "submit",
            "--module",
            FINANCE,
            "--dataset",
            "enterprise_registry",
            "--domain",
            "finance",
            "--purpose",
            "capital intensity by district",
            "--mode",
            "aggregate",
        ],
    );
    let v = run.json();
    run.ok();
    v
}

/// The JSON error class of a failed `--json` run.
#[track_caller]
fn refused_class(run: Run) -> String {
    let v = run.json();
    assert!(!run.status.success(), "should be refused: {}", run.stdout);
    v["error"]["class"].as_str().unwrap_or_default().to_owned()
}

#[test]
fn every_role_action_pair_is_decided_by_one_layer_and_refusals_are_recorded() {
    let zone = governed_zone();
    let app = submit_finance(&zone);
    assert_eq!(app["id"], 1);
    let grant_show = ["grant", "show", "1"];
    let app_show = ["app", "show", "1"];
    let approve = ["app", "approve", "1", "--reason", "reviewed"];
    let (tax_policy, tax_file, bundle) = (policy("tax_credit"), fixture("tax_credit"), zone.path("bundle.json"));
    let publish_tax = ["dataset", "publish", "--policy", s(&tax_policy), s(&tax_file)];
    let rows = ["dataset", "rows", "enterprise_registry", "--limit", "3"];
    let show = ["dataset", "show", "tax_credit"];
    let plist = ["principal", "list"];
    let to = in_a_year();
    let from = today();
    let gcreate = grant_create("zenith", &["--datasets=tax_credit"], "commerce", &from, &to);
    let submit_tax = SUBMIT_GRADES;
    let audit_log = ["audit", "log"];
    let zone_verify = ["zone", "verify"];
    let export = ["audit", "export", "--out", s(&bundle)];

    let fingerprint = "ab".repeat(32);
    let revoke = ["cert", "revoke", &fingerprint, "--reason", "r"];
    // (command, who, allowed?). Principals: dsb (authority), market-regulation/taxation/health-commission
    // (agencies), acme/zenith (operators; acme holds grant 1 and made app 1), inspector.
    let cases: Vec<(&[&str], &str, bool)> = vec![
        (&publish_tax, "taxation", true),
        (&publish_tax, "market-regulation", false),
        (&publish_tax, "acme", false),
        (&publish_tax, "dsb", false),
        (&publish_tax, "inspector", false),
        (&rows, "market-regulation", true),
        (&rows, "taxation", false),
        (&rows, "acme", false),
        (&rows, "dsb", false),
        (&rows, "inspector", false),
        (&show, "acme", true),
        (&show, "inspector", true),
        (&plist, "dsb", true),
        (&plist, "inspector", true),
        (&plist, "acme", false),
        (&gcreate, "market-regulation", false),
        (&gcreate, "acme", false),
        (&gcreate, "inspector", false),
        (&gcreate, "dsb", true),
        (&grant_show, "acme", true),
        (&grant_show, "zenith", false),
        (&grant_show, "market-regulation", true),
        (&grant_show, "health-commission", false),
        (&grant_show, "inspector", true),
        (&submit_tax, "dsb", false),
        (&submit_tax, "taxation", false),
        (&submit_tax, "inspector", false),
        (&app_show, "zenith", false),
        (&app_show, "health-commission", false),
        (&app_show, "taxation", false),
        (&app_show, "market-regulation", true),
        (&app_show, "inspector", true),
        (&approve, "acme", false),
        (&approve, "zenith", false),
        (&approve, "inspector", false),
        (&approve, "taxation", false),
        (&approve, "health-commission", false),
        (&approve, "market-regulation", true),
        (&approve, "dsb", true),
        (&audit_log, "acme", false),
        (&audit_log, "market-regulation", false),
        (&audit_log, "dsb", true),
        (&zone_verify, "acme", false),
        (&zone_verify, "inspector", true),
        (&export, "taxation", false),
        (&export, "inspector", true),
        (&audit_log, "mallory", false),
        (&["cert", "list"], "dsb", true),
        (&["cert", "list"], "inspector", true),
        (&["cert", "list"], "market-regulation", false),
        (&["cert", "list"], "acme", false),
        (&["org", "list"], "inspector", true),
        (&["org", "list"], "acme", false),
        (&["principal", "suspend", "zenith", "--reason", "r"], "market-regulation", false),
        (&["principal", "suspend", "zenith", "--reason", "r"], "acme", false),
        (&["principal", "suspend", "zenith", "--reason", "r"], "inspector", false),
        (&revoke, "taxation", false),
    ];
    for (args, who, allowed) in cases {
        let mut full = vec!["--json"];
        full.extend_from_slice(args);
        let before = zone.audit().len();
        let run = zone.run_as(who, &full);
        let what = format!("{who}: {}", args.join(" "));
        if allowed {
            assert!(run.status.success(), "{what} should be allowed:\n{}", run.stderr);
            continue;
        }
        let class = refused_class(run);
        assert!(class.starts_with("access."), "{what}: refused with {class}, not an access class");
        // The refusal is the newest entry of the log, with who, the reason class and the outcome.
        let log = zone.audit();
        assert_eq!(log.len(), before + 1, "{what}: exactly one entry for the refusal");
        let last = &log[log.len() - 1];
        assert_eq!((last["actor"].as_str(), last["outcome"].as_str()), (Some(who), Some("refused")), "{what}");
        assert_eq!(last["reason"].as_str(), Some(class.as_str()), "{what}");
    }
    // Specific reasons: nobody approves their own request; an operator whose grant does not cover the domain cannot submit.
    let run = zone.run_as("acme", &["--json", "app", "approve", "1", "--reason", "mine"]);
    assert_eq!(refused_class(run), "access.self");
    let mut full = vec!["--json"];
    full.extend_from_slice(&submit_tax);
    assert_eq!(refused_class(zone.run_as("zenith", &full)), "access.grant");
    let run = zone.run_as("mallory", &["--json", "dataset", "list"]);
    assert_eq!(refused_class(run), "access.unknown_principal");
    let err = zone.run_as("taxation", &["app", "approve", "1", "--reason", "x"]).fails();
    assert!(err.contains("taxation (agency) may not approve or reject this application"), "{err}");
    // No principal at all: a usage error that says how to name one.
    let err = crate::common::cleanroom(&zone.zone, &["dataset", "list"]).fails();
    assert!(err.contains("--as NAME or set CLEANROOM_AS"), "{err}");

    // The agency sees its own raw rows; the CLI printed them, and the read is recorded.
    let v =
        zone.run_as("market-regulation", &["--json", "dataset", "rows", "enterprise_registry", "--limit", "2"]).json();
    assert_eq!(v["rows"].as_array().map(Vec::len), Some(2));
    let last = zone.audit().pop().expect("entry");
    assert_eq!((last["action"].as_str(), last["outcome"].as_str()), (Some("dataset.rows"), Some("ok")));
}

#[test]
fn grant_states_gate_submissions() {
    let zone = TestZone::new();
    zone.publish_fixture("tax_credit");
    let (from, to) = (today(), in_a_year());
    // Bad grants are refused with every problem named.
    let err =
        zone.run(&grant_create("inspector", &["--datasets=tax_credit,nope"], "finance,astrology", &to, &from)).fails();
    for expected in [
        "`inspector` is inspector, not an operator",
        "no dataset `nope`",
        "`astrology` is not a domain",
        "is before --from",
    ] {
        assert!(err.contains(expected), "`{expected}` in {err}");
    }
    let err = zone.run(&grant_create("acme", &[], "finance", &from, &to)).fails();
    assert!(err.contains("name the data"), "{err}");

    let terms = zone.path("terms.txt");
    std::fs::write(&terms, "授权运营协议 — terms of the agreement").expect("terms");
    let mut args = vec!["--json"];
    args.extend(grant_create("acme", &["--datasets=tax_credit"], "finance", &from, &to));
    args.extend(["--terms", s(&terms)]);
    let g = zone.run(&args).json();
    assert_eq!((g["id"].as_u64(), g["status"].as_str()), (Some(1), Some("active")));
    assert_eq!(g["terms_sha256"].as_str().map(str::len), Some(64));
    let submit = |domain: &str| {
        zone.run_as(
            "acme",
            &[
                "--json",
                "app",
                "submit",
                "--module",
                GRADES,
                "--dataset",
                "tax_credit",
                "--domain",
                domain,
                "--purpose",
                "grades per year",
                "--mode",
                "aggregate",
                "--param",
                "by=year",
            ],
        )
    };
    // The grant covers finance only.
    let run = submit("commerce");
    assert_eq!(refused_class(run), "access.grant");
    let err = submit("commerce").stderr;
    assert!(err.contains("does not cover domain `commerce`"), "{err}");

    // Suspended (by operator name), with reason and deadline: no submission.
    let deadline = (chrono::Utc::now().date_naive() + chrono::Days::new(30)).to_string();
    zone.run(&["grant", "suspend", "acme", "--reason", "late security report", "--correct-by", &deadline]).ok();
    let shown = zone.run(&["--json", "grant", "show", "1"]).json();
    assert_eq!((shown["status"].as_str(), shown["reason"].as_str()), (Some("suspended"), Some("late security report")));
    let run = submit("finance");
    assert!(
        run.stderr.contains(&format!("grant 1 is suspended (late security report; to be corrected by {deadline})")),
        "{}",
        run.stderr
    );
    assert_eq!(refused_class(run), "access.grant");
    let err = zone.run(&["grant", "suspend", "1", "--reason", "x", "--correct-by", "2020-01-01"]).fails();
    assert!(err.contains("in the past"), "{err}");

    // Resumed: it runs again.
    zone.run(&["grant", "resume", "1", "--reason", "report received"]).ok();
    let v = submit("finance").json();
    assert_eq!(v["status"], "pending");
    assert_eq!(v["grant_id"], 1);

    // Terminated: final.
    zone.run(&["grant", "terminate", "1", "--reason", "agreement ended early"]).ok();
    assert_eq!(refused_class(submit("finance")), "access.grant");
    let err = zone.run(&["grant", "resume", "1", "--reason", "please"]).fails();
    assert!(err.contains("a terminated grant never changes"), "{err}");

    // Expired by date and not yet valid: nobody acted, and neither lets anything run.
    zone.run(&grant_create("acme", &["--datasets=tax_credit"], "finance", "2020-01-01", "2020-12-31")).ok();
    zone.run(&grant_create("acme", &["--datasets=tax_credit"], "finance", "2099-01-01", "2099-12-31")).ok();
    let list = zone.run_as("inspector", &["--json", "grant", "list"]).json();
    let states: Vec<&str> = list.as_array().expect("grants").iter().filter_map(|g| g["status"].as_str()).collect();
    assert_eq!(states, ["terminated", "expired", "not_yet_valid"]);
    let err = submit("finance").stderr;
    assert!(err.contains("grant 2 is expired (ended 2020-12-31)") && err.contains("grant 3 is not_yet_valid"), "{err}");
    // Each state change is in the log, with its reason.
    let actions: Vec<String> = zone
        .audit()
        .iter()
        .filter_map(|e| e["action"].as_str().map(str::to_owned))
        .filter(|a| a.starts_with("grant."))
        .collect();
    assert_eq!(
        actions,
        [
            "grant.create",
            "grant.create",
            "grant.create",
            "grant.suspend",
            "grant.suspend",
            "grant.resume",
            "grant.terminate",
            "grant.resume",
            "grant.create",
            "grant.create"
        ]
    );
}

#[test]
fn two_party_approval_is_bound_to_module_datasets_and_policies() {
    let zone = governed_zone();
    let app = submit_finance(&zone);
    assert_eq!(app["status"], "pending");
    assert_eq!(app["required"], serde_json::json!(["authority", "agency:market-regulation"]));
    assert_eq!(app["module_sha256"].as_str().map(str::len), Some(64));
    let stored = zone.zone.join("objects").join(&app["module_sha256"].as_str().expect("sha")[..2]);
    assert!(stored.exists(), "the module is stored under its SHA-256");

    let v = zone.run(&["--json", "app", "approve", "1", "--reason", "purpose is public interest"]).json();
    assert_eq!((v["status"].as_str(), v["missing"][0].as_str()), (Some("pending"), Some("agency:market-regulation")));
    let err = zone.run(&["app", "approve", "1", "--reason", "again"]).fails();
    assert!(err.contains("authority already approved it for this binding"), "{err}");
    let v =
        zone.run_as("market-regulation", &["--json", "app", "approve", "1", "--reason", "output is aggregate"]).json();
    assert_eq!(v["status"], "approved");
    let who: Vec<&str> =
        v["approved_by"].as_array().expect("approvals").iter().filter_map(|d| d["principal"].as_str()).collect();
    assert_eq!(who, ["dsb", "market-regulation"]);
    let human = zone.run_as("acme", &["app", "show", "1"]).ok();
    assert!(human.contains("(approved)") && human.contains("approved by market-regulation"), "{human}");

    // The agency publishes a new version with a stricter policy: the approval no longer holds.
    let stricter = std::fs::read_to_string(policy("enterprise_registry"))
        .expect("policy")
        .replace("min_group_size = 10", "min_group_size = 25");
    let path = zone.path("registry_k25.toml");
    std::fs::write(&path, stricter).expect("write");
    zone.run(&["dataset", "publish", "--policy", s(&path), s(&fixture("enterprise_registry"))]).ok();
    let v = zone.run_as("acme", &["--json", "app", "show", "1"]).json();
    assert_eq!(v["status"], "reapproval_needed");
    let drift: Vec<&str> = v["drift"].as_array().expect("drift").iter().filter_map(Value::as_str).collect();
    assert!(drift.iter().any(|d| d.starts_with("enterprise_registry: version 1 → 2")), "{drift:?}");
    assert!(drift.iter().any(|d| d.starts_with("enterprise_registry: policy ")), "{drift:?}");
    assert_eq!(v["binding"]["datasets"][0]["version"], 2);
    // Both parties approve again, for the new binding.
    zone.run(&["app", "approve", "1", "--reason", "k raised to 25: fine"]).ok();
    let v = zone.run_as("acme", &["--json", "app", "show", "1"]).json();
    assert_eq!(
        (v["status"].as_str(), v["missing"][0].as_str()),
        (Some("reapproval_needed"), Some("agency:market-regulation"))
    );
    let v = zone.run_as("market-regulation", &["--json", "app", "approve", "1", "--reason", "ok"]).json();
    assert_eq!(v["status"], "approved");
    assert_eq!(v["decisions"].as_array().map(Vec::len), Some(4));

    // A pinned version does not drift when a new version appears.
    let pinned = zone
        .run_as(
            "acme",
            &[
                "--json",
                "app",
                "submit",
                "--module",
                FINANCE,
                "--dataset",
                "enterprise_registry@2",
                "--domain",
                "finance",
                "--purpose",
                "pinned",
                "--mode",
                "aggregate",
            ],
        )
        .json();
    assert_eq!(pinned["datasets"][0]["pinned"], 2);

    // A rejection is final.
    let id = pinned["id"].as_u64().expect("id").to_string();
    zone.run_as("market-regulation", &["app", "reject", &id, "--reason", "purpose too vague"]).ok();
    let err = zone.run(&["app", "approve", &id, "--reason", "looks fine"]).fails();
    assert!(err.contains("rejected application is final"), "{err}");
    let list = zone.run_as("acme", &["--json", "app", "list"]).json();
    let statuses: Vec<&str> = list.as_array().expect("apps").iter().filter_map(|a| a["status"].as_str()).collect();
    assert_eq!(statuses, ["approved", "rejected"]);

    // Every decision is in the log, with the binding's hash.
    let log = zone.run_as("inspector", &["--json", "audit", "log", "--app", "1"]).json();
    let actions: Vec<&str> = log.as_array().expect("entries").iter().filter_map(|e| e["action"].as_str()).collect();
    assert_eq!(actions.iter().filter(|a| **a == "app.approve").count(), 5, "{actions:?}");
    assert!(
        log[0]["hashes"]
            .as_array()
            .expect("hashes")
            .iter()
            .any(|h| h.as_str().is_some_and(|h| h.starts_with("binding:sha256:")))
    );
    let by_operator = zone.run_as("inspector", &["--json", "audit", "log", "--operator", "acme"]).json();
    assert!(by_operator.as_array().expect("entries").len() >= 8);
}

#[test]
fn a_join_needs_every_providing_agency_and_per_person_keys_are_refused() {
    let zone = governed_zone();
    // The credit-grades guest grouped by industry over the registry joined with tax data.
    let v = zone
        .run_as(
            "acme",
            &[
                "--json",
                "app",
                "submit",
                "--module",
                GRADES,
                "--dataset",
                "tax_credit",
                "--dataset",
                "enterprise_registry",
                "--domain",
                "finance",
                "--purpose",
                "tax by industry",
                "--mode",
                "aggregate",
                "--param",
                "by=industry",
            ],
        )
        .json();
    assert_eq!(v["required"], serde_json::json!(["authority", "agency:taxation", "agency:market-regulation"]));
    for who in ["dsb", "taxation"] {
        zone.run_as(who, &["app", "approve", "1", "--reason", "ok"]).ok();
    }
    assert_eq!(zone.run(&["--json", "app", "show", "1"]).json()["status"], "pending");
    zone.run_as("market-regulation", &["app", "approve", "1", "--reason", "ok"]).ok();
    assert_eq!(zone.run(&["--json", "app", "show", "1"]).json()["status"], "approved");

    // Reviewed mode on a dataset whose policy allows only aggregates; a domain outside the policy.
    let base = [
        "--json",
        "app",
        "submit",
        "--module",
        GRADES,
        "--dataset",
        "tax_credit",
        "--purpose",
        "p",
        "--param",
        "by=year",
    ];
    let mut reviewed = base.to_vec();
    reviewed.extend(["--domain", "finance", "--mode", "reviewed"]);
    let run = zone.run_as("acme", &reviewed);
    assert!(run.stderr.contains("does not allow mode `reviewed`"), "{}", run.stderr);
    assert_eq!(refused_class(run), "app.refused");

    // A module that keys its output by the tokenized legal representative: refused at submission.
    let schema = Schema::new(vec![
        key("legal_rep_id", DataType::Utf8),
        measure("capital", DataType::Int64, Aggregate::Sum, Some((0.0, 1e9))),
    ]);
    let wasm = zone.path("per-person.wasm");
    std::fs::write(&wasm, component(&schema, INIT_OK, ECHO, "", b"", "").expect("wat")).expect("write");
    let run = zone.run_as(
        "acme",
        &[
            "--json",
            "app",
            "submit",
            "--module",
            s(&wasm),
            "--dataset",
            "enterprise_registry",
            "--domain",
            "finance",
            "--purpose",
            "p",
            "--mode",
            "aggregate",
        ],
    );
    assert!(
        run.stderr
            .contains("output key `legal_rep_id` is enterprise_registry's `legal_rep_id` column, which is tokenized"),
        "{}",
        run.stderr
    );
    assert_eq!(refused_class(run), "app.refused");
    // A module the sandbox refuses is refused as an application too, and recorded with the sandbox's class.
    let bad = zone.path("bad.wasm");
    std::fs::write(&bad, b"not wasm").expect("write");
    let run = zone.run_as(
        "acme",
        &[
            "--json",
            "app",
            "submit",
            "--module",
            s(&bad),
            "--dataset",
            "enterprise_registry",
            "--domain",
            "finance",
            "--purpose",
            "p",
            "--mode",
            "aggregate",
        ],
    );
    let class = refused_class(run);
    let last = zone.audit().pop().expect("entry");
    assert_eq!((last["action"].as_str(), last["reason"].as_str()), (Some("app.submit"), Some(class.as_str())));
    let apps = zone.run(&["--json", "app", "list"]).json();
    assert_eq!(apps.as_array().map(Vec::len), Some(1), "refused submissions leave no application");
}

#[test]
fn audit_evidence_bundles_verify_offline() {
    let zone = governed_zone();
    let key = zone.run(&["--json", "zone", "status"]).json()["public_key"].as_str().expect("key").to_owned();
    let out = zone.path("evidence.json");
    zone.run_as("inspector", &["audit", "export", "--out", s(&out)]).ok();
    // Offline: no zone, no principal.
    let verify = |args: &[&str]| {
        let o = std::process::Command::new(crate::common::BIN)
            .args(args)
            .env_remove("CLEANROOM_ZONE")
            .env_remove("CLEANROOM_AS")
            .output()
            .expect("run");
        (o.status.success(), String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr))
    };
    let (ok, text) = verify(&["audit", "verify", "--bundle", s(&out), "--key", &key]);
    assert!(ok && text.contains("bundle intact") && text.contains("(the trusted key)"), "{text}");
    // Another key, a changed entry, a bundle that is not JSON.
    let (ok, text) = verify(&["audit", "verify", "--bundle", s(&out), "--key", &"ab".repeat(32)]);
    assert!(!ok && text.contains("not by the trusted key"), "{text}");
    let bundle = std::fs::read_to_string(&out).expect("bundle");
    let tampered = zone.path("tampered.json");
    std::fs::write(&tampered, bundle.replacen("market-regulation", "market-regulatio_", 1)).expect("write");
    let (ok, text) = verify(&["audit", "verify", "--bundle", s(&tampered)]);
    assert!(!ok && text.contains("was changed"), "{text}");
    std::fs::write(&tampered, &bundle[..bundle.len() / 2]).expect("write");
    let (ok, text) = verify(&["audit", "verify", "--bundle", s(&tampered)]);
    assert!(!ok && text.contains("not an evidence bundle") && text.contains("tampered.json:1:"), "{text}");
    // A receipt for one entry: the entry and its inclusion proof only.
    let receipt = zone.path("receipt.json");
    zone.run_as("inspector", &["audit", "export", "--out", s(&receipt), "--entry", "3"]).ok();
    let (ok, text) = verify(&["audit", "verify", "--bundle", s(&receipt), "--key", &key]);
    assert!(ok && text.contains("entry 3 is in the signed log"), "{text}");
    let r: Value = serde_json::from_str(&std::fs::read_to_string(&receipt).expect("receipt")).expect("json");
    assert_eq!(r["entries"].as_array().map(Vec::len), Some(1));
    // The exports are recorded.
    let exports = zone.audit().iter().filter(|e| e["action"] == "audit.export").count();
    assert_eq!(exports, 2);
}

/// Write-ahead: a governance change whose audit entry cannot be appended never reaches the catalog.
#[test]
fn a_change_whose_audit_entry_cannot_be_appended_is_rolled_back() {
    let zone = TestZone::new();
    zone.publish_fixture("tax_credit");
    let (from, to) = (today(), in_a_year());
    let mut args = vec!["--json"];
    args.extend(grant_create("acme", &["--datasets=tax_credit"], "finance", &from, &to));
    let first = zone.run(&args).json();
    assert_eq!(first["id"].as_u64(), Some(1));
    let entries_before = zone.audit().len();

    // The disk under the log fails: the checkpoint file cannot be opened for appending.
    let failing = FailingAuditLog::start(&zone);
    let err = zone.run(&args).fails();
    assert!(err.contains("checkpoints.jsonl"), "the error names the log file: {err}");
    let err = zone.run(&["grant", "suspend", "1", "--reason", "audit", "--correct-by", &to]).fails();
    assert!(err.contains("checkpoints.jsonl"), "{err}");
    let err = zone.run(&["principal", "add", "newcomer", "--role", "inspector"]).fails();
    assert!(err.contains("checkpoints.jsonl"), "{err}");
    let err = zone.run_as("acme", &SUBMIT_GRADES).fails();
    assert!(err.contains("checkpoints.jsonl"), "{err}");
    let (registry_policy, registry) = (policy("enterprise_registry"), fixture("enterprise_registry"));
    let publish = ["dataset", "publish", "--policy", s(&registry_policy), s(&registry)];
    let err = zone.run(&publish).fails();
    assert!(err.contains("checkpoints.jsonl"), "{err}");

    failing.restore();
    // None of the five changes happened: no second grant, grant 1 still active, no principal `newcomer`, no app,
    // no dataset.
    let grants = zone.run(&["--json", "grant", "list"]).json();
    let grants = grants.as_array().expect("grants");
    assert_eq!(grants.len(), 1, "{grants:?}");
    assert_eq!(grants[0]["status"].as_str(), Some("active"));
    let principals = zone.run(&["principal", "list"]).ok();
    assert!(!principals.contains("newcomer"), "{principals}");
    let apps = zone.run_as("acme", &["--json", "app", "list"]).json();
    assert_eq!(apps.as_array().map(Vec::len), Some(0), "{apps}");
    let datasets = zone.run(&["dataset", "list"]).ok();
    assert!(!datasets.contains("enterprise_registry"), "{datasets}");
    // And the log is whole, with nothing claimed for them.
    zone.run_as("inspector", &["audit", "verify"]).ok();
    let entries = zone.audit();
    let added: Vec<_> = entries[entries_before..].iter().map(|e| e["action"].as_str().unwrap_or("")).collect();
    let claimed = ["grant.create", "grant.suspend", "principal.add", "app.submit", "dataset.publish"];
    assert!(!added.iter().any(|a| claimed.contains(a)), "{added:?}");
}
