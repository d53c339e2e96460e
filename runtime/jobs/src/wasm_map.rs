//! WasmMap: each partition's batches streamed through one fresh sandbox instance of the guest. The first input
//! column is the subject fingerprint and never crosses into the guest; output row i derives from input row i, so
//! the host puts each row's subject back beside the guest's output.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arrow_array::RecordBatch;
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use datafusion::common::{DataFusionError, Result};
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::Distribution;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::StreamExt;
use zone_sandbox::{Diagnostics, GuestArtifact, GuestModule, GuestRun, OutputDecl, Sandbox, SandboxError};

use crate::gate::GateError;
use crate::stage::Stage;

/// The host's column: each row's subject fingerprint.
pub const SUBJECT: &str = "__subject";

/// What every partition's guest left behind: text for the agency and the inspector (or the operator, in a dev run),
/// and guest CPU time.
#[derive(Debug, Default)]
pub struct GuestReport {
    pub diagnostics: Vec<Diagnostics>,
    pub instances: usize,
    pub guest_time: std::time::Duration,
    /// Reviewed mode: what `finish` returned, held for the providing agency.
    pub artifacts: Vec<GuestArtifact>,
    /// `dp` mode: why each block that was left out failed (for the agency and the inspector).
    pub block_failures: Vec<SandboxError>,
}

pub(crate) struct WasmMap {
    pub(crate) sandbox: Arc<Sandbox>,
    pub(crate) module: Arc<GuestModule>,
    pub(crate) params: Vec<(String, String)>,
    /// What the guest sees (the policies' guest schema).
    pub(crate) guest_schema: SchemaRef,
    /// What `init` declared when the plan was built; every instance must declare the same.
    pub(crate) declared: OutputDecl,
    /// `__subject` then the declared output.
    pub(crate) schema: SchemaRef,
    pub(crate) report: Arc<Mutex<GuestReport>>,
    /// Rows sent through the guest.
    pub(crate) rows: Arc<AtomicU64>,
    /// Reviewed mode: one instance over every row, `finish` at the end, artifacts within this many bytes.
    pub(crate) max_artifact_bytes: Option<u64>,
}

impl fmt::Debug for WasmMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WasmMap").field("schema", &self.schema).finish()
    }
}

impl WasmMap {
    /// The output schema: the subject, then the guest's declared columns.
    pub(crate) fn output_schema(declared: &OutputDecl) -> SchemaRef {
        let mut fields = vec![Field::new(SUBJECT, DataType::UInt64, false)];
        fields.extend(declared.schema().fields().iter().map(|f| f.as_ref().clone()));
        Arc::new(Schema::new(fields))
    }
}

/// A guest failure inside the plan; the job maps it back to its class.
pub(crate) fn guest_failure(e: SandboxError) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

/// One partition: the instance, and what it reports when the stream ends.
struct Partition {
    run: GuestRun,
    guest_schema: SchemaRef,
    schema: SchemaRef,
    max_rows: usize,
    report: Arc<Mutex<GuestReport>>,
    reported: bool,
    rows: Arc<AtomicU64>,
}

impl Partition {
    fn map(&mut self, batch: &RecordBatch) -> Result<RecordBatch> {
        let subject = batch.column(0).clone();
        let guest_columns = batch.columns()[1..].to_vec();
        let guest = RecordBatch::try_new(self.guest_schema.clone(), guest_columns)?;
        if guest.num_rows() == 0 {
            return Ok(RecordBatch::new_empty(self.schema.clone()));
        }
        self.rows.fetch_add(guest.num_rows() as u64, Ordering::Relaxed);
        let mut outputs = Vec::new();
        let mut offset = 0;
        while offset < guest.num_rows() {
            let len = (guest.num_rows() - offset).min(self.max_rows);
            outputs.push(self.run.map(&guest.slice(offset, len)).map_err(guest_failure)?);
            offset += len;
        }
        let out = arrow_select_concat(&outputs)?;
        let mut columns = vec![subject];
        columns.extend(out.columns().iter().cloned());
        Ok(RecordBatch::try_new(self.schema.clone(), columns)?)
    }

    /// Reviewed mode, after the last batch: the artifacts, within the policy's cap.
    fn finish(&mut self, max_bytes: u64) -> Result<()> {
        let artifacts = self.run.finish().map_err(guest_failure)?;
        let bytes: u64 = artifacts.iter().map(|a| a.bytes.len() as u64).sum();
        if bytes > max_bytes {
            return Err(DataFusionError::External(Box::new(GateError::ArtifactsTooLarge { limit: max_bytes })));
        }
        if let Ok(mut r) = self.report.lock() {
            r.artifacts.extend(artifacts);
        }
        Ok(())
    }

    fn report(&mut self) {
        if self.reported {
            return;
        }
        self.reported = true;
        if let Ok(mut r) = self.report.lock() {
            r.diagnostics.push(self.run.diagnostics().clone());
            r.instances += 1;
            r.guest_time += self.run.spent();
        }
    }
}

impl Drop for Partition {
    fn drop(&mut self) {
        self.report();
    }
}

fn arrow_select_concat(batches: &[RecordBatch]) -> Result<RecordBatch> {
    match batches {
        [one] => Ok(one.clone()),
        _ => {
            let schema = batches
                .first()
                .map(RecordBatch::schema)
                .ok_or_else(|| DataFusionError::Internal("no guest output".into()))?;
            Ok(arrow_select::concat::concat_batches(&schema, batches)?)
        }
    }
}

impl Stage for WasmMap {
    fn name(&self) -> &'static str {
        "WasmMapExec"
    }

    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys: Vec<&str> = self.declared.keys.iter().map(|k| k.name().as_str()).collect();
        let measures: Vec<String> =
            self.declared.measures.iter().map(|m| format!("{}({})", m.aggregate, m.field.name())).collect();
        write!(
            f,
            "WasmMapExec: guest sees {} columns, keys [{}], measures [{}]; subject kept by the host",
            self.guest_schema.fields().len(),
            keys.join(", "),
            measures.join(", ")
        )
    }

    fn input_distribution(&self) -> Distribution {
        if self.max_artifact_bytes.is_some() {
            Distribution::SinglePartition
        } else {
            Distribution::UnspecifiedDistribution
        }
    }

    fn execute(&self, _partition: usize, input: SendableRecordBatchStream) -> Result<SendableRecordBatchStream> {
        let run = match self.max_artifact_bytes {
            Some(_) => self.sandbox.start_reviewed(&self.module, &self.guest_schema, &self.params),
            None => self.sandbox.start(&self.module, &self.guest_schema, &self.params),
        }
        .map_err(guest_failure)?;
        if run.output() != Some(&self.declared) {
            return Err(guest_failure(SandboxError::new(
                zone_sandbox::FailureClass::ContractMismatch,
                "an instance declared a different output than the plan's",
            )));
        }
        let partition = Partition {
            run,
            guest_schema: self.guest_schema.clone(),
            schema: self.schema.clone(),
            max_rows: self.sandbox.limits().max_batch_rows.max(1),
            report: self.report.clone(),
            reported: false,
            rows: self.rows.clone(),
        };
        // Each batch through the guest; in reviewed mode, `finish` once the input has ended. After an error the
        // stream ends.
        let state = (input, partition, self.max_artifact_bytes, false);
        let stream = futures::stream::unfold(state, |(mut input, mut partition, finish, done)| async move {
            if done {
                return None;
            }
            let out = match input.next().await {
                Some(batch) => batch.and_then(|b| partition.map(&b)),
                None => {
                    let finished = match finish {
                        Some(max_bytes) => partition.finish(max_bytes),
                        None => Ok(()),
                    };
                    partition.report();
                    return finished.err().map(|e| (Err(e), (input, partition, None, true)));
                }
            };
            let failed = out.is_err();
            if failed {
                partition.report();
            }
            Some((out, (input, partition, finish, failed)))
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(self.schema.clone(), stream)))
    }
}
