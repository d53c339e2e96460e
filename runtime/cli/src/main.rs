//! `cleanroom`: the zone runtime's command line. Parses arguments, resolves the zone, runs one command, and
//! turns errors into a message on stderr (and JSON on stdout with `--json`) and a non-zero exit code.

mod args;
mod commands;
mod demo;
mod limits;
mod module;
mod output;
mod progress;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use crate::args::{Cli, Command};
use crate::output::Mode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.verbose);
    let mode = if cli.json { Mode::Json } else { Mode::Human };
    match run(&cli, mode) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            report(&error, mode);
            ExitCode::FAILURE
        }
    }
}

fn init_tracing(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false).init();
}

fn zone_dir(cli: &Cli) -> anyhow::Result<PathBuf> {
    cli.zone.clone().ok_or_else(|| anyhow::anyhow!("no zone given: pass --zone DIR or set CLEANROOM_ZONE"))
}

fn run(cli: &Cli, mode: Mode) -> anyhow::Result<()> {
    match &cli.command {
        Command::Zone(c) => commands::zone(&zone_dir(cli)?, c, mode),
        Command::Dataset(c) => commands::dataset(&zone_dir(cli)?, c, mode),
        Command::Module(args::ModuleCommand::Check(args)) => module::check(cli.zone.as_deref(), args, mode),
        Command::Audit(c) => commands::audit(&zone_dir(cli)?, c, mode),
        Command::Demo(args) => demo::run(cli.zone.as_deref(), args, mode),
    }
}

/// Prints the error and its causes; with `--json`, also a JSON object with the error class on stdout.
fn report(error: &anyhow::Error, mode: Mode) {
    eprintln!("error: {error}");
    for cause in error.chain().skip(1) {
        eprintln!("  caused by: {cause}");
    }
    if mode == Mode::Json {
        let class = match (
            error.downcast_ref::<zone_store::StoreError>(),
            error.downcast_ref::<zone_sandbox::SandboxError>(),
        ) {
            (Some(e), _) => e.class(),
            (None, Some(e)) => e.class.name(),
            (None, None) => "error",
        };
        let rules: Vec<String> = match error.downcast_ref::<zone_store::StoreError>() {
            Some(zone_store::StoreError::PolicyRefused(e)) => e.rules().iter().map(|r| r.to_string()).collect(),
            _ => Vec::new(),
        };
        let value = serde_json::json!({ "error": { "class": class, "message": error.to_string(), "rules": rules } });
        println!("{value}");
    }
}
