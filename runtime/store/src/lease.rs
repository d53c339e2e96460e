//! What a process holds while it lives, and the clean-up of what dead processes left. A local run holds a lease —
//! an exclusive lock on `runs/job-N.lease`, which the kernel releases when the process ends, however it ends — from
//! before its `job.start` commits until it has recorded its end. Opening the zone ends every local run still
//! `running` whose lease nobody holds: `job.interrupted` is logged write-ahead with the state change, and the
//! product folder it may have written (never released) is removed. A `dp` run's charge stays spent: it was
//! charged before any row was read.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

use rusqlite::params;
use zone_audit::{Entry, Outcome};

use crate::error::StoreError;
use crate::record::now;
use crate::zone::Zone;

/// The class and state detail of a local run whose process ended before the run did.
pub const INTERRUPTED: &str = "job.interrupted";

/// The lease of one local run: held (locked) until dropped.
#[derive(Debug)]
pub struct RunLease {
    _file: File,
}

/// Whether a lease is held by a live process.
enum LeaseState {
    Held,
    /// Nobody holds it: the lock is now ours while the file lives (`None`: there is no lease file).
    Free(Option<File>),
}

fn lease_state(path: &Path) -> Result<LeaseState, StoreError> {
    let file = match OpenOptions::new().write(true).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(LeaseState::Free(None)),
        Err(e) => return Err(StoreError::io("open lease", path)(e)),
    };
    match file.try_lock() {
        Ok(()) => Ok(LeaseState::Free(Some(file))),
        Err(TryLockError::WouldBlock) => Ok(LeaseState::Held),
        Err(TryLockError::Error(e)) => Err(StoreError::io("lock lease", path)(e)),
    }
}

impl Zone {
    fn runs_dir(&self) -> PathBuf {
        self.root().join("runs")
    }

    fn lease_path(&self, job: u64) -> PathBuf {
        self.runs_dir().join(format!("job-{job}.lease"))
    }

    /// Takes the lease of local run `job` (inside the transaction that records it as running).
    pub(crate) fn take_run_lease(&self, job: u64) -> Result<RunLease, StoreError> {
        let dir = self.runs_dir();
        fs::create_dir_all(&dir).map_err(StoreError::io("create directory", &dir))?;
        let path = self.lease_path(job);
        let file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&path)
            .map_err(StoreError::io("create lease", &path))?;
        file.try_lock().map_err(|e| StoreError::BadInput {
            detail: format!("the lease of job {job} ({}) is held by another process: {e}", path.display()),
        })?;
        Ok(RunLease { _file: file })
    }

    /// Ends every local run still `running` whose process is gone: records `job.interrupted` write-ahead with the
    /// state change, removes any product folder it wrote, and its lease file. Returns the jobs ended.
    pub fn end_interrupted_runs(&self) -> Result<Vec<u64>, StoreError> {
        let running: Vec<u64> = {
            let mut stmt = self
                .catalog()
                .conn
                .prepare("SELECT id FROM jobs WHERE state = 'running' AND queued_at IS NULL ORDER BY id")
                .map_err(StoreError::catalog("list running jobs"))?;
            let rows = stmt.query_map([], |r| r.get(0)).map_err(StoreError::catalog("list running jobs"))?;
            rows.collect::<Result<_, _>>().map_err(StoreError::catalog("list running jobs"))?
        };
        let mut ended = Vec::new();
        for job in running {
            // A lease held is a live run; a missing one is a run from before leases, whose process is long gone.
            let LeaseState::Free(lease) = lease_state(&self.lease_path(job))? else { continue };
            if self.end_interrupted(job)? {
                ended.push(job);
            }
            drop(lease);
            let _ = fs::remove_file(self.lease_path(job));
        }
        // Lease files of runs that ended (theirs is no longer needed once the end is recorded).
        if let Ok(dir) = fs::read_dir(self.runs_dir()) {
            for f in dir.flatten() {
                let path = f.path();
                let job = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .and_then(|n| n.strip_prefix("job-")?.strip_suffix(".lease")?.parse::<u64>().ok());
                // A lease younger than a minute may be one a starting run has just created and not yet locked.
                let settled = f
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|age| age.as_secs() >= 60);
                if let Some(job) = job
                    && settled
                    && !self.job_is_running(job)?
                    && let Ok(LeaseState::Free(Some(_lock))) = lease_state(&path)
                {
                    let _ = fs::remove_file(&path);
                }
            }
        }
        Ok(ended)
    }

    fn job_is_running(&self, job: u64) -> Result<bool, StoreError> {
        let n: i64 = self
            .catalog()
            .conn
            .query_row("SELECT count(*) FROM jobs WHERE id = ?1 AND state = 'running'", [job], |r| r.get(0))
            .map_err(StoreError::catalog("read job"))?;
        Ok(n > 0)
    }

    /// One interrupted run ended, write-ahead; `false` when it had ended meanwhile.
    fn end_interrupted(&self, job: u64) -> Result<bool, StoreError> {
        let products = self.products_dir();
        for leftover in [products.join(job.to_string()), products.join(format!(".staging-{job}"))] {
            if leftover.exists() {
                fs::remove_dir_all(&leftover).map_err(StoreError::io("remove unreleased product", &leftover))?;
            }
        }
        let detail = "the process of this local run ended before the run did; nothing was released";
        let change = || {
            let changed = self
                .catalog()
                .conn
                .execute(
                    "UPDATE jobs SET state = 'failed', finished_at = ?2, error_class = ?3, error_detail = ?4,
                            manifest_sha256 = NULL
                     WHERE id = ?1 AND state = 'running'",
                    params![job, now(), INTERRUPTED, detail],
                )
                .map_err(StoreError::catalog("end interrupted job"))?;
            Ok(changed > 0)
        };
        let entry = Entry::new(now(), "zone", "zone", INTERRUPTED, Outcome::Ok)
            .object(format!("job:{job}"))
            .detail(format!("{detail}; a dp charge stays spent"));
        let ended = self.zone_change(change, vec![entry])?;
        if ended {
            tracing::warn!(job, "a local run whose process had ended was recorded as interrupted");
        }
        Ok(ended)
    }

    /// Product folders of jobs that are neither released nor running: written by a run that never recorded its
    /// release. Never served by `job output`.
    pub(crate) fn unreleased_products(&self) -> Result<Vec<String>, StoreError> {
        let mut out = Vec::new();
        let Ok(dir) = fs::read_dir(self.products_dir()) else { return Ok(out) };
        for f in dir.flatten() {
            let name = f.file_name().to_string_lossy().into_owned();
            let job = name.strip_prefix(".staging-").unwrap_or(&name).parse::<u64>();
            let Ok(job) = job else { continue };
            let state: Option<String> = rusqlite::OptionalExtension::optional(self.catalog().conn.query_row(
                "SELECT state FROM jobs WHERE id = ?1",
                [job],
                |r| r.get(0),
            ))
            .map_err(StoreError::catalog("read job"))?;
            let fine = match state.as_deref() {
                Some("running") => true,
                Some("released") => !name.starts_with(".staging-"),
                _ => false,
            };
            if !fine {
                out.push(format!("products/{name}"));
            }
        }
        out.sort();
        Ok(out)
    }
}
