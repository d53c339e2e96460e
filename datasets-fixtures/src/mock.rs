//! Mock rows for operators (SEED.md Art. 17: develop and test without real data): synthetic raw rows with a
//! dataset's real schema, drawn from the declared formats and types — never from the data — and then passed
//! through the dataset's own policy with a fresh random token secret, so the operator gets exactly the shape the
//! guest will see: no subject, no hidden column, masks and tokens as the policy makes them, generalized columns
//! in their generalized domain.

use std::sync::Arc;

use arrow_array::builder::{
    BooleanBuilder, Date32Builder, Float32Builder, Float64Builder, Int8Builder, Int16Builder, Int32Builder,
    Int64Builder, StringBuilder, UInt8Builder, UInt16Builder, UInt32Builder, UInt64Builder,
};
use arrow_array::{ArrayRef, RecordBatch, new_null_array};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use policies::formats::{Format, luhn_check_digit};
use policies::kernels::{Desensitizer, TokenSecret};
use policies::{ColumnPolicy, ColumnRule, CompiledPolicy};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::generate::{Weighted, chinese_name, date, mobile, random_date, resident_id, uscc, weighted3};
use crate::vocab;

/// Why mock rows could not be made.
#[derive(Debug, thiserror::Error)]
pub enum MockError {
    #[error("column `{column}` has type {data_type}, which mock rows do not support yet")]
    Unsupported { column: String, data_type: DataType },
    #[error("mock rows: {0}")]
    Kernel(#[from] policies::kernels::KernelError),
    #[error("mock rows: {0}")]
    Arrow(#[from] arrow_schema::ArrowError),
}

/// Synthetic raw rows with the policy's full schema (subject and hidden columns included), in the schema's order.
pub fn mock_raw_batch(policy: &CompiledPolicy, rows: usize, seed: u64) -> Result<RecordBatch, MockError> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut fields = Vec::with_capacity(policy.columns().len());
    let mut columns = Vec::with_capacity(policy.columns().len());
    for (i, column) in policy.columns().iter().enumerate() {
        // Each column draws from its own stream: adding a column does not change the others.
        rng.set_stream(i as u64 + 1);
        fields.push(Field::new(column.name.clone(), column.data_type.clone(), column.nullable));
        columns.push(mock_column(column, rows, &mut rng)?);
    }
    Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?)
}

/// What the guest would see of mock rows: [`mock_raw_batch`] through the policy, with a token secret derived from
/// the seed, never the zone's (tokens of synthetic values link nothing real; the same seed gives the same file).
pub fn mock_guest_batch(policy: &CompiledPolicy, rows: usize, seed: u64) -> Result<RecordBatch, MockError> {
    let raw = mock_raw_batch(policy, rows, seed)?;
    let mut secret = [0u8; 32];
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(0);
    rng.fill(&mut secret);
    let desensitizer = Desensitizer::new(policy, &TokenSecret::from_bytes(secret));
    Ok(desensitizer.apply(&raw)?.guest)
}

fn mock_column(column: &ColumnPolicy, rows: usize, rng: &mut ChaCha8Rng) -> Result<ArrayRef, MockError> {
    let null_rate = if column.nullable { 0.03 } else { 0.0 };
    let bounds = match &column.rule {
        ColumnRule::ComputeOnly(b) => Some((b.lo, b.hi)),
        _ => None,
    };
    // Numbers: within the declared bounds (skewed toward the low end, as amounts are), else small counts.
    let number = |rng: &mut ChaCha8Rng| -> f64 {
        match bounds {
            Some((lo, hi)) => lo + (hi - lo) * rng.random::<f64>().powi(4),
            None => f64::from(rng.random_range(0..100u32)),
        }
    };
    macro_rules! numbers {
        ($builder:ty, $t:ty) => {{
            let mut b = <$builder>::with_capacity(rows);
            for _ in 0..rows {
                if rng.random_bool(null_rate) {
                    b.append_null();
                } else {
                    b.append_value(number(rng) as $t);
                }
            }
            Arc::new(b.finish()) as ArrayRef
        }};
    }
    let array = match (&column.data_type, column.format) {
        (DataType::Utf8, format) => {
            let text = Texts::new();
            let mut b = StringBuilder::with_capacity(rows, rows * 16);
            for i in 0..rows {
                if rng.random_bool(null_rate) {
                    b.append_null();
                } else {
                    b.append_value(text.draw(format, &column.name, i, rng));
                }
            }
            Arc::new(b.finish())
        }
        (DataType::Int8, _) => numbers!(Int8Builder, i8),
        (DataType::Int16, _) => numbers!(Int16Builder, i16),
        (DataType::Int32, _) => numbers!(Int32Builder, i32),
        (DataType::Int64, _) => numbers!(Int64Builder, i64),
        (DataType::UInt8, _) => numbers!(UInt8Builder, u8),
        (DataType::UInt16, _) => numbers!(UInt16Builder, u16),
        (DataType::UInt32, _) => numbers!(UInt32Builder, u32),
        (DataType::UInt64, _) => numbers!(UInt64Builder, u64),
        (DataType::Float32, _) => numbers!(Float32Builder, f32),
        (DataType::Float64, _) => numbers!(Float64Builder, f64),
        (DataType::Boolean, _) => {
            let mut b = BooleanBuilder::with_capacity(rows);
            for _ in 0..rows {
                if rng.random_bool(null_rate) { b.append_null() } else { b.append_value(rng.random_bool(0.5)) }
            }
            Arc::new(b.finish())
        }
        (DataType::Date32, _) => {
            let mut b = Date32Builder::with_capacity(rows);
            for _ in 0..rows {
                if rng.random_bool(null_rate) {
                    b.append_null();
                } else {
                    b.append_value(random_date(rng, date(1990, 1, 1), date(2025, 12, 31)).to_days());
                }
            }
            Arc::new(b.finish())
        }
        (DataType::Timestamp(unit, tz), _) => {
            let per_second: i64 = match unit {
                TimeUnit::Second => 1,
                TimeUnit::Millisecond => 1_000,
                TimeUnit::Microsecond => 1_000_000,
                TimeUnit::Nanosecond => 1_000_000_000,
            };
            let (from, to) = (date(2015, 1, 1).to_days(), date(2025, 12, 31).to_days());
            let values: Vec<Option<i64>> = (0..rows)
                .map(|_| {
                    (!rng.random_bool(null_rate)).then(|| {
                        let day = i64::from(rng.random_range(from..=to));
                        (day * 86_400 + rng.random_range(0..86_400)) * per_second
                    })
                })
                .collect();
            let array: ArrayRef = match unit {
                TimeUnit::Second => Arc::new(arrow_array::TimestampSecondArray::from(values)),
                TimeUnit::Millisecond => Arc::new(arrow_array::TimestampMillisecondArray::from(values)),
                TimeUnit::Microsecond => Arc::new(arrow_array::TimestampMicrosecondArray::from(values)),
                TimeUnit::Nanosecond => Arc::new(arrow_array::TimestampNanosecondArray::from(values)),
            };
            arrow_cast_timezone(array, tz.clone())
        }
        (other, _) if column.nullable => new_null_array(other, rows),
        (other, _) => return Err(MockError::Unsupported { column: column.name.clone(), data_type: other.clone() }),
    };
    Ok(array)
}

/// Sets a timestamp array's time zone (the policy's type must match exactly).
fn arrow_cast_timezone(array: ArrayRef, tz: Option<Arc<str>>) -> ArrayRef {
    use arrow_array::Array;
    match tz {
        None => array,
        Some(tz) => {
            let data = array.to_data();
            let unit = match data.data_type() {
                DataType::Timestamp(unit, _) => *unit,
                _ => return array,
            };
            let retyped = data.into_builder().data_type(DataType::Timestamp(unit, Some(tz))).build();
            match retyped {
                Ok(d) => arrow_array::make_array(d),
                Err(_) => array,
            }
        }
    }
}

/// Draws text values of a declared format.
struct Texts {
    regions: Weighted,
    surnames: Weighted,
    prefixes: Weighted,
}

impl Texts {
    fn new() -> Texts {
        Texts {
            regions: Weighted::new(vocab::ID_REGIONS),
            surnames: Weighted::new(vocab::SURNAMES),
            prefixes: Weighted::new(vocab::MOBILE_PREFIXES),
        }
    }

    fn draw(&self, format: Option<Format>, column: &str, row: usize, rng: &mut ChaCha8Rng) -> String {
        match format {
            Some(Format::ResidentId) => {
                let birth = random_date(rng, date(1940, 1, 1), date(2008, 12, 31));
                let male = rng.random_bool(0.5);
                resident_id(rng, &self.regions, birth, male)
            }
            Some(Format::Uscc) => {
                let district = weighted3(vocab::DISTRICTS).index(rng);
                // Indexes far above any fixture's: the codes are valid, and none is a generated firm's.
                uscc((1 << 40) + row as u64 * 7919 + rng.random_range(0..7919), vocab::DISTRICTS[district].1)
            }
            Some(Format::Mobile) => mobile(rng, &self.prefixes),
            Some(Format::ChineseName) => chinese_name(rng, &self.surnames),
            Some(Format::RegionCode) => vocab::DISTRICTS[weighted3(vocab::DISTRICTS).index(rng)].1.to_owned(),
            Some(Format::BankCard) => {
                let body: String =
                    (0..15).map(|i| if i == 0 { '6' } else { char::from(b'0' + rng.random_range(0..10u8)) }).collect();
                let check = luhn_check_digit(body.as_bytes()).map_or('0', char::from);
                format!("{body}{check}")
            }
            // Categories: a few values named after the column, skewed so that some groups are large and some small.
            Some(Format::Text) | None => format!("{column}-{}", (rng.random::<f64>().powi(2) * 8.0) as u32),
        }
    }
}
