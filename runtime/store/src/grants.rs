//! Grants in the catalog: create, change state, read — each through the authorization layer and the log.

use std::path::PathBuf;

use chrono::NaiveDate;
use rusqlite::{OptionalExtension, params};
use zone_access::{Action, Grant, GrantScope, GrantState, GrantStatus, Principal, Role};

use crate::error::StoreError;
use crate::record::{json, now, today};
use crate::zone::Zone;

/// What `grant create` asks for.
#[derive(Debug, Clone)]
pub struct NewGrant {
    pub operator: String,
    pub datasets: Vec<String>,
    pub providers: Vec<String>,
    pub domains: Vec<String>,
    pub valid_from: NaiveDate,
    pub valid_to: NaiveDate,
    /// The agreement's text, stored in the zone under its SHA-256.
    pub terms: Option<PathBuf>,
}

/// A change of a grant's state.
#[derive(Debug, Clone)]
pub enum GrantChange {
    Suspend { reason: String, correct_by: NaiveDate },
    Resume { reason: String },
    Terminate { reason: String },
}

impl GrantChange {
    fn action(&self) -> &'static str {
        match self {
            GrantChange::Suspend { .. } => "grant.suspend",
            GrantChange::Resume { .. } => "grant.resume",
            GrantChange::Terminate { .. } => "grant.terminate",
        }
    }
}

impl Zone {
    /// Records a new grant (the authority's act).
    pub fn create_grant(&self, who: &Principal, new: &NewGrant) -> Result<Grant, StoreError> {
        let objects = [format!("principal:{}", new.operator)];
        self.logged_change(
            who,
            "grant.create",
            &objects,
            || self.create_grant_unrecorded(who, new),
            |g, mut e| {
                e.objects.insert(0, format!("grant:{}", g.id));
                for d in &g.scope.datasets {
                    e = e.object(format!("dataset:{d}"));
                }
                for p in &g.scope.providers {
                    e = e.object(format!("provider:{p}"));
                }
                if let Some(t) = &g.terms_sha256 {
                    e = e.hash(format!("terms:sha256:{t}"));
                }
                e.detail(format!("domains {}; {} to {}", g.scope.domains.join(", "), g.valid_from, g.valid_to))
            },
        )
    }

    fn create_grant_unrecorded(&self, who: &Principal, new: &NewGrant) -> Result<Grant, StoreError> {
        self.permit(who, &Action::GrantManage)?;
        let mut problems = Vec::new();
        match self.principal(&new.operator)? {
            Some(p) if p.role == Role::Operator => {}
            Some(p) => problems.push(format!("`{}` is {}, not an operator", p.name, p.role)),
            None => problems.push(format!("no principal `{}` (add it with `principal add`)", new.operator)),
        }
        if new.datasets.is_empty() && new.providers.is_empty() {
            problems.push("name the data: --datasets NAME,... or --providers NAME,...".to_owned());
        }
        let known = self.catalog().dataset_names()?;
        for d in &new.datasets {
            if !known.contains(d) {
                problems.push(format!("no dataset `{d}` (known: {})", known.join(", ")));
            }
        }
        let providers = self.known_providers()?;
        for p in &new.providers {
            if !providers.contains(p) {
                problems.push(format!(
                    "no provider `{p}`: no dataset and no agency has it (known: {})",
                    providers.join(", ")
                ));
            }
        }
        if new.domains.is_empty() {
            problems.push("name at least one domain with --domains".to_owned());
        }
        for d in &new.domains {
            if policies::Domain::from_name(d).is_none() {
                let all: Vec<&str> = policies::Domain::ALL.iter().map(|d| d.name()).collect();
                problems.push(format!("`{d}` is not a domain (one of: {})", all.join(", ")));
            }
        }
        if new.valid_to < new.valid_from {
            problems.push(format!("--to {} is before --from {}", new.valid_to, new.valid_from));
        }
        if !problems.is_empty() {
            return Err(StoreError::BadGrant { problems });
        }
        let terms_sha256 = match &new.terms {
            Some(path) => {
                let bytes = std::fs::read(path).map_err(|e| match e.kind() {
                    std::io::ErrorKind::NotFound => StoreError::MissingFile { path: path.clone() },
                    _ => StoreError::Io { op: "read", path: path.clone(), source: e },
                })?;
                let staged = self.objects().stage_bytes(&bytes)?;
                let sha = staged.sha256.clone();
                self.objects().commit(staged)?;
                Some(sha)
            }
            None => None,
        };
        let scope = GrantScope {
            datasets: new.datasets.clone(),
            providers: new.providers.clone(),
            domains: new.domains.clone(),
        };
        let created_at = now();
        let conn = &self.catalog().conn;
        conn.execute(
            "INSERT INTO grants (operator, scope_json, valid_from, valid_to, state_json, terms_sha256, created_by, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                new.operator,
                json(&scope)?,
                new.valid_from.to_string(),
                new.valid_to.to_string(),
                json(&GrantState::Active)?,
                terms_sha256,
                who.name,
                created_at
            ],
        )
        .map_err(StoreError::catalog("record grant"))?;
        let id = u64::try_from(conn.last_insert_rowid()).unwrap_or(0);
        self.grant_by_id(id)?.ok_or(StoreError::UnknownGrant { id })
    }

    /// Suspends, resumes or terminates a grant (the authority's act). A terminated grant never changes again.
    pub fn change_grant(&self, who: &Principal, id: u64, change: &GrantChange) -> Result<Grant, StoreError> {
        let objects = [format!("grant:{id}")];
        self.logged_change(
            who,
            change.action(),
            &objects,
            || self.change_grant_unrecorded(who, id, change),
            |g, e| {
                let e = e.object(format!("principal:{}", g.operator));
                match change {
                    GrantChange::Suspend { reason, correct_by } => {
                        e.detail(format!("{reason}; to be corrected by {correct_by}"))
                    }
                    GrantChange::Resume { reason } | GrantChange::Terminate { reason } => e.detail(reason.clone()),
                }
            },
        )
    }

    fn change_grant_unrecorded(&self, who: &Principal, id: u64, change: &GrantChange) -> Result<Grant, StoreError> {
        self.permit(who, &Action::GrantManage)?;
        let grant = self.grant_by_id(id)?.ok_or(StoreError::UnknownGrant { id })?;
        let status = grant.status(today());
        let refuse = |detail: String| Err(StoreError::GrantState { id, detail });
        let reason_of = |c: &GrantChange| match c {
            GrantChange::Suspend { reason, .. }
            | GrantChange::Resume { reason }
            | GrantChange::Terminate { reason } => reason.trim().to_owned(),
        };
        if reason_of(change).is_empty() {
            return refuse("a reason is required (--reason)".to_owned());
        }
        let state = match (change, &grant.state) {
            (_, GrantState::Terminated { .. }) => {
                return refuse("it is terminated; a terminated grant never changes".into());
            }
            (GrantChange::Suspend { correct_by, .. }, _) if *correct_by < today() => {
                return refuse(format!("the correction deadline {correct_by} is in the past"));
            }
            (GrantChange::Suspend { reason, correct_by }, _) if status != GrantStatus::Expired => {
                GrantState::Suspended { reason: reason.clone(), correct_by: *correct_by }
            }
            (GrantChange::Suspend { .. }, _) => return refuse("it is expired; there is nothing to suspend".into()),
            (GrantChange::Resume { .. }, GrantState::Suspended { .. }) => GrantState::Active,
            (GrantChange::Resume { .. }, _) => return refuse(format!("it is {}, not suspended", status.name())),
            (GrantChange::Terminate { reason }, _) => GrantState::Terminated { reason: reason.clone() },
        };
        self.catalog()
            .conn
            .execute("UPDATE grants SET state_json = ?1 WHERE id = ?2", params![json(&state)?, id])
            .map_err(StoreError::catalog("update grant"))?;
        self.grant_by_id(id)?.ok_or(StoreError::UnknownGrant { id })
    }

    /// One grant, for someone allowed to read it.
    pub fn grant(&self, who: &Principal, id: u64) -> Result<Grant, StoreError> {
        let objects = [format!("grant:{id}")];
        let Some(grant) = self.grant_by_id(id)? else {
            let err = StoreError::UnknownGrant { id };
            self.record_refusal(who, "grant.read", &objects, err.class(), &err.to_string())?;
            return Err(err);
        };
        let providers = self.grant_providers(&grant)?;
        self.authorize(who, &Action::GrantRead { operator: &grant.operator, providers: &providers }, &objects)?;
        Ok(grant)
    }

    /// The grants `who` may read (all of them for the authority and the inspector).
    pub fn grants(&self, who: &Principal) -> Result<Vec<Grant>, StoreError> {
        let mut out = Vec::new();
        for g in self.all_grants()? {
            let providers = self.grant_providers(&g)?;
            if self.permit(who, &Action::GrantRead { operator: &g.operator, providers: &providers }).is_ok() {
                out.push(g);
            }
        }
        Ok(out)
    }

    /// The providers whose data a grant reaches: those it names and those of the datasets it names.
    pub(crate) fn grant_providers(&self, grant: &Grant) -> Result<Vec<String>, StoreError> {
        let mut providers = grant.scope.providers.clone();
        for d in &grant.scope.datasets {
            if let Some(p) = self.catalog().provider(d)?
                && !providers.contains(&p)
            {
                providers.push(p);
            }
        }
        Ok(providers)
    }

    /// Every provider the zone knows: of a dataset, or an agency's organisation.
    fn known_providers(&self) -> Result<Vec<String>, StoreError> {
        let mut stmt = self
            .catalog()
            .conn
            .prepare(
                "SELECT provider FROM datasets UNION SELECT org FROM principals WHERE role = 'agency' AND org IS NOT NULL
                 ORDER BY 1",
            )
            .map_err(StoreError::catalog("list providers"))?;
        let rows = stmt.query_map([], |r| r.get(0)).map_err(StoreError::catalog("list providers"))?;
        rows.collect::<Result<_, _>>().map_err(StoreError::catalog("list providers"))
    }

    pub(crate) fn all_grants(&self) -> Result<Vec<Grant>, StoreError> {
        let mut stmt = self
            .catalog()
            .conn
            .prepare(&format!("{GRANT_COLUMNS} ORDER BY id"))
            .map_err(StoreError::catalog("list grants"))?;
        let rows = stmt
            .query_map([], grant_row)
            .map_err(StoreError::catalog("list grants"))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(StoreError::catalog("list grants"))?;
        rows.into_iter().map(grant_from).collect()
    }

    pub(crate) fn grant_by_id(&self, id: u64) -> Result<Option<Grant>, StoreError> {
        let row = self
            .catalog()
            .conn
            .query_row(&format!("{GRANT_COLUMNS} WHERE id = ?1"), [id], grant_row)
            .optional()
            .map_err(StoreError::catalog("read grant"))?;
        row.map(grant_from).transpose()
    }
}

/// Whether a running job's grant still covers it, checked from a thread of its own (with its own read-only
/// connection to the catalog) while the job runs: a suspension, a termination or the end date stops the run.
#[derive(Debug)]
pub struct GrantWatch {
    conn: rusqlite::Connection,
    job: u64,
    grant: u64,
    /// (dataset, provider) of every dataset the job reads.
    datasets: Vec<(String, String)>,
    domain: String,
    /// The operator running it: a suspension or removal of the principal stops the run too.
    operator: String,
}

/// Why a watched run must stop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchStop {
    /// The grant no longer covers the job (why).
    Grant(String),
    /// The operator cancelled the job (`job cancel`).
    Cancelled,
}

impl GrantWatch {
    /// `Err` says why the run must stop: the operator cancelled it, or the grant no longer covers it.
    pub fn check(&self) -> Result<(), WatchStop> {
        let cancelled: Option<i64> = self
            .conn
            .query_row("SELECT cancel_requested FROM jobs WHERE id = ?1", [self.job], |r| r.get(0))
            .optional()
            .map_err(|e| WatchStop::Grant(format!("job {} cannot be read: {e}", self.job)))?;
        if cancelled.unwrap_or(0) != 0 {
            return Err(WatchStop::Cancelled);
        }
        self.check_grant().map_err(WatchStop::Grant)
    }

    fn check_grant(&self) -> Result<(), String> {
        let standing: Option<String> = self
            .conn
            .query_row("SELECT state FROM principals WHERE name = ?1", [&self.operator], |r| r.get(0))
            .optional()
            .map_err(|e| format!("operator `{}` cannot be read: {e}", self.operator))?;
        match standing.as_deref() {
            Some("active") => {}
            Some(other) => return Err(format!("operator `{}` is {other}", self.operator)),
            None => return Err(format!("operator `{}` is not a principal", self.operator)),
        }
        let row = self
            .conn
            .query_row(&format!("{GRANT_COLUMNS} WHERE id = ?1"), [self.grant], grant_row)
            .map_err(|e| format!("grant {} cannot be read: {e}", self.grant))?;
        let grant = grant_from(row).map_err(|e| e.to_string())?;
        for (dataset, provider) in &self.datasets {
            grant.covers(dataset, provider, &self.domain, today())?;
        }
        Ok(())
    }
}

impl GrantWatch {
    /// A watch of job `job` (by `operator`, under `grant`, reading `datasets` as (dataset, provider) for `domain`), on
    /// a read-only connection of its own to the catalog at `catalog`.
    pub(crate) fn open(
        catalog: &std::path::Path,
        job: u64,
        grant: u64,
        datasets: Vec<(String, String)>,
        domain: String,
        operator: String,
    ) -> Result<GrantWatch, StoreError> {
        let conn = rusqlite::Connection::open_with_flags(
            catalog,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(StoreError::catalog(format!("open {} to watch the grant", catalog.display())))?;
        conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(StoreError::catalog("set busy timeout"))?;
        Ok(GrantWatch { conn, job, grant, datasets, domain, operator })
    }
}

const GRANT_COLUMNS: &str = "SELECT id, operator, scope_json, valid_from, valid_to, state_json, terms_sha256, created_by, created_at FROM grants";

type GrantRow = (u64, String, String, String, String, String, Option<String>, String, String);

fn grant_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<GrantRow> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?, r.get(8)?))
}

fn grant_from(row: GrantRow) -> Result<Grant, StoreError> {
    let (id, operator, scope, from, to, state, terms_sha256, created_by, created_at) = row;
    let damaged = |what: &str, detail: String| StoreError::Catalog {
        context: format!("grant {id}: {what} does not parse: {detail}"),
        source: rusqlite::Error::InvalidQuery,
    };
    Ok(Grant {
        id,
        operator,
        scope: serde_json::from_str(&scope).map_err(|e| damaged("scope", e.to_string()))?,
        valid_from: from.parse().map_err(|e: chrono::ParseError| damaged("valid_from", e.to_string()))?,
        valid_to: to.parse().map_err(|e: chrono::ParseError| damaged("valid_to", e.to_string()))?,
        state: serde_json::from_str(&state).map_err(|e| damaged("state", e.to_string()))?,
        terms_sha256,
        created_by,
        created_at,
    })
}
