//! A real Rust guest (`examples/finance-capital`, built with the SDK) against the same computation in native Rust:
//! clamp registered capital, band employees, derive two measures, over 10M rows (`ZONE_BENCH_ROWS`) of the
//! enterprise registry as the policy shows it to guests, in 64K-row batches.
//! - native: `compute::derive` (the guest's own source file, compiled for the host) on each batch;
//! - sandbox: `GuestRun::map` on each batch — host IPC encode, copy into the guest, zero-copy decode, the same
//!   derive, guest IPC encode, copy out, validating decode, declared-schema check, clamping;
//!   (the job declares the four columns it reads, so only those cross the boundary);
//! - where the time goes: the host-side steps alone (encode the input, decode and check the output).
//!
//! Also: starting a run of the stored 2 MB guest — `load` (deserialize + pre-instantiate) and `start` (instantiate
//! from the `InstancePre` + `init`).

use std::hint::black_box;
use std::time::Instant;

use arrow_array::RecordBatch;
use cleanroom_benches::{compare, median_of, ratio, report};
use policies::{CompiledPolicy, Desensitizer, TokenSecret};
use zone_sandbox::{Sandbox, SandboxLimits};

#[path = "../../examples/finance-capital/src/compute.rs"]
mod compute;

const BATCH: usize = 65_536;

/// The guest view of the committed registry, tiled to `rows` rows in `BATCH`-row batches.
fn batches(rows: usize) -> Vec<RecordBatch> {
    let dataset = "enterprise_registry";
    let file = std::fs::File::open(datasets_fixtures::committed_parquet(dataset)).expect("fixture");
    let raw: Vec<RecordBatch> = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .expect("parquet")
        .build()
        .expect("reader")
        .map(|b| b.expect("batch"))
        .collect();
    let raw = arrow_select::concat::concat_batches(&raw[0].schema(), &raw).expect("concat");
    let policy =
        CompiledPolicy::compile(dataset, datasets_fixtures::policy_text(dataset).expect("policy"), &raw.schema())
            .expect("policy");
    let view = Desensitizer::new(&policy, &TokenSecret::from_bytes([1; 32])).apply(&raw).expect("view").guest;
    let copies = rows.div_ceil(view.num_rows());
    let tiled = arrow_select::concat::concat_batches(&view.schema(), &vec![view; copies]).expect("tile");
    (0..rows.div_ceil(BATCH)).map(|b| tiled.slice(b * BATCH, BATCH.min(rows - b * BATCH))).collect()
}

/// The four columns the job reads, for the host-side encode measurement.
fn project(batches: &[RecordBatch]) -> Vec<RecordBatch> {
    batches
        .iter()
        .map(|b| {
            let schema = b.schema();
            let keep: Vec<usize> = ["district", "industry", "reg_capital", "employees"]
                .iter()
                .map(|n| schema.index_of(n).expect("column"))
                .collect();
            b.project(&keep).expect("project")
        })
        .collect()
}

fn main() {
    let rows: usize = std::env::var("ZONE_BENCH_ROWS").ok().and_then(|r| r.parse().ok()).unwrap_or(10_000_000);
    let rounds: usize = std::env::var("ZONE_BENCH_ROUNDS").ok().and_then(|r| r.parse().ok()).unwrap_or(5);
    let full = batches(rows);
    let narrow = project(&full);
    let sandbox = Sandbox::new(SandboxLimits::default()).expect("sandbox");
    let wasm = example_guests::FINANCE_CAPITAL.bytes().expect("guest built");
    let compiled = Instant::now();
    let checked = sandbox.check(&wasm).expect("accepted");
    let compile = compiled.elapsed();
    let module = sandbox.load(&checked.serialized).expect("load");

    println!(
        "finance-capital: {} bytes of wasm, {} bytes compiled; compile {compile:.2?}",
        wasm.len(),
        checked.serialized.len()
    );
    let load = median_of(
        || {
            let t = Instant::now();
            black_box(sandbox.load(&checked.serialized).expect("load"));
            t.elapsed()
        },
        21,
    );
    let schema = full[0].schema();
    let start = median_of(
        || {
            let t = Instant::now();
            black_box(sandbox.start(&module, &schema, &[]).expect("start"));
            t.elapsed()
        },
        51,
    );
    println!("load (deserialize + pre-instantiate) median {load:.2?}; start (instantiate + init) median {start:.2?}");
    println!("{rows} rows in {} batches of up to {BATCH}; {rounds} rounds, interleaved", full.len());

    let through_sandbox = |batches: &[RecordBatch]| {
        let mut run = sandbox.start(&module, &batches[0].schema(), &[]).expect("start");
        for b in batches {
            black_box(run.map(b).expect("map"));
        }
    };
    let output_schema = {
        let run = sandbox.start(&module, &schema, &[]).expect("start");
        run.output().expect("declared").schema().clone()
    };
    let outputs: Vec<RecordBatch> = {
        let mut run = sandbox.start(&module, &schema, &[]).expect("start");
        full.iter().map(|b| run.map(b).expect("map")).collect()
    };
    let results = compare(
        rounds,
        &mut [
            ("native derive (baseline)", &mut || {
                for b in &full {
                    let columns = compute::derive(b).expect("derive");
                    black_box(RecordBatch::try_new(output_schema.clone(), columns).expect("batch"));
                }
            }),
            ("sandbox", &mut || through_sandbox(&full)),
            ("host: encode input IPC", &mut || {
                for b in &narrow {
                    black_box(guest_ipc::encode_batch(b).expect("encode"));
                }
            }),
            ("host: decode+check output", &mut || {
                let decl = zone_sandbox::OutputDecl::from_schema(&output_schema).expect("decl");
                for o in &outputs {
                    let bytes = guest_ipc::encode_batch(o).expect("encode");
                    let t = guest_ipc::decode_batch_owned(bytes, 256 << 20).expect("decode");
                    black_box(decl.conform(&t).expect("conform"));
                }
            }),
        ],
    );
    report(&results, "native derive (baseline)", rows);
    println!("ratio sandbox/native: {:.2}x", ratio(&results, "sandbox", "native derive (baseline)"));
}
