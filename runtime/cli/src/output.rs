//! Output for people (tables) and scripts (`--json`), in one place so every command looks alike.

use std::cell::RefCell;
use std::fmt;
use std::io::Write as _;

use comfy_table::{ContentArrangement, Table, presets};
use serde::Serialize;

/// What a command printed while its output was captured (the server runs commands for remote clients).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Captured {
    pub stdout: String,
    pub stderr: String,
}

thread_local! {
    static CAPTURE: RefCell<Option<Captured>> = const { RefCell::new(None) };
}

/// Runs `f` with everything it prints through `outln!`/`errln!` on this thread kept instead of printed.
pub fn capture<T>(f: impl FnOnce() -> T) -> (T, Captured) {
    CAPTURE.with(|c| *c.borrow_mut() = Some(Captured::default()));
    let value = f();
    let captured = CAPTURE.with(|c| c.borrow_mut().take()).unwrap_or_default();
    (value, captured)
}

/// Whether this thread's output is being captured (progress bars stay hidden then).
pub fn capturing() -> bool {
    CAPTURE.with(|c| c.borrow().is_some())
}

/// Writes to stdout, or to the capture.
pub fn write_out(args: fmt::Arguments<'_>, newline: bool) {
    write(args, newline, false);
}

/// Writes to stderr, or to the capture.
pub fn write_err(args: fmt::Arguments<'_>, newline: bool) {
    write(args, newline, true);
}

fn write(args: fmt::Arguments<'_>, newline: bool, stderr: bool) {
    let captured = CAPTURE.with(|c| match c.borrow_mut().as_mut() {
        Some(cap) => {
            let text = if stderr { &mut cap.stderr } else { &mut cap.stdout };
            fmt::Write::write_fmt(text, args).ok();
            if newline {
                text.push('\n');
            }
            true
        }
        None => false,
    });
    if captured {
        return;
    }
    let mut out: Box<dyn std::io::Write> =
        if stderr { Box::new(std::io::stderr().lock()) } else { Box::new(std::io::stdout().lock()) };
    let _ = out.write_fmt(args);
    if newline {
        let _ = out.write_all(b"\n");
    }
}

/// `println!` for command output: stdout, or the capture of a command run for a remote client.
macro_rules! outln {
    () => { $crate::output::write_out(format_args!(""), true) };
    ($($t:tt)*) => { $crate::output::write_out(format_args!($($t)*), true) };
}

/// `print!` for command output.
macro_rules! out {
    ($($t:tt)*) => { $crate::output::write_out(format_args!($($t)*), false) };
}

/// `eprint!` for command notes.
macro_rules! err {
    ($($t:tt)*) => { $crate::output::write_err(format_args!($($t)*), false) };
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
