//! The `zone`, `dataset` and `audit` commands.

use anyhow::Context as _;
use policies::ColumnRule;
use serde::Serialize;
use serde_json::json;
use zone_store::{Action, DatasetVersion, Principal, PublishOutcome, PublishRequest, Zone};

use crate::args::{AuditCommand, DatasetCommand, MockArgs, PublishArgs, RowsArgs, ShowArgs, ZoneCommand};
use crate::context::Ctx;
use crate::output::{self, Mode, bytes, short};
use crate::progress::Bars;

pub fn zone(ctx: &Ctx<'_>, command: &ZoneCommand) -> anyhow::Result<()> {
    let mode = ctx.mode;
    let root = &ctx.root()?;
    match command {
        ZoneCommand::Init(args) => {
            if args.dev_ca && args.org.is_none() {
                anyhow::bail!(
                    "--dev-ca needs --org: client certificates carry their principal's organisation, and the \
                     development CA is registered for the organisations it issues for"
                );
            }
            let zone = Zone::init(root, &args.authority, args.org.as_deref())?;
            let keys = zone.keys()?;
            let dev_ca = match (args.dev_ca, args.org.as_deref()) {
                (true, Some(org)) => {
                    let (ca, issued) = crate::certs::create_dev_ca(root, &zone.info().zone_id, &args.authority, org)?;
                    let authority = zone.actor(&args.authority)?;
                    zone.add_trust_anchor(&authority, &crate::certs::read_anchor(org, &ca.ca_cert)?)?;
                    zone.record_issued_certificate(&authority, &issued.sha256, &args.authority, &issued.not_after)?;
                    Some(ca)
                }
                _ => None,
            };
            match mode {
                Mode::Json => output::json(&json!({
                    "zone": root,
                    "zone_id": zone.info().zone_id,
                    "created_at": zone.info().created_at,
                    "public_key": keys.public_key_hex(),
                    "authority": args.authority,
                    "dev_ca": dev_ca.as_ref().map(|ca| json!({
                        "ca": ca.ca_cert, "server_cert": ca.server_cert, "server_key": ca.server_key, "clients": ca.clients,
                    })),
                })),
                Mode::Human => {
                    outln!("initialized zone {} in {}", zone.info().zone_id, root.display());
                    outln!("signing public key (Ed25519): {}", keys.public_key_hex());
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
            let (zone, who) = ctx.open_as()?;
            zone.authorize(&who, &Action::ZoneRead, &[format!("zone:{}", zone.info().zone_id)])?;
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
                    outln!("zone        {}", zone.info().zone_id);
                    outln!("path        {}", root.display());
                    outln!("created     {}", zone.info().created_at);
                    outln!("public key  {}", keys.public_key_hex());
                    outln!(
                        "datasets    {} ({} rows in latest versions)",
                        datasets.len(),
                        datasets.iter().map(|d| d.rows).sum::<u64>()
                    );
                    Ok(())
                }
            }
        }
        ZoneCommand::Verify => {
            let (zone, who) = ctx.open_as()?;
            let check = zone.verify(&who, &mut Bars::default())?;
            let audit = zone.verify_audit(&who)?;
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
                    outln!("{} stored objects re-hashed", check.objects_checked);
                    for d in &check.damaged {
                        outln!("DAMAGED      {d}");
                    }
                    for u in &check.unreferenced {
                        outln!("unreferenced {u} (left by an interrupted publish; harmless)");
                    }
                    for s in &check.leftover_staging {
                        outln!("staging      {} (left by an interrupted process; harmless)", s.display());
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
                    if check.is_healthy() {
                        outln!("zone is intact");
                    }
                }
            }
            if let Some(why) = &check.access_log.broken {
                anyhow::bail!("the server's access log does not match its seal: {why}");
            }
            if !check.is_healthy() {
                anyhow::bail!("{} stored object(s) are missing or damaged", check.damaged.len());
            }
            Ok(())
        }
    }
}

pub fn dataset(ctx: &Ctx<'_>, command: &DatasetCommand) -> anyhow::Result<()> {
    let (mut zone, who) = ctx.open_as()?;
    match command {
        DatasetCommand::Publish(args) => publish(&mut zone, &who, args, ctx.mode),
        DatasetCommand::List => list(&zone, &who, ctx.mode),
        DatasetCommand::Show(args) => show(&zone, &who, args, ctx.mode),
        DatasetCommand::Rows(args) => rows(&zone, &who, args, ctx.mode),
        DatasetCommand::Mock(args) => mock(&zone, &who, args, ctx.mode),
    }
}

/// Synthetic guest-view rows of a dataset, written to a Parquet file.
pub fn mock(zone: &Zone, who: &Principal, args: &MockArgs, mode: Mode) -> anyhow::Result<()> {
    const MAX_ROWS: usize = 10_000_000;
    zone.authorize(who, &Action::DatasetRead, &[format!("dataset:{}", args.dataset)])?;
    anyhow::ensure!(args.rows <= MAX_ROWS, "--rows {} is more than {MAX_ROWS}", args.rows);
    let version = zone.dataset(&args.dataset)?;
    let policy = zone.policy(&version)?;
    let tmp = args.out.with_extension("parquet.partial");
    let file = std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let write = || -> anyhow::Result<()> {
        let mut writer = parquet::arrow::ArrowWriter::try_new(file, policy.guest_schema(), None)?;
        let mut done = 0;
        let mut chunk = 0u64;
        while done < args.rows || (args.rows == 0 && chunk == 0) {
            let n = (args.rows - done).min(65_536);
            let seed = args.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(chunk);
            writer.write(&datasets_fixtures::mock::mock_guest_batch(&policy, n, seed)?)?;
            done += n;
            chunk += 1;
        }
        writer.close()?;
        Ok(())
    };
    if let Err(e) = write() {
        let _ = std::fs::remove_file(&tmp);
        return Err(e.context(format!("writing {}", args.out.display())));
    }
    std::fs::rename(&tmp, &args.out).with_context(|| format!("writing {}", args.out.display()))?;
    let columns: Vec<String> =
        policy.guest_schema().fields().iter().map(|f| format!("{} {}", f.name(), f.data_type())).collect();
    match mode {
        Mode::Json => output::json(&json!({
            "dataset": version.dataset, "version": version.version, "rows": args.rows, "out": args.out, "columns": columns,
        })),
        Mode::Human => {
            outln!(
                "wrote {} synthetic rows of {}@{} as a job sees them to {}",
                args.rows,
                version.dataset,
                version.version,
                args.out.display()
            );
            outln!("  columns: {}", columns.join(", "));
            outln!("  no value in it comes from the data; the subject and hidden columns are absent");
            Ok(())
        }
    }
}

pub fn publish(zone: &mut Zone, who: &Principal, args: &PublishArgs, mode: Mode) -> anyhow::Result<()> {
    let request = PublishRequest { files: args.files.clone(), policy: args.policy.clone(), name: args.name.clone() };
    let outcome = zone.publish(who, &request, &mut Bars::default())?;
    match mode {
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

pub fn list(zone: &Zone, who: &Principal, mode: Mode) -> anyhow::Result<()> {
    zone.authorize(who, &Action::DatasetRead, &[])?;
    let datasets = zone.datasets()?;
    match mode {
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

/// The first raw rows, for the providing agency.
pub fn rows(zone: &Zone, who: &Principal, args: &RowsArgs, mode: Mode) -> anyhow::Result<()> {
    let (version, batches) = zone.dataset_rows(who, &args.dataset, args.limit)?;
    match mode {
        Mode::Json => {
            use arrow_array::Array as _;
            let options = arrow_cast::display::FormatOptions::default();
            let mut rows = Vec::new();
            for b in &batches {
                let formatters = b
                    .columns()
                    .iter()
                    .map(|c| arrow_cast::display::ArrayFormatter::try_new(c.as_ref(), &options))
                    .collect::<Result<Vec<_>, _>>()?;
                for i in 0..b.num_rows() {
                    let mut row = serde_json::Map::new();
                    for ((field, column), f) in b.schema().fields().iter().zip(b.columns()).zip(&formatters) {
                        let value =
                            if column.is_null(i) { serde_json::Value::Null } else { json!(f.value(i).to_string()) };
                        row.insert(field.name().clone(), value);
                    }
                    rows.push(serde_json::Value::Object(row));
                }
            }
            output::json(&json!({"dataset": version.dataset, "version": version.version, "rows": rows}))
        }
        Mode::Human => {
            outln!(
                "{}@{}: first {} rows (raw; shown to the providing agency only)",
                version.dataset,
                version.version,
                args.limit
            );
            outln!("{}", arrow_cast::pretty::pretty_format_batches(&batches)?);
            Ok(())
        }
    }
}

pub fn show(zone: &Zone, who: &Principal, args: &ShowArgs, mode: Mode) -> anyhow::Result<()> {
    let version = zone.dataset_view(who, &args.dataset)?;
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
        "max_rows_per_subject_in_group": r.max_rows_per_subject_in_group,
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
    outln!("{}@{}  (provider {})", version.dataset, version.version, version.provider);
    if let Some(d) = &policy.dataset().description {
        outln!("  {d}");
    }
    outln!("  published   {}", version.published_at);
    outln!("  rows        {} in {} file(s), {}", version.rows, version.files.len(), bytes(version.bytes));
    outln!("  policy      sha256:{}", version.policy_sha256);
    outln!("  domains     {}", view.domains.join(", "));
    outln!(
        "  release     k={} L={} rows_per_subject_in_group={} max_rows={} max_bytes={} modes={}",
        r.min_group_size,
        r.max_groups_per_subject,
        r.max_rows_per_subject_in_group,
        r.max_output_rows,
        r.max_output_bytes,
        r.modes.iter().map(|m| m.name()).collect::<Vec<_>>().join("|")
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
    outln!("{t}");
    let subject = policy.columns().iter().find(|c| c.rule == ColumnRule::Subject).map(|c| c.name.as_str());
    outln!("subject column `{}` stays with the host; hidden columns are never read.", subject.unwrap_or("?"));
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
    let (zone, who) = ctx.open_as()?;
    match command {
        AuditCommand::Compact { before } => {
            let before = chrono::NaiveDate::parse_from_str(before, "%Y-%m-%d")
                .with_context(|| format!("--before `{before}` is not a date (YYYY-MM-DD)"))?;
            zone.compact_audit(&who, before)?;
            Ok(())
        }
        AuditCommand::Export(args) => {
            let bundle = zone.audit_bundle(&who, args.entry)?;
            let text = serde_json::to_vec(&bundle)?;
            let tmp = args.out.with_extension("partial");
            std::fs::write(&tmp, &text).with_context(|| format!("writing {}", tmp.display()))?;
            std::fs::rename(&tmp, &args.out).with_context(|| format!("writing {}", args.out.display()))?;
            let report = zone_audit::verify_bundle(&bundle, None)?;
            match mode {
                Mode::Json => output::json(&json!({"out": args.out, "report": report, "bytes": text.len()})),
                Mode::Human => {
                    outln!(
                        "wrote {} ({}): {} entries, {} checkpoints, signed size {} root {}",
                        args.out.display(),
                        bytes(text.len() as u64),
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
            let operator = args.operator.as_ref().map(|o| format!("principal:{o}"));
            let app = args.app.map(|a| format!("app:{a}"));
            let entries: Vec<_> = zone
                .audit_entries(&who)?
                .into_iter()
                .filter(|e| {
                    operator.as_ref().is_none_or(|o| {
                        args.operator.as_deref() == Some(e.actor.as_str()) || e.objects.iter().any(|x| x == o)
                    })
                })
                .filter(|e| app.as_ref().is_none_or(|a| e.objects.iter().any(|x| x == a)))
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
            let report = zone.verify_audit(&who)?;
            match mode {
                Mode::Json => output::json(&serde_json::json!({
                    "entries": report.entries,
                    "checkpoints": report.checkpoints,
                    "root": report.root,
                    "unsigned_tail": report.unsigned_tail,
                    "intact": true,
                }))?,
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
