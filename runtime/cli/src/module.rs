//! `module check`: the contract check an operator runs before submitting, and the zone runs at submission.

use anyhow::Context as _;
use serde_json::json;
use zone_sandbox::{Sandbox, SandboxLimits};
use zone_store::Zone;

use crate::args::ModuleCheckArgs;
use crate::context::Ctx;
use crate::output::{self, Mode};

pub fn check(ctx: &Ctx<'_>, args: &ModuleCheckArgs) -> anyhow::Result<()> {
    let (zone_dir, mode) = (ctx.cli.zone.as_deref(), ctx.mode);
    let wasm = std::fs::read(&args.module).with_context(|| format!("reading {}", args.module.display()))?;
    let params = parse_params(&args.params)?;
    // Inside a zone, the zone's limits (`zone.toml [sandbox]`); outside, the defaults.
    // Inside a zone, someone allowed to check modules is acting (the zone's limits are its business).
    let zone = match zone_dir {
        Some(root) if root.join("zone.toml").exists() => {
            let zone = Zone::open(root)?;
            let who = ctx.actor(&zone)?;
            zone.authorize(&who, &zone_store::Action::ModuleCheck, &[format!("module:{}", args.module.display())])?;
            Some(zone)
        }
        _ => None,
    };
    let limits = match &zone {
        Some(zone) => crate::limits::sandbox_limits(&zone.sandbox_settings()?),
        None => SandboxLimits::default(),
    };
    let sandbox = Sandbox::new(limits)?;
    let checked = sandbox.check(&wasm).with_context(|| format!("{} is refused", args.module.display()))?;
    let mut declared = None;
    if let Some(spec) = &args.dataset {
        let root = zone_dir.context("--dataset needs a zone: pass --zone DIR or set CLEANROOM_ZONE")?;
        let zone = match zone {
            Some(zone) => zone,
            None => Zone::open(root)?,
        };
        let version = zone.dataset(spec)?;
        let schema = zone.policy(&version)?.guest_schema();
        let module = sandbox.load(&checked.serialized)?;
        let run = sandbox
            .start(&module, &schema, &params)
            .with_context(|| format!("{} is refused at init", args.module.display()))?;
        declared = run.output().cloned();
    }
    let columns: Vec<serde_json::Value> = declared
        .iter()
        .flat_map(|d| {
            let keys =
                d.keys.iter().map(|k| json!({"name": k.name(), "role": "key", "type": k.data_type().to_string()}));
            let measures = d.measures.iter().map(|m| {
                json!({
                    "name": m.field.name(),
                    "role": "measure",
                    "type": m.field.data_type().to_string(),
                    "aggregate": m.aggregate.name(),
                    "bounds": m.bounds.map(|(lo, hi)| vec![lo, hi]),
                })
            });
            keys.chain(measures).collect::<Vec<_>>()
        })
        .collect();
    if mode == Mode::Json {
        return output::json(&json!({
            "module": args.module,
            "sha256": checked.sha256,
            "imports": checked.imports,
            "accepted": true,
            "declared_output": declared.as_ref().map(|_| &columns),
            "reads": declared.as_ref().map(|d| d.inputs.clone().unwrap_or_else(|| vec!["*".to_owned()])),
        }));
    }
    outln!("{}: accepted", args.module.display());
    outln!("  sha256   {}", checked.sha256);
    outln!("  imports  {}", if checked.imports.is_empty() { "(none)".to_owned() } else { checked.imports.join(", ") });
    if let Some(d) = &declared {
        match &d.inputs {
            Some(inputs) => outln!("  reads    {}", inputs.join(", ")),
            None => outln!("  reads    every column the policy shows (the job declares no `reads`)"),
        }
        let mut t = output::table(["column", "role", "type", "aggregate", "bounds"]);
        for c in &columns {
            let text = |k: &str| c[k].as_str().unwrap_or_default().to_owned();
            let bounds = c["bounds"].as_array().map(|b| format!("[{}, {}]", b[0], b[1])).unwrap_or_default();
            t.add_row(vec![text("name"), text("role"), text("type"), text("aggregate"), bounds]);
        }
        outln!("{t}");
    } else {
        outln!("  (pass --dataset NAME to see the output it declares for that dataset)");
    }
    Ok(())
}

/// `--param KEY=VALUE` arguments, in order.
pub fn parse_params(args: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    args.iter()
        .map(|p| {
            let (k, v) = p.split_once('=').with_context(|| format!("--param `{p}` is not KEY=VALUE"))?;
            Ok((k.to_owned(), v.to_owned()))
        })
        .collect()
}
