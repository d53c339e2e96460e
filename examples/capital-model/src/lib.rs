//! Reviewed-mode example: a capital model over `enterprise_registry`. Every row goes to the host's aggregation
//! (firms by industry), and the job fits, per industry section, ln(1 + registered capital) against
//! ln(1 + employees) by least squares. `finish` returns the fitted model (`model.json`) and a short report
//! (`report.md`); both stay in the zone until the market-regulation agency has read and released them.
//!
//! Sections with fewer than `min_firms` firms (parameter, default 30) are left out of the model, so that no
//! coefficient rests on a handful of firms; the agency's review is the check that this was honoured.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Int32Type, Int64Type};
use arrow_array::{Array, ArrayRef, Int64Array};
use zone_sdk::{Artifact, DataType, Job, JobError, Output, Params, RecordBatch, Schema};

/// Running sums of one section's least-squares fit.
#[derive(Debug, Default, Clone, Copy)]
struct Sums {
    n: u64,
    x: f64,
    y: f64,
    xx: f64,
    xy: f64,
}

impl Sums {
    fn add(&mut self, x: f64, y: f64) {
        self.n += 1;
        self.x += x;
        self.y += y;
        self.xx += x * x;
        self.xy += x * y;
    }

    /// (slope, intercept), when the employees vary.
    fn fit(&self) -> Option<(f64, f64)> {
        let n = self.n as f64;
        let denominator = n * self.xx - self.x * self.x;
        if self.n < 2 || denominator.abs() < 1e-9 {
            return None;
        }
        let slope = (n * self.xy - self.x * self.y) / denominator;
        Some((slope, (self.y - slope * self.x) / n))
    }
}

struct CapitalModel {
    min_firms: u64,
    sections: BTreeMap<String, Sums>,
    rows: u64,
}

impl Job for CapitalModel {
    fn init(input: &Schema, params: &Params) -> zone_sdk::Result<Self> {
        for name in ["industry", "reg_capital", "employees"] {
            if input.column_with_name(name).is_none() {
                return Err(JobError::msg(format!("the input has no column `{name}`")));
            }
        }
        let min_firms = params.get_or("min_firms", 30_u64)?;
        Ok(CapitalModel { min_firms, sections: BTreeMap::new(), rows: 0 })
    }

    fn output(&self) -> Output {
        Output::new().reads(&["industry", "reg_capital", "employees"]).key("industry", DataType::Utf8).count("firms")
    }

    fn map(&mut self, batch: RecordBatch) -> zone_sdk::Result<RecordBatch> {
        let column = |name: &str| batch.column_by_name(name).ok_or_else(|| JobError::msg(format!("no `{name}`")));
        let industry = column("industry")?.clone();
        let sections = industry.as_string_opt::<i32>().ok_or_else(|| JobError::msg("`industry` is not a string"))?;
        let capital = column("reg_capital")?;
        let capital =
            capital.as_primitive_opt::<Int64Type>().ok_or_else(|| JobError::msg("`reg_capital` is not Int64"))?;
        let employees = column("employees")?;
        let employees =
            employees.as_primitive_opt::<Int32Type>().ok_or_else(|| JobError::msg("`employees` is not Int32"))?;
        for i in 0..batch.num_rows() {
            if sections.is_null(i) || capital.is_null(i) || employees.is_null(i) {
                continue;
            }
            let x = f64::from(employees.value(i).max(0)).ln_1p();
            let y = (capital.value(i).max(0) as f64).ln_1p();
            self.sections.entry(sections.value(i).to_owned()).or_default().add(x, y);
        }
        self.rows += batch.num_rows() as u64;
        let columns: Vec<ArrayRef> = vec![industry, Arc::new(Int64Array::from_value(1, batch.num_rows()))];
        Ok(RecordBatch::try_new(self.output().schema(), columns)?)
    }

    fn artifacts(&mut self) -> zone_sdk::Result<Vec<Artifact>> {
        let mut model =
            String::from("{\n  \"model\": \"ln(1 + reg_capital) = intercept + slope * ln(1 + employees)\",\n");
        let _ = writeln!(model, "  \"min_firms\": {},\n  \"sections\": {{", self.min_firms);
        let mut report = String::from("# Registered capital against employees, by industry section\n\n");
        let _ = writeln!(
            report,
            "Rows seen: {}. Sections with fewer than {} firms are left out.\n",
            self.rows, self.min_firms
        );
        report.push_str("| section | firms | slope | intercept |\n|---|---:|---:|---:|\n");
        let mut first = true;
        let mut left_out = 0;
        for (section, sums) in &self.sections {
            let Some((slope, intercept)) = sums.fit().filter(|_| sums.n >= self.min_firms) else {
                left_out += 1;
                continue;
            };
            // Section letters are GB/T 4754 codes; anything else is written escaped.
            let key: String = section.chars().filter(char::is_ascii_alphanumeric).collect();
            let _ = write!(
                model,
                "{}    \"{key}\": {{ \"firms\": {}, \"slope\": {slope:.6}, \"intercept\": {intercept:.6} }}",
                if first { "" } else { ",\n" },
                sums.n
            );
            first = false;
            let _ = writeln!(report, "| {key} | {} | {slope:.4} | {intercept:.4} |", sums.n);
        }
        model.push_str("\n  }\n}\n");
        let _ = writeln!(report, "\n{left_out} section(s) left out.");
        zone_sdk::info!("model over {} sections, {} left out", self.sections.len() - left_out, left_out);
        Ok(vec![Artifact::text("model.json", model), Artifact::text("report.md", report)])
    }
}

zone_sdk::export_job!(CapitalModel);
