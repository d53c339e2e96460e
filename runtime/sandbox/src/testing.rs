//! Test support (feature `testing`): WebAssembly components of the row-transform world written as WAT, so that
//! tests of the host, the CLI and the engine can run real guests — and hostile ones — without a guest toolchain.

use arrow_array::RecordBatch;
use arrow_ipc::writer::StreamWriter;
use arrow_schema::Schema;

/// A value the hostile guests hold in their memory (at 40000) and try to leak: an ID number.
pub const SECRET: &str = "110105194912310020";

/// An IPC stream of `schema` and `batches`.
pub fn ipc_stream(schema: &Schema, batches: &[RecordBatch]) -> Vec<u8> {
    let mut out = Vec::new();
    if let Ok(mut w) = StreamWriter::try_new(&mut out, schema) {
        for b in batches {
            let _ = w.write(b);
        }
        let _ = w.finish();
    }
    out
}

fn wat_bytes(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("\\{b:02x}")).collect()
}

/// A component of the row-transform world whose `init` returns `declared` (kept at 1024). `init` and `map` are
/// core function bodies (`map` gets the input list as locals 0 and 1); `$ok (ptr len)` and `$err` build the
/// result; `$log (level ptr len)` is the diagnostics import; `blob` is at 32768 and [`SECRET`] at 40000; `extra`
/// adds core functions and `imports` component imports.
pub fn component(
    declared: &Schema,
    init: &str,
    map: &str,
    extra: &str,
    blob: &[u8],
    imports: &str,
) -> Result<Vec<u8>, String> {
    let schema = ipc_stream(declared, &[]);
    let init = init.replace("SCHEMA_LEN", &schema.len().to_string());
    let text = format!(
        r#"
(component
  (import "zone:job/diagnostics@0.1.0" (instance $diag
    (export "log" (func (param "level" u8) (param "msg" string)))))
  {imports}
  (core module $libc
    (memory (export "mem") 8)
    (global $heap (mut i32) (i32.const 524288))
    (func (export "realloc") (param i32 i32 i32 i32) (result i32)
      (local $p i32)
      (global.set $heap (i32.and (i32.add (global.get $heap) (i32.const 7)) (i32.const -8)))
      (local.set $p (global.get $heap))
      (global.set $heap (i32.add (global.get $heap) (local.get 3)))
      (block $done
        (loop $grow
          (br_if $done (i32.le_u (global.get $heap) (i32.mul (memory.size) (i32.const 65536))))
          (drop (memory.grow (i32.const 1)))
          (br $grow)))
      (local.get $p)))
  (core instance $libc (instantiate $libc))
  (alias export $diag "log" (func $log))
  (core func $log_lowered (canon lower (func $log) (memory (core memory $libc "mem"))))
  (core module $m
    (import "libc" "mem" (memory 1))
    (import "diag" "log" (func $log (param i32 i32 i32)))
    (data (i32.const 1024) "{schema}")
    (data (i32.const 32768) "{blob}")
    (data (i32.const 40000) "{SECRET}")
    (func $ok (param $ptr i32) (param $len i32) (result i32)
      (i32.store8 (i32.const 16) (i32.const 0))
      (i32.store (i32.const 20) (local.get $ptr))
      (i32.store (i32.const 24) (local.get $len))
      (i32.const 16))
    (func $err (result i32)
      (i32.store8 (i32.const 16) (i32.const 1))
      (i32.store (i32.const 20) (i32.const 40000))
      (i32.store (i32.const 24) (i32.const 18))
      (i32.const 16))
    {extra}
    (func (export "init") (param i32 i32 i32 i32) (result i32)
      {init})
    (func (export "map-batch") (param i32 i32) (result i32)
      {map}))
  (core instance $i (instantiate $m
    (with "libc" (instance $libc))
    (with "diag" (instance (export "log" (func $log_lowered))))))
  (func (export "init")
    (param "input-schema" (list u8)) (param "params" (list (tuple string string)))
    (result (result (list u8) (error string)))
    (canon lift (core func $i "init") (memory (core memory $libc "mem")) (realloc (core func $libc "realloc"))))
  (func (export "map-batch") (param "batch" (list u8)) (result (result (list u8) (error string)))
    (canon lift (core func $i "map-batch") (memory (core memory $libc "mem")) (realloc (core func $libc "realloc")))))
"#,
        schema = wat_bytes(&schema),
        blob = wat_bytes(blob),
    );
    wat::parse_str(&text).map_err(|e| e.to_string())
}

/// `init` that returns the declared schema.
pub const INIT_OK: &str = "(call $ok (i32.const 1024) (i32.const SCHEMA_LEN))";
/// `map-batch` that returns its input unchanged.
pub const ECHO: &str = "(call $ok (local.get 0) (local.get 1))";
