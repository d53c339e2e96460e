//! The sandbox against real components: a well-behaved guest, and hostile ones written as inline WAT (no guest
//! toolchain needed), each refused with its own class while the sandbox keeps working.

use std::sync::Arc;
use std::time::Duration;

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use arrow_ipc::writer::StreamWriter;
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use zone_sandbox::output::{key, measure};
use zone_sandbox::testing::{ECHO, INIT_OK, SECRET, ipc_stream};
use zone_sandbox::{Aggregate, FailureClass, Sandbox, SandboxLimits};

fn input_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("district", DataType::Utf8, true),
        Field::new("capital", DataType::Int64, true),
    ]))
}

fn input(rows: usize) -> RecordBatch {
    let districts: Vec<String> = (0..rows).map(|i| format!("d{}", i % 3)).collect();
    let capital: Vec<i64> = (0..rows).map(|i| i as i64 * 40 - 20).collect();
    let columns: Vec<ArrayRef> = vec![Arc::new(StringArray::from(districts)), Arc::new(Int64Array::from(capital))];
    RecordBatch::try_new(input_schema(), columns).expect("batch")
}

/// The output the echo guest declares: the input's columns as key and bounded measure.
fn declared() -> Schema {
    Schema::new(vec![
        key("district", DataType::Utf8),
        measure("capital", DataType::Int64, Aggregate::Sum, Some((0.0, 100.0))),
    ])
}

fn init_ok() -> String {
    INIT_OK.to_owned()
}

fn component(init: &str, map: &str, extra: &str, blob: &[u8], imports: &str) -> Vec<u8> {
    zone_sandbox::testing::component(&declared(), init, map, extra, blob, imports)
        .unwrap_or_else(|e| panic!("WAT: {e}"))
}

fn echo_guest() -> Vec<u8> {
    component(&init_ok(), ECHO, "", b"", "")
}

fn sandbox() -> Sandbox {
    let limits = SandboxLimits {
        call_timeout: Duration::from_millis(300),
        job_timeout: Duration::from_secs(5),
        memory_bytes: 64 << 20,
        ..SandboxLimits::default()
    };
    Sandbox::new(limits).expect("sandbox")
}

/// The echo guest still works: the sandbox survived whatever ran before.
fn assert_usable(sandbox: &Sandbox) {
    let checked = sandbox.check(&echo_guest()).expect("check");
    let module = sandbox.load(&checked.serialized).expect("load");
    let mut run = sandbox.start(&module, &input_schema(), &[]).expect("start");
    let out = run.map(&input(5)).expect("map");
    assert_eq!(out.num_rows(), 5);
}

/// Runs `wasm` through check, load, start and one map; returns the first failure.
fn run_guest(
    sandbox: &Sandbox,
    wasm: &[u8],
    rows: usize,
) -> Result<(RecordBatch, zone_sandbox::Diagnostics), zone_sandbox::SandboxError> {
    let checked = sandbox.check(wasm)?;
    let module = sandbox.load(&checked.serialized)?;
    let mut run = sandbox.start(&module, &input_schema(), &[("mode".into(), "test".into())])?;
    let out = run.map(&input(rows));
    let diagnostics = run.diagnostics().clone();
    out.map(|b| (b, diagnostics))
}

#[test]
fn a_good_guest_maps_and_measures_are_clamped() {
    let sandbox = sandbox();
    let checked = sandbox.check(&echo_guest()).expect("check");
    assert_eq!(checked.sha256.len(), 64);
    assert_eq!(checked.imports, vec!["zone:job/diagnostics@0.1.0".to_owned()]);
    let module = sandbox.load(&checked.serialized).expect("load");
    let mut run = sandbox.start(&module, &input_schema(), &[]).expect("start");
    let decl = run.output().expect("declared").clone();
    assert_eq!(decl.keys.len(), 1);
    assert_eq!(decl.measures[0].aggregate, Aggregate::Sum);
    for _ in 0..3 {
        let out = run.map(&input(6)).expect("map");
        // capital = -20, 20, 60, 100, 140, 180 clamped to [0, 100].
        assert_eq!(out.column(1).as_primitive::<Int64Type>().values().to_vec(), vec![0, 20, 60, 100, 100, 100]);
        assert_eq!(out.schema().field(0).metadata().get("zone.role").map(String::as_str), Some("key"));
    }
    // A fresh instance per run: a second run of the same module starts clean.
    let mut second = sandbox.start(&module, &input_schema(), &[]).expect("start");
    assert_eq!(second.map(&input(1)).expect("map").num_rows(), 1);
}

fn expect_class(
    result: Result<impl std::fmt::Debug, zone_sandbox::SandboxError>,
    class: FailureClass,
) -> zone_sandbox::SandboxError {
    match result {
        Err(e) => {
            assert_eq!(e.class, class, "{e}");
            assert!(!e.to_string().contains(SECRET), "guest text leaked into the error: {e}");
            e
        }
        Ok(v) => panic!("expected {class}, got {v:?}"),
    }
}

#[test]
fn cpu_hogs_time_out_in_init_and_in_map() {
    let sandbox = sandbox();
    let spin = "(loop $l (br $l)) (unreachable)";
    let started = std::time::Instant::now();
    expect_class(run_guest(&sandbox, &component(spin, ECHO, "", b"", ""), 1), FailureClass::Timeout);
    expect_class(run_guest(&sandbox, &component(&init_ok(), spin, "", b"", ""), 1), FailureClass::Timeout);
    assert!(started.elapsed() < Duration::from_secs(5), "deadlines were not enforced: {:?}", started.elapsed());
    assert_usable(&sandbox);
}

#[test]
fn the_stop_signal_interrupts_a_running_call_within_a_second() {
    // Long deadlines: only the stop can end this call in time.
    let limits = SandboxLimits {
        call_timeout: Duration::from_secs(60),
        job_timeout: Duration::from_secs(120),
        ..SandboxLimits::default()
    };
    let sandbox = Arc::new(Sandbox::new(limits).expect("sandbox"));
    let module = sandbox
        .load(
            &sandbox
                .check(&component(&init_ok(), "(loop $l (br $l)) (unreachable)", "", b"", ""))
                .expect("check")
                .serialized,
        )
        .expect("load");
    let mut run = sandbox.start(&module, &input_schema(), &[]).expect("init");
    let stop = sandbox.stop_signal();
    let stopper = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        stop.stop();
        std::time::Instant::now()
    });
    let result = run.map(&input(4));
    let ended = std::time::Instant::now();
    let stopped_at = stopper.join().expect("stopper");
    let e = expect_class(result, FailureClass::Stopped);
    assert!(e.detail.contains("stopped by the zone"), "{e}");
    let latency = ended.duration_since(stopped_at);
    assert!(latency < Duration::from_secs(1), "the call ran {latency:?} past the stop");
    // A stopped sandbox starts nothing new.
    let again = sandbox.start(&module, &input_schema(), &[]);
    expect_class(again.map(|_| ()), FailureClass::Stopped);
}

#[test]
fn deep_recursion_overflows_the_stack() {
    let sandbox = sandbox();
    let extra = "(func $rec (param i32) (result i32) (i32.add (call $rec (i32.add (local.get 0) (i32.const 1))) (i32.const 1)))";
    let map = "(drop (call $rec (i32.const 0))) (call $ok (local.get 0) (local.get 1))";
    expect_class(run_guest(&sandbox, &component(&init_ok(), map, extra, b"", ""), 1), FailureClass::StackOverflow);
    assert_usable(&sandbox);
}

#[test]
fn memory_hogs_hit_the_limit() {
    let sandbox = sandbox();
    // One 1 GiB request.
    let big = "(drop (memory.grow (i32.const 16384))) (call $ok (local.get 0) (local.get 1))";
    expect_class(run_guest(&sandbox, &component(&init_ok(), big, "", b"", ""), 1), FailureClass::MemoryLimit);
    // memory.grow in a loop until it fails.
    let greedy = "(loop $l (br_if $l (i32.ne (memory.grow (i32.const 16)) (i32.const -1)))) (unreachable)";
    expect_class(run_guest(&sandbox, &component(&init_ok(), greedy, "", b"", ""), 1), FailureClass::MemoryLimit);
    assert_usable(&sandbox);
}

#[test]
fn a_panic_reporting_input_values_keeps_them_in_the_zone() {
    let sandbox = sandbox();
    let panic = "(call $log (i32.const 5) (i32.const 40000) (i32.const 18)) (unreachable)";
    let wasm = component(&init_ok(), panic, "", b"", "");
    let checked = sandbox.check(&wasm).expect("check");
    let module = sandbox.load(&checked.serialized).expect("load");
    let mut run = sandbox.start(&module, &input_schema(), &[]).expect("start");
    let err = expect_class(run.map(&input(2)), FailureClass::GuestPanic);
    assert!(run.diagnostics().panicked);
    assert!(run.diagnostics().messages.iter().any(|(level, m)| *level == 5 && m == SECRET), "kept for the inspector");
    // The instance is poisoned: it is never entered again.
    assert_eq!(run.map(&input(2)).expect_err("poisoned"), err);
    assert_usable(&sandbox);
}

#[test]
fn guest_errors_are_a_class_and_their_text_stays_inside() {
    let sandbox = sandbox();
    expect_class(run_guest(&sandbox, &component("(call $err)", ECHO, "", b"", ""), 1), FailureClass::GuestError);
    expect_class(run_guest(&sandbox, &component(&init_ok(), "(call $err)", "", b"", ""), 1), FailureClass::GuestError);
}

#[test]
fn log_floods_are_capped() {
    let sandbox = sandbox();
    // 10 MB of logs: 10,240 messages of 1 KiB (the data at 32768).
    let flood = "(local $n i32) (local.set $n (i32.const 10240))
        (loop $l (call $log (i32.const 2) (i32.const 32768) (i32.const 1024))
                 (local.set $n (i32.sub (local.get $n) (i32.const 1)))
                 (br_if $l (local.get $n)))
        (call $ok (local.get 0) (local.get 1))";
    let blob = vec![b'x'; 2048];
    let (out, diagnostics) = run_guest(&sandbox, &component(&init_ok(), flood, "", &blob, ""), 3).expect("runs");
    assert_eq!(out.num_rows(), 3);
    assert!(diagnostics.kept_bytes <= 64 << 10, "{}", diagnostics.kept_bytes);
    // Each message costs its 1,024 bytes and 16 of overhead: 63 fit in 64 KiB.
    assert_eq!(diagnostics.messages.len(), (64 << 10) / (1024 + zone_sandbox::MESSAGE_OVERHEAD_BYTES));
    assert_eq!(diagnostics.dropped_messages, 10240 - diagnostics.messages.len());
    assert_usable(&sandbox);
}

/// What a refusal kept for the zone (the guest-made part, never in `detail`).
fn zone(e: &zone_sandbox::SandboxError) -> &str {
    e.zone_detail.as_deref().unwrap_or_default()
}

#[test]
fn bad_outputs_are_refused() {
    let sandbox = sandbox();
    let blob_guest = |blob: &[u8]| {
        component(&init_ok(), &format!("(call $ok (i32.const 32768) (i32.const {}))", blob.len()), "", blob, "")
    };

    // Wrong row count: one row for three.
    let one_row = ipc_stream(&declared(), &[input(1).with_schema(Arc::new(declared())).expect("schema")]);
    let e = expect_class(run_guest(&sandbox, &blob_guest(&one_row), 3), FailureClass::BadOutput);
    assert!(zone(&e).contains("1 rows for 3 input rows"), "{e:?}");
    assert!(!e.detail.contains('1') && !e.detail.contains('3'), "guest-chosen count in the detail: {e}");

    // Wrong schema: same rows, other column names.
    let other =
        Arc::new(Schema::new(vec![Field::new("who", DataType::Utf8, true), Field::new("what", DataType::Int64, true)]));
    let renamed = RecordBatch::try_new(other.clone(), input(3).columns().to_vec()).expect("batch");
    let e = expect_class(run_guest(&sandbox, &blob_guest(&ipc_stream(&other, &[renamed])), 3), FailureClass::BadOutput);
    assert!(zone(&e).contains("where `district`"), "{e:?}");
    assert!(!e.detail.contains("who"), "guest-chosen name in the detail: {e}");

    // Trailing bytes after the stream.
    let mut trailing = ipc_stream(&declared(), &[input(3).with_schema(Arc::new(declared())).expect("schema")]);
    trailing.extend_from_slice(b"more");
    let e = expect_class(run_guest(&sandbox, &blob_guest(&trailing), 3), FailureClass::BadOutput);
    assert!(zone(&e).contains("trailing"), "{e:?}");

    // Garbage.
    expect_class(run_guest(&sandbox, &blob_guest(&[0x42; 300]), 3), FailureClass::BadOutput);

    // A pointer outside memory: the canonical ABI refuses it as a trap.
    let wild = component(&init_ok(), "(call $ok (i32.const 0x7ffffff0) (i32.const 64))", "", b"", "");
    let e = run_guest(&sandbox, &wild, 3).expect_err("refused");
    assert!(matches!(e.class, FailureClass::GuestPanic | FailureClass::BadOutput), "{e}");
    assert_usable(&sandbox);
}

#[test]
fn declared_outputs_are_checked() {
    let sandbox = sandbox();
    // init returns the plain input schema: no roles.
    let plain = ipc_stream(&input_schema(), &[]);
    let init = format!("(call $ok (i32.const 32768) (i32.const {}))", plain.len());
    let e =
        expect_class(run_guest(&sandbox, &component(&init, ECHO, "", &plain, ""), 1), FailureClass::ContractMismatch);
    assert!(zone(&e).contains("zone.role"), "{e:?}");
    // A schema nested 1,000 levels deep.
    let mut field = Field::new("leaf", DataType::Int64, true);
    for i in 0..1000 {
        field = Field::new(format!("n{i}"), DataType::Struct(vec![field].into()), true);
    }
    let deep = Schema::new(vec![field]);
    let mut deep_bytes = Vec::new();
    if let Ok(mut w) = StreamWriter::try_new(&mut deep_bytes, &deep) {
        let _ = w.finish();
    }
    let init = format!("(call $ok (i32.const 32768) (i32.const {}))", deep_bytes.len());
    let e = run_guest(&sandbox, &component(&init, ECHO, "", &deep_bytes, ""), 1).expect_err("refused");
    assert!(matches!(e.class, FailureClass::BadOutput | FailureClass::ContractMismatch), "{e}");
    assert_usable(&sandbox);
}

#[test]
fn imports_outside_the_world_are_refused_before_running() {
    let sandbox = sandbox();
    for import in [
        r#"(import "wasi:filesystem/preopens@0.2.0" (instance (export "get-directories" (func (result (list u32))))))"#,
        r#"(import "wasi:sockets/tcp-create-socket@0.2.0" (instance (export "create" (func (result u32)))))"#,
        r#"(import "wasi:clocks/wall-clock@0.2.0" (instance (export "now" (func (result u64)))))"#,
        r#"(import "wasi:random/random@0.2.0" (instance (export "get-random-u64" (func (result u64)))))"#,
        // The stubbed interfaces, but from another WASI minor version than the stubs speak.
        r#"(import "wasi:cli/environment@0.3.0" (instance (export "get-arguments" (func (result (list string))))))"#,
    ] {
        let e = expect_class(sandbox.check(&component(&init_ok(), ECHO, "", b"", import)), FailureClass::ImportDenied);
        assert!(e.detail.contains("wasi:"), "{e}");
    }
}

#[test]
fn contract_mismatches_and_compile_limits() {
    let sandbox = sandbox();
    // Another contract version.
    let wat = r#"(component
        (import "zone:job/diagnostics@1.0.0" (instance (export "log" (func (param "level" u8) (param "msg" string))))))"#;
    let e = expect_class(sandbox.check(&wat::parse_str(wat).expect("wat")), FailureClass::ContractMismatch);
    assert!(e.detail.contains("zone:job/diagnostics@1.0.0"), "{e}");
    // No exports at all.
    expect_class(sandbox.check(&wat::parse_str("(component)").expect("wat")), FailureClass::ContractMismatch);
    // Not a component.
    expect_class(sandbox.check(b"\0asm\x01\0\0\0"), FailureClass::ContractMismatch);
    expect_class(sandbox.check(b"not wasm at all"), FailureClass::ContractMismatch);
    // Too large to compile.
    let small = Sandbox::new(SandboxLimits { max_module_bytes: 1000, ..SandboxLimits::default() }).expect("sandbox");
    expect_class(small.check(&echo_guest()), FailureClass::CompileLimit);
    assert_usable(&sandbox);
}

#[test]
fn declared_inputs_must_exist_and_only_they_cross() {
    let sandbox = sandbox();
    let with_inputs = |inputs: &str| {
        let schema = declared();
        let metadata = std::collections::HashMap::from([("zone.inputs".to_owned(), inputs.to_owned())]);
        Schema::new_with_metadata(schema.fields().clone(), metadata)
    };
    // A job reading a column its input does not have is refused at init.
    let bad =
        zone_sandbox::testing::component(&with_inputs("district,salary"), INIT_OK, ECHO, "", b"", "").expect("wat");
    let module = sandbox.load(&sandbox.check(&bad).expect("check").serialized).expect("load");
    let e = expect_class(sandbox.start(&module, &input_schema(), &[]), FailureClass::ContractMismatch);
    assert!(zone(&e).contains("`salary`"), "{e:?}");
    assert!(!e.detail.contains("salary"), "guest-chosen name in the detail: {e}");
    // The echo guest declares it reads (capital, district), so it receives exactly those, in that order: echoing
    // them back does not fit the declared (district, capital) and is refused — proof the projection was applied.
    let swapped =
        zone_sandbox::testing::component(&with_inputs("capital,district"), INIT_OK, ECHO, "", b"", "").expect("wat");
    let module = sandbox.load(&sandbox.check(&swapped).expect("check").serialized).expect("load");
    let mut run = sandbox.start(&module, &input_schema(), &[]).expect("init");
    expect_class(run.map(&input(10)), FailureClass::BadOutput);
    let same =
        zone_sandbox::testing::component(&with_inputs("district,capital"), INIT_OK, ECHO, "", b"", "").expect("wat");
    let module = sandbox.load(&sandbox.check(&same).expect("check").serialized).expect("load");
    let mut run = sandbox.start(&module, &input_schema(), &[]).expect("init");
    assert_eq!(run.map(&input(10)).expect("map").num_rows(), 10);
}

#[test]
fn fuel_mode_is_deterministic() {
    let limits = SandboxLimits { fuel_per_call: Some(1_000_000), ..SandboxLimits::default() };
    let sandbox = Sandbox::new(limits).expect("sandbox");
    let spin = "(loop $l (br $l)) (unreachable)";
    expect_class(run_guest(&sandbox, &component(&init_ok(), spin, "", b"", ""), 1), FailureClass::Timeout);
    assert_usable(&sandbox);
}
