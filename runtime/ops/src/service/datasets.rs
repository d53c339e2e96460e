//! The zone itself, its datasets and its audit log as operations.

use policies::ColumnRule;
use zone_api::Call as _;
use zone_api::routes::{
    AuditCompact, AuditCompacted, AuditExport, AuditExportAnswer, AuditLog, AuditSummary, AuditVerify,
    AuditVerifyAnswer, ColumnView, DatasetList, DatasetMock, DatasetMockAnswer, DatasetPublish, DatasetRows,
    DatasetRowsAnswer, DatasetShow, DatasetShowAnswer, ReleaseView, ZoneAbout, ZoneAboutAnswer, ZoneStatus,
    ZoneStatusAnswer, ZoneVerify, ZoneVerifyAnswer,
};
use zone_store::{Action, DatasetSummary, PublishOutcome, PublishRequest};

use super::{Handle, Session, date};
use crate::error::OpsError;

/// The most rows `dataset mock` makes.
pub const MAX_MOCK_ROWS: u64 = 1_000_000;
/// The most rows `dataset rows` shows.
pub const MAX_SHOWN_ROWS: u64 = 1_000;

impl Handle for ZoneAbout {
    fn handle(self, s: &mut Session<'_>) -> Result<ZoneAboutAnswer, OpsError> {
        Ok(ZoneAboutAnswer {
            zone_id: s.zone.info().zone_id.clone(),
            public_key: s.zone.keys()?.public_key_hex(),
            server: env!("CARGO_PKG_VERSION").to_owned(),
        })
    }
}

impl Handle for ZoneStatus {
    fn handle(self, s: &mut Session<'_>) -> Result<ZoneStatusAnswer, OpsError> {
        s.zone.authorize(&s.who, &Action::ZoneRead, &[format!("zone:{}", s.zone.info().zone_id)])?;
        let datasets = s.zone.datasets()?;
        Ok(ZoneStatusAnswer {
            info: s.zone.info().clone(),
            public_key: s.zone.keys()?.public_key_hex(),
            datasets: datasets.len() as u64,
            rows: datasets.iter().map(|d| d.rows).sum(),
        })
    }
}

impl Handle for ZoneVerify {
    fn handle(self, s: &mut Session<'_>) -> Result<ZoneVerifyAnswer, OpsError> {
        let check = s.zone.verify(&s.who, s.progress)?;
        let audit = s.zone.verify_audit(&s.who)?;
        Ok(ZoneVerifyAnswer {
            check,
            audit: AuditSummary { entries: audit.entries, checkpoints: audit.checkpoints as u64, root: audit.root },
        })
    }
}

impl Handle for DatasetPublish {
    fn handle(self, s: &mut Session<'_>) -> Result<PublishOutcome, OpsError> {
        let policy = s.files.input(&self.policy, Self::NAME)?;
        let files = self.files.iter().map(|f| s.files.input(f, Self::NAME)).collect::<Result<Vec<_>, _>>()?;
        let request = PublishRequest { files, policy, name: self.name };
        Ok(s.zone.publish(&s.who, &request, s.progress)?)
    }
}

impl Handle for DatasetList {
    fn handle(self, s: &mut Session<'_>) -> Result<Vec<DatasetSummary>, OpsError> {
        s.zone.authorize(&s.who, &Action::DatasetRead, &[])?;
        Ok(s.zone.datasets()?)
    }
}

impl Handle for DatasetShow {
    fn handle(self, s: &mut Session<'_>) -> Result<DatasetShowAnswer, OpsError> {
        let version = s.zone.dataset_view(&s.who, &self.dataset)?;
        let policy = s.zone.policy(&version)?;
        let columns = policy
            .columns()
            .iter()
            .map(|c| {
                let stats = version.stats.iter().find(|s| s.column == c.name);
                let check = stats.and_then(|s| s.format.as_ref());
                ColumnView {
                    name: c.name.clone(),
                    data_type: c.data_type.to_string(),
                    nullable: c.nullable,
                    class: c.rule.class_name().to_owned(),
                    rule: c.rule.to_string(),
                    format: c.format.map(|f| f.to_string()),
                    guest_type: c.guest_field().map(|f| f.data_type().to_string()),
                    nulls: stats.map(|s| s.nulls),
                    format_valid: check.map(|f| f.valid),
                    format_invalid: check.map(|f| f.invalid),
                }
            })
            .collect();
        let r = policy.release();
        let release = ReleaseView {
            min_group_size: r.min_group_size,
            max_groups_per_subject: r.max_groups_per_subject,
            max_rows_per_subject_in_group: r.max_rows_per_subject_in_group,
            max_output_rows: r.max_output_rows,
            max_output_bytes: r.max_output_bytes,
            max_artifact_bytes: r.max_artifact_bytes,
            modes: r.modes.iter().map(|m| m.name().to_owned()).collect(),
        };
        let policy_text = if self.policy { Some(s.zone.policy_text(&version)?) } else { None };
        let subject = policy.columns().iter().find(|c| c.rule == ColumnRule::Subject).map(|c| c.name.clone());
        Ok(DatasetShowAnswer {
            description: policy.dataset().description.clone(),
            domains: policy.dataset().domains.iter().map(|d| d.name().to_owned()).collect(),
            subject_column: subject,
            version,
            release,
            columns,
            policy_text,
        })
    }
}

impl Handle for DatasetRows {
    fn handle(self, s: &mut Session<'_>) -> Result<DatasetRowsAnswer, OpsError> {
        use arrow_array::Array as _;
        if self.limit > MAX_SHOWN_ROWS {
            return Err(OpsError::Invalid(format!("limit {} is more than {MAX_SHOWN_ROWS}", self.limit)));
        }
        let (version, batches) = s.zone.dataset_rows(&s.who, &self.dataset, self.limit as usize)?;
        let options = arrow_cast::display::FormatOptions::default();
        let mut columns = Vec::new();
        let mut rows = Vec::new();
        for b in &batches {
            if columns.is_empty() {
                columns = b.schema().fields().iter().map(|f| f.name().clone()).collect();
            }
            let formatters = b
                .columns()
                .iter()
                .map(|c| arrow_cast::display::ArrayFormatter::try_new(c.as_ref(), &options))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| OpsError::Encode { what: "rows", detail: e.to_string() })?;
            for i in 0..b.num_rows() {
                let mut row = std::collections::BTreeMap::new();
                for ((field, column), f) in b.schema().fields().iter().zip(b.columns()).zip(&formatters) {
                    let value = if column.is_null(i) { None } else { Some(f.value(i).to_string()) };
                    row.insert(field.name().clone(), value);
                }
                rows.push(row);
            }
        }
        Ok(DatasetRowsAnswer { dataset: version.dataset, version: u64::from(version.version), columns, rows })
    }
}

impl Handle for DatasetMock {
    fn handle(self, s: &mut Session<'_>) -> Result<DatasetMockAnswer, OpsError> {
        s.zone.authorize(&s.who, &Action::DatasetRead, &[format!("dataset:{}", self.dataset)])?;
        if self.rows > MAX_MOCK_ROWS {
            return Err(OpsError::Invalid(format!("rows {} is more than {MAX_MOCK_ROWS}", self.rows)));
        }
        let version = s.zone.dataset(&self.dataset)?;
        let policy = s.zone.policy(&version)?;
        let dir = s.files.output_dir()?;
        let out = dir.join(format!("{}.parquet", version.dataset));
        let tmp = dir.join(format!(".{}.parquet.partial", version.dataset));
        let encode = |e: &dyn std::fmt::Display| OpsError::Encode { what: "mock rows", detail: e.to_string() };
        let write = || -> Result<(), OpsError> {
            let file = std::fs::File::create(&tmp).map_err(|source| OpsError::Write { path: tmp.clone(), source })?;
            let mut writer =
                parquet::arrow::ArrowWriter::try_new(file, policy.guest_schema(), None).map_err(|e| encode(&e))?;
            let (total, mut done, mut chunk) = (self.rows as usize, 0usize, 0u64);
            while done < total || (total == 0 && chunk == 0) {
                let n = (total - done).min(65_536);
                let seed = self.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(chunk);
                let batch = datasets_fixtures::mock::mock_guest_batch(&policy, n, seed).map_err(|e| encode(&e))?;
                writer.write(&batch).map_err(|e| encode(&e))?;
                done += n;
                chunk += 1;
            }
            writer.close().map_err(|e| encode(&e))?;
            std::fs::rename(&tmp, &out).map_err(|source| OpsError::Write { path: out.clone(), source })
        };
        if let Err(e) = write() {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        let columns =
            policy.guest_schema().fields().iter().map(|f| format!("{} {}", f.name(), f.data_type())).collect();
        Ok(DatasetMockAnswer {
            dataset: version.dataset,
            version: u64::from(version.version),
            rows: self.rows,
            columns,
            output: s.files.outputs(&dir)?,
        })
    }
}

impl Handle for AuditLog {
    fn handle(self, s: &mut Session<'_>) -> Result<Vec<zone_audit::Entry>, OpsError> {
        let operator = self.operator.as_ref().map(|o| format!("principal:{o}"));
        let app = self.app.map(|a| format!("app:{a}"));
        Ok(s.zone
            .audit_entries(&s.who)?
            .into_iter()
            .filter(|e| {
                operator.as_ref().is_none_or(|o| {
                    self.operator.as_deref() == Some(e.actor.as_str()) || e.objects.iter().any(|x| x == o)
                })
            })
            .filter(|e| app.as_ref().is_none_or(|a| e.objects.iter().any(|x| x == a)))
            .filter(|e| self.action.as_ref().is_none_or(|a| &e.action == a))
            .filter(|e| {
                self.dataset.as_ref().is_none_or(|d| {
                    let prefix = format!("dataset:{d}");
                    e.objects.iter().any(|o| o == &prefix || o.starts_with(&format!("{prefix}@")))
                })
            })
            .filter(|e| self.since.as_ref().is_none_or(|t| e.time.as_str() >= t.as_str()))
            .collect())
    }
}

impl Handle for AuditVerify {
    fn handle(self, s: &mut Session<'_>) -> Result<AuditVerifyAnswer, OpsError> {
        let r = s.zone.verify_audit(&s.who)?;
        Ok(AuditVerifyAnswer {
            entries: r.entries,
            checkpoints: r.checkpoints as u64,
            root: r.root,
            unsigned_tail: r.unsigned_tail,
            intact: true,
        })
    }
}

/// The file name of an exported evidence bundle.
pub const AUDIT_BUNDLE: &str = "audit-bundle.json";

impl Handle for AuditExport {
    fn handle(self, s: &mut Session<'_>) -> Result<AuditExportAnswer, OpsError> {
        let bundle = s.zone.audit_bundle(&s.who, self.entry)?;
        let text =
            serde_json::to_vec(&bundle).map_err(|e| OpsError::Encode { what: "the bundle", detail: e.to_string() })?;
        let dir = s.files.output_dir()?;
        let path = dir.join(AUDIT_BUNDLE);
        std::fs::write(&path, &text).map_err(|source| OpsError::Write { path: path.clone(), source })?;
        let report = zone_audit::verify_bundle(&bundle, None).map_err(StoreErrorOf::bundle)?;
        Ok(AuditExportAnswer { report, bytes: text.len() as u64, output: s.files.outputs(&dir)? })
    }
}

/// A bundle the zone just made that does not verify is the zone's fault: the store's class for it.
struct StoreErrorOf;

impl StoreErrorOf {
    fn bundle(e: zone_audit::BundleError) -> OpsError {
        OpsError::Store(zone_store::StoreError::Bundle(e))
    }
}

impl Handle for AuditCompact {
    fn handle(self, s: &mut Session<'_>) -> Result<AuditCompacted, OpsError> {
        let before = date(&self.before, "before")?;
        s.zone.compact_audit(&s.who, before)?;
        Ok(AuditCompacted { before: self.before })
    }
}
