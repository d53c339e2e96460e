//! Complaints (SEED.md Art. 25): a person or company whose rights are harmed complains through the providing agency,
//! with evidence. The subject's value is kept only as a keyed token — in the catalog, in the log, nowhere in clear.
//! The agency resolves: **withdraw** (a new dataset version without the subject's rows, and every earlier version
//! closed to runs; approvals move to it only where the agency says so), **suspend** (every active grant that covers
//! the dataset), **reprocess** (recorded; the agency publishes corrected data) or **dismiss**.

use std::path::PathBuf;
use std::sync::Arc;

use arrow_array::{Array, BooleanArray, RecordBatch, StringArray};
use policies::{TokenKey, tokenize};
use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};
use zone_access::{Action, GrantState, Principal};

use crate::apps::AppStatus;
use crate::error::StoreError;
use crate::record::json;
use crate::record::{ComplaintState, now};
use crate::zone::{NoProgress, PublishOutcome, PublishRequest, Zone};

/// The scope of the subject tokens of complaints: never equal to a data token.
const SUBJECT_SCOPE: &str = "complaint-subject";

/// How a complaint is resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    /// A new version without the subject's rows; `keep_approvals` moves approved applications to it.
    Withdraw {
        keep_approvals: bool,
    },
    /// Suspend every active grant covering the dataset until corrected by `correct_by`.
    Suspend,
    Reprocess,
    Dismiss,
}

impl Resolution {
    pub fn name(self) -> &'static str {
        match self {
            Resolution::Withdraw { .. } => "withdraw",
            Resolution::Suspend => "suspend",
            Resolution::Reprocess => "reprocess",
            Resolution::Dismiss => "dismiss",
        }
    }
}

/// A complaint as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Complaint {
    pub id: u64,
    pub dataset: String,
    pub provider: String,
    /// Keyed token of the subject's value (the value itself is never stored).
    pub subject_token: String,
    pub evidence_sha256: String,
    pub filed_by: String,
    pub filed_at: String,
    /// `open` or `resolved`.
    pub state: ComplaintState,
    pub resolution: Option<String>,
    pub reason: Option<String>,
    pub resolved_by: Option<String>,
    pub resolved_at: Option<String>,
    /// Withdrawal: the version without the subject's rows, and how many rows it left out.
    pub new_version: Option<u32>,
    pub rows_withdrawn: Option<u64>,
    /// Withdrawal with approvals kept: the applications moved to the new version.
    pub apps_moved: Vec<u64>,
    /// Suspension: the grants suspended.
    pub grants_suspended: Vec<u64>,
}

impl Zone {
    fn subject_token(&self, value: &str) -> Result<String, StoreError> {
        let key = TokenKey::derive(self.keys()?.token_secret(), SUBJECT_SCOPE);
        let tokens = tokenize(&StringArray::from(vec![value]), &key)
            .map_err(|e| StoreError::BadInput { detail: format!("the subject value: {e}") })?;
        let tokens = tokens.as_any().downcast_ref::<StringArray>().map(|t| t.value(0).to_owned());
        tokens.ok_or_else(|| StoreError::BadInput { detail: "the subject value could not be tokenized".into() })
    }

    /// `complaint file`: the providing agency records a complaint on a subject's behalf, with its evidence.
    pub fn file_complaint(
        &self,
        who: &Principal,
        dataset: &str,
        subject: &str,
        evidence: &std::path::Path,
    ) -> Result<Complaint, StoreError> {
        let objects = vec![format!("dataset:{dataset}")];
        let file = || self.file_complaint_unrecorded(who, dataset, subject, evidence);
        self.logged_change(who, "complaint.file", &objects, file, |c, e| {
            e.object(format!("complaint:{}", c.id))
                .hash(format!("subject-token:{}", c.subject_token))
                .hash(format!("evidence:sha256:{}", c.evidence_sha256))
        })
    }

    fn file_complaint_unrecorded(
        &self,
        who: &Principal,
        dataset: &str,
        subject: &str,
        evidence: &std::path::Path,
    ) -> Result<Complaint, StoreError> {
        let version = self.dataset(dataset)?;
        self.permit(who, &Action::ComplaintHandle { provider: &version.provider })?;
        if subject.trim().is_empty() {
            return Err(StoreError::BadInput { detail: "--subject is empty".into() });
        }
        let bytes = std::fs::read(evidence).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => StoreError::MissingFile { path: evidence.to_owned() },
            _ => StoreError::Io { op: "read", path: evidence.to_owned(), source: e },
        })?;
        if bytes.is_empty() {
            return Err(StoreError::BadInput { detail: format!("{}: the evidence file is empty", evidence.display()) });
        }
        let token = self.subject_token(subject.trim())?;
        let staged = self.objects().stage_bytes(&bytes)?;
        let evidence_sha256 = staged.sha256.clone();
        self.objects().commit(staged)?;
        let conn = &self.catalog().conn;
        conn.execute(
            "INSERT INTO complaints (dataset, subject_token, evidence_sha256, filed_by, filed_at, state)
             VALUES (?1, ?2, ?3, ?4, ?5, 'open')",
            params![version.dataset, token, evidence_sha256, who.name, now()],
        )
        .map_err(StoreError::catalog("record complaint"))?;
        let id = u64::try_from(conn.last_insert_rowid()).unwrap_or(0);
        self.complaint_row(id)?.ok_or(StoreError::UnknownComplaint { id })
    }

    fn complaint_row(&self, id: u64) -> Result<Option<Complaint>, StoreError> {
        let row = self
            .catalog()
            .conn
            .query_row(
                "SELECT dataset, subject_token, evidence_sha256, filed_by, filed_at, state, resolution, reason,
                        resolved_by, resolved_at, new_version, rows_withdrawn, outcome_json
                 FROM complaints WHERE id = ?1",
                [id],
                |r| {
                    Ok((
                        (r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?),
                        (r.get::<_, String>(3)?, r.get::<_, String>(4)?, r.get::<_, String>(5)?),
                        (r.get::<_, Option<String>>(6)?, r.get::<_, Option<String>>(7)?),
                        (r.get::<_, Option<String>>(8)?, r.get::<_, Option<String>>(9)?),
                        (r.get::<_, Option<u32>>(10)?, r.get::<_, Option<u64>>(11)?, r.get::<_, Option<String>>(12)?),
                    ))
                },
            )
            .optional()
            .map_err(StoreError::catalog("read complaint"))?;
        let Some((
            (dataset, subject_token, evidence_sha256),
            (filed_by, filed_at, state),
            (resolution, reason),
            (resolved_by, resolved_at),
            (new_version, rows_withdrawn, outcome),
        )) = row
        else {
            return Ok(None);
        };
        let provider = self.catalog().provider(&dataset)?.unwrap_or_default();
        let outcome: serde_json::Value = match outcome {
            Some(text) => serde_json::from_str(&text).map_err(|e| StoreError::Catalog {
                context: format!("complaint {id}: outcome does not parse: {e}"),
                source: rusqlite::Error::InvalidQuery,
            })?,
            None => serde_json::Value::Null,
        };
        let ids = |key: &str| -> Vec<u64> {
            outcome[key]
                .as_array()
                .map(|a| a.iter().filter_map(serde_json::Value::as_u64).collect())
                .unwrap_or_default()
        };
        Ok(Some(Complaint {
            id,
            dataset,
            provider,
            subject_token,
            evidence_sha256,
            filed_by,
            filed_at,
            state: ComplaintState::read(&state)?,
            resolution,
            reason,
            resolved_by,
            resolved_at,
            new_version,
            rows_withdrawn,
            apps_moved: ids("apps_moved"),
            grants_suspended: ids("grants_suspended"),
        }))
    }

    /// The complaints `who` may read: the authority and the inspector all of them, an agency its own datasets'.
    pub fn complaints(&self, who: &Principal) -> Result<Vec<Complaint>, StoreError> {
        let ids: Vec<u64> = self.catalog().ids("complaints")?;
        let mut out = Vec::new();
        for id in ids {
            if let Some(c) = self.complaint_row(id)?
                && self.permit(who, &Action::ComplaintRead { provider: &c.provider }).is_ok()
            {
                out.push(c);
            }
        }
        Ok(out)
    }

    /// Whether a dataset version was withdrawn by a complaint (no run may read it).
    pub(crate) fn withdrawn_by(&self, dataset: &str, version: u32) -> Result<Option<u64>, StoreError> {
        self.catalog()
            .conn
            .query_row(
                "SELECT complaint FROM withdrawn_versions WHERE dataset = ?1 AND version = ?2 ORDER BY complaint LIMIT 1",
                params![dataset, version],
                |r| r.get(0),
            )
            .optional()
            .map_err(StoreError::catalog("read withdrawals"))
    }

    /// The first row of `files` (staged copies of `shown`) whose subject a resolved complaint withdrew from
    /// `dataset`: a re-publish must not bring a withdrawn subject back (Art. 25). Subjects are compared as the
    /// complaints keep them, keyed tokens; no value is stored or shown.
    pub(crate) fn check_withdrawn_subjects(
        &self,
        dataset: &str,
        subject: &str,
        files: &[(PathBuf, PathBuf)],
    ) -> Result<(), StoreError> {
        let withdrawn: std::collections::HashMap<String, u64> = {
            let mut stmt = self
                .catalog()
                .conn
                .prepare(
                    "SELECT subject_token, id FROM complaints WHERE dataset = ?1 AND resolution = 'withdraw'
                     ORDER BY id",
                )
                .map_err(StoreError::catalog("read withdrawals"))?;
            let rows = stmt
                .query_map([dataset], |r| Ok((r.get::<_, String>(0)?, r.get::<_, u64>(1)?)))
                .map_err(StoreError::catalog("read withdrawals"))?;
            rows.collect::<Result<_, _>>().map_err(StoreError::catalog("read withdrawals"))?
        };
        if withdrawn.is_empty() {
            return Ok(());
        }
        let key = TokenKey::derive(self.keys()?.token_secret(), SUBJECT_SCOPE);
        for (staged, shown) in files {
            let fail = |detail: String| StoreError::BadInput { detail: format!("{}: {detail}", shown.display()) };
            let file = std::fs::File::open(staged).map_err(StoreError::io("open", staged))?;
            let builder = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
                .map_err(|e| fail(e.to_string()))?;
            let column = builder.schema().index_of(subject).map_err(|e| fail(e.to_string()))?;
            let reader = builder.build().map_err(|e| fail(e.to_string()))?;
            let mut row = 0_u64;
            for batch in reader {
                let batch: RecordBatch = batch.map_err(|e| fail(e.to_string()))?;
                let tokens = tokenize(batch.column(column).as_ref(), &key).map_err(|e| fail(e.to_string()))?;
                let tokens =
                    tokens.as_any().downcast_ref::<StringArray>().ok_or_else(|| fail("tokens are not text".into()))?;
                for i in 0..tokens.len() {
                    if tokens.is_valid(i)
                        && let Some(&id) = withdrawn.get(tokens.value(i))
                    {
                        return Err(StoreError::ComplaintRefused {
                            id,
                            class: "complaint.withdrawn_subject",
                            detail: format!(
                                "{} row {}: its subject was withdrawn from {dataset} by complaint {id}; publish the \
                                 file without that subject's rows",
                                shown.display(),
                                row + i as u64 + 1
                            ),
                        });
                    }
                }
                row += batch.num_rows() as u64;
            }
        }
        Ok(())
    }

    /// `complaint resolve`: the providing agency's answer, with a reason. Recorded, whether allowed or not.
    pub fn resolve_complaint(
        &mut self,
        who: &Principal,
        id: u64,
        resolution: Resolution,
        reason: &str,
        correct_by: Option<&str>,
    ) -> Result<Complaint, StoreError> {
        let objects = vec![format!("complaint:{id}")];
        let result = self.resolve_complaint_unrecorded(who, id, resolution, reason, correct_by);
        self.recorded(who, "complaint.resolve", &objects, result, |c, e| {
            let mut e = e.object(format!("dataset:{}", c.dataset)).hash(format!("subject-token:{}", c.subject_token));
            if let Some(v) = c.new_version {
                e = e.object(format!("dataset:{}@{v}", c.dataset));
            }
            for app in &c.apps_moved {
                e = e.object(format!("app:{app}"));
            }
            for g in &c.grants_suspended {
                e = e.object(format!("grant:{g}"));
            }
            e.detail(format!("{}: {}", resolution.name(), reason.trim()))
        })
    }

    fn resolve_complaint_unrecorded(
        &mut self,
        who: &Principal,
        id: u64,
        resolution: Resolution,
        reason: &str,
        correct_by: Option<&str>,
    ) -> Result<Complaint, StoreError> {
        let complaint = self.complaint_row(id)?.ok_or(StoreError::UnknownComplaint { id })?;
        self.permit(who, &Action::ComplaintHandle { provider: &complaint.provider })?;
        let refuse = |class: &'static str, detail: String| Err(StoreError::ComplaintRefused { id, class, detail });
        if reason.trim().is_empty() {
            return refuse("input.reason", "a reason is required (--reason)".into());
        }
        if complaint.state != ComplaintState::Open {
            return refuse("complaint.resolved", "it is already resolved; that answer is final".into());
        }
        let mut outcome = serde_json::json!({});
        let (mut new_version, mut withdrawn) = (None, None);
        match resolution {
            Resolution::Withdraw { keep_approvals } => {
                let (version, rows, moved) = self.withdraw(who, &complaint, keep_approvals, reason)?;
                new_version = Some(version);
                withdrawn = Some(rows);
                outcome["apps_moved"] = serde_json::json!(moved);
            }
            Resolution::Suspend => {
                let Some(correct_by) = correct_by else {
                    return refuse("input.correct_by", "--suspend needs --correct-by DATE".into());
                };
                let suspended = self.suspend_for_complaint(&complaint, reason, correct_by)?;
                outcome["grants_suspended"] = serde_json::json!(suspended);
            }
            Resolution::Reprocess | Resolution::Dismiss => {}
        }
        self.catalog()
            .conn
            .execute(
                "UPDATE complaints SET state = 'resolved', resolution = ?2, reason = ?3, resolved_by = ?4,
                        resolved_at = ?5, new_version = ?6, rows_withdrawn = ?7, outcome_json = ?8 WHERE id = ?1",
                params![id, resolution.name(), reason.trim(), who.name, now(), new_version, withdrawn, json(&outcome)?],
            )
            .map_err(StoreError::catalog("record resolution"))?;
        self.complaint_row(id)?.ok_or(StoreError::UnknownComplaint { id })
    }

    /// A new version of the dataset without the subject's rows (its latest version's files, filtered, under the
    /// same policy); every earlier version is closed to runs. Returns (new version, rows left out, apps moved).
    fn withdraw(
        &mut self,
        who: &Principal,
        complaint: &Complaint,
        keep_approvals: bool,
        reason: &str,
    ) -> Result<(u32, u64, Vec<u64>), StoreError> {
        let latest = self.dataset(&complaint.dataset)?;
        let policy = self.policy(&latest)?;
        let subject = policy.subject().name.clone();
        let key = TokenKey::derive(self.keys()?.token_secret(), SUBJECT_SCOPE);
        // Applications approved for their current binding before the new version, to move when asked.
        let before: Vec<(u64, String)> = if keep_approvals {
            self.apps_on(&complaint.dataset)?
                .into_iter()
                .filter(|v| v.status == AppStatus::Approved)
                .map(|v| (v.app.id, v.binding_sha256))
                .collect()
        } else {
            Vec::new()
        };
        let tmp = self.root().join("tmp");
        let mut files: Vec<PathBuf> = Vec::new();
        let mut removed = 0_u64;
        let cleanup = |files: &[PathBuf]| {
            for f in files {
                let _ = std::fs::remove_file(f);
            }
        };
        for (i, source) in self.data_files(&latest).iter().enumerate() {
            let target = tmp.join(format!("withdraw-{}-{i}.parquet", complaint.id));
            files.push(target.clone());
            match filter_file(source, &target, &subject, &key, &complaint.subject_token) {
                Ok(n) => removed += n,
                Err(e) => {
                    cleanup(&files);
                    return Err(e);
                }
            }
        }
        if removed == 0 {
            cleanup(&files);
            return Err(StoreError::ComplaintRefused {
                id: complaint.id,
                class: "complaint.no_rows",
                detail: format!(
                    "no row of {}@{} has this subject; nothing to withdraw (dismiss or reprocess instead)",
                    latest.dataset, latest.version
                ),
            });
        }
        let request = PublishRequest {
            files: files.clone(),
            policy: self.objects().path(&latest.policy_sha256),
            name: Some(latest.dataset.clone()),
        };
        let published = self.publish(who, &request, &mut NoProgress);
        cleanup(&files);
        let version = match published? {
            PublishOutcome::Published(v) => v,
            PublishOutcome::Unchanged(v) => v,
        };
        let conn = &self.catalog().conn;
        for v in 1..version.version {
            conn.execute(
                "INSERT OR IGNORE INTO withdrawn_versions (dataset, version, complaint) VALUES (?1, ?2, ?3)",
                params![latest.dataset, v, complaint.id],
            )
            .map_err(StoreError::catalog("record withdrawal"))?;
        }
        let mut moved = Vec::new();
        for (app, old_binding) in before {
            if self.carry_approvals(who, app, &old_binding, complaint.id, &version.dataset, version.version, reason)? {
                moved.push(app);
            }
        }
        Ok((version.version, removed, moved))
    }

    /// Every application over `dataset`, as viewed now.
    fn apps_on(&self, dataset: &str) -> Result<Vec<crate::apps::AppView>, StoreError> {
        let ids: Vec<u64> = self.catalog().ids("applications")?;
        let mut out = Vec::new();
        for id in ids {
            if let Some(v) = self.app_view(id)?
                && v.binding.datasets.iter().any(|d| d.dataset == dataset)
            {
                out.push(v);
            }
        }
        Ok(out)
    }

    /// Re-binds an application's approvals from `old_binding` to its binding now (which names the new version),
    /// each party's approval carried over with the complaint named as the reason. Only for applications whose
    /// binding changed by the new version alone.
    #[expect(clippy::too_many_arguments, reason = "one call site; the values are all part of the record")]
    fn carry_approvals(
        &self,
        who: &Principal,
        app: u64,
        old_binding: &str,
        complaint: u64,
        dataset: &str,
        version: u32,
        reason: &str,
    ) -> Result<bool, StoreError> {
        let Some(view) = self.app_view(app)? else { return Ok(false) };
        if view.status != AppStatus::ReapprovalNeeded {
            return Ok(false);
        }
        let Some(new_dataset) = view.binding.datasets.iter().find(|d| d.dataset == dataset) else { return Ok(false) };
        if new_dataset.version != version {
            return Ok(false);
        }
        let conn = &self.catalog().conn;
        let approvals: Vec<_> =
            view.decisions.iter().filter(|d| d.decision == "approve" && d.binding_sha256 == old_binding).collect();
        for (i, d) in approvals.iter().enumerate() {
            let seq: u64 = conn
                .query_row("SELECT COUNT(*) FROM decisions WHERE app = ?1", [app], |r| r.get(0))
                .map_err(StoreError::catalog("count decisions"))?;
            conn.execute(
                "INSERT INTO decisions (app, seq, principal, role, party, decision, reason, binding_sha256, binding_json, time)
                 VALUES (?1, ?2, ?3, ?4, ?5, 'approve', ?6, ?7, ?8, ?9)",
                params![
                    app,
                    seq,
                    who.name,
                    who.role.name(),
                    d.party,
                    format!(
                        "carried to {dataset}@{version} by complaint {complaint} (withdrawal; approval {} of {} by {}): {}",
                        i + 1,
                        approvals.len(),
                        d.principal,
                        reason.trim()
                    ),
                    view.binding_sha256,
                    json(&view.binding)?,
                    now()
                ],
            )
            .map_err(StoreError::catalog("carry approval"))?;
        }
        Ok(!approvals.is_empty())
    }

    /// Suspends every active grant that covers the dataset (by name or by its provider).
    fn suspend_for_complaint(
        &self,
        complaint: &Complaint,
        reason: &str,
        correct_by: &str,
    ) -> Result<Vec<u64>, StoreError> {
        let correct_by = chrono::NaiveDate::parse_from_str(correct_by, "%Y-%m-%d").map_err(|e| {
            StoreError::BadInput { detail: format!("--correct-by `{correct_by}` is not a date (YYYY-MM-DD): {e}") }
        })?;
        let today = crate::record::today();
        let mut suspended = Vec::new();
        for g in self.all_grants()? {
            let covers =
                g.scope.datasets.contains(&complaint.dataset) || g.scope.providers.contains(&complaint.provider);
            if covers && g.status(today) == zone_access::GrantStatus::Active {
                let state = GrantState::Suspended {
                    reason: format!("complaint {}: {}", complaint.id, reason.trim()),
                    correct_by,
                };
                self.catalog()
                    .conn
                    .execute("UPDATE grants SET state_json = ?2 WHERE id = ?1", params![g.id, json(&state)?])
                    .map_err(StoreError::catalog("suspend grant"))?;
                suspended.push(g.id);
            }
        }
        Ok(suspended)
    }
}

/// Copies `source` to `target` without the rows whose subject's token is `token`; the number of rows left out.
fn filter_file(
    source: &std::path::Path,
    target: &std::path::Path,
    subject: &str,
    key: &TokenKey,
    token: &str,
) -> Result<u64, StoreError> {
    let fail = |detail: String| StoreError::BadInput { detail: format!("{}: {detail}", source.display()) };
    let file = std::fs::File::open(source).map_err(StoreError::io("open", source))?;
    let builder = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| fail(e.to_string()))?;
    let schema = builder.schema().clone();
    let column = schema.index_of(subject).map_err(|e| fail(e.to_string()))?;
    let reader = builder.build().map_err(|e| fail(e.to_string()))?;
    let out = std::fs::File::create(target).map_err(StoreError::io("create", target))?;
    let mut writer =
        parquet::arrow::ArrowWriter::try_new(out, Arc::clone(&schema), None).map_err(|e| fail(e.to_string()))?;
    let mut removed = 0_u64;
    for batch in reader {
        let batch: RecordBatch = batch.map_err(|e| fail(e.to_string()))?;
        let tokens = tokenize(batch.column(column).as_ref(), key).map_err(|e| fail(e.to_string()))?;
        let tokens = tokens.as_any().downcast_ref::<StringArray>().ok_or_else(|| fail("tokens are not text".into()))?;
        let keep: BooleanArray =
            (0..tokens.len()).map(|i| Some(tokens.is_null(i) || tokens.value(i) != token)).collect();
        removed += (batch.num_rows() - keep.true_count()) as u64;
        let kept = arrow_select::filter::filter_record_batch(&batch, &keep).map_err(|e| fail(e.to_string()))?;
        writer.write(&kept).map_err(|e| fail(e.to_string()))?;
    }
    let out = writer.into_inner().map_err(|e| fail(e.to_string()))?;
    out.sync_all().map_err(StoreError::io("fsync", target))?;
    Ok(removed)
}
