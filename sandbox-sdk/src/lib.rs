//! The guest SDK: an operator writes a zone job as a plain Rust function over Arrow record batches, and this crate
//! turns it into a WebAssembly component for the `zone:job@0.1.0` contract (`../wit/zone-job.wit`).
//!
//! ```ignore
//! use zone_sdk::{Job, Output, Params, RecordBatch, Schema, DataType};
//!
//! struct CapitalByDistrict;
//!
//! impl Job for CapitalByDistrict {
//!     fn init(input: &Schema, params: &Params) -> zone_sdk::Result<Self> { Ok(CapitalByDistrict) }
//!     fn output(&self) -> Output {
//!         Output::new().key("district", DataType::Utf8).count("firms").sum("capital", DataType::Float64, 0.0, 1e9)
//!     }
//!     fn map(&mut self, batch: RecordBatch) -> zone_sdk::Result<RecordBatch> { /* one output row per input row */ }
//! }
//!
//! zone_sdk::export_job!(CapitalByDistrict);
//! ```
//!
//! Build with `cargo build --release --target wasm32-wasip2`. The SDK decodes each input batch without copying
//! (Arrow arrays point into the bytes the host passed in), re-attaches the declared output schema to what `map`
//! returns, checks the row count, encodes the result, and reports panics through `diagnostics` (the panic text
//! stays in the zone: the operator sees only that the job panicked). No unsafe code and no ABI details in jobs.
//!
//! Where to extend: new helpers for common derivations go in their own module here; the contract itself changes
//! only in the WIT file, with a version bump.

mod artifact;
mod error;
mod ipc;
pub mod log;
mod output;
mod params;

#[doc(hidden)]
pub mod __private;

pub use arrow_array;
pub use arrow_array::{ArrayRef, RecordBatch};
pub use arrow_buffer;
pub use arrow_schema;
pub use arrow_schema::{DataType, Field, Schema, SchemaRef};
pub use artifact::Artifact;
pub use error::{JobError, Result};
pub use output::{Aggregate, Output};
pub use params::Params;

/// A zone job: one instance per partition, `init` once, then `map` for every batch.
pub trait Job: Sized + 'static {
    /// Checks the input schema (what the policy lets the job see) and reads the application's parameters.
    fn init(input: &Schema, params: &Params) -> Result<Self>;

    /// The output: group keys and measures, each measure with its aggregation and bounds. It must equal the output
    /// declared when the application was submitted.
    fn output(&self) -> Output;

    /// Maps one batch to exactly as many rows: output row i derives from input row i. A null key drops that row from
    /// the aggregation. The columns must be in the declared order and of the declared types; the SDK attaches the
    /// declared schema (names and metadata) itself.
    fn map(&mut self, batch: RecordBatch) -> Result<RecordBatch>;

    /// Reviewed mode only: called once after the last batch. The artifacts (a model, a report) stay in the zone
    /// until the providing agency has read and released them; the host never calls this in aggregate mode. Names
    /// are plain file names (letters, digits, `.`, `_`, `-`; at most 100 bytes; unique within the job).
    fn artifacts(&mut self) -> Result<Vec<Artifact>> {
        Ok(Vec::new())
    }
}

/// Exports a [`Job`] as the component's `init`, `map-batch` and `finish` (the `artifact` world, which includes
/// everything of `row-transform`: the same module runs in aggregate and in reviewed mode).
#[macro_export]
macro_rules! export_job {
    ($job:ty) => {
        const _: () = {
            ::std::thread_local! {
                static RUNNING: $crate::__private::Slot<$job> = const { $crate::__private::Slot::empty() };
            }

            struct ZoneJobExports;

            impl $crate::__private::bindings::Guest for ZoneJobExports {
                fn init(
                    input_schema: ::std::vec::Vec<u8>,
                    params: ::std::vec::Vec<(::std::string::String, ::std::string::String)>,
                ) -> ::std::result::Result<::std::vec::Vec<u8>, ::std::string::String> {
                    RUNNING.with(|slot| $crate::__private::init::<$job>(slot, input_schema, params))
                }

                fn map_batch(
                    batch: ::std::vec::Vec<u8>,
                ) -> ::std::result::Result<::std::vec::Vec<u8>, ::std::string::String> {
                    RUNNING.with(|slot| $crate::__private::map_batch::<$job>(slot, batch))
                }

                fn finish() -> ::std::result::Result<
                    ::std::vec::Vec<(::std::string::String, ::std::vec::Vec<u8>)>,
                    ::std::string::String,
                > {
                    RUNNING.with(|slot| $crate::__private::finish::<$job>(slot))
                }
            }

    $crate::__private::bindings::export!(ZoneJobExports with_types_in $crate::__private::bindings);
        };
    };
}
