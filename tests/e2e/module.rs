//! `module check`: an operator checks a component against the contract before submitting it.

use arrow_schema::{DataType, Schema};
use zone_sandbox::Aggregate;
use zone_sandbox::output::{key, measure};
use zone_sandbox::testing::{ECHO, INIT_OK, component};

use crate::common::{TestZone, fixture, policy, s};

fn declared() -> Schema {
    Schema::new(vec![
        key("district", DataType::Utf8),
        key("industry", DataType::Utf8),
        measure("reg_capital", DataType::Int64, Aggregate::Sum, Some((0.0, 1e9))),
        measure("firms", DataType::Int64, Aggregate::Count, None),
    ])
}

#[test]
fn a_conforming_module_is_accepted_and_shows_its_output() {
    let zone = TestZone::new();
    zone.publish_fixture("enterprise_registry");
    let wasm = zone.path("job.wasm");
    std::fs::write(&wasm, component(&declared(), INIT_OK, ECHO, "", b"", "").expect("wat")).expect("write");

    let human = zone.run(&["module", "check", s(&wasm)]).ok();
    assert!(human.contains("accepted") && human.contains("zone:job/diagnostics@0.1.0"), "{human}");

    let v = zone
        .run(&["--json", "module", "check", s(&wasm), "--dataset", "enterprise_registry", "--param", "year=2024"])
        .json();
    assert_eq!(v["accepted"], true);
    assert_eq!(v["sha256"].as_str().map(str::len), Some(64));
    let columns = v["declared_output"].as_array().expect("declared output");
    assert_eq!(columns.len(), 4);
    assert_eq!(columns[2]["aggregate"], "sum");
    assert_eq!(columns[2]["bounds"][1], 1e9);
    assert_eq!(columns[3]["aggregate"], "count");
}

#[test]
fn a_module_importing_the_filesystem_is_refused() {
    let zone = TestZone::new();
    let wasm = zone.path("fs.wasm");
    let import =
        r#"(import "wasi:filesystem/preopens@0.2.0" (instance (export "get-directories" (func (result (list u32))))))"#;
    std::fs::write(&wasm, component(&declared(), INIT_OK, ECHO, "", b"", import).expect("wat")).expect("write");
    let run = zone.run(&["--json", "module", "check", s(&wasm)]);
    let v = run.json();
    assert!(!run.status.success());
    assert_eq!(v["error"]["class"], "ImportDenied");
    assert!(run.stderr.contains("wasi:filesystem/preopens@0.2.0"), "{}", run.stderr);
    let err = zone.run(&["module", "check", s(&zone.path("missing.wasm"))]).fails();
    assert!(err.contains("missing.wasm"), "{err}");
}

#[test]
fn a_panicking_init_is_refused_without_its_text() {
    let zone = TestZone::new();
    zone.run(&["dataset", "publish", "--policy", s(&policy("tax_credit")), s(&fixture("tax_credit"))]).ok();
    let wasm = zone.path("panic.wasm");
    let init = "(call $log (i32.const 5) (i32.const 40000) (i32.const 18)) (unreachable)";
    std::fs::write(&wasm, component(&declared(), init, ECHO, "", b"", "").expect("wat")).expect("write");
    let run = zone.run(&["--json", "module", "check", s(&wasm), "--dataset", "tax_credit"]);
    assert!(!run.status.success());
    assert_eq!(run.json()["error"]["class"], "GuestPanic");
    for text in [&run.stdout, &run.stderr] {
        assert!(!text.contains(zone_sandbox::testing::SECRET), "guest text reached the operator: {text}");
    }
}

#[test]
fn a_real_rust_guest_is_checked_under_the_zones_limits() {
    let zone = TestZone::new();
    zone.publish_fixture("enterprise_registry");
    let wasm = example_guests::FINANCE_CAPITAL.path;
    let v = zone.run(&["--json", "module", "check", wasm, "--dataset", "enterprise_registry"]).json();
    assert_eq!(v["accepted"], true);
    let names: Vec<&str> =
        v["declared_output"].as_array().expect("output").iter().filter_map(|c| c["name"].as_str()).collect();
    assert_eq!(names, ["district", "industry", "size_band", "firms", "capital_wan", "capital_per_employee"]);
    assert_eq!(v["reads"], serde_json::json!(["district", "industry", "reg_capital", "employees"]));
    let imports = v["imports"].as_array().expect("imports");
    assert!(imports.iter().any(|i| i == "wasi:cli/environment@0.2.6"), "{imports:?}");

    // The zone's own limits apply: a module cap below the guest's size refuses it.
    let config = zone.path("zone/zone.toml");
    let mut text = std::fs::read_to_string(&config).expect("zone.toml");
    text.push_str("\n[sandbox]\nmax_module_mib = 1\n");
    std::fs::write(&config, &text).expect("write");
    let run = zone.run(&["--json", "module", "check", wasm]);
    assert!(!run.status.success());
    assert_eq!(run.json()["error"]["class"], "CompileLimit");

    // A value out of range is an error that points into zone.toml.
    let lines = text.lines().count();
    std::fs::write(&config, text.replace("max_module_mib = 1", "memory_mib = 0")).expect("write");
    let err = zone.run(&["module", "check", wasm]).fails();
    assert!(err.contains(&format!("zone.toml:{lines}:14: [sandbox] memory_mib = 0: must be between 16")), "{err}");
}
