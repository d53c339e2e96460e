//! Incidents (SEED.md Art. 24): on a leak, damage or loss the authority opens an incident against an operator. It
//! suspends the operator's active grants (a running job stops within a tick: its grant watch sees the
//! suspension), freezes what is not released yet (held artifacts cannot be released while it is open; products stay
//! in the zone while the grant is suspended), and writes an evidence folder: the whole audit log as a bundle that
//! verifies offline, the operator's product manifests, its applications with their module hashes, and the log
//! entries that concern it.

use std::path::{Path, PathBuf};

use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zone_access::{Action, GrantStatus, Principal};

use crate::error::StoreError;
use crate::grants::GrantChange;
use crate::objects::sync_dir;
use crate::products::MANIFEST;
use crate::record::{IncidentState, now};
use crate::record::{json, today};
use crate::zone::Zone;

/// The folder of the zone that holds incidents' evidence, one folder per incident.
pub const INCIDENTS_DIR: &str = "incidents";

/// An incident as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Incident {
    pub id: u64,
    pub operator: String,
    pub reason: String,
    pub opened_by: String,
    pub opened_at: String,
    /// `open` or `closed`.
    pub state: IncidentState,
    pub grants_suspended: Vec<u64>,
    /// The evidence folder, and the SHA-256 of its `summary.json` (which lists every other file's hash).
    pub evidence: String,
    pub evidence_sha256: String,
    pub closed_by: Option<String>,
    pub closed_at: Option<String>,
    pub close_reason: Option<String>,
}

/// One file of an evidence folder.
#[derive(Debug, Clone, Serialize)]
struct EvidenceFile {
    name: String,
    bytes: u64,
    sha256: String,
}

impl Zone {
    /// `incident open`: suspends the operator's active grants, freezes its unreleased outputs and writes the
    /// evidence. Recorded, whether allowed or not.
    pub fn open_incident(
        &self,
        who: &Principal,
        operator: &str,
        reason: &str,
        correct_by: chrono::NaiveDate,
    ) -> Result<Incident, StoreError> {
        let objects = vec![format!("principal:{operator}")];
        let result = self.open_incident_unrecorded(who, operator, reason, correct_by);
        self.recorded(who, "incident.open", &objects, result, |i, e| {
            let mut e = e.object(format!("incident:{}", i.id)).hash(format!("evidence:sha256:{}", i.evidence_sha256));
            for g in &i.grants_suspended {
                e = e.object(format!("grant:{g}"));
            }
            e.detail(reason.trim().to_owned())
        })
    }

    fn open_incident_unrecorded(
        &self,
        who: &Principal,
        operator: &str,
        reason: &str,
        correct_by: chrono::NaiveDate,
    ) -> Result<Incident, StoreError> {
        self.permit(who, &Action::IncidentManage)?;
        let refuse = |class: &'static str, detail: String| Err(StoreError::IncidentRefused { class, detail });
        if reason.trim().is_empty() {
            return refuse("input.reason", "a reason is required (--reason)".into());
        }
        match self.principal(operator)? {
            Some(p) if p.role == zone_access::Role::Operator => {}
            _ => return refuse("incident.operator", format!("`{operator}` is not an operator of this zone")),
        }
        if self.open_incident_of(operator)?.is_some() {
            return refuse("incident.open", format!("an incident against `{operator}` is already open"));
        }
        let conn = &self.catalog().conn;
        conn.execute(
            "INSERT INTO incidents (operator, reason, opened_by, opened_at, state, grants_json, evidence, evidence_sha256)
             VALUES (?1, ?2, ?3, ?4, 'open', '[]', '', '')",
            params![operator, reason.trim(), who.name, now()],
        )
        .map_err(StoreError::catalog("record incident"))?;
        let id = u64::try_from(conn.last_insert_rowid()).unwrap_or(0);
        // Suspend first: the operator's running jobs stop while the evidence is gathered.
        let mut suspended = Vec::new();
        for g in self.all_grants()? {
            let live = matches!(g.status(today()), GrantStatus::Active | GrantStatus::NotYetValid);
            if g.operator == operator && live {
                let change = GrantChange::Suspend { reason: format!("incident {id}: {}", reason.trim()), correct_by };
                self.change_grant(who, g.id, &change)?;
                suspended.push(g.id);
            }
        }
        let folder = self.root().join(INCIDENTS_DIR).join(id.to_string());
        let evidence_sha256 = self.write_evidence(who, id, operator, reason, &suspended, &folder)?;
        let relative = format!("{INCIDENTS_DIR}/{id}");
        self.catalog()
            .conn
            .execute(
                "UPDATE incidents SET grants_json = ?2, evidence = ?3, evidence_sha256 = ?4 WHERE id = ?1",
                params![id, json(&suspended)?, relative, evidence_sha256],
            )
            .map_err(StoreError::catalog("record incident evidence"))?;
        self.incident_row(id)?.ok_or(StoreError::UnknownIncident { id })
    }

    /// Writes `incidents/<id>/` atomically: `audit-bundle.json`, `manifests/<job>.json`, `summary.json`.
    fn write_evidence(
        &self,
        who: &Principal,
        id: u64,
        operator: &str,
        reason: &str,
        suspended: &[u64],
        folder: &Path,
    ) -> Result<String, StoreError> {
        let parent = folder.parent().unwrap_or(folder).to_path_buf();
        std::fs::create_dir_all(&parent).map_err(StoreError::io("create", &parent))?;
        let staging = parent.join(format!(".staging-{id}"));
        if staging.exists() {
            std::fs::remove_dir_all(&staging).map_err(StoreError::io("remove", &staging))?;
        }
        std::fs::create_dir_all(staging.join("manifests")).map_err(StoreError::io("create", &staging))?;
        let mut files = Vec::new();
        let mut write = |name: String, bytes: &[u8]| -> Result<(), StoreError> {
            let path = staging.join(&name);
            std::fs::write(&path, bytes).map_err(StoreError::io("write", &path))?;
            std::fs::File::open(&path).and_then(|f| f.sync_all()).map_err(StoreError::io("fsync", &path))?;
            files.push(EvidenceFile { name, bytes: bytes.len() as u64, sha256: hex::encode(Sha256::digest(bytes)) });
            Ok(())
        };
        // The whole log, with its checkpoints and consistency proofs: `audit verify --bundle` checks it offline.
        let bundle = self.audit_bundle(who, None)?;
        let text = serde_json::to_vec_pretty(&bundle).map_err(|e| StoreError::BadInput { detail: e.to_string() })?;
        write("audit-bundle.json".into(), &text)?;
        // The operator's released products' signed manifests.
        let jobs = self.jobs_of(operator)?;
        for (job, state) in &jobs {
            if state == "released" {
                let path = self.products_dir().join(job.to_string()).join(MANIFEST);
                let bytes = std::fs::read(&path).map_err(StoreError::io("read", &path))?;
                write(format!("manifests/{job}.json"), &bytes)?;
            }
        }
        // Its applications and module hashes, and the log entries that concern it.
        let apps = self.apps_of(operator)?;
        let mut mine: Vec<String> = vec![format!("principal:{operator}")];
        mine.extend(apps.iter().map(|(id, _)| format!("app:{id}")));
        mine.extend(jobs.iter().map(|(id, _)| format!("job:{id}")));
        let relevant: Vec<u64> = self
            .audit_entries(who)?
            .iter()
            .filter(|e| e.actor == operator || e.objects.iter().any(|o| mine.contains(o)))
            .map(|e| e.seq)
            .collect();
        let summary = serde_json::json!({
            "format": "zone-incident-v1",
            "zone_id": self.info().zone_id,
            "incident": id,
            "operator": operator,
            "reason": reason.trim(),
            "opened_by": who.name,
            "opened_at": now(),
            "grants_suspended": suspended,
            "applications": apps.iter().map(|(id, module)| serde_json::json!({"id": id, "module_sha256": module})).collect::<Vec<_>>(),
            "jobs": jobs.iter().map(|(id, state)| serde_json::json!({"id": id, "state": state})).collect::<Vec<_>>(),
            "relevant_entries": relevant,
            "files": files,
        });
        let summary =
            serde_json::to_vec_pretty(&summary).map_err(|e| StoreError::BadInput { detail: e.to_string() })?;
        let path = staging.join("summary.json");
        std::fs::write(&path, &summary).map_err(StoreError::io("write", &path))?;
        std::fs::File::open(&path).and_then(|f| f.sync_all()).map_err(StoreError::io("fsync", &path))?;
        sync_dir(&staging.join("manifests"))?;
        sync_dir(&staging)?;
        std::fs::rename(&staging, folder).map_err(StoreError::io("rename", folder))?;
        sync_dir(&parent)?;
        Ok(hex::encode(Sha256::digest(&summary)))
    }

    fn jobs_of(&self, operator: &str) -> Result<Vec<(u64, String)>, StoreError> {
        let mut stmt = self
            .catalog()
            .conn
            .prepare("SELECT id, state FROM jobs WHERE operator = ?1 ORDER BY id")
            .map_err(StoreError::catalog("list jobs"))?;
        let rows =
            stmt.query_map([operator], |r| Ok((r.get(0)?, r.get(1)?))).map_err(StoreError::catalog("list jobs"))?;
        rows.collect::<Result<_, _>>().map_err(StoreError::catalog("list jobs"))
    }

    fn apps_of(&self, operator: &str) -> Result<Vec<(u64, String)>, StoreError> {
        let mut stmt = self
            .catalog()
            .conn
            .prepare("SELECT id, module_sha256 FROM applications WHERE operator = ?1 ORDER BY id")
            .map_err(StoreError::catalog("list applications"))?;
        let rows = stmt
            .query_map([operator], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(StoreError::catalog("list applications"))?;
        rows.collect::<Result<_, _>>().map_err(StoreError::catalog("list applications"))
    }

    /// The open incident against `operator`, if any: while it is open, nothing of the operator's is released.
    pub(crate) fn open_incident_of(&self, operator: &str) -> Result<Option<u64>, StoreError> {
        self.catalog()
            .conn
            .query_row("SELECT id FROM incidents WHERE operator = ?1 AND state = 'open'", [operator], |r| r.get(0))
            .optional()
            .map_err(StoreError::catalog("read incidents"))
    }

    /// `incident close`: the authority ends the incident (grants stay suspended until resumed). Recorded.
    pub fn close_incident(&self, who: &Principal, id: u64, reason: &str) -> Result<Incident, StoreError> {
        let objects = vec![format!("incident:{id}")];
        let close = || self.close_incident_unrecorded(who, id, reason);
        self.logged_change(who, "incident.close", &objects, close, |i, e| {
            e.object(format!("principal:{}", i.operator)).detail(reason.trim().to_owned())
        })
    }

    fn close_incident_unrecorded(&self, who: &Principal, id: u64, reason: &str) -> Result<Incident, StoreError> {
        self.permit(who, &Action::IncidentManage)?;
        let incident = self.incident_row(id)?.ok_or(StoreError::UnknownIncident { id })?;
        if reason.trim().is_empty() {
            return Err(StoreError::IncidentRefused {
                class: "input.reason",
                detail: "a reason is required (--reason)".into(),
            });
        }
        if incident.state != IncidentState::Open {
            return Err(StoreError::IncidentRefused {
                class: "incident.closed",
                detail: format!("incident {id} is already closed"),
            });
        }
        self.catalog()
            .conn
            .execute(
                "UPDATE incidents SET state = 'closed', closed_by = ?2, closed_at = ?3, close_reason = ?4 WHERE id = ?1",
                params![id, who.name, now(), reason.trim()],
            )
            .map_err(StoreError::catalog("close incident"))?;
        self.incident_row(id)?.ok_or(StoreError::UnknownIncident { id })
    }

    /// Every incident, for the authority and the inspector.
    pub fn incidents(&self, who: &Principal) -> Result<Vec<Incident>, StoreError> {
        self.authorize(who, &Action::IncidentRead, &["incident:*".to_owned()])?;
        let ids: Vec<u64> = self.catalog().ids("incidents")?;
        ids.into_iter().filter_map(|id| self.incident_row(id).transpose()).collect()
    }

    fn incident_row(&self, id: u64) -> Result<Option<Incident>, StoreError> {
        let row = self
            .catalog()
            .conn
            .query_row(
                "SELECT operator, reason, opened_by, opened_at, state, grants_json, evidence, evidence_sha256,
                        closed_by, closed_at, close_reason FROM incidents WHERE id = ?1",
                [id],
                |r| {
                    Ok((
                        (
                            r.get::<_, String>(0)?,
                            r.get::<_, String>(1)?,
                            r.get::<_, String>(2)?,
                            r.get::<_, String>(3)?,
                        ),
                        (
                            r.get::<_, String>(4)?,
                            r.get::<_, String>(5)?,
                            r.get::<_, String>(6)?,
                            r.get::<_, String>(7)?,
                        ),
                        (
                            r.get::<_, Option<String>>(8)?,
                            r.get::<_, Option<String>>(9)?,
                            r.get::<_, Option<String>>(10)?,
                        ),
                    ))
                },
            )
            .optional()
            .map_err(StoreError::catalog("read incident"))?;
        let Some((
            (operator, reason, opened_by, opened_at),
            (state, grants, evidence, evidence_sha256),
            (closed_by, closed_at, close_reason),
        )) = row
        else {
            return Ok(None);
        };
        let grants_suspended = serde_json::from_str(&grants).map_err(|e| StoreError::Catalog {
            context: format!("incident {id}: grants do not parse: {e}"),
            source: rusqlite::Error::InvalidQuery,
        })?;
        Ok(Some(Incident {
            id,
            operator,
            reason,
            opened_by,
            opened_at,
            state: IncidentState::read(&state)?,
            grants_suspended,
            evidence,
            evidence_sha256,
            closed_by,
            closed_at,
            close_reason,
        }))
    }

    /// An incident's evidence folder.
    pub fn incident_dir(&self, id: u64) -> PathBuf {
        self.root().join(INCIDENTS_DIR).join(id.to_string())
    }
}

/// The open incident's refusal, for steps that would release something of the operator's.
pub(crate) fn frozen(zone: &Zone, operator: &str) -> Result<(), StoreError> {
    match zone.open_incident_of(operator)? {
        Some(id) => Err(StoreError::IncidentRefused {
            class: "incident.frozen",
            detail: format!("incident {id} against `{operator}` is open; nothing of its is released until it closes"),
        }),
        None => Ok(()),
    }
}
