//! Registry profile over `enterprise_registry` — the benchmark's job: firms by district × industry × founding year
//! (the policy generalizes `founded` to its year), with how many have a phone on record (the policy masks it), how
//! many name a legal representative (the policy tokenizes the ID), and their employees. The desensitized columns
//! are read, so the run pays for the HMAC tokenization and the masking as a real job does.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::Int32Type;
use arrow_array::{Array, ArrayRef, Float64Array, Int64Array};
use zone_sdk::{DataType, Job, JobError, Output, Params, RecordBatch, Schema};

/// What the job reads, in the order `map` expects them.
const READS: [&str; 6] = ["district", "industry", "founded", "phone", "legal_rep_id", "employees"];

struct RegistryProfile;

impl Job for RegistryProfile {
    fn init(input: &Schema, _params: &Params) -> zone_sdk::Result<Self> {
        for name in READS {
            if input.column_with_name(name).is_none() {
                return Err(JobError::msg(format!("the input has no column `{name}`")));
            }
        }
        Ok(RegistryProfile)
    }

    fn output(&self) -> Output {
        Output::new()
            .reads(&READS)
            .key("district", DataType::Utf8)
            .key("industry", DataType::Utf8)
            .key("founded", DataType::Int32)
            .count("firms")
            .sum("with_phone", DataType::Int64, 0.0, 1.0)
            .sum("with_representative", DataType::Int64, 0.0, 1.0)
            .sum("employees", DataType::Float64, 0.0, 100_000.0)
    }

    fn map(&mut self, batch: RecordBatch) -> zone_sdk::Result<RecordBatch> {
        let column = |name: &str| batch.column_by_name(name).ok_or_else(|| JobError::msg(format!("no `{name}`")));
        let present = |name: &str| -> zone_sdk::Result<Int64Array> {
            let c = column(name)?;
            Ok((0..c.len()).map(|i| Some(i64::from(c.is_valid(i)))).collect())
        };
        let employees = column("employees")?;
        let employees =
            employees.as_primitive_opt::<Int32Type>().ok_or_else(|| JobError::msg("`employees` is not Int32"))?;
        let employees: Float64Array = employees.iter().map(|v| v.map(f64::from)).collect();
        let columns: Vec<ArrayRef> = vec![
            column("district")?.clone(),
            column("industry")?.clone(),
            column("founded")?.clone(),
            Arc::new(Int64Array::from_value(1, batch.num_rows())),
            Arc::new(present("phone")?),
            Arc::new(present("legal_rep_id")?),
            Arc::new(employees),
        ];
        Ok(RecordBatch::try_new(self.output().schema(), columns)?)
    }
}

zone_sdk::export_job!(RegistryProfile);
