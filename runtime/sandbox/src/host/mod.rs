//! The wasmtime host. This module alone names wasmtime types: one `Engine` per process with epoch interruption,
//! components compiled once (bounded in size and time) and stored serialized, runs that only deserialize, a
//! fresh instance per run with a memory limiter, and every guest fault mapped to a [`FailureClass`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use arrow_array::RecordBatch;
use arrow_schema::Schema;
use sha2::{Digest, Sha256};
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, ResourceLimiter, Store, Trap, UpdateDeadline,
};

use crate::error::{FailureClass, SandboxError};
use crate::limits::SandboxLimits;
use crate::output::OutputDecl;
use guest_ipc as ipc;

mod wasi_stubs;

mod bindings {
    wasmtime::component::bindgen!({
        path: "../../sandbox-sdk/wit",
        world: "row-transform",
    });
}

/// The reviewed-mode world: row-transform's exports plus `finish`, over the same `diagnostics` import.
mod artifact_world {
    wasmtime::component::bindgen!({
        path: "../../sandbox-sdk/wit",
        world: "artifact",
        with: { "zone:job/diagnostics": super::bindings::zone::job::diagnostics },
    });
}

use artifact_world::{Artifact as ArtifactExports, ArtifactPre};
use bindings::{RowTransform, RowTransformPre};

/// Most artifacts one reviewed run may hold.
pub const MAX_ARTIFACTS: usize = 64;
/// Longest artifact name, in bytes.
pub const MAX_ARTIFACT_NAME_BYTES: usize = 100;
/// The name of a released artifact's signed manifest, beside it; no artifact may take it.
pub const RESERVED_ARTIFACT_NAME: &str = "manifest.json";

/// One artifact a reviewed run's `finish` returned, its name checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestArtifact {
    pub name: String,
    pub bytes: Vec<u8>,
}

/// The exports of a running instance: the row-transform world, or the artifact world for a reviewed run.
enum Exports {
    Rows(RowTransform),
    Artifacts(ArtifactExports),
}

impl Exports {
    fn call_init(
        &self,
        store: &mut Store<HostState>,
        schema: &[u8],
        params: &[(String, String)],
    ) -> wasmtime::Result<Result<Vec<u8>, String>> {
        match self {
            Exports::Rows(b) => b.call_init(store, schema, params),
            Exports::Artifacts(b) => b.call_init(store, schema, params),
        }
    }

    fn call_map_batch(&self, store: &mut Store<HostState>, batch: &[u8]) -> wasmtime::Result<Result<Vec<u8>, String>> {
        match self {
            Exports::Rows(b) => b.call_map_batch(store, batch),
            Exports::Artifacts(b) => b.call_map_batch(store, batch),
        }
    }
}

/// The contract's package and the versions this host speaks.
const CONTRACT_PACKAGE: &str = "zone:job/";
const CONTRACT_MAJOR_MINOR: (u64, u64) = (0, 1);

/// What every message costs against the per-run cap beside its bytes: an empty line is not free, so a guest cannot
/// pile up messages (or a count of them) without using up its cap.
pub const MESSAGE_OVERHEAD_BYTES: usize = 16;

/// Guest text kept for the providing agencies: capped per message and per run (each message costs its bytes plus
/// [`MESSAGE_OVERHEAD_BYTES`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diagnostics {
    /// (level, text) in order.
    pub messages: Vec<(u8, String)>,
    pub kept_bytes: usize,
    /// Messages dropped (over the per-run cap) and bytes cut from long messages.
    pub dropped_messages: usize,
    pub truncated_bytes: usize,
    /// Whether the guest reported a panic.
    pub panicked: bool,
}

/// Level of a panic report in `diagnostics.log`.
pub const LEVEL_PANIC: u8 = 5;
/// Level under which the host keeps the text of an error a guest returns.
pub const LEVEL_GUEST_ERROR: u8 = 4;

/// Stops every run of one [`Sandbox`] from outside, within one epoch tick: a guest in the middle of a call traps
/// (`Stopped`), and no later call starts. Cloned freely; set once.
#[derive(Debug, Clone, Default)]
pub struct StopSignal(Arc<AtomicBool>);

impl StopSignal {
    pub fn stop(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn is_stopped(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// The marker error a stopped run traps with.
#[derive(Debug)]
struct StoppedFromOutside;

impl std::fmt::Display for StoppedFromOutside {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("stopped by the zone")
    }
}

impl std::error::Error for StoppedFromOutside {}

/// Per-instance host state.
struct HostState {
    limiter: MemoryLimiter,
    /// When the current call must end (checked at every epoch tick, with the stop signal).
    call_deadline: Instant,
    stop: StopSignal,
    diagnostics: Diagnostics,
    streams: wasi_stubs::StdStreams,
    max_message_bytes: usize,
    max_log_bytes: usize,
}

impl bindings::zone::job::diagnostics::Host for HostState {
    fn log(&mut self, level: u8, msg: String) {
        self.keep(level, msg);
    }
}

impl HostState {
    /// Keeps one message of guest text within the caps (per message, per run); counts what it drops.
    fn keep(&mut self, level: u8, msg: String) {
        self.diagnostics.keep(level, &msg, self.max_message_bytes, self.max_log_bytes);
    }
}

impl Diagnostics {
    /// Keeps `msg` within `max_message_bytes` and what is left of `max_log_bytes` (a message costs its bytes plus
    /// [`MESSAGE_OVERHEAD_BYTES`]); counts what it drops.
    pub fn keep(&mut self, level: u8, msg: &str, max_message_bytes: usize, max_log_bytes: usize) {
        if level >= LEVEL_PANIC {
            self.panicked = true;
        }
        let left = max_log_bytes.saturating_sub(self.kept_bytes);
        if left <= MESSAGE_OVERHEAD_BYTES {
            self.dropped_messages += 1;
            return;
        }
        let mut cut = msg.len().min(max_message_bytes).min(left - MESSAGE_OVERHEAD_BYTES);
        while !msg.is_char_boundary(cut) {
            cut -= 1;
        }
        self.truncated_bytes += msg.len() - cut;
        self.kept_bytes += cut + MESSAGE_OVERHEAD_BYTES;
        self.messages.push((level, msg[..cut].to_owned()));
    }
}

/// The marker error a denied memory growth traps with.
#[derive(Debug)]
struct MemoryLimitExceeded;

impl std::fmt::Display for MemoryLimitExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("memory limit exceeded")
    }
}

impl std::error::Error for MemoryLimitExceeded {}

/// Caps the sum of all linear memories and table sizes of one instance.
struct MemoryLimiter {
    limit: usize,
    /// Bytes of every memory of the instance, as the limiter has seen them grow.
    total: usize,
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(&mut self, current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        let total = self.total.saturating_add(desired.saturating_sub(current));
        if total > self.limit {
            return Err(wasmtime::Error::new(MemoryLimitExceeded));
        }
        self.total = total;
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }

    fn instances(&self) -> usize {
        32
    }

    fn tables(&self) -> usize {
        32
    }

    fn memories(&self) -> usize {
        8
    }
}

/// Advances the engine's epoch every tick until dropped.
struct Ticker {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// A module that passed `check`: its hash, its declared contract version, and the compiled artifact to store.
#[derive(Debug, Clone)]
pub struct CheckedModule {
    pub sha256: String,
    /// The compiled component, for the store; `Sandbox::load` deserializes it.
    pub serialized: Vec<u8>,
    /// The component's imports (all granted).
    pub imports: Vec<String>,
    /// Whether it exports the `artifact` world (`finish`), which reviewed mode needs.
    pub exports_artifacts: bool,
}

/// A stored module ready to instantiate.
pub struct GuestModule {
    pre: RowTransformPre<HostState>,
    /// Present when the module exports the `artifact` world.
    artifacts: Option<ArtifactPre<HostState>>,
}

impl GuestModule {
    /// Whether the module can run in reviewed mode.
    pub fn exports_artifacts(&self) -> bool {
        self.artifacts.is_some()
    }
}

impl std::fmt::Debug for GuestModule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GuestModule(..)")
    }
}

/// The sandbox: one per process.
pub struct Sandbox {
    engine: Engine,
    linker: Linker<HostState>,
    limits: SandboxLimits,
    stop: StopSignal,
    /// With a pool: the free slots, taken by each run for its life.
    slots: Option<Arc<PoolSlots>>,
    _ticker: Ticker,
}

/// The free slots of a pooled sandbox: a run takes one before its instance exists and gives it back when dropped,
/// so the pool is never exhausted (a run beyond it waits).
#[derive(Debug)]
struct PoolSlots {
    free: Mutex<u32>,
    freed: Condvar,
}

/// One slot of the pool, given back on drop.
#[derive(Debug)]
struct PoolSlot(Arc<PoolSlots>);

impl PoolSlots {
    fn take(self: &Arc<Self>) -> PoolSlot {
        let mut free = self.free.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        while *free == 0 {
            free = self.freed.wait(free).unwrap_or_else(std::sync::PoisonError::into_inner);
        }
        *free -= 1;
        PoolSlot(self.clone())
    }
}

impl Drop for PoolSlot {
    fn drop(&mut self) {
        let mut free = self.0.free.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        *free += 1;
        self.0.freed.notify_one();
    }
}

/// What one instance may hold at most (the limiter's caps): the pool reserves this much per slot.
const MAX_CORE_INSTANCES: u32 = 32;
const MAX_MEMORIES: u32 = 8;
const MAX_TABLES: u32 = 32;
const MAX_TABLE_ELEMENTS: usize = 1_000_000;

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox").field("limits", &self.limits).finish()
    }
}

fn internal(detail: impl std::fmt::Display) -> SandboxError {
    SandboxError::new(FailureClass::ContractMismatch, format!("host: {detail}"))
}

impl Sandbox {
    pub fn new(limits: SandboxLimits) -> Result<Sandbox, SandboxError> {
        let mut config = Config::new();
        config.wasm_component_model(true);
        config.epoch_interruption(true);
        config.consume_fuel(limits.fuel_per_call.is_some());
        config.max_wasm_stack(limits.max_wasm_stack);
        config.parallel_compilation(true);
        if limits.pooled_instances > 0 {
            let n = limits.pooled_instances;
            let mut pool = PoolingAllocationConfig::new();
            pool.total_component_instances(n)
                .total_core_instances(n.saturating_mul(MAX_CORE_INSTANCES))
                .max_core_instances_per_component(MAX_CORE_INSTANCES)
                .total_memories(n.saturating_mul(MAX_MEMORIES))
                .max_memories_per_component(MAX_MEMORIES)
                .max_memories_per_module(MAX_MEMORIES)
                .total_tables(n.saturating_mul(MAX_TABLES))
                .max_tables_per_component(MAX_TABLES)
                .max_tables_per_module(MAX_TABLES)
                .table_elements(MAX_TABLE_ELEMENTS)
                .max_memory_size(limits.memory_bytes)
                // A reused slot's first pages are zeroed in place rather than unmapped: cheaper for small guests.
                .linear_memory_keep_resident(1 << 20);
            config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        }
        let engine = Engine::new(&config).map_err(internal)?;
        let mut linker = Linker::<HostState>::new(&engine);
        RowTransform::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s).map_err(internal)?;
        wasi_stubs::bindings::WasiStubs::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s).map_err(internal)?;
        let stop = Arc::new(AtomicBool::new(false));
        let handle = {
            let engine = engine.clone();
            let stop = stop.clone();
            let tick = limits.epoch_tick;
            std::thread::Builder::new()
                .name("zone-epoch".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(tick);
                        engine.increment_epoch();
                    }
                })
                .map_err(internal)?
        };
        let slots = (limits.pooled_instances > 0)
            .then(|| Arc::new(PoolSlots { free: Mutex::new(limits.pooled_instances), freed: Condvar::new() }));
        Ok(Sandbox {
            engine,
            linker,
            limits,
            stop: StopSignal::default(),
            slots,
            _ticker: Ticker { stop, handle: Some(handle) },
        })
    }

    pub fn limits(&self) -> &SandboxLimits {
        &self.limits
    }

    /// The signal that stops every run of this sandbox (its instances check it at every epoch tick).
    pub fn stop_signal(&self) -> StopSignal {
        self.stop.clone()
    }

    /// Compiles a component and checks it against the contract without running it: size and compile-time
    /// limits, imports on the allow-list, exports of the `row-transform` world.
    pub fn check(&self, wasm: &[u8]) -> Result<CheckedModule, SandboxError> {
        if wasm.len() > self.limits.max_module_bytes {
            return Err(SandboxError::new(
                FailureClass::CompileLimit,
                format!("the module is {} bytes, over the limit of {}", wasm.len(), self.limits.max_module_bytes),
            ));
        }
        let sha256 = hex::encode(Sha256::digest(wasm));
        // Compile on a worker thread so that a pathological module cannot hold the caller past the limit.
        let (tx, rx) = mpsc::channel();
        let engine = self.engine.clone();
        let bytes = wasm.to_vec();
        std::thread::Builder::new()
            .name("zone-compile".into())
            .spawn(move || {
                let _ = tx.send(Component::new(&engine, &bytes));
            })
            .map_err(internal)?;
        let component = match rx.recv_timeout(self.limits.compile_timeout) {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => {
                return Err(SandboxError::new(FailureClass::ContractMismatch, format!("not a valid component: {e}")));
            }
            Err(_) => {
                return Err(SandboxError::new(
                    FailureClass::CompileLimit,
                    format!("compilation took longer than {:?}", self.limits.compile_timeout),
                ));
            }
        };
        let imports = self.check_imports(&component)?;
        let module = self.prepare(&component)?;
        let serialized = component.serialize().map_err(internal)?;
        Ok(CheckedModule { sha256, serialized, imports, exports_artifacts: module.exports_artifacts() })
    }

    fn check_imports(&self, component: &Component) -> Result<Vec<String>, SandboxError> {
        let ty = component.component_type();
        let mut granted = Vec::new();
        let mut denied = Vec::new();
        for (name, _) in ty.imports(&self.engine) {
            let (interface, version) = name.split_once('@').unwrap_or((name, ""));
            let mut parts = version.split('.').map(|p| p.parse::<u64>().ok());
            let major_minor = (parts.next().flatten(), parts.next().flatten());
            if interface.starts_with(CONTRACT_PACKAGE) {
                if major_minor != (Some(CONTRACT_MAJOR_MINOR.0), Some(CONTRACT_MAJOR_MINOR.1)) {
                    return Err(SandboxError::new(
                        FailureClass::ContractMismatch,
                        format!(
                            "the component is built for contract `{name}`; this zone speaks zone:job@{}.{}",
                            CONTRACT_MAJOR_MINOR.0, CONTRACT_MAJOR_MINOR.1
                        ),
                    ));
                }
                granted.push(name.to_owned());
            } else if wasi_stubs::GRANTED.contains(&interface)
                && major_minor == (Some(wasi_stubs::WASI_MAJOR_MINOR.0), Some(wasi_stubs::WASI_MAJOR_MINOR.1))
            {
                granted.push(name.to_owned());
            } else {
                denied.push(name.to_owned());
            }
        }
        if !denied.is_empty() {
            return Err(SandboxError::new(
                FailureClass::ImportDenied,
                format!("the component imports what the zone does not grant: {}", denied.join(", ")),
            ));
        }
        Ok(granted)
    }

    fn prepare(&self, component: &Component) -> Result<GuestModule, SandboxError> {
        let pre = self.linker.instantiate_pre(component).map_err(|e| {
            SandboxError::new(FailureClass::ContractMismatch, format!("the component's imports do not match: {e}"))
        })?;
        // A component without `finish` is a row-transform module; one with a `finish` of another type is refused.
        let artifacts = if component.get_export_index(None, "finish").is_some() {
            Some(ArtifactPre::new(pre.clone()).map_err(|e| {
                SandboxError::new(
                    FailureClass::ContractMismatch,
                    format!("the component's `finish` does not match the artifact world: {e}"),
                )
            })?)
        } else {
            None
        };
        let rows = RowTransformPre::new(pre).map_err(|e| {
            SandboxError::new(
                FailureClass::ContractMismatch,
                format!("the component does not export the row-transform world: {e}"),
            )
        })?;
        Ok(GuestModule { pre: rows, artifacts })
    }

    /// Loads a module that `check` produced (read back from the zone's store, where it is kept under its hash).
    pub fn load(&self, serialized: &[u8]) -> Result<GuestModule, SandboxError> {
        // SAFETY: `serialized` is the output of `Component::serialize` by this zone's engine, stored under its
        // SHA-256 in the zone's read-only object store and checked against it when read back; operators never
        // supply compiled artifacts, only wasm that goes through `check`.
        #[expect(unsafe_code, reason = "deserializing artifacts this zone compiled itself, see the SAFETY note")]
        let component = unsafe { Component::deserialize(&self.engine, serialized) }.map_err(|e| {
            SandboxError::new(FailureClass::ContractMismatch, format!("stored artifact does not load: {e}"))
        })?;
        self.prepare(&component)
    }

    /// Starts a run: a fresh instance, `init` with the input schema and parameters, and the declared output.
    pub fn start(
        &self,
        module: &GuestModule,
        input_schema: &Schema,
        params: &[(String, String)],
    ) -> Result<GuestRun, SandboxError> {
        self.start_instance(module, input_schema, params, false, None)
    }

    /// Starts a run for one isolated block of a `dp` job: like [`Sandbox::start`], with at most `budget` of guest
    /// time for the whole run (its `init` and every call), whatever the job's timeout.
    pub fn start_block(
        &self,
        module: &GuestModule,
        input_schema: &Schema,
        params: &[(String, String)],
        budget: Duration,
    ) -> Result<GuestRun, SandboxError> {
        self.start_instance(module, input_schema, params, false, Some(budget))
    }

    /// Starts a reviewed run: like [`Sandbox::start`], and [`GuestRun::finish`] collects the artifacts at the end.
    /// Refused for a module that does not export the `artifact` world.
    pub fn start_reviewed(
        &self,
        module: &GuestModule,
        input_schema: &Schema,
        params: &[(String, String)],
    ) -> Result<GuestRun, SandboxError> {
        self.start_instance(module, input_schema, params, true, None)
    }

    fn start_instance(
        &self,
        module: &GuestModule,
        input_schema: &Schema,
        params: &[(String, String)],
        reviewed: bool,
        budget: Option<Duration>,
    ) -> Result<GuestRun, SandboxError> {
        let artifact_pre = match (reviewed, &module.artifacts) {
            (false, _) => None,
            (true, Some(pre)) => Some(pre),
            (true, None) => {
                return Err(SandboxError::new(
                    FailureClass::ContractMismatch,
                    "reviewed mode needs a module that exports the artifact world (`finish`)",
                ));
            }
        };
        let slot = self.slots.as_ref().map(PoolSlots::take);
        let state = HostState {
            limiter: MemoryLimiter { limit: self.limits.memory_bytes, total: 0 },
            call_deadline: Instant::now(),
            stop: self.stop.clone(),
            diagnostics: Diagnostics::default(),
            streams: wasi_stubs::StdStreams::default(),
            max_message_bytes: self.limits.max_message_bytes,
            max_log_bytes: self.limits.max_log_bytes_per_job,
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limiter);
        // At every epoch tick: stopped from outside, past the call's deadline, or on.
        store.epoch_deadline_callback(|ctx| {
            let state = ctx.data();
            if state.stop.is_stopped() {
                return Err(wasmtime::Error::new(StoppedFromOutside));
            }
            if Instant::now() >= state.call_deadline {
                return Ok(UpdateDeadline::Interrupt);
            }
            Ok(UpdateDeadline::Continue(1))
        });
        let mut run = GuestRun {
            store,
            bindings: None,
            output: None,
            limits: match budget {
                Some(b) => SandboxLimits { job_timeout: b.min(self.limits.job_timeout), ..self.limits.clone() },
                None => self.limits.clone(),
            },
            spent: Duration::ZERO,
            poisoned: None,
            input_buffer: Vec::new(),
            projection: None,
            _slot: slot,
        };
        let bindings = match artifact_pre {
            Some(pre) => Exports::Artifacts(run.guarded_call("instantiate", |store| pre.instantiate(store))?),
            None => Exports::Rows(run.guarded_call("instantiate", |store| module.pre.instantiate(store))?),
        };
        let schema_bytes = ipc::encode_schema(input_schema).map_err(internal)?;
        let returned = run.guarded_call("init", |store| bindings.call_init(store, &schema_bytes, params))?;
        let declared = returned.map_err(|guest_text| {
            run.store.data_mut().keep(LEVEL_GUEST_ERROR, guest_text);
            SandboxError::new(FailureClass::GuestError, "init returned an error (its text is kept in the zone)")
        })?;
        let schema = ipc::decode_schema(&declared, self.limits.max_output_bytes).map_err(|e| {
            SandboxError::with_zone_detail(
                FailureClass::BadOutput,
                "init's output schema is not a valid Arrow IPC schema",
                e.to_string(),
            )
        })?;
        let output = OutputDecl::from_schema(&schema).map_err(|e| {
            SandboxError::with_zone_detail(
                FailureClass::ContractMismatch,
                "the declared output does not follow the contract",
                e,
            )
        })?;
        if let Some(inputs) = &output.inputs {
            let mut projection = Vec::with_capacity(inputs.len());
            for name in inputs {
                let index = input_schema.index_of(name).map_err(|_| {
                    SandboxError::with_zone_detail(
                        FailureClass::ContractMismatch,
                        "the job declares it reads a column that is not in its input",
                        format!("`{name}`"),
                    )
                })?;
                projection.push(index);
            }
            run.projection = Some(projection);
        }
        run.bindings = Some(bindings);
        run.output = Some(output);
        Ok(run)
    }
}

/// One run of a guest: an instance after a successful `init`.
pub struct GuestRun {
    store: Store<HostState>,
    bindings: Option<Exports>,
    output: Option<OutputDecl>,
    limits: SandboxLimits,
    spent: Duration,
    /// An instance is never called again after a trap.
    poisoned: Option<SandboxError>,
    /// The input IPC buffer, reused from batch to batch.
    input_buffer: Vec<u8>,
    /// The input columns the job declared it reads (`zone.inputs`): only those cross the boundary.
    projection: Option<Vec<usize>>,
    /// The pool slot this run holds (last: given back after the store is dropped).
    _slot: Option<PoolSlot>,
}

impl std::fmt::Debug for GuestRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuestRun").field("spent", &self.spent).field("poisoned", &self.poisoned).finish()
    }
}

impl GuestRun {
    /// The output the guest declared in `init`.
    pub fn output(&self) -> Option<&OutputDecl> {
        self.output.as_ref()
    }

    /// Guest text of this run (agency and inspector only).
    pub fn diagnostics(&self) -> &Diagnostics {
        &self.store.data().diagnostics
    }

    /// Guest CPU time spent so far.
    pub fn spent(&self) -> Duration {
        self.spent
    }

    /// Sets the deadline of the next call: the per-call limit or what is left of the job's, whichever is less. The
    /// epoch callback checks it (and the stop signal) at every tick.
    fn arm(&mut self) -> Result<(), SandboxError> {
        if self.store.data().stop.is_stopped() {
            return Err(SandboxError::new(FailureClass::Stopped, "the zone stopped the run"));
        }
        let left = self.limits.job_timeout.saturating_sub(self.spent);
        if left.is_zero() {
            return Err(SandboxError::new(
                FailureClass::Timeout,
                format!("the run used its {:?}", self.limits.job_timeout),
            ));
        }
        let budget = left.min(self.limits.call_timeout);
        self.store.data_mut().call_deadline = Instant::now() + budget;
        self.store.set_epoch_deadline(1);
        if let Some(fuel) = self.limits.fuel_per_call {
            self.store.set_fuel(fuel).map_err(internal)?;
        }
        Ok(())
    }

    /// One call into the guest: armed with its deadline, timed against the run's budget, and any fault
    /// classified (which poisons the instance).
    fn guarded_call<R>(
        &mut self,
        call: &str,
        f: impl FnOnce(&mut Store<HostState>) -> wasmtime::Result<R>,
    ) -> Result<R, SandboxError> {
        self.arm()?;
        let started = Instant::now();
        let result = f(&mut self.store);
        self.spent += started.elapsed();
        self.store.data_mut().flush_std_streams();
        result.map_err(|e| self.classify(e, call))
    }

    /// Maps a wasmtime error of a call into a failure class; poisons the instance.
    fn classify(&mut self, error: wasmtime::Error, call: &str) -> SandboxError {
        let class = if error.is::<MemoryLimitExceeded>() {
            FailureClass::MemoryLimit
        } else if error.is::<StoppedFromOutside>() {
            FailureClass::Stopped
        } else if error.is::<wasi_stubs::GuestExited>() {
            FailureClass::GuestError
        } else if let Some(trap) = error.downcast_ref::<Trap>() {
            match trap {
                Trap::Interrupt | Trap::OutOfFuel => FailureClass::Timeout,
                Trap::StackOverflow => FailureClass::StackOverflow,
                _ => FailureClass::GuestPanic,
            }
        } else {
            FailureClass::GuestPanic
        };
        let detail = match class {
            FailureClass::Timeout => format!("{call} ran past its deadline ({:?} per call)", self.limits.call_timeout),
            FailureClass::MemoryLimit => {
                format!("{call} needed more than {} bytes of memory", self.limits.memory_bytes)
            }
            FailureClass::StackOverflow => format!("{call} overflowed its stack"),
            FailureClass::GuestError => format!("{call}: the job called exit"),
            FailureClass::Stopped => format!("{call} was stopped by the zone"),
            _ => format!("{call} trapped (messages are kept in the zone)"),
        };
        let e = SandboxError::new(class, detail);
        self.poisoned = Some(e.clone());
        e
    }

    /// Maps one batch through the guest. The output has the input's row count and the declared schema, with
    /// bounded measures clamped.
    pub fn map(&mut self, batch: &RecordBatch) -> Result<RecordBatch, SandboxError> {
        if let Some(e) = &self.poisoned {
            return Err(e.clone());
        }
        if batch.num_rows() > self.limits.max_batch_rows {
            return Err(internal(format!(
                "{} rows, more than the {} a batch may hold",
                batch.num_rows(),
                self.limits.max_batch_rows
            )));
        }
        if self.bindings.is_none() || self.output.is_none() {
            return Err(internal("map before init"));
        }
        let projected = match &self.projection {
            Some(columns) => Some(batch.project(columns).map_err(internal)?),
            None => None,
        };
        let mut input = std::mem::take(&mut self.input_buffer);
        ipc::encode_batch_into(projected.as_ref().unwrap_or(batch), &mut input).map_err(internal)?;
        let bindings = self.bindings.take().ok_or_else(|| internal("map before init"))?;
        let returned = self.guarded_call("map-batch", |store| bindings.call_map_batch(store, &input));
        self.bindings = Some(bindings);
        self.input_buffer = input;
        let returned = returned?;
        let bytes = returned.map_err(|guest_text| {
            self.store.data_mut().keep(LEVEL_GUEST_ERROR, guest_text);
            SandboxError::new(FailureClass::GuestError, "map-batch returned an error (its text is kept in the zone)")
        })?;
        // What the guest returned is refused with fixed text; its names, counts and sizes stay in the zone.
        let out = ipc::decode_batch_owned(bytes, self.limits.max_output_bytes).map_err(|e| {
            SandboxError::with_zone_detail(
                FailureClass::BadOutput,
                "map-batch's output is not a valid Arrow IPC stream within the output limit",
                e.to_string(),
            )
        })?;
        if out.num_rows() != batch.num_rows() {
            return Err(SandboxError::with_zone_detail(
                FailureClass::BadOutput,
                "map-batch returned a different number of rows than it was given",
                format!("{} rows for {} input rows", out.num_rows(), batch.num_rows()),
            ));
        }
        let output = self.output.as_ref().ok_or_else(|| internal("map before init"))?;
        output.conform(&out).map_err(|e| {
            SandboxError::with_zone_detail(FailureClass::BadOutput, "map-batch's output is not the declared one", e)
        })
    }

    /// Ends a reviewed run: calls `finish` once and checks what it returned (at most [`MAX_ARTIFACTS`], plain and
    /// unique names, together at most `max_total_bytes`). Names are the guest's text, so an error never repeats
    /// one: it says which artifact by position.
    pub fn finish(&mut self) -> Result<Vec<GuestArtifact>, SandboxError> {
        if let Some(e) = &self.poisoned {
            return Err(e.clone());
        }
        let bindings = self.bindings.take().ok_or_else(|| internal("finish before init"))?;
        let returned = match &bindings {
            Exports::Artifacts(b) => self.guarded_call("finish", |store| b.call_finish(store)),
            Exports::Rows(_) => Err(internal("finish on a run that was not started as reviewed")),
        };
        // `finish` ends the run: the instance is not called again.
        self.poisoned = Some(internal("the run has finished"));
        let listed = returned?.map_err(|guest_text| {
            self.store.data_mut().keep(LEVEL_GUEST_ERROR, guest_text);
            SandboxError::new(FailureClass::GuestError, "finish returned an error (its text is kept in the zone)")
        })?;
        check_artifacts(listed)
    }
}

/// The host's rule for artifact names and counts (the SDK applies the same, so that honest jobs learn of it first).
fn check_artifacts(listed: Vec<(String, Vec<u8>)>) -> Result<Vec<GuestArtifact>, SandboxError> {
    let bad = |detail: String| {
        SandboxError::with_zone_detail(
            FailureClass::BadOutput,
            "finish returned artifacts the contract does not allow (too many, a name that is not a plain file name, \
             or a name twice)",
            detail,
        )
    };
    if listed.len() > MAX_ARTIFACTS {
        return Err(bad(format!("{} artifacts, more than the {MAX_ARTIFACTS} a run may hold", listed.len())));
    }
    let mut out: Vec<GuestArtifact> = Vec::with_capacity(listed.len());
    for (i, (name, bytes)) in listed.into_iter().enumerate() {
        let plain = !name.is_empty()
            && name.len() <= MAX_ARTIFACT_NAME_BYTES
            && !name.starts_with('.')
            && name != RESERVED_ARTIFACT_NAME
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if !plain {
            return Err(bad(format!(
                "artifact {} has a name that is not a plain file name (ASCII letters, digits, `.`, `_`, `-`, at \
                 most {MAX_ARTIFACT_NAME_BYTES} bytes, not starting with `.`, not `{RESERVED_ARTIFACT_NAME}`)",
                i + 1
            )));
        }
        if let Some(j) = out.iter().position(|a| a.name == name) {
            return Err(bad(format!("artifacts {} and {} have the same name", j + 1, i + 1)));
        }
        out.push(GuestArtifact { name, bytes });
    }
    Ok(out)
}

#[cfg(test)]
mod artifact_tests {
    use super::*;

    #[test]
    fn empty_messages_use_up_the_cap_too() {
        let mut d = Diagnostics::default();
        for _ in 0..10_000 {
            d.keep(2, "", 256, 1024);
        }
        assert_eq!(d.messages.len(), 1024 / MESSAGE_OVERHEAD_BYTES - 1);
        assert_eq!(d.dropped_messages, 10_000 - d.messages.len());
        assert!(d.kept_bytes <= 1024);
        // Long messages are cut at a character boundary, within the message and the run caps.
        let mut d = Diagnostics::default();
        d.keep(2, &"税".repeat(100), 10, 1024);
        assert_eq!(d.messages[0].1, "税".repeat(3));
        assert_eq!(d.truncated_bytes, 300 - 9);
    }

    #[test]
    fn artifact_names_and_counts_are_checked() {
        let ok = check_artifacts(vec![("model.json".into(), b"{}".to_vec()), ("report.md".into(), Vec::new())]);
        assert_eq!(ok.map(|a| a.len()), Ok(2));
        for bad in ["", ".env", "manifest.json", "../x", "a/b", "a\\b", "名", "a b"] {
            let e = check_artifacts(vec![(bad.into(), Vec::new())]).expect_err(bad);
            assert_eq!(e.class, FailureClass::BadOutput);
            assert!(e.zone_detail.as_deref().is_some_and(|z| z.contains("artifact 1")), "{e:?}");
            assert!(e.detail.starts_with("finish returned artifacts the contract does not allow"), "{}", e.detail);
        }
        let long = "x".repeat(MAX_ARTIFACT_NAME_BYTES + 1);
        assert!(check_artifacts(vec![(long, Vec::new())]).is_err());
        let twice = check_artifacts(vec![("a".into(), Vec::new()), ("a".into(), Vec::new())]).expect_err("twice");
        assert!(twice.zone_detail.as_deref().is_some_and(|z| z.contains("artifacts 1 and 2")), "{twice:?}");
        let many = (0..=MAX_ARTIFACTS).map(|i| (format!("a{i}"), Vec::new())).collect();
        assert!(check_artifacts(many).is_err());
    }
}
