//! A zone on disk: its layout, `init`, `open`, publishing datasets atomically, and reading the catalog.
//!
//! ```text
//! ZONE/
//!   zone.toml            format, id, creation time; written last by `init` (its presence means "initialized")
//!   catalog.db           SQLite (WAL): datasets, versions, files
//!   keys/                owner-only: Ed25519 signing key, tokenization secret
//!   objects/ab/cdef…     content-addressed files (Parquet, policies), read-only
//!   tmp/                 staging; files here are never referenced
//! ```

use std::fs;
use std::path::{Path, PathBuf};

use policies::{CompiledPolicy, PolicyErrors};
use serde::{Deserialize, Serialize};

use crate::catalog::{Catalog, ColumnStats, DatasetSummary, DatasetVersion, NewVersion, StoredFile};
use crate::error::StoreError;
use crate::keys::{self, ZoneKeys};
use crate::objects::{ObjectStore, Staged, sync_dir};
use crate::publish::{inspect, merge_stats, parquet_schema, schema_difference};
use crate::record::now;
use crate::settings::{AuditSection, JobsSection, SandboxSection, SandboxSettings};
use zone_access::{Action, Principal, Role};
use zone_audit::{AuditLog, Entry, Outcome, VerifyReport};

/// The on-disk format this build writes and reads.
pub const ZONE_FORMAT: i64 = 1;

/// `zone.toml`.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ZoneInfo {
    pub format: i64,
    pub zone_id: String,
    pub created_at: String,
    /// Limits of every job in this zone (see `settings.rs`); absent keys take the sandbox's defaults.
    #[serde(default, skip_serializing_if = "is_default")]
    #[schemars(with = "serde_json::Value")]
    pub sandbox: SandboxSection,
    /// How long audit entries are kept (see `settings.rs`).
    #[serde(default, skip_serializing_if = "is_default_audit")]
    #[schemars(with = "serde_json::Value")]
    pub audit: AuditSection,
    /// How finely a run's end is made known (see `settings.rs`).
    #[serde(default, skip_serializing_if = "is_default_jobs")]
    #[schemars(with = "serde_json::Value")]
    pub jobs: JobsSection,
}

fn is_default_jobs(section: &JobsSection) -> bool {
    section == &JobsSection::default()
}

fn is_default_audit(section: &AuditSection) -> bool {
    section == &AuditSection::default()
}

fn is_default(section: &SandboxSection) -> bool {
    section == &SandboxSection::default()
}

/// Reports progress of long steps (the CLI draws bars; tests ignore it).
pub trait Progress {
    /// A new step of `total` units (bytes or rows) starts.
    fn begin(&mut self, step: &str, total: u64);
    fn advance(&mut self, units: u64);
    fn end(&mut self);
}

/// Progress that goes nowhere.
#[derive(Debug, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn begin(&mut self, _: &str, _: u64) {}
    fn advance(&mut self, _: u64) {}
    fn end(&mut self) {}
}

/// What to publish.
#[derive(Debug, Clone)]
pub struct PublishRequest {
    /// One or more Parquet files with the same schema; together they are the version's rows.
    pub files: Vec<PathBuf>,
    /// The policy file.
    pub policy: PathBuf,
    /// The dataset name; must agree with the policy's `[dataset] name` when given.
    pub name: Option<String>,
}

/// What publishing did.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum PublishOutcome {
    /// A new immutable version was recorded.
    Published(DatasetVersion),
    /// The latest version already has exactly these files and this policy; nothing changed.
    Unchanged(DatasetVersion),
}

impl PublishOutcome {
    pub fn version(&self) -> &DatasetVersion {
        match self {
            PublishOutcome::Published(v) | PublishOutcome::Unchanged(v) => v,
        }
    }
}

/// What `zone verify` found of the agreement between the log and the catalog.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct LogAgreement {
    /// Write-ahead entries read.
    pub write_ahead_entries: u64,
    /// Of those, the ones whose change never took effect, each named by an `audit.not_applied` entry.
    pub not_applied: u64,
    /// The first disagreement, if any: an entry whose change the catalog does not have and that nothing names,
    /// or a change the catalog records under an entry the log does not have.
    pub first_disagreement: Option<String>,
}

/// What `verify` found.
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ZoneCheck {
    pub objects_checked: usize,
    /// Referenced objects that are missing or whose bytes no longer hash to their name.
    pub damaged: Vec<String>,
    /// Objects no version references (left by a publish that was killed before its catalog commit).
    pub unreferenced: Vec<String>,
    /// Staging files kept: held by a live process, or written in the last minute.
    pub leftover_staging: Vec<PathBuf>,
    /// Staging files left by processes that ended, removed by this check.
    #[serde(default)]
    pub removed_staging: Vec<PathBuf>,
    /// Product folders of jobs that never recorded a release (never served by `job output`).
    #[serde(default)]
    pub unreleased_products: Vec<String>,
    /// The zone server's access log against its seals in the audit log.
    pub access_log: crate::AccessLogCheck,
    /// The audit log against the catalog: every logged change took effect or is named as not applied.
    pub log_agreement: LogAgreement,
}

impl ZoneCheck {
    pub fn is_healthy(&self) -> bool {
        self.damaged.is_empty() && self.access_log.broken.is_none() && self.log_agreement.first_disagreement.is_none()
    }
}

/// An open zone.
#[derive(Debug)]
pub struct Zone {
    root: PathBuf,
    info: ZoneInfo,
    catalog: Catalog,
    objects: ObjectStore,
    /// How the acting principal reached the zone (the HTTPS API's client certificate); stamped on every entry.
    via: Option<String>,
}

/// Aborts the process at a named point when `CLEANROOM_FAILPOINT` names it. Only in debug builds: the
/// crash tests use it to show that a killed publish leaves the zone as it was.
pub(crate) fn fail_point(name: &str) {
    #[cfg(debug_assertions)]
    if std::env::var_os("CLEANROOM_FAILPOINT").is_some_and(|v| v == name) {
        eprintln!("fail point `{name}` reached: aborting");
        std::process::abort();
    }
    #[cfg(not(debug_assertions))]
    let _ = name;
}

impl Zone {
    /// Creates a zone in `root` (a new or empty folder): layout, keys, catalog, the first authority (`authority`,
    /// of `org`), then `zone.toml`.
    pub fn init(root: &Path, authority: &str, org: Option<&str>) -> Result<Zone, StoreError> {
        crate::record::check_name("principal", authority)?;
        if let Some(org) = org {
            crate::record::check_name("organisation", org)?;
        }
        let marker = root.join("zone.toml");
        if marker.exists() {
            let created_at = read_info(root).map(|i| i.created_at).unwrap_or_else(|_| "unknown".into());
            return Err(StoreError::AlreadyInitialized { path: root.to_path_buf(), created_at });
        }
        if root.exists() {
            let entries = fs::read_dir(root).map_err(StoreError::io("read directory", root))?;
            let mut names: Vec<String> =
                entries.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
            names.sort();
            // An earlier `init` that was killed leaves our own layout without zone.toml: start over in it —
            // but only while it holds nothing. A zone whose zone.toml was lost is never wiped.
            let ours = [
                "catalog.db",
                "catalog.db-shm",
                "catalog.db-wal",
                "keys",
                "objects",
                "tmp",
                "products",
                "audit",
                "zone.toml.partial",
            ];
            if names.iter().any(|n| !ours.contains(&n.as_str())) {
                return Err(StoreError::NotEmpty { path: root.to_path_buf() });
            }
            let has_objects = fs::read_dir(root.join("objects")).is_ok_and(|mut d| d.next().is_some());
            let has_datasets = root.join("catalog.db").exists()
                && Catalog::open(&root.join("catalog.db"))
                    .and_then(|c| c.dataset_names())
                    .map_or(true, |n| !n.is_empty());
            if has_objects || has_datasets {
                return Err(StoreError::NotEmpty { path: root.to_path_buf() });
            }
            for n in &names {
                let p = root.join(n);
                let removed = if p.is_dir() { fs::remove_dir_all(&p) } else { fs::remove_file(&p) };
                removed.map_err(StoreError::io("remove incomplete zone file", &p))?;
            }
        }
        fs::create_dir_all(root).map_err(StoreError::io("create zone directory", root))?;
        let objects = ObjectStore::new(root);
        objects.create_dirs()?;
        fs::create_dir_all(root.join("products")).map_err(StoreError::io("create directory", root.join("products")))?;
        keys::create(&root.join("keys"))?;
        let catalog = Catalog::open(&root.join("catalog.db"))?;
        let mut id = [0u8; 16];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut id)
            .map_err(|_| StoreError::Key { path: root.join("zone.toml"), detail: "the system CSPRNG failed".into() })?;
        let info = ZoneInfo {
            format: ZONE_FORMAT,
            zone_id: hex::encode(id),
            created_at: now(),
            sandbox: SandboxSection::default(),
            audit: AuditSection::default(),
            jobs: JobsSection::default(),
        };
        // The first entry of the audit log, before zone.toml marks the zone as initialized.
        let keys = keys::load(&root.join("keys"))?;
        let (mut audit, _) = AuditLog::open(&root.join("audit"), &info.zone_id, keys.signing(), &info.created_at)?;
        let mut first =
            [Entry::new(info.created_at.clone(), authority, Role::Authority.name(), "zone.init", Outcome::Ok)
                .object(format!("zone:{}", info.zone_id))
                .object(format!("principal:{authority}"))
                .hash(format!("ed25519:{}", keys.public_key_hex()))
                .detail(format!("first authority `{authority}`"))];
        audit.append(&mut first, keys.signing(), &info.created_at)?;
        drop(audit);
        let zone = Zone { root: root.to_path_buf(), info, catalog, objects, via: None };
        let principal = Principal { name: authority.to_owned(), role: Role::Authority, org: org.map(str::to_owned) };
        zone.insert_principal(&principal, "zone.init")?;
        let (root, info) = (&zone.root, &zone.info);
        let text = toml::to_string(&info).map_err(|e| StoreError::Io {
            op: "serialize",
            path: marker.clone(),
            source: std::io::Error::other(e.to_string()),
        })?;
        let staged = root.join("zone.toml.partial");
        fs::write(&staged, text).map_err(StoreError::io("write", &staged))?;
        fs::File::open(&staged).and_then(|f| f.sync_all()).map_err(StoreError::io("fsync", &staged))?;
        fs::rename(&staged, &marker).map_err(StoreError::io("rename", &marker))?;
        sync_dir(root)?;
        Ok(zone)
    }

    /// Opens an initialized zone.
    pub fn open(root: &Path) -> Result<Zone, StoreError> {
        let info = read_info(root)?;
        if info.format != ZONE_FORMAT {
            return Err(StoreError::UnsupportedZoneFormat {
                path: root.to_path_buf(),
                found: info.format,
                supported: ZONE_FORMAT,
            });
        }
        let catalog = Catalog::open(&root.join("catalog.db"))?;
        let zone = Zone { root: root.to_path_buf(), info, catalog, objects: ObjectStore::new(root), via: None };
        // A change logged by a process that was killed before its commit is named as not applied. Best effort
        // here (a zone on a full or read-only disk must still open for reading); every write-ahead change does
        // the same under the catalog's lock.
        if let Err(e) = zone.reconcile() {
            tracing::warn!(error = %e, "the audit log could not be reconciled with the catalog on open");
        }
        // Local runs whose process died are ended, and staging files nobody writes any more removed.
        if let Err(e) = zone.end_interrupted_runs() {
            tracing::warn!(error = %e, "interrupted local runs could not be ended on open");
        }
        let removed = zone.objects.clean_staging();
        if !removed.is_empty() {
            tracing::info!(files = removed.len(), "staging files of ended processes removed");
        }
        Ok(zone)
    }

    /// Appends entries to the zone's audit log (one group commit, one signed checkpoint).
    /// Marks every entry this handle records from now on with how its actor reached the zone (`None`: the local
    /// CLI). The HTTPS API sets the client certificate's identity here.
    pub fn set_via(&mut self, via: Option<String>) {
        self.via = via;
    }

    /// How the acting principal reached the zone, as set by `set_via`.
    pub fn via(&self) -> Option<&str> {
        self.via.as_deref()
    }

    pub fn record(&self, entries: &mut [Entry]) -> Result<(), StoreError> {
        let keys = self.keys()?;
        let time = now();
        if let Some(via) = &self.via {
            for e in entries.iter_mut().filter(|e| e.via.is_none()) {
                e.via = Some(via.clone());
            }
        }
        let (mut log, _) = self.open_log(&keys, &time)?;
        log.append(entries, keys.signing(), &time)?;
        Ok(())
    }

    /// The audit log, open for appending (its lock held until dropped).
    pub(crate) fn open_log(
        &self,
        keys: &ZoneKeys,
        time: &str,
    ) -> Result<(AuditLog, zone_audit::OpenReport), StoreError> {
        Ok(AuditLog::open(&self.root.join("audit"), &self.info.zone_id, keys.signing(), time)?)
    }

    /// Verifies the audit log: every entry against its hash and position, every checkpoint against the zone's key.
    pub fn verify_audit(&self, who: &Principal) -> Result<VerifyReport, StoreError> {
        self.authorize(who, &Action::AuditRead, &["audit:log".to_owned()])?;
        let keys = self.keys()?;
        let public = hex::decode(keys.public_key_hex())
            .map_err(|e| StoreError::Key { path: self.root.join("keys"), detail: e.to_string() })?;
        Ok(zone_audit::verify(&self.root.join("audit"), &self.info.zone_id, &public)?)
    }

    /// Every audit entry, in order.
    pub fn audit_entries(&self, who: &Principal) -> Result<Vec<Entry>, StoreError> {
        self.authorize(who, &Action::AuditRead, &["audit:log".to_owned()])?;
        self.audit_entries_unchecked()
    }

    /// Every audit entry, for the zone's own computations (reports); never handed out as such.
    pub(crate) fn audit_entries_unchecked(&self) -> Result<Vec<Entry>, StoreError> {
        let keys = self.keys()?;
        let (log, _) = AuditLog::open(&self.root.join("audit"), &self.info.zone_id, keys.signing(), &now())?;
        Ok(log.entries()?)
    }

    /// An evidence bundle of the audit log (every entry, checkpoint and consistency proof), or with `entry` a
    /// receipt for that one entry; for the inspector and the authority. The export itself is recorded.
    pub fn audit_bundle(&self, who: &Principal, entry: Option<u64>) -> Result<zone_audit::Bundle, StoreError> {
        self.authorize(who, &Action::AuditRead, &["audit:log".to_owned()])?;
        let keys = self.keys()?;
        let time = now();
        let (log, _) = AuditLog::open(&self.root.join("audit"), &self.info.zone_id, keys.signing(), &time)?;
        let (bin, cps) = log.raw()?;
        // Release the log's lock before recording the export below.
        drop(log);
        let public = hex::decode(keys.public_key_hex())
            .map_err(|e| StoreError::Key { path: self.root.join("keys"), detail: e.to_string() })?;
        let id = &self.info.zone_id;
        let bundle = match entry {
            None => zone_audit::full_bundle(&bin, &cps, id, &public, &time),
            Some(index) => zone_audit::receipt(&bin, &cps, id, &public, index, &time),
        }
        .map_err(StoreError::Bundle)?;
        let size = bundle.inclusion.as_ref().map_or(bundle.entries.len() as u64, |p| p.size);
        let what = match entry {
            Some(i) => format!("receipt for entry {i} in the signed log of {size} entries"),
            None => format!("full bundle of {size} entries, {} checkpoints", bundle.checkpoints.len()),
        };
        self.record(&mut [crate::record::entry(who, "audit.export", Outcome::Ok).object("audit:log").detail(what)])?;
        Ok(bundle)
    }

    /// `[audit] retention_days` of `zone.toml` (three years when absent).
    pub fn audit_retention_days(&self) -> Result<u64, StoreError> {
        let path = self.root.join("zone.toml");
        let text = fs::read_to_string(&path).map_err(StoreError::io("read", &path))?;
        self.info.audit.retention_days(&path, &text)
    }

    /// `audit compact --before DATE`: always refused, and recorded. Within the retention period because the
    /// entries must be kept; past it because the log is an append-only Merkle tree whose signed checkpoints commit
    /// to every entry — old entries are archived by exporting a bundle, never dropped.
    pub fn compact_audit(&self, who: &Principal, before: chrono::NaiveDate) -> Result<(), StoreError> {
        let objects = ["audit:log".to_owned()];
        let result = (|| {
            self.permit(who, &Action::AuditCompact)?;
            let days = self.audit_retention_days()?;
            let kept_from = crate::record::today() - chrono::Duration::days(i64::try_from(days).unwrap_or(i64::MAX));
            if before > kept_from {
                return Err(StoreError::AuditKept {
                    class: "audit.retention",
                    detail: format!(
                        "entries are kept for {days} days (everything since {kept_from}); compacting entries before \
                         {before} would drop entries within that period"
                    ),
                });
            }
            Err(StoreError::AuditKept {
                class: "audit.append_only",
                detail: format!(
                    "the entries before {before} are past the {days}-day retention, but the log is append-only: its \
                     signed checkpoints commit to every entry; archive them with `audit export` instead"
                ),
            })
        })();
        self.recorded(who, "audit.compact", &objects, result, |_, e| e)
    }

    /// The `[sandbox]` limits of `zone.toml`, checked (with `zone.toml:line:col` for a value out of range).
    pub fn sandbox_settings(&self) -> Result<SandboxSettings, StoreError> {
        let path = self.root.join("zone.toml");
        let text = fs::read_to_string(&path).map_err(StoreError::io("read", &path))?;
        self.info.sandbox.check(&path, &text)
    }

    /// `[jobs] timing_quantum_ms` of `zone.toml`, checked.
    pub fn timing_quantum(&self) -> Result<std::time::Duration, StoreError> {
        let path = self.root.join("zone.toml");
        let text = fs::read_to_string(&path).map_err(StoreError::io("read", &path))?;
        Ok(std::time::Duration::from_millis(self.info.jobs.timing_quantum_ms(&path, &text)?))
    }

    pub(crate) fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    pub(crate) fn objects(&self) -> &ObjectStore {
        &self.objects
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn info(&self) -> &ZoneInfo {
        &self.info
    }

    /// Loads the zone keys (checking they are owner-only).
    pub fn keys(&self) -> Result<ZoneKeys, StoreError> {
        keys::load(&self.root.join("keys"))
    }

    /// The folder released products are written to.
    pub fn products_dir(&self) -> PathBuf {
        self.root.join("products")
    }

    /// Publishes a new version of a dataset. Every check runs on staged copies before anything is recorded;
    /// on any error the zone is exactly as before. Publishing the same files and policy as the latest version
    /// changes nothing and says so.
    pub fn publish(
        &mut self,
        who: &Principal,
        request: &PublishRequest,
        progress: &mut dyn Progress,
    ) -> Result<PublishOutcome, StoreError> {
        let result = self.publish_unrecorded(who, request, progress);
        let name = request.name.clone().unwrap_or_else(|| "(named by its policy)".to_owned());
        let entry = match &result {
            // A new version's entry was appended before its catalog commit (write-ahead).
            Ok(PublishOutcome::Published(_)) => return result,
            Ok(PublishOutcome::Unchanged(v)) => {
                publish_entry(who, &self.keys()?, &v.dataset, v.version, &v.policy_sha256, &v.files)
                    .detail("unchanged: the latest version has these files and this policy")
            }
            Err(err) => crate::record::entry(who, "dataset.publish", Outcome::Refused)
                .object(format!("dataset:{name}"))
                .reason(err.class())
                .detail(err.to_string()),
        };
        // A failure to record is fatal and wins over the outcome: an unrecorded action must not look done.
        self.record(&mut [entry])?;
        result
    }

    fn publish_unrecorded(
        &mut self,
        who: &Principal,
        request: &PublishRequest,
        progress: &mut dyn Progress,
    ) -> Result<PublishOutcome, StoreError> {
        // The role first, before any byte is read; the provider once the policy says whose data it is.
        self.permit(who, &Action::DatasetPublish { provider: None })?;
        if request.files.is_empty() {
            return Err(StoreError::MissingFile { path: PathBuf::from("(no Parquet file given)") });
        }
        let policy_bytes = fs::read(&request.policy).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => StoreError::MissingFile { path: request.policy.clone() },
            _ => StoreError::Io { op: "read", path: request.policy.clone(), source: e },
        })?;
        let policy_text = std::str::from_utf8(&policy_bytes)
            .map_err(|e| StoreError::NotText { path: request.policy.clone(), offset: e.valid_up_to() })?;

        // Stage every file (copy + hash + fsync) so that what we check is exactly what we store.
        let total: u64 = request.files.iter().map(|f| fs::metadata(f).map_or(0, |m| m.len())).sum();
        progress.begin("copy", total);
        let mut staged: Vec<Staged> = Vec::with_capacity(request.files.len());
        for file in &request.files {
            staged.push(self.objects.stage_file(file, &mut |n| progress.advance(n))?);
        }
        progress.end();
        fail_point("publish.after_staging");

        // Schemas: every file alike, and the policy fits them.
        let schema = parquet_schema(&staged[0].path, &request.files[0])?;
        for (s, shown) in staged.iter().zip(&request.files).skip(1) {
            let other = parquet_schema(&s.path, shown)?;
            if let Some(detail) = schema_difference(&schema, &other) {
                return Err(StoreError::SchemaMismatch {
                    path: shown.clone(),
                    first: request.files[0].clone(),
                    detail,
                });
            }
        }
        let source_name = request.policy.display().to_string();
        let policy = CompiledPolicy::compile(&source_name, policy_text, &schema).map_err(StoreError::PolicyRefused)?;
        let name = policy.dataset().name.clone();
        if let Some(given) = &request.name
            && *given != name
        {
            return Err(StoreError::NameMismatch { given: given.clone(), policy: name });
        }
        let provider = policy.dataset().provider.clone();
        self.permit(who, &Action::DatasetPublish { provider: Some(&provider) })?;
        if let Some(existing) = self.catalog.provider(&name)?
            && existing != provider
        {
            return Err(StoreError::ProviderMismatch { name, existing, policy: provider });
        }

        // A subject withdrawn by a complaint never comes back with a later version.
        let pairs: Vec<(PathBuf, PathBuf)> =
            staged.iter().zip(&request.files).map(|(s, f)| (s.path.clone(), f.clone())).collect();
        self.check_withdrawn_subjects(&name, &policy.subject().name, &pairs)?;

        // Content another provider published stays theirs: a copy of their file is not a dataset of ours.
        for (s, shown) in staged.iter().zip(&request.files) {
            if let Some((dataset, owner)) = self.catalog.foreign_holders(&s.sha256, &provider)?.into_iter().next() {
                return Err(StoreError::ForeignContent { path: shown.clone(), dataset, owner });
            }
        }

        // Read every row: the file must decode to the end; gather quality figures.
        let declared_rows =
            staged.iter().zip(&request.files).map(|(s, f)| row_count(&s.path, f)).sum::<Result<u64, _>>()?;
        progress.begin("check", declared_rows);
        let mut files = Vec::with_capacity(staged.len());
        let mut stats: Vec<ColumnStats> = Vec::new();
        for (s, shown) in staged.iter().zip(&request.files) {
            let inspected = inspect(&s.path, shown, &policy, &mut |n| progress.advance(n))?;
            if inspected.rows == 0 && request.files.len() == 1 {
                return Err(StoreError::EmptyDataset { path: shown.clone() });
            }
            merge_stats(&mut stats, inspected.stats);
            files.push(StoredFile { sha256: s.sha256.clone(), commitment: None, bytes: s.bytes, rows: inspected.rows });
        }
        progress.end();
        if files.iter().all(|f| f.rows == 0) {
            return Err(StoreError::EmptyDataset { path: request.files[0].clone() });
        }

        let policy_staged = self.objects.stage_bytes(&policy_bytes)?;
        let policy_sha256 = policy_staged.sha256.clone();
        if let Some(latest) = self.catalog.latest_version(&name)?
            && let Some(current) = self.catalog.version(&name, latest)?
        {
            let same_files = current.files.iter().map(|f| &f.sha256).eq(files.iter().map(|f| &f.sha256));
            if same_files && current.policy_sha256 == policy_sha256 {
                return Ok(PublishOutcome::Unchanged(current));
            }
        }

        // Move the bytes into place (content-addressed, so a crash here leaves only unreferenced objects), then
        // record the version in one catalog transaction: the commit is the moment it exists.
        for s in staged {
            self.objects.commit(s)?;
        }
        self.objects.commit(policy_staged)?;
        fail_point("publish.after_objects");
        let published_at = now();
        let new = NewVersion {
            dataset: &name,
            provider: &provider,
            policy_sha256: &policy_sha256,
            schema: &schema,
            files: &files,
            stats: &stats,
            published_at: &published_at,
        };
        // The `dataset.publish` entry is appended inside the catalog transaction, before its commit: no version
        // exists without its entry.
        let keys = self.keys()?;
        let log = |version: u32| {
            self.append_write_ahead(&mut [publish_entry(who, &keys, &name, version, &policy_sha256, &files)])
        };
        let version = self.catalog.insert_version(&new, log)?;
        fail_point("publish.after_commit");
        let recorded = self.catalog.version(&name, version)?.ok_or_else(|| StoreError::UnknownVersion {
            name: name.clone(),
            version,
            latest: version,
        })?;
        tracing::info!(dataset = %name, version, policy = %policy_sha256, rows = recorded.rows, "dataset version published");
        Ok(PublishOutcome::Published(recorded))
    }

    /// Every dataset with its latest version.
    pub fn datasets(&self) -> Result<Vec<DatasetSummary>, StoreError> {
        self.catalog.summaries()
    }

    /// A dataset version given as `NAME` (latest) or `NAME@VERSION`.
    pub fn dataset(&self, spec: &str) -> Result<DatasetVersion, StoreError> {
        let (name, version) = match spec.split_once('@') {
            None => (spec, None),
            Some((name, v)) => {
                let v = v.parse::<u32>().map_err(|_| StoreError::BadDatasetRef { spec: spec.to_owned() })?;
                (name, Some(v))
            }
        };
        if name.is_empty() {
            return Err(StoreError::BadDatasetRef { spec: spec.to_owned() });
        }
        let Some(latest) = self.catalog.latest_version(name)? else {
            return Err(StoreError::UnknownDataset { name: name.to_owned(), known: self.catalog.dataset_names()? });
        };
        let version = version.unwrap_or(latest);
        self.catalog.version(name, version)?.ok_or_else(|| StoreError::UnknownVersion {
            name: name.to_owned(),
            version,
            latest,
        })
    }

    /// A dataset version as `who` may see it (catalog metadata, never a value): every file carries its keyed
    /// commitment, and its raw SHA-256 only for the providing agency and the inspector. Recorded when refused.
    pub fn dataset_view(&self, who: &Principal, spec: &str) -> Result<DatasetVersion, StoreError> {
        self.authorize(who, &Action::DatasetRead, &[format!("dataset:{spec}")])?;
        let mut version = self.dataset(spec)?;
        let keys = self.keys()?;
        let raw = crate::record::sees_raw_hashes(who, &version.provider);
        for f in &mut version.files {
            f.commitment = Some(keys.file_commitment(&f.sha256));
            if !raw {
                f.sha256.clear();
            }
        }
        Ok(version)
    }

    /// The policy text of a version, read back from the object store and checked against its hash.
    pub fn policy_text(&self, version: &DatasetVersion) -> Result<String, StoreError> {
        let bytes = self.objects.read_verified(&version.policy_sha256)?;
        String::from_utf8(bytes).map_err(|e| StoreError::DamagedObject {
            sha256: version.policy_sha256.clone(),
            detail: format!("not UTF-8: {e}"),
        })
    }

    /// The compiled policy of a version.
    pub fn policy(&self, version: &DatasetVersion) -> Result<CompiledPolicy, StoreError> {
        let text = self.policy_text(version)?;
        let name = format!("{}@{} policy {}", version.dataset, version.version, &version.policy_sha256[..12]);
        CompiledPolicy::compile(&name, &text, &version.schema).map_err(|e: PolicyErrors| StoreError::PolicyRefused(e))
    }

    /// The first `limit` raw rows of a version, for the agency that provides it (recorded: a read of raw data).
    pub fn dataset_rows(
        &self,
        who: &Principal,
        spec: &str,
        limit: usize,
    ) -> Result<(DatasetVersion, Vec<arrow_array::RecordBatch>), StoreError> {
        let version = match self.dataset(spec) {
            Ok(v) => v,
            Err(err) => {
                self.record_refusal(who, "dataset.rows", &[format!("dataset:{spec}")], err.class(), &err.to_string())?;
                return Err(err);
            }
        };
        let objects = [format!("dataset:{}@{}", version.dataset, version.version)];
        self.authorize(who, &Action::DatasetRows { provider: &version.provider }, &objects)?;
        let mut batches = Vec::new();
        let mut left = limit;
        for path in self.data_files(&version) {
            if left == 0 {
                break;
            }
            let file = fs::File::open(&path).map_err(StoreError::io("open", &path))?;
            let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
                .and_then(|b| b.with_batch_size(left.clamp(1, 8192)).with_limit(left).build())
                .map_err(|e| StoreError::BadParquet { path: path.clone(), detail: e.to_string() })?;
            for batch in reader {
                let batch = batch.map_err(|e| StoreError::BadParquet { path: path.clone(), detail: e.to_string() })?;
                left = left.saturating_sub(batch.num_rows());
                batches.push(batch);
            }
        }
        let shown: usize = batches.iter().map(arrow_array::RecordBatch::num_rows).sum();
        self.record(&mut [crate::record::entry(who, "dataset.rows", Outcome::Ok)
            .object(objects[0].clone())
            .detail(format!("{shown} raw rows shown to the providing agency"))])?;
        Ok((version, batches))
    }

    /// The stored Parquet files of a version, in order. Read-only paths inside the zone: only the runtime reads
    /// them.
    pub fn data_files(&self, version: &DatasetVersion) -> Vec<PathBuf> {
        version.files.iter().map(|f| self.objects.path(&f.sha256)).collect()
    }

    /// Re-hashes every referenced object and lists what is damaged, unreferenced, or left in staging.
    pub fn verify(&self, who: &Principal, progress: &mut dyn Progress) -> Result<ZoneCheck, StoreError> {
        self.authorize(who, &Action::ZoneRead, &[format!("zone:{}", self.info.zone_id)])?;
        let referenced = self.catalog.referenced_objects()?;
        let mut check = ZoneCheck::default();
        progress.begin("verify", referenced.len() as u64);
        for sha in &referenced {
            match self.objects.hash_file(sha) {
                Ok(actual) if actual == *sha => {}
                Ok(actual) => check.damaged.push(format!("{sha} (content hashes to {actual})")),
                Err(e) => check.damaged.push(format!("{sha} ({e})")),
            }
            check.objects_checked += 1;
            progress.advance(1);
        }
        progress.end();
        check.unreferenced =
            self.objects.list()?.into_iter().filter(|o| referenced.binary_search(o).is_err()).collect();
        check.removed_staging = self.objects.clean_staging();
        check.leftover_staging = self.objects.leftover_staging();
        check.unreleased_products = self.unreleased_products()?;
        check.access_log = self.check_access_log()?;
        check.log_agreement = self.log_agreement()?;
        Ok(check)
    }
}

/// The `dataset.publish` entry of version `version`: the policy's hash and every file's keyed commitment (the raw
/// file's SHA-256 is for the providing agency and the inspector, who read it with `dataset show`).
fn publish_entry(
    who: &Principal,
    keys: &ZoneKeys,
    dataset: &str,
    version: u32,
    policy_sha256: &str,
    files: &[StoredFile],
) -> Entry {
    let mut e = crate::record::entry(who, "dataset.publish", Outcome::Ok)
        .object(format!("dataset:{dataset}@{version}"))
        .hash(format!("policy:sha256:{policy_sha256}"));
    for f in files {
        e = e.hash(format!("file:commitment:{}", keys.file_commitment(&f.sha256)));
    }
    e
}

fn row_count(path: &Path, shown: &Path) -> Result<u64, StoreError> {
    let file = fs::File::open(path).map_err(StoreError::io("open", path))?;
    let builder = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| StoreError::BadParquet { path: shown.to_path_buf(), detail: e.to_string() })?;
    Ok(u64::try_from(builder.metadata().file_metadata().num_rows()).unwrap_or(0))
}

fn read_info(root: &Path) -> Result<ZoneInfo, StoreError> {
    let path = root.join("zone.toml");
    let text = match fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(StoreError::NotInitialized { path: root.to_path_buf() });
        }
        Err(e) => return Err(StoreError::Io { op: "read", path, source: e }),
    };
    toml::from_str(&text).map_err(|e| {
        let at = e.span().map(|s| {
            let before = &text[..s.start.min(text.len())];
            format!(":{}:{}", before.matches('\n').count() + 1, before.rsplit('\n').next().map_or(0, str::len) + 1)
        });
        StoreError::BadSettings {
            path: path.clone(),
            problems: vec![format!("{}{}: {}", path.display(), at.unwrap_or_default(), e.message())],
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A new zone with its authority `dsb` and the taxation bureau's clerk `tax`.
    fn new_zone(root: &Path) -> (Zone, Principal) {
        let zone = Zone::init(root, "dsb", Some("data-bureau")).expect("init");
        let clerk = Principal { name: "tax".into(), role: Role::Agency, org: Some("taxation".into()) };
        zone.add_principal(&zone.actor("dsb").expect("authority"), &clerk).expect("add clerk");
        (zone, clerk)
    }

    fn fixture_request(dataset: &str) -> PublishRequest {
        PublishRequest {
            files: vec![datasets_fixtures::committed_parquet(dataset)],
            policy: datasets_fixtures::committed_policy(dataset),
            name: None,
        }
    }

    #[test]
    fn init_open_publish_read_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("z");
        let (mut zone, clerk) = new_zone(&root);
        assert!(matches!(Zone::init(&root, "dsb", None), Err(StoreError::AlreadyInitialized { .. })));
        let outcome = zone.publish(&clerk, &fixture_request("tax_credit"), &mut NoProgress).expect("publish");
        assert!(matches!(outcome, PublishOutcome::Published(_)));
        drop(zone);

        let zone = Zone::open(&root).expect("open");
        let v = zone.dataset("tax_credit@1").expect("version");
        assert_eq!(v.files.len(), 1);
        let policy = zone.policy(&v).expect("policy");
        assert_eq!(policy.release().min_group_size, 10);
        let stored = zone.data_files(&v);
        let bytes = fs::read(&stored[0]).expect("stored file");
        assert_eq!(bytes, fs::read(datasets_fixtures::committed_parquet("tax_credit")).expect("fixture"));
        assert!(fs::metadata(&stored[0]).expect("stat").permissions().readonly());
        let dsb = zone.actor("dsb").expect("authority");
        let check = zone.verify(&dsb, &mut NoProgress).expect("verify");
        assert!(check.is_healthy() && check.unreferenced.is_empty() && check.leftover_staging.is_empty());
        // The clerk may not verify the zone, and the refusal is in the log.
        assert!(matches!(zone.verify(&clerk, &mut NoProgress), Err(StoreError::Denied(_))));
        let last = zone.audit_entries(&dsb).expect("log").pop().expect("an entry");
        assert_eq!(
            (last.actor.as_str(), last.action.as_str(), last.reason.as_deref()),
            ("tax", "zone.read", Some("access.role"))
        );
    }

    #[test]
    fn dataset_references() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut zone, clerk) = new_zone(dir.path());
        assert!(matches!(zone.dataset("x"), Err(StoreError::UnknownDataset { known, .. }) if known.is_empty()));
        zone.publish(&clerk, &fixture_request("tax_credit"), &mut NoProgress).expect("publish");
        for bad in ["tax_credit@", "tax_credit@x", "@1", "tax_credit@-1"] {
            assert!(matches!(zone.dataset(bad), Err(StoreError::BadDatasetRef { .. })), "{bad}");
        }
        assert!(matches!(zone.dataset("tax_credit@2"), Err(StoreError::UnknownVersion { latest: 1, .. })));
    }

    #[test]
    fn damaged_objects_are_found() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut zone, clerk) = new_zone(dir.path());
        let v =
            zone.publish(&clerk, &fixture_request("tax_credit"), &mut NoProgress).expect("publish").version().clone();
        let path = zone.data_files(&v).remove(0);
        let mut perms = fs::metadata(&path).expect("stat").permissions();
        #[expect(clippy::permissions_set_readonly_false, reason = "the test damages a stored file on purpose")]
        perms.set_readonly(false);
        fs::set_permissions(&path, perms).expect("chmod");
        let mut bytes = fs::read(&path).expect("read");
        bytes[100] ^= 1;
        fs::write(&path, bytes).expect("write");
        let check = zone.verify(&zone.actor("dsb").expect("authority"), &mut NoProgress).expect("verify");
        assert_eq!(check.damaged.len(), 1);
        assert!(check.damaged[0].starts_with(&v.files[0].sha256));
    }

    #[cfg(unix)]
    #[test]
    fn keys_readable_by_others_are_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let zone = Zone::init(dir.path(), "dsb", None).expect("init");
        assert!(zone.keys().is_ok());
        let key = dir.path().join("keys/token.hmac.key");
        fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).expect("chmod");
        let err = zone.keys().expect_err("refused");
        assert!(err.to_string().contains("permissions 644"), "{err}");
    }

    #[test]
    fn a_killed_init_can_be_redone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("z");
        Zone::init(&root, "dsb", None).expect("init");
        // Simulate an init killed before it wrote zone.toml: our layout is there, the marker is not.
        fs::remove_file(root.join("zone.toml")).expect("remove marker");
        assert!(matches!(Zone::open(&root), Err(StoreError::NotInitialized { .. })));
        drop(new_zone(&root));
        Zone::open(&root).expect("open");

        // But a zone that holds data is never wiped, even without its zone.toml.
        let mut zone = Zone::open(&root).expect("open");
        let clerk = zone.actor("tax").expect("clerk");
        zone.publish(&clerk, &fixture_request("tax_credit"), &mut NoProgress).expect("publish");
        fs::remove_file(root.join("zone.toml")).expect("remove marker");
        assert!(matches!(Zone::init(&root, "dsb", None), Err(StoreError::NotEmpty { .. })));
        assert!(root.join("catalog.db").exists());
    }
}
