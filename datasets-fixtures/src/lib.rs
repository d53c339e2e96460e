//! # datasets-fixtures — realistic synthetic Suzhou public data
//!
//! A deterministic generator of three datasets that look like what Suzhou agencies hold, each with the policy
//! its agency would publish it under:
//!
//! | dataset | provider | one row per | subject |
//! |---|---|---|---|
//! | `enterprise_registry` | market-regulation | enterprise | USCC (GB 32100, valid check character) |
//! | `tax_credit` | taxation | enterprise × year | USCC, joinable with the registry |
//! | `clinic_visits` | health-commission | hospital visit | patient's resident ID (GB 11643, valid) |
//!
//! Distributions are skewed (industries, districts, hospitals, diagnoses, heavy-tailed capital and costs),
//! some values are null, and rare categories make groups that fall below a typical k, so that release
//! thresholds really bite. The same seed and sizes give the same rows on every machine.
//!
//! ```no_run
//! use datasets_fixtures::{FixtureSpec, generate};
//! let files = generate(std::path::Path::new("out"), &FixtureSpec::with_rows(10_000, 7), &mut |_, _| {})
//!     .expect("generated");
//! assert_eq!(files.len(), 3 + 3); // three Parquet files and three policies
//! ```
//!
//! Where to extend: a new dataset is a schema and a writer in `generate.rs`, its vocabulary in `vocab.rs`,
//! and its policy in `policies/`.

mod generate;
pub mod mock;
pub mod vocab;

use std::path::{Path, PathBuf};

pub use generate::{
    BATCH_ROWS, FixtureError, FixtureSpec, GeneratedFile, clinic_schema, enterprise_schema, tax_schema, write_clinic,
    write_enterprises,
};

/// The datasets this crate generates, in publishing order.
pub const DATASETS: [&str; 3] = ["enterprise_registry", "tax_credit", "clinic_visits"];

/// The policy each dataset is published under, as its agency wrote it.
pub fn policy_text(dataset: &str) -> Option<&'static str> {
    match dataset {
        "enterprise_registry" => Some(include_str!("../policies/enterprise_registry.toml")),
        "tax_credit" => Some(include_str!("../policies/tax_credit.toml")),
        "clinic_visits" => Some(include_str!("../policies/clinic_visits.toml")),
        _ => None,
    }
}

/// The committed small fixtures (for tests): `data/<dataset>.parquet` in this crate.
pub fn committed_parquet(dataset: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data").join(format!("{dataset}.parquet"))
}

/// The committed policy file of a dataset: `policies/<dataset>.toml` in this crate.
pub fn committed_policy(dataset: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("policies").join(format!("{dataset}.toml"))
}

/// Rows and seed of the committed fixtures; `cargo run -p datasets-fixtures -- --rows 20000 --seed 2026
/// --out datasets-fixtures/data` regenerates them.
pub const COMMITTED_ROWS: usize = 20_000;
pub const COMMITTED_SEED: u64 = 2026;

/// Generates all three datasets into `dir` (created if missing), with their policy files beside them.
/// `progress` is told the dataset and the number of rows of every batch written.
pub fn generate(
    dir: &Path,
    spec: &FixtureSpec,
    progress: &mut dyn FnMut(&str, usize),
) -> Result<Vec<GeneratedFile>, FixtureError> {
    std::fs::create_dir_all(dir).map_err(|source| FixtureError::Io { path: dir.to_path_buf(), source })?;
    let mut files = write_enterprises(dir, spec, progress)?;
    files.push(write_clinic(dir, spec, progress)?);
    for dataset in DATASETS {
        let path = dir.join(format!("{dataset}.toml"));
        let text = policy_text(dataset).unwrap_or_default();
        std::fs::write(&path, text).map_err(|source| FixtureError::Io { path: path.clone(), source })?;
        files.push(GeneratedFile { dataset, path, rows: 0 });
    }
    Ok(files)
}
