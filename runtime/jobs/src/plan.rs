//! Builds and runs a job's plan: scan → desensitize → WasmMap → per-(subject, group) partials → contribution bound
//! → aggregate by the declared keys → sort → release gate. Each step is planned by DataFusion on top of the one
//! below, so the result is one physical plan that streams and runs its partitions on every core.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use arrow_array::RecordBatch;
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use datafusion::common::{DataFusionError, JoinType, ScalarValue};
use datafusion::execution::context::SessionContext;
use datafusion::functions_aggregate::count::count_all;
use datafusion::functions_aggregate::expr_fn::{count, max, min, sum};
use datafusion::logical_expr::{Expr, cast, ident, lit};
use datafusion::physical_expr::Partitioning;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::{LexOrdering, PhysicalSortExpr};
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::repartition::RepartitionExec;
use datafusion::physical_plan::sorts::sort::SortExec;
use datafusion::physical_plan::{ExecutionPlan, ExecutionPlanProperties, displayable};
use datafusion::prelude::{DataFrame, ParquetReadOptions, SessionConfig};
use policies::{ColumnKernel, CompiledPolicy, TokenSecret};
use zone_sandbox::{Aggregate, GuestModule, OutputDecl, Sandbox, SandboxError};

use crate::blocks::{BLOCK, BlockCounters, BlockCut, BlockIds, BlockRunner, DpBlocks};
use crate::bound::{ContributionBound, PartialClamp};
use crate::dp::{DpCounters, DpPlan, DpRelease, DpSettings, domain_batch};
use crate::gate::{GateCounters, GateError, ReleaseGate, SUBJECTS};
use crate::keys::RunKeys;
use crate::stage::StageExec;
use crate::subjects::SyntheticSubjects;
use crate::table::PlanTable;
use crate::udf::{KernelUdf, SubjectUdf};
use crate::wasm_map::{GuestReport, SUBJECT, WasmMap};
use zone_noise::report::DpReport;

/// One dataset of a job: its pinned version's files and policy.
#[derive(Debug, Clone)]
pub struct DatasetSource {
    pub name: String,
    pub files: Vec<PathBuf>,
    pub policy: CompiledPolicy,
}

/// Where a job's rows come from.
#[derive(Debug, Clone)]
pub enum JobSource {
    /// Real data, desensitized in the plan with the zone's token secret. Several datasets are joined on the
    /// subject before the map.
    Datasets { datasets: Vec<DatasetSource>, secret: TokenSecret },
    /// A development run on a file of `dataset mock` (rows already shaped as the guest sees them). Each row is its
    /// own subject.
    Mock { file: PathBuf },
}

/// The release settings a run enforces (for a join: the stricter of the policies').
#[derive(Debug, Clone, PartialEq)]
pub struct ReleaseLimits {
    pub min_group_size: u64,
    pub max_groups_per_subject: u64,
    /// A subject's partial in one group is clamped to what this many of its rows within the bounds could add.
    pub max_rows_per_subject_in_group: u64,
    pub max_output_rows: u64,
    /// Reviewed mode: the guest's `finish` is called and its artifacts, together at most this many bytes, are
    /// held for review. `None`: aggregate mode.
    pub max_artifact_bytes: Option<u64>,
    /// `dp` mode: subject-isolated blocks and noise instead of the threshold.
    pub dp: Option<DpSettings>,
}

/// What maps each row of the guest's view to the declared output.
#[derive(Debug, Clone)]
pub enum JobMap {
    /// The operator's module, in the sandbox: a fresh instance per partition.
    Guest { sandbox: Arc<Sandbox>, module: Arc<GuestModule>, params: Vec<(String, String)> },
    /// The same output computed by DataFusion expressions over the guest's view, already clamped to the bounds:
    /// the benchmarks' baseline for what the sandbox costs. Never used for a release.
    Native { declared: OutputDecl, columns: Vec<Expr> },
}

/// Everything a run needs.
#[derive(Debug, Clone)]
pub struct JobSpec {
    pub source: JobSource,
    pub map: JobMap,
    pub limits: ReleaseLimits,
    /// Partitions (and worker threads); 0: one per core.
    pub partitions: usize,
    /// Rows per batch into the guest (capped by the sandbox's `max_batch_rows`).
    pub batch_size: usize,
}

/// Why a run stopped.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("the guest failed ({}): {}", .0.class.name(), .0.detail)]
    Guest(SandboxError),
    #[error("release gate: {0}")]
    Gate(GateError),
    #[error("the job cannot be planned: {0}")]
    Plan(String),
    #[error("the run failed: {0}")]
    Engine(DataFusionError),
}

impl JobError {
    /// The stable class recorded in the audit log and shown to the operator.
    pub fn class(&self) -> &'static str {
        match self {
            JobError::Guest(e) => e.class.name(),
            JobError::Gate(GateError::TooManyRows { .. }) => "release.max_output_rows",
            JobError::Gate(GateError::Schema) => "release.schema",
            JobError::Gate(GateError::ArtifactsTooLarge { .. }) => "release.max_artifact_bytes",
            JobError::Gate(GateError::Overflow) => "release.overflow",
            JobError::Gate(GateError::KeyText) => "release.key_text",
            JobError::Plan(_) => "job.plan",
            JobError::Engine(_) => "job.engine",
        }
    }

    fn from_engine(e: DataFusionError) -> JobError {
        let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(&e);
        while let Some(err) = cur {
            if let Some(s) = err.downcast_ref::<SandboxError>() {
                return JobError::Guest(s.clone());
            }
            if let Some(g) = err.downcast_ref::<GateError>() {
                return JobError::Gate(g.clone());
            }
            cur = err.source();
        }
        JobError::Engine(e)
    }
}

impl From<DataFusionError> for JobError {
    fn from(e: DataFusionError) -> JobError {
        JobError::from_engine(e)
    }
}

/// What a run counted.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct JobStats {
    /// Rows that went through the guest.
    pub rows_read: u64,
    /// (subject, group) contributions dropped by the bound.
    pub contributions_dropped: u64,
    /// Groups before the threshold.
    pub groups: u64,
    /// Groups under `min_group_size`, not released.
    pub groups_suppressed: u64,
    pub rows_released: u64,
    pub guest_instances: u64,
    pub guest_time_ms: u64,
    pub elapsed_ms: u64,
    /// `dp` mode: blocks run, and blocks left out because their guest failed (both the guest's to decide, so never
    /// the operator's to see).
    pub blocks: u64,
    pub failed_blocks: u64,
}

/// A finished run: the released table (the product) and what it took.
#[derive(Debug)]
pub struct JobOutcome {
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
    pub stats: JobStats,
    /// The physical plan, as `EXPLAIN` prints it.
    pub plan: String,
    /// `dp` mode: what the run spent and how it noised.
    pub dp: Option<DpReport>,
}

/// How a run ended, and what its guests left behind either way.
#[derive(Debug)]
pub struct JobRun {
    pub result: Result<JobOutcome, JobError>,
    pub guest: GuestReport,
}

/// A planned job, before it runs: what the guest declared, to compare with the approved declaration.
pub struct JobPlan {
    runtime: tokio::runtime::Runtime,
    ctx: SessionContext,
    plan: Arc<dyn ExecutionPlan>,
    pub declared: OutputDecl,
    /// The product's schema: the keys, then each measure aggregated.
    pub product_schema: SchemaRef,
    rows: Arc<AtomicU64>,
    dropped: Arc<AtomicU64>,
    gate: Arc<GateCounters>,
    report: Arc<Mutex<GuestReport>>,
    dp: Option<Arc<DpPlan>>,
    blocks: Arc<BlockCounters>,
    dp_counters: Arc<DpCounters>,
}

impl std::fmt::Debug for JobPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobPlan").field("declared", &self.declared).finish()
    }
}

/// The guest schema of a job over several datasets: each policy's guest columns in order; a column name shared by
/// two datasets must have one type, and the first dataset's column is the one the guest sees.
pub fn joined_guest_schema(policies: &[(&str, &CompiledPolicy)]) -> Result<SchemaRef, String> {
    let mut fields: Vec<Field> = Vec::new();
    for (dataset, policy) in policies {
        for f in policy.guest_schema().fields() {
            match fields.iter().find(|x| x.name() == f.name()) {
                Some(x) if x.data_type() == f.data_type() => {}
                Some(x) => {
                    return Err(format!(
                        "column `{}` is {} in {dataset} but {} in an earlier dataset of the application",
                        f.name(),
                        f.data_type(),
                        x.data_type()
                    ));
                }
                None => fields.push(f.as_ref().clone()),
            }
        }
    }
    Ok(Arc::new(Schema::new(fields)))
}

/// The product's column for a measure: counts are Int64, means Float64, sums Int64 or Float64, min and max keep
/// the measure's type.
fn product_type(aggregate: Aggregate, declared: &DataType) -> DataType {
    let float = matches!(declared, DataType::Float32 | DataType::Float64);
    match aggregate {
        Aggregate::Count => DataType::Int64,
        Aggregate::Mean => DataType::Float64,
        Aggregate::Sum if float => DataType::Float64,
        Aggregate::Sum => DataType::Int64,
        Aggregate::Min | Aggregate::Max => declared.clone(),
    }
}

/// The product schema of a declaration.
pub fn product_schema(declared: &OutputDecl) -> SchemaRef {
    let mut fields: Vec<Field> =
        declared.keys.iter().map(|k| Field::new(k.name().clone(), k.data_type().clone(), true)).collect();
    fields.extend(
        declared
            .measures
            .iter()
            .map(|m| Field::new(m.field.name().clone(), product_type(m.aggregate, m.field.data_type()), true)),
    );
    Arc::new(Schema::new(fields))
}

/// How integer sums are computed: exact 128-bit decimals (no 64-bit sum wraps silently).
const EXACT_SUM: DataType = DataType::Decimal128(38, 0);

fn is_integer(t: &DataType) -> bool {
    matches!(t, DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64)
}

/// The per-(subject, group) partials the bound clamps: a sum to `rows × [low, high]`, a count to `[0, rows]`,
/// where `rows` is the policy's `max_rows_per_subject_in_group`. Min and max need none (each row is within bounds).
fn partial_clamps(declared: &OutputDecl, pairs: &Schema, rows: u64) -> Result<Vec<PartialClamp>, JobError> {
    let rows = rows.max(1) as f64;
    let index = |name: String| pairs.index_of(&name).map_err(plan_error);
    let mut clamps = Vec::new();
    for m in &declared.measures {
        let name = m.field.name();
        let (lo, hi) = m.bounds.unwrap_or((0.0, 0.0));
        match m.aggregate {
            Aggregate::Count => {
                clamps.push(PartialClamp { column: index(partial(name, "n"))?, lo: 0.0, hi: rows, unit: None })
            }
            Aggregate::Sum => clamps.push(PartialClamp {
                column: index(partial(name, "s"))?,
                lo: lo * rows,
                hi: hi * rows,
                unit: None,
            }),
            Aggregate::Mean => {
                clamps.push(PartialClamp {
                    column: index(partial(name, "s"))?,
                    lo: lo * rows,
                    hi: hi * rows,
                    unit: None,
                });
                clamps.push(PartialClamp { column: index(partial(name, "n"))?, lo: 0.0, hi: rows, unit: None });
            }
            Aggregate::Min | Aggregate::Max => {}
        }
    }
    Ok(clamps)
}

fn plan_error(e: impl std::fmt::Display) -> JobError {
    JobError::Plan(e.to_string())
}

fn partial(name: &str, suffix: &str) -> String {
    format!("{name}__{suffix}")
}

/// What a dataset contributes to the guest's view: `(dataframe with __subject + its columns, columns it adds)`.
async fn dataset_frame(
    ctx: &SessionContext,
    source: &DatasetSource,
    secret: &TokenSecret,
    subject_udf: &datafusion::logical_expr::ScalarUDF,
    guest_schema: &Schema,
    reads: Option<&[String]>,
    taken: &mut Vec<String>,
) -> Result<DataFrame, JobError> {
    let files: Vec<String> = source.files.iter().map(|p| p.display().to_string()).collect();
    let df = ctx.read_parquet(files, ParquetReadOptions::default().file_extension("")).await?;
    let policy = &source.policy;
    let subject = policy.subject();
    if !SubjectUdf::TYPES.contains(&subject.data_type) {
        return Err(plan_error(format!(
            "{}: the subject column `{}` is {}, which the host cannot fingerprint",
            source.name, subject.name, subject.data_type
        )));
    }
    let mut exprs = vec![subject_udf.call(vec![ident(&subject.name)]).alias(SUBJECT)];
    for column in policy.columns() {
        let Some(field) = column.guest_field() else { continue };
        if taken.contains(&column.name) {
            continue;
        }
        taken.push(column.name.clone());
        let read = reads.is_none_or(|r| r.contains(&column.name));
        let guest_type = guest_schema.field_with_name(&column.name).map_err(plan_error)?.data_type().clone();
        let expr = if !read {
            // Not read by the job: never scanned, never sent.
            lit(ScalarValue::try_from(&guest_type)?)
        } else {
            match ColumnKernel::for_rule(&column.rule, secret) {
                None => continue,
                Some(ColumnKernel::Keep) => ident(&column.name),
                Some(kernel) => {
                    KernelUdf::udf(&column.name, kernel, column.data_type.clone(), field.data_type().clone())
                        .call(vec![ident(&column.name)])
                }
            }
        };
        exprs.push(expr.alias(&column.name));
    }
    Ok(df.select(exprs)?.filter(ident(SUBJECT).is_not_null())?)
}

/// The async runtime (one worker per partition) and the DataFusion session a run plans and executes in.
fn engine(spec: &JobSpec) -> Result<(tokio::runtime::Runtime, SessionContext), JobError> {
    let partitions = if spec.partitions == 0 {
        std::thread::available_parallelism().map(usize::from).unwrap_or(2)
    } else {
        spec.partitions
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(partitions)
        .thread_name("zone-job")
        .build()
        .map_err(plan_error)?;
    let max_batch = match &spec.map {
        JobMap::Guest { sandbox, .. } => sandbox.limits().max_batch_rows.max(1),
        JobMap::Native { .. } => usize::MAX,
    };
    let batch_size = spec.batch_size.clamp(1, max_batch);
    let config = SessionConfig::new()
        .with_target_partitions(partitions)
        .with_batch_size(batch_size)
        .set_bool("datafusion.execution.parquet.schema_force_view_types", false)
        .set_bool("datafusion.optimizer.prefer_existing_sort", false);
    Ok((runtime, SessionContext::new_with_config(config)))
}

/// The groups sorted by the keys (when there are any), in one partition: the order the release stages see them in.
async fn sorted_in_one_partition(mut df: DataFrame, keys: &[String]) -> Result<Arc<dyn ExecutionPlan>, JobError> {
    if !keys.is_empty() {
        df = df.sort(keys.iter().map(|k| ident(k).sort(true, true)).collect())?;
    }
    let groups = df.create_physical_plan().await?;
    Ok(if groups.output_partitioning().partition_count() > 1 {
        Arc::new(CoalescePartitionsExec::new(groups))
    } else {
        groups
    })
}

/// The stages of a job's plan, in the order data flows through them: source (the subject's fingerprint and the
/// guest's view of each dataset, joined on the subject), map (the guest, or native expressions), per-(subject,
/// group) partials, the contribution bound, the aggregate by group, the release gate. Each stage is one method;
/// the counters are shared with the plan that runs.
struct Stages<'a> {
    spec: &'a JobSpec,
    ctx: &'a SessionContext,
    hasher: RunKeys,
    rows: Arc<AtomicU64>,
    dropped: Arc<AtomicU64>,
    gate: Arc<GateCounters>,
    report: Arc<Mutex<GuestReport>>,
    blocks: Arc<BlockCounters>,
    dp_counters: Arc<DpCounters>,
}

impl Stages<'_> {
    /// `__subject` + what the guest sees, and what the guest declares for that view.
    async fn source(&self) -> Result<(SchemaRef, Arc<dyn ExecutionPlan>, OutputDecl), JobError> {
        let (spec, ctx) = (self.spec, self.ctx);
        match &spec.source {
            JobSource::Datasets { datasets, secret } => {
                let named: Vec<(&str, &CompiledPolicy)> =
                    datasets.iter().map(|d| (d.name.as_str(), &d.policy)).collect();
                let guest_schema = joined_guest_schema(&named).map_err(JobError::Plan)?;
                let declared = probe(spec, &guest_schema)?;
                let subject_udf = SubjectUdf::udf(self.hasher);
                let mut taken = Vec::new();
                let mut frames = Vec::new();
                for d in datasets {
                    frames.push(
                        dataset_frame(
                            ctx,
                            d,
                            secret,
                            &subject_udf,
                            &guest_schema,
                            declared.inputs.as_deref(),
                            &mut taken,
                        )
                        .await?,
                    );
                }
                let subject_types: Vec<&DataType> = datasets.iter().map(|d| &d.policy.subject().data_type).collect();
                if subject_types.windows(2).any(|w| w[0] != w[1]) {
                    return Err(plan_error(
                        "the datasets' subject columns have different types; they cannot be joined",
                    ));
                }
                let mut frames = frames.into_iter();
                let mut df = frames.next().ok_or_else(|| plan_error("a job needs at least one dataset"))?;
                for (i, right) in frames.enumerate() {
                    let other = format!("{SUBJECT}_{}", i + 1);
                    let right = right.with_column_renamed(SUBJECT, &other)?;
                    df = df.join(right, JoinType::Inner, &[SUBJECT], &[other.as_str()], None)?;
                }
                let mut columns = vec![ident(SUBJECT)];
                columns.extend(guest_schema.fields().iter().map(|f| ident(f.name())));
                let plan = df.select(columns)?.create_physical_plan().await?;
                Ok((guest_schema, plan, declared))
            }
            JobSource::Mock { file } => {
                let df = ctx
                    .read_parquet(file.display().to_string(), ParquetReadOptions::default().file_extension(""))
                    .await?;
                let guest_schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
                let plan = df.create_physical_plan().await?;
                let stage = Arc::new(SyntheticSubjects::new(guest_schema.clone()));
                let declared = probe(spec, &guest_schema)?;
                Ok((guest_schema, Arc::new(StageExec::new(stage, plan)) as Arc<dyn ExecutionPlan>, declared))
            }
        }
    }

    /// The guest (or the native expressions) over the source: `__subject` + the declared output.
    fn map(
        &self,
        source: Arc<dyn ExecutionPlan>,
        guest_schema: &SchemaRef,
        declared: &OutputDecl,
    ) -> Result<DataFrame, JobError> {
        let spec = self.spec;
        match &spec.map {
            JobMap::Guest { sandbox, module, params } => {
                // The guest's view in batches: unread columns are typed nulls, so their fields must admit nulls.
                let batch_guest_schema = Arc::new(Schema::new(
                    guest_schema
                        .fields()
                        .iter()
                        .map(|f| {
                            let read = declared.inputs.as_ref().is_none_or(|r| r.contains(f.name()));
                            f.as_ref().clone().with_nullable(f.is_nullable() || !read)
                        })
                        .collect::<Vec<_>>(),
                ));
                if let Some(dp) = &spec.limits.dp {
                    return self.blocks(source, batch_guest_schema, declared, dp, sandbox, module, params);
                }
                let map = Arc::new(WasmMap {
                    sandbox: sandbox.clone(),
                    module: module.clone(),
                    params: params.clone(),
                    guest_schema: batch_guest_schema,
                    schema: WasmMap::output_schema(declared),
                    declared: declared.clone(),
                    report: self.report.clone(),
                    rows: self.rows.clone(),
                    max_artifact_bytes: spec.limits.max_artifact_bytes,
                });
                // Reviewed mode: one instance sees every row, so that `finish` speaks for the whole run.
                let source: Arc<dyn ExecutionPlan> =
                    if spec.limits.max_artifact_bytes.is_some() && source.output_partitioning().partition_count() > 1 {
                        Arc::new(CoalescePartitionsExec::new(source))
                    } else {
                        source
                    };
                Ok(self.ctx.read_table(PlanTable::new(Arc::new(StageExec::new(map, source))))?)
            }
            JobMap::Native { columns, .. } => {
                let mut exprs = vec![ident(SUBJECT)];
                for (expr, field) in columns.iter().zip(declared.schema().fields()) {
                    exprs.push(expr.clone().alias(field.name()));
                }
                Ok(self.ctx.read_table(PlanTable::new(source))?.select(exprs)?)
            }
        }
    }

    /// `dp` mode: the guest once per block. The rows get their block id, are partitioned by it and sorted by subject
    /// within each partition, so that every block arrives whole and in one piece.
    #[allow(clippy::too_many_arguments, reason = "the map's parts, taken apart by the caller")]
    fn blocks(
        &self,
        source: Arc<dyn ExecutionPlan>,
        guest_schema: SchemaRef,
        declared: &OutputDecl,
        dp: &DpSettings,
        sandbox: &Arc<Sandbox>,
        module: &Arc<GuestModule>,
        params: &[(String, String)],
    ) -> Result<DataFrame, JobError> {
        let cut = BlockCut::new(dp.block_subjects, dp.population);
        let ids = Arc::new(BlockIds::new(cut, &source.schema()));
        let with_ids: Arc<dyn ExecutionPlan> = Arc::new(StageExec::new(ids.clone(), source));
        let n = with_ids.output_partitioning().partition_count().max(1);
        let block_index = ids.schema.index_of(BLOCK).map_err(plan_error)?;
        let partitioned: Arc<dyn ExecutionPlan> = Arc::new(RepartitionExec::try_new(
            with_ids,
            Partitioning::Hash(vec![Arc::new(Column::new(BLOCK, block_index))], n),
        )?);
        let ordering = LexOrdering::new([PhysicalSortExpr::new_default(Arc::new(Column::new(SUBJECT, 0)))])
            .ok_or_else(|| plan_error("no sort order for the blocks"))?;
        let sorted = Arc::new(SortExec::new(ordering, partitioned).with_preserve_partitioning(true));
        let limits = sandbox.limits();
        let share = limits.job_timeout.saturating_mul(u32::try_from(n).unwrap_or(u32::MAX));
        let share = share.checked_div(u32::try_from(cut.blocks()).unwrap_or(u32::MAX)).unwrap_or(share);
        let budget = share.max(limits.epoch_tick.saturating_mul(4)).min(limits.job_timeout);
        let input_schema = sorted.schema();
        let columns = (0..input_schema.fields().len()).filter(|&i| input_schema.field(i).name() != BLOCK).collect();
        let runner = BlockRunner {
            sandbox: sandbox.clone(),
            module: module.clone(),
            params: params.to_vec(),
            guest_schema,
            declared: declared.clone(),
            schema: WasmMap::output_schema(declared),
            cut,
            budget,
            report: self.report.clone(),
            rows: self.rows.clone(),
            counters: self.blocks.clone(),
            batch_rows: self.spec.batch_size.max(1),
            columns,
            block_column: block_index,
        };
        let blocks = Arc::new(StageExec::new(Arc::new(DpBlocks(Arc::new(runner))), sorted));
        Ok(self.ctx.read_table(PlanTable::new(blocks))?)
    }

    /// Per (subject, group) partials; null keys drop the row. Answers the plan and the key names.
    async fn partials(
        &self,
        mut df: DataFrame,
        declared: &OutputDecl,
    ) -> Result<(Arc<dyn ExecutionPlan>, Vec<String>), JobError> {
        let keys: Vec<String> = declared.keys.iter().map(|k| k.name().clone()).collect();
        for k in &keys {
            df = df.filter(ident(k).is_not_null())?;
        }
        let mut group = vec![ident(SUBJECT)];
        group.extend(keys.iter().map(ident));
        let mut partials = Vec::new();
        for m in &declared.measures {
            let name = m.field.name();
            let value = ident(name);
            match m.aggregate {
                Aggregate::Count => partials.push(count(value).alias(partial(name, "n"))),
                // `dp`: every sum as Float64, clamped and then written in its fixed-point unit by the bound.
                Aggregate::Sum if self.spec.limits.dp.is_some() => {
                    partials.push(sum(cast(value, DataType::Float64)).alias(partial(name, "s")))
                }
                // Integer sums are exact: summed as 128-bit decimals, checked against Int64 at the gate.
                Aggregate::Sum if is_integer(m.field.data_type()) => {
                    partials.push(sum(cast(value, EXACT_SUM)).alias(partial(name, "s")))
                }
                Aggregate::Sum => partials.push(sum(value).alias(partial(name, "s"))),
                Aggregate::Mean => {
                    partials.push(sum(cast(value.clone(), DataType::Float64)).alias(partial(name, "s")));
                    partials.push(count(value).alias(partial(name, "n")));
                }
                Aggregate::Min => partials.push(min(value).alias(partial(name, "min"))),
                Aggregate::Max => partials.push(max(value).alias(partial(name, "max"))),
            }
        }
        Ok((df.aggregate(group, partials)?.create_physical_plan().await?, keys))
    }

    /// The contribution bound, on all of a subject's groups at once (the partials hashed by subject).
    fn bound(
        &self,
        pairs: Arc<dyn ExecutionPlan>,
        keys: &[String],
        declared: &OutputDecl,
        dp: Option<&DpPlan>,
    ) -> Result<Arc<dyn ExecutionPlan>, JobError> {
        let pairs_schema = pairs.schema();
        let subject_index = pairs_schema.index_of(SUBJECT).map_err(plan_error)?;
        let n = pairs.output_partitioning().partition_count();
        let pairs: Arc<dyn ExecutionPlan> = if n > 1 {
            Arc::new(RepartitionExec::try_new(
                pairs,
                Partitioning::Hash(vec![Arc::new(Column::new(SUBJECT, subject_index))], n),
            )?)
        } else {
            pairs
        };
        let key_indexes =
            keys.iter().map(|k| pairs_schema.index_of(k)).collect::<Result<Vec<_>, _>>().map_err(plan_error)?;
        if subject_index != 0 {
            return Err(plan_error("the partials do not start with the subject"));
        }
        let limits = &self.spec.limits;
        let mut clamps = partial_clamps(declared, &pairs_schema, limits.max_rows_per_subject_in_group)?;
        if let Some(dp) = dp {
            for m in &dp.measures {
                if let Ok(index) = pairs_schema.index_of(&partial(&m.name, "s")) {
                    for c in clamps.iter_mut().filter(|c| c.column == index) {
                        c.unit = Some(m.unit);
                    }
                }
            }
        }
        let bound = Arc::new(ContributionBound {
            schema: pairs_schema.clone(),
            keys: key_indexes,
            max_groups_per_subject: limits.max_groups_per_subject,
            hasher: self.hasher,
            dropped: self.dropped.clone(),
            clamps,
        });
        Ok(Arc::new(StageExec::new(bound, pairs)))
    }

    /// Aggregates by the keys; each (subject, group) pair is one row here, so counting rows counts distinct
    /// subjects. Answers the plan (one partition, sorted by the keys) and the product's schema.
    async fn finals(
        &self,
        bounded: Arc<dyn ExecutionPlan>,
        keys: &[String],
        declared: &OutputDecl,
    ) -> Result<(Arc<dyn ExecutionPlan>, SchemaRef), JobError> {
        let df = self.ctx.read_table(PlanTable::new(bounded))?;
        let mut finals = vec![count_all().alias(SUBJECTS)];
        for m in &declared.measures {
            let name = m.field.name();
            match m.aggregate {
                Aggregate::Count => finals.push(sum(ident(partial(name, "n"))).alias(name)),
                Aggregate::Sum => finals.push(sum(ident(partial(name, "s"))).alias(name)),
                Aggregate::Mean => {
                    finals.push(sum(ident(partial(name, "s"))).alias(partial(name, "s")));
                    finals.push(sum(ident(partial(name, "n"))).alias(partial(name, "n")));
                }
                Aggregate::Min => finals.push(min(ident(partial(name, "min"))).alias(name)),
                Aggregate::Max => finals.push(max(ident(partial(name, "max"))).alias(name)),
            }
        }
        let df = df.aggregate(keys.iter().map(ident).collect(), finals)?;
        let product = product_schema(declared);
        let mut columns: Vec<Expr> = keys.iter().map(ident).collect();
        columns.push(ident(SUBJECTS));
        for m in &declared.measures {
            let name = m.field.name();
            let target = product.field_with_name(name).map_err(plan_error)?.data_type().clone();
            let expr = match m.aggregate {
                Aggregate::Mean => ident(partial(name, "s")) / cast(ident(partial(name, "n")), DataType::Float64),
                // Stays exact until the gate checks that it fits.
                Aggregate::Sum if is_integer(m.field.data_type()) => {
                    columns.push(ident(name).alias(name));
                    continue;
                }
                _ => ident(name),
            };
            columns.push(cast(expr, target).alias(name));
        }
        let groups = sorted_in_one_partition(df.select(columns)?, keys).await?;
        Ok((groups, product))
    }

    /// `dp` mode: per group, the distinct subjects and each measure's summed partials, sorted by the keys, in one
    /// partition; then the noisy release.
    async fn dp_release(
        &self,
        bounded: Arc<dyn ExecutionPlan>,
        keys: &[String],
        declared: &OutputDecl,
        dp: &Arc<DpPlan>,
    ) -> Result<(Arc<dyn ExecutionPlan>, SchemaRef), JobError> {
        let df = self.ctx.read_table(PlanTable::new(bounded))?;
        let mut finals = vec![count_all().alias(SUBJECTS)];
        for m in &declared.measures {
            let name = m.field.name();
            if matches!(m.aggregate, Aggregate::Count | Aggregate::Mean) {
                finals.push(sum(ident(partial(name, "n"))).alias(partial(name, "n")));
            }
            if matches!(m.aggregate, Aggregate::Sum | Aggregate::Mean) {
                finals.push(sum(ident(partial(name, "s"))).alias(partial(name, "s")));
            }
        }
        let mut groups = df.aggregate(keys.iter().map(ident).collect(), finals)?;
        let domain = &dp.settings.key_domain;
        if !domain.is_empty() {
            // Every declared combination, empty ones too (their partials are null, released as noisy zeros); a
            // group the guest made outside the domain is not released.
            let all = self
                .ctx
                .read_batch(domain_batch(declared, domain, self.spec.limits.max_output_rows).map_err(plan_error)?)?;
            let inner: Vec<String> = (0..keys.len()).map(|i| format!("__domain_key_{i}")).collect();
            let mut renamed: Vec<Expr> = keys.iter().zip(&inner).map(|(k, i)| ident(k).alias(i)).collect();
            let rest: Vec<String> =
                groups.schema().fields().iter().skip(keys.len()).map(|f| f.name().clone()).collect();
            renamed.extend(rest.iter().map(ident));
            let groups_renamed = groups.select(renamed)?;
            let left: Vec<&str> = keys.iter().map(String::as_str).collect();
            let right: Vec<&str> = inner.iter().map(String::as_str).collect();
            let joined = all.join(groups_renamed, JoinType::Left, &left, &right, None)?;
            let mut columns: Vec<Expr> = keys.iter().map(ident).collect();
            columns.extend(rest.iter().map(ident));
            groups = joined.select(columns)?;
        }
        let groups = sorted_in_one_partition(groups, keys).await?;
        let product = dp.product_schema(declared).map_err(plan_error)?;
        let release = Arc::new(DpRelease {
            plan: dp.clone(),
            keys: keys.len(),
            schema: product.clone(),
            max_output_rows: self.spec.limits.max_output_rows,
            counters: self.dp_counters.clone(),
        });
        Ok((Arc::new(StageExec::new(release, groups)), product))
    }

    /// The release gate over the groups: k, the output limits, the counters.
    fn release(&self, groups: Arc<dyn ExecutionPlan>, product: &SchemaRef) -> Arc<dyn ExecutionPlan> {
        let release = Arc::new(ReleaseGate {
            schema: product.clone(),
            min_group_size: self.spec.limits.min_group_size,
            max_output_rows: self.spec.limits.max_output_rows,
            counters: self.gate.clone(),
        });
        Arc::new(StageExec::new(release, groups))
    }
}

impl JobPlan {
    /// Plans a run: reads the sources' schemas, starts one instance to learn what the guest declares, and builds
    /// the plan. Nothing runs yet.
    pub fn build(spec: &JobSpec) -> Result<JobPlan, JobError> {
        let (runtime, ctx) = engine(spec)?;
        let hasher = match &spec.limits.dp {
            Some(dp) => RunKeys::derived(&dp.noise_key, dp.job),
            None => RunKeys::random(),
        };
        let stages = Stages {
            spec,
            ctx: &ctx,
            hasher,
            rows: Arc::new(AtomicU64::new(0)),
            dropped: Arc::new(AtomicU64::new(0)),
            gate: Arc::new(GateCounters::default()),
            report: Arc::new(Mutex::new(GuestReport::default())),
            blocks: Arc::new(BlockCounters::default()),
            dp_counters: Arc::new(DpCounters::default()),
        };
        let (plan, declared, product_schema, dp) = runtime.block_on(async {
            let (guest_schema, source, declared) = stages.source().await?;
            let dp = match &spec.limits.dp {
                Some(settings) => {
                    let cut = BlockCut::new(settings.block_subjects, settings.population);
                    let limits = &spec.limits;
                    Some(Arc::new(
                        DpPlan::new(
                            &declared,
                            settings.clone(),
                            cut.blocks(),
                            limits.min_group_size,
                            limits.max_groups_per_subject,
                            limits.max_rows_per_subject_in_group,
                        )
                        .map_err(plan_error)?,
                    ))
                }
                None => None,
            };
            let mapped = stages.map(source, &guest_schema, &declared)?;
            let (pairs, keys) = stages.partials(mapped, &declared).await?;
            let bounded = stages.bound(pairs, &keys, &declared, dp.as_deref())?;
            let (plan, product) = match &dp {
                Some(dp) => stages.dp_release(bounded, &keys, &declared, dp).await?,
                None => {
                    let (groups, product) = stages.finals(bounded, &keys, &declared).await?;
                    (stages.release(groups, &product), product)
                }
            };
            Ok::<_, JobError>((plan, declared, product, dp))
        })?;
        let Stages { rows, dropped, gate, report, blocks, dp_counters, .. } = stages;
        Ok(JobPlan {
            runtime,
            ctx,
            plan,
            declared,
            product_schema,
            rows,
            dropped,
            gate,
            report,
            dp,
            blocks,
            dp_counters,
        })
    }

    /// The plan as `EXPLAIN` shows it.
    pub fn explain(&self) -> String {
        displayable(self.plan.as_ref()).indent(true).to_string()
    }

    /// Runs the plan to its end.
    pub fn execute(self) -> JobRun {
        let started = Instant::now();
        let plan_text = self.explain();
        let result = self.runtime.block_on(datafusion::physical_plan::collect(self.plan.clone(), self.ctx.task_ctx()));
        // Every partition reports its guest's text when its stream is dropped, whatever happened.
        drop(self.plan);
        let guest = match self.report.lock() {
            Ok(mut r) => std::mem::take(&mut *r),
            Err(_) => GuestReport::default(),
        };
        let batches = match result {
            Ok(b) => b,
            Err(e) => return JobRun { result: Err(JobError::from_engine(e)), guest },
        };
        let (groups, released) = match self.dp {
            Some(_) => {
                let c = &self.dp_counters;
                (c.groups.load(Ordering::Relaxed), c.released.load(Ordering::Relaxed))
            }
            None => (self.gate.groups.load(Ordering::Relaxed), self.gate.released.load(Ordering::Relaxed)),
        };
        let stats = JobStats {
            rows_read: self.rows.load(Ordering::Relaxed),
            contributions_dropped: self.dropped.load(Ordering::Relaxed),
            groups,
            groups_suppressed: groups.saturating_sub(released),
            rows_released: released,
            guest_instances: guest.instances as u64,
            guest_time_ms: u64::try_from(guest.guest_time.as_millis()).unwrap_or(u64::MAX),
            elapsed_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            blocks: self.blocks.blocks.load(Ordering::Relaxed),
            failed_blocks: self.blocks.failed.load(Ordering::Relaxed),
        };
        let dp = self.dp.as_ref().map(|d| d.report.clone());
        JobRun { result: Ok(JobOutcome { schema: self.product_schema, batches, stats, plan: plan_text, dp }), guest }
    }
}

/// Starts one instance with the job's guest schema to learn the declared output.
fn probe(spec: &JobSpec, guest_schema: &Schema) -> Result<OutputDecl, JobError> {
    match &spec.map {
        JobMap::Guest { sandbox, module, params } => {
            let run = match spec.limits.max_artifact_bytes {
                Some(_) => sandbox.start_reviewed(module, guest_schema, params),
                None => sandbox.start(module, guest_schema, params),
            }
            .map_err(JobError::Guest)?;
            run.output().cloned().ok_or_else(|| plan_error("the guest declared no output"))
        }
        JobMap::Native { declared, columns } if columns.len() == declared.schema().fields().len() => {
            Ok(declared.clone())
        }
        JobMap::Native { .. } => Err(plan_error("a native map needs one expression per declared column")),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use arrow_array::Array;
    use arrow_array::cast::AsArray;
    use arrow_array::types::Int64Type;
    use arrow_schema::DataType;
    use zone_sandbox::output::{key, measure};

    use super::*;

    /// Visits by district over the clinic fixture (many visits per patient), as the host's plan computes them with
    /// `max_rows_per_subject_in_group = rows`: (district → (visits counted, rows summed)).
    fn visits_by_district(rows: u64) -> BTreeMap<String, (i64, i64)> {
        let file = datasets_fixtures::committed_parquet("clinic_visits");
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
            std::fs::File::open(&file).expect("open"),
        )
        .expect("parquet");
        let policy = CompiledPolicy::compile(
            "clinic_visits",
            datasets_fixtures::policy_text("clinic_visits").expect("policy"),
            reader.schema(),
        )
        .expect("policy");
        let declared = OutputDecl::from_schema(&Schema::new(vec![
            key("district", DataType::Utf8),
            measure("visits", DataType::Int64, Aggregate::Count, None),
            measure("rows", DataType::Int64, Aggregate::Sum, Some((0.0, 1.0))),
        ]))
        .expect("declared");
        let spec = JobSpec {
            source: JobSource::Datasets {
                datasets: vec![DatasetSource { name: "clinic_visits".into(), files: vec![file], policy }],
                secret: TokenSecret::from_bytes([3; 32]),
            },
            map: JobMap::Native { declared, columns: vec![ident("district"), lit(1i64), lit(1i64)] },
            limits: ReleaseLimits {
                min_group_size: 2,
                max_groups_per_subject: 1_000,
                max_rows_per_subject_in_group: rows,
                max_output_rows: 10_000,
                max_artifact_bytes: None,
                dp: None,
            },
            partitions: 2,
            batch_size: 4_096,
        };
        let outcome = JobPlan::build(&spec).expect("plan").execute().result.expect("run");
        let mut out = BTreeMap::new();
        for b in &outcome.batches {
            let district = b.column(0).as_string::<i32>();
            let visits = b.column(1).as_primitive::<Int64Type>();
            let summed = b.column(2).as_primitive::<Int64Type>();
            for i in 0..b.num_rows() {
                out.insert(district.value(i).to_owned(), (visits.value(i), summed.value(i)));
            }
        }
        out
    }

    #[test]
    fn one_subject_adds_at_most_its_share_to_a_group_however_many_rows_it_has() {
        // Independently, from the raw rows: visits and distinct patients per district.
        let file = datasets_fixtures::committed_parquet("clinic_visits");
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
            std::fs::File::open(&file).expect("open"),
        )
        .expect("parquet")
        .build()
        .expect("reader");
        let mut patients: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let mut visits: BTreeMap<String, i64> = BTreeMap::new();
        for batch in reader {
            let batch = batch.expect("batch");
            let district = batch.column_by_name("district").expect("district").as_string::<i32>().clone();
            let patient = batch.column_by_name("patient_id").expect("patient").as_string::<i32>().clone();
            for i in 0..batch.num_rows() {
                if district.is_null(i) || patient.is_null(i) {
                    continue;
                }
                patients.entry(district.value(i).to_owned()).or_default().insert(patient.value(i).to_owned());
                *visits.entry(district.value(i).to_owned()).or_default() += 1;
            }
        }
        assert!(visits.values().sum::<i64>() > patients.values().map(|p| p.len() as i64).sum::<i64>());
        // One row's worth per subject: the count and the sum are the district's patients, not its visits.
        let one = visits_by_district(1);
        assert!(!one.is_empty());
        for (d, (counted, summed)) in &one {
            let n = patients[d].len() as i64;
            assert_eq!((*counted, *summed), (n, n), "{d}");
        }
        // A share larger than any patient's visits: every visit counts.
        let all = visits_by_district(1_000_000);
        for (d, (counted, summed)) in &all {
            assert_eq!((*counted, *summed), (visits[d], visits[d]), "{d}");
        }
    }
}
