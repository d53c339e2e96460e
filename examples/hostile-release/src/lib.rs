//! Hostile example: a guest that tries to get around the release gate on `enterprise_registry`, by the parameter
//! `attack`:
//! - `person`: keys its output by a per-person value (the legal representative's token), so every group is one
//!   person's firms: the threshold must release nothing;
//! - `copy`: copies the first row's key and measure into every row of each batch, to lift that row's group: the
//!   host attributes each output row to its own input row's subject, so no contribution is invented;
//! - `bounds`: reports a measure far outside its declared bounds: the host clamps it.
//! - `slow`: an honest job that burns `spin` iterations per row (default 1,000,000) — a long run, for the tests
//!   that stop one from outside;
//! - anything else (`none`): an honest job, employees by district.
//!
//! In reviewed mode, by the parameter `artifact`:
//! - `dump`: copies every row's district and legal representative token into an artifact, which the agency's
//!   review must catch (the operator never sees it unless released);
//! - `big`: one artifact of 9 MiB, over the fixture policy's `max_artifact_bytes` (8 MiB): nothing is held;
//! - anything else: no artifact.

use std::sync::Arc;

use zone_sdk::arrow_array::cast::AsArray;
use zone_sdk::arrow_array::types::Int32Type;
use zone_sdk::arrow_array::{Array, ArrayRef, Float64Array, Int64Array, StringArray};
use zone_sdk::{Artifact, DataType, Job, JobError, Output, Params, RecordBatch, Schema, SchemaRef};

struct HostileRelease {
    attack: String,
    artifact: String,
    dump: String,
    spin: u64,
    output: SchemaRef,
}

impl Job for HostileRelease {
    fn init(input: &Schema, params: &Params) -> zone_sdk::Result<Self> {
        let attack: String = params.get_or("attack", "none".to_owned())?;
        let artifact: String = params.get_or("artifact", "none".to_owned())?;
        let spin = params.get_or("spin", 1_000_000_u64)?;
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
        Ok(HostileRelease { attack, artifact, dump: String::new(), spin, output })
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
        if self.attack == "slow" {
            let mut x = 0_u64;
            for i in 0..self.spin.saturating_mul(rows as u64) {
                x = std::hint::black_box(x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(i));
            }
            std::hint::black_box(x);
        }
        if self.artifact == "dump" {
            for i in 0..rows {
                if !district.is_null(i) && !person.is_null(i) {
                    self.dump.push_str(district.value(i));
                    self.dump.push(',');
                    self.dump.push_str(person.value(i));
                    self.dump.push('\n');
                }
            }
        }
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

    fn artifacts(&mut self) -> zone_sdk::Result<Vec<Artifact>> {
        Ok(match self.artifact.as_str() {
            "dump" => vec![Artifact::text("rows.csv", std::mem::take(&mut self.dump))],
            "big" => vec![Artifact::new("big.bin", vec![7_u8; 9 << 20])],
            _ => Vec::new(),
        })
    }
}

zone_sdk::export_job!(HostileRelease);
