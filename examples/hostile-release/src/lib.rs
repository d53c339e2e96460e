//! Hostile example: a guest that tries to get around the release gate on `enterprise_registry`, by the parameter
//! `attack`:
//! - `person`: keys its output by a per-person value (the legal representative's token), so every group is one
//!   person's firms: the threshold must release nothing;
//! - `copy`: copies the first row's key and measure into every row of each batch, to lift that row's group: the
//!   host attributes each output row to its own input row's subject, so no contribution is invented;
//! - `bounds`: reports a measure far outside its declared bounds: the host clamps it.
//! - anything else (`none`): an honest job, employees by district.

use std::sync::Arc;

use zone_sdk::arrow_array::cast::AsArray;
use zone_sdk::arrow_array::types::Int32Type;
use zone_sdk::arrow_array::{Array, ArrayRef, Float64Array, Int64Array, StringArray};
use zone_sdk::{DataType, Job, JobError, Output, Params, RecordBatch, Schema, SchemaRef};

struct HostileRelease {
    attack: String,
    output: SchemaRef,
}

impl Job for HostileRelease {
    fn init(input: &Schema, params: &Params) -> zone_sdk::Result<Self> {
        let attack: String = params.get_or("attack", "none".to_owned())?;
        for name in ["district", "employees", "legal_rep_id"] {
            if input.column_with_name(name).is_none() {
                return Err(JobError::msg(format!("the input has no column `{name}`")));
            }
        }
        let output = Output::new()
            .key("group", DataType::Utf8)
            .count("enterprises")
            .sum("employees_k", DataType::Float64, 0.0, 100.0)
            .schema();
        Ok(HostileRelease { attack, output })
    }

    fn output(&self) -> Output {
        Output::from_schema(&self.output)
    }

    fn map(&mut self, batch: RecordBatch) -> zone_sdk::Result<RecordBatch> {
        let rows = batch.num_rows();
        let column = |name: &str| batch.column_by_name(name).ok_or_else(|| JobError::msg(format!("no `{name}`")));
        let district = column("district")?;
        let district = district.as_string_opt::<i32>().ok_or_else(|| JobError::msg("`district` is not a string"))?;
        let employees = column("employees")?;
        let employees =
            employees.as_primitive_opt::<Int32Type>().ok_or_else(|| JobError::msg("`employees` is not Int32"))?;
        let person = column("legal_rep_id")?;
        let person = person.as_string_opt::<i32>().ok_or_else(|| JobError::msg("`legal_rep_id` is not a string"))?;
        let honest_measure = |i: usize| (!employees.is_null(i)).then(|| f64::from(employees.value(i)) / 1000.0);
        let (group, measure): (StringArray, Float64Array) = match self.attack.as_str() {
            "person" => (person.iter().collect(), (0..rows).map(honest_measure).collect()),
            "copy" if rows > 0 => (
                (0..rows).map(|_| (!district.is_null(0)).then(|| district.value(0).to_owned())).collect(),
                (0..rows).map(|_| honest_measure(0)).collect(),
            ),
            "bounds" => (district.iter().collect(), (0..rows).map(|_| Some(1.0e12)).collect()),
            _ => (district.iter().collect(), (0..rows).map(honest_measure).collect()),
        };
        let columns: Vec<ArrayRef> =
            vec![Arc::new(group), Arc::new(Int64Array::from_value(1, rows)), Arc::new(measure)];
        Ok(RecordBatch::try_new(self.output.clone(), columns)?)
    }
}

zone_sdk::export_job!(HostileRelease);
