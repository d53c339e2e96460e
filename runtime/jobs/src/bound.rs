//! The contribution bound: each subject contributes to at most `L` groups. Its input has one row per
//! (subject, group) — the per-subject partial aggregates — hash-partitioned by subject, so one partition sees
//! every group of its subjects. Which `L` groups a subject keeps does not depend on row order or partitioning:
//! the ones with the smallest keyed hash of (subject, group key).

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

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
    pub(crate) hasher: std::hash::RandomState,
    /// (subject, group) contributions dropped.
    pub(crate) dropped: Arc<AtomicU64>,
}

impl fmt::Debug for ContributionBound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ContributionBound").field("max_groups_per_subject", &self.max_groups_per_subject).finish()
    }
}

/// Keep flags for every row of `batches`: per subject, the `limit` rows with the smallest rank.
fn keep_flags(
    batches: &[RecordBatch],
    keys: &[usize],
    limit: u64,
    hasher: &std::hash::RandomState,
) -> Result<Vec<Vec<bool>>> {
    // (subject, rank, batch, row): 24 bytes per (subject, group), for the duration of the sort.
    let total: usize = batches.iter().map(RecordBatch::num_rows).sum();
    let mut entries: Vec<(u64, u64, u32, u32)> = Vec::with_capacity(total);
    let mut ranks = Vec::new();
    for (b, batch) in batches.iter().enumerate() {
        let subjects = batch
            .column(0)
            .as_primitive_opt::<UInt64Type>()
            .ok_or_else(|| DataFusionError::Internal("the bound's first column is not the subject".into()))?;
        ranks.clear();
        ranks.resize(batch.num_rows(), 0);
        let mut columns = vec![batch.column(0).clone()];
        columns.extend(keys.iter().map(|&k| batch.column(k).clone()));
        create_hashes_with_hasher(&columns, hasher, &mut ranks)?;
        let b = u32::try_from(b).map_err(|_| DataFusionError::Internal("too many batches".into()))?;
        for (row, (&subject, &rank)) in subjects.values().iter().zip(ranks.iter()).enumerate() {
            let row = u32::try_from(row).map_err(|_| DataFusionError::Internal("batch too large".into()))?;
            entries.push((subject, rank, b, row));
        }
    }
    let mut flags: Vec<Vec<bool>> = batches.iter().map(|b| vec![false; b.num_rows()]).collect();
    entries.sort_unstable();
    let mut current = None;
    let mut kept = 0u64;
    for (subject, _, b, row) in entries {
        if current != Some(subject) {
            current = Some(subject);
            kept = 0;
        }
        if kept < limit {
            flags[b as usize][row as usize] = true;
            kept += 1;
        }
    }
    Ok(flags)
}

impl Stage for ContributionBound {
    fn name(&self) -> &'static str {
        "ContributionBoundExec"
    }

    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ContributionBoundExec: each subject in at most {} group(s)", self.max_groups_per_subject)
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
        let hasher = self.hasher.clone();
        let dropped = self.dropped.clone();
        let stream = futures::stream::once(async move {
            let batches: Vec<RecordBatch> = input.try_collect().await?;
            let flags = keep_flags(&batches, &keys, limit, &hasher)?;
            let mut out = Vec::with_capacity(batches.len());
            for (batch, keep) in batches.into_iter().zip(flags) {
                let kept = keep.iter().filter(|k| **k).count();
                dropped.fetch_add((batch.num_rows() - kept) as u64, Ordering::Relaxed);
                if kept == batch.num_rows() {
                    out.push(Ok(batch));
                } else if kept > 0 {
                    out.push(Ok(arrow_select::filter::filter_record_batch(&batch, &BooleanArray::from(keep))?));
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
    use arrow_array::{ArrayRef, StringArray, UInt64Array};
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
    fn each_subject_keeps_at_most_l_groups_whatever_the_order() {
        let hasher = std::hash::RandomState::new();
        let a = batch(vec![1, 1, 1, 2, 3, 3], vec!["a", "b", "c", "a", "b", "c"]);
        let b = batch(vec![1, 2], vec!["d", "b"]);
        for limit in 1..=4u64 {
            let flags = keep_flags(&[a.clone(), b.clone()], &[1], limit, &hasher).expect("flags");
            let kept_of = |s: u64| {
                let mut n = 0;
                for (batch, f) in [&a, &b].iter().zip(&flags) {
                    let subjects = batch.column(0).as_primitive::<UInt64Type>();
                    n += (0..batch.num_rows()).filter(|&i| subjects.value(i) == s && f[i]).count() as u64;
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
