//! The `zone` and `dataset` commands.

use std::path::Path;

use anyhow::Context as _;
use policies::ColumnRule;
use serde::Serialize;
use serde_json::json;
use zone_store::{DatasetVersion, PublishOutcome, PublishRequest, Zone};

use crate::args::{AuditCommand, DatasetCommand, PublishArgs, ShowArgs, ZoneCommand};
use crate::output::{self, Mode, bytes, short};
use crate::progress::Bars;

pub fn zone(root: &Path, command: &ZoneCommand, mode: Mode) -> anyhow::Result<()> {
    match command {
        ZoneCommand::Init => {
            let zone = Zone::init(root)?;
            let keys = zone.keys()?;
            match mode {
                Mode::Json => output::json(&json!({
                    "zone": root,
                    "zone_id": zone.info().zone_id,
                    "created_at": zone.info().created_at,
                    "public_key": keys.public_key_hex(),
                })),
                Mode::Human => {
                    println!("initialized zone {} in {}", zone.info().zone_id, root.display());
                    println!("signing public key (Ed25519): {}", keys.public_key_hex());
                    Ok(())
                }
            }
        }
        ZoneCommand::Status => {
            let zone = Zone::open(root)?;
            let datasets = zone.datasets()?;
            let keys = zone.keys()?;
            match mode {
                Mode::Json => output::json(&json!({
                    "zone": root,
                    "info": zone.info(),
                    "public_key": keys.public_key_hex(),
                    "datasets": datasets.len(),
                    "rows": datasets.iter().map(|d| d.rows).sum::<u64>(),
                })),
                Mode::Human => {
                    println!("zone        {}", zone.info().zone_id);
                    println!("path        {}", root.display());
                    println!("created     {}", zone.info().created_at);
                    println!("public key  {}", keys.public_key_hex());
                    println!(
                        "datasets    {} ({} rows in latest versions)",
                        datasets.len(),
                        datasets.iter().map(|d| d.rows).sum::<u64>()
                    );
                    Ok(())
                }
            }
        }
        ZoneCommand::Verify => {
            let zone = Zone::open(root)?;
            let check = zone.verify(&mut Bars::default())?;
            let audit = zone.verify_audit()?;
            match mode {
                Mode::Json => {
                    let mut v = serde_json::to_value(&check)?;
                    if let Some(o) = v.as_object_mut() {
                        o.insert(
                            "audit".into(),
                            serde_json::json!({"entries": audit.entries, "checkpoints": audit.checkpoints, "root": audit.root}),
                        );
                    }
                    output::json(&v)?
                }
                Mode::Human => {
                    println!("{} stored objects re-hashed", check.objects_checked);
                    for d in &check.damaged {
                        println!("DAMAGED      {d}");
                    }
                    for u in &check.unreferenced {
                        println!("unreferenced {u} (left by an interrupted publish; harmless)");
                    }
                    for s in &check.leftover_staging {
                        println!("staging      {} (left by an interrupted process; harmless)", s.display());
                    }
                    println!(
                        "audit log intact: {} entries, {} signed checkpoints, root {}",
                        audit.entries, audit.checkpoints, audit.root
                    );
                    if check.is_healthy() {
                        println!("zone is intact");
                    }
                }
            }
            if !check.is_healthy() {
                anyhow::bail!("{} stored object(s) are missing or damaged", check.damaged.len());
            }
            Ok(())
        }
    }
}

pub fn dataset(root: &Path, command: &DatasetCommand, mode: Mode) -> anyhow::Result<()> {
    match command {
        DatasetCommand::Publish(args) => publish(root, args, mode),
        DatasetCommand::List => list(root, mode),
        DatasetCommand::Show(args) => show(root, args, mode),
    }
}

pub fn publish(root: &Path, args: &PublishArgs, mode: Mode) -> anyhow::Result<()> {
    let mut zone = Zone::open(root)?;
    let request = PublishRequest { files: args.files.clone(), policy: args.policy.clone(), name: args.name.clone() };
    let outcome = zone.publish(&request, &mut Bars::default())?;
    match mode {
        Mode::Json => output::json(&outcome),
        Mode::Human => {
            let v = outcome.version();
            match outcome {
                PublishOutcome::Published(_) => println!(
                    "published {}@{}: {} rows in {} file(s), {}; policy {}",
                    v.dataset,
                    v.version,
                    v.rows,
                    v.files.len(),
                    bytes(v.bytes),
                    short(&v.policy_sha256)
                ),
                PublishOutcome::Unchanged(_) => println!(
                    "unchanged: {}@{} already has these files and this policy; nothing was published",
                    v.dataset, v.version
                ),
            }
            Ok(())
        }
    }
}

pub fn list(root: &Path, mode: Mode) -> anyhow::Result<()> {
    let zone = Zone::open(root)?;
    let datasets = zone.datasets()?;
    match mode {
        Mode::Json => output::json(&datasets),
        Mode::Human => {
            if datasets.is_empty() {
                println!("no datasets published in this zone yet");
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
            println!("{t}");
            Ok(())
        }
    }
}

/// One column as `dataset show` reports it.
#[derive(Debug, Serialize)]
struct ColumnView {
    name: String,
    data_type: String,
    nullable: bool,
    class: &'static str,
    rule: String,
    format: Option<String>,
    guest_type: Option<String>,
    nulls: Option<u64>,
    format_valid: Option<u64>,
    format_invalid: Option<u64>,
}

#[derive(Debug, Serialize)]
struct ShowView<'a> {
    #[serde(flatten)]
    version: &'a DatasetVersion,
    domains: Vec<&'static str>,
    release: serde_json::Value,
    columns: Vec<ColumnView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    policy_text: Option<String>,
}

pub fn show(root: &Path, args: &ShowArgs, mode: Mode) -> anyhow::Result<()> {
    let zone = Zone::open(root)?;
    let version = zone.dataset(&args.dataset)?;
    let policy = zone.policy(&version).context("reading the version's policy")?;
    let columns: Vec<ColumnView> = policy
        .columns()
        .iter()
        .map(|c| {
            let stats = version.stats.iter().find(|s| s.column == c.name);
            let check = stats.and_then(|s| s.format.as_ref());
            ColumnView {
                name: c.name.clone(),
                data_type: c.data_type.to_string(),
                nullable: c.nullable,
                class: c.rule.class_name(),
                rule: c.rule.to_string(),
                format: c.format.map(|f| f.to_string()),
                guest_type: c.guest_field().map(|f| f.data_type().to_string()),
                nulls: stats.map(|s| s.nulls),
                format_valid: check.map(|f| f.valid),
                format_invalid: check.map(|f| f.invalid),
            }
        })
        .collect();
    let r = policy.release();
    let release = json!({
        "min_group_size": r.min_group_size,
        "max_groups_per_subject": r.max_groups_per_subject,
        "max_output_rows": r.max_output_rows,
        "max_output_bytes": r.max_output_bytes,
        "max_artifact_bytes": r.max_artifact_bytes,
        "modes": r.modes.iter().map(|m| m.name()).collect::<Vec<_>>(),
    });
    let policy_text = if args.policy { Some(zone.policy_text(&version)?) } else { None };
    let view = ShowView {
        version: &version,
        domains: policy.dataset().domains.iter().map(|d| d.name()).collect(),
        release,
        columns,
        policy_text,
    };
    if mode == Mode::Json {
        return output::json(&view);
    }
    println!("{}@{}  (provider {})", version.dataset, version.version, version.provider);
    if let Some(d) = &policy.dataset().description {
        println!("  {d}");
    }
    println!("  published   {}", version.published_at);
    println!("  rows        {} in {} file(s), {}", version.rows, version.files.len(), bytes(version.bytes));
    println!("  policy      sha256:{}", version.policy_sha256);
    println!("  domains     {}", view.domains.join(", "));
    println!(
        "  release     k={} L={} max_rows={} max_bytes={} modes={}",
        r.min_group_size,
        r.max_groups_per_subject,
        r.max_output_rows,
        r.max_output_bytes,
        r.modes.iter().map(|m| m.name()).collect::<Vec<_>>().join("|")
    );
    for (i, f) in version.files.iter().enumerate() {
        println!("  file {i}      sha256:{}  {} rows  {}", f.sha256, f.rows, bytes(f.bytes));
    }
    let mut t = output::table(["column", "type", "class", "rule", "guest sees", "nulls", "format check"]);
    for c in &view.columns {
        let check = match (&c.format, c.format_valid, c.format_invalid) {
            (Some(f), Some(valid), Some(invalid)) => format!("{f}: {valid} valid, {invalid} invalid"),
            (Some(f), _, _) => f.clone(),
            _ => String::new(),
        };
        let rule = c.rule.strip_prefix(c.class).unwrap_or(&c.rule).trim().to_owned();
        t.add_row(vec![
            c.name.clone(),
            format!("{}{}", c.data_type, if c.nullable { "?" } else { "" }),
            c.class.to_owned(),
            rule,
            c.guest_type.clone().unwrap_or_else(|| "-".into()),
            c.nulls.map(|n| n.to_string()).unwrap_or_default(),
            check,
        ]);
    }
    println!("{t}");
    let subject = policy.columns().iter().find(|c| c.rule == ColumnRule::Subject).map(|c| c.name.as_str());
    println!("subject column `{}` stays with the host; hidden columns are never read.", subject.unwrap_or("?"));
    if let Some(text) = &view.policy_text {
        println!("\n{text}");
    }
    Ok(())
}

pub fn audit(root: &Path, command: &AuditCommand, mode: Mode) -> anyhow::Result<()> {
    let zone = Zone::open(root)?;
    match command {
        AuditCommand::Log(args) => {
            let entries: Vec<_> = zone
                .audit_entries()?
                .into_iter()
                .filter(|e| args.action.as_ref().is_none_or(|a| &e.action == a))
                .filter(|e| {
                    args.dataset.as_ref().is_none_or(|d| {
                        let prefix = format!("dataset:{d}");
                        e.objects.iter().any(|o| o == &prefix || o.starts_with(&format!("{prefix}@")))
                    })
                })
                .filter(|e| args.since.as_ref().is_none_or(|t| e.time.as_str() >= t.as_str()))
                .collect();
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
                            e.actor.clone(),
                            e.role.clone(),
                            e.action.clone(),
                            e.objects.join(" "),
                            outcome,
                        ]);
                    }
                    println!("{t}");
                }
            }
            Ok(())
        }
        AuditCommand::Verify => {
            let report = zone.verify_audit()?;
            match mode {
                Mode::Json => output::json(&serde_json::json!({
                    "entries": report.entries,
                    "checkpoints": report.checkpoints,
                    "root": report.root,
                    "unsigned_tail": report.unsigned_tail,
                    "intact": true,
                }))?,
                Mode::Human => {
                    println!(
                        "audit log intact: {} entries, {} signed checkpoints, root {}",
                        report.entries, report.checkpoints, report.root
                    );
                    if report.unsigned_tail > 0 {
                        println!(
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
