//! Desensitization kernels on Arrow arrays: mask, keyed HMAC-SHA256 tokenization, generalization, and the
//! [`Desensitizer`] that applies a whole compiled policy to a record batch.
//!
//! Every kernel is vectorized and null-preserving: output row i derives from input row i only, the output has
//! the input's length, and a null stays null (its hidden bytes are never read). No kernel allocates per row;
//! strings are written into one values buffer.

use std::fmt::{self, Write as _};
use std::sync::Arc;

use arrow_array::builder::{Int32Builder, StringBuilder};
use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Date64Type, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type,
    TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType, UInt8Type,
    UInt16Type, UInt32Type, UInt64Type,
};
use arrow_array::{Array, ArrayAccessor, ArrayRef, RecordBatch, StringArray};
use arrow_buffer::{Buffer, NullBuffer, OffsetBuffer, ScalarBuffer};
use arrow_schema::{ArrowError, DataType, Schema, TimeUnit};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::formats::{CivilDate, is_valid_mobile, parse_resident_id};
use crate::policy::{Bands, ColumnRule, CompiledPolicy, Generalization, MaskSpec};

/// Why a kernel could not run. Policies are validated against the schema first, so these mean the data does
/// not match the schema the policy was compiled for.
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    #[error("{kernel} does not apply to a {data_type} column")]
    UnsupportedType { kernel: &'static str, data_type: DataType },
    #[error("column `{column}` is missing from the batch")]
    MissingColumn { column: String },
    #[error("column `{column}` is {actual} in the batch but {expected} in the policy")]
    TypeMismatch { column: String, expected: DataType, actual: DataType },
    #[error("the output of {kernel} exceeds 2 GiB of string data in one batch")]
    Overflow { kernel: &'static str },
    #[error("arrow: {0}")]
    Arrow(#[from] ArrowError),
}

// ---------------------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------------------

/// Builds a `Utf8` array from a values buffer and offsets written by a kernel.
fn string_array(
    kernel: &'static str,
    offsets: Vec<usize>,
    values: Vec<u8>,
    nulls: Option<&NullBuffer>,
) -> Result<ArrayRef, KernelError> {
    if values.len() > i32::MAX as usize {
        return Err(KernelError::Overflow { kernel });
    }
    // Every offset is at most values.len(), checked above.
    let offsets: Vec<i32> = offsets.into_iter().map(|o| o as i32).collect();
    let array =
        StringArray::try_new(OffsetBuffer::new(ScalarBuffer::from(offsets)), Buffer::from_vec(values), nulls.cloned())?;
    Ok(Arc::new(array))
}

/// Applies `f` to every non-null string of `array`, whatever its string layout.
fn for_each_str(
    array: &dyn Array,
    kernel: &'static str,
    mut f: impl FnMut(usize, Option<&str>),
) -> Result<(), KernelError> {
    fn run<'a, A: ArrayAccessor<Item = &'a str>>(a: A, f: &mut impl FnMut(usize, Option<&str>)) {
        for i in 0..a.len() {
            f(i, if a.is_null(i) { None } else { Some(a.value(i)) });
        }
    }
    match array.data_type() {
        DataType::Utf8 => run(array.as_string::<i32>(), &mut f),
        DataType::LargeUtf8 => run(array.as_string::<i64>(), &mut f),
        DataType::Utf8View => run(array.as_string_view(), &mut f),
        other => return Err(KernelError::UnsupportedType { kernel, data_type: other.clone() }),
    }
    Ok(())
}

/// Decimal digits of an integer into a stack buffer (no allocation).
fn integer_text(negative: bool, magnitude: u64, buf: &mut [u8; 21]) -> &[u8] {
    let mut i = buf.len();
    let mut m = magnitude;
    loop {
        i -= 1;
        buf[i] = b'0' + (m % 10) as u8;
        m /= 10;
        if m == 0 {
            break;
        }
    }
    if negative {
        i -= 1;
        buf[i] = b'-';
    }
    &buf[i..]
}

/// Applies `f` to the decimal text of every non-null integer of `array`.
fn for_each_integer_text(
    array: &dyn Array,
    kernel: &'static str,
    mut f: impl FnMut(usize, Option<&[u8]>),
) -> Result<(), KernelError> {
    let mut buf = [0u8; 21];
    macro_rules! signed {
        ($t:ty) => {{
            let a = array.as_primitive::<$t>();
            for i in 0..a.len() {
                if a.is_null(i) {
                    f(i, None);
                } else {
                    let v = i64::from(a.value(i));
                    f(i, Some(integer_text(v < 0, v.unsigned_abs(), &mut buf)));
                }
            }
        }};
    }
    macro_rules! unsigned {
        ($t:ty) => {{
            let a = array.as_primitive::<$t>();
            for i in 0..a.len() {
                if a.is_null(i) {
                    f(i, None);
                } else {
                    f(i, Some(integer_text(false, u64::from(a.value(i)), &mut buf)));
                }
            }
        }};
    }
    match array.data_type() {
        DataType::Int8 => signed!(Int8Type),
        DataType::Int16 => signed!(Int16Type),
        DataType::Int32 => signed!(Int32Type),
        DataType::Int64 => signed!(Int64Type),
        DataType::UInt8 => unsigned!(UInt8Type),
        DataType::UInt16 => unsigned!(UInt16Type),
        DataType::UInt32 => unsigned!(UInt32Type),
        DataType::UInt64 => unsigned!(UInt64Type),
        other => return Err(KernelError::UnsupportedType { kernel, data_type: other.clone() }),
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------------------
// Mask
// ---------------------------------------------------------------------------------------------------------

/// Masks every string: keeps `keep_prefix` leading and `keep_suffix` trailing characters and replaces each
/// character between with the mask character. A value no longer than `keep_prefix + keep_suffix` is masked
/// whole, so that a short value is never shown in full. The masked value has as many characters as the input.
pub fn mask(array: &dyn Array, spec: &MaskSpec) -> Result<ArrayRef, KernelError> {
    if let Some(a) = array.as_string_opt::<i32>()
        && spec.mask_char.is_ascii()
        && a.value_data().is_ascii()
    {
        return Ok(mask_ascii(a, spec));
    }
    let mut mask_buf = [0u8; 4];
    let mask_bytes = spec.mask_char.encode_utf8(&mut mask_buf).as_bytes().to_vec();
    let mut offsets = Vec::with_capacity(array.len() + 1);
    offsets.push(0usize);
    let mut values: Vec<u8> = Vec::with_capacity(estimate_string_bytes(array));
    for_each_str(array, "mask", |_, value| {
        if let Some(v) = value {
            mask_one(v, spec, &mask_bytes, &mut values);
        }
        offsets.push(values.len());
    })?;
    string_array("mask", offsets, values, array.logical_nulls().as_ref())
}

/// The common case — ASCII values (IDs, phone and card numbers) and an ASCII mask character: the masked
/// values have the input's offsets, so the offsets buffer is shared and the values are one copy plus fills.
/// Null slots are filled with the mask character too: their hidden bytes never reach the output.
fn mask_ascii(a: &StringArray, spec: &MaskSpec) -> ArrayRef {
    let offsets = a.offsets();
    let mask_byte = spec.mask_char as u8;
    let mut values = a.value_data().to_vec();
    for i in 0..a.len() {
        // Offsets of a valid array are non-negative and within the values buffer.
        let start = offsets[i].unsigned_abs() as usize;
        let end = offsets[i + 1].unsigned_abs() as usize;
        let n = end - start;
        let (keep_prefix, keep_suffix) = if a.is_null(i) || n <= spec.keep_prefix + spec.keep_suffix {
            (0, 0)
        } else {
            (spec.keep_prefix, spec.keep_suffix)
        };
        values[start + keep_prefix..end - keep_suffix].fill(mask_byte);
    }
    // Bytes before the first offset or after the last (a sliced array) are never shown: blank them as well.
    let first = offsets.first().map_or(0, |o| o.unsigned_abs() as usize);
    let last = offsets.last().map_or(0, |o| o.unsigned_abs() as usize);
    values[..first].fill(mask_byte);
    values[last..].fill(mask_byte);
    Arc::new(StringArray::new(offsets.clone(), Buffer::from_vec(values), a.nulls().cloned()))
}

fn estimate_string_bytes(array: &dyn Array) -> usize {
    array.get_buffer_memory_size().min(1 << 30)
}

fn mask_one(v: &str, spec: &MaskSpec, mask: &[u8], out: &mut Vec<u8>) {
    let bytes = v.as_bytes();
    let n_chars = if v.is_ascii() { bytes.len() } else { v.chars().count() };
    let (keep_prefix, keep_suffix) =
        if n_chars <= spec.keep_prefix + spec.keep_suffix { (0, 0) } else { (spec.keep_prefix, spec.keep_suffix) };
    let masked = n_chars - keep_prefix - keep_suffix;
    if v.is_ascii() {
        out.extend_from_slice(&bytes[..keep_prefix]);
        if mask.len() == 1 {
            out.resize(out.len() + masked, mask[0]);
        } else {
            for _ in 0..masked {
                out.extend_from_slice(mask);
            }
        }
        out.extend_from_slice(&bytes[bytes.len() - keep_suffix..]);
    } else {
        let prefix_end = v.char_indices().nth(keep_prefix).map_or(bytes.len(), |(i, _)| i);
        let suffix_start = if keep_suffix == 0 {
            bytes.len()
        } else {
            v.char_indices().nth_back(keep_suffix - 1).map_or(0, |(i, _)| i)
        };
        out.extend_from_slice(&bytes[..prefix_end]);
        for _ in 0..masked {
            out.extend_from_slice(mask);
        }
        out.extend_from_slice(&bytes[suffix_start..]);
    }
}

// ---------------------------------------------------------------------------------------------------------
// Tokenize
// ---------------------------------------------------------------------------------------------------------

/// The zone's tokenization secret: 32 random bytes created at `zone init`, never leaving the zone.
#[derive(Clone)]
pub struct TokenSecret([u8; 32]);

impl TokenSecret {
    pub fn from_bytes(bytes: [u8; 32]) -> TokenSecret {
        TokenSecret(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for TokenSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenSecret(..)")
    }
}

/// An HMAC-SHA256 key for one token scope, derived from the zone secret: tokens of different scopes never
/// coincide, and the zone secret itself is never used on data. The key's inner and outer padded states are
/// computed once, so each token costs two SHA-256 compressions.
#[derive(Clone)]
pub struct TokenKey(Hmac<Sha256>);

impl TokenKey {
    /// `HMAC(zone secret, "zone-token-v1" 0x00 scope)` as the scope's key.
    pub fn derive(secret: &TokenSecret, scope: &str) -> TokenKey {
        // HMAC takes a key of any length, so neither call can fail.
        let mut master = Hmac::<Sha256>::new_from_slice(&secret.0).unwrap_or_else(|_| unreachable!());
        master.update(b"zone-token-v1\0");
        master.update(scope.as_bytes());
        let derived = master.finalize().into_bytes();
        TokenKey(Hmac::<Sha256>::new_from_slice(&derived).unwrap_or_else(|_| unreachable!()))
    }
}

impl fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenKey(..)")
    }
}

/// Length of a token: 128 bits of the HMAC tag, as lower-case hex.
pub const TOKEN_LEN: usize = 32;

/// Lower-case hex of every byte value, two characters each.
const HEX_PAIRS: [[u8; 2]; 256] = {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut table = [[0u8; 2]; 256];
    let mut i = 0;
    while i < 256 {
        table[i] = [DIGITS[i >> 4], DIGITS[i & 0x0f]];
        i += 1;
    }
    table
};

/// The token of one value: the first 16 bytes of its HMAC tag, as 32 hex characters.
fn token_of(key: &TokenKey, value: &[u8]) -> [u8; TOKEN_LEN] {
    let mut mac = key.0.clone();
    mac.update(value);
    let tag = mac.finalize().into_bytes();
    let mut bytes = [0u8; TOKEN_LEN / 2];
    bytes.copy_from_slice(&tag[..TOKEN_LEN / 2]);
    let mut out = [0u8; TOKEN_LEN];
    for i in 0..TOKEN_LEN / 2 {
        let [hi, lo] = HEX_PAIRS[usize::from(bytes[i])];
        out[2 * i] = hi;
        out[2 * i + 1] = lo;
    }
    out
}

/// Replaces every value (string or integer, as its decimal text) by its keyed token: 32 hex characters of
/// HMAC-SHA256. Equal values under one key give equal tokens; without the key a token reveals nothing.
pub fn tokenize(array: &dyn Array, key: &TokenKey) -> Result<ArrayRef, KernelError> {
    let rows = array.len();
    if rows.saturating_mul(TOKEN_LEN) > i32::MAX as usize {
        return Err(KernelError::Overflow { kernel: "tokenize" });
    }
    let nulls = array.logical_nulls();
    let mut offsets: Vec<i32> = Vec::with_capacity(rows + 1);
    offsets.push(0);
    let mut values: Vec<u8> = Vec::with_capacity(rows * TOKEN_LEN);
    let mut push = |value: Option<&[u8]>| {
        if let Some(v) = value {
            values.extend_from_slice(&token_of(key, v));
        }
        // At most i32::MAX / TOKEN_LEN rows (checked above), so this fits.
        offsets.push((values.len()) as i32);
    };
    if let Some(a) = array.as_string_opt::<i32>() {
        // The common layout, read straight from the offsets and values buffers.
        let (o, data) = (a.value_offsets(), a.value_data());
        for i in 0..rows {
            let valid = nulls.as_ref().is_none_or(|n| n.is_valid(i));
            push(valid.then(|| &data[o[i].unsigned_abs() as usize..o[i + 1].unsigned_abs() as usize]));
        }
    } else if array.data_type().is_integer() {
        for_each_integer_text(array, "tokenize", |_, v| push(v))?;
    } else {
        for_each_str(array, "tokenize", |_, v| push(v.map(str::as_bytes)))?;
    }
    let array = StringArray::try_new(OffsetBuffer::new(ScalarBuffer::from(offsets)), Buffer::from_vec(values), nulls)?;
    Ok(Arc::new(array))
}

// ---------------------------------------------------------------------------------------------------------
// Generalize
// ---------------------------------------------------------------------------------------------------------

/// The UTC offset of a timestamp column's time zone, for the zones this runtime converts: UTC, China Standard
/// Time (no daylight saving since 1991), and fixed offsets such as `+08:00`.
pub fn timezone_offset_seconds(tz: &str) -> Option<i32> {
    match tz {
        "UTC" | "Etc/UTC" | "Z" | "GMT" | "Etc/GMT" => return Some(0),
        "Asia/Shanghai" | "PRC" | "Asia/Chongqing" | "Asia/Chungking" | "Asia/Harbin" => return Some(8 * 3600),
        _ => {}
    }
    let b = tz.as_bytes();
    let sign = match b.first() {
        Some(b'+') => 1,
        Some(b'-') => -1,
        _ => return None,
    };
    let digits: Vec<u8> = b[1..].iter().copied().filter(|c| *c != b':').collect();
    if !(digits.len() == 2 || digits.len() == 4) || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let num = |s: &[u8]| s.iter().fold(0i32, |a, d| a * 10 + i32::from(d - b'0'));
    let hours = num(&digits[..2]);
    let minutes = if digits.len() == 4 { num(&digits[2..]) } else { 0 };
    (hours <= 14 && minutes < 60).then_some(sign * (hours * 3600 + minutes * 60))
}

/// Day numbers (days since 1970-01-01, local to the column's zone) of a date or timestamp array.
fn day_numbers(array: &dyn Array) -> Result<Vec<Option<i32>>, KernelError> {
    let to_day = |v: i64, per_second: i64, offset: i64| -> i32 {
        let per_day = per_second * 86_400;
        let days = v.saturating_add(offset.saturating_mul(per_second)).div_euclid(per_day);
        i32::try_from(days).unwrap_or(if days < 0 { i32::MIN } else { i32::MAX })
    };
    macro_rules! collect {
        ($t:ty, $f:expr) => {{
            let a = array.as_primitive::<$t>();
            (0..a.len()).map(|i| if a.is_null(i) { None } else { Some($f(a.value(i))) }).collect()
        }};
    }
    Ok(match array.data_type() {
        DataType::Date32 => collect!(Date32Type, |v: i32| v),
        DataType::Date64 => collect!(Date64Type, |v: i64| to_day(v, 1000, 0)),
        DataType::Timestamp(unit, tz) => {
            let offset = match tz {
                None => 0,
                Some(tz) => i64::from(timezone_offset_seconds(tz).ok_or_else(|| KernelError::UnsupportedType {
                    kernel: "generalize (time zone)",
                    data_type: array.data_type().clone(),
                })?),
            };
            match unit {
                TimeUnit::Second => collect!(TimestampSecondType, |v: i64| to_day(v, 1, offset)),
                TimeUnit::Millisecond => collect!(TimestampMillisecondType, |v: i64| to_day(v, 1_000, offset)),
                TimeUnit::Microsecond => collect!(TimestampMicrosecondType, |v: i64| to_day(v, 1_000_000, offset)),
                TimeUnit::Nanosecond => collect!(TimestampNanosecondType, |v: i64| to_day(v, 1_000_000_000, offset)),
            }
        }
        other => {
            return Err(KernelError::UnsupportedType { kernel: "generalize to a date part", data_type: other.clone() });
        }
    })
}

/// A numeric value as the band kernel sees it: integers exactly, floats as is.
#[derive(Clone, Copy)]
enum Number {
    Int(i128),
    Float(f64),
}

fn numbers(array: &dyn Array) -> Result<Vec<Option<Number>>, KernelError> {
    macro_rules! ints {
        ($t:ty) => {{
            let a = array.as_primitive::<$t>();
            (0..a.len()).map(|i| if a.is_null(i) { None } else { Some(Number::Int(i128::from(a.value(i)))) }).collect()
        }};
    }
    macro_rules! floats {
        ($t:ty) => {{
            let a = array.as_primitive::<$t>();
            (0..a.len())
                .map(|i| {
                    let v = f64::from(a.value(i));
                    // NaN and infinities belong to no band.
                    if a.is_null(i) || !v.is_finite() { None } else { Some(Number::Float(v)) }
                })
                .collect()
        }};
    }
    Ok(match array.data_type() {
        DataType::Int8 => ints!(Int8Type),
        DataType::Int16 => ints!(Int16Type),
        DataType::Int32 => ints!(Int32Type),
        DataType::Int64 => ints!(Int64Type),
        DataType::UInt8 => ints!(UInt8Type),
        DataType::UInt16 => ints!(UInt16Type),
        DataType::UInt32 => ints!(UInt32Type),
        DataType::UInt64 => ints!(UInt64Type),
        DataType::Float32 => floats!(Float32Type),
        DataType::Float64 => floats!(Float64Type),
        other => return Err(KernelError::UnsupportedType { kernel: "band", data_type: other.clone() }),
    })
}

fn fmt_edge(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 { format!("{}", x as i64) } else { format!("{x}") }
}

/// Band labels, computed once per kernel call for explicit edges.
struct BandLabels {
    edges: Vec<f64>,
    labels: Vec<String>,
}

impl BandLabels {
    fn new(edges: &[f64], integral: bool) -> BandLabels {
        let mut labels = Vec::with_capacity(edges.len() + 1);
        let integral = integral && edges.iter().all(|e| e.fract() == 0.0);
        labels.push(format!("<{}", fmt_edge(edges[0])));
        for w in edges.windows(2) {
            labels.push(if integral {
                format!("{}-{}", fmt_edge(w[0]), fmt_edge(w[1] - 1.0))
            } else {
                format!("[{}, {})", fmt_edge(w[0]), fmt_edge(w[1]))
            });
        }
        let last = edges[edges.len() - 1];
        labels.push(if integral { format!("{}+", fmt_edge(last)) } else { format!(">={}", fmt_edge(last)) });
        BandLabels { edges: edges.to_vec(), labels }
    }

    fn label(&self, v: f64) -> &str {
        &self.labels[self.edges.partition_point(|e| *e <= v)]
    }
}

/// Writes the label of `v` under `bands` into `out` (cleared first).
fn band_label(v: Number, bands: &Bands, labels: Option<&BandLabels>, out: &mut String) {
    out.clear();
    match (bands, labels) {
        (Bands::Edges(_), Some(l)) => {
            let x = match v {
                Number::Int(i) => i as f64,
                Number::Float(f) => f,
            };
            out.push_str(l.label(x));
        }
        (Bands::Width(w), _) => match v {
            Number::Int(i) if w.fract() == 0.0 && *w >= 1.0 && *w < 1e30 => {
                let w = *w as i128;
                let lo = i.div_euclid(w) * w;
                let _ = write!(out, "{}-{}", lo, lo + w - 1);
            }
            _ => {
                let x = match v {
                    Number::Int(i) => i as f64,
                    Number::Float(f) => f,
                };
                let lo = (x / w).floor() * w;
                let _ = write!(out, "[{}, {})", fmt_edge(lo), fmt_edge(lo + w));
            }
        },
        (Bands::Edges(_), None) => {}
    }
}

/// Generalizes every value; a value that cannot be generalized (a malformed ID, a NaN) becomes null.
pub fn generalize(array: &dyn Array, g: &Generalization) -> Result<ArrayRef, KernelError> {
    match g {
        Generalization::Year => {
            let days = day_numbers(array)?;
            let mut b = Int32Builder::with_capacity(days.len());
            for d in days {
                b.append_option(d.map(|d| CivilDate::from_days(d).year));
            }
            Ok(Arc::new(b.finish()))
        }
        Generalization::Month => {
            let days = day_numbers(array)?;
            let mut b = StringBuilder::with_capacity(days.len(), days.len() * 7);
            let mut s = String::with_capacity(16);
            for d in days {
                match d {
                    Some(d) => {
                        let c = CivilDate::from_days(d);
                        s.clear();
                        let _ = write!(s, "{:04}-{:02}", c.year, c.month);
                        b.append_value(&s);
                    }
                    None => b.append_null(),
                }
            }
            Ok(Arc::new(b.finish()))
        }
        Generalization::Band(bands) => {
            let values = numbers(array)?;
            let labels = match bands {
                Bands::Edges(e) => Some(BandLabels::new(e, array.data_type().is_integer())),
                Bands::Width(_) => None,
            };
            let mut b = StringBuilder::with_capacity(values.len(), values.len() * 8);
            let mut s = String::with_capacity(32);
            for v in values {
                match v {
                    Some(v) => {
                        band_label(v, bands, labels.as_ref(), &mut s);
                        b.append_value(&s);
                    }
                    None => b.append_null(),
                }
            }
            Ok(Arc::new(b.finish()))
        }
        Generalization::Region { digits } => {
            let mut b = StringBuilder::with_capacity(array.len(), array.len() * 6);
            let mut push = |code: Option<&[u8]>| match code {
                Some(c) if c.len() == 6 && c.iter().all(u8::is_ascii_digit) => {
                    let mut out = [b'0'; 6];
                    out[..*digits].copy_from_slice(&c[..*digits]);
                    b.append_value(std::str::from_utf8(&out).unwrap_or_default());
                }
                _ => b.append_null(),
            };
            if array.data_type().is_integer() {
                for_each_integer_text(array, "region", |_, v| push(v))?;
            } else {
                for_each_str(array, "region", |_, v| push(v.map(str::as_bytes)))?;
            }
            Ok(Arc::new(b.finish()))
        }
        Generalization::IdRegion { digits } => {
            let mut b = StringBuilder::with_capacity(array.len(), array.len() * 6);
            for_each_str(array, "id_region", |_, v| match v.and_then(|v| parse_resident_id(v).ok()) {
                Some(id) => {
                    let mut out = [b'0'; 6];
                    out[..*digits].copy_from_slice(&id.region.as_bytes()[..*digits]);
                    b.append_value(std::str::from_utf8(&out).unwrap_or_default());
                }
                None => b.append_null(),
            })?;
            Ok(Arc::new(b.finish()))
        }
        Generalization::IdBirthYear => {
            let mut b = Int32Builder::with_capacity(array.len());
            for_each_str(array, "id_birth_year", |_, v| {
                b.append_option(v.and_then(|v| parse_resident_id(v).ok()).map(|id| id.birth_date.year));
            })?;
            Ok(Arc::new(b.finish()))
        }
        Generalization::IdSex => {
            let mut b = StringBuilder::with_capacity(array.len(), array.len());
            for_each_str(array, "id_sex", |_, v| {
                b.append_option(v.and_then(|v| parse_resident_id(v).ok()).map(|id| id.sex.code()));
            })?;
            Ok(Arc::new(b.finish()))
        }
        Generalization::IdAgeBand { bands, as_of } => {
            let labels = match bands {
                Bands::Edges(e) => Some(BandLabels::new(e, true)),
                Bands::Width(_) => None,
            };
            let mut b = StringBuilder::with_capacity(array.len(), array.len() * 6);
            let mut s = String::with_capacity(16);
            for_each_str(array, "id_age_band", |_, v| {
                // A birth date after the reference date gives no age.
                match v.and_then(|v| parse_resident_id(v).ok()).filter(|id| id.birth_date <= *as_of) {
                    Some(id) => {
                        let age = id.birth_date.years_until(*as_of);
                        band_label(Number::Int(i128::from(age)), bands, labels.as_ref(), &mut s);
                        b.append_value(&s);
                    }
                    None => b.append_null(),
                }
            })?;
            Ok(Arc::new(b.finish()))
        }
        Generalization::MobilePrefix => {
            let mut b = StringBuilder::with_capacity(array.len(), array.len() * 3);
            for_each_str(array, "mobile_prefix", |_, v| {
                b.append_option(v.filter(|v| is_valid_mobile(v)).map(|v| &v[..3]));
            })?;
            Ok(Arc::new(b.finish()))
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// A whole policy on a batch
// ---------------------------------------------------------------------------------------------------------

/// The kernel of one guest-visible column: what the guest sees of it.
#[derive(Clone)]
pub enum ColumnKernel {
    /// `plain` and `compute_only`: the value itself.
    Keep,
    Mask(MaskSpec),
    Token(TokenKey),
    Generalize(Generalization),
}

impl fmt::Debug for ColumnKernel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ColumnKernel::Keep => f.write_str("keep"),
            ColumnKernel::Mask(m) => write!(f, "mask({}, {}, {:?})", m.keep_prefix, m.keep_suffix, m.mask_char),
            ColumnKernel::Token(_) => f.write_str("token"),
            ColumnKernel::Generalize(g) => write!(f, "generalize({})", g.name()),
        }
    }
}

impl ColumnKernel {
    /// The kernel for a column under its rule, or `None` for the subject and hidden columns (the guest sees
    /// nothing of them). Token keys derive from the zone secret and the column's token scope.
    pub fn for_rule(rule: &ColumnRule, secret: &TokenSecret) -> Option<ColumnKernel> {
        Some(match rule {
            ColumnRule::Subject | ColumnRule::Hidden => return None,
            ColumnRule::Plain | ColumnRule::ComputeOnly(_) => ColumnKernel::Keep,
            ColumnRule::Masked(m) => ColumnKernel::Mask(*m),
            ColumnRule::Tokenized(t) => ColumnKernel::Token(TokenKey::derive(secret, &t.scope)),
            ColumnRule::Generalized(g) => ColumnKernel::Generalize(g.clone()),
        })
    }

    /// The kernel's name, for plans and errors.
    pub fn name(&self) -> &'static str {
        match self {
            ColumnKernel::Keep => "keep",
            ColumnKernel::Mask(_) => "mask",
            ColumnKernel::Token(_) => "token",
            ColumnKernel::Generalize(_) => "generalize",
        }
    }

    /// Applies the kernel to one column.
    pub fn apply(&self, input: &ArrayRef) -> Result<ArrayRef, KernelError> {
        match self {
            ColumnKernel::Keep => Ok(input.clone()),
            ColumnKernel::Mask(m) => mask(input.as_ref(), m),
            ColumnKernel::Token(k) => tokenize(input.as_ref(), k),
            ColumnKernel::Generalize(g) => generalize(input.as_ref(), g),
        }
    }
}

/// Applies a compiled policy to record batches of its dataset: splits off the subject column (for the host)
/// and produces the batch the guest may see.
pub struct Desensitizer {
    subject: String,
    /// (column name, expected type, kernel) for every guest-visible column, in dataset order.
    steps: Vec<(String, DataType, ColumnKernel)>,
    guest_schema: Arc<Schema>,
}

impl fmt::Debug for Desensitizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Desensitizer")
            .field("subject", &self.subject)
            .field("guest_schema", &self.guest_schema)
            .finish()
    }
}

/// A batch after desensitization.
#[derive(Debug)]
pub struct Desensitized {
    /// The subject of each row, for the host only.
    pub subject: ArrayRef,
    /// What the guest sees, in the policy's guest schema.
    pub guest: RecordBatch,
}

impl Desensitizer {
    /// Prepares the kernels of `policy`, deriving one token key per tokenized column from the zone secret.
    pub fn new(policy: &CompiledPolicy, secret: &TokenSecret) -> Desensitizer {
        let steps = policy
            .columns()
            .iter()
            .filter_map(|c| ColumnKernel::for_rule(&c.rule, secret).map(|k| (c.name.clone(), c.data_type.clone(), k)))
            .collect();
        Desensitizer { subject: policy.subject().name.clone(), steps, guest_schema: policy.guest_schema() }
    }

    pub fn guest_schema(&self) -> &Arc<Schema> {
        &self.guest_schema
    }

    fn column<'b>(batch: &'b RecordBatch, name: &str) -> Result<&'b ArrayRef, KernelError> {
        batch.column_by_name(name).ok_or_else(|| KernelError::MissingColumn { column: name.to_owned() })
    }

    /// Desensitizes one batch of the dataset (any column order; extra columns are ignored).
    pub fn apply(&self, batch: &RecordBatch) -> Result<Desensitized, KernelError> {
        let subject = Self::column(batch, &self.subject)?.clone();
        let mut columns = Vec::with_capacity(self.steps.len());
        for (name, expected, step) in &self.steps {
            let input = Self::column(batch, name)?;
            if input.data_type() != expected {
                return Err(KernelError::TypeMismatch {
                    column: name.clone(),
                    expected: expected.clone(),
                    actual: input.data_type().clone(),
                });
            }
            columns.push(step.apply(input)?);
        }
        let guest = RecordBatch::try_new(self.guest_schema.clone(), columns)?;
        Ok(Desensitized { subject, guest })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Date32Array, Float64Array, Int32Array, Int64Array, LargeStringArray};

    fn strings(a: &ArrayRef) -> Vec<Option<String>> {
        let a = a.as_string::<i32>();
        (0..a.len()).map(|i| (!a.is_null(i)).then(|| a.value(i).to_owned())).collect()
    }

    fn s(v: &str) -> Option<String> {
        Some(v.to_owned())
    }

    #[test]
    fn mask_ascii_and_cjk() {
        let input = StringArray::from(vec![Some("13912345678"), None, Some("欧阳娜娜"), Some("ab"), Some("")]);
        let spec = MaskSpec { keep_prefix: 3, keep_suffix: 4, mask_char: '*' };
        let out = mask(&input, &spec).expect("mask");
        assert_eq!(strings(&out), vec![s("139****5678"), None, s("****"), s("**"), s("")]);
        let name = MaskSpec { keep_prefix: 1, keep_suffix: 0, mask_char: '＊' };
        let out = mask(&StringArray::from(vec!["欧阳娜娜", "张三"]), &name).expect("mask");
        assert_eq!(strings(&out), vec![s("欧＊＊＊"), s("张＊")]);
        let large = LargeStringArray::from(vec!["320508199001011234"]);
        let id = MaskSpec { keep_prefix: 6, keep_suffix: 1, mask_char: '*' };
        assert_eq!(strings(&mask(&large, &id).expect("mask")), vec![s("320508***********4")]);
    }

    #[test]
    fn mask_never_reads_null_slots() {
        // A null slot whose bytes hold a secret: the output must not contain it.
        let base = StringArray::from(vec!["secret-value", "x"]);
        let nulls = NullBuffer::from(vec![false, true]);
        let input = StringArray::new(base.offsets().clone(), base.values().clone(), Some(nulls));
        let out = mask(&input, &MaskSpec { keep_prefix: 2, keep_suffix: 0, mask_char: '*' }).expect("mask");
        let out = out.as_string::<i32>();
        assert!(out.is_null(0));
        assert!(!String::from_utf8_lossy(out.values()).contains("se"));
    }

    #[test]
    fn tokens() {
        let secret = TokenSecret::from_bytes([7; 32]);
        let key = TokenKey::derive(&secret, "column:t.c");
        let a = tokenize(&StringArray::from(vec![Some("x"), None, Some("x"), Some("y")]), &key).expect("tokens");
        let v = strings(&a);
        assert_eq!(v[0], v[2]);
        assert_ne!(v[0], v[3]);
        assert!(v[1].is_none());
        assert_eq!(v[0].as_ref().map(String::len), Some(TOKEN_LEN));
        // Integers are tokenized as their decimal text.
        let ints = tokenize(&Int64Array::from(vec![-42, 7]), &key).expect("tokens");
        let text = tokenize(&StringArray::from(vec!["-42", "7"]), &key).expect("tokens");
        assert_eq!(strings(&ints), strings(&text));
        let other = TokenKey::derive(&secret, "column:t.d");
        assert_ne!(strings(&tokenize(&StringArray::from(vec!["x"]), &other).expect("t"))[0], v[0]);
    }

    #[test]
    fn tokens_are_standard_hmac_sha256() {
        // RFC 4231 test case 2 ("Jefe"), through the same HMAC the kernel uses...
        let mut mac = Hmac::<Sha256>::new_from_slice(b"Jefe").expect("key");
        mac.update(b"what do ya want for nothing?");
        assert_eq!(
            mac.finalize().into_bytes().as_slice(),
            [
                0x5b, 0xdc, 0xc1, 0x46, 0xbf, 0x60, 0x75, 0x4e, 0x6a, 0x04, 0x24, 0x26, 0x08, 0x95, 0x75, 0xc7, 0x5a,
                0x00, 0x3f, 0x08, 0x9d, 0x27, 0x39, 0x83, 0x9d, 0xec, 0x58, 0xb9, 0x64, 0xec, 0x38, 0x43
            ]
        );
        // ...and a token equals ring's HMAC under the derived key, truncated to 128 bits, in hex.
        let secret = TokenSecret::from_bytes([9; 32]);
        let master = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &[9; 32]);
        let derived = ring::hmac::sign(&master, b"zone-token-v1\0column:d.c");
        let scope_key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, derived.as_ref());
        let expected: String = ring::hmac::sign(&scope_key, b"110105194912310020").as_ref()[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let token = tokenize(&StringArray::from(vec!["110105194912310020"]), &TokenKey::derive(&secret, "column:d.c"))
            .expect("token");
        assert_eq!(strings(&token), vec![Some(expected)]);
    }

    #[test]
    fn dates() {
        let d = Date32Array::from(vec![Some(19_723), None, Some(-1)]);
        let y = generalize(&d, &Generalization::Year).expect("year");
        assert_eq!(y.as_primitive::<Int32Type>().iter().collect::<Vec<_>>(), vec![Some(2024), None, Some(1969)]);
        let m = generalize(&d, &Generalization::Month).expect("month");
        assert_eq!(strings(&m), vec![s("2024-01"), None, s("1969-12")]);
        // 2023-12-31T20:00:00Z is already 2024 in Shanghai.
        let ts = arrow_array::TimestampSecondArray::from(vec![1_704_052_800]).with_timezone("Asia/Shanghai");
        let y = generalize(&ts, &Generalization::Year).expect("year");
        assert_eq!(y.as_primitive::<Int32Type>().value(0), 2024);
    }

    #[test]
    fn bands() {
        let a = Int32Array::from(vec![Some(0), Some(9), Some(10), Some(-1), None]);
        let out = generalize(&a, &Generalization::Band(Bands::Width(10.0))).expect("band");
        assert_eq!(strings(&out), vec![s("0-9"), s("0-9"), s("10-19"), s("-10--1"), None]);
        let edges = Generalization::Band(Bands::Edges(vec![18.0, 35.0, 60.0]));
        let out = generalize(&Int32Array::from(vec![17, 18, 34, 35, 60, 99]), &edges).expect("band");
        assert_eq!(strings(&out), vec![s("<18"), s("18-34"), s("18-34"), s("35-59"), s("60+"), s("60+")]);
        let f = Float64Array::from(vec![0.25, f64::NAN, 1.5]);
        let out = generalize(&f, &Generalization::Band(Bands::Width(0.5))).expect("band");
        assert_eq!(strings(&out), vec![s("[0, 0.5)"), None, s("[1.5, 2)")]);
    }

    #[test]
    fn resident_id_parts() {
        let ids = StringArray::from(vec![Some("11010519491231002X"), Some("not an id"), None]);
        let region = generalize(&ids, &Generalization::IdRegion { digits: 4 }).expect("region");
        assert_eq!(strings(&region), vec![s("110100"), None, None]);
        let sex = generalize(&ids, &Generalization::IdSex).expect("sex");
        assert_eq!(strings(&sex), vec![s("F"), None, None]);
        let year = generalize(&ids, &Generalization::IdBirthYear).expect("year");
        assert_eq!(year.as_primitive::<Int32Type>().iter().collect::<Vec<_>>(), vec![Some(1949), None, None]);
        let as_of = CivilDate::new(2026, 1, 1).expect("date");
        let band = Generalization::IdAgeBand { bands: Bands::Edges(vec![18.0, 60.0, 75.0]), as_of };
        assert_eq!(strings(&generalize(&ids, &band).expect("age")), vec![s("75+"), None, None]);
        let mobiles = StringArray::from(vec!["13912345678", "0512-6666"]);
        assert_eq!(strings(&generalize(&mobiles, &Generalization::MobilePrefix).expect("m")), vec![s("139"), None]);
        let codes = Int32Array::from(vec![320508, 12]);
        assert_eq!(
            strings(&generalize(&codes, &Generalization::Region { digits: 4 }).expect("r")),
            vec![s("320500"), None]
        );
    }

    #[test]
    fn timezones() {
        assert_eq!(timezone_offset_seconds("+08:00"), Some(28_800));
        assert_eq!(timezone_offset_seconds("-0530"), Some(-19_800));
        assert_eq!(timezone_offset_seconds("Asia/Shanghai"), Some(28_800));
        assert_eq!(timezone_offset_seconds("Europe/Paris"), None);
        assert_eq!(timezone_offset_seconds("+99:00"), None);
    }
}
