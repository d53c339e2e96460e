//! `complaint file|resolve|list`: Art. 25 as commands. The subject's value goes in once, on the command line of the
//! agency filing the complaint, and is kept only as a keyed token.

use zone_store::{Complaint, Resolution};

use crate::args::ComplaintCommand;
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
