//! The release gate: the threshold (groups backed by fewer than `k` distinct subjects are dropped and counted)
//! and the output guard (the released table has exactly the product schema and at most `max_output_rows` rows;
//! more is an error, never a silent truncation; integer sums fit 64 bits exactly, float measures are finite, keys
//! hold no control, bidirectional or invisible character). Bytes are checked where the files are written.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arrow_array::cast::AsArray;
use arrow_array::types::{Decimal128Type, Float64Type, Int64Type};
use arrow_array::{ArrayRef, Int64Array, RecordBatch};
use arrow_schema::{DataType, SchemaRef};
use datafusion::common::{DataFusionError, Result};
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::Distribution;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::StreamExt;

use crate::stage::Stage;

/// Name of the host's distinct-subject count per group, before the gate.
pub const SUBJECTS: &str = "__subjects";

/// Why the gate stopped a release. Every message is fixed host text: the guest chose the rows, names and sizes
/// that were refused, so none of them is repeated here.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GateError {
    #[error("the product would have more than {limit} rows (max_output_rows); nothing is released")]
    TooManyRows { limit: u64 },
    #[error("the product's schema is not the declared one; nothing is released")]
    Schema,
    #[error("the artifacts are over the policy's max_artifact_bytes of {limit} together; nothing is held")]
    ArtifactsTooLarge { limit: u64 },
    #[error("a released measure does not fit its type (an integer sum over 64 bits, or a sum that is not finite)")]
    Overflow,
    #[error(
        "a released key holds a control, bidirectional or invisible character, which no product may carry; nothing \
         is released"
    )]
    KeyText,
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
    /// The product schema (the input has `__subjects` besides, and integer sums as Decimal128 until checked).
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

fn gate_error(e: GateError) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

/// One released column in its product type, checked: integer sums (exact, as Decimal128) must fit Int64, float
/// measures must be finite, string keys must hold no character a reader's screen or spreadsheet would act on.
pub(crate) fn checked_column(column: &ArrayRef, target: &DataType) -> Result<ArrayRef> {
    match (column.data_type(), target) {
        (DataType::Decimal128(_, 0), DataType::Int64) => {
            let sums = column.as_primitive::<Decimal128Type>();
            let mut out = Vec::with_capacity(sums.len());
            for v in sums.iter() {
                out.push(match v {
                    Some(v) => Some(i64::try_from(v).map_err(|_| gate_error(GateError::Overflow))?),
                    None => None,
                });
            }
            Ok(Arc::new(Int64Array::from(out)))
        }
        (DataType::Float64, DataType::Float64) => {
            let values = column.as_primitive::<Float64Type>();
            if values.iter().flatten().any(|v| !v.is_finite()) {
                return Err(gate_error(GateError::Overflow));
            }
            Ok(column.clone())
        }
        (DataType::Utf8, DataType::Utf8) => {
            let keys = column.as_string::<i32>();
            if keys.iter().flatten().any(|k| k.chars().any(zone_sandbox::output::is_unsafe_text_char)) {
                return Err(gate_error(GateError::KeyText));
            }
            Ok(column.clone())
        }
        (got, want) if got == want => Ok(column.clone()),
        _ => Err(gate_error(GateError::Schema)),
    }
}

impl ReleaseGate {
    fn pass(&self, batch: &RecordBatch) -> Result<RecordBatch> {
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
            || got.fields().iter().zip(self.schema.fields()).any(|(a, b)| a.name() != b.name())
        {
            return Err(gate_error(GateError::Schema));
        }
        let checked = out
            .columns()
            .iter()
            .zip(self.schema.fields())
            .map(|(c, f)| checked_column(c, f.data_type()))
            .collect::<Result<Vec<_>>>()?;
        Ok(RecordBatch::try_new(self.schema.clone(), checked)?)
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
