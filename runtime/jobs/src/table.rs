//! A planned subtree as a table, so that DataFusion's own operators (filter, aggregate, sort) can be planned on
//! top of one of ours and the whole job stays one physical plan.

use std::sync::Arc;

use arrow_schema::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::Result;
use datafusion::datasource::TableType;
use datafusion::logical_expr::Expr;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::projection::ProjectionExec;

#[derive(Debug)]
pub(crate) struct PlanTable {
    plan: Arc<dyn ExecutionPlan>,
}

impl PlanTable {
    pub(crate) fn new(plan: Arc<dyn ExecutionPlan>) -> Arc<PlanTable> {
        Arc::new(PlanTable { plan })
    }
}

#[async_trait]
impl TableProvider for PlanTable {
    fn schema(&self) -> SchemaRef {
        self.plan.schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Temporary
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let schema = self.plan.schema();
        match projection {
            Some(p) if p.len() != schema.fields().len() || p.iter().enumerate().any(|(i, &j)| i != j) => {
                let exprs: Vec<(Arc<dyn PhysicalExpr>, String)> = p
                    .iter()
                    .map(|&i| {
                        let name = schema.field(i).name().clone();
                        (Arc::new(Column::new(&name, i)) as Arc<dyn PhysicalExpr>, name)
                    })
                    .collect();
                Ok(Arc::new(ProjectionExec::try_new(exprs, self.plan.clone())?))
            }
            _ => Ok(self.plan.clone()),
        }
    }
}
