//! Finance example: firms, registered capital and capital per employee by district, industry and size band,
//! over `enterprise_registry` (the agency's policy lets the job see district, industry, capital and employees).

mod compute;

use zone_sdk::{DataType, Job, JobError, Output, Params, RecordBatch, Schema};

struct CapitalByDistrict;

impl Job for CapitalByDistrict {
    fn init(input: &Schema, _params: &Params) -> zone_sdk::Result<Self> {
        for name in ["district", "industry", "reg_capital", "employees"] {
            if input.column_with_name(name).is_none() {
                return Err(JobError::msg(format!("the input has no column `{name}`")));
            }
        }
        Ok(CapitalByDistrict)
    }

    fn output(&self) -> Output {
        Output::new()
            .reads(&["district", "industry", "reg_capital", "employees"])
            .key("district", DataType::Utf8)
            .key("industry", DataType::Utf8)
            .key("size_band", DataType::Utf8)
            .count("firms")
            .sum("capital_wan", DataType::Float64, 0.0, 100_000.0)
            .mean("capital_per_employee", DataType::Float64, 0.0, 1_000_000_000.0)
    }

    fn map(&mut self, batch: RecordBatch) -> zone_sdk::Result<RecordBatch> {
        let columns = compute::derive(&batch).map_err(JobError::msg)?;
        Ok(RecordBatch::try_new(self.output().schema(), columns)?)
    }
}

zone_sdk::export_job!(CapitalByDistrict);
