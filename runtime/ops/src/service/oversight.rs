//! Oversight: complaints (Art. 25), incidents (Art. 24) and usage reports (Art. 11, 16, 21).

use zone_api::routes::{
    BudgetShow, ComplaintAnswer, ComplaintFile, ComplaintList, ComplaintResolve, IncidentAnswer, IncidentClose,
    IncidentList, IncidentOpen, ReportUsage, UsageAnswer,
};
use zone_api::{Call as _, Outputs};
use zone_store::{Complaint, Incident, Resolution, UsageReport};

use super::{Handle, Session, date};
use crate::error::OpsError;

impl Handle for ComplaintFile {
    fn handle(self, s: &mut Session<'_>) -> Result<Complaint, OpsError> {
        let evidence = s.files.input(&self.evidence, Self::NAME)?;
        Ok(s.zone.file_complaint(&s.who, &self.dataset, &self.subject, &evidence)?)
    }
}

impl Handle for ComplaintResolve {
    fn handle(self, s: &mut Session<'_>) -> Result<Complaint, OpsError> {
        let resolution = match self.answer {
            ComplaintAnswer::Withdraw => Resolution::Withdraw { keep_approvals: self.keep_approvals },
            ComplaintAnswer::Suspend => Resolution::Suspend,
            ComplaintAnswer::Reprocess => Resolution::Reprocess,
            ComplaintAnswer::Dismiss => Resolution::Dismiss,
        };
        Ok(s.zone.resolve_complaint(&s.who, self.id, resolution, &self.reason, self.correct_by.as_deref())?)
    }
}

impl Handle for ComplaintList {
    fn handle(self, s: &mut Session<'_>) -> Result<Vec<Complaint>, OpsError> {
        Ok(s.zone.complaints(&s.who)?)
    }
}

fn incident_answer(s: &Session<'_>, incident: Incident) -> IncidentAnswer {
    let evidence_dir = s.zone.incident_dir(incident.id).display().to_string();
    IncidentAnswer { incident, evidence_dir }
}

impl Handle for IncidentOpen {
    fn handle(self, s: &mut Session<'_>) -> Result<IncidentAnswer, OpsError> {
        let correct_by = match &self.correct_by {
            Some(text) => date(text, "--correct-by")?,
            None => zone_store::today() + chrono::Duration::days(30),
        };
        let incident = s.zone.open_incident(&s.who, &self.operator, &self.reason, correct_by)?;
        Ok(incident_answer(s, incident))
    }
}

impl Handle for IncidentClose {
    fn handle(self, s: &mut Session<'_>) -> Result<IncidentAnswer, OpsError> {
        let incident = s.zone.close_incident(&s.who, self.id, &self.reason)?;
        Ok(incident_answer(s, incident))
    }
}

impl Handle for IncidentList {
    fn handle(self, s: &mut Session<'_>) -> Result<Vec<Incident>, OpsError> {
        Ok(s.zone.incidents(&s.who)?)
    }
}

/// The columns of `operators.csv` and of the report's operator table.
pub const OPERATOR_COLUMNS: [&str; 8] =
    ["operator", "runs", "released", "failed", "refusals", "rows read", "rows released", "artifacts released"];
/// The columns of `datasets.csv` and of the report's dataset table.
pub const DATASET_COLUMNS: [&str; 7] =
    ["dataset", "provider", "applications", "runs", "operators", "rows read", "domains"];

/// `a=1; b=2`.
fn joined(map: &std::collections::BTreeMap<String, u64>) -> String {
    map.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ")
}

/// The report's two tables as text cells: (operators, datasets).
pub fn usage_tables(report: &UsageReport) -> (Vec<Vec<String>>, Vec<Vec<String>>) {
    let operators = report
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
    let datasets = report
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
    (operators, datasets)
}

/// RFC 4180: fields with a comma, quote or line break are quoted, quotes doubled.
fn csv_field(field: &str) -> String {
    if field.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_owned()
    }
}

fn write_csv(path: &std::path::Path, header: &[&str], rows: &[Vec<String>]) -> Result<(), OpsError> {
    let mut text = header.iter().map(|h| csv_field(h)).collect::<Vec<_>>().join(",");
    text.push_str("\r\n");
    for row in rows {
        text.push_str(&row.iter().map(|f| csv_field(f)).collect::<Vec<_>>().join(","));
        text.push_str("\r\n");
    }
    std::fs::write(path, text).map_err(|source| OpsError::Write { path: path.to_owned(), source })
}

impl Handle for BudgetShow {
    fn handle(self, s: &mut Session<'_>) -> Result<Vec<zone_store::BudgetLine>, OpsError> {
        Ok(s.zone.budgets(&s.who)?)
    }
}

impl Handle for ReportUsage {
    fn handle(self, s: &mut Session<'_>) -> Result<UsageAnswer, OpsError> {
        let from = self.from.as_deref().map(|t| date(t, "--from")).transpose()?;
        let to = self.to.as_deref().map(|t| date(t, "--to")).transpose()?;
        let report = s.zone.usage_report(&s.who, from, to)?;
        let output = if self.csv {
            let dir = s.files.output_dir()?;
            let (operators, datasets) = usage_tables(&report);
            write_csv(&dir.join("operators.csv"), &OPERATOR_COLUMNS, &operators)?;
            write_csv(&dir.join("datasets.csv"), &DATASET_COLUMNS, &datasets)?;
            s.files.outputs(&dir)?
        } else {
            Outputs::default()
        };
        Ok(UsageAnswer { report, output })
    }
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
