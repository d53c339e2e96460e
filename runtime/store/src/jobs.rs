//! Job runs: the gate a run passes before it reads a byte (the operator's own approved application, an active
//! grant covering every dataset and the domain, the module and its compiled artifact matching their approved
//! hashes), the record of every run that started, and the product it released. Refusals are in the audit log.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::Schema;
use policies::{CompiledPolicy, Epsilon, ReleaseMode, ReleaseRules, TokenSecret};
use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};
use zone_access::{Action, Principal};
use zone_audit::Outcome;

use crate::access::WriteAhead;
use crate::apps::{AppStatus, AppView, Binding, KeyDomain, RunSettings};
use crate::catalog::DatasetVersion;
use crate::error::StoreError;
use crate::grants::GrantWatch;
use crate::lease::RunLease;
use crate::products::{
    MANIFEST, Manifest, ManifestDataset, ManifestFile, ManifestRelease, PRODUCT_CSV, PRODUCT_PARQUET, ProductError,
    SignedManifest, encode_product, write_product,
};
use crate::record::entry;
use crate::record::now;
use crate::record::{json, today};
use crate::zone::Zone;

/// What a `dp` run spends, from the approved application and the policies.
#[derive(Debug, Clone, PartialEq)]
pub struct DpCharge {
    pub epsilon: Epsilon,
    pub delta: f64,
    pub block_subjects: u64,
    /// The pinned versions' smallest row count: a public bound on the subjects, which sets the number of blocks.
    pub population: u64,
    /// The approved public domains of the output's keys (none: the groups pass partition selection).
    pub key_domain: Vec<KeyDomain>,
}

/// The class (and, for a job, the final state) of a run stopped at its operator's request.
pub const CANCELLED: &str = "job.cancelled";

/// One dataset of a run: the pinned version, its policy and its files.
#[derive(Debug)]
pub struct JobDataset {
    pub version: DatasetVersion,
    pub policy: CompiledPolicy,
    pub files: Vec<PathBuf>,
}

/// A run that passed the gate and is recorded as running.
#[derive(Debug)]
pub struct JobTicket {
    pub job: u64,
    pub app: AppView,
    pub datasets: Vec<JobDataset>,
    /// The module's bytes (checked against the approved hash) and its compiled artifact (checked too).
    pub wasm: Vec<u8>,
    pub artifact: Vec<u8>,
    /// The stricter of the datasets' release rules.
    pub release: ReleaseRules,
    /// Aggregate, or reviewed (the guest's artifacts are held for the providing agencies).
    pub mode: ReleaseMode,
    pub token_secret: TokenSecret,
    /// Rows per batch and partitions, as approved.
    pub run: RunSettings,
    /// `dp` mode: what the run spends (charged when it starts) and how it cuts blocks.
    pub dp: Option<DpCharge>,
    /// A local run's lease, held until the ticket is dropped (after the run's end is recorded): while it is held,
    /// no one takes the run for interrupted.
    pub lease: Option<RunLease>,
}

/// What a run counted, as recorded. The counters the guest controls (how many groups it made, how many were
/// under k, how many contributions the bound dropped) and the run's exact duration are for the providing agencies
/// and the inspector: the operator's view of a job has them as `None` ([`JobRecord::for_operator`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RunCounts {
    pub rows_read: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contributions_dropped: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups_suppressed: Option<u64>,
    pub rows_released: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub elapsed_ms: Option<u64>,
    /// `dp` mode: blocks run and blocks left out because their guest failed (agencies and inspector only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocks: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_blocks: Option<u64>,
    /// `dp` mode: what the run spent and how it noised (the operator sees this).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub privacy: Option<zone_noise::report::DpReport>,
}

/// The one class an operator sees for a run that started and released nothing, whatever the guest did: which
/// fault it was (a trap, a timeout, a refused output…) is a channel the guest would choose.
pub const FAILED: &str = "job.failed";

/// Ends of a run that the zone decided, not the guest, and that the operator keeps seeing as they are: its grant
/// was suspended or ended while the run went on (checked again at the end, after the timing quantum, so that it
/// tells no more of the guest's duration than the quantum does), or the zone could not log the release.
const ZONE_CLASSES: [&str; 2] = ["access.grant", "audit.append"];

/// The operator's text for such a run.
pub const FAILED_DETAIL: &str =
    "the run ended without a product; why is kept in the zone for the providing agencies and the inspector";

/// A finished run's released table.
#[derive(Debug)]
pub struct ReleasedTable {
    pub schema: Arc<Schema>,
    pub batches: Vec<RecordBatch>,
    pub counts: RunCounts,
    /// Guest text (agency and inspector only), as JSON.
    pub diagnostics: serde_json::Value,
    /// Reviewed mode: the guest's artifacts (name, bytes), names already checked by the sandbox, to hold for review.
    pub artifacts: Vec<(String, Vec<u8>)>,
}

/// How a run ended, when it did not release.
#[derive(Debug, Clone)]
pub struct RunFailure {
    pub class: String,
    pub detail: String,
    pub counts: Option<RunCounts>,
    pub diagnostics: serde_json::Value,
}

/// Where a job is: stored (and serialized) by its id string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Waiting in the server's queue.
    Queued,
    Running,
    /// Its product passed the gate and is signed.
    Released,
    /// It ran and released nothing.
    Failed,
    /// The gate said no when its turn in the queue came.
    Refused,
    /// Its operator cancelled it.
    Cancelled,
}

impl JobState {
    pub const ALL: [JobState; 6] = [
        JobState::Queued,
        JobState::Running,
        JobState::Released,
        JobState::Failed,
        JobState::Refused,
        JobState::Cancelled,
    ];

    /// The stable id (`released`), as the catalog and the API write it.
    pub fn id(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Released => "released",
            JobState::Failed => "failed",
            JobState::Refused => "refused",
            JobState::Cancelled => "cancelled",
        }
    }

    pub fn from_id(id: &str) -> Option<JobState> {
        JobState::ALL.into_iter().find(|s| s.id() == id)
    }

    /// Whether a job in this state will not change any more.
    pub fn is_final(self) -> bool {
        !matches!(self, JobState::Queued | JobState::Running)
    }
}

impl std::fmt::Display for JobState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.id())
    }
}

/// A job as recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct JobRecord {
    pub id: u64,
    pub app: u64,
    pub operator: String,
    /// `running`, `released` or `failed`; through the HTTPS API's queue also `queued`, `refused` (the gate said no
    /// when its turn came) and `cancelled`.
    pub state: JobState,
    pub binding: Binding,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub error_class: Option<String>,
    pub error_detail: Option<String>,
    pub counts: Option<RunCounts>,
    pub manifest_sha256: Option<String>,
    /// Guest messages kept in the zone (their number; the text is for the agency and the inspector). Absent from
    /// the operator's view: a guest sets the number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guest_messages: Option<usize>,
    /// Through the queue: when it was queued, and how many times a run started (a run interrupted by a restart of
    /// the server is run again).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queued_at: Option<String>,
    #[serde(default)]
    pub attempts: u64,
}

impl JobRecord {
    /// The job as its operator (and anyone else who may not read guest text) sees it: a failed run has the one
    /// class [`FAILED`] and fixed text; counts are the rows read and released, and only for a release; no guest
    /// message count, no duration. Refusals by the gate (before anything ran), the operator's own cancellation and
    /// the zone's own ends ([`ZONE_CLASSES`]) keep their class: the guest had no part in them.
    pub fn for_operator(mut self) -> JobRecord {
        let zones_own = self.error_class.as_deref().is_some_and(|c| ZONE_CLASSES.contains(&c));
        if self.state == JobState::Failed && !zones_own {
            self.error_class = Some(FAILED.to_owned());
            self.error_detail = Some(FAILED_DETAIL.to_owned());
        }
        self.counts = match (self.state, self.counts.take()) {
            (JobState::Released, Some(c)) => Some(RunCounts {
                rows_read: c.rows_read,
                rows_released: c.rows_released,
                privacy: c.privacy,
                ..RunCounts::default()
            }),
            _ => None,
        };
        self.guest_messages = None;
        self
    }

    /// Whether the job will not change any more.
    pub fn is_final(&self) -> bool {
        self.state.is_final()
    }
}

/// What a `dp` run of application `app_id` spends: its approved ask, checked again against today's policies.
fn dp_charge(
    app_id: u64,
    release: &ReleaseRules,
    run: &RunSettings,
    datasets: &[JobDataset],
) -> Result<DpCharge, StoreError> {
    let drift = |detail: String| StoreError::JobRefused { class: "job.drift", detail };
    let rules = release.privacy.ok_or_else(|| StoreError::JobRefused {
        class: "job.mode",
        detail: "the datasets' policies have no [privacy]; they do not allow `dp`".into(),
    })?;
    let ask = run.privacy.as_ref().ok_or_else(|| {
        drift(format!("application {app_id} was approved without a privacy setting; submit it again for `dp`"))
    })?;
    let epsilon = Epsilon::from_f64(ask.epsilon).filter(|e| *e <= rules.epsilon_per_job).ok_or_else(|| {
        drift(format!(
            "application {app_id} asks ε = {}, over today's epsilon_per_job of {}",
            ask.epsilon, rules.epsilon_per_job
        ))
    })?;
    if !(1..=rules.max_block_subjects).contains(&ask.block_subjects) {
        return Err(drift(format!(
            "application {app_id} asks b = {}, over today's max_block_subjects of {}",
            ask.block_subjects, rules.max_block_subjects
        )));
    }
    Ok(DpCharge {
        epsilon,
        delta: rules.delta_per_job,
        block_subjects: ask.block_subjects,
        population: datasets.iter().map(|d| d.version.rows).min().unwrap_or(1).max(1),
        key_domain: ask.key_domain.clone(),
    })
}

impl Zone {
    /// A watch on the grant (and the operator's standing, and a cancellation) of a job that has passed the gate.
    pub fn grant_watch(&self, ticket: &JobTicket) -> Result<GrantWatch, StoreError> {
        GrantWatch::open(
            &self.root().join("catalog.db"),
            ticket.job,
            ticket.app.app.grant_id,
            ticket.datasets.iter().map(|d| (d.version.dataset.clone(), d.version.provider.clone())).collect(),
            ticket.app.app.domain.clone(),
            ticket.app.app.operator.clone(),
        )
    }

    /// The gate of `job run`: refuses (and records) unless `who` is the application's operator, the application is
    /// approved for the current binding, an active grant covers every dataset and the domain today, and the module
    /// and artifact objects hash to what was approved. Then records the job as running.
    /// `batch_rows`, when given, must be the approved one (`job.drift` otherwise): a run never cuts the rows
    /// differently from what was approved.
    pub fn start_job(&self, who: &Principal, app_id: u64, batch_rows: Option<u64>) -> Result<JobTicket, StoreError> {
        let objects = vec![format!("app:{app_id}")];
        let mut ticket = match self.gate(who, app_id, batch_rows) {
            Ok(ticket) => ticket,
            Err(err) => {
                self.record_refusal(who, "job.run", &objects, err.class(), &err.to_string())?;
                return Err(err);
            }
        };
        // The job's row and its `job.start` entry, write-ahead: no run without its entry.
        let binding_json = json(&ticket.app.binding)?;
        let insert = || {
            let conn = &self.catalog().conn;
            conn.execute(
                "INSERT INTO jobs (app, operator, state, binding_json, started_at) VALUES (?1, ?2, 'running', ?3, ?4)",
                params![app_id, ticket.app.app.operator, binding_json, now()],
            )
            .map_err(StoreError::catalog("record job"))?;
            Ok::<u64, StoreError>(u64::try_from(conn.last_insert_rowid()).unwrap_or(0))
        };
        // A dp run's budget is charged in the same transaction, before any row is read; the run's lease is taken
        // before the commit, so that no one sees it running without a live holder.
        let insert = || {
            let job = insert()?;
            let charged = self.charge_budget(who, job, &ticket)?;
            let lease = self.take_run_lease(job)?;
            Ok((job, charged, lease))
        };
        let entries = |(job, charged, _): &(u64, Vec<zone_audit::Entry>, RunLease)| {
            let mut entries = vec![self.start_entry(who, *job, &ticket)];
            entries.extend(charged.iter().cloned());
            entries
        };
        let (job, _, lease) = self.write_ahead(who, "job.start", &objects, insert, entries).map_err(|e| match e {
            WriteAhead::Refused(err) => {
                let _ = self.record_refusal(who, "job.run", &objects, err.class(), &err.to_string());
                err
            }
            WriteAhead::NotLogged(err) => err,
        })?;
        ticket.job = job;
        ticket.lease = Some(lease);
        Ok(ticket)
    }

    /// The `job.start` entry of run `job`: the job, its application, module and datasets with their policies.
    pub(crate) fn start_entry(&self, who: &Principal, job: u64, ticket: &JobTicket) -> zone_audit::Entry {
        let mut e = entry(who, "job.start", Outcome::Ok)
            .object(format!("job:{job}"))
            .object(format!("app:{}", ticket.app.app.id))
            .hash(ticket.app.app.module_sha256.clone());
        for d in &ticket.datasets {
            e = e.object(format!("dataset:{}@{}", d.version.dataset, d.version.version));
            e = e.hash(d.version.policy_sha256.clone());
        }
        e
    }

    /// Every check of the gate, without recording anything; the ticket's `job` is 0 until the caller records it.
    pub(crate) fn gate(&self, who: &Principal, app_id: u64, batch_rows: Option<u64>) -> Result<JobTicket, StoreError> {
        let view = self.app_view(app_id)?.ok_or(StoreError::UnknownApp { id: app_id })?;
        self.permit(who, &Action::JobRun { operator: &view.app.operator })?;
        // A suspended operator's queued jobs are refused at their turn.
        self.require_active(who)?;
        let refuse = |class: &'static str, detail: String| Err(StoreError::JobRefused { class, detail });
        let run = view.app.run_settings();
        if let Some(asked) = batch_rows
            && asked != run.batch_rows
        {
            return refuse(
                "job.drift",
                format!(
                    "application {app_id} is approved with {} rows per batch; a run with {asked} would show the \
                     guest other batches than the ones approved (leave --batch-rows out, or submit again)",
                    run.batch_rows
                ),
            );
        }
        match view.status {
            AppStatus::Approved => {}
            AppStatus::ReapprovalNeeded => {
                return refuse(
                    "job.drift",
                    format!(
                        "application {app_id} was approved for a binding that no longer holds ({}); it needs approval \
                         again",
                        view.drift.join("; ")
                    ),
                );
            }
            AppStatus::Pending => {
                return refuse(
                    "job.not_approved",
                    format!("application {app_id} is not approved yet (still needed: {})", view.missing.join(", ")),
                );
            }
            AppStatus::Rejected => return refuse("job.not_approved", format!("application {app_id} was rejected")),
        }
        let grant = self.grant_by_id(view.app.grant_id)?.ok_or(StoreError::UnknownGrant { id: view.app.grant_id })?;
        let day = today();
        let mut datasets = Vec::new();
        let mut release: Option<ReleaseRules> = None;
        for bound in &view.binding.datasets {
            let version = self.dataset(&format!("{}@{}", bound.dataset, bound.version))?;
            if let Some(complaint) = self.withdrawn_by(&version.dataset, version.version)? {
                return refuse(
                    "dataset.withdrawn",
                    format!(
                        "{}@{} was withdrawn by complaint {complaint}: a subject's rows were taken out in a later \
                         version, and no run reads this one",
                        version.dataset, version.version
                    ),
                );
            }
            if let Err(detail) = grant.covers(&version.dataset, &version.provider, &view.app.domain, day) {
                return Err(StoreError::NoGrant { operator: view.app.operator.clone(), detail });
            }
            let policy = self.policy(&version)?;
            release = Some(match release {
                None => policy.release().clone(),
                Some(r) => r.stricter(policy.release()),
            });
            let files = self.data_files(&version);
            datasets.push(JobDataset { version, policy, files });
        }
        let release =
            release.ok_or_else(|| StoreError::BadInput { detail: "the application names no dataset".into() })?;
        let mode = ReleaseMode::from_name(&view.app.mode)
            .ok_or_else(|| StoreError::BadInput { detail: format!("unknown release mode `{}`", view.app.mode) })?;
        if !release.modes.contains(&mode) {
            return refuse(
                "job.mode",
                format!("the datasets' policies together do not allow `{}` mode", view.app.mode),
            );
        }
        let wasm = self.objects().read_verified(&view.app.module_sha256).map_err(|e| StoreError::JobRefused {
            class: "job.module_hash",
            detail: format!("the module's bytes differ from the approved SHA-256 {}: {e}", view.app.module_sha256),
        })?;
        let artifact = self.objects().read_verified(&view.app.artifact_sha256).map_err(|e| StoreError::JobRefused {
            class: "job.module_hash",
            detail: format!("the compiled module differs from the one stored at approval: {e}"),
        })?;
        let dp = match mode {
            ReleaseMode::Dp => Some(dp_charge(app_id, &release, &run, &datasets)?),
            _ => None,
        };
        let token_secret = self.keys()?.token_secret().clone();
        Ok(JobTicket { job: 0, app: view, datasets, wasm, artifact, release, mode, token_secret, run, dp, lease: None })
    }

    /// Whether the job's grant still covers every dataset of the run and its domain today.
    fn grant_covers_job(&self, ticket: &JobTicket) -> Result<(), String> {
        let grant_id = ticket.app.app.grant_id;
        let grant = match self.grant_by_id(grant_id) {
            Ok(Some(g)) => g,
            Ok(None) => return Err(format!("grant {grant_id} is gone")),
            Err(e) => return Err(e.to_string()),
        };
        for d in &ticket.datasets {
            grant.covers(&d.version.dataset, &d.version.provider, &ticket.app.app.domain, today())?;
        }
        Ok(())
    }

    /// Products and artifacts stay in the zone while the grant of the application they came from is not active.
    pub(crate) fn products_held(&self, app_id: u64) -> Result<(), StoreError> {
        let app = self.app_view(app_id)?.ok_or(StoreError::UnknownApp { id: app_id })?;
        let grant = self.grant_by_id(app.app.grant_id)?.ok_or(StoreError::UnknownGrant { id: app.app.grant_id })?;
        let status = grant.status(today());
        if status == zone_access::GrantStatus::Active {
            return Ok(());
        }
        Err(StoreError::NoGrant {
            operator: app.app.operator.clone(),
            detail: format!("grant {} is {}; its products are held in the zone", grant.id, status.name()),
        })
    }

    fn mark_failed(
        &self,
        job: u64,
        class: &str,
        detail: &str,
        counts: Option<&RunCounts>,
        diagnostics: &serde_json::Value,
    ) -> Result<(), StoreError> {
        let counts = counts.map(json).transpose()?;
        let state = if class == CANCELLED { "cancelled" } else { "failed" };
        self.catalog()
            .conn
            .execute(
                "UPDATE jobs SET state = ?7, finished_at = ?2, error_class = ?3, error_detail = ?4,
                        stats_json = ?5, diagnostics_json = ?6 WHERE id = ?1",
                params![job, now(), class, detail, counts, diagnostics.to_string(), state],
            )
            .map_err(StoreError::catalog("record job failure"))?;
        Ok(())
    }

    /// Ends a run: writes the product (when the table passes the byte limit) and its signed manifest, or records
    /// the failure. Either way the end is in the audit log.
    pub fn finish_job(
        &self,
        who: &Principal,
        ticket: &JobTicket,
        result: Result<ReleasedTable, RunFailure>,
    ) -> Result<(JobRecord, Option<SignedManifest>), StoreError> {
        let job = ticket.job;
        let object = format!("job:{job}");
        let table = match result {
            Ok(t) => t,
            Err(f) => {
                self.mark_failed(job, &f.class, &f.detail, f.counts.as_ref(), &f.diagnostics)?;
                self.record(&mut [entry(who, "job.finish", Outcome::Refused)
                    .object(object)
                    .reason(f.class.clone())
                    .detail(f.detail.clone())])?;
                return Ok((self.record_for(who, self.job_record_unchecked(job)?)?, None));
            }
        };
        let failure = |class: &str, detail: String| RunFailure {
            class: class.into(),
            detail,
            counts: Some(table.counts.clone()),
            diagnostics: table.diagnostics.clone(),
        };
        // A grant suspended, terminated or ended while the run was going releases nothing.
        if let Err(detail) = self.grant_covers_job(ticket) {
            let detail = format!("{detail}; the run ended after it, and nothing is released");
            return self.finish_job(who, ticket, Err(failure("access.grant", detail)));
        }
        let encoded = match encode_product(&table.schema, &table.batches, ticket.release.max_output_bytes) {
            Ok(e) => e,
            Err(e) => {
                let class = match e {
                    ProductError::TooLarge { .. } => "release.max_output_bytes",
                    _ => "product.write",
                };
                return self.finish_job(who, ticket, Err(failure(class, e.to_string())));
            }
        };
        if ticket.mode != ReleaseMode::Reviewed && !table.artifacts.is_empty() {
            let detail = "the run returned artifacts, which only reviewed mode holds".to_owned();
            return self.finish_job(who, ticket, Err(failure("release.mode", detail)));
        }
        // Artifacts go into the object store first (content-addressed: a crash leaves unreferenced objects only).
        let mut held = Vec::new();
        for (name, bytes) in &table.artifacts {
            let stored = self.objects().stage_bytes(bytes).and_then(|staged| {
                let sha256 = staged.sha256.clone();
                self.objects().commit(staged).map(|_| sha256)
            });
            match stored {
                Ok(sha256) => held.push(ManifestFile { name: name.clone(), sha256, bytes: bytes.len() as u64 }),
                Err(e) => return self.finish_job(who, ticket, Err(failure("product.write", e.to_string()))),
            }
        }
        if self.cancel_requested(job)? {
            let detail = "the operator cancelled the job while it ran; nothing is released".to_owned();
            return self.finish_job(who, ticket, Err(failure(CANCELLED, detail)));
        }
        let mut manifest = self.manifest(ticket, &table)?;
        manifest.artifacts_held = held.len() as u64;
        let written = write_product(&self.products_dir(), job, &encoded, manifest, &self.keys()?);
        crate::fail_point("job.after_product");
        let (signed, manifest_sha) = match written {
            Ok(w) => w,
            Err(e) => return self.finish_job(who, ticket, Err(failure("product.write", e.to_string()))),
        };
        let release = || {
            let changed = self
                .catalog()
                .conn
                .execute(
                    "UPDATE jobs SET state = 'released', finished_at = ?2, stats_json = ?3, manifest_sha256 = ?4,
                            diagnostics_json = ?5 WHERE id = ?1 AND state = 'running'",
                    params![job, now(), json(&table.counts)?, manifest_sha, table.diagnostics.to_string()],
                )
                .map_err(StoreError::catalog("record job"))?;
            // A job is released once: a run that is no longer the job's current one (cancelled, or recovered after
            // a restart) does not release.
            if changed != 1 {
                return Err(StoreError::JobRefused {
                    class: "job.state",
                    detail: format!("job {job} is no longer running; this run releases nothing"),
                });
            }
            held.iter().map(|a| self.insert_held_artifact(job, a)).collect::<Result<Vec<u64>, StoreError>>()
        };
        let entries = |artifact_ids: &Vec<u64>| {
            let mut entries = vec![
                entry(who, "job.release", Outcome::Ok)
                    .object(object.clone())
                    .hash(signed.manifest.output_sha256.clone())
                    .hash(manifest_sha.clone())
                    .detail(format!(
                        "{} rows released, {} rows read{}",
                        table.counts.rows_released,
                        table.counts.rows_read,
                        if held.is_empty() {
                            String::new()
                        } else {
                            format!(", {} artifacts held for review", held.len())
                        }
                    )),
            ];
            for (id, a) in artifact_ids.iter().zip(&held) {
                entries.push(
                    entry(who, "artifact.hold", Outcome::Ok)
                        .object(format!("artifact:{id}"))
                        .object(format!("job:{job}"))
                        .hash(a.sha256.clone())
                        .detail(format!("{} bytes held for the providing agencies' review", a.bytes)),
                );
            }
            entries
        };
        // The release and its entries are logged write-ahead: no product is released without `job.release`.
        if let Err(e) = self.write_ahead(who, "job.release", std::slice::from_ref(&object), release, entries) {
            // Not recorded as released: the folder must not stay where `job output` would find it.
            let _ = std::fs::remove_dir_all(self.products_dir().join(job.to_string()));
            if let WriteAhead::NotLogged(err) = &e {
                // Still this run's job: it ends failed (released nothing), rather than running for ever.
                let detail = format!("the release could not be logged, so nothing is released: {err}");
                self.mark_failed(job, "audit.append", &detail, Some(&table.counts), &table.diagnostics)?;
            }
            return Err(e.into());
        }
        Ok((self.record_for(who, self.job_record_unchecked(job)?)?, Some(signed)))
    }

    pub(crate) fn manifest(&self, ticket: &JobTicket, table: &ReleasedTable) -> Result<Manifest, StoreError> {
        let app = &ticket.app.app;
        let keys = self.keys()?;
        Ok(Manifest {
            format: "zone-product-v3".into(),
            zone_id: self.info().zone_id.clone(),
            job: ticket.job,
            application: app.id,
            operator: app.operator.clone(),
            domain: app.domain.clone(),
            purpose: app.purpose.clone(),
            module_sha256: app.module_sha256.clone(),
            params: app.params.clone(),
            datasets: ticket
                .datasets
                .iter()
                .map(|d| ManifestDataset {
                    dataset: d.version.dataset.clone(),
                    version: d.version.version,
                    policy_sha256: d.version.policy_sha256.clone(),
                    files: Vec::new(),
                    file_commitments: d.version.files.iter().map(|f| keys.file_commitment(&f.sha256)).collect(),
                })
                .collect(),
            release: ManifestRelease {
                mode: app.mode.clone(),
                min_group_size: ticket.release.min_group_size,
                max_groups_per_subject: ticket.release.max_groups_per_subject,
                max_output_rows: ticket.release.max_output_rows,
                max_output_bytes: ticket.release.max_output_bytes,
                privacy: table.counts.privacy.clone(),
            },
            rows_read: table.counts.rows_read,
            rows_released: table.counts.rows_released,
            groups: None,
            groups_suppressed: None,
            contributions_dropped: None,
            columns: table.schema.fields().iter().map(|f| (f.name().clone(), f.data_type().to_string())).collect(),
            outputs: Vec::new(),
            output_sha256: String::new(),
            created_at: now(),
            artifacts_held: 0,
            released_by: Vec::new(),
        })
    }

    pub(crate) fn job_record_unchecked(&self, id: u64) -> Result<JobRecord, StoreError> {
        self.job_row(id)?.ok_or(StoreError::UnknownJob { id })
    }

    fn job_row(&self, id: u64) -> Result<Option<JobRecord>, StoreError> {
        let row = self
            .catalog()
            .conn
            .query_row(
                "SELECT app, operator, state, binding_json, started_at, finished_at, error_class, error_detail,
                        stats_json, manifest_sha256, diagnostics_json, queued_at, attempts FROM jobs WHERE id = ?1",
                [id],
                |r| {
                    Ok((
                        (r.get::<_, u64>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?, r.get::<_, String>(3)?),
                        (r.get::<_, String>(4)?, r.get::<_, Option<String>>(5)?, r.get::<_, Option<String>>(6)?),
                        (r.get::<_, Option<String>>(7)?, r.get::<_, Option<String>>(8)?),
                        (r.get::<_, Option<String>>(9)?, r.get::<_, Option<String>>(10)?),
                        (r.get::<_, Option<String>>(11)?, r.get::<_, u64>(12)?),
                    ))
                },
            )
            .optional()
            .map_err(StoreError::catalog("read job"))?;
        let Some((
            (app, operator, state, binding),
            (started_at, finished_at, error_class),
            (error_detail, stats),
            (manifest_sha256, diagnostics),
            (queued_at, attempts),
        )) = row
        else {
            return Ok(None);
        };
        let damaged = |what: &str, e: serde_json::Error| StoreError::Catalog {
            context: format!("job {id}: {what} does not parse: {e}"),
            source: rusqlite::Error::InvalidQuery,
        };
        let guest_messages = match diagnostics {
            Some(d) => serde_json::from_str::<serde_json::Value>(&d)
                .map_err(|e| damaged("diagnostics", e))?
                .as_array()
                .map_or(0, |parts| parts.iter().map(|p| p["messages"].as_array().map_or(0, Vec::len)).sum::<usize>()),
            None => 0,
        };
        let state = JobState::from_id(&state).ok_or_else(|| StoreError::Catalog {
            context: format!("job {id} has an unknown state `{state}`"),
            source: rusqlite::Error::InvalidQuery,
        })?;
        Ok(Some(JobRecord {
            id,
            app,
            operator,
            state,
            binding: serde_json::from_str(&binding).map_err(|e| damaged("binding", e))?,
            started_at,
            finished_at,
            error_class,
            error_detail,
            counts: stats.map(|s| serde_json::from_str(&s)).transpose().map_err(|e| damaged("counts", e))?,
            manifest_sha256,
            guest_messages: Some(guest_messages),
            queued_at,
            attempts,
        }))
    }

    fn job_providers(&self, job: &JobRecord) -> Result<Vec<String>, StoreError> {
        job.binding.providers(self)
    }

    /// One job, for those who may read it.
    pub fn job(&self, who: &Principal, id: u64) -> Result<JobRecord, StoreError> {
        let Some(job) = self.job_row(id)? else {
            let err = StoreError::UnknownJob { id };
            self.record_refusal(who, "job.read", &[format!("job:{id}")], err.class(), &err.to_string())?;
            return Err(err);
        };
        let providers = self.job_providers(&job)?;
        self.authorize(
            who,
            &Action::JobRead { operator: &job.operator, providers: &providers },
            &[format!("job:{id}")],
        )?;
        Ok(self.shown_to(who, job, &providers))
    }

    /// A job record as `who` may see it: whole for those who may read the job's guest text (its providing agencies
    /// and the inspector), [`JobRecord::for_operator`] for everyone else.
    fn shown_to(&self, who: &Principal, job: JobRecord, providers: &[String]) -> JobRecord {
        if self.permit(who, &Action::JobDetailRead { providers }).is_ok() { job } else { job.for_operator() }
    }

    /// [`Zone::shown_to`] for a record just read without authorization (the caller is its operator or a worker
    /// acting for it).
    pub(crate) fn record_for(&self, who: &Principal, job: JobRecord) -> Result<JobRecord, StoreError> {
        let providers = self.job_providers(&job)?;
        Ok(self.shown_to(who, job, &providers))
    }

    /// Every job, for the zone's own computations (reports).
    pub(crate) fn all_job_records(&self) -> Result<Vec<JobRecord>, StoreError> {
        let ids: Vec<u64> = self.catalog().ids("jobs")?;
        ids.into_iter().filter_map(|id| self.job_row(id).transpose()).collect()
    }

    /// Every job `who` may read, oldest first.
    pub fn jobs(&self, who: &Principal) -> Result<Vec<JobRecord>, StoreError> {
        let ids: Vec<u64> = self.catalog().ids("jobs")?;
        let mut out = Vec::new();
        for id in ids {
            if let Some(job) = self.job_row(id)? {
                let providers = self.job_providers(&job)?;
                if self.permit(who, &Action::JobRead { operator: &job.operator, providers: &providers }).is_ok() {
                    out.push(self.shown_to(who, job, &providers));
                }
            }
        }
        Ok(out)
    }

    /// What a job's guest wrote (logs, panic and error text, per instance), for the providing agencies: it never
    /// leaves the zone. The inspector gets that it exists, its size and its SHA-256 (`{"withheld": …}`), never
    /// the text: a guest can write any value it read. Recorded, whether allowed or not.
    pub fn job_guest_text(&self, who: &Principal, id: u64) -> Result<serde_json::Value, StoreError> {
        let objects = [format!("job:{id}")];
        let job = match self.job_row(id)? {
            Some(job) => job,
            None => {
                let err = StoreError::UnknownJob { id };
                self.record_refusal(who, "job.guest_text", &objects, err.class(), &err.to_string())?;
                return Err(err);
            }
        };
        let providers = self.job_providers(&job)?;
        let full = self.permit(who, &Action::GuestTextRead { providers: &providers }).is_ok();
        if !full {
            self.authorize(who, &Action::JobDetailRead { providers: &providers }, &objects)?;
        }
        let text: Option<String> = self
            .catalog()
            .conn
            .query_row("SELECT diagnostics_json FROM jobs WHERE id = ?1", [id], |r| r.get(0))
            .map_err(StoreError::catalog("read guest text"))?;
        let value = match &text {
            Some(t) => serde_json::from_str(t).map_err(|e| StoreError::Catalog {
                context: format!("job {id}: diagnostics do not parse: {e}"),
                source: rusqlite::Error::InvalidQuery,
            })?,
            None => serde_json::Value::Null,
        };
        if !full {
            let bytes = text.as_deref().map_or(0, str::len);
            let sha256 = text.as_deref().map(|t| hex::encode(<sha2::Sha256 as sha2::Digest>::digest(t.as_bytes())));
            let withheld = serde_json::json!({ "withheld": {
                "bytes": bytes, "sha256": sha256,
                "why": "guest text stays with the agencies whose data the guest saw",
            }});
            return self.recorded(who, "job.guest_text", &objects, Ok(withheld), |_, e| {
                e.detail("size and hash of the guest text only")
            });
        }
        self.recorded(who, "job.guest_text", &objects, Ok(value), |_, e| e.detail("guest text read in the zone"))
    }

    /// Copies a released product (its files and signed manifest, nothing else) to `out`, for the operator who
    /// ran the job. Recorded.
    pub fn job_output(&self, who: &Principal, id: u64, out: &Path) -> Result<Vec<PathBuf>, StoreError> {
        let objects = vec![format!("job:{id}")];
        let result = self.job_output_unrecorded(who, id, out);
        self.recorded(who, "product.read", &objects, result, |files, e| {
            e.detail(format!("{} files to the operator", files.len()))
        })
    }

    fn job_output_unrecorded(&self, who: &Principal, id: u64, out: &Path) -> Result<Vec<PathBuf>, StoreError> {
        let job = self.job_row(id)?.ok_or(StoreError::UnknownJob { id })?;
        self.permit(who, &Action::ProductRead { operator: &job.operator })?;
        self.products_held(job.app)?;
        if job.state != JobState::Released {
            return Err(StoreError::JobRefused {
                class: "job.no_product",
                detail: format!("job {id} released nothing (it is {})", job.state),
            });
        }
        let source = self.products_dir().join(id.to_string());
        std::fs::create_dir_all(out).map_err(|e| StoreError::Io { op: "create", path: out.to_owned(), source: e })?;
        let mut copied = Vec::new();
        for name in [PRODUCT_PARQUET, PRODUCT_CSV, MANIFEST] {
            let target = out.join(name);
            if target.exists() {
                return Err(StoreError::BadInput {
                    detail: format!("{} already exists; choose an empty folder", target.display()),
                });
            }
            std::fs::copy(source.join(name), &target).map_err(|e| StoreError::Io {
                op: "copy",
                path: source.join(name),
                source: e,
            })?;
            copied.push(target);
        }
        Ok(copied)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_states_are_stored_and_serialized_by_their_id() {
        for state in JobState::ALL {
            assert_eq!(JobState::from_id(state.id()), Some(state));
            assert_eq!(serde_json::to_value(state).expect("json"), serde_json::json!(state.id()));
            assert_eq!(state.to_string(), state.id());
        }
        assert_eq!(JobState::from_id("Released"), None);
        let finals: Vec<&str> = JobState::ALL.into_iter().filter(|s| s.is_final()).map(JobState::id).collect();
        assert_eq!(finals, ["released", "failed", "refused", "cancelled"]);
    }
}
