//! Principals in the catalog, and the zone's side of authorization: resolve who acts, ask `zone-access`, and
//! put every refusal in the audit log.

use rusqlite::{OptionalExtension, params};
use zone_access::{Action, Principal, Role, authorize};
use zone_audit::{Entry, Outcome};

use crate::error::StoreError;
use crate::reconcile::not_applied_entry;
use crate::record::{check_name, entry, now};
use crate::zone::{Zone, fail_point};

/// Why a [`Zone::write_ahead`] change did not happen.
#[derive(Debug)]
pub(crate) enum WriteAhead {
    /// The change itself refused (nothing recorded yet: the caller records the refusal).
    Refused(StoreError),
    /// The change could not be logged or committed (what could be recorded about it was).
    NotLogged(StoreError),
}

impl From<WriteAhead> for StoreError {
    fn from(w: WriteAhead) -> StoreError {
        match w {
            WriteAhead::Refused(e) | WriteAhead::NotLogged(e) => e,
        }
    }
}

impl Zone {
    /// The principal called `name`. An unknown name is refused and the refusal recorded (someone tried).
    pub fn actor(&self, name: &str) -> Result<Principal, StoreError> {
        match self.principal(name)? {
            Some(p) => match self.require_active(&p) {
                Ok(()) => Ok(p),
                Err(err) => {
                    // A suspended or removed principal's attempt is recorded under its name.
                    self.record_refusal(
                        &p,
                        "zone.access",
                        &[format!("principal:{}", p.name)],
                        err.class(),
                        &err.to_string(),
                    )?;
                    Err(err)
                }
            },
            None => {
                let known = self.principals()?.into_iter().map(|p| p.name).collect();
                let err = StoreError::UnknownPrincipal { name: name.to_owned(), known };
                // The claimed name is input: recorded as given only when it is a well-formed name.
                let claimed = if check_name("principal", name).is_ok() { name } else { "(not a valid name)" };
                self.record(&mut [Entry::new(now(), claimed, "unknown", "zone.access", Outcome::Refused)
                    .reason(err.class())
                    .detail(format!("no principal `{claimed}` in this zone"))])?;
                Err(err)
            }
        }
    }

    /// The decision alone, without recording (for steps inside an operation that records its own outcome).
    pub(crate) fn permit(&self, who: &Principal, action: &Action<'_>) -> Result<(), StoreError> {
        authorize(who, action).map_err(StoreError::Denied)
    }

    /// The decision for a read: a refusal is recorded with the objects asked for.
    pub fn authorize(&self, who: &Principal, action: &Action<'_>, objects: &[String]) -> Result<(), StoreError> {
        if let Err(err) = self.permit(who, action) {
            self.record_refusal(who, action.name(), objects, err.class(), &err.to_string())?;
            return Err(err);
        }
        Ok(())
    }

    /// Records a refusal of `action` (a failure to record wins over the refusal).
    pub fn record_refusal(
        &self,
        who: &Principal,
        action: &str,
        objects: &[String],
        class: &str,
        detail: &str,
    ) -> Result<(), StoreError> {
        let mut e = entry(who, action, Outcome::Refused).reason(class).detail(detail);
        e.objects = objects.to_vec();
        self.record(&mut [e])
    }

    /// Records the outcome of a state change: `Ok` with what `describe` adds, or the refusal with its class.
    pub(crate) fn recorded<T>(
        &self,
        who: &Principal,
        action: &str,
        objects: &[String],
        result: Result<T, StoreError>,
        describe: impl FnOnce(&T, Entry) -> Entry,
    ) -> Result<T, StoreError> {
        let e = match &result {
            Ok(value) => {
                let mut e = entry(who, action, Outcome::Ok);
                e.objects = objects.to_vec();
                describe(value, e)
            }
            Err(err) => {
                let mut e = entry(who, action, Outcome::Refused).reason(err.class()).detail(err.to_string());
                e.objects = objects.to_vec();
                e
            }
        };
        self.record(&mut [e])?;
        result
    }

    /// Runs a state change **write-ahead** and records its outcome: see [`Zone::write_ahead`]; a refused change is
    /// rolled back and then recorded with its class, as [`Zone::recorded`] does.
    pub(crate) fn logged_change<T>(
        &self,
        who: &Principal,
        action: &str,
        objects: &[String],
        change: impl FnOnce() -> Result<T, StoreError>,
        describe: impl FnOnce(&T, Entry) -> Entry,
    ) -> Result<T, StoreError> {
        let logged = self.write_ahead(who, action, objects, change, |value| {
            let mut e = entry(who, action, Outcome::Ok);
            e.objects = objects.to_vec();
            vec![describe(value, e)]
        });
        match logged {
            Err(WriteAhead::Refused(err)) => self.recorded(who, action, objects, Err(err), |_, e| e),
            Err(WriteAhead::NotLogged(err)) => Err(err),
            Ok(value) => Ok(value),
        }
    }

    /// Runs `change` inside one immediate catalog transaction and appends `entries` (fsynced and signed) *before*
    /// that transaction commits. So no change is ever in the catalog without its entries: when they cannot be
    /// appended the change is rolled back, and a refusal saying so is attempted (it may fail too, on a failing
    /// disk; the append's error is what the caller gets). The entries are marked write-ahead and tied to the change
    /// (see [`crate::reconcile`]): when the commit fails after the append, or the process is killed before it, an
    /// `audit.not_applied` entry names each of them (now, or when the zone is next opened or changed). `who`,
    /// `action` and `objects` name the change in the refusal of a failed append.
    ///
    /// For short changes only: the catalog's write lock is held from the start of `change` to the commit.
    pub(crate) fn write_ahead<T>(
        &self,
        who: &Principal,
        action: &str,
        objects: &[String],
        change: impl FnOnce() -> Result<T, StoreError>,
        entries: impl FnOnce(&T) -> Vec<Entry>,
    ) -> Result<T, WriteAhead> {
        let conn = &self.catalog().conn;
        // IMMEDIATE: the write lock is taken (or waited for) now, so a read inside `change` cannot be overtaken
        // by another writer before this transaction writes.
        conn.execute_batch("BEGIN IMMEDIATE").map_err(|e| WriteAhead::NotLogged(StoreError::catalog("begin")(e)))?;
        let rollback =
            || conn.execute_batch("ROLLBACK").map_err(|e| WriteAhead::NotLogged(StoreError::catalog("roll back")(e)));
        let value = match change() {
            Ok(value) => value,
            Err(err) => {
                rollback()?;
                return Err(WriteAhead::Refused(err));
            }
        };
        let mut logged = entries(&value);
        let appended = if logged.is_empty() { Ok(()) } else { self.append_write_ahead(&mut logged) };
        if let Err(err) = appended {
            rollback()?;
            // Best effort: the entries may have reached the disk before the failure, and would then be signed
            // when the log is next opened. This says the change did not happen. Its own failure is not reported
            // over the first one.
            let _ = self.record_refusal(
                who,
                action,
                objects,
                "audit.append",
                &format!("rolled back: its audit entry could not be appended ({err})"),
            );
            return Err(WriteAhead::NotLogged(err));
        }
        fail_point("write_ahead.before_commit");
        if let Err(source) = conn.execute_batch("COMMIT") {
            let _ = conn.execute_batch("ROLLBACK");
            let err = StoreError::catalog("commit")(source);
            // Each entry of the change is named as not applied now; were this to fail too, the next open does it.
            let mut named: Vec<Entry> = logged.iter().map(not_applied_entry).collect();
            self.record(&mut named).map_err(WriteAhead::NotLogged)?;
            return Err(WriteAhead::NotLogged(err));
        }
        fail_point("write_ahead.after_commit");
        Ok(value)
    }

    /// A principal by name.
    pub fn principal(&self, name: &str) -> Result<Option<Principal>, StoreError> {
        let row = self
            .catalog()
            .conn
            .query_row("SELECT name, role, org FROM principals WHERE name = ?1", [name], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, Option<String>>(2)?))
            })
            .optional()
            .map_err(StoreError::catalog("read principal"))?;
        row.map(|(name, role, org)| principal_from(name, &role, org)).transpose()
    }

    /// Every principal, by name.
    pub fn principals(&self) -> Result<Vec<Principal>, StoreError> {
        let mut stmt = self
            .catalog()
            .conn
            .prepare("SELECT name, role, org FROM principals ORDER BY name")
            .map_err(StoreError::catalog("list principals"))?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, Option<String>>(2)?)))
            .map_err(StoreError::catalog("list principals"))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(StoreError::catalog("list principals"))?;
        rows.into_iter().map(|(name, role, org)| principal_from(name, &role, org)).collect()
    }

    /// Every principal, for someone allowed to list them.
    pub fn list_principals(&self, who: &Principal) -> Result<Vec<Principal>, StoreError> {
        self.authorize(who, &Action::PrincipalList, &[])?;
        self.principals()
    }

    /// Adds a principal (the authority's act). Agencies and operators need their organisation.
    pub fn add_principal(&self, who: &Principal, new: &Principal) -> Result<(), StoreError> {
        let objects = [format!("principal:{}", new.name)];
        self.logged_change(
            who,
            "principal.add",
            &objects,
            || self.add_principal_unrecorded(who, new),
            |_, e| e.detail(format!("role {}, organisation {}", new.role, new.org.as_deref().unwrap_or("-"))),
        )
    }

    fn add_principal_unrecorded(&self, who: &Principal, new: &Principal) -> Result<(), StoreError> {
        self.permit(who, &Action::PrincipalAdd)?;
        self.insert_principal(new, &who.name)
    }

    pub(crate) fn insert_principal(&self, new: &Principal, created_by: &str) -> Result<(), StoreError> {
        check_name("principal", &new.name)?;
        match (&new.role, &new.org) {
            (Role::Agency | Role::Operator, None) => {
                return Err(StoreError::BadInput {
                    detail: format!(
                        "{} `{}` needs --org: {}",
                        new.role,
                        new.name,
                        if new.role == Role::Agency {
                            "the provider name its datasets' policies carry"
                        } else {
                            "the operator's company"
                        }
                    ),
                });
            }
            (_, Some(org)) => check_name("organisation", org)?,
            _ => {}
        }
        if self.principal(&new.name)?.is_some() {
            return Err(StoreError::PrincipalExists { name: new.name.clone() });
        }
        self.catalog()
            .conn
            .execute(
                "INSERT INTO principals (name, role, org, created_by, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![new.name, new.role.name(), new.org, created_by, now()],
            )
            .map_err(StoreError::catalog("record principal"))?;
        Ok(())
    }
}

pub(crate) fn principal_from(name: String, role: &str, org: Option<String>) -> Result<Principal, StoreError> {
    let role = Role::from_name(role).ok_or_else(|| StoreError::Catalog {
        context: format!("principal `{name}` has an unknown role `{role}`"),
        source: rusqlite::Error::InvalidQuery,
    })?;
    Ok(Principal { name, role, org })
}
