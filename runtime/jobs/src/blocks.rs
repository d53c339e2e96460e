//! Subject-isolated execution for `dp` runs. The host cuts the rows into blocks of at most `b` subjects and runs
//! every block on a fresh instance of the guest (`init` again, nothing carried over), so that whatever the guest
//! does, one subject can change the output of its own block only.
//!
//! Which block a subject is in depends on that subject alone: the block is the top bits of its keyed fingerprint,
//! with `2^bits ≥ 2 n / b` blocks for a public bound `n` on the subjects (the pinned versions' row count), so a
//! block holds `b / 2` subjects or fewer on average. A block that draws more than `b` keeps the `b` with the
//! smallest fingerprints; the rest of its rows are left out (with `b ≥ 16` that is rarer than one block in
//! 10,000). Adding or removing a subject therefore changes one block: at most `b` subjects leave it and `b` come
//! in. With `b = 1` every subject is its own block.
//!
//! A block whose guest traps, runs past its share of the job's time, or returns a refused output is left out and
//! the job goes on: whether a job fails can no longer depend on one person's value.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow_array::cast::AsArray;
use arrow_array::types::UInt64Type;
use arrow_array::{ArrayRef, RecordBatch, UInt64Array};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use datafusion::common::{DataFusionError, Result};
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::{LexOrdering, PhysicalSortExpr};
use datafusion::physical_plan::Distribution;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::StreamExt;
use zone_sandbox::{GuestModule, OutputDecl, Sandbox, SandboxError};

use crate::stage::Stage;
use crate::wasm_map::GuestReport;

/// The host's column of block ids, beside the subject, between the cut and the blocks.
pub(crate) const BLOCK: &str = "__block";

/// How subjects are cut into blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockCut {
    /// A subject's block is its fingerprint shifted right by this much (64: one block).
    shift: u32,
    /// b.
    max_subjects: u64,
    /// How many blocks there can be.
    blocks: u64,
}

impl BlockCut {
    /// The cut for blocks of at most `b` subjects, over at most `population` subjects.
    pub fn new(b: u64, population: u64) -> BlockCut {
        let b = b.max(1);
        if b == 1 {
            return BlockCut { shift: 0, max_subjects: 1, blocks: population.max(1) };
        }
        let blocks = population.saturating_mul(2).div_ceil(b).clamp(1, 1 << 62).next_power_of_two();
        BlockCut { shift: 64 - blocks.trailing_zeros(), max_subjects: b, blocks }
    }

    pub fn max_subjects(&self) -> u64 {
        self.max_subjects
    }

    /// How many blocks the subjects can fall into (a public number: it depends on `b` and the bound only).
    pub fn blocks(&self) -> u64 {
        self.blocks
    }

    pub(crate) fn block(&self, fingerprint: u64) -> u64 {
        fingerprint.checked_shr(self.shift).unwrap_or(0)
    }
}

/// Appends each row's block id: `__subject`, the guest's columns, `__block`.
#[derive(Debug)]
pub(crate) struct BlockIds {
    pub(crate) cut: BlockCut,
    pub(crate) schema: SchemaRef,
}

impl BlockIds {
    pub(crate) fn new(cut: BlockCut, input: &Schema) -> BlockIds {
        let mut fields: Vec<Field> = input.fields().iter().map(|f| f.as_ref().clone()).collect();
        fields.push(Field::new(BLOCK, DataType::UInt64, false));
        BlockIds { cut, schema: Arc::new(Schema::new(fields)) }
    }
}

fn subjects(batch: &RecordBatch) -> Result<&UInt64Array> {
    batch
        .column(0)
        .as_primitive_opt::<UInt64Type>()
        .ok_or_else(|| DataFusionError::Internal("the blocks' first column is not the subject".into()))
}

impl Stage for BlockIds {
    fn name(&self) -> &'static str {
        "BlockIdsExec"
    }

    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BlockIdsExec: {} blocks of at most {} subjects", self.cut.blocks, self.cut.max_subjects)
    }

    fn execute(&self, _partition: usize, input: SendableRecordBatchStream) -> Result<SendableRecordBatchStream> {
        let (cut, schema) = (self.cut, self.schema.clone());
        let stream = input.map(move |batch| {
            let batch = batch?;
            let ids: UInt64Array = subjects(&batch)?.unary(|s| cut.block(s));
            let mut columns = batch.columns().to_vec();
            columns.push(Arc::new(ids) as ArrayRef);
            Ok(RecordBatch::try_new(schema.clone(), columns)?)
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(self.schema.clone(), stream)))
    }
}

/// What the blocks counted (for the providing agencies and the inspector only: the guest decides how many fail).
#[derive(Debug, Default)]
pub(crate) struct BlockCounters {
    pub(crate) blocks: AtomicU64,
    pub(crate) failed: AtomicU64,
    /// Subjects left out because their block drew more than `b`.
    pub(crate) over_capacity: AtomicU64,
}

/// Runs the guest once per block. Its input is `__subject`, the guest's columns and `__block`, sorted by subject
/// within each partition and partitioned by block; it emits `__subject` and the declared output.
#[derive(Debug)]
pub(crate) struct DpBlocks(pub(crate) Arc<BlockRunner>);

/// One partition's state: the block being gathered and the output waiting to go on.
struct Blocks {
    stage: Arc<BlockRunner>,
    /// Rows of the current block (slices of input batches: `__subject` and the guest's columns).
    pending: Vec<RecordBatch>,
    block: Option<u64>,
    subjects_in_block: u64,
    last_subject: Option<u64>,
    out: Vec<RecordBatch>,
    out_rows: usize,
}

/// What runs the blocks of every partition.
pub(crate) struct BlockRunner {
    pub(crate) sandbox: Arc<Sandbox>,
    pub(crate) module: Arc<GuestModule>,
    pub(crate) params: Vec<(String, String)>,
    /// What the guest sees.
    pub(crate) guest_schema: SchemaRef,
    /// What `init` declared when the plan was built; every instance must declare the same.
    pub(crate) declared: OutputDecl,
    /// `__subject` then the declared output.
    pub(crate) schema: SchemaRef,
    pub(crate) cut: BlockCut,
    /// Guest time one block may use.
    pub(crate) budget: Duration,
    pub(crate) report: Arc<Mutex<GuestReport>>,
    pub(crate) rows: Arc<AtomicU64>,
    pub(crate) counters: Arc<BlockCounters>,
    /// Output rows gathered before a batch goes on.
    pub(crate) batch_rows: usize,
    /// The input's columns without `__block`, and where `__block` is.
    pub(crate) columns: Vec<usize>,
    pub(crate) block_column: usize,
}

impl fmt::Debug for BlockRunner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlockRunner").field("cut", &self.cut).finish()
    }
}

impl BlockRunner {
    /// One block on a fresh instance: its output with the subjects beside it, or `None` when the block is left out.
    fn run(&self, rows: &RecordBatch) -> Option<RecordBatch> {
        let attempt = || -> std::result::Result<RecordBatch, SandboxError> {
            let mut run = self.sandbox.start_block(&self.module, &self.guest_schema, &self.params, self.budget)?;
            let result = (|| {
                if run.output() != Some(&self.declared) {
                    return Err(SandboxError::new(
                        zone_sandbox::FailureClass::ContractMismatch,
                        "a block's instance declared a different output than the plan's",
                    ));
                }
                let guest = RecordBatch::try_new(self.guest_schema.clone(), rows.columns()[1..].to_vec())
                    .map_err(|e| SandboxError::new(zone_sandbox::FailureClass::ContractMismatch, e.to_string()))?;
                let max = self.sandbox.limits().max_batch_rows.max(1);
                let mut outputs = Vec::new();
                let mut offset = 0;
                while offset < guest.num_rows() {
                    let len = (guest.num_rows() - offset).min(max);
                    outputs.push(run.map(&guest.slice(offset, len))?);
                    offset += len;
                }
                let schema = self.declared.schema();
                let out = arrow_select::concat::concat_batches(schema, &outputs)
                    .map_err(|e| SandboxError::new(zone_sandbox::FailureClass::BadOutput, e.to_string()))?;
                let mut columns = vec![rows.column(0).clone()];
                columns.extend(out.columns().iter().cloned());
                RecordBatch::try_new(self.schema.clone(), columns)
                    .map_err(|e| SandboxError::new(zone_sandbox::FailureClass::BadOutput, e.to_string()))
            })();
            if let Ok(mut r) = self.report.lock() {
                // Only what a block said: most say nothing, and a job may run a million blocks.
                let said = run.diagnostics();
                if *said != zone_sandbox::Diagnostics::default() {
                    r.diagnostics.push(said.clone());
                }
                r.instances += 1;
                r.guest_time += run.spent();
            }
            result
        };
        self.counters.blocks.fetch_add(1, Ordering::Relaxed);
        self.rows.fetch_add(rows.num_rows() as u64, Ordering::Relaxed);
        match attempt() {
            Ok(out) => Some(out),
            Err(e) => {
                self.counters.failed.fetch_add(1, Ordering::Relaxed);
                if let Ok(mut r) = self.report.lock() {
                    r.block_failures.push(e);
                }
                None
            }
        }
    }
}

impl Blocks {
    /// Runs the gathered block, if any, and starts the next one.
    fn flush_block(&mut self) -> Result<()> {
        let pending = std::mem::take(&mut self.pending);
        self.subjects_in_block = 0;
        self.last_subject = None;
        if pending.is_empty() {
            return Ok(());
        }
        let schema = pending[0].schema();
        let rows = arrow_select::concat::concat_batches(&schema, &pending)?;
        if let Some(out) = self.stage.run(&rows) {
            self.out_rows += out.num_rows();
            self.out.push(out);
        }
        Ok(())
    }

    /// Takes one input batch: cuts it at block boundaries, runs every block it completes.
    fn push(&mut self, batch: &RecordBatch) -> Result<()> {
        let batch = batch.project(&self.stage.columns)?;
        let subjects = subjects(&batch)?.clone();
        let cut = self.stage.cut;
        // The run of kept rows of the current block inside this batch starts here.
        let mut start: Option<usize> = None;
        for i in 0..batch.num_rows() {
            let subject = subjects.value(i);
            let block = cut.block(subject);
            if self.block != Some(block) {
                if let Some(s) = start.take() {
                    self.pending.push(batch.slice(s, i - s));
                }
                self.flush_block()?;
                self.block = Some(block);
            }
            if self.last_subject != Some(subject) {
                self.last_subject = Some(subject);
                self.subjects_in_block += 1;
                if self.subjects_in_block == cut.max_subjects + 1 {
                    // Over capacity: the rest of this block is left out.
                    if let Some(s) = start.take() {
                        self.pending.push(batch.slice(s, i - s));
                    }
                }
                if self.subjects_in_block > cut.max_subjects {
                    self.stage.counters.over_capacity.fetch_add(1, Ordering::Relaxed);
                }
            }
            if self.subjects_in_block <= cut.max_subjects && start.is_none() {
                start = Some(i);
            }
        }
        if let Some(s) = start {
            self.pending.push(batch.slice(s, batch.num_rows() - s));
        }
        Ok(())
    }

    /// The output gathered so far, once there is enough of it (or `all`).
    fn take_output(&mut self, all: bool) -> Result<Option<RecordBatch>> {
        if self.out.is_empty() || (!all && self.out_rows < self.stage.batch_rows) {
            return Ok(None);
        }
        let out = std::mem::take(&mut self.out);
        self.out_rows = 0;
        Ok(Some(arrow_select::concat::concat_batches(&self.stage.schema, &out)?))
    }
}

impl Stage for DpBlocks {
    fn name(&self) -> &'static str {
        "DpBlocksExec"
    }

    /// Every block whole in one partition: partitioned by block id (the query optimizer must keep this, or a
    /// subject's rows could reach two instances).
    fn input_distribution(&self) -> Distribution {
        Distribution::KeyPartitioned(vec![Arc::new(Column::new(BLOCK, self.0.block_column))])
    }

    /// And sorted by subject, so that a block's rows arrive together and its subjects in fingerprint order.
    fn input_ordering(&self) -> Option<LexOrdering> {
        LexOrdering::new([PhysicalSortExpr::new_default(Arc::new(Column::new(crate::wasm_map::SUBJECT, 0)))])
    }

    fn schema(&self) -> SchemaRef {
        self.0.schema.clone()
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = &self.0;
        write!(
            f,
            "DpBlocksExec: a fresh guest instance per block of at most {} subjects ({} blocks), {:?} of guest time \
             each; a failed block is left out",
            r.cut.max_subjects, r.cut.blocks, r.budget
        )
    }

    fn execute(&self, _partition: usize, input: SendableRecordBatchStream) -> Result<SendableRecordBatchStream> {
        let state = Blocks {
            stage: self.0.clone(),
            pending: Vec::new(),
            block: None,
            subjects_in_block: 0,
            last_subject: None,
            out: Vec::new(),
            out_rows: 0,
        };
        let stream = futures::stream::unfold((input, state, false), |(mut input, mut state, done)| async move {
            if done {
                return None;
            }
            loop {
                match input.next().await {
                    Some(Ok(batch)) => {
                        if let Err(e) = state.push(&batch) {
                            return Some((Err(e), (input, state, true)));
                        }
                        match state.take_output(false) {
                            Ok(Some(out)) => return Some((Ok(out), (input, state, false))),
                            Ok(None) => continue,
                            Err(e) => return Some((Err(e), (input, state, true))),
                        }
                    }
                    Some(Err(e)) => return Some((Err(e), (input, state, true))),
                    None => {
                        let last = state.flush_block().and_then(|()| state.take_output(true));
                        return match last {
                            Ok(Some(out)) => Some((Ok(out), (input, state, true))),
                            Ok(None) => None,
                            Err(e) => Some((Err(e), (input, state, true))),
                        };
                    }
                }
            }
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(self.0.schema.clone(), stream)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subject_s_block_depends_on_its_fingerprint_alone() {
        let cut = BlockCut::new(64, 1_000_000);
        assert_eq!(cut.blocks(), 32_768);
        assert_eq!(cut.block(u64::MAX), 32_767);
        assert_eq!(cut.block(0), 0);
        // One more subject in the population moves nobody (the count of blocks is a power of two).
        assert_eq!(BlockCut::new(64, 1_000_001), cut);
        let one = BlockCut::new(1, 10);
        assert_eq!((one.block(12_345), one.max_subjects()), (12_345, 1));
        let tiny = BlockCut::new(64, 3);
        assert_eq!((tiny.blocks(), tiny.block(u64::MAX)), (1, 0));
    }
}
