//! One DataFusion `ExecutionPlan` for each of the job's own operators (the sandboxed map, the contribution bound,
//! the release gate): a [`Stage`] says what the operator does to one partition's stream, and [`StageExec`]
//! carries it in a plan.

use std::fmt;
use std::sync::Arc;

use arrow_schema::SchemaRef;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::{
    EquivalenceProperties, LexOrdering, LexRequirement, OrderingRequirements, Partitioning, PhysicalExpr,
};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, Distribution, ExecutionPlan, ExecutionPlanProperties, PlanProperties,
};

/// What one of the job's operators does.
pub(crate) trait Stage: fmt::Debug + Send + Sync + 'static {
    fn name(&self) -> &'static str;
    /// The schema of what the stage emits.
    fn schema(&self) -> SchemaRef;
    /// One line for `EXPLAIN`.
    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result;
    /// How the input must be partitioned.
    fn input_distribution(&self) -> Distribution {
        Distribution::UnspecifiedDistribution
    }
    /// The order the input must arrive in, within each partition (the optimizer keeps or adds the sort).
    fn input_ordering(&self) -> Option<LexOrdering> {
        None
    }
    /// Whether rows come out as they go in, or only at the end.
    fn emission(&self) -> EmissionType {
        EmissionType::Incremental
    }
    /// The stage over one partition of its input.
    fn execute(&self, partition: usize, input: SendableRecordBatchStream) -> Result<SendableRecordBatchStream>;
}

/// A [`Stage`] in a plan, over one input.
pub(crate) struct StageExec<S: Stage> {
    stage: Arc<S>,
    input: Arc<dyn ExecutionPlan>,
    properties: Arc<PlanProperties>,
}

impl<S: Stage> fmt::Debug for StageExec<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StageExec").field("stage", &self.stage).finish()
    }
}

impl<S: Stage> StageExec<S> {
    pub(crate) fn new(stage: Arc<S>, input: Arc<dyn ExecutionPlan>) -> StageExec<S> {
        let partitions = match stage.input_distribution() {
            Distribution::SinglePartition => 1,
            _ => input.output_partitioning().partition_count(),
        };
        let properties = PlanProperties::new(
            EquivalenceProperties::new(stage.schema()),
            Partitioning::UnknownPartitioning(partitions),
            stage.emission(),
            Boundedness::Bounded,
        );
        StageExec { stage, input, properties: Arc::new(properties) }
    }
}

impl<S: Stage> DisplayAs for StageExec<S> {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.stage.describe(f)
    }
}

impl<S: Stage> ExecutionPlan for StageExec<S> {
    fn name(&self) -> &str {
        self.stage.name()
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn required_input_distribution(&self) -> Vec<Distribution> {
        vec![self.stage.input_distribution()]
    }

    fn required_input_ordering(&self) -> Vec<Option<OrderingRequirements>> {
        vec![self.stage.input_ordering().map(|o| OrderingRequirements::new(LexRequirement::from(o)))]
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(self: Arc<Self>, children: Vec<Arc<dyn ExecutionPlan>>) -> Result<Arc<dyn ExecutionPlan>> {
        let [input] = <[_; 1]>::try_from(children).map_err(|c| {
            DataFusionError::Internal(format!("{} takes one input, not {}", self.stage.name(), c.len()))
        })?;
        Ok(Arc::new(StageExec::new(self.stage.clone(), input)))
    }

    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        let input = self.input.execute(partition, context)?;
        self.stage.execute(partition, input)
    }
}
