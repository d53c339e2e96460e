//! Usage reports for the yearly evaluation and the supply incentives (SEED.md Art. 11, 16, 21): per operator — runs,
//! refusals by class, rows read per dataset, products and artifacts released; per dataset — applications, runs,
//! operators, rows read, domains served. Counts of actions come from the audit log and figures of runs from the run
//! records; the report says whether the two agree (every run started is in the log, and the other way round).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use zone_access::{Action, Principal, Role};
use zone_audit::{Entry, Outcome};

use crate::error::StoreError;
use crate::jobs::{JobRecord, JobState};
use crate::zone::Zone;

/// One operator's usage.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct OperatorUsage {
    pub operator: String,
    /// `job.start` entries.
    pub runs: u64,
    pub runs_released: u64,
    pub runs_failed: u64,
    /// Refused actions of the operator, by reason class.
    pub refusals: BTreeMap<String, u64>,
    /// Rows read by its runs, per dataset (a join's rows count for each dataset joined).
    pub rows_read: BTreeMap<String, u64>,
    pub rows_released: u64,
    pub artifacts_released: u64,
}

/// One dataset's usage.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DatasetUsage {
    pub dataset: String,
    pub provider: String,
    pub applications: u64,
    pub runs: u64,
    pub operators: Vec<String>,
    pub rows_read: u64,
    pub domains: Vec<String>,
}

/// A usage report over a period (inclusive days, UTC; both open when not given).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct UsageReport {
    pub from: Option<String>,
    pub to: Option<String>,
    pub operators: Vec<OperatorUsage>,
    pub datasets: Vec<DatasetUsage>,
    /// Whether every run record has its `job.start` entry and every entry its record, in the period.
    pub log_and_records_agree: bool,
    pub entries_read: u64,
}

fn in_period(time: &str, from: Option<&str>, to: Option<&str>) -> bool {
    let day = time.get(..10).unwrap_or(time);
    from.is_none_or(|f| day >= f) && to.is_none_or(|t| day <= t)
}

impl Zone {
    /// The usage report `who` may read: the authority and the inspector see everything; an agency sees its own
    /// datasets and no operator's figures. Recorded.
    pub fn usage_report(
        &self,
        who: &Principal,
        from: Option<chrono::NaiveDate>,
        to: Option<chrono::NaiveDate>,
    ) -> Result<UsageReport, StoreError> {
        let objects = ["report:usage".to_owned()];
        self.authorize(who, &Action::ReportRead, &objects)?;
        let (from, to) = (from.map(|d| d.to_string()), to.map(|d| d.to_string()));
        let entries: Vec<Entry> = self
            .audit_entries_unchecked()?
            .into_iter()
            .filter(|e| in_period(&e.time, from.as_deref(), to.as_deref()))
            .collect();
        let jobs: Vec<JobRecord> = self
            .all_job_records()?
            .into_iter()
            .filter(|j| in_period(&j.started_at, from.as_deref(), to.as_deref()))
            .collect();
        let report = self.usage_from(&entries, &jobs, from, to)?;
        let report = match who.role {
            Role::Authority | Role::Inspector => report,
            _ => UsageReport {
                operators: Vec::new(),
                datasets: report.datasets.into_iter().filter(|d| who.org.as_deref() == Some(&d.provider)).collect(),
                ..report
            },
        };
        self.recorded(who, "report.read", &objects, Ok(report), |r, e| {
            e.detail(format!("{} operators, {} datasets", r.operators.len(), r.datasets.len()))
        })
    }

    fn usage_from(
        &self,
        entries: &[Entry],
        jobs: &[JobRecord],
        from: Option<String>,
        to: Option<String>,
    ) -> Result<UsageReport, StoreError> {
        let mut operators: BTreeMap<String, OperatorUsage> = BTreeMap::new();
        for p in self.principals()? {
            if p.role == Role::Operator {
                operators.insert(p.name.clone(), OperatorUsage { operator: p.name, ..OperatorUsage::default() });
            }
        }
        let mut started = BTreeSet::new();
        for e in entries {
            let Some(usage) = operators.get_mut(&e.actor) else { continue };
            if e.action == "job.start" && e.outcome == Outcome::Ok {
                usage.runs += 1;
                started.extend(e.objects.iter().filter_map(|o| o.strip_prefix("job:")).map(str::to_owned));
            }
            if e.outcome == Outcome::Refused {
                let class = e.reason.clone().unwrap_or_else(|| "unclassified".into());
                *usage.refusals.entry(class).or_default() += 1;
            }
        }
        let recorded: BTreeSet<String> = jobs.iter().map(|j| j.id.to_string()).collect();
        let agree = started == recorded;

        let mut datasets: BTreeMap<String, DatasetUsage> = BTreeMap::new();
        for d in self.datasets()? {
            datasets.insert(
                d.name.clone(),
                DatasetUsage { dataset: d.name.clone(), provider: d.provider.clone(), ..DatasetUsage::default() },
            );
        }
        let mut domains_of_app = BTreeMap::new();
        for id in self.catalog().ids("applications")? {
            if let Some(view) = self.app_view(id)? {
                domains_of_app.insert(id, view.app.domain.clone());
                for d in &view.binding.datasets {
                    if let Some(u) = datasets.get_mut(&d.dataset) {
                        u.applications += 1;
                    }
                }
            }
        }
        let mut operators_of: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let mut domains_of: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let artifacts = self.released_artifacts_per_job()?;
        for job in jobs {
            let rows = job.counts.as_ref().map_or(0, |c| c.rows_read);
            if let Some(usage) = operators.get_mut(&job.operator) {
                match job.state {
                    JobState::Released => usage.runs_released += 1,
                    JobState::Failed => usage.runs_failed += 1,
                    _ => {}
                }
                usage.rows_released += job.counts.as_ref().map_or(0, |c| c.rows_released);
                usage.artifacts_released += artifacts.get(&job.id).copied().unwrap_or(0);
                for d in &job.binding.datasets {
                    *usage.rows_read.entry(d.dataset.clone()).or_default() += rows;
                }
            }
            for d in &job.binding.datasets {
                if let Some(u) = datasets.get_mut(&d.dataset) {
                    u.runs += 1;
                    u.rows_read += rows;
                    operators_of.entry(d.dataset.clone()).or_default().insert(job.operator.clone());
                    if let Some(domain) = domains_of_app.get(&job.app) {
                        domains_of.entry(d.dataset.clone()).or_default().insert(domain.clone());
                    }
                }
            }
        }
        for (name, u) in &mut datasets {
            u.operators = operators_of.remove(name).unwrap_or_default().into_iter().collect();
            u.domains = domains_of.remove(name).unwrap_or_default().into_iter().collect();
        }
        Ok(UsageReport {
            from,
            to,
            operators: operators.into_values().collect(),
            datasets: datasets.into_values().collect(),
            log_and_records_agree: agree,
            entries_read: entries.len() as u64,
        })
    }

    fn released_artifacts_per_job(&self) -> Result<BTreeMap<u64, u64>, StoreError> {
        let mut stmt = self
            .catalog()
            .conn
            .prepare("SELECT job, COUNT(*) FROM artifacts WHERE state = 'released' GROUP BY job")
            .map_err(StoreError::catalog("count artifacts"))?;
        let rows =
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).map_err(StoreError::catalog("count artifacts"))?;
        rows.collect::<Result<_, _>>().map_err(StoreError::catalog("count artifacts"))
    }
}

#[cfg(test)]
mod tests {
    use super::in_period;

    #[test]
    fn periods_are_inclusive_days() {
        assert!(in_period("2026-11-27T10:00:00Z", Some("2026-11-27"), Some("2026-11-27")));
        assert!(!in_period("2026-11-28T00:00:00Z", None, Some("2026-11-27")));
        assert!(!in_period("2026-11-26T23:59:59Z", Some("2026-11-27"), None));
        assert!(in_period("2026-11-26T23:59:59Z", None, None));
    }
}
