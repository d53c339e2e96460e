//! `cleanroom`: the zone runtime's command line. Parses arguments, resolves the zone, runs one command, and
//! turns errors into a message on stderr (and JSON on stdout with `--json`) and a non-zero exit code.

#[macro_use]
mod output;
mod args;
mod artifacts;
mod client;
mod commands;
mod context;
mod demo;
mod governance;
mod jobs;
mod module;
mod oversight;
mod progress;
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
    let remote = match client::remote_from_cli(cli)? {
        Some(remote) if !runs_locally(&cli.command) => Some(remote),
        _ => None,
    };
    dispatch(&context::Ctx { cli, mode, remote })
}

/// Commands that need no zone, or make one, run on this machine even with --server.
fn runs_locally(command: &Command) -> bool {
    matches!(
        command,
        Command::Job(args::JobCommand::Dev(_))
            | Command::Product(_)
            | Command::Audit(args::AuditCommand::Verify(args::AuditVerifyArgs { bundle: Some(_), .. }))
            | Command::Demo(_)
            | Command::Serve(_)
            | Command::Zone(args::ZoneCommand::Init(_))
    )
}

/// Runs one command, on a local zone or through the server `ctx.remote`.
fn dispatch(ctx: &context::Ctx<'_>) -> anyhow::Result<()> {
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
        Command::Budget(args::BudgetCommand::Show) => oversight::budget(ctx),
        Command::Product(args::ProductCommand::Verify(args)) => jobs::verify(ctx, args),
        Command::Demo(args) => demo::run(cli.zone.as_deref(), args, mode),
        Command::Serve(args) => serve::serve(ctx, args),
    }
}

/// The zone's error class of a failed command, its message's rules (a refused policy), and the HTTP status when a
/// server answered.
fn classify(error: &anyhow::Error) -> (zone_api::ErrorClass, Vec<String>, Option<u16>) {
    use zone_api::ErrorClass;
    if let Some(e) = client::remote_error(error) {
        return (e.class, e.rules.clone(), Some(e.status));
    }
    for cause in error.chain() {
        if let Some(e) = cause.downcast_ref::<zone_ops::OpsError>() {
            return (e.class(), e.rules(), None);
        }
        if let Some(e) = cause.downcast_ref::<zone_store::StoreError>() {
            let rules = match e {
                zone_store::StoreError::PolicyRefused(p) => p.rules().iter().map(|r| r.to_string()).collect(),
                _ => Vec::new(),
            };
            return (ErrorClass::of(e.class()), rules, None);
        }
        if let Some(e) = cause.downcast_ref::<zone_sandbox::SandboxError>() {
            return (ErrorClass::of(e.class.name()), Vec::new(), None);
        }
        if let Some(e) = cause.downcast_ref::<zone_jobs::JobError>() {
            return (ErrorClass::of(e.class()), Vec::new(), None);
        }
        if let Some(e) = cause.downcast_ref::<jobs::RunEnded>() {
            return (ErrorClass::of(&e.class), Vec::new(), None);
        }
        if cause.downcast_ref::<zone_audit::BundleError>().is_some() {
            return (ErrorClass::AuditBundle, Vec::new(), None);
        }
        if cause.downcast_ref::<zone_store::ProductError>().is_some() {
            return (ErrorClass::ProductVerify, Vec::new(), None);
        }
        if cause.downcast_ref::<zone_ops::pki::PkiError>().is_some() {
            return (ErrorClass::InputInvalid, Vec::new(), None);
        }
        if cause.downcast_ref::<zone_server::ServerError>().is_some() {
            return (ErrorClass::InputInvalid, Vec::new(), None);
        }
    }
    (ErrorClass::InputInvalid, Vec::new(), None)
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
        let (class, rules, status) = classify(error);
        let mut detail = serde_json::json!({ "class": class, "message": error.to_string(), "rules": rules });
        if let Some(status) = status {
            detail["status"] = status.into();
        }
        outln!("{}", serde_json::json!({ "error": detail }));
    }
}
