//! The `zone`, `dataset` and `audit` commands.

use anyhow::Context as _;
use serde_json::json;
use zone_api::routes as api;
use zone_store::PublishOutcome;

use crate::args::{AuditCommand, DatasetCommand, MockArgs, PublishArgs, RowsArgs, ShowArgs, ZoneCommand};
use crate::context::Ctx;
use crate::output::{self, Mode, bytes, short};

pub fn zone(ctx: &Ctx<'_>, command: &ZoneCommand) -> anyhow::Result<()> {
    let mode = ctx.mode;
    let root = &ctx.root().unwrap_or_default();
    match command {
        ZoneCommand::Init(args) => {
            let root = &ctx.root()?;
            let zone_ops::NewZone { zone, public_key, dev_ca } =
                zone_ops::init_zone(root, &args.authority, args.org.as_deref(), args.dev_ca)?;
            match mode {
                Mode::Json => output::json(&json!({
                    "zone": root,
                    "zone_id": zone.info().zone_id,
                    "created_at": zone.info().created_at,
                    "public_key": public_key,
                    "authority": args.authority,
                    "dev_ca": dev_ca.as_ref().map(|ca| json!({
                        "ca": ca.ca_cert, "server_cert": ca.server_cert, "server_key": ca.server_key, "clients": ca.clients,
                    })),
                })),
                Mode::Human => {
                    outln!("initialized zone {} in {}", zone.info().zone_id, root.display());
                    outln!("signing public key (Ed25519): {public_key}");
                    outln!("first authority: {} (act as it with --as {0})", args.authority);
                    if let Some(ca) = &dev_ca {
                        outln!(
                            "development CA: {} (for trying `serve`; use your own PKI in production)",
                            ca.ca_cert.display()
                        );
                        outln!("  server certificate {} (localhost, 127.0.0.1, ::1)", ca.server_cert.display());
                        outln!("  {}'s client certificate in {}", args.authority, ca.clients.display());
                    }
                    Ok(())
                }
            }
        }
        ZoneCommand::Status => {
            let status = ctx.call(api::ZoneStatus {})?;
            let place = if ctx.is_remote() { None } else { Some(root.display().to_string()) };
            match mode {
                Mode::Json => {
                    let mut v = serde_json::to_value(&status)?;
                    if let (Some(o), Some(p)) = (v.as_object_mut(), &place) {
                        o.insert("zone".into(), json!(p));
                    }
                    output::json(&v)
                }
                Mode::Human => {
                    outln!("zone        {}", status.info.zone_id);
                    if let Some(p) = &place {
                        outln!("path        {p}");
                    }
                    outln!("created     {}", status.info.created_at);
                    outln!("public key  {}", status.public_key);
                    outln!("datasets    {} ({} rows in latest versions)", status.datasets, status.rows);
                    Ok(())
                }
            }
        }
        ZoneCommand::Verify => {
            let answer = ctx.call(api::ZoneVerify {})?;
            let (check, audit) = (&answer.check, &answer.audit);
            match mode {
                Mode::Json => output::json(&answer)?,
                Mode::Human => {
                    outln!("{} stored objects re-hashed", check.objects_checked);
                    for d in &check.damaged {
                        outln!("DAMAGED      {d}");
                    }
                    for u in &check.unreferenced {
                        outln!("unreferenced {u} (left by an interrupted publish; harmless)");
                    }
                    for s in &check.removed_staging {
                        outln!("removed      {} (staging left by a process that ended)", s.display());
                    }
                    for s in &check.leftover_staging {
                        outln!(
                            "staging      {} (held by a live process or written in the last minute; kept)",
                            s.display()
                        );
                    }
                    for p in &check.unreleased_products {
                        outln!("unreleased   {p} (written by a run that never recorded its release; never served)");
                    }
                    outln!(
                        "audit log intact: {} entries, {} signed checkpoints, root {}",
                        audit.entries,
                        audit.checkpoints,
                        audit.root
                    );
                    let access = &check.access_log;
                    match &access.broken {
                        Some(why) => outln!("TAMPERED     {why}"),
                        None if access.seals > 0 => outln!(
                            "access log intact: {} seals, the last over its first {} of {}",
                            access.seals,
                            bytes(access.sealed_bytes),
                            bytes(access.file_bytes)
                        ),
                        None => {}
                    }
                    let agreement = &check.log_agreement;
                    match &agreement.first_disagreement {
                        Some(why) => outln!("DISAGREES    {why}"),
                        None => outln!(
                            "log and catalog agree: {} logged changes, {} of them named as not applied (interrupted)",
                            agreement.write_ahead_entries,
                            agreement.not_applied
                        ),
                    }
                    if check.is_healthy() {
                        outln!("zone is intact");
                    }
                }
            }
            if let Some(why) = &check.access_log.broken {
                anyhow::bail!("the server's access log does not match its seal: {why}");
            }
            if let Some(why) = &check.log_agreement.first_disagreement {
                anyhow::bail!("the audit log and the catalog disagree: {why}");
            }
            if !check.is_healthy() {
                anyhow::bail!("{} stored object(s) are missing or damaged", check.damaged.len());
            }
            Ok(())
        }
    }
}

pub fn dataset(ctx: &Ctx<'_>, command: &DatasetCommand) -> anyhow::Result<()> {
    match command {
        DatasetCommand::Publish(args) => publish(ctx, args),
        DatasetCommand::List => list(ctx),
        DatasetCommand::Show(args) => show(ctx, args),
        DatasetCommand::Rows(args) => rows(ctx, args),
        DatasetCommand::Mock(args) => mock(ctx, args),
    }
}

/// Synthetic guest-view rows of a dataset, written to a Parquet file.
fn mock(ctx: &Ctx<'_>, args: &MockArgs) -> anyhow::Result<()> {
    let request = api::DatasetMock { dataset: args.dataset.clone(), rows: args.rows as u64, seed: args.seed };
    let answer = ctx.call_to_file(request, &args.out, |a| &a.output)?;
    match ctx.mode {
        Mode::Json => output::json(&json!({
            "dataset": answer.dataset, "version": answer.version, "rows": answer.rows, "out": args.out,
            "columns": answer.columns,
        })),
        Mode::Human => {
            outln!(
                "wrote {} synthetic rows of {}@{} as a job sees them to {}",
                answer.rows,
                answer.dataset,
                answer.version,
                args.out.display()
            );
            outln!("  columns: {}", answer.columns.join(", "));
            outln!("  no value in it comes from the data; the subject and hidden columns are absent");
            Ok(())
        }
    }
}

fn publish(ctx: &Ctx<'_>, args: &PublishArgs) -> anyhow::Result<()> {
    let request = api::DatasetPublish {
        policy: ctx.file::<api::DatasetPublish>(&args.policy)?,
        files: args.files.iter().map(|f| ctx.file::<api::DatasetPublish>(f)).collect::<anyhow::Result<_>>()?,
        name: args.name.clone(),
    };
    let outcome = ctx.call(request)?;
    match ctx.mode {
        Mode::Json => output::json(&outcome),
        Mode::Human => {
            let v = outcome.version();
            match outcome {
                PublishOutcome::Published(_) => outln!(
                    "published {}@{}: {} rows in {} file(s), {}; policy {}",
                    v.dataset,
                    v.version,
                    v.rows,
                    v.files.len(),
                    bytes(v.bytes),
                    short(&v.policy_sha256)
                ),
                PublishOutcome::Unchanged(_) => outln!(
                    "unchanged: {}@{} already has these files and this policy; nothing was published",
                    v.dataset,
                    v.version
                ),
            }
            Ok(())
        }
    }
}

fn list(ctx: &Ctx<'_>) -> anyhow::Result<()> {
    let datasets = ctx.call(api::DatasetList {})?;
    match ctx.mode {
        Mode::Json => output::json(&datasets),
        Mode::Human => {
            if datasets.is_empty() {
                outln!("no datasets published in this zone yet");
                return Ok(());
            }
            let mut t = output::table(["dataset", "provider", "version", "rows", "files", "size", "published"]);
            for d in &datasets {
                t.add_row(vec![
                    d.name.clone(),
                    d.provider.clone(),
                    format!("{} of {}", d.latest_version, d.versions),
                    d.rows.to_string(),
                    d.files.to_string(),
                    bytes(d.bytes),
                    d.published_at.clone(),
                ]);
            }
            outln!("{t}");
            Ok(())
        }
    }
}

/// The first raw rows, for the providing agency.
fn rows(ctx: &Ctx<'_>, args: &RowsArgs) -> anyhow::Result<()> {
    let answer = ctx.call(api::DatasetRows { dataset: args.dataset.clone(), limit: args.limit as u64 })?;
    match ctx.mode {
        Mode::Json => output::json(&json!({"dataset": answer.dataset, "version": answer.version, "rows": answer.rows})),
        Mode::Human => {
            outln!(
                "{}@{}: first {} rows (raw; shown to the providing agency only)",
                answer.dataset,
                answer.version,
                args.limit
            );
            let mut t = output::table(answer.columns.iter().map(String::as_str));
            for row in &answer.rows {
                t.add_row(
                    answer
                        .columns
                        .iter()
                        .map(|c| {
                            row.get(c).cloned().flatten().map_or_else(String::new, |v| output::inert(&v).into_owned())
                        })
                        .collect::<Vec<_>>(),
                );
            }
            outln!("{t}");
            Ok(())
        }
    }
}

fn show(ctx: &Ctx<'_>, args: &ShowArgs) -> anyhow::Result<()> {
    let view = ctx.call(api::DatasetShow { dataset: args.dataset.clone(), policy: args.policy })?;
    if ctx.mode == Mode::Json {
        return output::json(&view);
    }
    let version = &view.version;
    outln!("{}@{}  (provider {})", version.dataset, version.version, version.provider);
    if let Some(d) = &view.description {
        outln!("  {d}");
    }
    outln!("  published   {}", version.published_at);
    outln!("  rows        {} in {} file(s), {}", version.rows, version.files.len(), bytes(version.bytes));
    outln!("  policy      sha256:{}", version.policy_sha256);
    outln!("  domains     {}", view.domains.join(", "));
    let r = &view.release;
    outln!(
        "  release     k={} L={} rows_per_subject_in_group={} max_rows={} max_bytes={} modes={}",
        r.min_group_size,
        r.max_groups_per_subject,
        r.max_rows_per_subject_in_group,
        r.max_output_rows,
        r.max_output_bytes,
        r.modes.join("|")
    );
    for (i, f) in version.files.iter().enumerate() {
        // The raw hash for the providing agency and the inspector only; everyone sees the keyed commitment that
        // product manifests carry.
        let hash = if f.sha256.is_empty() { String::new() } else { format!("sha256:{}  ", f.sha256) };
        let commitment = f.commitment.as_deref().unwrap_or_default();
        outln!("  file {i}      {hash}commitment:{}  {} rows  {}", short(commitment), f.rows, bytes(f.bytes));
    }
    let mut t = output::table(["column", "type", "class", "rule", "guest sees", "nulls", "format check"]);
    for c in &view.columns {
        let check = match (&c.format, c.format_valid, c.format_invalid) {
            (Some(f), Some(valid), Some(invalid)) => format!("{f}: {valid} valid, {invalid} invalid"),
            (Some(f), _, _) => f.clone(),
            _ => String::new(),
        };
        let rule = c.rule.strip_prefix(c.class.as_str()).unwrap_or(&c.rule).trim().to_owned();
        t.add_row(vec![
            c.name.clone(),
            format!("{}{}", c.data_type, if c.nullable { "?" } else { "" }),
            c.class.clone(),
            rule,
            c.guest_type.clone().unwrap_or_else(|| "-".into()),
            c.nulls.map(|n| n.to_string()).unwrap_or_default(),
            check,
        ]);
    }
    outln!("{t}");
    outln!(
        "subject column `{}` stays with the host; hidden columns are never read.",
        view.subject_column.as_deref().unwrap_or("?")
    );
    if let Some(text) = &view.policy_text {
        outln!("\n{text}");
    }
    Ok(())
}

pub fn audit(ctx: &Ctx<'_>, command: &AuditCommand) -> anyhow::Result<()> {
    let mode = ctx.mode;
    if let AuditCommand::Verify(args) = command
        && let Some(path) = &args.bundle
    {
        return verify_bundle(path, args.key.as_deref(), mode);
    }
    match command {
        AuditCommand::Compact { before } => {
            let done = ctx.call(api::AuditCompact { before: before.clone() })?;
            if mode == Mode::Json {
                output::json(&done)?;
            }
            Ok(())
        }
        AuditCommand::Export(args) => {
            let answer = ctx.call_to_file(api::AuditExport { entry: args.entry }, &args.out, |a| &a.output)?;
            let report = &answer.report;
            match mode {
                Mode::Json => output::json(&json!({"out": args.out, "report": report, "bytes": answer.bytes})),
                Mode::Human => {
                    outln!(
                        "wrote {} ({}): {} entries, {} checkpoints, signed size {} root {}",
                        args.out.display(),
                        bytes(answer.bytes),
                        report.entries,
                        report.checkpoints,
                        report.size,
                        report.root
                    );
                    outln!(
                        "check it anywhere with: cleanroom audit verify --bundle {} --key {}",
                        args.out.display(),
                        report.public_key
                    );
                    Ok(())
                }
            }
        }
        AuditCommand::Log(args) => {
            let entries = ctx.call(api::AuditLog {
                action: args.action.clone(),
                dataset: args.dataset.clone(),
                operator: args.operator.clone(),
                app: args.app,
                since: args.since.clone(),
            })?;
            match mode {
                Mode::Json => output::json(&entries)?,
                Mode::Human => {
                    let mut t = output::table(["seq", "time", "actor", "role", "action", "objects", "outcome"]);
                    for e in &entries {
                        let outcome = match (&e.outcome, &e.reason) {
                            (zone_audit::Outcome::Ok, _) => "ok".to_owned(),
                            (zone_audit::Outcome::Refused, Some(r)) => format!("refused ({r})"),
                            (zone_audit::Outcome::Refused, None) => "refused".to_owned(),
                        };
                        t.add_row(vec![
                            e.seq.to_string(),
                            e.time.clone(),
                            match &e.via {
                                // The certificate's fingerprint, short: the JSON has it whole.
                                Some(via) => format!(
                                    "{} ({})",
                                    e.actor,
                                    via.split(' ')
                                        .next_back()
                                        .map_or(via.as_str(), |f| short(f.trim_start_matches("sha256:")))
                                ),
                                None => e.actor.clone(),
                            },
                            e.role.clone(),
                            e.action.clone(),
                            e.objects.join(" "),
                            outcome,
                        ]);
                    }
                    outln!("{t}");
                }
            }
            Ok(())
        }
        AuditCommand::Verify(_) => {
            let report = ctx.call(api::AuditVerify {})?;
            match mode {
                Mode::Json => output::json(&report)?,
                Mode::Human => {
                    outln!(
                        "audit log intact: {} entries, {} signed checkpoints, root {}",
                        report.entries,
                        report.checkpoints,
                        report.root
                    );
                    if report.unsigned_tail > 0 {
                        outln!(
                            "{} entries after the last checkpoint (a crash before signing); the next action signs them",
                            report.unsigned_tail
                        );
                    }
                }
            }
            Ok(())
        }
    }
}

/// `audit verify --bundle`: offline, no zone needed.
fn verify_bundle(path: &std::path::Path, key: Option<&str>, mode: Mode) -> anyhow::Result<()> {
    let text = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let bundle: zone_audit::Bundle = serde_json::from_slice(&text)
        .map_err(|e| anyhow::anyhow!("{}:{}:{}: not an evidence bundle: {e}", path.display(), e.line(), e.column()))?;
    let trusted = match key {
        Some(k) => {
            Some(hex::decode(k).ok().filter(|k| k.len() == 32).context("--key is not a hex Ed25519 public key")?)
        }
        None => None,
    };
    let report = zone_audit::verify_bundle(&bundle, trusted.as_deref())
        .with_context(|| format!("{} does not verify", path.display()))?;
    match mode {
        Mode::Json => output::json(&json!({"bundle": path, "intact": true, "report": report})),
        Mode::Human => {
            match report.kind.as_str() {
                "receipt" => outln!(
                    "receipt intact: entry {} is in the signed log of {} entries (root {})",
                    bundle.first_index,
                    report.size,
                    report.root
                ),
                _ => outln!(
                    "bundle intact: {} entries, {} signed checkpoints, {} consistency proofs, root {}",
                    report.entries,
                    report.checkpoints,
                    report.consistency_proofs,
                    report.root
                ),
            }
            outln!(
                "signed by {}{}",
                report.public_key,
                if trusted.is_some() {
                    " (the trusted key)"
                } else {
                    " (not checked against a trusted key: pass --key)"
                }
            );
            Ok(())
        }
    }
}
