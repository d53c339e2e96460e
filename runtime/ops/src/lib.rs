//! # zone-ops — the zone's application layer
//!
//! What the CLI and the server both do with the domain of `zone-store`, `zone-sandbox` and `zone-jobs`: run a job
//! that passed the gate ([`run_ticket`]: the sandbox under the zone's limits, the grant watch, the timing quantum,
//! the record of its end), check a module ([`check_module`]) and submit an application ([`submit_app`]). Typed
//! requests in, typed results and [`OpsError`] out; it never prints and knows nothing of the command line.
//!
//! Every route of the HTTPS API is an operation here ([`service`]: a request type of `zone-api` that implements
//! [`Handle`]), run by the CLI on a local zone and by the server for a certificate's principal.
//!
//! Where to extend: a new use case of the zone is a function here, called by the CLI and by the server; what it
//! records or refuses is decided by the store.

mod error;
mod limits;
mod local;
mod module;
pub mod pki;
mod run;
pub mod service;
mod submit;

pub use error::OpsError;
pub use limits::sandbox_limits;
pub use local::{DevOutcome, DevRun, NewZone, dev_run, init_zone};
pub use module::{ModuleReport, check_module};
pub use run::{RunOptions, RunOutcome, run_ticket};
pub use service::{Files, Handle, LocalFiles, Session};
pub use submit::{app_output, parse_params, submit_app, submit_app_shown};

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use zone_store::{AppRequest, NewGrant, NoProgress, Principal, PublishRequest, Role, Zone};

    use super::*;

    /// The whole use: publish, grant, submit (the sandbox's checks), approve twice, run, released.
    #[test]
    fn a_submitted_and_approved_module_runs_and_releases_through_the_application_layer() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut zone = Zone::init(&dir.path().join("zone"), "dsb", Some("data-bureau")).expect("init");
        let dsb = zone.actor("dsb").expect("authority");
        for (name, role, org) in
            [("market-regulation", Role::Agency, "market-regulation"), ("acme", Role::Operator, "acme-credit")]
        {
            zone.add_principal(&dsb, &Principal { name: name.into(), role, org: Some(org.into()) }).expect("add");
        }
        let agency = zone.actor("market-regulation").expect("agency");
        let request = PublishRequest {
            files: vec![datasets_fixtures::committed_parquet("enterprise_registry")],
            policy: datasets_fixtures::committed_policy("enterprise_registry"),
            name: None,
        };
        zone.publish(&agency, &request, &mut NoProgress).expect("publish");
        let today = zone_store::today();
        let grant = NewGrant {
            operator: "acme".into(),
            datasets: Vec::new(),
            providers: vec!["market-regulation".into()],
            domains: vec!["finance".into()],
            valid_from: today,
            valid_to: today + chrono::Days::new(30),
            terms: None,
        };
        zone.create_grant(&dsb, &grant).expect("grant");
        let acme = zone.actor("acme").expect("operator");
        let app = AppRequest {
            datasets: vec!["enterprise_registry".into()],
            domain: "finance".into(),
            purpose: "capital per employee".into(),
            mode: "aggregate".into(),
            params: Vec::new(),
            security_notes: None,
            batch_rows: None,
            partitions: None,
            epsilon: None,
            block_subjects: None,
            key_domain: Vec::new(),
        };
        // A module that is not one is refused, with the sandbox's class, and recorded.
        let garbage = dir.path().join("garbage.wasm");
        std::fs::write(&garbage, b"\0asm-not-really").expect("write");
        let err = submit_app(&zone, &acme, &app, &garbage).expect_err("refused");
        assert!(err.to_string().contains("garbage.wasm is refused"), "{err}");
        let missing = submit_app(&zone, &acme, &app, &PathBuf::from("/nonexistent.wasm")).expect_err("missing");
        assert_eq!(missing.class(), zone_api::ErrorClass::InputMissing);
        // The real one.
        let module = PathBuf::from(example_guests::FINANCE_CAPITAL.path);
        let view = submit_app(&zone, &acme, &app, &module).expect("submitted");
        for who in [&dsb, &agency] {
            zone.decide_app(who, view.app.id, true, "reviewed").expect("approve");
        }
        // Runs end at once here (the zone's default quantum is 10 s).
        let toml = dir.path().join("zone/zone.toml");
        let text = std::fs::read_to_string(&toml).expect("zone.toml") + "\n[jobs]\ntiming_quantum_ms = 1\n";
        std::fs::write(&toml, text).expect("zone.toml");
        let ticket = zone.start_job(&acme, view.app.id, None).expect("gate");
        let ran = run_ticket(&zone, &acme, &ticket, RunOptions { explain: true }).expect("recorded");
        assert_eq!(ran.record.state, zone_store::JobState::Released, "{:?}", ran.record);
        assert!(ran.manifest.is_some());
        assert!(ran.batches.iter().map(arrow_array::RecordBatch::num_rows).sum::<usize>() > 0);
        assert!(ran.plan.as_deref().is_some_and(|p| !p.is_empty()));
        // The module the run loaded is the one approved: checked again without the zone, it has the same hash.
        let wasm = std::fs::read(&module).expect("module");
        let report = check_module(None, &wasm, &module, None, &[]).expect("accepted");
        assert_eq!(report.sha256, view.app.module_sha256);
    }
}
