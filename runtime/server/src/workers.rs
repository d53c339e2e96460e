//! The job queue's workers: each claims queued jobs one at a time and runs them as their operator, through the
//! same `zone_ops::run_ticket` as a local `job run`.

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering;
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use zone_store::{Claim, RunFailure, StoreError, Zone};

/// Wakes the workers when a job is queued; tells them to stop.
#[derive(Debug, Default)]
pub struct Queue {
    pending: Mutex<u64>,
    wake: Condvar,
    pub(crate) stop: AtomicBool,
}

impl Queue {
    pub fn notify(&self) {
        if let Ok(mut n) = self.pending.lock() {
            *n += 1;
        }
        self.wake.notify_all();
    }

    /// Waits for a notification or `timeout`.
    pub fn wait(&self, timeout: Duration) {
        if let Ok(mut n) = self.pending.lock() {
            if *n == 0 {
                if let Ok((guard, _)) = self.wake.wait_timeout(n, timeout) {
                    n = guard;
                } else {
                    return;
                }
            }
            *n = n.saturating_sub(1);
        }
    }
}

/// One worker: claims queued jobs one at a time and runs them, as their operator.
pub fn worker(root: &Path, queue: &Queue) {
    let mut zone = None;
    while !queue.stop.load(Ordering::SeqCst) {
        if zone.is_none() {
            match Zone::open(root) {
                Ok(z) => zone = Some(z),
                Err(e) => {
                    tracing::error!(error = %e, "worker cannot open the zone");
                    queue.wait(Duration::from_secs(1));
                    continue;
                }
            }
        }
        let Some(z) = zone.as_mut() else { continue };
        match run_next(z) {
            Ok(true) => {}
            Ok(false) => queue.wait(Duration::from_millis(500)),
            Err(e) => {
                tracing::error!(error = %e, "worker failed; reopening the zone");
                zone = None;
                queue.wait(Duration::from_millis(500));
            }
        }
    }
}

/// Runs the oldest job this worker can claim; `false` when there was none.
fn run_next(zone: &mut Zone) -> Result<bool, StoreError> {
    for id in zone.queued_job_ids()? {
        match zone.claim_job(id)? {
            Claim::Run { ticket, operator, via } => {
                zone.set_via(via);
                let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    zone_ops::run_ticket(zone, &operator, &ticket, zone_ops::RunOptions::default())
                }));
                let outcome = match ran {
                    Ok(r) => r.map(|_| ()).map_err(|e| e.to_string()),
                    Err(_) => {
                        let failure = RunFailure {
                            class: "zone.panic".into(),
                            detail: "the run stopped on an internal error; nothing is released".into(),
                            counts: None,
                            diagnostics: serde_json::Value::Null,
                        };
                        zone.finish_job(&operator, &ticket, Err(failure)).map(|_| ()).map_err(|e| e.to_string())
                    }
                };
                zone.set_via(None);
                if let Err(e) = outcome {
                    tracing::warn!(job = id, error = %e, "job ended with an error");
                }
                return Ok(true);
            }
            Claim::Refused(record) => {
                tracing::info!(job = record.id, class = ?record.error_class, "queued job refused at its turn");
            }
            Claim::NotQueued => {}
        }
    }
    Ok(false)
}
