//! Submitting an application: the store's checks of the request, then the sandbox's checks of the module
//! (contract, limits, `init` with the application's guest schema and parameters), then the record. Every refusal
//! is recorded, with its class.

use std::path::Path;

use zone_sandbox::{Sandbox, SandboxError};
use zone_store::{AppOutput, AppRequest, AppView, CheckedModule, OutputColumn, PreparedApp, Principal, Zone};

use crate::error::OpsError;

/// `KEY=VALUE` parameters, in order.
pub fn parse_params(args: &[String]) -> Result<Vec<(String, String)>, OpsError> {
    args.iter()
        .map(|p| {
            let (k, v) = p.split_once('=').ok_or_else(|| OpsError::Param(p.clone()))?;
            Ok((k.to_owned(), v.to_owned()))
        })
        .collect()
}

/// Submits the module at `module` for `request`, as operator `who`.
pub fn submit_app(zone: &Zone, who: &Principal, request: &AppRequest, module: &Path) -> Result<AppView, OpsError> {
    submit_app_shown(zone, who, request, module, &module.display().to_string())
}

/// [`submit_app`], with the module named `shown` in messages (the caller's name for it, not the server's path).
pub fn submit_app_shown(
    zone: &Zone,
    who: &Principal,
    request: &AppRequest,
    module: &Path,
    shown: &str,
) -> Result<AppView, OpsError> {
    let prepared = zone.prepare_app(who, request)?;
    let objects: Vec<String> =
        prepared.versions.iter().map(|v| format!("dataset:{}@{}", v.dataset, v.version)).collect();
    // Records the refusal (its full text), then returns it; a failure to record wins.
    let refuse = |err: OpsError| -> OpsError {
        let text = full_text(&err);
        match zone.record_refusal(who, "app.submit", &objects, err.class().id(), &text) {
            Ok(()) => err,
            Err(record) => OpsError::Store(record),
        }
    };
    let wasm = std::fs::read(module).map_err(|source| refuse(OpsError::Read { path: module.to_path_buf(), source }))?;
    let checked = check_module(zone, &prepared, &wasm, &request.params, shown).map_err(refuse)?;
    Ok(zone.submit_app(who, request, &prepared, &checked)?)
}

/// An error and its sources on one line, as the audit log records a refusal.
fn full_text(err: &OpsError) -> String {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// The sandbox's checks: contract, limits, and `init` with the application's guest schema and parameters.
fn check_module(
    zone: &Zone,
    prepared: &PreparedApp,
    wasm: &[u8],
    params: &[(String, String)],
    module: &str,
) -> Result<CheckedModule, OpsError> {
    // No data is involved here (the guest sees the schema and its parameters only): the operator is told everything
    // about its own module, what it returned included (escaped).
    let refused = |e: SandboxError| {
        let what = match e.zone_detail.as_deref() {
            Some(z) => format!("{} is refused: {e} ({})", module, zone_sandbox::output::inert(z)),
            None => format!("{} is refused", module),
        };
        OpsError::Sandbox { what, source: e }
    };
    let limits = zone.sandbox_settings()?;
    let sandbox = Sandbox::new(crate::limits::sandbox_limits(&limits)).map_err(refused)?;
    let checked = sandbox.check(wasm).map_err(refused)?;
    let schema = guest_schema(prepared).map_err(|detail| OpsError::Refused {
        class: "app.refused",
        detail: format!("{} is refused: {detail}", module),
    })?;
    let loaded = sandbox.load(&checked.serialized).map_err(refused)?;
    // Reviewed mode needs the artifact world (`finish`); `start_reviewed` refuses a module without it.
    let run = match prepared.mode() {
        policies::ReleaseMode::Reviewed => sandbox.start_reviewed(&loaded, &schema, params),
        policies::ReleaseMode::Aggregate | policies::ReleaseMode::Dp => sandbox.start(&loaded, &schema, params),
    }
    .map_err(refused)?;
    let declared = run.output().cloned().ok_or_else(|| OpsError::Refused {
        class: "contract",
        detail: format!("{} is refused: the module declared no output at init", module),
    })?;
    Ok(CheckedModule {
        wasm: wasm.to_vec(),
        sha256: checked.sha256.clone(),
        artifact: checked.serialized.clone(),
        output: app_output(&declared),
    })
}

/// A module's declaration as the catalog keeps it (and as a run compares it with what was approved).
pub fn app_output(declared: &zone_sandbox::OutputDecl) -> AppOutput {
    let mut columns: Vec<OutputColumn> = declared
        .keys
        .iter()
        .map(|k| OutputColumn {
            name: k.name().clone(),
            role: "key".into(),
            data_type: k.data_type().to_string(),
            aggregate: None,
            bounds: None,
        })
        .collect();
    columns.extend(declared.measures.iter().map(|m| OutputColumn {
        name: m.field.name().clone(),
        role: "measure".into(),
        data_type: m.field.data_type().to_string(),
        aggregate: Some(m.aggregate.name().to_owned()),
        bounds: m.bounds.map(|(lo, hi)| [lo, hi]),
    }));
    AppOutput { columns, reads: declared.inputs.clone() }
}

/// What the guest sees of the application's datasets: the guest schema a run will give it (the host joins the
/// datasets on the subject).
fn guest_schema(prepared: &PreparedApp) -> Result<arrow_schema::SchemaRef, String> {
    let named: Vec<(&str, &policies::CompiledPolicy)> =
        prepared.versions.iter().map(|v| v.dataset.as_str()).zip(&prepared.policies).collect();
    zone_jobs::joined_guest_schema(&named).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_key_value_pairs_in_order() {
        let args = ["a=1".to_owned(), "b=x=y".to_owned()];
        assert_eq!(parse_params(&args).expect("ok"), [("a".into(), "1".into()), ("b".into(), "x=y".into())]);
        let err = parse_params(&["nokey".to_owned()]).expect_err("refused");
        assert_eq!(err.class(), zone_api::ErrorClass::InputInvalid);
        assert!(err.to_string().contains("nokey"), "{err}");
    }
}
