//! `job run|status|list|output|dev` and `product verify` as commands: the gate of the store, the run itself in
//! `zone-ops` (shared with the server's workers), and what each principal is shown. The operator sees the rows read and
//! released, and one class for a run that released nothing (`job.failed`); the detailed class, the counters the guest
//! controls, the exact duration and the guest's text stay in the zone (except in `job dev`, which runs on mock rows
//! outside any zone). A run's end is made known only at the zone's timing quantum.

use std::fs;
use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use arrow_array::RecordBatch;
use zone_api::routes::{self as api, ProductAnswer};
use zone_jobs::ReleaseLimits;
use zone_store::{JobRecord, JobState, SignedManifest};

use crate::client::Remote;

use crate::args::{JobCommand, JobDevArgs, JobRunArgs, ProductVerifyArgs};
use crate::context::Ctx;
use crate::output::{self, Mode, inert, short};

/// A run that started and ended without a product: its class and the host's description.
#[derive(Debug, thiserror::Error)]
#[error("job {job} released nothing: {detail} [{class}]")]
pub struct RunEnded {
    pub job: u64,
    pub class: String,
    pub detail: String,
}

pub fn job(ctx: &Ctx<'_>, command: &JobCommand) -> anyhow::Result<()> {
    match command {
        JobCommand::Dev(args) => dev(args, ctx.mode),
        JobCommand::Run(args) => match &ctx.remote {
            Some(remote) => run_remote(remote, args, ctx.mode),
            None => run(ctx, args),
        },
        JobCommand::Status { id } => {
            let job = ctx.call(api::JobStatus { id: *id })?;
            match ctx.mode {
                Mode::Json => output::json(&job),
                Mode::Human => {
                    print_job(&job);
                    Ok(())
                }
            }
        }
        JobCommand::List => {
            let jobs = ctx.call(api::JobList {})?;
            match ctx.mode {
                Mode::Json => output::json(&jobs),
                Mode::Human => {
                    print_jobs(&jobs);
                    Ok(())
                }
            }
        }
        JobCommand::Output(args) => {
            let answer = ctx.call_into(api::JobProduct { id: args.id }, Some(&args.out))?;
            take_out(ctx, &answer, &args.out, "product")
        }
        JobCommand::Diagnostics { id } => {
            let text = ctx.call(api::JobDiagnostics { id: *id })?;
            match ctx.mode {
                Mode::Json => output::json(&text),
                Mode::Human => {
                    print_guest_text(*id, &text);
                    Ok(())
                }
            }
        }
        JobCommand::Cancel { id } => print_cancel(&ctx.call(api::JobCancel { id: *id })?, ctx.mode),
    }
}

/// A released product (or artifact) in `out`, checked against its signed manifest and the zone's key.
pub fn take_out(ctx: &Ctx<'_>, answer: &ProductAnswer, out: &Path, what: &str) -> anyhow::Result<()> {
    let written = ctx.take(&answer.output, out)?;
    let (checked, _) = zone_store::verify_product(out, Some(&answer.public_key))
        .with_context(|| format!("the {what} in {} does not verify", out.display()))?;
    match ctx.mode {
        Mode::Json => output::json(&serde_json::json!({ "job": answer.job, "files": written, "verified": true })),
        Mode::Human => {
            outln!("job {}: {what} written to {}", answer.job, out.display());
            for f in &written {
                outln!("  {}", f.display());
            }
            outln!(
                "verified: {} files match the manifest signed by the zone's key {}",
                checked.manifest.outputs.len(),
                short(&answer.public_key)
            );
            outln!("check it anywhere with: cleanroom product verify {}", out.display());
            Ok(())
        }
    }
}

/// What `job cancel` prints, locally and through a server.
pub fn print_cancel(record: &JobRecord, mode: Mode) -> anyhow::Result<()> {
    match mode {
        Mode::Json => output::json(record),
        Mode::Human => {
            if record.state == JobState::Running {
                outln!("job {}: stop requested; the run ends within moments and releases nothing", record.id);
            } else {
                outln!("job {}: {}", record.id, record.state);
            }
            Ok(())
        }
    }
}

/// The table of `job list`.
pub fn print_jobs(jobs: &[JobRecord]) {
    let mut t = output::table(["job", "app", "operator", "state", "rows read", "released", "suppressed", "started"]);
    for j in jobs {
        let c = j.counts.clone().unwrap_or_default();
        let suppressed = c.groups_suppressed.map_or_else(|| "-".to_owned(), |n| n.to_string());
        t.add_row(vec![
            j.id.to_string(),
            j.app.to_string(),
            j.operator.clone(),
            match &j.error_class {
                Some(class) => format!("{} ({class})", j.state),
                None => j.state.to_string(),
            },
            c.rows_read.to_string(),
            c.rows_released.to_string(),
            suppressed,
            j.started_at.clone(),
        ]);
    }
    outln!("{t}");
}

pub fn print_job(job: &JobRecord) {
    outln!("job {} (application {}, operator {}): {}", job.id, job.app, job.operator, job.state);
    let datasets: Vec<String> = job.binding.datasets.iter().map(|d| format!("{}@{}", d.dataset, d.version)).collect();
    outln!("  datasets   {}", datasets.join(", "));
    outln!("  module     {}", short(&job.binding.module_sha256));
    if let Some(q) = &job.queued_at {
        outln!("  queued     {q}");
    }
    if job.state != JobState::Queued {
        outln!(
            "  started    {}{}",
            job.started_at,
            if job.attempts > 1 { format!(" (run {})", job.attempts) } else { String::new() }
        );
    }
    if let Some(f) = &job.finished_at {
        outln!("  finished   {f}");
    }
    if let Some(c) = &job.counts {
        outln!("  counts     {} rows read, {} released", c.rows_read, c.rows_released);
        // Only in the view of the providing agencies and the inspector: counters the guest controls.
        if let (Some(groups), Some(suppressed), Some(dropped)) =
            (c.groups, c.groups_suppressed, c.contributions_dropped)
        {
            outln!(
                "  gate       {groups} groups, {suppressed} suppressed (under k), {dropped} contributions over the bound"
            );
        }
        if let Some(ms) = c.elapsed_ms {
            outln!("  elapsed    {ms} ms");
        }
    }
    if let (Some(class), Some(detail)) = (&job.error_class, &job.error_detail) {
        outln!("  error      [{class}] {}", inert(detail));
    }
    if let Some(m) = &job.manifest_sha256 {
        outln!("  manifest   {}", short(m));
    }
    if let Some(n) = job.guest_messages.filter(|n| *n > 0) {
        outln!("  guest      {n} message(s) kept in the zone (for the providing agencies)");
    }
}

/// Guest text as the catalog keeps it: per instance, each message with its level; control characters escaped.
fn print_guest_text(job: u64, text: &serde_json::Value) {
    if let Some(w) = text.get("withheld") {
        outln!(
            "job {job}: the guest's text ({} bytes, sha256:{}) stays with the agencies whose data it saw",
            w["bytes"].as_u64().unwrap_or(0),
            w["sha256"].as_str().unwrap_or("-")
        );
        return;
    }
    let parts = text.as_array().map(Vec::as_slice).unwrap_or_default();
    if parts.is_empty() {
        outln!("job {job}: the guest wrote nothing");
    }
    for (i, part) in parts.iter().enumerate() {
        if let Some(host) = part["host_error"].as_str() {
            outln!("host: {}", inert(host));
            continue;
        }
        let messages = part["messages"].as_array().map(Vec::as_slice).unwrap_or_default();
        outln!(
            "instance {i}: {} message(s){}{}",
            messages.len(),
            if part["panicked"].as_bool() == Some(true) { ", panicked" } else { "" },
            match part["dropped_messages"].as_u64() {
                Some(n) if n > 0 => format!(", {n} dropped over the cap"),
                _ => String::new(),
            }
        );
        for m in messages {
            let level = match m["level"].as_u64() {
                Some(0) => "trace",
                Some(1) => "debug",
                Some(2) => "info",
                Some(3) => "warn",
                Some(4) => "error",
                _ => "panic",
            };
            outln!("  {level:<5} {}", inert(m["text"].as_str().unwrap_or_default()));
        }
    }
}

fn run(ctx: &Ctx<'_>, args: &JobRunArgs) -> anyhow::Result<()> {
    let mode = ctx.mode;
    let (zone, who) = ctx.open_as()?;
    let (zone, who) = (&zone, &who);
    // The timing quantum is checked before anything runs: a zone.toml value out of range is an error, named.
    zone.timing_quantum()?;
    let ticket = zone.start_job(who, args.app, args.batch_rows)?;
    if mode == Mode::Human {
        let datasets: Vec<String> =
            ticket.datasets.iter().map(|d| format!("{}@{}", d.version.dataset, d.version.version)).collect();
        errln!("job {}: running application {} on {}", ticket.job, args.app, datasets.join(", "));
    }
    let ran = zone_ops::run_ticket(zone, who, &ticket, zone_ops::RunOptions { explain: args.explain })?;
    if let Some(plan) = &ran.plan {
        errln!("{plan}");
    }
    let (record, manifest, batches) = (ran.record, ran.manifest, ran.batches);
    let Some(manifest) = manifest else {
        return Err(RunEnded {
            job: record.id,
            class: record.error_class.unwrap_or_else(|| "error".into()),
            detail: record.error_detail.unwrap_or_default(),
        }
        .into());
    };
    match mode {
        Mode::Json => output::json(&serde_json::json!({ "job": record, "manifest": manifest.manifest })),
        Mode::Human => {
            print_product(&record, &manifest, &batches)?;
            outln!("take it out with: cleanroom job output {} --out DIR", record.id);
            Ok(())
        }
    }
}

pub fn print_product(record: &JobRecord, manifest: &SignedManifest, batches: &[RecordBatch]) -> anyhow::Result<()> {
    let m = &manifest.manifest;
    match &m.release.privacy {
        None => outln!(
            "job {}: released {} rows (every group of at least k = {} subjects); {} rows read",
            record.id,
            m.rows_released,
            m.release.min_group_size,
            m.rows_read
        ),
        Some(p) => {
            outln!(
                "job {}: released {} rows, differentially private: ε = {} and δ = {:e} spent; {} rows read",
                record.id,
                m.rows_released,
                p.epsilon,
                p.delta,
                m.rows_read
            );
            outln!(
                "  the module ran on {} isolated blocks of at most {} subjects; one subject changes at most {} \
                 subjects' bounded contributions",
                p.blocks,
                p.block_subjects,
                p.sensitivity_factor
            );
            if let Some(s) = &p.selection {
                outln!(
                    "  groups: released when their noisy subject count (scale {:.1}) reaches {}",
                    s.scale,
                    s.threshold
                );
            }
            for n in &p.measures {
                let interval = match n.ci95_half_width {
                    Some(h) => format!("95 % interval ± {h}"),
                    None => "95 % interval per cell".to_owned(),
                };
                outln!(
                    "  {:<14} {:<5} ε = {:.4}  noise scale {}  {interval} (columns {}_ci95_low, {}_ci95_high)",
                    n.name,
                    n.aggregate,
                    n.epsilon,
                    n.scale,
                    n.name,
                    n.name
                );
            }
        }
    }
    outln!("{}", arrow_cast::pretty::pretty_format_batches(&output::inert_batches(batches)?)?);
    outln!("manifest: signed by {} (ed25519)", short(&manifest.signature.public_key));
    for f in &m.outputs {
        outln!("  {:<16} {:>10}  sha256 {}", f.name, output::bytes(f.bytes), f.sha256);
    }
    if m.artifacts_held > 0 {
        outln!(
            "{} artifact(s) held for the providing agencies' review (`cleanroom artifact list --job {}`)",
            m.artifacts_held,
            record.id
        );
    }
    Ok(())
}

/// `job run` through a server: queued, followed until it ends, and the product fetched and checked against the
/// zone's key, as locally.
fn run_remote(remote: &Remote, args: &JobRunArgs, mode: Mode) -> anyhow::Result<()> {
    let queued = remote.call(&api::JobSubmit { app: args.app, batch_rows: args.batch_rows })?;
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
    if record.state != JobState::Released {
        return Err(RunEnded {
            job: record.id,
            class: record.error_class.unwrap_or_else(|| record.state.to_string()),
            detail: record.error_detail.unwrap_or_default(),
        }
        .into());
    }
    let answer = remote.call(&api::JobProduct { id: record.id })?;
    let dir = tempfile::tempdir().context("a temporary folder for the product")?;
    remote.fetch(&answer.output, dir.path())?;
    let (signed, _) = zone_store::verify_product(dir.path(), Some(&answer.public_key))
        .context("the downloaded product does not verify")?;
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
            print_product(&record, &signed, &batches)?;
            outln!("take it out with: cleanroom job output {} --out DIR", record.id);
            Ok(())
        }
    }
}

/// Polls a queued job until it is final.
fn wait(remote: &Remote, id: u64) -> anyhow::Result<JobRecord> {
    let mut every = Duration::from_millis(50);
    let mut announced_running = false;
    loop {
        let record = remote.call(&api::JobStatus { id })?;
        if record.is_final() {
            return Ok(record);
        }
        if record.state == JobState::Running && !announced_running {
            errln!("job {id}: running");
            announced_running = true;
        }
        std::thread::sleep(every);
        every = (every * 2).min(Duration::from_millis(500));
    }
}

fn dev(args: &JobDevArgs, mode: Mode) -> anyhow::Result<()> {
    let run = zone_ops::DevRun {
        module: args.module.clone(),
        mock: args.mock.clone(),
        params: zone_ops::parse_params(&args.params)?,
        limits: ReleaseLimits {
            min_group_size: args.min_group_size,
            max_groups_per_subject: args.max_groups_per_subject,
            max_rows_per_subject_in_group: args.max_rows_per_subject_in_group,
            max_output_rows: args.max_output_rows,
            max_artifact_bytes: args.artifacts.as_ref().map(|_| args.max_artifact_bytes),
            dp: None,
        },
        explain: args.explain,
    };
    let outcome = zone_ops::dev_run(&run)?;
    if let Some(plan) = &outcome.plan {
        errln!("{plan}");
    }
    // Unlike a real run, a dev run shows the operator everything the guest said.
    for (i, part) in outcome.messages.iter().enumerate() {
        for (level, text) in part {
            errln!("guest[{i}] level {level}: {}", inert(text));
        }
    }
    let (stats, batches) = outcome.result?;
    let mut written = Vec::new();
    if let Some(dir) = &args.artifacts {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        for (name, bytes) in &outcome.artifacts {
            // Names passed the sandbox's check: plain file names, no separators.
            let path = dir.join(name);
            fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?;
            written.push(serde_json::json!({ "name": name, "bytes": bytes.len(), "path": path }));
        }
    }
    match mode {
        Mode::Json => output::json(&serde_json::json!({
            "stats": stats,
            "rows": stats.rows_released,
            "artifacts": written,
        })),
        Mode::Human => {
            outln!(
                "dev run on {}: {} rows read, {} groups, {} suppressed under k = {}, {} released (not a product: \
                 mock data, nothing recorded)",
                args.mock.display(),
                stats.rows_read,
                stats.groups,
                stats.groups_suppressed,
                args.min_group_size,
                stats.rows_released
            );
            outln!("{}", arrow_cast::pretty::pretty_format_batches(&output::inert_batches(&batches)?)?);
            for w in &written {
                outln!("artifact {} ({} bytes) written to {}", w["name"], w["bytes"], w["path"]);
            }
            Ok(())
        }
    }
}

pub fn verify(ctx: &Ctx<'_>, args: &ProductVerifyArgs) -> anyhow::Result<()> {
    let (signed, report) = zone_store::verify_product(&args.dir, args.key.as_deref())?;
    match ctx.mode {
        Mode::Json => output::json(&report),
        Mode::Human => {
            let m = &signed.manifest;
            outln!("product of job {} (application {}, operator {}): verified", m.job, m.application, m.operator);
            outln!(
                "  signed by  {} (ed25519){}",
                report.public_key,
                if args.key.is_some() { "" } else { " — compare with the zone's published key" }
            );
            for f in &report.files {
                outln!("  {:<16} {:>10}  sha256 {} ok", f.name, output::bytes(f.bytes), short(&f.sha256));
            }
            let datasets: Vec<String> = m.datasets.iter().map(|d| format!("{}@{}", d.dataset, d.version)).collect();
            outln!("  from       {} with module {}", datasets.join(", "), short(&m.module_sha256));
            outln!(
                "  released   {} rows (groups of at least k = {} subjects); {} rows read",
                m.rows_released,
                m.release.min_group_size,
                m.rows_read
            );
            Ok(())
        }
    }
}
