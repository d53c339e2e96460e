//! `datasets-fixtures`: writes the synthetic Suzhou datasets and their policies into a folder.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Parser;
use datasets_fixtures::{FixtureSpec, generate};

/// Generate realistic synthetic Suzhou public datasets (Parquet) with their policies (TOML).
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Enterprises in enterprise_registry and visits in clinic_visits.
    #[arg(long, default_value_t = 20_000)]
    rows: usize,
    /// Seed: the same seed and sizes give the same data.
    #[arg(long, default_value_t = 2026)]
    seed: u64,
    /// Distinct patients behind the clinic visits (default: one per six visits).
    #[arg(long)]
    patients: Option<usize>,
    /// Output folder (created if missing).
    #[arg(long)]
    out: PathBuf,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.rows == 0 {
        anyhow::bail!("--rows must be at least 1");
    }
    if args.patients == Some(0) {
        anyhow::bail!("--patients must be at least 1");
    }
    let spec = FixtureSpec { enterprises: args.rows, visits: args.rows, patients: args.patients, seed: args.seed };
    let started = std::time::Instant::now();
    let mut written = 0usize;
    let files = generate(&args.out, &spec, &mut |dataset, rows| {
        written += rows;
        eprint!("\r{dataset}: {written} rows generated");
    })
    .with_context(|| format!("generating into {}", args.out.display()))?;
    eprintln!();
    for f in &files {
        let bytes = std::fs::metadata(&f.path).map(|m| m.len()).unwrap_or(0);
        if f.rows > 0 {
            println!("{:<22} {:>10} rows {:>12} bytes  {}", f.dataset, f.rows, bytes, f.path.display());
        } else {
            println!("{:<22} {:>10}      {:>12} bytes  {}", f.dataset, "policy", bytes, f.path.display());
        }
    }
    eprintln!("done in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}
