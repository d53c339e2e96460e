//! The example guests, built from `examples/` with the SDK, run in the real sandbox over the committed fixtures as
//! the policy lets them see them; each output is compared with the same derivation computed here from the raw rows.
//! The hostile Rust guests are refused with their class, and the sandbox keeps working after each.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use arrow_array::cast::AsArray;
use arrow_array::types::{Date32Type, Float64Type, Int32Type, Int64Type};
use arrow_array::{Array, RecordBatch};
use example_guests::{
    CREDIT_GRADES, FINANCE_CAPITAL, Guest, HEALTH_COSTS, HOSTILE_COMPRESSED, HOSTILE_FILES, HOSTILE_PANIC,
    HOSTILE_SNOOP,
};
use policies::{CompiledPolicy, Desensitizer, TokenSecret};
use zone_sandbox::{FailureClass, GuestModule, GuestRun, Sandbox, SandboxError, SandboxLimits};

/// The raw rows of a committed fixture, as one batch.
fn raw(dataset: &str) -> RecordBatch {
    let file = std::fs::File::open(datasets_fixtures::committed_parquet(dataset)).expect("fixture");
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .expect("parquet")
        .build()
        .expect("reader");
    let batches: Vec<RecordBatch> = reader.map(|b| b.expect("batch")).collect();
    arrow_select::concat::concat_batches(&batches[0].schema(), &batches).expect("concat")
}

/// What the guest sees of a dataset: the policy applied to the raw rows.
fn guest_view(dataset: &str, raw: &RecordBatch) -> RecordBatch {
    let text = datasets_fixtures::policy_text(dataset).expect("policy");
    let policy = CompiledPolicy::compile(dataset, text, &raw.schema()).expect("policy compiles");
    Desensitizer::new(&policy, &TokenSecret::from_bytes([7; 32])).apply(raw).expect("desensitize").guest
}

/// Compiles each guest once per test process (compiling a 2 MB component is the slow part) and loads it.
fn load(sandbox: &Sandbox, guest: Guest) -> GuestModule {
    static ARTIFACTS: Mutex<BTreeMap<&str, Arc<Vec<u8>>>> = Mutex::new(BTreeMap::new());
    let cached = ARTIFACTS.lock().expect("lock").get(guest.name).cloned();
    let artifact = match cached {
        Some(a) => a,
        None => {
            let checked = sandbox.check(&guest.bytes().expect("guest built")).expect("guest accepted");
            let a = Arc::new(checked.serialized);
            ARTIFACTS.lock().expect("lock").insert(guest.name, a.clone());
            a
        }
    };
    sandbox.load(&artifact).expect("artifact loads")
}

/// Runs a guest over a view in slices of `slice` rows; returns the concatenated output.
fn run(sandbox: &Sandbox, guest: Guest, view: &RecordBatch, params: &[(&str, &str)], slice: usize) -> RecordBatch {
    let module = load(sandbox, guest);
    let params: Vec<(String, String)> = params.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let mut run = sandbox.start(&module, &view.schema(), &params).expect("init");
    let mut out = Vec::new();
    let mut offset = 0;
    while offset < view.num_rows() {
        let len = slice.min(view.num_rows() - offset);
        out.push(run.map(&view.slice(offset, len)).expect("map"));
        offset += len;
    }
    arrow_select::concat::concat_batches(&out[0].schema(), &out).expect("concat")
}

fn sandbox() -> Sandbox {
    Sandbox::new(SandboxLimits::default()).expect("sandbox")
}

fn strings(batch: &RecordBatch, name: &str) -> Vec<Option<String>> {
    let column = batch.column_by_name(name).unwrap_or_else(|| panic!("no column {name}"));
    column.as_string::<i32>().iter().map(|v| v.map(str::to_owned)).collect()
}

fn floats(batch: &RecordBatch, name: &str) -> Vec<Option<f64>> {
    batch.column_by_name(name).expect("column").as_primitive::<Float64Type>().iter().collect()
}

fn assert_floats(got: &[Option<f64>], want: &[Option<f64>], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: row count");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        match (g, w) {
            (Some(g), Some(w)) => assert!((g - w).abs() <= 1e-9 * w.abs().max(1.0), "{what} row {i}: {g} vs {w}"),
            _ => assert_eq!(g, w, "{what} row {i}"),
        }
    }
}

#[test]
fn finance_capital_by_district_industry_and_size() {
    let raw = raw("enterprise_registry");
    let view = guest_view("enterprise_registry", &raw);
    let sandbox = sandbox();
    let out = run(&sandbox, FINANCE_CAPITAL, &view, &[], 7_000);
    assert_eq!(out.num_rows(), raw.num_rows());
    let schema = out.schema();
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(names, ["district", "industry", "size_band", "firms", "capital_wan", "capital_per_employee"]);

    assert_eq!(strings(&out, "district"), strings(&raw, "district"));
    assert_eq!(strings(&out, "industry"), strings(&raw, "industry"));
    let capital = raw.column_by_name("reg_capital").expect("capital").as_primitive::<Int64Type>();
    let employees = raw.column_by_name("employees").expect("employees").as_primitive::<Int32Type>();
    let mut bands = Vec::new();
    let mut wan = Vec::new();
    let mut per_employee = Vec::new();
    for i in 0..raw.num_rows() {
        let cap = capital.value(i).clamp(0, 1_000_000_000) as f64;
        let staff = employees.is_valid(i).then(|| employees.value(i).max(0));
        bands.push(staff.map(|n| {
            (if n < 10 {
                "micro"
            } else if n < 100 {
                "small"
            } else if n < 1000 {
                "medium"
            } else {
                "large"
            })
            .to_owned()
        }));
        wan.push(Some((cap / 10_000.0).clamp(0.0, 100_000.0)));
        per_employee.push(staff.filter(|n| *n > 0).map(|n| (cap / n as f64).clamp(0.0, 1e9)));
    }
    assert_eq!(strings(&out, "size_band"), bands);
    assert_floats(&floats(&out, "capital_wan"), &wan, "capital_wan");
    assert_floats(&floats(&out, "capital_per_employee"), &per_employee, "capital_per_employee");
    let firms = out.column_by_name("firms").expect("firms").as_primitive::<Int64Type>();
    assert_eq!(firms.iter().flatten().sum::<i64>(), raw.num_rows() as i64);
}

fn year_of_date32(days: i32) -> i32 {
    use chrono::Datelike;
    arrow_array::temporal_conversions::as_date::<Date32Type>(i64::from(days)).expect("date").year()
}

#[test]
fn health_costs_by_district_and_age_band() {
    let raw = raw("clinic_visits");
    let view = guest_view("clinic_visits", &raw);
    let out = run(&sandbox(), HEALTH_COSTS, &view, &[], 65_536);
    assert_eq!(out.num_rows(), raw.num_rows());
    assert_eq!(strings(&out, "district"), strings(&raw, "district"));
    let birth = raw.column_by_name("birth_date").expect("birth").as_primitive::<Date32Type>();
    let visit = raw.column_by_name("visit_date").expect("visit").as_primitive::<Date32Type>();
    let want: Vec<Option<String>> = (0..raw.num_rows())
        .map(|i| {
            let age = year_of_date32(visit.value(i)) - year_of_date32(birth.value(i));
            let band = match age {
                a if !(0..=130).contains(&a) => return None,
                0..=17 => "0-17",
                18..=39 => "18-39",
                40..=59 => "40-59",
                60..=74 => "60-74",
                _ => "75+",
            };
            Some(band.to_owned())
        })
        .collect();
    assert_eq!(strings(&out, "age_band"), want);
    let distinct: std::collections::BTreeSet<_> = want.iter().flatten().collect();
    assert!(distinct.len() >= 4, "the fixture spans the age bands: {distinct:?}");
    let cost: Vec<Option<f64>> = floats(&raw, "cost").into_iter().map(|c| c.map(|c| c.clamp(0.0, 200_000.0))).collect();
    assert_floats(&floats(&out, "cost"), &cost, "cost");
    assert_floats(&floats(&out, "mean_cost"), &cost, "mean_cost");
}

#[test]
fn credit_grades_by_year_and_the_key_parameter() {
    let raw = raw("tax_credit");
    let view = guest_view("tax_credit", &raw);
    let sandbox = sandbox();
    let out = run(&sandbox, CREDIT_GRADES, &view, &[("by", "year")], 10_000);
    assert_eq!(out.num_rows(), raw.num_rows());
    let years: Vec<Option<i32>> =
        out.column_by_name("year").expect("year").as_primitive::<Int32Type>().iter().collect();
    let raw_years: Vec<Option<i32>> =
        raw.column_by_name("year").expect("year").as_primitive::<Int32Type>().iter().collect();
    assert_eq!(years, raw_years);
    let grades: Vec<Option<String>> = strings(&raw, "credit_grade")
        .into_iter()
        .map(|g| g.filter(|g| ["A", "B", "M", "C", "D"].contains(&g.as_str())))
        .collect();
    assert_eq!(strings(&out, "credit_grade"), grades);
    let tax: Vec<Option<f64>> =
        floats(&raw, "tax_paid").into_iter().map(|t| t.map(|t| (t / 10_000.0).clamp(0.0, 50_000.0))).collect();
    assert_floats(&floats(&out, "tax_paid_wan"), &tax, "tax_paid_wan");

    // `by = industry` needs the registry joined in; on tax_credit alone init refuses, and says why only inside.
    let module = load(&sandbox, CREDIT_GRADES);
    let e =
        sandbox.start(&module, &view.schema(), &[("by".into(), "industry".into())]).expect_err("no industry column");
    assert_eq!(e.class, FailureClass::GuestError);
    assert!(!e.to_string().contains("no such column"), "guest text stays inside: {e}");
}

fn expect_class<T: std::fmt::Debug>(result: Result<T, SandboxError>, class: FailureClass) -> SandboxError {
    let e = result.expect_err("must be refused");
    assert_eq!(e.class, class, "{e}");
    e
}

/// The sandbox still runs a good guest.
fn assert_usable(sandbox: &Sandbox, view: &RecordBatch) {
    let out = run(sandbox, FINANCE_CAPITAL, view, &[], 65_536);
    assert_eq!(out.num_rows(), view.num_rows());
}

fn start(sandbox: &Sandbox, guest: Guest, view: &RecordBatch) -> GuestRun {
    sandbox.start(&load(sandbox, guest), &view.schema(), &[]).expect("init")
}

#[test]
fn hostile_rust_guests_are_refused_with_their_class() {
    let raw = raw("enterprise_registry");
    let view = guest_view("enterprise_registry", &raw);
    let small = view.slice(0, 100);
    let sandbox = sandbox();

    // A panic whose message carries input values: the class for the operator, the text for the inspector.
    let mut run = start(&sandbox, HOSTILE_PANIC, &small);
    let e = expect_class(run.map(&small), FailureClass::GuestPanic);
    assert!(!e.to_string().contains("110101199003077777"), "{e}");
    let kept = &run.diagnostics().messages;
    assert!(run.diagnostics().panicked);
    assert!(kept.iter().any(|(level, text)| *level == 5 && text.contains("110101199003077777")), "{kept:?}");
    expect_class(run.map(&small), FailureClass::GuestPanic);
    assert_usable(&sandbox, &small);

    // LZ4-compressed output IPC.
    let mut run = start(&sandbox, HOSTILE_COMPRESSED, &small);
    let e = expect_class(run.map(&small), FailureClass::BadOutput);
    assert!(e.zone_detail.as_deref().unwrap_or_default().contains("compress"), "{e:?}");
    assert_usable(&sandbox, &small);

    // Reading a file needs wasi:filesystem, which is never granted: refused before it runs.
    let e = expect_class(sandbox.check(&HOSTILE_FILES.bytes().expect("built")), FailureClass::ImportDenied);
    assert!(e.detail.contains("wasi:filesystem"), "{e}");
    assert_usable(&sandbox, &small);
}

#[test]
fn the_wasi_stubs_grant_nothing() {
    let raw = raw("enterprise_registry");
    let view = guest_view("enterprise_registry", &raw).slice(0, 10);
    let sandbox = sandbox();
    let mut run = start(&sandbox, HOSTILE_SNOOP, &view);
    let out = run.map(&view).expect("map");
    assert_eq!(strings(&out, "found")[0].as_deref(), Some("env=0 args=0 cwd=/ stdin=closed"));
    let kept = &run.diagnostics().messages;
    assert!(kept.contains(&(2, "snoop: printing to stdout".to_owned())), "{kept:?}");
    assert!(kept.contains(&(4, "snoop: printing to stderr".to_owned())), "{kept:?}");
}

#[test]
fn every_example_guest_is_a_component_of_the_contract() {
    let sandbox = sandbox();
    for guest in example_guests::ALL {
        let bytes = guest.bytes().expect("built");
        assert!(bytes.starts_with(b"\0asm"), "{}", guest.name);
        let checked = sandbox.check(&bytes);
        if guest.name == "hostile-files" {
            assert_eq!(checked.expect_err("refused").class, FailureClass::ImportDenied);
        } else {
            let checked = checked.unwrap_or_else(|e| panic!("{}: {e}", guest.name));
            assert!(checked.imports.iter().all(|i| !i.starts_with("wasi:filesystem")));
        }
    }
}
