//! `module check`: the contract check an operator runs before submitting, and the zone runs at submission.

use anyhow::Context as _;
use serde_json::json;
use zone_store::Zone;

use crate::args::ModuleCheckArgs;
use crate::context::Ctx;
use crate::output::{self, Mode};

pub fn check(ctx: &Ctx<'_>, args: &ModuleCheckArgs) -> anyhow::Result<()> {
    let (zone_dir, mode) = (ctx.cli.zone.as_deref(), ctx.mode);
    let wasm = std::fs::read(&args.module).with_context(|| format!("reading {}", args.module.display()))?;
    let params = parse_params(&args.params)?;
    // Inside a zone, the zone's limits (`zone.toml [sandbox]`), and someone allowed to check modules is acting (the
    // zone's limits are its business); outside, the defaults.
    let zone = match zone_dir {
        Some(root) if root.join("zone.toml").exists() => {
            let zone = Zone::open(root)?;
            let who = ctx.actor(&zone)?;
            zone.authorize(&who, &zone_store::Action::ModuleCheck, &[format!("module:{}", args.module.display())])?;
            Some(zone)
        }
        _ => None,
    };
    if args.dataset.is_some() && zone.is_none() {
        let root = zone_dir.context("--dataset needs a zone: pass --zone DIR or set CLEANROOM_ZONE")?;
        // A folder that is not a zone: opening it says so.
        Zone::open(root)?;
    }
    let report = zone_ops::check_module(zone.as_ref(), &wasm, &args.module, args.dataset.as_deref(), &params)?;
    let (checked, declared) = (&report, &report.declared);
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
    Ok(zone_ops::parse_params(args)?)
}
