//! The release gate: the threshold (groups backed by fewer than `k` distinct subjects are dropped and counted)
//! and the output guard (the released table has exactly the product schema and at most `max_output_rows` rows;
//! more is an error, never a silent truncation). Bytes are checked where the files are written.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arrow_array::RecordBatch;
use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_schema::SchemaRef;
use datafusion::common::{DataFusionError, Result};
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::Distribution;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::StreamExt;

use crate::stage::Stage;

/// Name of the host's distinct-subject count per group, before the gate.
pub const SUBJECTS: &str = "__subjects";

/// Why the gate stopped a release.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GateError {
    #[error("the product would have more than {limit} rows (max_output_rows); nothing is released")]
    TooManyRows { limit: u64 },
    #[error("the product's schema is not the declared one: {detail}")]
    Schema { detail: String },
    #[error(
        "the artifacts are {bytes} bytes together, over the policy's max_artifact_bytes of {limit}; nothing is held"
    )]
    ArtifactsTooLarge { bytes: u64, limit: u64 },
}

/// What the gate counted.
#[derive(Debug, Default)]
pub(crate) struct GateCounters {
    pub(crate) groups: AtomicU64,
    pub(crate) suppressed: AtomicU64,
    pub(crate) released: AtomicU64,
}

#[derive(Clone)]
pub(crate) struct ReleaseGate {
    /// The product schema (the input has `__subjects` besides).
    pub(crate) schema: SchemaRef,
    pub(crate) min_group_size: u64,
    pub(crate) max_output_rows: u64,
    pub(crate) counters: Arc<GateCounters>,
}

impl fmt::Debug for ReleaseGate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReleaseGate").field("k", &self.min_group_size).finish()
    }
}

impl ReleaseGate {
    fn pass(&self, batch: &RecordBatch) -> Result<RecordBatch> {
        let gate_error = |e: GateError| DataFusionError::External(Box::new(e));
        let index = batch.schema().index_of(SUBJECTS)?;
        let subjects = batch
            .column(index)
            .as_primitive_opt::<Int64Type>()
            .ok_or_else(|| DataFusionError::Internal(format!("{SUBJECTS} is not Int64")))?;
        let keep: arrow_array::BooleanArray = subjects
            .iter()
            .map(|n| Some(n.is_some_and(|n| u64::try_from(n).is_ok_and(|n| n >= self.min_group_size))))
            .collect();
        let kept = keep.true_count() as u64;
        self.counters.groups.fetch_add(batch.num_rows() as u64, Ordering::Relaxed);
        self.counters.suppressed.fetch_add(batch.num_rows() as u64 - kept, Ordering::Relaxed);
        let released = self.counters.released.fetch_add(kept, Ordering::Relaxed) + kept;
        if released > self.max_output_rows {
            return Err(gate_error(GateError::TooManyRows { limit: self.max_output_rows }));
        }
        let filtered = arrow_select::filter::filter_record_batch(batch, &keep)?;
        let columns: Vec<usize> = (0..filtered.num_columns()).filter(|&i| i != index).collect();
        let out = filtered.project(&columns)?;
        let got = out.schema();
        if got.fields().len() != self.schema.fields().len()
            || got
                .fields()
                .iter()
                .zip(self.schema.fields())
                .any(|(a, b)| a.name() != b.name() || a.data_type() != b.data_type())
        {
            return Err(gate_error(GateError::Schema { detail: format!("got {got}, declared {}", self.schema) }));
        }
        Ok(RecordBatch::try_new(self.schema.clone(), out.columns().to_vec())?)
    }
}

impl Stage for ReleaseGate {
    fn name(&self) -> &'static str {
        "ReleaseGateExec"
    }

    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ReleaseGateExec: groups with at least {} distinct subjects, at most {} rows",
            self.min_group_size, self.max_output_rows
        )
    }

    fn input_distribution(&self) -> Distribution {
        Distribution::SinglePartition
    }

    fn execute(&self, _partition: usize, input: SendableRecordBatchStream) -> Result<SendableRecordBatchStream> {
        let gate = self.clone();
        let stream = input.map(move |b| b.and_then(|b| gate.pass(&b)));
        Ok(Box::pin(RecordBatchStreamAdapter::new(self.schema.clone(), stream)))
    }
}
