//! Finance example: enterprises and tax paid per credit grade, over `tax_credit`, grouped by `year` — or by
//! `industry` when the input carries it (parameter `by = industry`, for a plan that joins the enterprise registry).

use std::sync::Arc;

use zone_sdk::arrow_array::cast::AsArray;
use zone_sdk::arrow_array::types::Float64Type;
use zone_sdk::arrow_array::{Array, Float64Array, Int64Array};
use zone_sdk::{DataType, Job, JobError, Output, Params, RecordBatch, Schema, SchemaRef};

const GRADES: [&str; 5] = ["A", "B", "M", "C", "D"];

struct GradesBy {
    by: String,
    output: SchemaRef,
}

impl Job for GradesBy {
    fn init(input: &Schema, params: &Params) -> zone_sdk::Result<Self> {
        let by: String = params.get_or("by", "year".to_owned())?;
        let by_type = match input.field_with_name(&by) {
            Ok(field) => field.data_type().clone(),
            Err(_) => return Err(JobError::msg(format!("parameter `by` = `{by}`: the input has no such column"))),
        };
        for name in ["credit_grade", "tax_paid"] {
            if input.column_with_name(name).is_none() {
                return Err(JobError::msg(format!("the input has no column `{name}`")));
            }
        }
        let output = Output::new()
            .key(&by, by_type)
            .key("credit_grade", DataType::Utf8)
            .count("enterprises")
            .sum("tax_paid_wan", DataType::Float64, 0.0, 50_000.0)
            .mean("mean_tax_paid_wan", DataType::Float64, 0.0, 50_000.0)
            .schema();
        Ok(GradesBy { by, output })
    }

    fn output(&self) -> Output {
        Output::from_schema(&self.output)
    }

    fn map(&mut self, batch: RecordBatch) -> zone_sdk::Result<RecordBatch> {
        let key = batch.column_by_name(&self.by).ok_or_else(|| JobError::msg("the key column disappeared"))?.clone();
        let grade = batch.column_by_name("credit_grade").ok_or_else(|| JobError::msg("no `credit_grade`"))?;
        let grade = grade.as_string_opt::<i32>().ok_or_else(|| JobError::msg("`credit_grade` is not a string"))?;
        // A grade outside the national scale is a null key: not counted under a made-up grade.
        let grade: zone_sdk::arrow_array::StringArray =
            grade.iter().map(|g| g.filter(|g| GRADES.contains(g))).collect();
        let tax = batch.column_by_name("tax_paid").ok_or_else(|| JobError::msg("no `tax_paid`"))?;
        let tax = tax.as_primitive_opt::<Float64Type>().ok_or_else(|| JobError::msg("`tax_paid` is not Float64"))?;
        let wan: Arc<Float64Array> = Arc::new(tax.unary(|t| t / 10_000.0));
        let rows = batch.num_rows();
        debug_assert_eq!(grade.len(), rows);
        Ok(RecordBatch::try_new(
            self.output.clone(),
            vec![key, Arc::new(grade), Arc::new(Int64Array::from_value(1, rows)), wan.clone(), wan],
        )?)
    }
}

zone_sdk::export_job!(GradesBy);
