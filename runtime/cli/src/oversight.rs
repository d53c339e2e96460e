//! `complaint file|resolve|list` (Art. 25) and `incident open|close|list` (Art. 24) as commands. A complaint's
//! subject value goes in once, on the command line of the agency filing it, and is kept only as a keyed token.

use anyhow::Context as _;
use zone_store::{Complaint, Incident, Resolution};

use crate::args::{ComplaintCommand, IncidentCommand};
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
                    println!("{t}");
                    Ok(())
                }
            };
        }
    };
    match ctx.mode {
        Mode::Json => output::json(&complaint),
        Mode::Human => {
            println!(
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
                    println!("{t}");
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
    println!("incident {} against {}: {}", i.id, i.operator, i.state);
    let grants: Vec<String> = i.grants_suspended.iter().map(u64::to_string).collect();
    println!("  grants suspended  {}", if grants.is_empty() { "none active".to_owned() } else { grants.join(", ") });
    println!(
        "  evidence          {} (summary.json sha256 {})",
        zone.incident_dir(i.id).display(),
        short(&i.evidence_sha256)
    );
    println!(
        "  check the log     cleanroom audit verify --bundle {}/audit-bundle.json",
        zone.incident_dir(i.id).display()
    );
}
