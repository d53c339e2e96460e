//! `cleanroom`: the zone runtime's command line. Parses arguments, resolves the zone, runs one command, and
//! turns errors into a message on stderr (and JSON on stdout with `--json`) and a non-zero exit code.

#[macro_use]
mod output;
mod args;
mod artifacts;
mod certs;
mod client;
mod commands;
mod context;
mod demo;
mod governance;
mod jobs;
mod module;
mod oversight;
mod progress;
mod remote;
mod serve;

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

fn run(cli: &Cli, mode: Mode) -> anyhow::Result<()> {
    if let Some(remote) = client::remote_from_cli(cli)?
        && !remote::runs_locally(&cli.command)
    {
        return remote::run(cli, mode, &remote);
    }
    dispatch(&context::Ctx { cli, mode, via: None })
}

/// Runs one command on a local zone (or, in the server, on the zone it serves, as the certificate's principal).
pub(crate) fn dispatch(ctx: &context::Ctx<'_>) -> anyhow::Result<()> {
    let (cli, mode) = (ctx.cli, ctx.mode);
    match &cli.command {
        Command::Zone(c) => commands::zone(ctx, c),
        Command::Dataset(c) => commands::dataset(ctx, c),
        Command::Principal(c) => governance::principal(ctx, c),
        Command::Org(c) => governance::org(ctx, c),
        Command::Cert(c) => governance::cert(ctx, c),
        Command::Grant(c) => governance::grant(ctx, c),
        Command::App(c) => governance::app(ctx, c),
        Command::Module(args::ModuleCommand::Check(args)) => module::check(ctx, args),
        Command::Audit(c) => commands::audit(ctx, c),
        Command::Job(c) => jobs::job(ctx, c),
        Command::Artifact(c) => artifacts::artifact(ctx, c),
        Command::Complaint(c) => oversight::complaint(ctx, c),
        Command::Incident(c) => oversight::incident(ctx, c),
        Command::Report(c) => oversight::report(ctx, c),
        Command::Product(args::ProductCommand::Verify(args)) => jobs::verify(ctx, args),
        Command::Demo(args) => demo::run(cli.zone.as_deref(), args, mode),
        Command::Serve(args) => serve::serve(ctx, args),
    }
}

/// Prints the error and its causes; with `--json`, also a JSON object with the error class on stdout.
fn report(error: &anyhow::Error, mode: Mode) {
    errln!("error: {error}");
    for cause in error.chain().skip(1) {
        errln!("  caused by: {cause}");
    }
    if let Some(e) = client::remote_error(error) {
        for cause in &e.causes {
            errln!("  caused by: {cause}");
        }
    }
    if mode == Mode::Json {
        if let Some(e) = client::remote_error(error) {
            let value = serde_json::json!({ "error": { "class": e.class, "message": e.message, "rules": e.rules, "status": e.status } });
            outln!("{value}");
            return;
        }
        let ops = error.downcast_ref::<zone_ops::OpsError>();
        let store = error.downcast_ref::<zone_store::StoreError>().or(match ops {
            Some(zone_ops::OpsError::Store(e)) => Some(e),
            _ => None,
        });
        let class = match (
            store,
            error.downcast_ref::<zone_sandbox::SandboxError>(),
            error.downcast_ref::<zone_audit::BundleError>(),
        ) {
            (Some(e), _, _) => e.class(),
            (None, _, _) if ops.is_some() => ops.map_or("error", zone_ops::OpsError::class),
            (None, Some(e), _) => e.class.name(),
            (None, None, Some(_)) => "audit.bundle",
            (None, None, None) => {
                match (error.downcast_ref::<zone_jobs::JobError>(), error.downcast_ref::<jobs::RunEnded>()) {
                    (Some(e), _) => e.class(),
                    (None, Some(e)) => e.class.as_str(),
                    (None, None) if error.downcast_ref::<zone_store::ProductError>().is_some() => "product.verify",
                    (None, None) => "error",
                }
            }
        };
        let rules: Vec<String> = match store {
            Some(zone_store::StoreError::PolicyRefused(e)) => e.rules().iter().map(|r| r.to_string()).collect(),
            _ => Vec::new(),
        };
        let value = serde_json::json!({ "error": { "class": class, "message": error.to_string(), "rules": rules } });
        outln!("{value}");
    }
}
