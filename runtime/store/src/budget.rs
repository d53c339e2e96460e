//! The privacy budget ledger of `dp` runs. A run's ε is charged to every dataset it reads, against two budgets of
//! the current period: the operator's on that dataset, and the dataset's over all operators (against collusion).
//! The charge is checked and written in the same catalog transaction (SQLite's write lock: concurrent runs queue
//! behind it and cannot overspend), write-ahead with its audit entry, before any row is read; nothing ever gives
//! it back (a crash, a failure or a cancellation after the charge keeps it spent). A job is charged once: a run of
//! the same job started again (after a restart of the server) reproduces its blocks and noise and spends nothing
//! more.

use chrono::{Datelike, NaiveDate};
use policies::{BudgetPeriod, Epsilon};
use rusqlite::params;
use serde::{Deserialize, Serialize};
use zone_access::{Principal, Role};
use zone_audit::Outcome;

use crate::error::StoreError;
use crate::jobs::JobTicket;
use crate::record::{entry, now, today};
use crate::zone::Zone;

/// One budget as `budget show` lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct BudgetLine {
    pub dataset: String,
    /// The operator whose budget it is; absent: the dataset's cap over all operators.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<String>,
    /// `2026-12`, `2026-Q4` or `2026`.
    pub period: String,
    pub spent: f64,
    pub limit: f64,
    pub remaining: f64,
    /// The day the next period starts (UTC).
    pub refreshes_on: String,
    /// Runs charged in this period.
    pub runs: u64,
}

/// The current period of `period`: its key and the day the next one starts.
pub fn current_period(period: BudgetPeriod, day: NaiveDate) -> (String, NaiveDate) {
    let (first, len) = period.months(day.month());
    let key = match period {
        BudgetPeriod::Month => format!("{}-{:02}", day.year(), day.month()),
        BudgetPeriod::Quarter => format!("{}-Q{}", day.year(), first.div_ceil(3)),
        BudgetPeriod::Year => format!("{}", day.year()),
    };
    let next = first + len;
    let (year, month) = if next > 12 { (day.year() + 1, next - 12) } else { (day.year(), next) };
    (key, NaiveDate::from_ymd_opt(year, month, 1).unwrap_or(day))
}

fn catalog(what: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError {
    StoreError::catalog(what)
}

impl Zone {
    /// ε charged in `period` to `dataset`, by `operator` or (None) by all.
    fn spent(&self, dataset: &str, operator: Option<&str>, period: &str) -> Result<(Epsilon, u64), StoreError> {
        let conn = &self.catalog().conn;
        let (micros, runs): (i64, i64) = match operator {
            Some(op) => conn.query_row(
                "SELECT coalesce(sum(epsilon_micros), 0), count(*) FROM privacy_ledger
                 WHERE dataset = ?1 AND operator = ?2 AND period = ?3",
                params![dataset, op, period],
                |r| Ok((r.get(0)?, r.get(1)?)),
            ),
            None => conn.query_row(
                "SELECT coalesce(sum(epsilon_micros), 0), count(*) FROM privacy_ledger WHERE dataset = ?1 AND period = ?2",
                params![dataset, period],
                |r| Ok((r.get(0)?, r.get(1)?)),
            ),
        }
        .map_err(catalog("read the privacy ledger"))?;
        Ok((Epsilon(micros.unsigned_abs()), runs.unsigned_abs()))
    }

    /// Charges run `job` to every dataset of its ticket, inside the caller's write transaction; refuses with
    /// `privacy.budget` when any budget has less left than the run spends. Answers the audit entries of the charge
    /// (none when the job was charged before).
    pub(crate) fn charge_budget(
        &self,
        who: &Principal,
        job: u64,
        ticket: &JobTicket,
    ) -> Result<Vec<zone_audit::Entry>, StoreError> {
        let Some(charge) = &ticket.dp else { return Ok(Vec::new()) };
        let conn = &self.catalog().conn;
        let charged: i64 = conn
            .query_row("SELECT count(*) FROM privacy_ledger WHERE job = ?1", [job], |r| r.get(0))
            .map_err(catalog("read the privacy ledger"))?;
        if charged > 0 {
            return Ok(Vec::new());
        }
        let operator = ticket.app.app.operator.as_str();
        let day = today();
        let mut lines = Vec::new();
        for d in &ticket.datasets {
            let Some(rules) = d.policy.release().privacy else {
                return Err(StoreError::JobRefused {
                    class: "job.mode",
                    detail: format!("{}'s policy has no [privacy]; it does not allow `dp`", d.version.dataset),
                });
            };
            let (period, refreshes) = current_period(rules.period, day);
            let dataset = d.version.dataset.as_str();
            let (by_operator, _) = self.spent(dataset, Some(operator), &period)?;
            let (by_all, _) = self.spent(dataset, None, &period)?;
            let refuse = |whose: String, limit: Epsilon, spent: Epsilon| StoreError::BudgetExhausted {
                detail: format!(
                    "{whose} privacy budget on {dataset} for {period} has ε = {} left of {limit}; this run spends ε = \
                     {}. It refreshes on {refreshes}",
                    limit.saturating_sub(spent),
                    charge.epsilon
                ),
            };
            if by_operator.0 + charge.epsilon.0 > rules.epsilon_per_operator.0 {
                return Err(refuse(format!("`{operator}`'s"), rules.epsilon_per_operator, by_operator));
            }
            if by_all.0 + charge.epsilon.0 > rules.epsilon_per_dataset.0 {
                return Err(refuse(
                    "the dataset's (all operators together)".to_owned(),
                    rules.epsilon_per_dataset,
                    by_all,
                ));
            }
            lines.push((d.version.dataset.clone(), period, rules, by_operator, by_all));
        }
        let mut entries = Vec::new();
        for (dataset, period, rules, by_operator, by_all) in lines {
            conn.execute(
                "INSERT INTO privacy_ledger (job, operator, dataset, period, epsilon_micros, delta, reserved_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![job, operator, dataset, period, charge.epsilon.0, charge.delta, now()],
            )
            .map_err(catalog("charge the privacy budget"))?;
            let left = |limit: Epsilon, spent: Epsilon| limit.saturating_sub(Epsilon(spent.0 + charge.epsilon.0));
            entries.push(
                entry(who, "privacy.charge", Outcome::Ok)
                    .object(format!("job:{job}"))
                    .object(format!("dataset:{dataset}"))
                    .detail(format!(
                        "ε = {} (δ = {:e}, b = {}) charged to `{operator}` on {dataset} for {period}, before any row \
                         is read; left: {} for the operator, {} for the dataset",
                        charge.epsilon,
                        charge.delta,
                        charge.block_subjects,
                        left(rules.epsilon_per_operator, by_operator),
                        left(rules.epsilon_per_dataset, by_all)
                    )),
            );
        }
        Ok(entries)
    }

    /// The budgets `who` may see in the current period: an operator its own, an agency its datasets' (every
    /// operator's and the dataset's cap), the authority and the inspector all. Only datasets that allow `dp`.
    pub fn budgets(&self, who: &Principal) -> Result<Vec<BudgetLine>, StoreError> {
        let day = today();
        let mut out = Vec::new();
        for summary in self.datasets()? {
            let version = self.dataset(&summary.name)?;
            let policy = self.policy(&version)?;
            let Some(rules) = policy.release().privacy else { continue };
            let mine = match who.role {
                Role::Authority | Role::Inspector => true,
                Role::Agency => who.org.as_deref() == Some(version.provider.as_str()),
                Role::Operator => false,
            };
            let (period, refreshes) = current_period(rules.period, day);
            let mut operators: Vec<String> = match who.role {
                Role::Operator => vec![who.name.clone()],
                _ if mine => self.ledger_operators(&summary.name, &period)?,
                _ => continue,
            };
            operators.sort();
            let line = |operator: Option<String>, limit: Epsilon, (spent, runs): (Epsilon, u64)| BudgetLine {
                dataset: summary.name.clone(),
                operator,
                period: period.clone(),
                spent: spent.as_f64(),
                limit: limit.as_f64(),
                remaining: limit.saturating_sub(spent).as_f64(),
                refreshes_on: refreshes.to_string(),
                runs,
            };
            for op in operators {
                let spent = self.spent(&summary.name, Some(&op), &period)?;
                out.push(line(Some(op), rules.epsilon_per_operator, spent));
            }
            if mine {
                out.push(line(None, rules.epsilon_per_dataset, self.spent(&summary.name, None, &period)?));
            }
        }
        Ok(out)
    }

    fn ledger_operators(&self, dataset: &str, period: &str) -> Result<Vec<String>, StoreError> {
        let mut stmt = self
            .catalog()
            .conn
            .prepare("SELECT DISTINCT operator FROM privacy_ledger WHERE dataset = ?1 AND period = ?2")
            .map_err(catalog("read the privacy ledger"))?;
        let rows =
            stmt.query_map(params![dataset, period], |r| r.get(0)).map_err(catalog("read the privacy ledger"))?;
        rows.collect::<Result<_, _>>().map_err(catalog("read the privacy ledger"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_have_keys_and_refresh_on_the_first_day_of_the_next() {
        let d = NaiveDate::from_ymd_opt(2026, 12, 2).expect("date");
        let day = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).expect("date");
        assert_eq!(current_period(BudgetPeriod::Month, d), ("2026-12".to_owned(), day(2027, 1, 1)));
        assert_eq!(current_period(BudgetPeriod::Quarter, d), ("2026-Q4".to_owned(), day(2027, 1, 1)));
        assert_eq!(current_period(BudgetPeriod::Year, d), ("2026".to_owned(), day(2027, 1, 1)));
        let may = day(2026, 5, 31);
        assert_eq!(current_period(BudgetPeriod::Month, may), ("2026-05".to_owned(), day(2026, 6, 1)));
        assert_eq!(current_period(BudgetPeriod::Quarter, may), ("2026-Q2".to_owned(), day(2026, 7, 1)));
    }
}
