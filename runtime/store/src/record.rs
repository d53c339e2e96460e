//! The ground floor every domain file of the store builds on: the time of a record, today's date, JSON for the
//! catalog, the shape of an audit entry, the rule for names. It imports no domain file, so none can form a cycle
//! through it.

use chrono::NaiveDate;
use zone_access::{Principal, Role};
use zone_audit::{Entry, Outcome};

use crate::error::StoreError;

/// The time of a record: RFC 3339 UTC, to the second.
pub(crate) fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Today, in the zone's calendar (UTC).
pub fn today() -> NaiveDate {
    chrono::Utc::now().date_naive()
}

/// A value as the catalog stores it.
pub(crate) fn json<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value)
        .map_err(|e| StoreError::Catalog { context: format!("serialize: {e}"), source: rusqlite::Error::InvalidQuery })
}

/// An audit entry for `who` doing `action`.
pub(crate) fn entry(who: &Principal, action: &str, outcome: Outcome) -> Entry {
    Entry::new(now(), &who.name, who.role.name(), action, outcome)
}

/// Names are short, lowercase, and safe in logs and file names.
pub(crate) fn check_name(what: &str, name: &str) -> Result<(), StoreError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.bytes().next().is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(StoreError::BadInput {
            detail: format!(
                "{what} `{name}` is not a valid name: use 1–64 lowercase letters, digits, `-`, `_` or `.`, starting \
                 with a letter or digit"
            ),
        })
    }
}

/// Whether `who` may see the raw SHA-256 of a file of `provider`'s: the providing agency and the inspector. Anyone
/// else holding a copy (or a guess) could confirm with it what a dataset contains.
pub(crate) fn sees_raw_hashes(who: &Principal, provider: &str) -> bool {
    match who.role {
        Role::Inspector => true,
        Role::Agency => who.org.as_deref() == Some(provider),
        Role::Authority | Role::Operator => false,
    }
}
