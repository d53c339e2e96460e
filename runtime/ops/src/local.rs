//! The operations that need no zone server, or make a zone: creating a zone (with a development CA when asked),
//! and a developer's run of a module on mock rows outside any zone.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::RecordBatch;
use zone_jobs::{JobError, JobMap, JobPlan, JobSource, JobSpec, JobStats, ReleaseLimits};
use zone_sandbox::{Sandbox, SandboxLimits};
use zone_store::Zone;

use crate::error::OpsError;
use crate::pki;

/// A new zone.
#[derive(Debug)]
pub struct NewZone {
    pub zone: Zone,
    pub public_key: String,
    /// With a development CA: where its files are.
    pub dev_ca: Option<pki::DevCa>,
}

/// Creates a zone in `root` with its first authority (of `org`); with `dev_ca`, a development CA registered for
/// `org` and a client certificate for the authority.
pub fn init_zone(root: &Path, authority: &str, org: Option<&str>, dev_ca: bool) -> Result<NewZone, OpsError> {
    if dev_ca && org.is_none() {
        return Err(OpsError::Invalid(
            "--dev-ca needs --org: client certificates carry their principal's organisation, and the development CA \
             is registered for the organisations it issues for"
                .into(),
        ));
    }
    let zone = Zone::init(root, authority, org)?;
    let public_key = zone.keys()?.public_key_hex();
    let dev_ca = match (dev_ca, org) {
        (true, Some(org)) => {
            let (ca, issued) = pki::create_dev_ca(root, &zone.info().zone_id, authority, org)?;
            let first = zone.actor(authority)?;
            zone.add_trust_anchor(&first, &pki::read_anchor(org, &ca.ca_cert)?)?;
            zone.record_issued_certificate(&first, &issued.sha256, authority, &issued.not_after)?;
            Some(ca)
        }
        _ => None,
    };
    Ok(NewZone { zone, public_key, dev_ca })
}

/// A developer's run: a module over a mock file, with release limits of its own.
#[derive(Debug, Clone)]
pub struct DevRun {
    pub module: PathBuf,
    pub mock: PathBuf,
    pub params: Vec<(String, String)>,
    pub limits: ReleaseLimits,
    /// Also the plan, as text.
    pub explain: bool,
}

/// What a developer's run showed: everything, the guest's text included (mock rows, nothing recorded).
#[derive(Debug)]
pub struct DevOutcome {
    pub plan: Option<String>,
    /// Per instance, the guest's messages (level, text).
    pub messages: Vec<Vec<(u8, String)>>,
    /// What the run released (not a product), or why it failed: the guest's messages are there either way.
    pub result: Result<(JobStats, Vec<RecordBatch>), OpsError>,
    /// Artifacts the guest made (reviewed mode): (name, bytes).
    pub artifacts: Vec<(String, Vec<u8>)>,
}

/// In a dev run the operator sees everything the guest said, and what its refused output was.
fn dev_error(e: JobError) -> OpsError {
    match &e {
        JobError::Guest(se @ zone_sandbox::SandboxError { zone_detail: Some(_), .. }) => {
            OpsError::Sandbox { what: zone_sandbox::output::inert(&se.full()).into_owned(), source: se.clone() }
        }
        _ => OpsError::Job(e),
    }
}

/// Runs `run` with the sandbox's default limits on its mock rows.
pub fn dev_run(run: &DevRun) -> Result<DevOutcome, OpsError> {
    let wasm = std::fs::read(&run.module).map_err(|source| OpsError::Read { path: run.module.clone(), source })?;
    let sandbox = Sandbox::new(SandboxLimits::default())?;
    let checked = sandbox.check(&wasm)?;
    let module = sandbox.load(&checked.serialized)?;
    let spec = JobSpec {
        source: JobSource::Mock { file: run.mock.clone() },
        map: JobMap::Guest { sandbox: Arc::new(sandbox), module: Arc::new(module), params: run.params.clone() },
        limits: run.limits.clone(),
        partitions: 0,
        batch_size: 16_384,
    };
    let plan = JobPlan::build(&spec).map_err(dev_error)?;
    let explained = run.explain.then(|| plan.explain());
    let ran = plan.execute();
    let messages = ran.guest.diagnostics.iter().map(|part| part.messages.clone()).collect();
    let artifacts = ran.guest.artifacts.iter().map(|a| (a.name.clone(), a.bytes.clone())).collect();
    let result = ran.result.map(|o| (o.stats, o.batches)).map_err(dev_error);
    Ok(DevOutcome { plan: explained, messages, result, artifacts })
}
