//! The limits every guest runs under. Defaults follow DESIGN.md; a zone may tighten them, a policy more.

use std::time::Duration;

/// Hard limits of the sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxLimits {
    /// How often the epoch advances (the granularity of CPU deadlines).
    pub epoch_tick: Duration,
    /// Longest single call into the guest (`init` or one `map-batch`).
    pub call_timeout: Duration,
    /// Longest total guest time of one run (all calls of one instance).
    pub job_timeout: Duration,
    /// Linear memory of one instance, all memories together.
    pub memory_bytes: usize,
    /// Largest input batch handed to the guest.
    pub max_batch_rows: usize,
    /// Largest IPC message the guest may return from one call.
    pub max_output_bytes: usize,
    /// Guest text kept per message and per run; the rest is dropped and counted.
    pub max_message_bytes: usize,
    pub max_log_bytes_per_job: usize,
    /// Largest module accepted for compilation, and the longest its compilation may take.
    pub max_module_bytes: usize,
    pub compile_timeout: Duration,
    /// Opt-in deterministic mode: fuel per call instead of wall-clock epochs.
    pub fuel_per_call: Option<u64>,
    /// The guest's wasm stack.
    pub max_wasm_stack: usize,
    /// Instances that may run at once in a pool of pre-reserved slots, whose memories are reset in place and start
    /// from a copy-on-write image (instantiation without mapping memory); 0: every instance maps its own. A run
    /// beyond the pool waits for a slot.
    pub pooled_instances: u32,
}

impl Default for SandboxLimits {
    fn default() -> SandboxLimits {
        SandboxLimits {
            epoch_tick: Duration::from_millis(10),
            call_timeout: Duration::from_secs(5),
            job_timeout: Duration::from_secs(60),
            memory_bytes: 256 << 20,
            max_batch_rows: 65_536,
            max_output_bytes: 64 << 20,
            max_message_bytes: 1024,
            max_log_bytes_per_job: 64 << 10,
            max_module_bytes: 32 << 20,
            compile_timeout: Duration::from_secs(60),
            fuel_per_call: None,
            max_wasm_stack: 512 << 10,
            pooled_instances: 0,
        }
    }
}
