//! Checking a staged Parquet file before it enters the zone: it must decode completely, match the policy's
//! schema, and not carry identifiers in a column the policy shows in clear. Computes the quality figures
//! (nulls, invalid identifiers) the catalog keeps — never a value.

use std::fs::File;
use std::path::Path;

use arrow_array::cast::AsArray;
use arrow_array::types::{Int32Type, Int64Type};
use arrow_array::{Array, ArrayAccessor, RecordBatch, RecordBatchReader};
use arrow_schema::{DataType, Schema};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use policies::{ColumnRule, CompiledPolicy, Format};

use crate::catalog::{ColumnStats, FormatCheck};
use crate::error::StoreError;

/// Values sampled per clear-text column to look for identifiers.
const SNIFF_SAMPLE: usize = 1_000;
/// Formats that identify a person or firm and can be recognized by their check digits.
const SNIFFED: [Format; 4] = [Format::ResidentId, Format::Uscc, Format::Mobile, Format::BankCard];

/// What reading a whole file told us.
#[derive(Debug)]
pub(crate) struct Inspected {
    pub rows: u64,
    pub stats: Vec<ColumnStats>,
}

/// Opens a Parquet file and returns its Arrow schema. `shown` is the path to name in errors.
pub(crate) fn parquet_schema(path: &Path, shown: &Path) -> Result<Schema, StoreError> {
    let file = File::open(path).map_err(StoreError::io("open", path))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| StoreError::BadParquet { path: shown.to_path_buf(), detail: e.to_string() })?;
    Ok(builder.schema().as_ref().clone())
}

/// Per-column accumulators while reading.
struct ColumnScan {
    name: String,
    nulls: u64,
    format: Option<(Format, u64, u64)>,
    /// (matches per sniffed format, values sampled) for clear-text string columns.
    sniff: Option<([usize; SNIFFED.len()], usize)>,
    class: &'static str,
}

fn strings_of(array: &dyn Array, mut f: impl FnMut(&str) -> bool) {
    fn run<'a, A: ArrayAccessor<Item = &'a str>>(a: A, f: &mut impl FnMut(&str) -> bool) {
        for i in 0..a.len() {
            if !a.is_null(i) && !f(a.value(i)) {
                return;
            }
        }
    }
    match array.data_type() {
        DataType::Utf8 => run(array.as_string::<i32>(), &mut f),
        DataType::LargeUtf8 => run(array.as_string::<i64>(), &mut f),
        DataType::Utf8View => run(array.as_string_view(), &mut f),
        _ => {}
    }
}

impl ColumnScan {
    fn new(policy: &CompiledPolicy, index: usize) -> ColumnScan {
        let column = &policy.columns()[index];
        let is_string = matches!(column.data_type, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View);
        let clear = matches!(column.rule, ColumnRule::Plain | ColumnRule::ComputeOnly(_));
        ColumnScan {
            name: column.name.clone(),
            nulls: 0,
            format: column.format.filter(|f| *f != Format::Text).map(|f| (f, 0, 0)),
            sniff: (clear && is_string).then_some(([0; SNIFFED.len()], 0)),
            class: column.rule.class_name(),
        }
    }

    fn scan(&mut self, array: &dyn Array) {
        self.nulls += array.null_count() as u64;
        if let Some((format, valid, invalid)) = &mut self.format {
            // Region codes stored as integers: valid when they have six digits.
            let six_digits = |v: i64| (100_000..=999_999).contains(&v);
            let mut count = |ok: bool| if ok { *valid += 1 } else { *invalid += 1 };
            match array.data_type() {
                DataType::Int32 => {
                    array.as_primitive::<Int32Type>().iter().flatten().for_each(|v| count(six_digits(v.into())))
                }
                DataType::Int64 => {
                    array.as_primitive::<Int64Type>().iter().flatten().for_each(|v| count(six_digits(v)))
                }
                _ => {}
            }
            strings_of(array, |v| {
                if format.is_valid(v) {
                    *valid += 1;
                } else {
                    *invalid += 1;
                }
                true
            });
        }
        if let Some((matches, sampled)) = &mut self.sniff {
            strings_of(array, |v| {
                if *sampled >= SNIFF_SAMPLE {
                    return false;
                }
                *sampled += 1;
                for (m, f) in matches.iter_mut().zip(SNIFFED) {
                    if f.is_valid(v) {
                        *m += 1;
                    }
                }
                true
            });
        }
    }

    /// An identifier format that most sampled values have, if any.
    fn identifier(&self) -> Option<(Format, usize, usize)> {
        let (matches, sampled) = self.sniff?;
        SNIFFED
            .iter()
            .zip(matches)
            .filter(|(_, m)| sampled >= 10 && m * 2 > sampled)
            .max_by_key(|(_, m)| *m)
            .map(|(f, m)| (*f, m, sampled))
    }
}

/// Reads every row of `path` (a staged copy; `shown` is the user's path for errors), checking it decodes,
/// computing column statistics and refusing clear-text columns that hold identifiers.
pub(crate) fn inspect(
    path: &Path,
    shown: &Path,
    policy: &CompiledPolicy,
    progress: &mut dyn FnMut(u64),
) -> Result<Inspected, StoreError> {
    let file = File::open(path).map_err(StoreError::io("open", path))?;
    let bad = |detail: String| StoreError::BadParquet { path: shown.to_path_buf(), detail };
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| bad(e.to_string()))?;
    let metadata = builder.metadata().clone();
    let group_ends: Vec<u64> = metadata
        .row_groups()
        .iter()
        .scan(0u64, |end, g| {
            *end += u64::try_from(g.num_rows()).unwrap_or(0);
            Some(*end)
        })
        .collect();
    let declared_rows = group_ends.last().copied().unwrap_or(0);
    let reader = builder.with_batch_size(65_536).build().map_err(|e| bad(e.to_string()))?;
    let schema = reader.schema();
    let mut scans: Vec<(usize, ColumnScan)> = Vec::new();
    for (i, field) in schema.fields().iter().enumerate() {
        let Some(index) = policy.columns().iter().position(|c| c.name == *field.name()) else {
            return Err(bad(format!("column `{}` is not in the compiled policy", field.name())));
        };
        scans.push((i, ColumnScan::new(policy, index)));
    }
    let mut rows = 0u64;
    for batch in reader {
        let batch: RecordBatch = batch.map_err(|e| {
            let row_group = group_ends.partition_point(|end| *end <= rows);
            let first_row = if row_group == 0 { 0 } else { group_ends[row_group - 1] };
            StoreError::CorruptRowGroup {
                path: shown.to_path_buf(),
                row_group,
                first_row,
                end_row: group_ends.get(row_group).copied().unwrap_or(declared_rows),
                detail: e.to_string(),
            }
        })?;
        for (i, scan) in &mut scans {
            scan.scan(batch.column(*i).as_ref());
        }
        rows += batch.num_rows() as u64;
        progress(batch.num_rows() as u64);
    }
    if rows != declared_rows {
        return Err(bad(format!("the footer declares {declared_rows} rows but {rows} could be read")));
    }
    for (_, scan) in &scans {
        if let Some((format, matched, sampled)) = scan.identifier() {
            return Err(StoreError::IdentifierInClearColumn {
                path: shown.to_path_buf(),
                column: scan.name.clone(),
                class: scan.class,
                format,
                matched,
                sampled,
            });
        }
    }
    let stats = scans
        .into_iter()
        .map(|(_, s)| ColumnStats {
            column: s.name,
            nulls: s.nulls,
            format: s.format.map(|(f, valid, invalid)| FormatCheck { format: f.name().to_owned(), valid, invalid }),
        })
        .collect();
    Ok(Inspected { rows, stats })
}

/// Adds the statistics of another file of the same version.
pub(crate) fn merge_stats(total: &mut Vec<ColumnStats>, more: Vec<ColumnStats>) {
    if total.is_empty() {
        *total = more;
        return;
    }
    for (t, m) in total.iter_mut().zip(more) {
        t.nulls += m.nulls;
        if let (Some(tf), Some(mf)) = (&mut t.format, m.format) {
            tf.valid += mf.valid;
            tf.invalid += mf.invalid;
        }
    }
}

/// Whether two files' schemas are the same for a dataset (names, types, nullability; metadata ignored).
pub(crate) fn schema_difference(first: &Schema, other: &Schema) -> Option<String> {
    if first.fields().len() != other.fields().len() {
        return Some(format!("{} columns instead of {}", other.fields().len(), first.fields().len()));
    }
    for (a, b) in first.fields().iter().zip(other.fields()) {
        if a.name() != b.name() || a.data_type() != b.data_type() || a.is_nullable() != b.is_nullable() {
            return Some(format!(
                "column `{}` {}{} where the first file has `{}` {}{}",
                b.name(),
                b.data_type(),
                if b.is_nullable() { " (nullable)" } else { "" },
                a.name(),
                a.data_type(),
                if a.is_nullable() { " (nullable)" } else { "" }
            ));
        }
    }
    None
}
