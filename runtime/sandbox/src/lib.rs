//! # zone-sandbox — running operators' WebAssembly under hard limits
//!
//! The only crate that names wasmtime. It knows Arrow record batches, not DataFusion. A guest is a WebAssembly
//! component of the `row-transform` world in `sandbox-sdk/wit/` (the single source of truth for host and guest).
//!
//! ```text
//!  wasm bytes ─Sandbox::check─▶ CheckedModule (sha256, serialized)      size and compile-time limits,
//!                                    │ stored under its hash            imports on the allow-list, exports
//!                                    ▼
//!               Sandbox::load ─▶ GuestModule ─Sandbox::start(schema)─▶ GuestRun ──map(batch)──▶ batch
//!                                               fresh instance, init,    epoch deadline per call and per run,
//!                                               declared OutputDecl      memory limiter, output validated,
//!                                                                        measures clamped
//! ```
//!
//! Every failure is a [`SandboxError`] with a [`FailureClass`] (`Timeout`, `MemoryLimit`, `StackOverflow`,
//! `GuestPanic`, `GuestError`, `BadOutput`, `ImportDenied`, `ContractMismatch`, `CompileLimit`) and host-written
//! detail. Text the guest produces (logs, panic messages, error strings) never appears in an error: it is kept,
//! capped, in [`Diagnostics`] for the agency and the inspector.
//!
//! Where to extend: new limits in [`SandboxLimits`]; new host imports in the WIT world and in `host.rs`, with an
//! entry in the import allow-list; output rules in `output.rs`.

mod error;
mod host;
mod limits;
pub mod output;
#[cfg(feature = "testing")]
pub mod testing;

pub use error::{FailureClass, SandboxError};
pub use host::{
    CheckedModule, Diagnostics, GuestArtifact, GuestModule, GuestRun, LEVEL_PANIC, MAX_ARTIFACT_NAME_BYTES,
    MAX_ARTIFACTS, MESSAGE_OVERHEAD_BYTES, RESERVED_ARTIFACT_NAME, Sandbox, StopSignal,
};
pub use limits::SandboxLimits;
pub use output::{Aggregate, Measure, OutputDecl};
