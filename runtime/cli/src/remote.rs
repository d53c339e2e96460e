//! Commands through a zone server, exactly as on a local zone: jobs through the queue (`/v1/jobs`), products
//! streamed down and checked against their signed manifest, every other command sent as the parsed command to
//! `/v1/commands` with its input files uploaded first and its output files streamed back. Which arguments are files
//! is said once, here, for the client and the server alike.

use std::fs;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use zone_store::JobRecord;

use crate::args::{
    AppCommand, ArtifactCommand, AuditCommand, Cli, Command, ComplaintCommand, DatasetCommand, GrantCommand,
    JobCommand, ModuleCommand, OrgCommand, PrincipalCommand, ReportCommand, ZoneCommand,
};
use crate::client::Remote;
use crate::jobs::{RunEnded, print_cancel, print_job, print_jobs};
use crate::output::{self, Mode};

/// Whether a command's path argument is read (uploaded to the server) or written (streamed back).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathRole {
    Input,
    /// A file the command writes.
    OutputFile,
    /// A folder the command writes files into.
    OutputDir,
}

/// Every path argument of `command`, with its role. The server refuses any path that is not an upload it holds or
/// a folder it made for the request, so a new path argument must be listed here to work remotely at all.
pub fn paths_mut(command: &mut Command) -> Vec<(PathRole, &mut PathBuf)> {
    use PathRole::{Input, OutputDir, OutputFile};
    let mut v: Vec<(PathRole, &mut PathBuf)> = Vec::new();
    match command {
        Command::Dataset(DatasetCommand::Publish(a)) => {
            v.push((Input, &mut a.policy));
            v.extend(a.files.iter_mut().map(|f| (Input, f)));
        }
        Command::Dataset(DatasetCommand::Mock(a)) => v.push((OutputFile, &mut a.out)),
        Command::Principal(PrincipalCommand::Add(a)) => {
            v.extend(a.ca.as_mut().map(|p| (Input, p)));
            v.extend(a.cert_out.as_mut().map(|p| (OutputDir, p)));
        }
        Command::Org(OrgCommand::Add(a)) => v.push((Input, &mut a.ca)),
        Command::Grant(GrantCommand::Create(a)) => v.extend(a.terms.as_mut().map(|p| (Input, p))),
        Command::App(AppCommand::Submit(a)) => {
            v.push((Input, &mut a.module));
            v.extend(a.security_notes.as_mut().map(|p| (Input, p)));
        }
        Command::Module(ModuleCommand::Check(a)) => v.push((Input, &mut a.module)),
        Command::Audit(AuditCommand::Export(a)) => v.push((OutputFile, &mut a.out)),
        Command::Audit(AuditCommand::Verify(a)) => v.extend(a.bundle.as_mut().map(|p| (Input, p))),
        Command::Job(JobCommand::Output(a)) | Command::Artifact(ArtifactCommand::Output(a)) => {
            v.push((OutputDir, &mut a.out))
        }
        Command::Job(JobCommand::Dev(a)) => {
            v.push((Input, &mut a.module));
            v.push((Input, &mut a.mock));
            v.extend(a.artifacts.as_mut().map(|p| (OutputDir, p)));
        }
        Command::Artifact(ArtifactCommand::Review(a)) => v.extend(a.out.as_mut().map(|p| (OutputFile, p))),
        Command::Complaint(ComplaintCommand::File(a)) => v.push((Input, &mut a.evidence)),
        Command::Report(ReportCommand::Usage { csv, .. }) => v.extend(csv.as_mut().map(|p| (OutputDir, p))),
        Command::Product(crate::args::ProductCommand::Verify(a)) => v.push((Input, &mut a.dir)),
        Command::Serve(a) => {
            for p in [&mut a.tls_cert, &mut a.tls_key, &mut a.client_ca].into_iter().flatten() {
                v.push((Input, p));
            }
        }
        Command::Zone(_)
        | Command::Dataset(_)
        | Command::Principal(_)
        | Command::Grant(_)
        | Command::App(_)
        | Command::Audit(_)
        | Command::Job(_)
        | Command::Artifact(_)
        | Command::Complaint(_)
        | Command::Incident(_)
        | Command::Org(_)
        | Command::Cert(_)
        | Command::Demo(_) => {}
    }
    v
}

/// The dotted name of a command (`dataset.publish`, `app.submit`): what an upload is made for.
pub fn command_name(command: &Command) -> String {
    fn step(value: &serde_json::Value) -> Option<(String, &serde_json::Value)> {
        match value {
            serde_json::Value::String(s) => Some((s.to_ascii_lowercase(), &serde_json::Value::Null)),
            serde_json::Value::Object(m) if m.len() == 1 => m.iter().next().map(|(k, v)| (k.to_ascii_lowercase(), v)),
            _ => None,
        }
    }
    let value = serde_json::to_value(command).unwrap_or_default();
    let mut parts = Vec::new();
    let mut at = &value;
    while parts.len() < 2 {
        let Some((name, inner)) = step(at) else { break };
        parts.push(name);
        at = inner;
    }
    parts.join(".")
}

/// Commands that need no zone, or make one, run on this machine even with --server.
pub fn runs_locally(command: &Command) -> bool {
    matches!(
        command,
        Command::Job(JobCommand::Dev(_))
            | Command::Product(_)
            | Command::Audit(AuditCommand::Verify(crate::args::AuditVerifyArgs { bundle: Some(_), .. }))
            | Command::Demo(_)
            | Command::Serve(_)
            | Command::Zone(ZoneCommand::Init(_))
    )
}

/// A file a command wrote on the server, ready to stream down.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OutputFile {
    /// Relative to the output argument (empty for an output that is a single file).
    pub name: String,
    pub bytes: u64,
    pub sha256: String,
}

/// The files of one output argument.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Output {
    /// The output argument's position among the command's path arguments.
    pub slot: usize,
    pub files: Vec<OutputFile>,
}

/// What `/v1/commands` answers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CommandAnswer {
    pub stdout: String,
    pub stderr: String,
    /// Where to fetch the outputs: `/v1/downloads/{download}/{slot}/{name}`.
    pub download: Option<String>,
    pub outputs: Vec<Output>,
}

/// A released product (or artifact) prepared for download.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProductAnswer {
    pub job: u64,
    pub download: String,
    pub files: Vec<OutputFile>,
    /// The zone's public key, which the manifest must be signed with.
    pub public_key: String,
}

/// Whether a relative name from the server is a plain path below the destination.
fn safe_relative(name: &str) -> bool {
    !name.is_empty() && Path::new(name).components().all(|c| matches!(c, Component::Normal(_))) && !name.contains('\\')
}

/// Runs `cli`'s command through the server.
pub fn run(cli: &Cli, mode: Mode, remote: &Remote) -> anyhow::Result<()> {
    match &cli.command {
        Command::Job(JobCommand::Run(args)) => {
            let queued: JobRecord =
                remote.post("/v1/jobs", &serde_json::json!({ "app": args.app, "batch_rows": args.batch_rows }))?;
            if args.explain {
                errln!("(--explain prints the plan only for a local run)");
            }
            if args.detach {
                return match mode {
                    Mode::Json => output::json(&queued),
                    Mode::Human => {
                        outln!("job {} queued; follow it with: cleanroom job status {}", queued.id, queued.id);
                        Ok(())
                    }
                };
            }
            if mode == Mode::Human {
                errln!("job {}: queued (application {})", queued.id, args.app);
            }
            let record = wait(remote, queued.id)?;
            if record.state != zone_store::JobState::Released {
                return Err(RunEnded {
                    job: record.id,
                    class: record.error_class.unwrap_or_else(|| record.state.to_string()),
                    detail: record.error_detail.unwrap_or_default(),
                }
                .into());
            }
            // As locally: the released table and its signed manifest, fetched and checked against the zone's key.
            let answer: ProductAnswer =
                remote.post(&format!("/v1/jobs/{}/product", record.id), &serde_json::json!({}))?;
            let dir = tempfile::tempdir().context("a temporary folder for the product")?;
            let (_, signed) = fetch(remote, &answer, dir.path(), "product")?;
            let parquet = dir.path().join(zone_store::PRODUCT_PARQUET);
            let file = fs::File::open(&parquet).with_context(|| format!("open {}", parquet.display()))?;
            let batches = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
                .and_then(|b| b.build())
                .context("read the released table")?
                .collect::<Result<Vec<_>, _>>()
                .context("read the released table")?;
            match mode {
                Mode::Json => output::json(&serde_json::json!({ "job": record, "manifest": signed.manifest })),
                Mode::Human => {
                    crate::jobs::print_product(&record, &signed, &batches)?;
                    outln!("take it out with: cleanroom job output {} --out DIR", record.id);
                    Ok(())
                }
            }
        }
        Command::Job(JobCommand::Status { id }) => {
            let record: JobRecord = remote.get(&format!("/v1/jobs/{id}"))?;
            match mode {
                Mode::Json => output::json(&record),
                Mode::Human => {
                    print_job(&record);
                    Ok(())
                }
            }
        }
        Command::Job(JobCommand::List) => {
            let records: Vec<JobRecord> = remote.get("/v1/jobs")?;
            match mode {
                Mode::Json => output::json(&records),
                Mode::Human => {
                    print_jobs(&records);
                    Ok(())
                }
            }
        }
        Command::Job(JobCommand::Cancel { id }) => {
            let record: JobRecord = remote.post(&format!("/v1/jobs/{id}/cancel"), &serde_json::json!({}))?;
            print_cancel(&record, mode)
        }
        Command::Job(JobCommand::Output(args)) => {
            let answer: ProductAnswer =
                remote.post(&format!("/v1/jobs/{}/product", args.id), &serde_json::json!({}))?;
            take_out(remote, &answer, &args.out, mode, "product")
        }
        Command::Artifact(ArtifactCommand::Output(args)) => {
            let answer: ProductAnswer =
                remote.post(&format!("/v1/artifacts/{}/output", args.id), &serde_json::json!({}))?;
            take_out(remote, &answer, &args.out, mode, "artifact")
        }
        _ => command(cli, mode, remote),
    }
}

/// Polls a queued job until it is final.
fn wait(remote: &Remote, id: u64) -> anyhow::Result<JobRecord> {
    let mut every = Duration::from_millis(50);
    let mut announced_running = false;
    loop {
        let record: JobRecord = remote.get(&format!("/v1/jobs/{id}"))?;
        if record.is_final() {
            return Ok(record);
        }
        if record.state == zone_store::JobState::Running && !announced_running {
            errln!("job {id}: running");
            announced_running = true;
        }
        std::thread::sleep(every);
        every = (every * 2).min(Duration::from_millis(500));
    }
}

/// Streams a prepared product or artifact into `out`; checked against its signed manifest and the zone's key.
fn fetch(
    remote: &Remote,
    answer: &ProductAnswer,
    out: &Path,
    what: &str,
) -> anyhow::Result<(Vec<PathBuf>, zone_store::SignedManifest)> {
    fs::create_dir_all(out).with_context(|| format!("create {}", out.display()))?;
    let mut written = Vec::new();
    for f in &answer.files {
        if !safe_relative(&f.name) || f.name.contains('/') {
            anyhow::bail!("the server named a {what} file `{}`, which is not a plain file name", f.name.escape_debug());
        }
        let dest = out.join(&f.name);
        remote.download(&format!("/v1/downloads/{}/0/{}", answer.download, f.name), &dest, f.bytes, &f.sha256)?;
        written.push(dest);
    }
    let (checked, _) = zone_store::verify_product(out, Some(&answer.public_key))
        .with_context(|| format!("the downloaded {what} in {} does not verify", out.display()))?;
    Ok((written, checked))
}

/// Streams a prepared product or artifact into `out` and checks it against its signed manifest and the zone's key.
fn take_out(remote: &Remote, answer: &ProductAnswer, out: &Path, mode: Mode, what: &str) -> anyhow::Result<()> {
    let (written, checked) = fetch(remote, answer, out, what)?;
    match mode {
        Mode::Json => output::json(&serde_json::json!({ "job": answer.job, "files": written, "verified": true })),
        Mode::Human => {
            outln!("job {}: {what} written to {}", answer.job, out.display());
            for f in &written {
                outln!("  {}", f.display());
            }
            outln!(
                "verified: {} files match the manifest signed by the zone's key {}",
                checked.manifest.outputs.len(),
                output::short(&answer.public_key)
            );
            Ok(())
        }
    }
}

/// Any other command: inputs uploaded, the parsed command sent, outputs streamed back to where they were asked for.
fn command(cli: &Cli, mode: Mode, remote: &Remote) -> anyhow::Result<()> {
    // The command as parsed, sent as JSON; its paths replaced by upload tokens and output slots.
    let mut command: Command =
        serde_json::from_value(serde_json::to_value(&cli.command).context("encode the command")?)
            .context("copy the command")?;
    if let Command::Principal(PrincipalCommand::Add(a)) = &mut command
        && a.issue_cert
        && a.cert_out.is_none()
    {
        a.cert_out = Some(PathBuf::from("."));
    }
    let mut destinations = Vec::new();
    let name = command_name(&command);
    for (slot, (role, path)) in paths_mut(&mut command).into_iter().enumerate() {
        match role {
            PathRole::Input => {
                // An upload is ours alone, for this command, once.
                let token = remote.upload(path, &name)?;
                let file = path.file_name().and_then(|n| n.to_str()).unwrap_or("file").to_owned();
                *path = PathBuf::from(format!("upload:{token}/{file}"));
            }
            PathRole::OutputFile | PathRole::OutputDir => {
                destinations.push((slot, role, path.clone()));
                *path = PathBuf::from(format!("output:{slot}"));
            }
        }
    }
    let value = serde_json::to_value(&command).context("encode the command")?;
    let answer: CommandAnswer =
        remote.post("/v1/commands", &serde_json::json!({ "command": value, "json": mode == Mode::Json }))?;
    if !answer.stderr.is_empty() {
        err!("{}", answer.stderr);
    }
    out!("{}", answer.stdout);
    for (slot, role, dest) in destinations {
        let Some(output) = answer.outputs.iter().find(|o| o.slot == slot) else { continue };
        let Some(token) = &answer.download else { continue };
        for f in &output.files {
            let target = match role {
                PathRole::OutputFile => dest.clone(),
                _ => {
                    if !safe_relative(&f.name) {
                        anyhow::bail!(
                            "the server named an output `{}`, which is not a relative path",
                            f.name.escape_debug()
                        );
                    }
                    dest.join(&f.name)
                }
            };
            if let Some(parent) = target.parent().filter(|p| !p.as_os_str().is_empty()) {
                fs::create_dir_all(parent).with_context(|| format!("create {}", parent.display()))?;
            }
            let name = if f.name.is_empty() { "-".to_owned() } else { f.name.clone() };
            remote.download(&format!("/v1/downloads/{token}/{slot}/{name}"), &target, f.bytes, &f.sha256)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;

    fn roles(argv: &[&str]) -> Vec<PathRole> {
        let mut cli = Cli::try_parse_from(std::iter::once("cleanroom").chain(argv.iter().copied())).expect("parses");
        paths_mut(&mut cli.command).into_iter().map(|(r, _)| r).collect()
    }

    #[test]
    fn every_file_argument_is_listed_with_its_role() {
        use PathRole::{Input, OutputDir, OutputFile};
        let cases: &[(&[&str], &[PathRole])] = &[
            (&["dataset", "publish", "--policy", "p.toml", "a.parquet", "b.parquet"], &[Input, Input, Input]),
            (&["dataset", "mock", "registry", "--out", "m.parquet"], &[OutputFile]),
            (&["principal", "add", "a", "--role", "agency", "--issue-cert", "--cert-out", "d"], &[OutputDir]),
            (
                &[
                    "grant",
                    "create",
                    "--operator",
                    "o",
                    "--datasets",
                    "d",
                    "--domains",
                    "finance",
                    "--from",
                    "2026-01-01",
                    "--to",
                    "2027-01-01",
                    "--terms",
                    "t.pdf",
                ],
                &[Input],
            ),
            (
                &[
                    "app",
                    "submit",
                    "--module",
                    "m.wasm",
                    "--dataset",
                    "d",
                    "--domain",
                    "finance",
                    "--purpose",
                    "p",
                    "--mode",
                    "aggregate",
                    "--security-notes",
                    "n.txt",
                ],
                &[Input, Input],
            ),
            (&["module", "check", "m.wasm"], &[Input]),
            (&["audit", "export", "--out", "b.json"], &[OutputFile]),
            (&["job", "output", "1", "--out", "d"], &[OutputDir]),
            (&["artifact", "output", "1", "--out", "d"], &[OutputDir]),
            (&["artifact", "review", "1", "--out", "a.bin"], &[OutputFile]),
            (&["complaint", "file", "--dataset", "d", "--subject", "x", "--evidence", "e.pdf"], &[Input]),
            (&["report", "usage", "--csv", "d"], &[OutputDir]),
            (&["grant", "list"], &[]),
        ];
        for (argv, expected) in cases {
            assert_eq!(roles(argv), expected.to_vec(), "{argv:?}");
        }
    }

    #[test]
    fn only_plain_relative_names_come_back_from_a_server() {
        assert!(safe_relative("product.parquet"));
        assert!(safe_relative("operators.csv"));
        for bad in ["", "/etc/passwd", "../x", "a/../../b", "./x", "a\\b"] {
            assert!(!safe_relative(bad), "{bad}");
        }
    }

    #[test]
    fn commands_without_a_zone_stay_on_the_client() {
        let cli = |argv: &[&str]| {
            Cli::try_parse_from(std::iter::once("cleanroom").chain(argv.iter().copied())).expect("parses")
        };
        assert!(runs_locally(&cli(&["product", "verify", "d"]).command));
        assert!(runs_locally(&cli(&["zone", "init"]).command));
        assert!(runs_locally(&cli(&["audit", "verify", "--bundle", "b.json"]).command));
        assert!(!runs_locally(&cli(&["audit", "verify"]).command));
        assert!(!runs_locally(&cli(&["job", "list"]).command));
    }

    #[test]
    fn commands_have_dotted_names() {
        let name = |argv: &[&str]| {
            let cli = Cli::try_parse_from(std::iter::once("cleanroom").chain(argv.iter().copied())).expect("parses");
            command_name(&cli.command)
        };
        assert_eq!(name(&["dataset", "publish", "--policy", "p.toml", "a.parquet"]), "dataset.publish");
        assert_eq!(name(&["module", "check", "m.wasm"]), "module.check");
        assert_eq!(name(&["principal", "list"]), "principal.list");
        assert_eq!(name(&["org", "add", "tax", "--ca", "ca.pem"]), "org.add");
    }
}
