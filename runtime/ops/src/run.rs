//! Running a job that passed the gate: the sandbox under the zone's limits, the grant watch that stops it (a
//! suspension, a removal of the operator, a cancellation), the plan of `zone-jobs`, the timing quantum, and the
//! record of its end in the store. Used by `job run` and by the server's workers alike.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow_array::RecordBatch;
use zone_jobs::{DatasetSource, DpSettings, JobError, JobMap, JobOutcome, JobPlan, JobSource, JobSpec, ReleaseLimits};
use zone_sandbox::{Diagnostics, FailureClass, Sandbox, StopSignal};
use zone_store::{
    CANCELLED, GrantWatch, JobRecord, JobTicket, Principal, ReleasedTable, RunCounts, RunFailure, SignedManifest,
    StoreError, WatchStop, Zone,
};

/// How to run a ticket.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunOptions {
    /// Also return the plan's explanation (`job run --explain`).
    pub explain: bool,
}

/// What a run left: its record (as the runner may see it), the signed manifest when it released, the released
/// rows, and the plan's explanation when asked for.
#[derive(Debug)]
pub struct RunOutcome {
    pub record: JobRecord,
    pub manifest: Option<SignedManifest>,
    pub batches: Vec<RecordBatch>,
    pub plan: Option<String>,
}

/// Guest text as kept in the catalog.
fn diagnostics_json(parts: &[Diagnostics]) -> serde_json::Value {
    serde_json::Value::Array(
        parts
            .iter()
            .map(|d| {
                serde_json::json!({
                    "messages": d.messages.iter().map(|(level, text)| serde_json::json!({"level": level, "text": text})).collect::<Vec<_>>(),
                    "dropped_messages": d.dropped_messages,
                    "truncated_bytes": d.truncated_bytes,
                    "panicked": d.panicked,
                })
            })
            .collect(),
    )
}

fn counts(outcome: &JobOutcome) -> RunCounts {
    let s = &outcome.stats;
    let dp = outcome.dp.is_some();
    RunCounts {
        rows_read: s.rows_read,
        contributions_dropped: Some(s.contributions_dropped),
        groups: Some(s.groups),
        groups_suppressed: Some(s.groups_suppressed),
        rows_released: s.rows_released,
        elapsed_ms: Some(s.elapsed_ms),
        blocks: dp.then_some(s.blocks),
        failed_blocks: dp.then_some(s.failed_blocks),
        privacy: outcome.dp.clone(),
    }
}

/// Watches a running job's grant from a thread of its own (every 100 ms, on its own read-only catalog connection)
/// and stops the job's sandbox — a guest in the middle of a call traps at the next epoch tick — as soon as the grant
/// is suspended, terminated or past its end date.
struct GrantWatcher {
    done: Arc<AtomicBool>,
    reason: Arc<Mutex<Option<WatchStop>>>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl GrantWatcher {
    const EVERY: Duration = Duration::from_millis(100);

    fn start(watch: GrantWatch, stop: StopSignal) -> std::io::Result<GrantWatcher> {
        let done = Arc::new(AtomicBool::new(false));
        let reason = Arc::new(Mutex::new(None));
        let handle = {
            let (done, reason) = (done.clone(), reason.clone());
            std::thread::Builder::new().name("zone-grant-watch".into()).spawn(move || {
                while !done.load(Ordering::SeqCst) {
                    if let Err(why) = watch.check() {
                        if let Ok(mut r) = reason.lock() {
                            *r = Some(why);
                        }
                        stop.stop();
                        return;
                    }
                    std::thread::sleep(Self::EVERY);
                }
            })?
        };
        Ok(GrantWatcher { done, reason, handle: Some(handle) })
    }

    /// Ends the watch; why the run was stopped, if it was.
    fn finish(mut self) -> Option<WatchStop> {
        self.done.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
        self.reason.lock().ok().and_then(|mut r| r.take())
    }
}

/// What a run that released left: the table, the guest's text, and (reviewed mode) its artifacts.
struct Executed {
    outcome: JobOutcome,
    guest_text: serde_json::Value,
    artifacts: Vec<(String, Vec<u8>)>,
}

/// A run that released nothing: (class, host text, guest text).
type Failed<T> = Result<T, (String, String, serde_json::Value)>;

/// Plans and runs a ticket's job. `Err` is (class, host text, guest text).
fn execute(zone: &Zone, ticket: &JobTicket, plan_text: &mut Option<String>) -> Failed<Executed> {
    let fail = |class: &str, e: &dyn std::fmt::Display| (class.to_owned(), e.to_string(), serde_json::Value::Null);
    let settings = zone.sandbox_settings().map_err(|e| fail(e.class(), &e))?;
    let limits = crate::limits::sandbox_limits(&settings);
    // A `dp` run starts one short-lived instance per block in each partition: from a pool, one slot each. Where
    // the pool's address space cannot be reserved, instances are mapped one by one.
    let pooled = ticket.dp.as_ref().and_then(|_| {
        let slots = u32::try_from(ticket.run.partitions.clamp(1, 256)).unwrap_or(1);
        Sandbox::new(zone_sandbox::SandboxLimits { pooled_instances: slots, ..limits.clone() })
            .inspect_err(|e| tracing::warn!(error = %e, "no pool of instances for this dp run"))
            .ok()
    });
    let sandbox = match pooled {
        Some(s) => s,
        None => Sandbox::new(limits).map_err(|e| fail(e.class.name(), &e))?,
    };
    let watch = zone.grant_watch(ticket).map_err(|e| fail(e.class(), &e))?;
    let watcher = GrantWatcher::start(watch, sandbox.stop_signal()).map_err(|e| fail("zone.thread", &e))?;
    let noise_key = zone.keys().map_err(|e| fail(e.class(), &e))?.noise_key();
    let result = execute_watched(ticket, sandbox, noise_key, plan_text);
    match (watcher.finish(), result) {
        // Stopped from outside: the grant's state or the operator is the reason, not the guest.
        (Some(WatchStop::Grant(why)), Err((class, _, guest))) if class == FailureClass::Stopped.name() => Err((
            "access.grant".to_owned(),
            format!("{why}: the run was stopped while it ran; nothing is released"),
            guest,
        )),
        (Some(WatchStop::Cancelled), Err((class, _, guest))) if class == FailureClass::Stopped.name() => Err((
            CANCELLED.to_owned(),
            "the operator cancelled the job while it ran; nothing is released".to_owned(),
            guest,
        )),
        (_, result) => result,
    }
}

/// Plans and runs a ticket's job in `sandbox`, whose stop signal the grant watch holds.
fn execute_watched(
    ticket: &JobTicket,
    sandbox: Sandbox,
    noise_key: [u8; 32],
    plan_text: &mut Option<String>,
) -> Failed<Executed> {
    let fail = |class: &str, e: &dyn std::fmt::Display| (class.to_owned(), e.to_string(), serde_json::Value::Null);
    // The artifact compiled at submission; after an upgrade of the engine it no longer loads, and the approved
    // module (whose hash the store checked) is compiled again under the same limits.
    let module = match sandbox.load(&ticket.artifact) {
        Ok(m) => m,
        Err(_) => {
            let checked = sandbox.check(&ticket.wasm).map_err(|e| fail(e.class.name(), &e))?;
            sandbox.load(&checked.serialized).map_err(|e| fail(e.class.name(), &e))?
        }
    };
    let spec = JobSpec {
        source: JobSource::Datasets {
            datasets: ticket
                .datasets
                .iter()
                .map(|d| DatasetSource {
                    name: d.version.dataset.clone(),
                    files: d.files.clone(),
                    policy: d.policy.clone(),
                })
                .collect(),
            secret: ticket.token_secret.clone(),
        },
        map: JobMap::Guest {
            sandbox: Arc::new(sandbox),
            module: Arc::new(module),
            params: ticket.app.app.params.clone(),
        },
        limits: ReleaseLimits {
            min_group_size: ticket.release.min_group_size,
            max_groups_per_subject: ticket.release.max_groups_per_subject,
            max_rows_per_subject_in_group: ticket.release.max_rows_per_subject_in_group,
            max_output_rows: ticket.release.max_output_rows,
            max_artifact_bytes: (ticket.mode == policies::ReleaseMode::Reviewed)
                .then_some(ticket.release.max_artifact_bytes),
            dp: ticket.dp.as_ref().map(|c| DpSettings {
                epsilon: c.epsilon,
                delta: c.delta,
                block_subjects: c.block_subjects,
                population: c.population,
                noise_key,
                job: ticket.job,
                key_domain: c
                    .key_domain
                    .iter()
                    .map(|d| zone_jobs::KeyDomain { key: d.key.clone(), values: d.values.clone() })
                    .collect(),
            }),
        },
        // As approved: what each call of the guest sees does not depend on the machine or on the operator.
        partitions: usize::try_from(ticket.run.partitions).unwrap_or(1),
        batch_size: usize::try_from(ticket.run.batch_rows).unwrap_or(1),
    };
    let plan = JobPlan::build(&spec).map_err(|e| fail(e.class(), &e))?;
    let declared = crate::submit::app_output(&plan.declared);
    if declared != ticket.app.app.output {
        return Err(fail(
            "contract",
            &"the module declares a different output for this data than the one approved; nothing ran",
        ));
    }
    if let Some(text) = plan_text.as_mut() {
        *text = plan.explain();
    }
    let run = plan.execute();
    let mut guest = diagnostics_json(&run.guest.diagnostics);
    // dp mode: why each block that was left out failed, for the agencies and the inspector.
    if let serde_json::Value::Array(parts) = &mut guest {
        for e in &run.guest.block_failures {
            parts.push(serde_json::json!({
                "block_failure": { "class": e.class.name(), "detail": e.detail, "zone_detail": e.zone_detail },
            }));
        }
    }
    match run.result {
        Ok(outcome) => Ok(Executed {
            outcome,
            guest_text: guest,
            artifacts: run.guest.artifacts.into_iter().map(|a| (a.name, a.bytes)).collect(),
        }),
        // The query engine's own errors can quote values (a failed cast names what it could not cast): the
        // operator gets the class, the text stays in the zone with the guest's.
        Err(e @ JobError::Engine(_)) => {
            if let serde_json::Value::Array(parts) = &mut guest {
                parts.push(serde_json::json!({ "host_error": e.to_string() }));
            }
            let detail = "the query engine failed; its message is kept in the zone (`job diagnostics`)".to_owned();
            Err((e.class().to_owned(), detail, guest))
        }
        // Guest text of a failed run stays in the zone, with the job's record; so does what its refused output
        // was (a name or count the guest chose), which the host's message never repeats.
        Err(e) => {
            if let JobError::Guest(zone_sandbox::SandboxError { zone_detail: Some(zone), .. }) = &e
                && let serde_json::Value::Array(parts) = &mut guest
            {
                parts.push(serde_json::json!({ "host_error": zone }));
            }
            Err((e.class().to_owned(), e.to_string(), guest))
        }
    }
}

/// Waits until the next multiple of `quantum` since `started` (at least one): a run's end is made known only then,
/// so how long the guest took can be read no more finely than the quantum.
fn hold_to_quantum(started: Instant, quantum: Duration) {
    let elapsed = started.elapsed();
    let q = quantum.as_nanos().max(1);
    let slots = elapsed.as_nanos().div_ceil(q).max(1);
    let end = Duration::from_nanos(u64::try_from(slots.saturating_mul(q)).unwrap_or(u64::MAX));
    if let Some(left) = end.checked_sub(elapsed) {
        std::thread::sleep(left);
    }
}

/// Runs a job that passed the gate and records its end: the record (as `who` may see it), the signed manifest when
/// it released, and the released rows. Whatever happened, the end is recorded at the next multiple of the zone's
/// `[jobs] timing_quantum_ms` after the start. `Err` only when the end could not be recorded.
pub fn run_ticket(
    zone: &Zone,
    who: &Principal,
    ticket: &JobTicket,
    options: RunOptions,
) -> Result<RunOutcome, StoreError> {
    let started = Instant::now();
    let quantum =
        zone.timing_quantum().unwrap_or(Duration::from_millis(zone_store::JobsSection::DEFAULT_TIMING_QUANTUM_MS));
    let mut plan = options.explain.then(String::new);
    let executed = execute(zone, ticket, &mut plan);
    hold_to_quantum(started, quantum);
    let result = match executed {
        Ok(Executed { outcome, guest_text, artifacts }) => Ok(ReleasedTable {
            schema: outcome.schema.clone(),
            counts: counts(&outcome),
            diagnostics: guest_text,
            batches: outcome.batches,
            artifacts,
        }),
        Err((class, detail, diagnostics)) => Err(RunFailure { class, detail, counts: None, diagnostics }),
    };
    let batches = result.as_ref().map(|t| t.batches.clone()).unwrap_or_default();
    let (record, manifest) = zone.finish_job(who, ticket, result)?;
    Ok(RunOutcome { record, manifest, batches, plan: plan.filter(|p| !p.is_empty()) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_runs_end_is_held_to_the_next_multiple_of_the_quantum() {
        let quantum = Duration::from_millis(40);
        for spent in [0u64, 5, 39, 41, 90] {
            let started = Instant::now();
            std::thread::sleep(Duration::from_millis(spent));
            hold_to_quantum(started, quantum);
            let took = started.elapsed().as_millis() as u64;
            let slots = spent.div_ceil(40).max(1);
            assert!(took >= slots * 40, "{spent} ms spent, ended at {took} ms");
        }
    }

    #[test]
    fn guest_text_is_kept_per_instance_with_its_levels() {
        let mut d = Diagnostics::default();
        d.keep(2, "hello", 100, 1000);
        d.keep(zone_sandbox::LEVEL_PANIC, "boom", 100, 1000);
        let v = diagnostics_json(&[d, Diagnostics::default()]);
        assert_eq!(v[0]["messages"][0]["text"], "hello");
        assert_eq!(v[0]["panicked"], true);
        assert_eq!(v[1]["messages"].as_array().map(Vec::len), Some(0));
    }
}
