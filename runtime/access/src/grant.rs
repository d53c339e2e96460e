//! The authorization agreement (SEED.md Art. 7–10): which operator may use which data, for which domains, in
//! which period — and whether it is in force today.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

/// What a grant covers. A dataset is covered when it is named in `datasets` or its provider is in `providers`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct GrantScope {
    #[serde(default)]
    pub datasets: Vec<String>,
    #[serde(default)]
    pub providers: Vec<String>,
    pub domains: Vec<String>,
}

/// The recorded state; expiry is not recorded, it follows from the dates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum GrantState {
    Active,
    Suspended { reason: String, correct_by: NaiveDate },
    Terminated { reason: String },
}

/// The state in force on a given day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum GrantStatus {
    /// Before `valid_from`.
    NotYetValid,
    Active,
    Suspended,
    Terminated,
    /// After `valid_to`: behaves as terminated.
    Expired,
}

impl GrantStatus {
    pub fn name(self) -> &'static str {
        match self {
            GrantStatus::NotYetValid => "not_yet_valid",
            GrantStatus::Active => "active",
            GrantStatus::Suspended => "suspended",
            GrantStatus::Terminated => "terminated",
            GrantStatus::Expired => "expired",
        }
    }
}

/// A grant as recorded in the catalog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Grant {
    pub id: u64,
    pub operator: String,
    pub scope: GrantScope,
    pub valid_from: NaiveDate,
    pub valid_to: NaiveDate,
    #[serde(flatten)]
    pub state: GrantState,
    /// SHA-256 of the agreement's terms, stored in the zone.
    pub terms_sha256: Option<String>,
    pub created_by: String,
    pub created_at: String,
}

impl Grant {
    /// The state in force on `today`. Termination wins over everything, then expiry, then suspension.
    pub fn status(&self, today: NaiveDate) -> GrantStatus {
        match &self.state {
            GrantState::Terminated { .. } => GrantStatus::Terminated,
            _ if today > self.valid_to => GrantStatus::Expired,
            GrantState::Suspended { .. } => GrantStatus::Suspended,
            _ if today < self.valid_from => GrantStatus::NotYetValid,
            GrantState::Active => GrantStatus::Active,
        }
    }

    /// Whether this grant lets its operator use `dataset` (of `provider`) for `domain` on `today`; the error
    /// says why not.
    pub fn covers(&self, dataset: &str, provider: &str, domain: &str, today: NaiveDate) -> Result<(), String> {
        let status = self.status(today);
        if status != GrantStatus::Active {
            let detail = match (&self.state, status) {
                (GrantState::Suspended { reason, correct_by }, GrantStatus::Suspended) => {
                    format!(" ({reason}; to be corrected by {correct_by})")
                }
                (GrantState::Terminated { reason }, _) => format!(" ({reason})"),
                (_, GrantStatus::Expired) => format!(" (ended {})", self.valid_to),
                (_, GrantStatus::NotYetValid) => format!(" (starts {})", self.valid_from),
                _ => String::new(),
            };
            return Err(format!("grant {} is {}{detail}", self.id, status.name()));
        }
        if !self.scope.datasets.iter().any(|d| d == dataset) && !self.scope.providers.iter().any(|p| p == provider) {
            return Err(format!("grant {} does not cover dataset `{dataset}` (provider `{provider}`)", self.id));
        }
        if !self.scope.domains.iter().any(|d| d == domain) {
            return Err(format!(
                "grant {} does not cover domain `{domain}` (it covers {})",
                self.id,
                self.scope.domains.join(", ")
            ));
        }
        Ok(())
    }

    /// The providers whose data the grant may reach by name (for scoping who may read it); datasets named
    /// directly are resolved by the caller.
    pub fn providers(&self) -> &[String] {
        &self.scope.providers
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(s: &str) -> NaiveDate {
        s.parse().expect("date")
    }

    fn grant(state: GrantState) -> Grant {
        Grant {
            id: 1,
            operator: "acme".into(),
            scope: GrantScope {
                datasets: vec!["tax_credit".into()],
                providers: vec!["market-regulation".into()],
                domains: vec!["finance".into()],
            },
            valid_from: day("2026-01-01"),
            valid_to: day("2026-12-31"),
            state,
            terms_sha256: None,
            created_by: "dsb".into(),
            created_at: "2026-01-01T00:00:00Z".into(),
        }
    }

    #[test]
    fn states_by_date_and_record() {
        let g = grant(GrantState::Active);
        assert_eq!(g.status(day("2025-12-31")), GrantStatus::NotYetValid);
        assert_eq!(g.status(day("2026-01-01")), GrantStatus::Active);
        assert_eq!(g.status(day("2026-12-31")), GrantStatus::Active);
        assert_eq!(g.status(day("2027-01-01")), GrantStatus::Expired);
        let s = grant(GrantState::Suspended { reason: "late report".into(), correct_by: day("2026-06-30") });
        assert_eq!(s.status(day("2026-05-01")), GrantStatus::Suspended);
        assert_eq!(s.status(day("2027-02-01")), GrantStatus::Expired);
        let t = grant(GrantState::Terminated { reason: "breach".into() });
        assert_eq!(t.status(day("2026-05-01")), GrantStatus::Terminated);
        assert_eq!(t.status(day("2030-01-01")), GrantStatus::Terminated);
    }

    #[test]
    fn coverage() {
        let g = grant(GrantState::Active);
        let today = day("2026-05-01");
        assert!(g.covers("tax_credit", "taxation", "finance", today).is_ok());
        assert!(g.covers("enterprise_registry", "market-regulation", "finance", today).is_ok());
        let e = g.covers("clinic_visits", "health-commission", "finance", today).expect_err("dataset");
        assert!(e.contains("does not cover dataset `clinic_visits`"), "{e}");
        let e = g.covers("tax_credit", "taxation", "health", today).expect_err("domain");
        assert!(e.contains("domain `health`"), "{e}");
        let s = grant(GrantState::Suspended { reason: "late report".into(), correct_by: day("2026-06-30") });
        let e = s.covers("tax_credit", "taxation", "finance", today).expect_err("suspended");
        assert_eq!(e, "grant 1 is suspended (late report; to be corrected by 2026-06-30)");
        let e = g.covers("tax_credit", "taxation", "finance", day("2027-03-01")).expect_err("expired");
        assert_eq!(e, "grant 1 is expired (ended 2026-12-31)");
    }
}
