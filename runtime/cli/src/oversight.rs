//! `complaint file|resolve|list` (Art. 25), `incident open|close|list` (Art. 24) and `report usage` (Art. 11, 16,
//! 21) as commands. A complaint's
//! subject value goes in once, on the command line of the agency filing it, and is kept only as a keyed token.

use zone_api::routes::{self as api, ComplaintAnswer, IncidentAnswer};
use zone_ops::service::oversight::{DATASET_COLUMNS, OPERATOR_COLUMNS, usage_tables};
use zone_store::Complaint;

use crate::args::{ComplaintCommand, IncidentCommand, ReportCommand};
use crate::context::Ctx;
use crate::output::{self, Mode, short};

pub fn complaint(ctx: &Ctx<'_>, command: &ComplaintCommand) -> anyhow::Result<()> {
    let complaint = match command {
        ComplaintCommand::File(args) => ctx.call(api::ComplaintFile {
            dataset: args.dataset.clone(),
            subject: args.subject.clone(),
            evidence: ctx.file::<api::ComplaintFile>(&args.evidence)?,
        })?,
        ComplaintCommand::Resolve(args) => {
            let answer = if args.withdraw {
                ComplaintAnswer::Withdraw
            } else if args.suspend {
                ComplaintAnswer::Suspend
            } else if args.reprocess {
                ComplaintAnswer::Reprocess
            } else {
                ComplaintAnswer::Dismiss
            };
            ctx.call(api::ComplaintResolve {
                id: args.id,
                answer,
                keep_approvals: args.keep_approvals,
                correct_by: args.correct_by.clone(),
                reason: args.reason.clone(),
            })?
        }
        ComplaintCommand::List => {
            let list = ctx.call(api::ComplaintList {})?;
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
                            c.state.to_string(),
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
                if complaint.state == zone_store::ComplaintState::Open {
                    "open".to_owned()
                } else {
                    answer(&complaint)
                }
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
    let incident = match command {
        IncidentCommand::Open { operator, reason, correct_by } => ctx.call(api::IncidentOpen {
            operator: operator.clone(),
            reason: reason.clone(),
            correct_by: correct_by.clone(),
        })?,
        IncidentCommand::Close { id, reason } => ctx.call(api::IncidentClose { id: *id, reason: reason.clone() })?,
        IncidentCommand::List => {
            let list = ctx.call(api::IncidentList {})?;
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
                            i.state.to_string(),
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
            print_incident(&incident);
            Ok(())
        }
    }
}

fn print_incident(answer: &IncidentAnswer) {
    let i = &answer.incident;
    outln!("incident {} against {}: {}", i.id, i.operator, i.state);
    let grants: Vec<String> = i.grants_suspended.iter().map(u64::to_string).collect();
    outln!("  grants suspended  {}", if grants.is_empty() { "none active".to_owned() } else { grants.join(", ") });
    outln!("  evidence          {} (summary.json sha256 {})", answer.evidence_dir, short(&i.evidence_sha256));
    outln!("  check the log     cleanroom audit verify --bundle {}/audit-bundle.json", answer.evidence_dir);
}

pub fn budget(ctx: &Ctx<'_>) -> anyhow::Result<()> {
    let lines = ctx.call(api::BudgetShow {})?;
    match ctx.mode {
        Mode::Json => output::json(&lines),
        Mode::Human => {
            if lines.is_empty() {
                outln!("no privacy budget to show (no dp dataset you may see)");
                return Ok(());
            }
            let mut t =
                output::table(["dataset", "operator", "period", "spent ε", "limit ε", "left ε", "runs", "refreshes"]);
            for l in &lines {
                t.add_row([
                    l.dataset.clone(),
                    l.operator.clone().unwrap_or_else(|| "(all operators)".into()),
                    l.period.clone(),
                    format!("{}", l.spent),
                    format!("{}", l.limit),
                    format!("{}", l.remaining),
                    l.runs.to_string(),
                    l.refreshes_on.clone(),
                ]);
            }
            outln!("{t}");
            Ok(())
        }
    }
}

pub fn report(ctx: &Ctx<'_>, command: &ReportCommand) -> anyhow::Result<()> {
    let ReportCommand::Usage { from, to, csv } = command;
    let request = api::ReportUsage { from: from.clone(), to: to.clone(), csv: csv.is_some() };
    let answer = ctx.call_into(request, csv.as_deref())?;
    if let Some(dir) = csv {
        ctx.take(&answer.output, dir)?;
    }
    let report = &answer.report;
    let (operators, datasets) = usage_tables(report);
    match ctx.mode {
        Mode::Json => output::json(report),
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
