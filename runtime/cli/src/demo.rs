//! `cleanroom demo`: the whole story on a fresh zone, for a first look and for the README's main command.
//! Today: the authority sets up principals, each agency publishes its dataset, the authority grants an operator,
//! the operator submits the real `finance-capital` guest, the authority and the agency approve it, and the
//! inspector verifies the audit log. Running the job joins it with the issue "Jobs".

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use datasets_fixtures::{DATASETS, FixtureSpec};
use zone_store::{Principal, PublishRequest, Role, Zone};

use crate::args::{
    AppCommand, AppDecideArgs, AppSubmitArgs, AuditCommand, AuditLogArgs, Cli, DemoArgs, JobCommand, JobOutputArgs,
    JobRunArgs, ProductVerifyArgs, ShowArgs,
};
use crate::commands;
use crate::context::Ctx;
use crate::output::Mode;
use crate::progress::Bars;

const AUTHORITY: &str = "data-bureau";
const OPERATOR: &str = "acme-analytics";
const INSPECTOR: &str = "inspector";

/// The agency principal of each fixture provider.
fn clerk(provider: &str) -> String {
    format!("{provider}-clerk")
}

pub fn run(zone_dir: Option<&Path>, args: &DemoArgs, mode: Mode) -> anyhow::Result<()> {
    // A temporary zone unless the user asked to keep one.
    let temp = tempfile::Builder::new().prefix("cleanroom-demo-").tempdir().context("creating a temporary folder")?;
    let root: PathBuf = zone_dir.map_or_else(|| temp.path().join("zone"), Path::to_path_buf);
    let data = temp.path().join("agency-files");

    step(mode, &format!("1. zone init in {} (first authority: {AUTHORITY})", root.display()));
    let mut zone = Zone::init(&root, AUTHORITY, Some("suzhou-data-bureau"))?;
    let authority = zone.actor(AUTHORITY)?;

    step(mode, "2. the authority adds the agencies, an operator and an inspector");
    let providers = ["market-regulation", "taxation", "health-commission"];
    for p in providers {
        zone.add_principal(&authority, &Principal { name: clerk(p), role: Role::Agency, org: Some(p.into()) })?;
    }
    zone.add_principal(
        &authority,
        &Principal { name: OPERATOR.into(), role: Role::Operator, org: Some("acme".into()) },
    )?;
    zone.add_principal(&authority, &Principal { name: INSPECTOR.into(), role: Role::Inspector, org: None })?;
    if mode == Mode::Human {
        for p in zone.list_principals(&authority)? {
            outln!("   {:<26} {:<10} {}", p.name, p.role.name(), p.org.unwrap_or_default());
        }
    }

    step(
        mode,
        &format!("3. the agencies prepare their data: {} synthetic rows per dataset (seed {})", args.rows, args.seed),
    );
    let spec = FixtureSpec::with_rows(args.rows, args.seed);
    datasets_fixtures::generate(&data, &spec, &mut |_, _| {}).context("generating the demo datasets")?;

    step(mode, "4. each agency publishes its dataset under its policy");
    for name in DATASETS {
        let request = PublishRequest {
            files: vec![data.join(format!("{name}.parquet"))],
            policy: data.join(format!("{name}.toml")),
            name: Some(name.to_owned()),
        };
        let provider = match name {
            "enterprise_registry" => "market-regulation",
            "tax_credit" => "taxation",
            _ => "health-commission",
        };
        let agency = zone.actor(&clerk(provider))?;
        let outcome = zone.publish(&agency, &request, &mut Bars::default())?;
        let v = outcome.version();
        if mode == Mode::Human {
            outln!("   {} published {}@{} ({} rows)", agency.name, v.dataset, v.version, v.rows);
        }
    }
    let as_operator = Cli::acting(
        root.clone(),
        OPERATOR,
        mode == Mode::Json,
        crate::args::Command::Demo(DemoArgs { rows: 0, seed: 0 }),
    );
    let operator_ctx = Ctx { cli: &as_operator, mode, remote: None };
    commands::dataset(&operator_ctx, &crate::args::DatasetCommand::List)?;

    step(mode, "5. what the operator may see of enterprise_registry (classes and types, never a value)");
    let show = ShowArgs { dataset: "enterprise_registry".into(), policy: false };
    commands::dataset(&operator_ctx, &crate::args::DatasetCommand::Show(show))?;

    step(
        mode,
        "6. the authority grants the operator the market regulator's data for finance and the health commission's for \
         health, for one year",
    );
    let today = zone_store::today();
    let grant = zone.create_grant(
        &authority,
        &zone_store::NewGrant {
            operator: OPERATOR.into(),
            datasets: Vec::new(),
            providers: vec!["market-regulation".into(), "health-commission".into()],
            domains: vec!["finance".into(), "health".into()],
            valid_from: today,
            valid_to: today + chrono::Days::new(365),
            terms: None,
        },
    )?;
    if mode == Mode::Human {
        outln!("   grant {} for {}: {} to {}", grant.id, grant.operator, grant.valid_from, grant.valid_to);
    }
    drop(zone);

    // The remaining steps go through the same command code as the CLI, as each principal.
    let cli = |who: &str| -> Cli {
        Cli::acting(root.clone(), who, mode == Mode::Json, crate::args::Command::Demo(DemoArgs { rows: 0, seed: 0 }))
    };
    step(
        mode,
        "7. the operator submits the finance-capital module (capital per employee by district × industry × size)",
    );
    let as_operator = cli(OPERATOR);
    crate::governance::app(
        &Ctx { cli: &as_operator, mode, remote: None },
        &AppCommand::Submit(Box::new(AppSubmitArgs {
            module: PathBuf::from(example_guests::FINANCE_CAPITAL.path),
            datasets: vec!["enterprise_registry".into()],
            domain: "finance".into(),
            purpose: "capital intensity of Suzhou firms by district, industry and size, for credit risk models".into(),
            mode: "aggregate".into(),
            security_notes: None,
            params: Vec::new(),
            batch_rows: None,
            partitions: None,
            epsilon: None,
            block_subjects: None,
            key_domain: Vec::new(),
        })),
    )?;

    step(mode, "8. two-party approval: the authority, then the market regulator");
    for who in [AUTHORITY, &clerk("market-regulation")] {
        let as_who = cli(who);
        crate::governance::app(
            &Ctx { cli: &as_who, mode, remote: None },
            &AppCommand::Approve(AppDecideArgs {
                id: 1,
                reason: "purpose, output and security measures reviewed".into(),
            }),
        )?;
    }

    step(
        mode,
        "9. the operator runs the job: one plan — scan, desensitize, guest map in the sandbox, contribution bound, \
         aggregate, threshold k, output guard — and the product is released",
    );
    let ctx = Ctx { cli: &as_operator, mode, remote: None };
    crate::jobs::job(&ctx, &JobCommand::Run(JobRunArgs { app: 1, explain: false, batch_rows: None, detach: false }))?;

    step(
        mode,
        "   the market regulator's view of the same job: what the gate counted (groups made, suppressed under k, \
         contributions over the bound) — counters the guest controls, which the operator never sees",
    );
    let as_agency = cli(&clerk("market-regulation"));
    crate::jobs::job(&Ctx { cli: &as_agency, mode, remote: None }, &JobCommand::Status { id: 1 })?;

    step(mode, "10. the operator takes the product out of the zone and verifies it against the zone's public key");
    let product = temp.path().join("product");
    crate::jobs::job(&ctx, &JobCommand::Output(JobOutputArgs { id: 1, out: product.clone() }))?;
    let key = Zone::open(&root)?.keys()?.public_key_hex();
    crate::jobs::verify(&ctx, &ProductVerifyArgs { dir: product, key: Some(key.clone()) })?;

    step(
        mode,
        "11. health records allow only differentially private products: the operator submits health-costs over \
         clinic_visits in mode dp (ε = 1 per run, each patient in a run of the module of its own), and the authority \
         and the health commission approve it",
    );
    crate::governance::app(
        &Ctx { cli: &as_operator, mode, remote: None },
        &AppCommand::Submit(Box::new(AppSubmitArgs {
            module: PathBuf::from(example_guests::HEALTH_COSTS.path),
            datasets: vec!["clinic_visits".into()],
            domain: "health".into(),
            purpose: "visits and costs by district, for planning outpatient capacity".into(),
            mode: "dp".into(),
            security_notes: None,
            params: vec!["by=district".into(), "max_cost=5000".into()],
            batch_rows: None,
            partitions: None,
            epsilon: Some(1.0),
            block_subjects: Some(1),
            key_domain: Vec::new(),
        })),
    )?;
    for who in [AUTHORITY, &clerk("health-commission")] {
        let as_who = cli(who);
        crate::governance::app(
            &Ctx { cli: &as_who, mode, remote: None },
            &AppCommand::Approve(AppDecideArgs { id: 2, reason: "dp release reviewed".into() }),
        )?;
    }
    step(
        mode,
        "12. the operator runs it: ε is charged before a row is read; every released cell is noised and carries its \
         95 % interval",
    );
    let ctx = Ctx { cli: &as_operator, mode, remote: None };
    crate::jobs::job(&ctx, &JobCommand::Run(JobRunArgs { app: 2, explain: false, batch_rows: None, detach: false }))?;
    step(mode, "   the operator's privacy budget on clinic_visits this month");
    crate::oversight::budget(&ctx)?;

    step(mode, "13. the inspector reads and verifies the audit log");
    let as_inspector = cli(INSPECTOR);
    let ctx = Ctx { cli: &as_inspector, mode, remote: None };
    commands::audit(
        &ctx,
        &AuditCommand::Log(AuditLogArgs { action: None, dataset: None, operator: None, app: None, since: None }),
    )?;
    commands::audit(&ctx, &AuditCommand::Verify(crate::args::AuditVerifyArgs { bundle: None, key: None }))?;

    step(
        mode,
        "14. the inspector takes an evidence bundle out of the zone and checks it offline against the zone's key",
    );
    let bundle = temp.path().join("evidence.json");
    commands::audit(&ctx, &AuditCommand::Export(crate::args::AuditExportArgs { out: bundle.clone(), entry: None }))?;
    commands::audit(
        &ctx,
        &AuditCommand::Verify(crate::args::AuditVerifyArgs { bundle: Some(bundle), key: Some(key) }),
    )?;

    if zone_dir.is_some() {
        step(mode, &format!("the zone is kept in {}", root.display()));
    }
    Ok(())
}

fn step(mode: Mode, text: &str) {
    // In JSON mode stdout carries only JSON documents; narration goes to stderr.
    match mode {
        Mode::Human => outln!("\n== {text}"),
        Mode::Json => errln!("== {text}"),
    }
}
