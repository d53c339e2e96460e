//! The durable job queue behind the HTTPS API: a job is recorded as `queued` when its operator submits it (after the
//! same gate as `job run`), claimed by one worker (`running`, the gate checked again), and ends `released`, `failed`,
//! `refused` or `cancelled`. The catalog is the queue, so it survives a restart: queued jobs stay queued, and a run
//! a restart interrupted is put back in the queue (its unrecorded product, if any, removed) and run again — a job is
//! released at most once, because only the run that finds the job `running` records a release.

use std::fs;

use rusqlite::{OptionalExtension, params};
use zone_access::{Action, Principal};
use zone_audit::{Entry, Outcome};

use crate::access::WriteAhead;
use crate::error::StoreError;
use crate::jobs::{CANCELLED, JobRecord, JobState, JobTicket};
use crate::record::json;
use crate::record::now;
use crate::zone::Zone;

/// What a worker got when it claimed a queued job.
#[derive(Debug)]
pub enum Claim {
    /// Run it: the ticket, the operator the run acts as, its batch size, and how the operator reached the zone.
    /// The ticket carries the approved run settings (rows per batch, partitions).
    Run { ticket: Box<JobTicket>, operator: Principal, via: Option<String> },
    /// The gate refused it when its turn came (a grant suspended meanwhile, a new dataset version…).
    Refused(Box<JobRecord>),
    /// Another worker has it, or it was cancelled.
    NotQueued,
}

/// What `cancel_job` did.
#[derive(Debug)]
pub enum Cancelled {
    /// It had not started: it is cancelled.
    BeforeRun(JobRecord),
    /// It is running: the stop is recorded, and the worker running it must be told.
    WhileRunning(JobRecord),
}

/// One queued row as the queue reads it.
struct QueuedRow {
    state: String,
    app: u64,
    operator: String,
    batch_rows: Option<u64>,
    via: Option<String>,
}

impl Zone {
    /// Queues a run of `app_id` for `who`: the gate of `job run` now (a refusal is recorded and returned, nothing is
    /// queued), then a `queued` job that a worker runs in turn.
    pub fn enqueue_job(
        &self,
        who: &Principal,
        app_id: u64,
        batch_rows: Option<usize>,
    ) -> Result<JobRecord, StoreError> {
        let objects = vec![format!("app:{app_id}")];
        let ticket = match self.gate(who, app_id, batch_rows.map(|b| b as u64)) {
            Ok(t) => t,
            Err(err) => {
                self.record_refusal(who, "job.run", &objects, err.class(), &err.to_string())?;
                return Err(err);
            }
        };
        let time = now();
        let batch_rows = batch_rows.map(|b| b as u64);
        let queue = || {
            let conn = &self.catalog().conn;
            conn.execute(
                "INSERT INTO jobs (app, operator, state, binding_json, started_at, queued_at, attempts, batch_rows, via)
                 VALUES (?1, ?2, 'queued', ?3, ?4, ?4, 0, ?5, ?6)",
                params![app_id, ticket.app.app.operator, json(&ticket.app.binding)?, time, batch_rows, self.via()],
            )
            .map_err(StoreError::catalog("queue job"))?;
            Ok(u64::try_from(conn.last_insert_rowid()).unwrap_or(0))
        };
        let job = self.logged_change(who, "job.queue", &objects, queue, |job, mut e| {
            e.objects.insert(0, format!("job:{job}"));
            e.hash(ticket.app.app.module_sha256.clone())
        })?;
        self.job_record_unchecked(job)
    }

    /// The queued jobs, oldest first.
    pub fn queued_job_ids(&self) -> Result<Vec<u64>, StoreError> {
        let mut stmt = self
            .catalog()
            .conn
            .prepare("SELECT id FROM jobs WHERE state = 'queued' ORDER BY id")
            .map_err(StoreError::catalog("list queued jobs"))?;
        let rows = stmt.query_map([], |r| r.get(0)).map_err(StoreError::catalog("list queued jobs"))?;
        rows.collect::<Result<_, _>>().map_err(StoreError::catalog("list queued jobs"))
    }

    fn queued_row(&self, id: u64) -> Result<Option<QueuedRow>, StoreError> {
        self.catalog()
            .conn
            .query_row("SELECT state, app, operator, batch_rows, via FROM jobs WHERE id = ?1", [id], |r| {
                Ok(QueuedRow {
                    state: r.get(0)?,
                    app: r.get(1)?,
                    operator: r.get(2)?,
                    batch_rows: r.get(3)?,
                    via: r.get(4)?,
                })
            })
            .optional()
            .map_err(StoreError::catalog("read queued job"))
    }

    /// Takes queued job `id` for a run: checks the gate again (as its operator) and marks it `running`. Exactly one
    /// caller gets `Claim::Run` for a queued job.
    pub fn claim_job(&self, id: u64) -> Result<Claim, StoreError> {
        let Some(row) = self.queued_row(id)? else { return Ok(Claim::NotQueued) };
        if row.state != JobState::Queued.id() {
            return Ok(Claim::NotQueued);
        }
        let operator = self
            .principal(&row.operator)?
            .ok_or_else(|| StoreError::UnknownPrincipal { name: row.operator.clone(), known: Vec::new() })?;
        let objects = vec![format!("job:{id}"), format!("app:{}", row.app)];
        match self.gate(&operator, row.app, row.batch_rows) {
            Err(err) => {
                if !self.end_queued(id, JobState::Refused, err.class(), &err.to_string())? {
                    return Ok(Claim::NotQueued);
                }
                self.record_refusal(&operator, "job.run", &objects, err.class(), &err.to_string())?;
                Ok(Claim::Refused(Box::new(self.job_record_unchecked(id)?)))
            }
            Ok(mut ticket) => {
                // The claim and its `job.start` entry, write-ahead: when the entry cannot be appended the job
                // stays queued (and is claimed again once the log can be written).
                let binding_json = json(&ticket.app.binding)?;
                // A dp run's budget is charged in the same transaction (once per job: a run started again after a
                // restart reproduces its noise and spends nothing more).
                let claim = || {
                    let changed = self
                        .catalog()
                        .conn
                        .execute(
                            "UPDATE jobs SET state = 'running', attempts = attempts + 1, started_at = ?2,
                                    binding_json = ?3
                             WHERE id = ?1 AND state = 'queued'",
                            params![id, now(), binding_json],
                        )
                        .map_err(StoreError::catalog("claim job"))?;
                    let charged = if changed == 0 { Vec::new() } else { self.charge_budget(&operator, id, &ticket)? };
                    Ok((changed, charged))
                };
                let entries = |(changed, charged): &(usize, Vec<Entry>)| {
                    if *changed == 0 {
                        return Vec::new();
                    }
                    let mut e = self.start_entry(&operator, id, &ticket);
                    e.via = row.via.clone();
                    let mut entries = vec![e];
                    entries.extend(charged.iter().cloned().map(|mut c| {
                        c.via = row.via.clone();
                        c
                    }));
                    entries
                };
                match self.write_ahead(&operator, "job.start", &objects, claim, entries) {
                    Ok((0, _)) => return Ok(Claim::NotQueued),
                    Ok(_) => {}
                    Err(WriteAhead::Refused(err)) => {
                        if !self.end_queued(id, JobState::Refused, err.class(), &err.to_string())? {
                            return Ok(Claim::NotQueued);
                        }
                        self.record_refusal(&operator, "job.run", &objects, err.class(), &err.to_string())?;
                        return Ok(Claim::Refused(Box::new(self.job_record_unchecked(id)?)));
                    }
                    Err(WriteAhead::NotLogged(err)) => return Err(err),
                }
                ticket.job = id;
                Ok(Claim::Run { ticket: Box::new(ticket), operator, via: row.via })
            }
        }
    }

    /// Cancels job `id` for its operator: a queued job is cancelled at once; a running one is marked, and the caller
    /// stops its sandbox (the run then ends `cancelled` and releases nothing). Recorded as `job.cancel`.
    pub fn cancel_job(&self, who: &Principal, id: u64) -> Result<Cancelled, StoreError> {
        let objects = vec![format!("job:{id}")];
        self.logged_change(
            who,
            "job.cancel",
            &objects,
            || self.cancel_job_unrecorded(who, id),
            |c, e| match c {
                Cancelled::BeforeRun(_) => e.detail("cancelled before it ran"),
                Cancelled::WhileRunning(_) => e.detail("stop requested while it ran; nothing is released"),
            },
        )
    }

    fn cancel_job_unrecorded(&self, who: &Principal, id: u64) -> Result<Cancelled, StoreError> {
        let record = self.job_record_unchecked(id)?;
        self.permit(who, &Action::JobRun { operator: &record.operator })?;
        match record.state {
            JobState::Queued => {
                if self.end_queued(
                    id,
                    JobState::Cancelled,
                    CANCELLED,
                    &format!("cancelled by `{}` before it ran", who.name),
                )? {
                    return Ok(Cancelled::BeforeRun(self.job_record_unchecked(id)?));
                }
                // A worker claimed it in between: stop the run instead.
                self.cancel_job_unrecorded(who, id)
            }
            JobState::Running => {
                self.catalog()
                    .conn
                    .execute("UPDATE jobs SET cancel_requested = 1 WHERE id = ?1", [id])
                    .map_err(StoreError::catalog("cancel job"))?;
                Ok(Cancelled::WhileRunning(self.job_record_unchecked(id)?))
            }
            state => Err(StoreError::JobRefused {
                class: "job.state",
                detail: format!("job {id} is already {state}; only a queued or running job can be cancelled"),
            }),
        }
    }

    /// Ends job `id` in `state` with `class` and `detail` if it is still queued; `false` when a worker (or another
    /// request) got to it first.
    fn end_queued(&self, id: u64, state: JobState, class: &str, detail: &str) -> Result<bool, StoreError> {
        let changed = self
            .catalog()
            .conn
            .execute(
                "UPDATE jobs SET state = ?2, finished_at = ?3, error_class = ?4, error_detail = ?5
                 WHERE id = ?1 AND state = 'queued'",
                params![id, state.id(), now(), class, detail],
            )
            .map_err(StoreError::catalog("end a queued job"))?;
        Ok(changed == 1)
    }

    /// Whether the operator asked to stop job `id`.
    pub fn cancel_requested(&self, id: u64) -> Result<bool, StoreError> {
        let flag: Option<i64> = self
            .catalog()
            .conn
            .query_row("SELECT cancel_requested FROM jobs WHERE id = ?1", [id], |r| r.get(0))
            .optional()
            .map_err(StoreError::catalog("read job"))?;
        Ok(flag.unwrap_or(0) != 0)
    }

    /// At the start of a server: every queued job whose run was interrupted (still `running`) goes back to the queue,
    /// after removing any product folder its run wrote but never recorded; a job whose operator had asked to stop it
    /// is cancelled. Returns the jobs put back. Only jobs that came through the queue are touched (a local
    /// `job run` is its own process). Each is recorded as `job.interrupted`.
    pub fn recover_jobs(&self) -> Result<Vec<u64>, StoreError> {
        let mut stmt = self
            .catalog()
            .conn
            .prepare(
                "SELECT id, attempts, cancel_requested, via FROM jobs
                 WHERE state = 'running' AND queued_at IS NOT NULL ORDER BY id",
            )
            .map_err(StoreError::catalog("list interrupted jobs"))?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, u64>(0)?, r.get::<_, u64>(1)?, r.get::<_, i64>(2)?, r.get(3)?)))
            .map_err(StoreError::catalog("list interrupted jobs"))?;
        let interrupted: Vec<(u64, u64, i64, Option<String>)> =
            rows.collect::<Result<_, _>>().map_err(StoreError::catalog("list interrupted jobs"))?;
        drop(stmt);
        let mut requeued = Vec::new();
        for (id, attempts, cancel, via) in interrupted {
            let products = self.products_dir();
            for leftover in [products.join(id.to_string()), products.join(format!(".staging-{id}"))] {
                if leftover.exists() {
                    fs::remove_dir_all(&leftover).map_err(StoreError::io("remove unrecorded product", &leftover))?;
                }
            }
            let (state, class, detail, outcome_detail) = if cancel != 0 {
                let d = "cancelled while it ran; the server stopped before the run ended, nothing is released";
                (
                    JobState::Cancelled,
                    Some(CANCELLED),
                    Some(d),
                    format!("run {attempts} interrupted; the job was cancelled"),
                )
            } else {
                (
                    JobState::Queued,
                    None,
                    None,
                    format!("run {attempts} interrupted by a stop of the server; queued again"),
                )
            };
            let change = || {
                let changed = self
                    .catalog()
                    .conn
                    .execute(
                        "UPDATE jobs SET state = ?2, finished_at = CASE WHEN ?2 = 'queued' THEN NULL ELSE ?3 END,
                                error_class = ?4, error_detail = ?5, stats_json = NULL, manifest_sha256 = NULL
                         WHERE id = ?1 AND state = 'running'",
                        params![id, state.id(), now(), class, detail],
                    )
                    .map_err(StoreError::catalog("recover job"))?;
                Ok(changed > 0)
            };
            let mut e = Entry::new(now(), "zone", "zone", "job.interrupted", Outcome::Ok)
                .object(format!("job:{id}"))
                .detail(outcome_detail);
            e.via = via;
            // The state change and its entry together (write-ahead): never one without the other.
            if !self.zone_change(change, vec![e])? {
                continue;
            }
            if state == JobState::Queued {
                requeued.push(id);
            }
        }
        Ok(requeued)
    }
}
