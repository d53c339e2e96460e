//! The sandbox boundary, measured against baselines in the same run:
//! - a run's start: `load` (deserialize a stored artifact + pre-instantiate) and `start` (instantiate + `init`);
//! - mapping 64K-row batches through a guest that reads every input byte and returns its input (IPC both ways,
//!   output validation, clamping) vs the host's native pass over the same batches (the same clamp);
//! - the same through a guest that returns its input untouched: the boundary alone;
//! - epoch interruption vs fuel on the reading guest.
//!
//! The guests are WAT (`zone_sandbox::testing`): small components, so `load` here is a floor; a realistic Rust
//! guest of a few MB deserializes in proportion to its code size.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use cleanroom_benches::{compare, median_of, ratio, report};
use zone_sandbox::output::{key, measure};
use zone_sandbox::testing::{ECHO, INIT_OK, component};
use zone_sandbox::{Aggregate, OutputDecl, Sandbox, SandboxLimits};

/// Touches every input byte (a checksum the guest keeps in a global), then returns the input.
const READ_ALL: &str = "(local $i i32) (local $acc i32)
    (local.set $i (local.get 0))
    (block $done (loop $l
        (br_if $done (i32.ge_u (local.get $i) (i32.add (local.get 0) (local.get 1))))
        (local.set $acc (i32.add (local.get $acc) (i32.load8_u (local.get $i))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $l)))
    (global.set $sink (local.get $acc))
    (call $ok (local.get 0) (local.get 1))";

fn declared() -> Schema {
    Schema::new(vec![
        key("district", DataType::Utf8),
        measure("capital", DataType::Int64, Aggregate::Sum, Some((0.0, 1e9))),
    ])
}

fn batches(rows: usize, batch: usize) -> Vec<RecordBatch> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("district", DataType::Utf8, true),
        Field::new("capital", DataType::Int64, true),
    ]));
    (0..rows.div_ceil(batch))
        .map(|b| {
            let n = batch.min(rows - b * batch);
            let d: Vec<&str> = (0..n).map(|i| ["姑苏区", "吴中区", "昆山市", "苏州工业园区"][i % 4]).collect();
            let c: Vec<i64> = (0..n).map(|i| ((i * 7919) % 2_000_000_000) as i64).collect();
            let columns: Vec<ArrayRef> = vec![Arc::new(StringArray::from(d)), Arc::new(Int64Array::from(c))];
            RecordBatch::try_new(schema.clone(), columns).expect("batch")
        })
        .collect()
}

fn main() {
    let rows = std::env::var("BENCH_ROWS").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000_000usize);
    let rounds = std::env::var("BENCH_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(5);
    let wasm =
        component(&declared(), INIT_OK, READ_ALL, "(global $sink (mut i32) (i32.const 0))", b"", "").expect("guest");
    let input_schema = batches(1, 1)[0].schema();

    // Start-up.
    let sandbox = Sandbox::new(SandboxLimits::default()).expect("sandbox");
    let checked = sandbox.check(&wasm).expect("check");
    let load = median_of(
        || {
            let t = Instant::now();
            black_box(sandbox.load(&checked.serialized).expect("load"));
            t.elapsed()
        },
        101,
    );
    let module = sandbox.load(&checked.serialized).expect("load");
    let start = median_of(
        || {
            let t = Instant::now();
            black_box(sandbox.start(&module, &input_schema, &[]).expect("start"));
            t.elapsed()
        },
        1001,
    );
    println!("sandbox start-up ({} byte component, {} byte artifact)", wasm.len(), checked.serialized.len());
    println!("  load (deserialize + pre-instantiate)  median {:>8.1} µs", load.as_secs_f64() * 1e6);
    println!("  start (instantiate + init)            median {:>8.1} µs (target <= 1 ms)", start.as_secs_f64() * 1e6);

    // Mapping.
    let data = batches(rows, 65_536);
    let decl = OutputDecl::from_schema(&declared()).expect("declared");
    let fuel_sandbox =
        Sandbox::new(SandboxLimits { fuel_per_call: Some(u64::MAX / 2), ..SandboxLimits::default() }).expect("sandbox");
    let fuel_module = fuel_sandbox.load(&fuel_sandbox.check(&wasm).expect("check").serialized).expect("load");
    let echo_module = sandbox
        .load(
            &sandbox
                .check(&component(&declared(), INIT_OK, ECHO, "", b"", "").expect("guest"))
                .expect("check")
                .serialized,
        )
        .expect("load");
    let mut echo = || {
        let mut run = sandbox.start(&echo_module, &input_schema, &[]).expect("start");
        for b in &data {
            black_box(run.map(b).expect("map"));
        }
    };
    let mut native = || {
        for b in &data {
            let renamed =
                RecordBatch::try_new(Arc::new(Schema::new(b.schema().fields().to_vec())), b.columns().to_vec())
                    .expect("batch");
            black_box(decl.conform(&renamed).expect("conform"));
        }
    };
    let mut epoch = || {
        let mut run = sandbox.start(&module, &input_schema, &[]).expect("start");
        for b in &data {
            black_box(run.map(b).expect("map"));
        }
    };
    let mut fuel = || {
        let mut run = fuel_sandbox.start(&fuel_module, &input_schema, &[]).expect("start");
        for b in &data {
            black_box(run.map(b).expect("map"));
        }
    };
    let results = compare(
        rounds,
        &mut [
            ("native clamp (baseline)", &mut native),
            ("sandbox, echo (boundary only)", &mut echo),
            ("sandbox, epoch deadline", &mut epoch),
            ("sandbox, fuel", &mut fuel),
        ],
    );
    println!("map: {rows} rows in 64K-row batches, median of {rounds} interleaved rounds");
    report(&results, "native clamp (baseline)", rows);
    println!(
        "sandbox / native = {:.2}x; fuel / epoch = {:.2}x",
        ratio(&results, "sandbox, epoch deadline", "native clamp (baseline)"),
        ratio(&results, "sandbox, fuel", "sandbox, epoch deadline")
    );
}
