//! Health example: visits, total and mean cost by district and age band, over `clinic_visits`. The guest sees the
//! birth year and the visit month (the policy generalizes both), never the patient: the age at the visit is the
//! visit's year minus the birth year, banded. Parameters: `by` (`district` alone, or the default
//! `district,age_band`) and `max_cost` (the bound each visit's cost is clamped to, default 200,000 yuan: a tighter
//! bound means less noise in `dp` mode).

use std::sync::Arc;

use zone_sdk::arrow_array::builder::StringBuilder;
use zone_sdk::arrow_array::cast::AsArray;
use zone_sdk::arrow_array::types::{Float64Type, Int32Type};
use zone_sdk::arrow_array::{Array, Float64Array, Int64Array};
use zone_sdk::{DataType, Job, JobError, Output, Params, RecordBatch, Schema, SchemaRef};

/// Age bands, as upper bounds (inclusive) and labels; the last band is open.
const BANDS: [(i32, &str); 5] = [(17, "0-17"), (39, "18-39"), (59, "40-59"), (74, "60-74"), (i32::MAX, "75+")];

fn age_band(age: i32) -> Option<&'static str> {
    if !(0..=130).contains(&age) {
        return None;
    }
    BANDS.iter().find(|(upper, _)| age <= *upper).map(|(_, label)| *label)
}

/// The year of a `YYYY-MM` month.
fn year_of(month: &str) -> Option<i32> {
    month.get(..4)?.parse().ok()
}

struct CostsByAgeBand {
    output: SchemaRef,
    bands: bool,
}

impl Job for CostsByAgeBand {
    fn init(input: &Schema, params: &Params) -> zone_sdk::Result<Self> {
        for (name, data_type) in [
            ("district", DataType::Utf8),
            ("birth_date", DataType::Int32),
            ("visit_date", DataType::Utf8),
            ("cost", DataType::Float64),
        ] {
            let field = input.field_with_name(name).map_err(|_| JobError::msg(format!("no input column `{name}`")))?;
            if field.data_type() != &data_type {
                return Err(JobError::msg(format!("`{name}` is {}, expected {data_type}", field.data_type())));
            }
        }
        let bands = match params.get("by").unwrap_or("district,age_band") {
            "district" => false,
            "district,age_band" => true,
            other => return Err(JobError::msg(format!("`by` is `{other}`, not `district` or `district,age_band`"))),
        };
        let max_cost: f64 = params.get_or("max_cost", 200_000.0)?;
        if !(max_cost > 0.0 && max_cost <= 200_000.0) {
            return Err(JobError::msg("`max_cost` must be above 0 and at most 200000"));
        }
        let mut output =
            Output::new().reads(&["district", "birth_date", "visit_date", "cost"]).key("district", DataType::Utf8);
        if bands {
            output = output.key("age_band", DataType::Utf8);
        }
        let output = output
            .count("visits")
            .sum("cost", DataType::Float64, 0.0, max_cost)
            .mean("mean_cost", DataType::Float64, 0.0, max_cost)
            .schema();
        Ok(CostsByAgeBand { output, bands })
    }

    fn output(&self) -> Output {
        Output::from_schema(&self.output)
    }

    fn map(&mut self, batch: RecordBatch) -> zone_sdk::Result<RecordBatch> {
        let column = |name: &str| batch.column_by_name(name).ok_or_else(|| JobError::msg(format!("no `{name}`")));
        let district = column("district")?.clone();
        let birth_year = column("birth_date")?.as_primitive::<Int32Type>();
        let visit_month = column("visit_date")?.as_string::<i32>();
        let cost = column("cost")?.as_primitive::<Float64Type>();
        let rows = batch.num_rows();
        let mut band = StringBuilder::with_capacity(rows, rows * 5);
        for i in 0..rows {
            let age = match (birth_year.is_valid(i), visit_month.is_valid(i)) {
                (true, true) => year_of(visit_month.value(i)).map(|v| v - birth_year.value(i)),
                _ => None,
            };
            // An unknown age is a null key: the row is dropped from the aggregation, not guessed.
            band.append_option(age.and_then(age_band));
        }
        let cost: Arc<Float64Array> = Arc::new(cost.clone());
        let mut columns: Vec<zone_sdk::arrow_array::ArrayRef> = vec![district];
        if self.bands {
            columns.push(Arc::new(band.finish()));
        }
        columns.extend([Arc::new(Int64Array::from_value(1, rows)) as _, cost.clone() as _, cost as _]);
        Ok(RecordBatch::try_new(self.output.clone(), columns)?)
    }
}

zone_sdk::export_job!(CostsByAgeBand);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bands() {
        assert_eq!(age_band(0), Some("0-17"));
        assert_eq!(age_band(17), Some("0-17"));
        assert_eq!(age_band(18), Some("18-39"));
        assert_eq!(age_band(75), Some("75+"));
        assert_eq!(age_band(-1), None);
        assert_eq!(year_of("2024-03"), Some(2024));
        assert_eq!(year_of("20"), None);
    }
}
