//! A job run as one DataFusion plan (DESIGN.md, "A job is a query plan"): Parquet scan of the pinned dataset
//! versions → the policy kernels as UDFs (the subject kept by the host as a keyed fingerprint) → WasmMap, the guest
//! in a sandbox per partition → per-(subject, group) partials → the contribution bound → aggregate by the declared
//! keys → the release gate (threshold, output guard). The store decides whether a run may start and keeps what it
//! releases; this crate only plans and runs.

mod blocks;
mod bound;
mod dp;
mod gate;
mod keys;
mod plan;
mod stage;
mod subjects;
mod table;
pub mod udf;
mod wasm_map;

pub use blocks::BlockCut;
pub use dp::{DpSettings, KeyDomain};
pub use gate::GateError;
pub use keys::RunKeys;
pub use plan::{
    DatasetSource, JobError, JobMap, JobOutcome, JobPlan, JobRun, JobSource, JobSpec, JobStats, ReleaseLimits,
    joined_guest_schema, product_schema,
};
pub use wasm_map::{GuestReport, SUBJECT};
pub use zone_noise::report::{DpReport, MeasureNoise, SelectionNoise};
