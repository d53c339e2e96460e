//! The per-row computation of `finance-capital`, on Arrow arrays only, so that the benchmark compiles the very
//! same code natively as its baseline.

use std::sync::Arc;

use arrow_array::builder::StringBuilder;
use arrow_array::cast::AsArray;
use arrow_array::types::{Int32Type, Int64Type};
use arrow_array::{Array, ArrayRef, Float64Array, Int64Array, RecordBatch};

/// Registered capital is clamped to this (yuan) before anything is derived from it.
pub const CAPITAL_CAP: i64 = 1_000_000_000;

/// Size bands by employees (GB-style small/medium thresholds, simplified).
pub fn size_band(employees: i32) -> &'static str {
    match employees {
        i32::MIN..=9 => "micro",
        10..=99 => "small",
        100..=999 => "medium",
        _ => "large",
    }
}

/// The output columns for one input batch: `district`, `industry`, `size_band`, `firms`, `capital_wan`,
/// `capital_per_employee`. Missing input columns are an error naming them.
pub fn derive(batch: &RecordBatch) -> Result<Vec<ArrayRef>, String> {
    let column = |name: &str| batch.column_by_name(name).ok_or_else(|| format!("input has no column `{name}`"));
    let district = column("district")?.clone();
    let industry = column("industry")?.clone();
    let capital = column("reg_capital")?.as_primitive_opt::<Int64Type>().ok_or("`reg_capital` is not Int64")?;
    let employees = column("employees")?.as_primitive_opt::<Int32Type>().ok_or("`employees` is not Int32")?;

    let rows = batch.num_rows();
    let mut band = StringBuilder::with_capacity(rows, rows * 6);
    let mut capital_wan = Vec::with_capacity(rows);
    let mut per_employee = Vec::with_capacity(rows);
    for i in 0..rows {
        let cap = if capital.is_null(i) { None } else { Some(capital.value(i).clamp(0, CAPITAL_CAP)) };
        let staff = if employees.is_null(i) { None } else { Some(employees.value(i).max(0)) };
        match staff {
            Some(n) => band.append_value(size_band(n)),
            None => band.append_null(),
        }
        capital_wan.push(cap.map(|c| c as f64 / 10_000.0));
        per_employee.push(match (cap, staff) {
            (Some(c), Some(n)) if n > 0 => Some(c as f64 / n as f64),
            _ => None,
        });
    }
    Ok(vec![
        district,
        industry,
        Arc::new(band.finish()),
        Arc::new(Int64Array::from_value(1, rows)),
        Arc::new(Float64Array::from(capital_wan)),
        Arc::new(Float64Array::from(per_employee)),
    ])
}
