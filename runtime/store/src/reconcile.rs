//! Keeps the audit log and the catalog in agreement. A change is logged **write-ahead**: its entries are appended
//! (fsynced, signed) inside the catalog transaction, before the commit, marked `write_ahead`, and their seqs are
//! written to `applied_entries` in that same transaction. So an entry's change took effect exactly when its seq is
//! there. A process killed between the append and the commit leaves an entry that asserts a change the catalog
//! never got: the next write-ahead change (which holds the catalog's write lock, so no such change is in flight)
//! and the next open of the zone append one signed `audit.not_applied` entry naming it, once. `zone verify`
//! checks the agreement both ways.

use std::collections::BTreeSet;

use rusqlite::{OptionalExtension, params};
use zone_audit::{AuditLog, Entry, Outcome};

use crate::error::StoreError;
use crate::record::now;
use crate::zone::{LogAgreement, Zone, fail_point};

/// The action of the entry that names a write-ahead entry whose change never took effect.
pub const NOT_APPLIED: &str = "audit.not_applied";

/// How an `audit.not_applied` entry names the entry it is about.
fn entry_object(seq: u64) -> String {
    format!("entry:{seq}")
}

impl Zone {
    /// Where reconciliation reads on from: (seq, byte offset) of the first entry not yet reconciled.
    fn reconciled_mark(&self) -> Result<(u64, u64), StoreError> {
        self.catalog()
            .conn
            .query_row("SELECT next_seq, next_offset FROM audit_reconciled WHERE id = 1", [], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))
            })
            .optional()
            .map_err(StoreError::catalog("read the reconciled mark"))
            .map(|m| m.map_or((0, 0), |(s, o)| (u64::try_from(s).unwrap_or(0), u64::try_from(o).unwrap_or(0))))
    }

    fn is_applied(&self, seq: u64) -> Result<bool, StoreError> {
        self.catalog()
            .conn
            .query_row("SELECT 1 FROM applied_entries WHERE seq = ?1", [i64::try_from(seq).unwrap_or(i64::MAX)], |_| {
                Ok(())
            })
            .optional()
            .map(|r| r.is_some())
            .map_err(StoreError::catalog("read applied entries"))
    }

    /// The write-ahead entries of `scan` whose change never took effect and that no entry of `scan` names yet.
    /// Exact only under the catalog's write lock (no write-ahead change is then between its append and commit).
    fn dead_entries<'a>(&self, scan: &'a [Entry]) -> Result<Vec<&'a Entry>, StoreError> {
        let named: BTreeSet<&str> = scan
            .iter()
            .filter(|e| e.action == NOT_APPLIED)
            .flat_map(|e| e.objects.iter().map(String::as_str))
            .collect();
        let mut dead = Vec::new();
        for e in scan.iter().filter(|e| e.write_ahead) {
            if !named.contains(entry_object(e.seq).as_str()) && !self.is_applied(e.seq)? {
                dead.push(e);
            }
        }
        Ok(dead)
    }

    /// Inside an open write transaction of the catalog: appends `entries` write-ahead, after an
    /// `audit.not_applied` entry for every earlier write-ahead entry whose change never committed; ties them to
    /// this transaction (`applied_entries`) and moves the reconciled mark past them. Each entry's `seq` is set.
    pub(crate) fn append_write_ahead(&self, entries: &mut [Entry]) -> Result<(), StoreError> {
        let keys = self.keys()?;
        let time = now();
        let (mut log, _) = self.open_log(&keys, &time)?;
        let (seq, offset) = self.reconciled_mark()?;
        let scan = log.entries_from(seq, offset)?;
        let mut all: Vec<Entry> = self.dead_entries(&scan)?.into_iter().map(not_applied_entry).collect();
        let before = all.len();
        for e in entries.iter_mut() {
            e.write_ahead = true;
            if e.via.is_none() {
                e.via = self.via().map(str::to_owned);
            }
        }
        all.extend(entries.iter().cloned());
        log.append(&mut all, keys.signing(), &time)?;
        fail_point("write_ahead.after_append");
        for (mine, appended) in entries.iter_mut().zip(&all[before..]) {
            mine.seq = appended.seq;
            self.catalog()
                .conn
                .execute("INSERT INTO applied_entries (seq) VALUES (?1)", [i64::try_from(mine.seq).unwrap_or(i64::MAX)])
                .map_err(StoreError::catalog("tie the entry to its change"))?;
        }
        self.set_reconciled_mark(&log)
    }

    fn set_reconciled_mark(&self, log: &AuditLog) -> Result<(), StoreError> {
        self.catalog()
            .conn
            .execute(
                "INSERT INTO audit_reconciled (id, next_seq, next_offset) VALUES (1, ?1, ?2)
                 ON CONFLICT(id) DO UPDATE SET next_seq = excluded.next_seq, next_offset = excluded.next_offset",
                params![
                    i64::try_from(log.len()).unwrap_or(i64::MAX),
                    i64::try_from(log.end_offset()).unwrap_or(i64::MAX)
                ],
            )
            .map(|_| ())
            .map_err(StoreError::catalog("move the reconciled mark"))
    }

    /// A change the zone makes on its own (no principal acts): `change` runs inside one immediate catalog
    /// transaction and, when it changed something (`true`), `entries` are appended write-ahead before the commit.
    pub(crate) fn zone_change(
        &self,
        change: impl FnOnce() -> Result<bool, StoreError>,
        mut entries: Vec<Entry>,
    ) -> Result<bool, StoreError> {
        let conn = &self.catalog().conn;
        conn.execute_batch("BEGIN IMMEDIATE").map_err(StoreError::catalog("begin"))?;
        let result = change().and_then(|changed| {
            if changed {
                self.append_write_ahead(&mut entries)?;
            }
            Ok(changed)
        });
        match result {
            Ok(changed) => {
                fail_point("write_ahead.before_commit");
                conn.execute_batch("COMMIT").map_err(StoreError::catalog("commit"))?;
                Ok(changed)
            }
            Err(e) => {
                let _ = conn.execute_batch("ROLLBACK");
                Err(e)
            }
        }
    }

    /// Names, once, every write-ahead entry whose change never took effect (a process killed between its append and
    /// its commit); returns their seqs. Cheap when nothing was appended since the last write-ahead change; takes
    /// the catalog's write lock only when there is something to check under it.
    pub fn reconcile(&self) -> Result<Vec<u64>, StoreError> {
        let (seq, offset) = self.reconciled_mark()?;
        if std::fs::metadata(self.root().join("audit").join(zone_audit::LOG_FILE)).is_ok_and(|m| m.len() == offset) {
            return Ok(Vec::new());
        }
        // A first look without the catalog's lock (the log's lock is never held while waiting for the catalog's).
        let unapplied = {
            let keys = self.keys()?;
            let (log, _) = self.open_log(&keys, &now())?;
            let scan = log.entries_from(seq, offset)?;
            let mut unapplied = false;
            for e in scan.iter().filter(|e| e.write_ahead) {
                unapplied |= !self.is_applied(e.seq)?;
            }
            unapplied
        };
        if !unapplied {
            return Ok(Vec::new());
        }
        let conn = &self.catalog().conn;
        conn.execute_batch("BEGIN IMMEDIATE").map_err(StoreError::catalog("begin reconciliation"))?;
        let result = (|| {
            let keys = self.keys()?;
            let time = now();
            let (mut log, _) = self.open_log(&keys, &time)?;
            let scan = log.entries_from(seq, offset)?;
            let mut named: Vec<Entry> = self.dead_entries(&scan)?.into_iter().map(not_applied_entry).collect();
            let seqs: Vec<u64> =
                named.iter().filter_map(|e| e.objects.first()).filter_map(|o| parse_object(o)).collect();
            if !named.is_empty() {
                log.append(&mut named, keys.signing(), &time)?;
            }
            self.set_reconciled_mark(&log)?;
            Ok(seqs)
        })();
        match result {
            Ok(seqs) => {
                conn.execute_batch("COMMIT").map_err(StoreError::catalog("commit reconciliation"))?;
                for s in &seqs {
                    tracing::warn!(entry = s, "a logged change never took effect; recorded as audit.not_applied");
                }
                Ok(seqs)
            }
            Err(e) => {
                let _ = conn.execute_batch("ROLLBACK");
                Err(e)
            }
        }
    }

    /// The agreement of the log and the catalog, both ways: every write-ahead entry is applied or named as not
    /// applied, and every applied seq is a write-ahead entry of the log.
    pub(crate) fn log_agreement(&self) -> Result<LogAgreement, StoreError> {
        let entries = self.audit_entries_unchecked()?;
        let mut report = LogAgreement::default();
        let named: BTreeSet<u64> = entries
            .iter()
            .filter(|e| e.action == NOT_APPLIED)
            .flat_map(|e| e.objects.iter().filter_map(|o| parse_object(o)))
            .collect();
        let applied: BTreeSet<u64> = {
            let mut stmt = self
                .catalog()
                .conn
                .prepare("SELECT seq FROM applied_entries ORDER BY seq")
                .map_err(StoreError::catalog("read applied entries"))?;
            let rows = stmt
                .query_map([], |r| r.get::<_, i64>(0))
                .map_err(StoreError::catalog("read applied entries"))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(StoreError::catalog("read applied entries"))?;
            rows.into_iter().filter_map(|s| u64::try_from(s).ok()).collect()
        };
        for e in entries.iter().filter(|e| e.write_ahead) {
            report.write_ahead_entries += 1;
            match (applied.contains(&e.seq), named.contains(&e.seq)) {
                (true, false) => {}
                (false, true) => report.not_applied += 1,
                (true, true) => {
                    report.first_disagreement.get_or_insert_with(|| {
                        format!(
                            "entry {} ({}) is applied in the catalog and also named as not applied",
                            e.seq, e.action
                        )
                    });
                }
                (false, false) => {
                    report.first_disagreement.get_or_insert_with(|| {
                        format!(
                            "entry {} ({} by {}) asserts a change the catalog does not have, and no entry says so",
                            e.seq, e.action, e.actor
                        )
                    });
                }
            }
        }
        for seq in &applied {
            let logged = entries.get(usize::try_from(*seq).unwrap_or(usize::MAX)).is_some_and(|e| e.write_ahead);
            if !logged {
                report.first_disagreement.get_or_insert_with(|| {
                    format!("the catalog records a change under entry {seq}, which the log does not have as such")
                });
            }
        }
        Ok(report)
    }
}

fn parse_object(o: &str) -> Option<u64> {
    o.strip_prefix("entry:")?.parse().ok()
}

/// The entry that says write-ahead entry `e` never took effect.
pub(crate) fn not_applied_entry(e: &Entry) -> Entry {
    let mut n =
        Entry::new(now(), "zone", "zone", NOT_APPLIED, Outcome::Ok).object(entry_object(e.seq)).detail(format!(
            "entry {} ({} by {}) did not take effect: its catalog change was never committed",
            e.seq, e.action, e.actor
        ));
    n.objects.extend(e.objects.iter().cloned());
    n
}
