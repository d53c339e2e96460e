//! The catalog: a SQLite database in WAL mode (through rusqlite, with SQLite bundled) holding datasets and
//! their immutable versions. Schema changes are numbered migrations keyed on `PRAGMA user_version`.

use std::path::Path;

use arrow_schema::Schema;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use serde::{Deserialize, Serialize};

use crate::error::StoreError;

/// The migrations, in order; `user_version` is the number applied.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE datasets (
    name        TEXT PRIMARY KEY,
    provider    TEXT NOT NULL,
    created_at  TEXT NOT NULL
) STRICT;
CREATE TABLE dataset_versions (
    dataset        TEXT NOT NULL REFERENCES datasets(name),
    version        INTEGER NOT NULL,
    policy_sha256  TEXT NOT NULL,
    schema_json    TEXT NOT NULL,
    row_count      INTEGER NOT NULL,
    byte_count     INTEGER NOT NULL,
    stats_json     TEXT NOT NULL,
    published_at   TEXT NOT NULL,
    PRIMARY KEY (dataset, version)
) STRICT;
CREATE TABLE version_files (
    dataset    TEXT NOT NULL,
    version    INTEGER NOT NULL,
    ordinal    INTEGER NOT NULL,
    sha256     TEXT NOT NULL,
    byte_count INTEGER NOT NULL,
    row_count  INTEGER NOT NULL,
    PRIMARY KEY (dataset, version, ordinal),
    FOREIGN KEY (dataset, version) REFERENCES dataset_versions(dataset, version)
) STRICT;
"#,
    r#"
CREATE TABLE principals (
    name        TEXT PRIMARY KEY,
    role        TEXT NOT NULL CHECK (role IN ('authority', 'agency', 'operator', 'inspector')),
    org         TEXT,
    created_by  TEXT NOT NULL,
    created_at  TEXT NOT NULL
) STRICT;
CREATE TABLE grants (
    id            INTEGER PRIMARY KEY,
    operator      TEXT NOT NULL REFERENCES principals(name),
    scope_json    TEXT NOT NULL,
    valid_from    TEXT NOT NULL,
    valid_to      TEXT NOT NULL,
    state_json    TEXT NOT NULL,
    terms_sha256  TEXT,
    created_by    TEXT NOT NULL,
    created_at    TEXT NOT NULL
) STRICT;
CREATE TABLE applications (
    id               INTEGER PRIMARY KEY,
    operator         TEXT NOT NULL REFERENCES principals(name),
    grant_id         INTEGER NOT NULL REFERENCES grants(id),
    module_sha256    TEXT NOT NULL,
    module_bytes     INTEGER NOT NULL,
    artifact_sha256  TEXT NOT NULL,
    datasets_json    TEXT NOT NULL,
    params_json      TEXT NOT NULL,
    output_json      TEXT NOT NULL,
    domain           TEXT NOT NULL,
    purpose          TEXT NOT NULL,
    mode             TEXT NOT NULL,
    notes_sha256     TEXT,
    rejected         INTEGER NOT NULL DEFAULT 0,
    submitted_at     TEXT NOT NULL
) STRICT;
CREATE TABLE decisions (
    app             INTEGER NOT NULL REFERENCES applications(id),
    seq             INTEGER NOT NULL,
    principal       TEXT NOT NULL,
    role            TEXT NOT NULL,
    party           TEXT NOT NULL,
    decision        TEXT NOT NULL CHECK (decision IN ('approve', 'reject')),
    reason          TEXT NOT NULL,
    binding_sha256  TEXT NOT NULL,
    binding_json    TEXT NOT NULL,
    time            TEXT NOT NULL,
    PRIMARY KEY (app, seq)
) STRICT;
"#,
    // 3: job runs. A run that was refused before it started is only in the audit log; every run that started has
    // a row, whatever its end.
    r#"
CREATE TABLE jobs (
    id               INTEGER PRIMARY KEY,
    app              INTEGER NOT NULL REFERENCES applications(id),
    operator         TEXT NOT NULL REFERENCES principals(name),
    state            TEXT NOT NULL CHECK (state IN ('running', 'released', 'failed')),
    binding_json     TEXT NOT NULL,
    started_at       TEXT NOT NULL,
    finished_at      TEXT,
    error_class      TEXT,
    error_detail     TEXT,
    stats_json       TEXT,
    manifest_sha256  TEXT,
    diagnostics_json TEXT
) STRICT;
"#,
    r#"
CREATE TABLE artifacts (
    id               INTEGER PRIMARY KEY,
    job              INTEGER NOT NULL REFERENCES jobs(id),
    name             TEXT NOT NULL,
    sha256           TEXT NOT NULL,
    bytes            INTEGER NOT NULL,
    state            TEXT NOT NULL CHECK (state IN ('held', 'released', 'rejected')),
    held_at          TEXT NOT NULL,
    decided_at       TEXT,
    manifest_sha256  TEXT,
    UNIQUE (job, name)
) STRICT;
CREATE TABLE artifact_decisions (
    artifact    INTEGER NOT NULL REFERENCES artifacts(id),
    provider    TEXT NOT NULL,
    agency      TEXT NOT NULL REFERENCES principals(name),
    decision    TEXT NOT NULL CHECK (decision IN ('release', 'reject')),
    reason      TEXT NOT NULL,
    decided_at  TEXT NOT NULL,
    PRIMARY KEY (artifact, provider)
) STRICT;
"#,
    // 5: complaints (Art. 25). The subject is kept only as a keyed token.
    r#"
CREATE TABLE complaints (
    id               INTEGER PRIMARY KEY,
    dataset          TEXT NOT NULL REFERENCES datasets(name),
    subject_token    TEXT NOT NULL,
    evidence_sha256  TEXT NOT NULL,
    filed_by         TEXT NOT NULL REFERENCES principals(name),
    filed_at         TEXT NOT NULL,
    state            TEXT NOT NULL CHECK (state IN ('open', 'resolved')),
    resolution       TEXT CHECK (resolution IN ('withdraw', 'suspend', 'reprocess', 'dismiss')),
    reason           TEXT,
    resolved_by      TEXT,
    resolved_at      TEXT,
    new_version      INTEGER,
    rows_withdrawn   INTEGER,
    outcome_json     TEXT
) STRICT;
CREATE TABLE withdrawn_versions (
    dataset    TEXT NOT NULL,
    version    INTEGER NOT NULL,
    complaint  INTEGER NOT NULL REFERENCES complaints(id),
    PRIMARY KEY (dataset, version, complaint)
) STRICT;
"#,
    // 6: incidents (Art. 24).
    r#"
CREATE TABLE incidents (
    id               INTEGER PRIMARY KEY,
    operator         TEXT NOT NULL REFERENCES principals(name),
    reason           TEXT NOT NULL,
    opened_by        TEXT NOT NULL,
    opened_at        TEXT NOT NULL,
    state            TEXT NOT NULL CHECK (state IN ('open', 'closed')),
    grants_json      TEXT NOT NULL,
    evidence         TEXT NOT NULL,
    evidence_sha256  TEXT NOT NULL,
    closed_by        TEXT,
    closed_at        TEXT,
    close_reason     TEXT
) STRICT;
"#,
    // 7: the HTTPS API's durable job queue. SQLite cannot change a CHECK constraint in place, so the table is
    // rebuilt (foreign keys are off during migrations and checked before the commit).
    r#"
CREATE TABLE jobs_v7 (
    id               INTEGER PRIMARY KEY,
    app              INTEGER NOT NULL REFERENCES applications(id),
    operator         TEXT NOT NULL REFERENCES principals(name),
    state            TEXT NOT NULL
                     CHECK (state IN ('queued', 'running', 'released', 'failed', 'refused', 'cancelled')),
    binding_json     TEXT NOT NULL,
    started_at       TEXT NOT NULL,
    finished_at      TEXT,
    error_class      TEXT,
    error_detail     TEXT,
    stats_json       TEXT,
    manifest_sha256  TEXT,
    diagnostics_json TEXT,
    queued_at        TEXT,
    attempts         INTEGER NOT NULL DEFAULT 1,
    batch_rows       INTEGER,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    via              TEXT
) STRICT;
INSERT INTO jobs_v7 (id, app, operator, state, binding_json, started_at, finished_at, error_class, error_detail,
                     stats_json, manifest_sha256, diagnostics_json)
    SELECT id, app, operator, state, binding_json, started_at, finished_at, error_class, error_detail, stats_json,
           manifest_sha256, diagnostics_json FROM jobs;
DROP TABLE jobs;
ALTER TABLE jobs_v7 RENAME TO jobs;
CREATE INDEX jobs_by_state ON jobs(state, id);
"#,
    // 8: the run settings an application is approved with (batch size, partitions): what the guest sees
    r#"
ALTER TABLE applications ADD COLUMN run_json TEXT;
"#,
    // 9: identity — a principal can be suspended or removed; each organisation's client CAs (pinned by the SHA-256 of
    // their public key); certificates issued or revoked.
    r#"
ALTER TABLE principals ADD COLUMN state TEXT NOT NULL DEFAULT 'active'
    CHECK (state IN ('active', 'suspended', 'removed'));
ALTER TABLE principals ADD COLUMN state_reason TEXT;
ALTER TABLE principals ADD COLUMN state_by TEXT;
ALTER TABLE principals ADD COLUMN state_at TEXT;
CREATE TABLE trust_anchors (
    org         TEXT NOT NULL,
    key_sha256  TEXT NOT NULL CHECK (length(key_sha256) = 64),
    subject     TEXT NOT NULL,
    cert_pem    TEXT NOT NULL,
    added_by    TEXT NOT NULL,
    added_at    TEXT NOT NULL,
    PRIMARY KEY (org, key_sha256)
) STRICT;
CREATE TABLE certificates (
    sha256      TEXT PRIMARY KEY CHECK (length(sha256) = 64),
    principal   TEXT,
    not_after   TEXT,
    issued_by   TEXT,
    issued_at   TEXT,
    revoked_by  TEXT,
    revoked_at  TEXT,
    reason      TEXT
) STRICT;
"#,
    // 10: the privacy budget ledger of dp runs (never deleted from: a charge is never given back).
    r#"
CREATE TABLE privacy_ledger (
    id              INTEGER PRIMARY KEY,
    job             INTEGER NOT NULL REFERENCES jobs(id),
    operator        TEXT NOT NULL,
    dataset         TEXT NOT NULL,
    period          TEXT NOT NULL,
    epsilon_micros  INTEGER NOT NULL CHECK (epsilon_micros > 0),
    delta           REAL NOT NULL,
    reserved_at     TEXT NOT NULL
) STRICT;
CREATE INDEX privacy_ledger_by_dataset ON privacy_ledger (dataset, period, operator);
CREATE INDEX privacy_ledger_by_job ON privacy_ledger (job);
"#,
    // 11: the audit log tied to the catalog. A write-ahead entry's change took effect exactly when its seq is in
    // `applied_entries` (written in the change's own transaction); `audit_reconciled` is where the check for
    // entries whose change never committed reads on from.
    r#"
CREATE TABLE applied_entries (
    seq  INTEGER PRIMARY KEY
) STRICT;
CREATE TABLE audit_reconciled (
    id           INTEGER PRIMARY KEY CHECK (id = 1),
    next_seq     INTEGER NOT NULL,
    next_offset  INTEGER NOT NULL
) STRICT;
INSERT INTO audit_reconciled (id, next_seq, next_offset) VALUES (1, 0, 0);
"#,
];

/// Quality figures of one column, computed at publish time without keeping any value (Art. 16).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ColumnStats {
    pub column: String,
    pub nulls: u64,
    /// For columns with a declared format: how many non-null values are well-formed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<FormatCheck>,
}

/// How many values of a declared format are valid (check digit and all).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct FormatCheck {
    pub format: String,
    pub valid: u64,
    pub invalid: u64,
}

/// One Parquet file of a version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct StoredFile {
    /// SHA-256 of the file: empty in the view of anyone but the providing agency and the inspector
    /// ([`crate::Zone::dataset_view`]).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sha256: String,
    /// The keyed commitment that product manifests carry instead (set by [`crate::Zone::dataset_view`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commitment: Option<String>,
    pub bytes: u64,
    pub rows: u64,
}

/// An immutable published version of a dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DatasetVersion {
    pub dataset: String,
    pub provider: String,
    pub version: u32,
    pub policy_sha256: String,
    /// The Arrow schema of the files (arrow's own JSON form).
    #[schemars(with = "serde_json::Value")]
    pub schema: Schema,
    pub rows: u64,
    pub bytes: u64,
    pub files: Vec<StoredFile>,
    pub stats: Vec<ColumnStats>,
    pub published_at: String,
}

/// A dataset and its latest version, for listings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DatasetSummary {
    pub name: String,
    pub provider: String,
    pub latest_version: u32,
    pub versions: u32,
    pub rows: u64,
    pub bytes: u64,
    pub files: u32,
    pub published_at: String,
}

/// A version about to be recorded.
#[derive(Debug)]
pub(crate) struct NewVersion<'a> {
    pub dataset: &'a str,
    pub provider: &'a str,
    pub policy_sha256: &'a str,
    pub schema: &'a Schema,
    pub files: &'a [StoredFile],
    pub stats: &'a [ColumnStats],
    pub published_at: &'a str,
}

#[derive(Debug)]
pub(crate) struct Catalog {
    pub(crate) conn: Connection,
}

impl Catalog {
    /// Opens (and migrates) the catalog at `path`.
    pub fn open(path: &Path) -> Result<Catalog, StoreError> {
        let conn = Connection::open(path).map_err(StoreError::catalog(format!("open {}", path.display())))?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(StoreError::catalog("enable WAL"))?;
        // FULL: a committed publish survives power loss, not only a process crash.
        conn.pragma_update(None, "synchronous", "FULL").map_err(StoreError::catalog("set synchronous"))?;
        conn.busy_timeout(std::time::Duration::from_secs(30)).map_err(StoreError::catalog("set busy timeout"))?;
        // Foreign keys are off while migrations rebuild tables (SQLite's own procedure), checked before commit.
        conn.pragma_update(None, "foreign_keys", "OFF").map_err(StoreError::catalog("disable foreign keys"))?;
        let mut catalog = Catalog { conn };
        catalog.migrate()?;
        catalog.conn.pragma_update(None, "foreign_keys", "ON").map_err(StoreError::catalog("enable foreign keys"))?;
        Ok(catalog)
    }

    fn migrate(&mut self) -> Result<(), StoreError> {
        // Up to date: no write transaction (every request of the server opens the catalog).
        let current: i64 = self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(StoreError::catalog("read schema version"))?;
        if usize::try_from(current).is_ok_and(|v| v == MIGRATIONS.len()) {
            return Ok(());
        }
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(StoreError::catalog("begin migration"))?;
        let applied: i64 = tx
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(StoreError::catalog("read schema version"))?;
        let applied = usize::try_from(applied).unwrap_or(usize::MAX);
        if applied > MIGRATIONS.len() {
            return Err(StoreError::Catalog {
                context: format!("catalog schema version {applied} is newer than this build ({})", MIGRATIONS.len()),
                source: rusqlite::Error::InvalidQuery,
            });
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(applied) {
            tx.execute_batch(sql).map_err(StoreError::catalog(format!("migration {}", i + 1)))?;
            tx.pragma_update(None, "user_version", i + 1).map_err(StoreError::catalog("record schema version"))?;
        }
        let dangling: i64 = tx
            .query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |r| r.get(0))
            .map_err(StoreError::catalog("check foreign keys after migration"))?;
        if dangling > 0 {
            return Err(StoreError::Catalog {
                context: format!("migration left {dangling} rows whose references do not resolve; nothing was changed"),
                source: rusqlite::Error::InvalidQuery,
            });
        }
        tx.commit().map_err(StoreError::catalog("commit migration"))
    }

    /// The ids of every row of `table`, in order.
    pub(crate) fn ids(&self, table: &'static str) -> Result<Vec<u64>, StoreError> {
        let context = format!("list {table}");
        let mut stmt = self
            .conn
            .prepare(&format!("SELECT id FROM {table} ORDER BY id"))
            .map_err(StoreError::catalog(context.clone()))?;
        let rows = stmt.query_map([], |r| r.get(0)).map_err(StoreError::catalog(context.clone()))?;
        rows.collect::<Result<_, _>>().map_err(StoreError::catalog(context))
    }

    pub fn dataset_names(&self) -> Result<Vec<String>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT name FROM datasets ORDER BY name")
            .map_err(StoreError::catalog("list datasets"))?;
        let rows = stmt.query_map([], |r| r.get(0)).map_err(StoreError::catalog("list datasets"))?;
        rows.collect::<Result<_, _>>().map_err(StoreError::catalog("list datasets"))
    }

    /// Which datasets of providers other than `provider` hold a file with content `sha256`: (dataset, provider).
    pub fn foreign_holders(&self, sha256: &str, provider: &str) -> Result<Vec<(String, String)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT DISTINCT d.name, d.provider FROM version_files f JOIN datasets d ON d.name = f.dataset
                 WHERE f.sha256 = ?1 AND d.provider <> ?2 ORDER BY d.name",
            )
            .map_err(StoreError::catalog("look up a file's datasets"))?;
        let rows = stmt
            .query_map([sha256, provider], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(StoreError::catalog("look up a file's datasets"))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(StoreError::catalog("look up a file's datasets"))?;
        Ok(rows)
    }

    pub fn provider(&self, dataset: &str) -> Result<Option<String>, StoreError> {
        self.conn
            .query_row("SELECT provider FROM datasets WHERE name = ?1", [dataset], |r| r.get(0))
            .optional()
            .map_err(StoreError::catalog("read dataset"))
    }

    pub fn latest_version(&self, dataset: &str) -> Result<Option<u32>, StoreError> {
        self.conn
            .query_row("SELECT MAX(version) FROM dataset_versions WHERE dataset = ?1", [dataset], |r| {
                r.get::<_, Option<u32>>(0)
            })
            .map_err(StoreError::catalog("read latest version"))
    }

    pub fn summaries(&self) -> Result<Vec<DatasetSummary>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT d.name, d.provider, v.version, (SELECT COUNT(*) FROM dataset_versions WHERE dataset = d.name),
                        v.row_count, v.byte_count,
                        (SELECT COUNT(*) FROM version_files f WHERE f.dataset = d.name AND f.version = v.version),
                        v.published_at
                 FROM datasets d JOIN dataset_versions v ON v.dataset = d.name
                 WHERE v.version = (SELECT MAX(version) FROM dataset_versions WHERE dataset = d.name)
                 ORDER BY d.name",
            )
            .map_err(StoreError::catalog("list datasets"))?;
        let rows = stmt
            .query_map([], |r| {
                Ok(DatasetSummary {
                    name: r.get(0)?,
                    provider: r.get(1)?,
                    latest_version: r.get(2)?,
                    versions: r.get(3)?,
                    rows: r.get(4)?,
                    bytes: r.get(5)?,
                    files: r.get(6)?,
                    published_at: r.get(7)?,
                })
            })
            .map_err(StoreError::catalog("list datasets"))?;
        rows.collect::<Result<_, _>>().map_err(StoreError::catalog("list datasets"))
    }

    pub fn version(&self, dataset: &str, version: u32) -> Result<Option<DatasetVersion>, StoreError> {
        let row = self
            .conn
            .query_row(
                "SELECT d.provider, v.policy_sha256, v.schema_json, v.row_count, v.byte_count, v.stats_json, v.published_at
                 FROM dataset_versions v JOIN datasets d ON d.name = v.dataset
                 WHERE v.dataset = ?1 AND v.version = ?2",
                params![dataset, version],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, u64>(3)?,
                        r.get::<_, u64>(4)?,
                        r.get::<_, String>(5)?,
                        r.get::<_, String>(6)?,
                    ))
                },
            )
            .optional()
            .map_err(StoreError::catalog("read version"))?;
        let Some((provider, policy_sha256, schema_json, rows, bytes, stats_json, published_at)) = row else {
            return Ok(None);
        };
        let damaged = |what: &str, e: serde_json::Error| StoreError::Catalog {
            context: format!("{what} of {dataset}@{version} does not parse: {e}"),
            source: rusqlite::Error::InvalidQuery,
        };
        let schema: Schema = serde_json::from_str(&schema_json).map_err(|e| damaged("schema", e))?;
        let stats: Vec<ColumnStats> = serde_json::from_str(&stats_json).map_err(|e| damaged("statistics", e))?;
        let mut stmt = self
            .conn
            .prepare("SELECT sha256, byte_count, row_count FROM version_files WHERE dataset = ?1 AND version = ?2 ORDER BY ordinal")
            .map_err(StoreError::catalog("read version files"))?;
        let files = stmt
            .query_map(params![dataset, version], |r| {
                Ok(StoredFile { sha256: r.get(0)?, commitment: None, bytes: r.get(1)?, rows: r.get(2)? })
            })
            .map_err(StoreError::catalog("read version files"))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(StoreError::catalog("read version files"))?;
        Ok(Some(DatasetVersion {
            dataset: dataset.to_owned(),
            provider,
            version,
            policy_sha256,
            schema,
            rows,
            bytes,
            files,
            stats,
            published_at,
        }))
    }

    /// Every object digest the catalog references (files, policies, grant terms, modules, compiled artifacts,
    /// security notes, artifacts held for review, complaint evidence).
    pub fn referenced_objects(&self) -> Result<Vec<String>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT sha256 FROM version_files UNION SELECT policy_sha256 FROM dataset_versions
                 UNION SELECT terms_sha256 FROM grants WHERE terms_sha256 IS NOT NULL
                 UNION SELECT module_sha256 FROM applications UNION SELECT artifact_sha256 FROM applications
                 UNION SELECT notes_sha256 FROM applications WHERE notes_sha256 IS NOT NULL
                 UNION SELECT sha256 FROM artifacts UNION SELECT evidence_sha256 FROM complaints ORDER BY 1",
            )
            .map_err(StoreError::catalog("list objects"))?;
        let rows = stmt.query_map([], |r| r.get(0)).map_err(StoreError::catalog("list objects"))?;
        rows.collect::<Result<_, _>>().map_err(StoreError::catalog("list objects"))
    }

    /// Records a new version in one transaction; returns its number. The version number is assigned inside the
    /// transaction, so concurrent publishers cannot collide. `log` is called with that number just before the
    /// commit (the audit entry, write-ahead); when it fails, nothing is committed.
    pub fn insert_version(
        &self,
        new: &NewVersion<'_>,
        log: impl FnOnce(u32) -> Result<(), StoreError>,
    ) -> Result<u32, StoreError> {
        let schema_json = serde_json::to_string(new.schema).map_err(|e| StoreError::Catalog {
            context: format!("serialize schema: {e}"),
            source: rusqlite::Error::InvalidQuery,
        })?;
        let stats_json = serde_json::to_string(new.stats).map_err(|e| StoreError::Catalog {
            context: format!("serialize statistics: {e}"),
            source: rusqlite::Error::InvalidQuery,
        })?;
        let rows: u64 = new.files.iter().map(|f| f.rows).sum();
        let bytes: u64 = new.files.iter().map(|f| f.bytes).sum();
        let tx = rusqlite::Transaction::new_unchecked(&self.conn, TransactionBehavior::Immediate)
            .map_err(StoreError::catalog("begin publish"))?;
        tx.execute(
            "INSERT INTO datasets (name, provider, created_at) VALUES (?1, ?2, ?3) ON CONFLICT(name) DO NOTHING",
            params![new.dataset, new.provider, new.published_at],
        )
        .map_err(StoreError::catalog("record dataset"))?;
        let version: u32 = tx
            .query_row(
                "SELECT COALESCE(MAX(version), 0) + 1 FROM dataset_versions WHERE dataset = ?1",
                [new.dataset],
                |r| r.get(0),
            )
            .map_err(StoreError::catalog("assign version"))?;
        tx.execute(
            "INSERT INTO dataset_versions (dataset, version, policy_sha256, schema_json, row_count, byte_count, stats_json, published_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![new.dataset, version, new.policy_sha256, schema_json, rows, bytes, stats_json, new.published_at],
        )
        .map_err(StoreError::catalog("record version"))?;
        for (ordinal, f) in new.files.iter().enumerate() {
            tx.execute(
                "INSERT INTO version_files (dataset, version, ordinal, sha256, byte_count, row_count) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![new.dataset, version, ordinal, f.sha256, f.bytes, f.rows],
            )
            .map_err(StoreError::catalog("record version file"))?;
        }
        crate::fail_point("publish.before_commit");
        log(version)?;
        crate::fail_point("write_ahead.before_commit");
        tx.commit().map_err(StoreError::catalog("commit publish"))?;
        crate::fail_point("write_ahead.after_commit");
        Ok(version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Migration 7 rebuilds `jobs` (a new CHECK and the queue's columns): a zone made before it keeps every job, and
    /// the artifacts that reference them, and afterwards the table takes queued jobs.
    #[test]
    fn the_queue_migration_keeps_jobs_and_the_rows_that_reference_them() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("catalog.db");
        {
            let conn = Connection::open(&path)?;
            conn.pragma_update(None, "foreign_keys", "ON")?;
            for (i, sql) in MIGRATIONS.iter().enumerate().take(6) {
                conn.execute_batch(sql)?;
                conn.pragma_update(None, "user_version", i + 1)?;
            }
            conn.execute_batch(
                "INSERT INTO principals VALUES ('acme', 'operator', NULL, 'dsb', 't');
                 INSERT INTO grants VALUES (1, 'acme', '{}', '2026-01-01', '2027-01-01', '{}', NULL, 'dsb', 't');
                 INSERT INTO applications (id, operator, grant_id, module_sha256, module_bytes, artifact_sha256,
                     datasets_json, params_json, output_json, domain, purpose, mode, submitted_at)
                     VALUES (1, 'acme', 1, 'm', 1, 'a', '[]', '[]', '{}', 'finance', 'p', 'reviewed', 't');
                 INSERT INTO jobs (id, app, operator, state, binding_json, started_at, finished_at)
                     VALUES (7, 1, 'acme', 'released', '{}', 't0', 't1');
                 INSERT INTO artifacts (id, job, name, sha256, bytes, state, held_at)
                     VALUES (1, 7, 'model.json', 's', 3, 'held', 't1');",
            )?;
        }
        let catalog = Catalog::open(&path)?;
        let version: i64 = catalog.conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        assert_eq!(version as usize, MIGRATIONS.len());
        let (state, started, attempts, queued): (String, String, i64, Option<String>) = catalog.conn.query_row(
            "SELECT state, started_at, attempts, queued_at FROM jobs WHERE id = 7",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )?;
        assert_eq!((state.as_str(), started.as_str(), attempts, queued), ("released", "t0", 1, None));
        let dangling: i64 =
            catalog.conn.query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |r| r.get(0))?;
        assert_eq!(dangling, 0);
        let fk: i64 = catalog.conn.query_row("PRAGMA foreign_keys", [], |r| r.get(0))?;
        assert_eq!(fk, 1, "foreign keys are enforced again after the migration");
        catalog.conn.execute(
            "INSERT INTO jobs (app, operator, state, binding_json, started_at, queued_at, attempts)
             VALUES (1, 'acme', 'queued', '{}', 't2', 't2', 0)",
            [],
        )?;
        assert!(catalog.conn.execute("UPDATE jobs SET state = 'lost' WHERE id = 7", []).is_err());
        // An artifact of a job that does not exist is still refused.
        let orphan = catalog.conn.execute(
            "INSERT INTO artifacts (job, name, sha256, bytes, state, held_at) VALUES (99, 'x', 's', 1, 'held', 't')",
            [],
        );
        assert!(orphan.is_err());
        Ok(())
    }
}
