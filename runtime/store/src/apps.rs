//! Applications (SEED.md Art. 14): an operator's module, pinned by its SHA-256, over named datasets for one
//! domain and purpose; approved by the authority and by the agency of every dataset involved. An approval is
//! bound to the module hash, the parameters, and each dataset's version and policy hash: when any of them
//! changes, the application needs approval again.

use std::collections::BTreeSet;
use std::path::PathBuf;

use policies::{ColumnRule, CompiledPolicy, Domain, PrivacyRules, ReleaseMode};
use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zone_access::{Action, Principal, Role};

use crate::catalog::DatasetVersion;
use crate::error::StoreError;
use crate::record::now;
use crate::record::{json, today};
use crate::zone::Zone;

/// One column of a module's declared output (from `init`), in a form the catalog keeps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct OutputColumn {
    pub name: String,
    /// `key` or `measure`.
    pub role: String,
    pub data_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aggregate: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bounds: Option<[f64; 2]>,
}

/// What a module declared at `init` for the application's input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AppOutput {
    pub columns: Vec<OutputColumn>,
    /// The input columns it reads; `None`: every column the policies show.
    pub reads: Option<Vec<String>>,
}

/// How a job's rows are cut before they reach the guest: rows per batch (per call of `map-batch`) and partitions
/// (one guest instance each). Both change what one call of the guest sees, so both are part of what is approved:
/// a run with other settings is `job.drift`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RunSettings {
    pub batch_rows: u64,
    pub partitions: u64,
    /// `dp` mode: what each run spends and how it cuts blocks (skipped when absent, so that bindings recorded
    /// before keep their hash).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub privacy: Option<PrivacyAsk>,
}

/// What a `dp` application asks for, within its datasets' `[privacy]`: ε per run and b, the most subjects one
/// isolated block of the guest sees. Both are part of what is approved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PrivacyAsk {
    pub epsilon: f64,
    pub block_subjects: u64,
    /// Public domains of the output's keys (every key or none): every combination is released, empty ones too,
    /// with no partition selection. Skipped when empty, so that bindings recorded before keep their hash.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub key_domain: Vec<KeyDomain>,
}

/// The public values of one output key, declared in the application (`--key-domain KEY=V1,V2,...`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct KeyDomain {
    pub key: String,
    pub values: Vec<String>,
}

/// Most values one key's domain may list, and the longest value, in bytes.
pub const MAX_DOMAIN_VALUES: usize = 10_000;
pub const MAX_DOMAIN_VALUE_BYTES: usize = 256;

impl KeyDomain {
    /// Parses `KEY=V1,V2,...` (a value may not contain a comma; values are trimmed).
    pub fn parse(text: &str) -> Result<KeyDomain, String> {
        let (key, values) =
            text.split_once('=').ok_or_else(|| format!("--key-domain {text:?}: expected KEY=VALUE1,VALUE2,..."))?;
        let key = key.trim();
        if key.is_empty() {
            return Err(format!("--key-domain {text:?}: the key is empty"));
        }
        let values: Vec<String> = values.split(',').map(|v| v.trim().to_owned()).collect();
        if values.iter().any(String::is_empty) {
            return Err(format!("--key-domain {text:?}: a value is empty"));
        }
        Ok(KeyDomain { key: key.to_owned(), values })
    }
}

// ε is checked finite and positive when the application is submitted.
impl Eq for PrivacyAsk {}

impl RunSettings {
    pub const DEFAULT_BATCH_ROWS: u64 = 16_384;
    pub const MAX_BATCH_ROWS: u64 = 1 << 20;
    pub const MAX_PARTITIONS: u64 = 256;
    /// What an application recorded before run settings were bound runs with: fixed by the zone, whatever the
    /// machine.
    pub const FIXED: RunSettings = RunSettings { batch_rows: Self::DEFAULT_BATCH_ROWS, partitions: 2, privacy: None };

    /// The defaults of a new application: 16,384 rows per batch, one partition per core of this machine.
    pub fn defaults() -> RunSettings {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get() as u64);
        RunSettings {
            batch_rows: Self::DEFAULT_BATCH_ROWS,
            partitions: cores.clamp(1, Self::MAX_PARTITIONS),
            privacy: None,
        }
    }
}

/// What `app submit` asks for.
#[derive(Debug, Clone)]
pub struct AppRequest {
    /// `NAME` (follows the latest version: a new version needs approval again) or `NAME@VERSION` (pinned).
    pub datasets: Vec<String>,
    pub domain: String,
    pub purpose: String,
    pub mode: String,
    pub params: Vec<(String, String)>,
    pub security_notes: Option<PathBuf>,
    /// Rows per batch and partitions; `None` for each: the defaults ([`RunSettings::defaults`]).
    pub batch_rows: Option<u64>,
    pub partitions: Option<u64>,
    /// `dp` mode: ε per run and b; `None` for each: the policies' `epsilon_per_job` and `max_block_subjects`.
    pub epsilon: Option<f64>,
    pub block_subjects: Option<u64>,
    /// `dp` mode: public domains of the output's keys.
    pub key_domain: Vec<KeyDomain>,
}

impl AppRequest {
    /// The run settings asked for, defaults filled in.
    pub fn run_settings(&self) -> RunSettings {
        let d = RunSettings::defaults();
        RunSettings {
            batch_rows: self.batch_rows.unwrap_or(d.batch_rows),
            partitions: self.partitions.unwrap_or(d.partitions),
            privacy: None,
        }
    }
}

/// An application that passed the checks that need no module: who, grant, datasets and their policies.
#[derive(Debug)]
pub struct PreparedApp {
    pub grant_id: u64,
    pub versions: Vec<DatasetVersion>,
    pub policies: Vec<CompiledPolicy>,
    pins: Vec<Option<u32>>,
    mode: ReleaseMode,
    privacy: Option<PrivacyAsk>,
}

/// The module after the sandbox accepted it (the CLI runs `module check` and `init`).
#[derive(Debug)]
pub struct CheckedModule {
    pub wasm: Vec<u8>,
    pub sha256: String,
    /// The compiled artifact, loaded by later runs without compiling again.
    pub artifact: Vec<u8>,
    pub output: AppOutput,
}

/// One dataset of an application.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AppDataset {
    pub name: String,
    /// Set when the application named `NAME@VERSION`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pinned: Option<u32>,
}

/// An application as recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Application {
    pub id: u64,
    pub operator: String,
    pub grant_id: u64,
    pub module_sha256: String,
    pub module_bytes: u64,
    pub artifact_sha256: String,
    pub datasets: Vec<AppDataset>,
    pub params: Vec<(String, String)>,
    pub output: AppOutput,
    pub domain: String,
    pub purpose: String,
    pub mode: String,
    pub notes_sha256: Option<String>,
    pub submitted_at: String,
    /// The run settings approved with it (absent for applications submitted before they were bound: those run
    /// with [`RunSettings::FIXED`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<RunSettings>,
}

impl Application {
    /// The settings its runs use.
    pub fn run_settings(&self) -> RunSettings {
        self.run.clone().unwrap_or(RunSettings::FIXED)
    }
}

/// What an approval is bound to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Binding {
    pub module_sha256: String,
    pub params: Vec<(String, String)>,
    pub datasets: Vec<BoundDataset>,
    /// Batch size and partitions (skipped when absent, so that bindings recorded before keep their hash).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<RunSettings>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct BoundDataset {
    pub dataset: String,
    pub version: u32,
    pub policy_sha256: String,
}

impl Binding {
    pub fn sha256(&self) -> Result<String, StoreError> {
        Ok(hex::encode(Sha256::digest(json(self)?.as_bytes())))
    }
}

/// A recorded decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Decision {
    pub principal: String,
    pub role: String,
    /// `authority` or `agency:PROVIDER`.
    pub party: String,
    /// `approve` or `reject`.
    pub decision: String,
    pub reason: String,
    pub binding_sha256: String,
    pub time: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AppStatus {
    /// Waiting for some parties.
    Pending,
    /// Every party approved the current binding.
    Approved,
    /// A party rejected it; final.
    Rejected,
    /// It was approved (in part or whole) for a binding that no longer holds: a dataset, policy or module changed.
    ReapprovalNeeded,
}

impl AppStatus {
    pub fn name(self) -> &'static str {
        match self {
            AppStatus::Pending => "pending",
            AppStatus::Approved => "approved",
            AppStatus::Rejected => "rejected",
            AppStatus::ReapprovalNeeded => "reapproval_needed",
        }
    }
}

/// An application with its state as of now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AppView {
    #[serde(flatten)]
    pub app: Application,
    pub status: AppStatus,
    /// The binding as of now (latest versions of unpinned datasets).
    pub binding: Binding,
    pub binding_sha256: String,
    /// The parties whose approval is needed.
    pub required: Vec<String>,
    /// Approvals that hold for the current binding.
    pub approved_by: Vec<Decision>,
    pub missing: Vec<String>,
    /// What changed since the last approval, when it no longer holds.
    pub drift: Vec<String>,
    /// Every decision, oldest first.
    pub decisions: Vec<Decision>,
}

impl AppView {
    fn providers(&self, zone: &Zone) -> Result<Vec<String>, StoreError> {
        self.binding.providers(zone)
    }
}

impl Binding {
    /// The providers of the bound datasets, each once, in order.
    pub(crate) fn providers(&self, zone: &Zone) -> Result<Vec<String>, StoreError> {
        let mut out = Vec::new();
        for d in &self.datasets {
            if let Some(p) = zone.catalog().provider(&d.dataset)?
                && !out.contains(&p)
            {
                out.push(p);
            }
        }
        Ok(out)
    }
}

impl PreparedApp {
    /// The release mode asked for.
    pub fn mode(&self) -> ReleaseMode {
        self.mode
    }
}

impl Zone {
    /// The checks of `app submit` that need no module: the operator's role, an active grant covering every dataset
    /// and the domain, and each policy allowing the mode and the domain. A refusal is recorded.
    pub fn prepare_app(&self, who: &Principal, request: &AppRequest) -> Result<PreparedApp, StoreError> {
        let result = self.prepare_app_unrecorded(who, request);
        if let Err(err) = &result {
            let objects: Vec<String> = request.datasets.iter().map(|d| format!("dataset:{d}")).collect();
            self.record_refusal(who, "app.submit", &objects, err.class(), &err.to_string())?;
        }
        result
    }

    fn prepare_app_unrecorded(&self, who: &Principal, request: &AppRequest) -> Result<PreparedApp, StoreError> {
        self.permit(who, &Action::AppSubmit)?;
        let mut problems = Vec::new();
        if request.purpose.trim().is_empty() {
            problems.push("--purpose must say what the product is for".to_owned());
        }
        let mode = ReleaseMode::from_name(&request.mode);
        if mode.is_none() {
            problems.push(format!("--mode `{}` is not aggregate, dp or reviewed", request.mode));
        }
        let domain = Domain::from_name(&request.domain);
        if domain.is_none() {
            let all: Vec<&str> = Domain::ALL.iter().map(|d| d.name()).collect();
            problems.push(format!("--domain `{}` is not a domain (one of: {})", request.domain, all.join(", ")));
        }
        if request.datasets.is_empty() {
            problems.push("name at least one --dataset".to_owned());
        }
        if request.batch_rows.is_some_and(|b| !(1..=RunSettings::MAX_BATCH_ROWS).contains(&b)) {
            problems.push(format!("--batch-rows must be from 1 to {}", RunSettings::MAX_BATCH_ROWS));
        }
        if request.partitions.is_some_and(|p| !(1..=RunSettings::MAX_PARTITIONS).contains(&p)) {
            problems.push(format!("--partitions must be from 1 to {}", RunSettings::MAX_PARTITIONS));
        }
        let mut seen = BTreeSet::new();
        for (k, _) in &request.params {
            if !seen.insert(k) {
                problems.push(format!("--param `{k}` is given twice"));
            }
        }
        let (Some(mode), Some(domain), true) = (mode, domain, problems.is_empty()) else {
            return Err(StoreError::AppRefused { problems });
        };
        let mut versions = Vec::new();
        let mut pins = Vec::new();
        let mut names = BTreeSet::new();
        for spec in &request.datasets {
            let v = self.dataset(spec)?;
            if !names.insert(v.dataset.clone()) {
                return Err(StoreError::AppRefused {
                    problems: vec![format!("dataset `{}` is named twice", v.dataset)],
                });
            }
            pins.push(spec.contains('@').then_some(v.version));
            versions.push(v);
        }
        // One active grant of this operator must cover every dataset and the domain.
        let grants: Vec<_> = self.all_grants()?.into_iter().filter(|g| g.operator == who.name).collect();
        let mut why_not = Vec::new();
        let mut grant_id = None;
        for g in &grants {
            let refusals: Vec<String> = versions
                .iter()
                .filter_map(|v| g.covers(&v.dataset, &v.provider, domain.name(), today()).err())
                .collect();
            if refusals.is_empty() {
                grant_id = Some(g.id);
                break;
            }
            why_not.extend(refusals);
        }
        let Some(grant_id) = grant_id else {
            if grants.is_empty() {
                why_not.push(format!("`{}` has no grant", who.name));
            }
            return Err(StoreError::NoGrant { operator: who.name.clone(), detail: why_not.join("; ") });
        };
        let mut policies = Vec::new();
        for v in &versions {
            let policy = self.policy(v)?;
            let label = format!("{}@{}", v.dataset, v.version);
            if !policy.release().modes.contains(&mode) {
                let allowed: Vec<&str> = policy.release().modes.iter().map(|m| m.name()).collect();
                problems.push(format!(
                    "{label}: its policy does not allow mode `{mode}` (allowed: {})",
                    allowed.join(", ")
                ));
            }
            if mode == ReleaseMode::Reviewed && policy.release().max_artifact_bytes == 0 {
                problems.push(format!("{label}: its policy allows no artifact bytes (max_artifact_bytes = 0)"));
            }
            if !policy.dataset().domains.contains(&domain) {
                let allowed: Vec<&str> = policy.dataset().domains.iter().map(|d| d.name()).collect();
                problems.push(format!(
                    "{label}: its policy does not allow domain `{domain}` (allowed: {})",
                    allowed.join(", ")
                ));
            }
            policies.push(policy);
        }
        let privacy = privacy_ask(request, mode, &policies, &mut problems);
        if !problems.is_empty() {
            return Err(StoreError::AppRefused { problems });
        }
        Ok(PreparedApp { grant_id, versions, policies, pins, mode, privacy })
    }

    /// Records an application whose module the sandbox accepted: the declared output is checked against every
    /// policy, the module, its compiled artifact and the security notes are stored under their SHA-256.
    pub fn submit_app(
        &self,
        who: &Principal,
        request: &AppRequest,
        prepared: &PreparedApp,
        module: &CheckedModule,
    ) -> Result<AppView, StoreError> {
        let mut objects: Vec<String> =
            prepared.versions.iter().map(|v| format!("dataset:{}@{}", v.dataset, v.version)).collect();
        objects.push(format!("grant:{}", prepared.grant_id));
        let submit = || self.submit_app_unrecorded(who, request, prepared, module);
        self.logged_change(who, "app.submit", &objects, submit, |view, mut e| {
            e.objects.insert(0, format!("app:{}", view.app.id));
            e = e.hash(format!("module:sha256:{}", view.app.module_sha256));
            e = e.hash(format!("binding:sha256:{}", view.binding_sha256));
            for d in &view.binding.datasets {
                e = e.hash(format!("policy:sha256:{}", d.policy_sha256));
            }
            e.detail(format!("domain {}, mode {}: {}", view.app.domain, view.app.mode, view.app.purpose))
        })
    }

    fn submit_app_unrecorded(
        &self,
        who: &Principal,
        request: &AppRequest,
        prepared: &PreparedApp,
        module: &CheckedModule,
    ) -> Result<AppView, StoreError> {
        self.permit(who, &Action::AppSubmit)?;
        let problems = check_output(&module.output, prepared);
        if !problems.is_empty() {
            return Err(StoreError::AppRefused { problems });
        }
        let actual = hex::encode(Sha256::digest(&module.wasm));
        if actual != module.sha256 {
            return Err(StoreError::AppRefused {
                problems: vec![format!("module bytes hash to {actual}, not the checked {}", module.sha256)],
            });
        }
        let notes = match &request.security_notes {
            Some(path) => Some(std::fs::read(path).map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => StoreError::MissingFile { path: path.clone() },
                _ => StoreError::Io { op: "read", path: path.clone(), source: e },
            })?),
            None => None,
        };
        // Objects first (content-addressed: a crash leaves only unreferenced objects), then one catalog row.
        let mut stored = Vec::new();
        for bytes in [Some(&module.wasm), Some(&module.artifact), notes.as_ref()].into_iter().flatten() {
            let staged = self.objects().stage_bytes(bytes)?;
            stored.push(staged.sha256.clone());
            self.objects().commit(staged)?;
        }
        let datasets: Vec<AppDataset> = prepared
            .versions
            .iter()
            .zip(&prepared.pins)
            .map(|(v, pin)| AppDataset { name: v.dataset.clone(), pinned: *pin })
            .collect();
        let conn = &self.catalog().conn;
        conn.execute(
            "INSERT INTO applications (operator, grant_id, module_sha256, module_bytes, artifact_sha256, datasets_json,
                 params_json, output_json, domain, purpose, mode, notes_sha256, submitted_at, run_json)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
            params![
                who.name,
                prepared.grant_id,
                module.sha256,
                module.wasm.len() as u64,
                stored[1],
                json(&datasets)?,
                json(&request.params)?,
                json(&module.output)?,
                request.domain,
                request.purpose.trim(),
                prepared.mode.name(),
                stored.get(2),
                now(),
                json(&RunSettings { privacy: prepared.privacy.clone(), ..request.run_settings() })?
            ],
        )
        .map_err(StoreError::catalog("record application"))?;
        let id = u64::try_from(conn.last_insert_rowid()).unwrap_or(0);
        self.app_view(id)?.ok_or(StoreError::UnknownApp { id })
    }

    /// Approves or rejects an application, as the authority or as the agency of one of its datasets.
    pub fn decide_app(&self, who: &Principal, id: u64, approve: bool, reason: &str) -> Result<AppView, StoreError> {
        let action = if approve { "app.approve" } else { "app.reject" };
        // One immediate transaction: two parties deciding at once are serialized (the second reads the state the
        // first wrote), never a lost or duplicated decision; and the decision is logged before it commits.
        let decide = || self.decide_app_unrecorded(who, id, approve, reason);
        self.logged_change(who, action, &[format!("app:{id}")], decide, |view, e| {
            e.object(format!("principal:{}", view.app.operator))
                .hash(format!("module:sha256:{}", view.app.module_sha256))
                .hash(format!("binding:sha256:{}", view.binding_sha256))
                .detail(format!("{}; status now {}", reason.trim(), view.status.name()))
        })
    }

    fn decide_app_unrecorded(
        &self,
        who: &Principal,
        id: u64,
        approve: bool,
        reason: &str,
    ) -> Result<AppView, StoreError> {
        let view = self.app_view(id)?.ok_or(StoreError::UnknownApp { id })?;
        let providers = view.providers(self)?;
        let operator_org = self.principal(&view.app.operator)?.and_then(|p| p.org);
        self.permit(
            who,
            &Action::AppDecide {
                operator: &view.app.operator,
                operator_org: operator_org.as_deref(),
                providers: &providers,
            },
        )?;
        if reason.trim().is_empty() {
            return Err(StoreError::AppDecided { id, detail: "a reason is required (--reason)".to_owned() });
        }
        if view.status == AppStatus::Rejected {
            return Err(StoreError::AppDecided {
                id,
                detail: "it was rejected; a rejected application is final (submit a new one)".to_owned(),
            });
        }
        let party = match (who.role, &who.org) {
            (Role::Authority, _) => "authority".to_owned(),
            (_, Some(org)) => format!("agency:{org}"),
            (_, None) => return Err(StoreError::AppDecided { id, detail: "the agency has no organisation".into() }),
        };
        if approve && view.approved_by.iter().any(|d| d.party == party) {
            return Err(StoreError::AppDecided {
                id,
                detail: format!("{party} already approved it for this binding ({})", &view.binding_sha256[..12]),
            });
        }
        let conn = &self.catalog().conn;
        let seq: u64 = conn
            .query_row("SELECT COUNT(*) FROM decisions WHERE app = ?1", [id], |r| r.get(0))
            .map_err(StoreError::catalog("count decisions"))?;
        conn.execute(
            "INSERT INTO decisions (app, seq, principal, role, party, decision, reason, binding_sha256, binding_json, time)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            params![
                id,
                seq,
                who.name,
                who.role.name(),
                party,
                if approve { "approve" } else { "reject" },
                reason.trim(),
                view.binding_sha256,
                json(&view.binding)?,
                now()
            ],
        )
        .map_err(StoreError::catalog("record decision"))?;
        if !approve {
            conn.execute("UPDATE applications SET rejected = 1 WHERE id = ?1", [id])
                .map_err(StoreError::catalog("record rejection"))?;
        }
        self.app_view(id)?.ok_or(StoreError::UnknownApp { id })
    }

    /// One application, for someone allowed to read it.
    pub fn app(&self, who: &Principal, id: u64) -> Result<AppView, StoreError> {
        let objects = [format!("app:{id}")];
        let Some(view) = self.app_view(id)? else {
            let err = StoreError::UnknownApp { id };
            self.record_refusal(who, "app.read", &objects, err.class(), &err.to_string())?;
            return Err(err);
        };
        let providers = view.providers(self)?;
        self.authorize(who, &Action::AppRead { operator: &view.app.operator, providers: &providers }, &objects)?;
        Ok(view)
    }

    /// The applications `who` may read.
    pub fn apps(&self, who: &Principal) -> Result<Vec<AppView>, StoreError> {
        let ids: Vec<u64> = self.catalog().ids("applications")?;
        let mut out = Vec::new();
        for id in ids {
            if let Some(view) = self.app_view(id)? {
                let providers = view.providers(self)?;
                if self.permit(who, &Action::AppRead { operator: &view.app.operator, providers: &providers }).is_ok() {
                    out.push(view);
                }
            }
        }
        Ok(out)
    }

    /// An application and its status as of now (no authorization: callers decide).
    pub(crate) fn app_view(&self, id: u64) -> Result<Option<AppView>, StoreError> {
        let conn = &self.catalog().conn;
        let row = conn
            .query_row(
                "SELECT operator, grant_id, module_sha256, module_bytes, artifact_sha256, datasets_json, params_json,
                        output_json, domain, purpose, mode, notes_sha256, rejected, submitted_at, run_json
                 FROM applications WHERE id = ?1",
                [id],
                |r| {
                    Ok((
                        (r.get::<_, String>(0)?, r.get::<_, u64>(1)?, r.get::<_, String>(2)?, r.get::<_, u64>(3)?),
                        (
                            r.get::<_, String>(4)?,
                            r.get::<_, String>(5)?,
                            r.get::<_, String>(6)?,
                            r.get::<_, String>(7)?,
                        ),
                        (r.get::<_, String>(8)?, r.get::<_, String>(9)?, r.get::<_, String>(10)?),
                        (r.get::<_, Option<String>>(11)?, r.get::<_, bool>(12)?, r.get::<_, String>(13)?),
                        r.get::<_, Option<String>>(14)?,
                    ))
                },
            )
            .optional()
            .map_err(StoreError::catalog("read application"))?;
        let Some((
            (operator, grant_id, module_sha256, module_bytes),
            (artifact_sha256, ds, ps, out),
            (domain, purpose, mode),
            (notes_sha256, rejected, submitted_at),
            run,
        )) = row
        else {
            return Ok(None);
        };
        let damaged = |what: &str, e: serde_json::Error| StoreError::Catalog {
            context: format!("application {id}: {what} does not parse: {e}"),
            source: rusqlite::Error::InvalidQuery,
        };
        let app = Application {
            id,
            operator,
            grant_id,
            module_sha256,
            module_bytes,
            artifact_sha256,
            datasets: serde_json::from_str(&ds).map_err(|e| damaged("datasets", e))?,
            params: serde_json::from_str(&ps).map_err(|e| damaged("params", e))?,
            output: serde_json::from_str(&out).map_err(|e| damaged("output", e))?,
            domain,
            purpose,
            mode,
            notes_sha256,
            submitted_at,
            run: run.map(|r| serde_json::from_str(&r)).transpose().map_err(|e| damaged("run settings", e))?,
        };
        let mut bound = Vec::new();
        for d in &app.datasets {
            let spec = match d.pinned {
                Some(v) => format!("{}@{v}", d.name),
                None => d.name.clone(),
            };
            let v = self.dataset(&spec)?;
            bound.push(BoundDataset { dataset: v.dataset, version: v.version, policy_sha256: v.policy_sha256 });
        }
        let binding = Binding {
            module_sha256: app.module_sha256.clone(),
            params: app.params.clone(),
            datasets: bound,
            run: app.run.clone(),
        };
        let binding_sha256 = binding.sha256()?;
        let mut required = vec!["authority".to_owned()];
        for d in &binding.datasets {
            if let Some(p) = self.catalog().provider(&d.dataset)? {
                let party = format!("agency:{p}");
                if !required.contains(&party) {
                    required.push(party);
                }
            }
        }
        let decisions = self.decisions(id)?;
        let approved_by: Vec<Decision> = decisions
            .iter()
            .filter(|d| d.decision == "approve" && d.binding_sha256 == binding_sha256)
            .cloned()
            .collect();
        let missing: Vec<String> =
            required.iter().filter(|p| !approved_by.iter().any(|d| &d.party == *p)).cloned().collect();
        let stale = decisions.iter().rev().find(|d| d.decision == "approve" && d.binding_sha256 != binding_sha256);
        let mut drift = Vec::new();
        if let Some(old) = stale
            && !missing.is_empty()
        {
            let old_binding: Binding = conn
                .query_row(
                    "SELECT binding_json FROM decisions WHERE app = ?1 AND binding_sha256 = ?2 LIMIT 1",
                    params![id, old.binding_sha256],
                    |r| r.get::<_, String>(0),
                )
                .map_err(StoreError::catalog("read decision"))
                .and_then(|s| serde_json::from_str(&s).map_err(|e| damaged("decision binding", e)))?;
            drift = describe_drift(&old_binding, &binding);
        }
        let status = if rejected {
            AppStatus::Rejected
        } else if missing.is_empty() {
            AppStatus::Approved
        } else if !drift.is_empty() {
            AppStatus::ReapprovalNeeded
        } else {
            AppStatus::Pending
        };
        Ok(Some(AppView { app, status, binding, binding_sha256, required, approved_by, missing, drift, decisions }))
    }

    fn decisions(&self, id: u64) -> Result<Vec<Decision>, StoreError> {
        let mut stmt = self
            .catalog()
            .conn
            .prepare(
                "SELECT principal, role, party, decision, reason, binding_sha256, time FROM decisions
                 WHERE app = ?1 ORDER BY seq",
            )
            .map_err(StoreError::catalog("read decisions"))?;
        let rows = stmt
            .query_map([id], |r| {
                Ok(Decision {
                    principal: r.get(0)?,
                    role: r.get(1)?,
                    party: r.get(2)?,
                    decision: r.get(3)?,
                    reason: r.get(4)?,
                    binding_sha256: r.get(5)?,
                    time: r.get(6)?,
                })
            })
            .map_err(StoreError::catalog("read decisions"))?;
        rows.collect::<Result<_, _>>().map_err(StoreError::catalog("read decisions"))
    }
}

/// What differs between the binding an approval was given for and the one that holds now.
fn describe_drift(old: &Binding, new: &Binding) -> Vec<String> {
    let mut out = Vec::new();
    if old.module_sha256 != new.module_sha256 {
        out.push(format!("module {} → {}", &old.module_sha256[..12], &new.module_sha256[..12]));
    }
    if old.params != new.params {
        out.push("parameters changed".to_owned());
    }
    if old.run != new.run {
        out.push("run settings changed".to_owned());
    }
    for n in &new.datasets {
        match old.datasets.iter().find(|o| o.dataset == n.dataset) {
            Some(o) if o.version != n.version => {
                out.push(format!("{}: version {} → {}", n.dataset, o.version, n.version));
                if o.policy_sha256 != n.policy_sha256 {
                    out.push(format!("{}: policy {} → {}", n.dataset, &o.policy_sha256[..12], &n.policy_sha256[..12]));
                }
            }
            Some(o) if o.policy_sha256 != n.policy_sha256 => {
                out.push(format!("{}: policy {} → {}", n.dataset, &o.policy_sha256[..12], &n.policy_sha256[..12]));
            }
            Some(_) => {}
            None => out.push(format!("{}: not in the approved binding", n.dataset)),
        }
    }
    out
}

/// The declared output against every policy: keys must be group values, measures bounded.
/// The `[privacy]` of a run over several datasets: the stricter of theirs.
fn joined_rules(rules: &[Option<PrivacyRules>]) -> Option<PrivacyRules> {
    let mut out: Option<PrivacyRules> = None;
    for r in rules {
        let r = (*r)?;
        out = Some(match out {
            None => r,
            Some(x) => x.stricter(&r),
        });
    }
    out
}

/// What a `dp` application spends per run and its b: asked or the policies' defaults, within their limits.
fn privacy_ask(
    request: &AppRequest,
    mode: ReleaseMode,
    policies: &[CompiledPolicy],
    problems: &mut Vec<String>,
) -> Option<PrivacyAsk> {
    if mode != ReleaseMode::Dp {
        if request.epsilon.is_some() || request.block_subjects.is_some() || !request.key_domain.is_empty() {
            problems.push("--epsilon, --block-subjects and --key-domain are for mode `dp` only".to_owned());
        }
        return None;
    }
    // Without `[privacy]` a policy does not allow `dp`, which is reported already.
    let rules = joined_rules(&policies.iter().map(|p| p.release().privacy).collect::<Vec<_>>())?;
    let epsilon = request.epsilon.unwrap_or(rules.epsilon_per_job.as_f64());
    match policies::Epsilon::from_f64(epsilon) {
        Some(e) if e <= rules.epsilon_per_job => {}
        _ => problems.push(format!(
            "--epsilon {epsilon} is not allowed: it must be above 0 and at most the datasets' epsilon_per_job ({})",
            rules.epsilon_per_job
        )),
    }
    let block_subjects = request.block_subjects.unwrap_or(rules.max_block_subjects);
    if !(1..=rules.max_block_subjects).contains(&block_subjects) {
        problems.push(format!(
            "--block-subjects {block_subjects} is not allowed: it must be from 1 to the datasets' max_block_subjects ({})",
            rules.max_block_subjects
        ));
    }
    for d in &request.key_domain {
        if request.key_domain.iter().filter(|o| o.key == d.key).count() > 1 {
            problems.push(format!("--key-domain names `{}` more than once", d.key));
        }
        if d.values.len() > MAX_DOMAIN_VALUES {
            problems.push(format!(
                "--key-domain {}: {} values, over the limit of {MAX_DOMAIN_VALUES}",
                d.key,
                d.values.len()
            ));
        }
        if let Some(v) = d.values.iter().find(|v| v.len() > MAX_DOMAIN_VALUE_BYTES) {
            problems.push(format!(
                "--key-domain {}: the value starting {:?} is over {MAX_DOMAIN_VALUE_BYTES} bytes",
                d.key,
                v.chars().take(20).collect::<String>()
            ));
        }
    }
    Some(PrivacyAsk { epsilon, block_subjects, key_domain: request.key_domain.clone() })
}

/// A key domain covers every key of the output and nothing else, its values are of the key's type, and its
/// combinations fit the smallest `max_output_rows` of the datasets.
fn check_key_domain(output: &AppOutput, domain: &[KeyDomain], prepared: &PreparedApp) -> Vec<String> {
    let mut problems = Vec::new();
    let keys: Vec<&OutputColumn> = output.columns.iter().filter(|c| c.role == "key").collect();
    for d in domain {
        match keys.iter().find(|k| k.name == d.key) {
            None => problems.push(format!("--key-domain names `{}`, which is not a key of the module's output", d.key)),
            Some(k) if k.data_type.starts_with("Int") || k.data_type.starts_with("UInt") => {
                if let Some(v) = d.values.iter().find(|v| v.parse::<i128>().is_err()) {
                    problems
                        .push(format!("--key-domain {}: {v:?} is not a whole number, as key `{}` is", d.key, k.name));
                }
            }
            Some(_) => {}
        }
    }
    let missing: Vec<&str> =
        keys.iter().map(|k| k.name.as_str()).filter(|k| !domain.iter().any(|d| d.key == *k)).collect();
    if !missing.is_empty() {
        problems.push(format!(
            "--key-domain must cover every key of the output or none; it has none for {}",
            missing.join(", ")
        ));
    }
    let limit = prepared.policies.iter().map(|p| p.release().max_output_rows).min().unwrap_or(0);
    let combinations = domain.iter().try_fold(1u64, |n, d| n.checked_mul(d.values.len() as u64));
    if combinations.is_none_or(|n| n > limit) {
        problems.push(format!(
            "--key-domain has {} combinations of values, over the datasets' max_output_rows of {limit}",
            combinations.map_or_else(|| "too many".to_owned(), |n| n.to_string())
        ));
    }
    problems
}

fn check_output(output: &AppOutput, prepared: &PreparedApp) -> Vec<String> {
    let mut problems = Vec::new();
    if output.columns.is_empty() {
        problems.push("the module declares no output column".to_owned());
    }
    if let Some(ask) = &prepared.privacy
        && !ask.key_domain.is_empty()
    {
        problems.extend(check_key_domain(output, &ask.key_domain, prepared));
    }
    if prepared.mode == ReleaseMode::Dp {
        for c in output.columns.iter().filter(|c| c.role == "measure") {
            if matches!(c.aggregate.as_deref(), Some("min" | "max")) {
                problems.push(format!(
                    "measure `{}` is a {}, which mode `dp` does not release (count, sum and mean only): one \
                     subject decides it",
                    c.name,
                    c.aggregate.as_deref().unwrap_or("?")
                ));
            }
        }
    }
    for c in &output.columns {
        for (v, policy) in prepared.versions.iter().zip(&prepared.policies) {
            if c.role == "key"
                && let Some(col) = policy.column(&c.name)
                && matches!(
                    col.rule,
                    ColumnRule::Subject
                        | ColumnRule::Hidden
                        | ColumnRule::Masked(_)
                        | ColumnRule::Tokenized(_)
                        | ColumnRule::ComputeOnly(_)
                )
            {
                problems.push(format!(
                    "output key `{}` is {}'s `{}` column, which is {}: a key must be a group value (plain or \
                     generalized), never a per-person or raw value",
                    c.name,
                    v.dataset,
                    col.name,
                    col.rule.class_name()
                ));
            }
        }
        // A count needs no bounds (each row adds one; the host bounds rows per subject); every other measure does.
        if c.role == "measure" && c.aggregate.as_deref() != Some("count") {
            match c.bounds {
                None => problems.push(format!(
                    "measure `{}` ({}) declares no bounds; every measure but a count must",
                    c.name,
                    c.aggregate.as_deref().unwrap_or("?")
                )),
                Some([lo, hi]) if !(lo.is_finite() && hi.is_finite() && lo < hi) => {
                    problems.push(format!("measure `{}` has bounds [{lo}, {hi}]; they must be finite, lo < hi", c.name))
                }
                Some(_) => {}
            }
        }
    }
    if let Some(reads) = &output.reads {
        for r in reads {
            let shown = prepared.policies.iter().any(|p| p.guest_schema().field_with_name(r).is_ok());
            if !shown {
                problems.push(format!("the module reads `{r}`, which no dataset of the application shows"));
            }
        }
    }
    problems
}
