//! The output a guest declares in `init`: group keys and measures (with their aggregation and bounds), carried as
//! Arrow field metadata, parsed into an [`OutputDecl`]; and the host's clamping of measures to their bounds.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef};

/// Field metadata keys of the contract.
pub const ROLE: &str = "zone.role";
pub const AGGREGATE: &str = "zone.aggregate";
pub const BOUNDS: &str = "zone.bounds";
/// Schema metadata key: the input columns the job reads (comma-separated). The host sends only those; absent means
/// every column of the guest view.
pub const INPUTS: &str = "zone.inputs";

/// How the host aggregates a measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Aggregate {
    Count,
    Sum,
    Mean,
    Min,
    Max,
}

impl Aggregate {
    pub const ALL: [Aggregate; 5] = [Aggregate::Count, Aggregate::Sum, Aggregate::Mean, Aggregate::Min, Aggregate::Max];

    pub fn name(self) -> &'static str {
        match self {
            Aggregate::Count => "count",
            Aggregate::Sum => "sum",
            Aggregate::Mean => "mean",
            Aggregate::Min => "min",
            Aggregate::Max => "max",
        }
    }

    pub fn from_name(name: &str) -> Option<Aggregate> {
        Aggregate::ALL.into_iter().find(|a| a.name() == name)
    }
}

impl fmt::Display for Aggregate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One measure column.
#[derive(Debug, Clone, PartialEq)]
pub struct Measure {
    pub field: Field,
    pub aggregate: Aggregate,
    /// Inclusive clamp bounds; `None` only for `count`.
    pub bounds: Option<(f64, f64)>,
}

/// The output a job declares: group keys, then measures, as one Arrow schema.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputDecl {
    pub keys: Vec<Field>,
    pub measures: Vec<Measure>,
    /// The input columns the job declared it reads (`zone.inputs`), in its order; `None`: all of them.
    pub inputs: Option<Vec<String>>,
    schema: SchemaRef,
}

fn is_numeric(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 | DataType::Float32 | DataType::Float64
    )
}

fn is_key_type(t: &DataType) -> bool {
    is_numeric(t)
        || matches!(
            t,
            DataType::Utf8
                | DataType::Boolean
                | DataType::Date32
                | DataType::UInt8
                | DataType::UInt16
                | DataType::UInt32
        )
}

impl OutputDecl {
    /// Reads the declaration from a schema's field metadata. Errors are host text naming the field.
    pub fn from_schema(schema: &Schema) -> Result<OutputDecl, String> {
        if schema.fields().is_empty() {
            return Err("the output declares no columns".into());
        }
        if schema.fields().len() > 256 {
            return Err(format!("{} output columns, more than 256", schema.fields().len()));
        }
        let mut keys = Vec::new();
        let mut measures = Vec::new();
        let mut names = std::collections::HashSet::new();
        for field in schema.fields() {
            let name = field.name();
            if name.is_empty() || name.len() > 128 || !names.insert(name.clone()) {
                return Err(format!("output column names must be unique, 1 to 128 bytes (column {})", names.len() + 1));
            }
            let meta = field.metadata();
            match meta.get(ROLE).map(String::as_str) {
                Some("key") => {
                    if !is_key_type(field.data_type()) {
                        return Err(format!("key `{name}` has type {}, not a groupable type", field.data_type()));
                    }
                    if meta.contains_key(AGGREGATE) || meta.contains_key(BOUNDS) {
                        return Err(format!("key `{name}` carries measure metadata"));
                    }
                    keys.push(field.as_ref().clone());
                }
                Some("measure") => {
                    let aggregate = meta
                        .get(AGGREGATE)
                        .and_then(|a| Aggregate::from_name(a))
                        .ok_or_else(|| format!("measure `{name}` needs {AGGREGATE} = count, sum, mean, min or max"))?;
                    let bounds = match meta.get(BOUNDS) {
                        Some(b) => Some(
                            parse_bounds(b).ok_or_else(|| format!("measure `{name}`: {BOUNDS} must be `low,high`"))?,
                        ),
                        None => None,
                    };
                    if aggregate != Aggregate::Count {
                        if !is_numeric(field.data_type()) {
                            return Err(format!(
                                "measure `{name}` ({aggregate}) has type {}, not numeric",
                                field.data_type()
                            ));
                        }
                        if bounds.is_none() {
                            return Err(format!("measure `{name}` ({aggregate}) needs {BOUNDS}"));
                        }
                    }
                    measures.push(Measure { field: field.as_ref().clone(), aggregate, bounds });
                }
                _ => return Err(format!("output column `{name}` needs {ROLE} = key or measure")),
            }
        }
        if measures.is_empty() {
            return Err("the output declares no measure".into());
        }
        let inputs = match schema.metadata().get(INPUTS) {
            None => None,
            Some(list) => {
                let names: Vec<String> = list.split(',').map(|n| n.trim().to_owned()).collect();
                let mut seen = std::collections::HashSet::new();
                if names.len() > 1024 || names.iter().any(|n| n.is_empty() || n.len() > 128 || !seen.insert(n.clone()))
                {
                    return Err(format!("{INPUTS} must list distinct input column names, separated by commas"));
                }
                Some(names)
            }
        };
        Ok(OutputDecl { keys, measures, inputs, schema: Arc::new(schema.clone()) })
    }

    /// The declared schema, metadata included.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// Checks a guest batch against the declaration (names, types, nullability) and returns it in the declared
    /// schema with every bounded measure clamped.
    pub fn conform(&self, batch: &RecordBatch) -> Result<RecordBatch, String> {
        let got = batch.schema();
        if got.fields().len() != self.schema.fields().len() {
            return Err(format!("{} columns where {} are declared", got.fields().len(), self.schema.fields().len()));
        }
        for (g, d) in got.fields().iter().zip(self.schema.fields()) {
            if g.name() != d.name() || g.data_type() != d.data_type() || (g.is_nullable() && !d.is_nullable()) {
                return Err(format!(
                    "column `{}` {} where `{}` {} is declared",
                    g.name(),
                    g.data_type(),
                    d.name(),
                    d.data_type()
                ));
            }
        }
        let by_name: HashMap<&str, &Measure> = self.measures.iter().map(|m| (m.field.name().as_str(), m)).collect();
        let mut columns = Vec::with_capacity(batch.num_columns());
        for (field, column) in self.schema.fields().iter().zip(batch.columns()) {
            let conformed = match by_name.get(field.name().as_str()) {
                Some(m) if m.aggregate == Aggregate::Count => uncounted_as_null(column),
                Some(Measure { bounds: Some((lo, hi)), .. }) => clamp(column, *lo, *hi),
                _ => column.clone(),
            };
            columns.push(conformed);
        }
        RecordBatch::try_new(self.schema.clone(), columns).map_err(|e| e.to_string())
    }
}

/// A `count` measure's one meaning (the SDK documents the same): a row counts once when its value is neither null
/// nor zero (`false` for a boolean); any other value counts as one row, never as its number. Zeros become nulls, so
/// that the host's count of non-null values is that count.
pub fn uncounted_as_null(array: &ArrayRef) -> ArrayRef {
    macro_rules! zero_as_null {
        ($t:ty, $n:ty) => {{
            let a = array.as_primitive::<$t>();
            let zero = <$n>::default();
            if !a.values().iter().any(|v| *v == zero) {
                return array.clone();
            }
            let out: arrow_array::PrimitiveArray<$t> = a.iter().map(|v| v.filter(|x| *x != zero)).collect();
            Arc::new(out) as ArrayRef
        }};
    }
    match array.data_type() {
        DataType::Int8 => zero_as_null!(Int8Type, i8),
        DataType::Int16 => zero_as_null!(Int16Type, i16),
        DataType::Int32 => zero_as_null!(Int32Type, i32),
        DataType::Int64 => zero_as_null!(Int64Type, i64),
        DataType::Float32 => zero_as_null!(Float32Type, f32),
        DataType::Float64 => zero_as_null!(Float64Type, f64),
        DataType::Boolean => {
            let a = array.as_boolean();
            let out: arrow_array::BooleanArray = a.iter().map(|v| v.filter(|x| *x)).collect();
            Arc::new(out) as ArrayRef
        }
        _ => array.clone(),
    }
}

fn parse_bounds(text: &str) -> Option<(f64, f64)> {
    let (lo, hi) = text.split_once(',')?;
    let lo: f64 = lo.trim().parse().ok()?;
    let hi: f64 = hi.trim().parse().ok()?;
    (lo.is_finite() && hi.is_finite() && lo <= hi).then_some((lo, hi))
}

/// Clamps a numeric array to `[lo, hi]` (NaN becomes null: it has no place in a sum).
pub fn clamp(array: &ArrayRef, lo: f64, hi: f64) -> ArrayRef {
    macro_rules! ints {
        ($t:ty, $n:ty) => {{
            let lo = lo.ceil().clamp(<$n>::MIN as f64, <$n>::MAX as f64) as $n;
            let hi = hi.floor().clamp(<$n>::MIN as f64, <$n>::MAX as f64) as $n;
            Arc::new(array.as_primitive::<$t>().unary::<_, $t>(|v| v.clamp(lo, hi.max(lo)))) as ArrayRef
        }};
    }
    macro_rules! floats {
        ($t:ty, $n:ty) => {{
            let a = array.as_primitive::<$t>();
            let (lo, hi) = (lo as $n, hi as $n);
            if a.values().iter().any(|x| x.is_nan()) {
                let out: arrow_array::PrimitiveArray<$t> =
                    a.iter().map(|v| v.filter(|x| !x.is_nan()).map(|x| x.clamp(lo, hi))).collect();
                Arc::new(out) as ArrayRef
            } else {
                // No NaN anywhere (not even under a null): clamp in place of the values, nulls kept as they are.
                Arc::new(a.unary::<_, $t>(|x| x.clamp(lo, hi))) as ArrayRef
            }
        }};
    }
    match array.data_type() {
        DataType::Int8 => ints!(Int8Type, i8),
        DataType::Int16 => ints!(Int16Type, i16),
        DataType::Int32 => ints!(Int32Type, i32),
        DataType::Int64 => ints!(Int64Type, i64),
        DataType::Float32 => floats!(Float32Type, f32),
        DataType::Float64 => floats!(Float64Type, f64),
        _ => array.clone(),
    }
}

/// Whether a character must never reach a terminal, a spreadsheet or a reviewer's screen as itself: C0 and C1
/// controls (ESC starts terminal sequences, CR rewrites a line, NUL cuts C strings), DEL, bidirectional overrides
/// and isolates (which reorder what a reader sees), zero-width and other invisible format characters, line and
/// paragraph separators, and Unicode tag characters. The release gate refuses keys that hold one; every print of
/// guest- or operator-made text escapes them ([`inert`]).
pub fn is_unsafe_text_char(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{00AD}'
                | '\u{034F}'
                | '\u{061C}'
                | '\u{115F}'
                | '\u{1160}'
                | '\u{17B4}'
                | '\u{17B5}'
                | '\u{180B}'..='\u{180F}'
                | '\u{200B}'..='\u{200F}'
                | '\u{2028}'..='\u{202E}'
                | '\u{2060}'..='\u{206F}'
                | '\u{3164}'
                | '\u{FE00}'..='\u{FE0F}'
                | '\u{FEFF}'
                | '\u{FFA0}'
                | '\u{FFF9}'..='\u{FFFB}'
                | '\u{E0000}'..='\u{E0FFF}'
        )
}

/// Text made safe to print: every [`is_unsafe_text_char`] written as `\u{XXXX}`, everything else as it is
/// (Chinese text stays readable). The one escaping function for guest- and operator-made text.
pub fn inert(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(is_unsafe_text_char) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if is_unsafe_text_char(c) {
            out.push_str(&format!("\\u{{{:04x}}}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Builds a declared-output field: a helper for hosts, tests and the SDK's mirror of it.
pub fn key(name: &str, data_type: DataType) -> Field {
    Field::new(name, data_type, true).with_metadata(HashMap::from([(ROLE.to_owned(), "key".to_owned())]))
}

/// A declared measure field.
pub fn measure(name: &str, data_type: DataType, aggregate: Aggregate, bounds: Option<(f64, f64)>) -> Field {
    let mut meta =
        HashMap::from([(ROLE.to_owned(), "measure".to_owned()), (AGGREGATE.to_owned(), aggregate.name().to_owned())]);
    if let Some((lo, hi)) = bounds {
        meta.insert(BOUNDS.to_owned(), format!("{lo},{hi}"));
    }
    Field::new(name, data_type, true).with_metadata(meta)
}

#[cfg(test)]
mod tests {
    use arrow_array::{Float64Array, Int64Array, StringArray};

    use super::*;

    #[test]
    fn declarations() {
        let schema = Schema::new(vec![
            key("district", DataType::Utf8),
            measure("capital", DataType::Int64, Aggregate::Sum, Some((0.0, 100.0))),
            measure("firms", DataType::Int64, Aggregate::Count, None),
        ]);
        let decl = OutputDecl::from_schema(&schema).expect("valid");
        assert_eq!(decl.keys.len(), 1);
        assert_eq!(decl.measures[0].bounds, Some((0.0, 100.0)));
        let no_bounds =
            Schema::new(vec![key("d", DataType::Utf8), measure("m", DataType::Int64, Aggregate::Sum, None)]);
        assert!(OutputDecl::from_schema(&no_bounds).expect_err("bounds").contains("needs zone.bounds"));
        let no_role = Schema::new(vec![Field::new("x", DataType::Int64, true)]);
        assert!(OutputDecl::from_schema(&no_role).is_err());
        let string_sum = Schema::new(vec![measure("m", DataType::Utf8, Aggregate::Sum, Some((0.0, 1.0)))]);
        assert!(OutputDecl::from_schema(&string_sum).is_err());
    }

    #[test]
    fn inert_escapes_what_a_terminal_or_a_reader_would_act_on() {
        assert_eq!(inert("苏州市 district 7"), "苏州市 district 7");
        assert_eq!(inert("a\u{1b}]8;;x\u{7}b"), "a\\u{001b}]8;;x\\u{0007}b");
        assert_eq!(inert("\u{202e}gpj.exe"), "\\u{202e}gpj.exe");
        assert_eq!(inert("a\u{200b}b\u{feff}\0\r\n"), "a\\u{200b}b\\u{feff}\\u{0000}\\u{000d}\\u{000a}");
        assert!(!inert("x\u{9b}31m\u{2066}").chars().any(is_unsafe_text_char));
    }

    #[test]
    fn a_count_counts_rows_that_are_neither_null_nor_zero() {
        let schema = Schema::new(vec![key("d", DataType::Utf8), measure("n", DataType::Int64, Aggregate::Count, None)]);
        let decl = OutputDecl::from_schema(&schema).expect("valid");
        let plain =
            Arc::new(Schema::new(vec![Field::new("d", DataType::Utf8, true), Field::new("n", DataType::Int64, true)]));
        let batch = RecordBatch::try_new(
            plain,
            vec![
                Arc::new(StringArray::from(vec!["a", "a", "a", "a"])),
                Arc::new(Int64Array::from(vec![Some(1), Some(0), None, Some(7)])),
            ],
        )
        .expect("batch");
        let out = decl.conform(&batch).expect("conform");
        let n = out.column(1).as_primitive::<Int64Type>();
        // 1 and 7 count (7 as one row); 0 and null do not.
        assert_eq!(n.len() - n.null_count(), 2);
        assert!(n.is_null(1) && n.is_null(2));
        let flags: ArrayRef = Arc::new(arrow_array::BooleanArray::from(vec![Some(true), Some(false), None]));
        assert_eq!(uncounted_as_null(&flags).null_count(), 2);
    }

    #[test]
    fn conform_clamps_and_checks() {
        let schema = Schema::new(vec![
            key("district", DataType::Utf8),
            measure("capital", DataType::Int64, Aggregate::Sum, Some((0.0, 100.0))),
            measure("rate", DataType::Float64, Aggregate::Mean, Some((0.0, 1.0))),
        ]);
        let decl = OutputDecl::from_schema(&schema).expect("valid");
        let plain = Arc::new(Schema::new(vec![
            Field::new("district", DataType::Utf8, true),
            Field::new("capital", DataType::Int64, true),
            Field::new("rate", DataType::Float64, true),
        ]));
        let batch = RecordBatch::try_new(
            plain,
            vec![
                Arc::new(StringArray::from(vec!["a", "b", "c"])),
                Arc::new(Int64Array::from(vec![Some(-5), Some(50), Some(500)])),
                Arc::new(Float64Array::from(vec![f64::NAN, 0.5, 7.0])),
            ],
        )
        .expect("batch");
        let out = decl.conform(&batch).expect("conform");
        assert_eq!(out.column(1).as_primitive::<Int64Type>().values().to_vec(), vec![0, 50, 100]);
        let rate = out.column(2).as_primitive::<Float64Type>();
        assert!(rate.is_null(0));
        assert_eq!(rate.value(2), 1.0);
        let wrong = RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new("district", DataType::Utf8, true)])),
            vec![Arc::new(StringArray::from(vec!["a"]))],
        )
        .expect("batch");
        assert!(decl.conform(&wrong).is_err());
    }
}
