//! Golden tests of policy parsing: every `golden/<case>.toml` compiles against `golden/schema.txt` (or its
//! own `<case>.schema`) to the text in `<case>.out`, or fails with exactly the errors in `<case>.err`.
//! `BLESS=1 cargo test -p policies --test golden` rewrites the expectations; review the diff before committing.

use std::fs;
use std::path::{Path, PathBuf};

use arrow_schema::{DataType, Field, Schema, TimeUnit};
use policies::CompiledPolicy;

fn parse_type(text: &str) -> DataType {
    match text {
        "Utf8" => DataType::Utf8,
        "LargeUtf8" => DataType::LargeUtf8,
        "Int32" => DataType::Int32,
        "Int64" => DataType::Int64,
        "Float64" => DataType::Float64,
        "Date32" => DataType::Date32,
        "Boolean" => DataType::Boolean,
        t if t.starts_with("Timestamp(") && t.ends_with(')') => {
            let inner = &t["Timestamp(".len()..t.len() - 1];
            let (unit, tz) = match inner.split_once(", ") {
                Some((u, tz)) => (u, Some(tz.into())),
                None => (inner, None),
            };
            let unit = match unit {
                "Second" => TimeUnit::Second,
                "Millisecond" => TimeUnit::Millisecond,
                "Microsecond" => TimeUnit::Microsecond,
                "Nanosecond" => TimeUnit::Nanosecond,
                other => panic!("unknown time unit {other}"),
            };
            DataType::Timestamp(unit, tz)
        }
        other => panic!("unknown type {other} in a golden schema"),
    }
}

fn schema(path: &Path) -> Schema {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let fields: Vec<Field> = text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|line| {
            let mut parts = line.splitn(3, ' ');
            let name = parts.next().unwrap_or_default();
            let rest = line[name.len()..].trim();
            let (ty, nullable) = match rest.strip_suffix(" nullable") {
                Some(ty) => (ty, true),
                None => (rest, false),
            };
            Field::new(name, parse_type(ty), nullable)
        })
        .collect();
    Schema::new(fields)
}

#[test]
fn golden_policies() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let bless = std::env::var_os("BLESS").is_some();
    let default_schema = schema(&dir.join("schema.txt"));
    let mut cases: Vec<PathBuf> = fs::read_dir(&dir)
        .expect("golden dir")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    cases.sort();
    assert!(cases.len() >= 20, "expected the golden cases, found {}", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        let stem = case.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
        let own_schema = dir.join(format!("{stem}.schema"));
        let schema = if own_schema.exists() { schema(&own_schema) } else { default_schema.clone() };
        let text = fs::read_to_string(case).expect("case text");
        let shown = format!("{stem}.toml");
        let (actual, expected_path, other_path) = match CompiledPolicy::compile(&shown, &text, &schema) {
            Ok(policy) => (policy.to_string(), dir.join(format!("{stem}.out")), dir.join(format!("{stem}.err"))),
            Err(errors) => (format!("{errors}\n"), dir.join(format!("{stem}.err")), dir.join(format!("{stem}.out"))),
        };
        if bless {
            fs::write(&expected_path, &actual).expect("write expectation");
            let _ = fs::remove_file(&other_path);
            continue;
        }
        match fs::read_to_string(&expected_path) {
            Ok(expected) if expected == actual => {}
            Ok(expected) => failures.push(format!("{stem}: expected\n{expected}\ngot\n{actual}")),
            Err(_) => failures.push(format!(
                "{stem}: no {} (the case {}); run with BLESS=1 and review",
                expected_path.file_name().and_then(|n| n.to_str()).unwrap_or_default(),
                if other_path.exists() { "changed outcome" } else { "is new" }
            )),
        }
    }
    assert!(failures.is_empty(), "{} golden case(s) differ:\n\n{}", failures.len(), failures.join("\n\n"));
}
