//! `complaint file|resolve|list` (Art. 25), `incident open|close|list` (Art. 24) and `report usage` (Art. 11, 16,
//! 21) as commands. A complaint's
//! subject value goes in once, on the command line of the agency filing it, and is kept only as a keyed token.

use anyhow::Context as _;
use zone_store::{Complaint, Incident, Resolution};

use crate::args::{ComplaintCommand, IncidentCommand, ReportCommand};
use crate::context::Ctx;
use crate::output::{self, Mode, short};

pub fn complaint(ctx: &Ctx<'_>, command: &ComplaintCommand) -> anyhow::Result<()> {
    let (mut zone, who) = ctx.open_as()?;
    let complaint = match command {
        ComplaintCommand::File(args) => zone.file_complaint(&who, &args.dataset, &args.subject, &args.evidence)?,
        ComplaintCommand::Resolve(args) => {
            let resolution = if args.withdraw {
                Resolution::Withdraw { keep_approvals: args.keep_approvals }
            } else if args.suspend {
                Resolution::Suspend
            } else if args.reprocess {
                Resolution::Reprocess
            } else {
                Resolution::Dismiss
            };
            zone.resolve_complaint(&who, args.id, resolution, &args.reason, args.correct_by.as_deref())?
        }
        ComplaintCommand::List => {
            let list = zone.complaints(&who)?;
            return match ctx.mode {
                Mode::Json => output::json(&list),
                Mode::Human => {
                    let mut t = output::table(["complaint", "dataset", "subject token", "filed", "state", "answer"]);
                    for c in &list {
                        t.add_row(vec![
                            c.id.to_string(),
                            c.dataset.clone(),
                            short(&c.subject_token).to_owned(),
                            format!("{} by {}", c.filed_at, c.filed_by),
                            c.state.clone(),
                            answer(c),
                        ]);
                    }
                    outln!("{t}");
                    Ok(())
                }
            };
        }
    };
    match ctx.mode {
        Mode::Json => output::json(&complaint),
        Mode::Human => {
            outln!(
                "complaint {} on {} (subject token {}): {}",
                complaint.id,
                complaint.dataset,
                short(&complaint.subject_token),
                if complaint.state == "open" { "open".to_owned() } else { answer(&complaint) }
            );
            Ok(())
        }
    }
}

fn answer(c: &Complaint) -> String {
    let Some(resolution) = &c.resolution else { return String::new() };
    let mut text = resolution.clone();
    if let (Some(v), Some(n)) = (c.new_version, c.rows_withdrawn) {
        text.push_str(&format!(": {n} row(s) out in {}@{v}, earlier versions closed to runs", c.dataset));
    }
    if !c.apps_moved.is_empty() {
        let apps: Vec<String> = c.apps_moved.iter().map(u64::to_string).collect();
        text.push_str(&format!("; applications {} moved with their approvals", apps.join(", ")));
    }
    if !c.grants_suspended.is_empty() {
        let grants: Vec<String> = c.grants_suspended.iter().map(u64::to_string).collect();
        text.push_str(&format!("; grants {} suspended", grants.join(", ")));
    }
    if let Some(reason) = &c.reason {
        text.push_str(&format!(" ({reason})"));
    }
    text
}

pub fn incident(ctx: &Ctx<'_>, command: &IncidentCommand) -> anyhow::Result<()> {
    let (zone, who) = ctx.open_as()?;
    let incident = match command {
        IncidentCommand::Open { operator, reason, correct_by } => {
            let correct_by = match correct_by {
                Some(text) => chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
                    .with_context(|| format!("--correct-by `{text}` is not a date (YYYY-MM-DD)"))?,
                None => zone_store::today() + chrono::Duration::days(30),
            };
            zone.open_incident(&who, operator, reason, correct_by)?
        }
        IncidentCommand::Close { id, reason } => zone.close_incident(&who, *id, reason)?,
        IncidentCommand::List => {
            let list = zone.incidents(&who)?;
            return match ctx.mode {
                Mode::Json => output::json(&list),
                Mode::Human => {
                    let mut t = output::table(["incident", "operator", "opened", "state", "grants", "evidence"]);
                    for i in &list {
                        let grants: Vec<String> = i.grants_suspended.iter().map(u64::to_string).collect();
                        t.add_row(vec![
                            i.id.to_string(),
                            i.operator.clone(),
                            format!("{} by {}", i.opened_at, i.opened_by),
                            i.state.clone(),
                            grants.join(", "),
                            i.evidence.clone(),
                        ]);
                    }
                    outln!("{t}");
                    Ok(())
                }
            };
        }
    };
    match ctx.mode {
        Mode::Json => output::json(&incident),
        Mode::Human => {
            print_incident(&zone, &incident);
            Ok(())
        }
    }
}

fn print_incident(zone: &zone_store::Zone, i: &Incident) {
    outln!("incident {} against {}: {}", i.id, i.operator, i.state);
    let grants: Vec<String> = i.grants_suspended.iter().map(u64::to_string).collect();
    outln!("  grants suspended  {}", if grants.is_empty() { "none active".to_owned() } else { grants.join(", ") });
    outln!(
        "  evidence          {} (summary.json sha256 {})",
        zone.incident_dir(i.id).display(),
        short(&i.evidence_sha256)
    );
    outln!(
        "  check the log     cleanroom audit verify --bundle {}/audit-bundle.json",
        zone.incident_dir(i.id).display()
    );
}

pub fn report(ctx: &Ctx<'_>, command: &ReportCommand) -> anyhow::Result<()> {
    let ReportCommand::Usage { from, to, csv } = command;
    let day = |text: &Option<String>, flag: &str| -> anyhow::Result<Option<chrono::NaiveDate>> {
        text.as_deref()
            .map(|t| {
                chrono::NaiveDate::parse_from_str(t, "%Y-%m-%d")
                    .with_context(|| format!("{flag} `{t}` is not a date (YYYY-MM-DD)"))
            })
            .transpose()
    };
    let (from, to) = (day(from, "--from")?, day(to, "--to")?);
    let (zone, who) = ctx.open_as()?;
    let report = zone.usage_report(&who, from, to)?;
    let operators: Vec<Vec<String>> = report
        .operators
        .iter()
        .map(|o| {
            vec![
                o.operator.clone(),
                o.runs.to_string(),
                o.runs_released.to_string(),
                o.runs_failed.to_string(),
                joined(&o.refusals),
                joined(&o.rows_read),
                o.rows_released.to_string(),
                o.artifacts_released.to_string(),
            ]
        })
        .collect();
    let datasets: Vec<Vec<String>> = report
        .datasets
        .iter()
        .map(|d| {
            vec![
                d.dataset.clone(),
                d.provider.clone(),
                d.applications.to_string(),
                d.runs.to_string(),
                d.operators.join(" "),
                d.rows_read.to_string(),
                d.domains.join(" "),
            ]
        })
        .collect();
    const OPERATOR_COLUMNS: [&str; 8] =
        ["operator", "runs", "released", "failed", "refusals", "rows read", "rows released", "artifacts released"];
    const DATASET_COLUMNS: [&str; 7] =
        ["dataset", "provider", "applications", "runs", "operators", "rows read", "domains"];
    if let Some(dir) = csv {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        write_csv(&dir.join("operators.csv"), &OPERATOR_COLUMNS, &operators)?;
        write_csv(&dir.join("datasets.csv"), &DATASET_COLUMNS, &datasets)?;
    }
    match ctx.mode {
        Mode::Json => output::json(&report),
        Mode::Human => {
            let period = format!(
                "{} to {}",
                report.from.as_deref().unwrap_or("the start"),
                report.to.as_deref().unwrap_or("today")
            );
            outln!("usage from {period} ({} audit entries read)", report.entries_read);
            if !report.operators.is_empty() {
                let mut t = output::table(OPERATOR_COLUMNS);
                for row in operators {
                    t.add_row(row);
                }
                outln!("{t}");
            }
            let mut t = output::table(DATASET_COLUMNS);
            for row in datasets {
                t.add_row(row);
            }
            outln!("{t}");
            if !report.log_and_records_agree {
                outln!("warning: the run records and the audit log's job.start entries do not agree in this period");
            }
            Ok(())
        }
    }
}

/// `a=1; b=2`.
fn joined(map: &std::collections::BTreeMap<String, u64>) -> String {
    map.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ")
}

/// RFC 4180: fields with a comma, quote or line break are quoted, quotes doubled.
fn csv_field(field: &str) -> String {
    if field.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_owned()
    }
}

fn write_csv(path: &std::path::Path, header: &[&str], rows: &[Vec<String>]) -> anyhow::Result<()> {
    let mut text = header.iter().map(|h| csv_field(h)).collect::<Vec<_>>().join(",");
    text.push_str("\r\n");
    for row in rows {
        text.push_str(&row.iter().map(|f| csv_field(f)).collect::<Vec<_>>().join(","));
        text.push_str("\r\n");
    }
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::csv_field;

    #[test]
    fn csv_fields_are_quoted_when_they_must_be() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("two\nlines"), "\"two\nlines\"");
    }
}
