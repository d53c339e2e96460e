//! Output for people (tables) and scripts (`--json`), in one place so every command looks alike.

use std::fmt;
use std::io::Write as _;

use comfy_table::{ContentArrangement, Table, presets};
use serde::Serialize;

/// Writes to stdout.
pub fn write_out(args: fmt::Arguments<'_>, newline: bool) {
    write(args, newline, false);
}

/// Writes to stderr.
pub fn write_err(args: fmt::Arguments<'_>, newline: bool) {
    write(args, newline, true);
}

fn write(args: fmt::Arguments<'_>, newline: bool, stderr: bool) {
    let mut out: Box<dyn std::io::Write> =
        if stderr { Box::new(std::io::stderr().lock()) } else { Box::new(std::io::stdout().lock()) };
    let _ = out.write_fmt(args);
    if newline {
        let _ = out.write_all(b"\n");
    }
}

/// `println!` for command output.
macro_rules! outln {
    () => { $crate::output::write_out(format_args!(""), true) };
    ($($t:tt)*) => { $crate::output::write_out(format_args!($($t)*), true) };
}

/// `print!` for command output.
macro_rules! out {
    ($($t:tt)*) => { $crate::output::write_out(format_args!($($t)*), false) };
}

/// `eprintln!` for command notes.
macro_rules! errln {
    () => { $crate::output::write_err(format_args!(""), true) };
    ($($t:tt)*) => { $crate::output::write_err(format_args!($($t)*), true) };
}

/// The one escaping function for text a guest or an operator made (keys of a product, purposes, parameters, guest
/// messages): control, bidirectional and invisible characters as `\u{XXXX}`.
pub use zone_sandbox::output::inert;

/// Batches with every text cell passed through [`inert`], for printing as a table.
pub fn inert_batches(batches: &[arrow_array::RecordBatch]) -> anyhow::Result<Vec<arrow_array::RecordBatch>> {
    use arrow_array::cast::AsArray as _;
    let mut out = Vec::with_capacity(batches.len());
    for b in batches {
        let mut columns = b.columns().to_vec();
        for column in &mut columns {
            if column.data_type() == &arrow_schema::DataType::Utf8 {
                let text: arrow_array::StringArray =
                    column.as_string::<i32>().iter().map(|v| v.map(|t| inert(t).into_owned())).collect();
                *column = std::sync::Arc::new(text);
            }
        }
        out.push(arrow_array::RecordBatch::try_new(b.schema(), columns)?);
    }
    Ok(out)
}

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Human,
    Json,
}

/// A table in the house style.
pub fn table<I, S>(header: I) -> Table
where
    I: IntoIterator<Item = S>,
    S: Into<comfy_table::Cell>,
{
    let mut t = Table::new();
    t.load_preset(presets::UTF8_BORDERS_ONLY).set_content_arrangement(ContentArrangement::Dynamic).set_header(header);
    t
}

/// Prints a value as pretty JSON on stdout.
pub fn json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    outln!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// `12345678` → `12.3 MB`.
pub fn bytes(n: u64) -> String {
    indicatif::HumanBytes(n).to_string()
}

/// The first 12 hex characters of a digest, for tables.
pub fn short(sha256: &str) -> &str {
    &sha256[..sha256.len().min(12)]
}
