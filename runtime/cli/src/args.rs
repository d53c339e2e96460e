//! The command line, as clap parses it. Raw arguments only: `main` resolves them (zone path, output mode)
//! before any command runs.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// cleanroom — a data clean room for public-data authorized operation: raw data never leaves the zone.
#[derive(Debug, Parser)]
#[command(name = "cleanroom", version, propagate_version = true)]
pub struct Cli {
    /// The zone directory (or set CLEANROOM_ZONE).
    #[arg(long, global = true, env = "CLEANROOM_ZONE", value_name = "DIR")]
    pub zone: Option<PathBuf>,
    /// Machine-readable JSON on stdout instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    /// More log output on stderr (-v info, -vv debug); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create or inspect a zone.
    #[command(subcommand)]
    Zone(ZoneCommand),
    /// Publish and inspect datasets (agencies).
    #[command(subcommand)]
    Dataset(DatasetCommand),
    /// Check operators' WebAssembly modules against the contract.
    #[command(subcommand)]
    Module(ModuleCommand),
    /// Read and verify the zone's tamper-evident audit log (inspectors).
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Run the end-to-end demo on a fresh zone (a temporary one unless --zone is given).
    Demo(DemoArgs),
}

#[derive(Debug, Subcommand)]
pub enum ZoneCommand {
    /// Initialize a new zone: catalog, keys, object store.
    Init,
    /// Show the zone's identity and contents.
    Status,
    /// Re-hash every stored object and report damage, unreferenced objects and leftover staging files.
    Verify,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// List audit entries, oldest first.
    Log(AuditLogArgs),
    /// Recompute every entry's hash, the Merkle roots and every checkpoint signature; name the first change.
    Verify,
}

#[derive(Debug, clap::Args)]
pub struct AuditLogArgs {
    /// Only entries of this action (e.g. `dataset.publish`).
    #[arg(long)]
    pub action: Option<String>,
    /// Only entries that name this dataset.
    #[arg(long)]
    pub dataset: Option<String>,
    /// Only entries at or after this RFC 3339 time.
    #[arg(long)]
    pub since: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum DatasetCommand {
    /// Publish a new immutable version of a dataset under a policy.
    Publish(PublishArgs),
    /// List datasets with their latest version.
    List,
    /// Show a dataset version: schema with each column's class, rows, hashes, quality figures. Never a value.
    Show(ShowArgs),
}

#[derive(Debug, Subcommand)]
pub enum ModuleCommand {
    /// Validate a component against the contract without running it on data: size and compile limits, imports
    /// on the allow-list, the exports of the row-transform world. With --dataset, also call `init` with that
    /// dataset's guest schema (no rows) and print the declared output.
    Check(ModuleCheckArgs),
}

#[derive(Debug, Args)]
pub struct ModuleCheckArgs {
    /// The component (.wasm).
    #[arg(value_name = "FILE.wasm")]
    pub module: PathBuf,
    /// A published dataset (NAME or NAME@VERSION) whose guest schema `init` receives.
    #[arg(long, value_name = "NAME[@VERSION]")]
    pub dataset: Option<String>,
    /// Application parameters handed to `init`, as KEY=VALUE.
    #[arg(long = "param", value_name = "KEY=VALUE")]
    pub params: Vec<String>,
}

#[derive(Debug, Args)]
pub struct PublishArgs {
    /// The policy file (TOML, version = 1).
    #[arg(long, value_name = "P.toml")]
    pub policy: PathBuf,
    /// Dataset name; must match the policy's [dataset] name.
    #[arg(long)]
    pub name: Option<String>,
    /// Parquet file(s) with one schema; together they are the version's rows.
    #[arg(required = true, value_name = "FILE.parquet")]
    pub files: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// NAME for the latest version, or NAME@VERSION.
    #[arg(value_name = "NAME[@VERSION]")]
    pub dataset: String,
    /// Also print the policy file as published.
    #[arg(long)]
    pub policy: bool,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Rows of each generated dataset.
    #[arg(long, default_value_t = 20_000)]
    pub rows: usize,
    /// Seed of the generated data.
    #[arg(long, default_value_t = 2026)]
    pub seed: u64,
}
