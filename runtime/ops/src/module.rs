//! `module check`: a component against the contract and the zone's limits, without data; with a dataset, also
//! `init` with that dataset's guest schema, to read the output the module declares for it.

use std::path::Path;

use zone_sandbox::{OutputDecl, Sandbox, SandboxError, SandboxLimits};
use zone_store::Zone;

use crate::error::OpsError;

/// What a check found.
#[derive(Debug, Clone)]
pub struct ModuleReport {
    pub sha256: String,
    /// The interfaces it imports (all on the allow-list).
    pub imports: Vec<String>,
    /// With a dataset: the output it declares at `init`.
    pub declared: Option<OutputDecl>,
}

/// Checks `wasm` (read from `shown`, for messages) under `zone`'s limits (the sandbox's defaults without a zone),
/// and with `dataset` (a spec in `zone`) calls `init` with its guest schema and `params`. Authorization is the
/// caller's.
pub fn check_module(
    zone: Option<&Zone>,
    wasm: &[u8],
    shown: &Path,
    dataset: Option<&str>,
    params: &[(String, String)],
) -> Result<ModuleReport, OpsError> {
    let limits = match zone {
        Some(zone) => crate::limits::sandbox_limits(&zone.sandbox_settings()?),
        None => SandboxLimits::default(),
    };
    let sandbox = Sandbox::new(limits)?;
    let refused = |at: &str| {
        let what = format!("{} is refused{at}", shown.display());
        move |source: SandboxError| OpsError::Sandbox { what, source }
    };
    let checked = sandbox.check(wasm).map_err(refused(""))?;
    let mut declared = None;
    if let (Some(spec), Some(zone)) = (dataset, zone) {
        let version = zone.dataset(spec)?;
        let schema = zone.policy(&version)?.guest_schema();
        let module = sandbox.load(&checked.serialized)?;
        let run = sandbox.start(&module, &schema, params).map_err(refused(" at init"))?;
        declared = run.output().cloned();
    }
    Ok(ModuleReport { sha256: checked.sha256.clone(), imports: checked.imports.clone(), declared })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_refused_with_the_sandboxs_class_and_the_files_name() {
        let err = check_module(None, b"not wasm", Path::new("m.wasm"), None, &[]).expect_err("refused");
        assert!(err.to_string().starts_with("m.wasm is refused"), "{err}");
        assert_ne!(err.class(), zone_api::ErrorClass::Internal);
    }
}
