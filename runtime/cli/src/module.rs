//! `module check`: the contract check an operator runs before submitting, and the zone runs at submission.

use anyhow::Context as _;
use zone_api::routes::{self as api, ModuleCheckAnswer};
use zone_store::Zone;

use crate::args::ModuleCheckArgs;
use crate::context::Ctx;
use crate::output::{self, Mode};

pub fn check(ctx: &Ctx<'_>, args: &ModuleCheckArgs) -> anyhow::Result<()> {
    let shown = args.module.display().to_string();
    // Inside a zone (or through a server), the zone's limits (`zone.toml [sandbox]`), checked by someone allowed to
    // check modules; outside any zone, the sandbox's defaults.
    let in_zone = ctx.is_remote() || ctx.cli.zone.as_deref().is_some_and(|root| root.join("zone.toml").exists());
    let answer = if in_zone {
        let request = api::ModuleCheck {
            module: ctx.file::<api::ModuleCheck>(&args.module)?,
            dataset: args.dataset.clone(),
            params: args.params.clone(),
        };
        ModuleCheckAnswer { module: shown, ..ctx.call(request)? }
    } else {
        if args.dataset.is_some() {
            let root =
                ctx.cli.zone.as_deref().context("--dataset needs a zone: pass --zone DIR or set CLEANROOM_ZONE")?;
            // A folder that is not a zone: opening it says so.
            Zone::open(root)?;
        }
        let wasm = std::fs::read(&args.module).with_context(|| format!("reading {}", args.module.display()))?;
        let params = zone_ops::parse_params(&args.params)?;
        let report = zone_ops::check_module(None, &wasm, &args.module, None, &params)?;
        zone_ops::service::governance::module_answer(shown, report)
    };
    if ctx.mode == Mode::Json {
        return output::json(&answer);
    }
    outln!("{}: accepted", answer.module);
    outln!("  sha256   {}", answer.sha256);
    outln!("  imports  {}", if answer.imports.is_empty() { "(none)".to_owned() } else { answer.imports.join(", ") });
    match (&answer.declared_output, &answer.reads) {
        (Some(columns), reads) => {
            match reads.as_deref() {
                Some([all]) if all == "*" => {
                    outln!("  reads    every column the policy shows (the job declares no `reads`)")
                }
                Some(inputs) => outln!("  reads    {}", inputs.join(", ")),
                None => {}
            }
            let mut t = output::table(["column", "role", "type", "aggregate", "bounds"]);
            for c in columns {
                let bounds = c
                    .bounds
                    .as_deref()
                    .map(|b| format!("[{}, {}]", serde_json::json!(b[0]), serde_json::json!(b[1])))
                    .unwrap_or_default();
                t.add_row(vec![
                    c.name.clone(),
                    c.role.clone(),
                    c.data_type.clone(),
                    c.aggregate.clone().unwrap_or_default(),
                    bounds,
                ]);
            }
            outln!("{t}");
        }
        (None, _) => outln!("  (pass --dataset NAME to see the output it declares for that dataset)"),
    }
    Ok(())
}
