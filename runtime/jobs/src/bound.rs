//! The contribution bound: each subject contributes to at most `L` groups. Its input has one row per
//! (subject, group) — the per-subject partial aggregates — hash-partitioned by subject, so one partition sees
//! every group of its subjects. Which `L` groups a subject keeps does not depend on row order or partitioning:
//! the ones with the smallest keyed hash of (subject, group key). Each kept partial is then clamped to what
//! `max_rows_per_subject_in_group` rows within the measure's bounds could add, so that no subject dominates a
//! group however many rows it has.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arrow_array::builder::BooleanBufferBuilder;
use arrow_array::cast::AsArray;
use arrow_array::types::UInt64Type;
use arrow_array::{BooleanArray, RecordBatch};
use arrow_schema::SchemaRef;
use datafusion::common::hash_utils::create_hashes_with_hasher;
use datafusion::common::{DataFusionError, Result};
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_plan::Distribution;
use datafusion::physical_plan::execution_plan::EmissionType;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::{StreamExt, TryStreamExt};

use crate::stage::Stage;

pub(crate) struct ContributionBound {
    /// `__subject` (column 0), the keys, then the partial aggregates.
    pub(crate) schema: SchemaRef,
    /// Key columns' indexes in the schema.
    pub(crate) keys: Vec<usize>,
    /// L.
    pub(crate) max_groups_per_subject: u64,
    pub(crate) hasher: crate::keys::RunKeys,
    /// (subject, group) contributions dropped.
    pub(crate) dropped: Arc<AtomicU64>,
    /// The partials clamped to one subject's share of a group.
    pub(crate) clamps: Vec<PartialClamp>,
}

/// One partial column (a sum or a count of one subject in one group) and the range it is clamped to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct PartialClamp {
    pub(crate) column: usize,
    pub(crate) lo: f64,
    pub(crate) hi: f64,
    /// `dp` mode: a Float64 partial is then written in this fixed-point unit (a whole number of units).
    pub(crate) unit: Option<f64>,
}

/// Clamps the partial columns of a batch (Int64 counts, Float64 sums, Decimal128 integer sums).
fn clamp_partials(batch: RecordBatch, clamps: &[PartialClamp]) -> Result<RecordBatch> {
    if clamps.is_empty() {
        return Ok(batch);
    }
    let mut columns = batch.columns().to_vec();
    for c in clamps {
        let column =
            columns.get(c.column).ok_or_else(|| DataFusionError::Internal("a clamped partial is missing".into()))?;
        columns[c.column] = match column.data_type() {
            arrow_schema::DataType::Decimal128(p, s) => {
                // Bounds are whole numbers here (integer measures); `as` saturates at i128's range.
                let (lo, hi) = (c.lo.ceil() as i128, c.hi.floor() as i128);
                let clamped = column
                    .as_primitive::<arrow_array::types::Decimal128Type>()
                    .unary::<_, arrow_array::types::Decimal128Type>(|v| v.clamp(lo, hi.max(lo)))
                    .with_precision_and_scale(*p, *s)?;
                Arc::new(clamped) as arrow_array::ArrayRef
            }
            _ => {
                let clamped = zone_sandbox::output::clamp(column, c.lo, c.hi);
                match (c.unit, clamped.as_primitive_opt::<arrow_array::types::Float64Type>()) {
                    (Some(unit), Some(values)) => {
                        Arc::new(values.unary::<_, arrow_array::types::Float64Type>(|v| (v / unit).round()))
                            as arrow_array::ArrayRef
                    }
                    _ => clamped,
                }
            }
        };
    }
    Ok(RecordBatch::try_new(batch.schema(), columns)?)
}

impl fmt::Debug for ContributionBound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ContributionBound").field("max_groups_per_subject", &self.max_groups_per_subject).finish()
    }
}

/// Subjects are bounded in this many passes, each over the subjects whose fingerprint falls in one bucket, so that
/// the sort buffer holds 1/BUCKETS of the rows at a time.
const BUCKETS: u64 = 64;

/// Keep flags for every row of `batches`: per subject, the `limit` rows with the smallest rank.
///
/// Memory: 4 bytes of rank and 1 flag bit per row for the whole call, and a sort buffer of 24 bytes per row of one
/// bucket. The rank is the top 32 bits of the keyed hash of (subject, group); two groups of one subject with the same
/// 32 bits (about one in four billion) are ordered by position instead.
fn keep_flags(
    batches: &[RecordBatch],
    keys: &[usize],
    limit: u64,
    hasher: &crate::keys::RunKeys,
) -> Result<Vec<BooleanArray>> {
    let mut subjects = Vec::with_capacity(batches.len());
    let mut ranks: Vec<Vec<u32>> = Vec::with_capacity(batches.len());
    let mut hashes = Vec::new();
    for batch in batches {
        let column = batch
            .column(0)
            .as_primitive_opt::<UInt64Type>()
            .ok_or_else(|| DataFusionError::Internal("the bound's first column is not the subject".into()))?;
        subjects.push(column.values());
        hashes.clear();
        hashes.resize(batch.num_rows(), 0);
        let mut columns = vec![batch.column(0).clone()];
        columns.extend(keys.iter().map(|&k| batch.column(k).clone()));
        create_hashes_with_hasher(&columns, hasher, &mut hashes)?;
        ranks.push(hashes.iter().map(|h| (h >> 32) as u32).collect());
    }
    let total: usize = batches.iter().map(RecordBatch::num_rows).sum();
    let mut flags: Vec<BooleanBufferBuilder> = batches
        .iter()
        .map(|b| {
            let mut f = BooleanBufferBuilder::new(b.num_rows());
            f.append_n(b.num_rows(), false);
            f
        })
        .collect();
    let mut entries: Vec<(u64, u32, u32, u32)> = Vec::with_capacity(total / BUCKETS as usize * 2);
    for bucket in 0..BUCKETS {
        entries.clear();
        for (b, (values, ranks)) in subjects.iter().zip(&ranks).enumerate() {
            let b = u32::try_from(b).map_err(|_| DataFusionError::Internal("too many batches".into()))?;
            for (row, (&subject, &rank)) in values.iter().zip(ranks).enumerate() {
                if subject % BUCKETS == bucket {
                    let row = u32::try_from(row).map_err(|_| DataFusionError::Internal("batch too large".into()))?;
                    entries.push((subject, rank, b, row));
                }
            }
        }
        entries.sort_unstable();
        let mut current = None;
        let mut kept = 0u64;
        for &(subject, _, b, row) in &entries {
            if current != Some(subject) {
                current = Some(subject);
                kept = 0;
            }
            if kept < limit {
                flags[b as usize].set_bit(row as usize, true);
                kept += 1;
            }
        }
    }
    Ok(flags.into_iter().map(|mut f| BooleanArray::new(f.finish(), None)).collect())
}

impl Stage for ContributionBound {
    fn name(&self) -> &'static str {
        "ContributionBoundExec"
    }

    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ContributionBoundExec: each subject in at most {} group(s), {} partial(s) clamped to one subject's share",
            self.max_groups_per_subject,
            self.clamps.len()
        )
    }

    fn input_distribution(&self) -> Distribution {
        Distribution::KeyPartitioned(vec![Arc::new(Column::new(crate::wasm_map::SUBJECT, 0))])
    }

    fn emission(&self) -> EmissionType {
        EmissionType::Final
    }

    fn execute(&self, _partition: usize, input: SendableRecordBatchStream) -> Result<SendableRecordBatchStream> {
        let keys = self.keys.clone();
        let limit = self.max_groups_per_subject;
        let hasher = self.hasher;
        let dropped = self.dropped.clone();
        let clamps = self.clamps.clone();
        let stream = futures::stream::once(async move {
            let batches: Vec<RecordBatch> = input.try_collect().await?;
            let flags = keep_flags(&batches, &keys, limit, &hasher)?;
            let mut out = Vec::with_capacity(batches.len());
            for (batch, keep) in batches.into_iter().zip(flags) {
                let kept = keep.true_count();
                dropped.fetch_add((batch.num_rows() - kept) as u64, Ordering::Relaxed);
                if kept == batch.num_rows() {
                    out.push(Ok(clamp_partials(batch, &clamps)?));
                } else if kept > 0 {
                    out.push(Ok(clamp_partials(arrow_select::filter::filter_record_batch(&batch, &keep)?, &clamps)?));
                }
            }
            Ok::<_, DataFusionError>(futures::stream::iter(out))
        })
        .try_flatten();
        Ok(Box::pin(RecordBatchStreamAdapter::new(self.schema.clone(), stream.boxed())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Array, ArrayRef, StringArray, UInt64Array};
    use arrow_schema::{DataType, Field, Schema};

    fn batch(subjects: Vec<u64>, keys: Vec<&str>) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("__subject", DataType::UInt64, false),
            Field::new("k", DataType::Utf8, true),
        ]));
        let columns: Vec<ArrayRef> = vec![Arc::new(UInt64Array::from(subjects)), Arc::new(StringArray::from(keys))];
        RecordBatch::try_new(schema, columns).expect("batch")
    }

    #[test]
    fn partials_are_clamped_to_one_subjects_share() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("__subject", DataType::UInt64, false),
            Field::new("n", DataType::Int64, true),
            Field::new("s", DataType::Decimal128(38, 0), true),
            Field::new("f", DataType::Float64, true),
        ]));
        let columns: Vec<ArrayRef> = vec![
            Arc::new(UInt64Array::from(vec![1, 2])),
            Arc::new(arrow_array::Int64Array::from(vec![9, 1])),
            Arc::new(
                arrow_array::Decimal128Array::from(vec![Some(5_000_000_000_000_000_000_000_i128), Some(-7)])
                    .with_precision_and_scale(38, 0)
                    .expect("decimal"),
            ),
            Arc::new(arrow_array::Float64Array::from(vec![Some(1e300), None])),
        ];
        let batch = RecordBatch::try_new(schema, columns).expect("batch");
        let clamps = [
            PartialClamp { column: 1, lo: 0.0, hi: 3.0, unit: None },
            PartialClamp { column: 2, lo: 0.0, hi: 300.0, unit: None },
            PartialClamp { column: 3, lo: -1.0, hi: 30.0, unit: None },
        ];
        let out = clamp_partials(batch, &clamps).expect("clamped");
        assert_eq!(out.column(1).as_primitive::<arrow_array::types::Int64Type>().values().to_vec(), vec![3, 1]);
        let sums = out.column(2).as_primitive::<arrow_array::types::Decimal128Type>();
        assert_eq!(sums.values().to_vec(), vec![300, 0]);
        let f = out.column(3).as_primitive::<arrow_array::types::Float64Type>();
        assert_eq!(f.value(0), 30.0);
        assert!(f.is_null(1));
    }

    #[test]
    fn each_subject_keeps_at_most_l_groups_whatever_the_order() {
        let hasher = crate::keys::RunKeys::random();
        let a = batch(vec![1, 1, 1, 2, 3, 3], vec!["a", "b", "c", "a", "b", "c"]);
        let b = batch(vec![1, 2], vec!["d", "b"]);
        for limit in 1..=4u64 {
            let flags = keep_flags(&[a.clone(), b.clone()], &[1], limit, &hasher).expect("flags");
            let kept_of = |s: u64| {
                let mut n = 0;
                for (batch, f) in [&a, &b].iter().zip(&flags) {
                    let subjects = batch.column(0).as_primitive::<UInt64Type>();
                    n += (0..batch.num_rows()).filter(|&i| subjects.value(i) == s && f.value(i)).count() as u64;
                }
                n
            };
            assert_eq!(kept_of(1), limit.min(4));
            assert_eq!(kept_of(2), limit.min(2));
            assert_eq!(kept_of(3), limit.min(2));
            // The same rows in the other order keep the same groups.
            let flipped = keep_flags(&[b.clone(), a.clone()], &[1], limit, &hasher).expect("flags");
            assert_eq!(flipped[0], flags[1]);
            assert_eq!(flipped[1], flags[0]);
        }
    }
}
