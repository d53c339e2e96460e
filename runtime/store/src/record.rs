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

/// A state of a record, stored in the catalog and serialized by its id string (`held`, `open`).
macro_rules! record_state {
    ($(#[doc = $doc:literal])* $name:ident { $($(#[doc = $vdoc:literal])* $variant:ident = $id:literal),* $(,)? }) => {
        $(#[doc = $doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($(#[doc = $vdoc])* $variant,)*
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant,)*];

            /// The stable id, as the catalog and the API write it.
            pub fn id(self) -> &'static str {
                match self {
                    $($name::$variant => $id,)*
                }
            }

            pub fn from_id(id: &str) -> Option<$name> {
                $name::ALL.iter().copied().find(|s| s.id() == id)
            }

            /// The state a catalog row holds; anything else is a damaged catalog, named.
            pub(crate) fn read(id: &str) -> Result<$name, crate::error::StoreError> {
                $name::from_id(id).ok_or_else(|| crate::error::StoreError::Catalog {
                    context: format!("{} `{id}` is not one of {:?}", stringify!($name), $name::ALL),
                    source: rusqlite::Error::InvalidQuery,
                })
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.id())
            }
        }
    };
}

record_state! {
    /// Where a held artifact is: held until every providing agency decided.
    ArtifactState { Held = "held", Released = "released", Rejected = "rejected" }
}

record_state! {
    /// Where a complaint is.
    ComplaintState { Open = "open", Resolved = "resolved" }
}

record_state! {
    /// Where an incident is.
    IncidentState { Open = "open", Closed = "closed" }
}

#[cfg(test)]
mod state_tests {
    use super::*;

    #[test]
    fn record_states_round_trip_by_their_ids() {
        for s in ArtifactState::ALL {
            assert_eq!(ArtifactState::from_id(s.id()), Some(*s));
            assert_eq!(serde_json::to_string(s).expect("json"), format!("\"{}\"", s.id()));
        }
        for s in ComplaintState::ALL {
            assert_eq!(ComplaintState::read(s.id()).expect("read"), *s);
        }
        for s in IncidentState::ALL {
            assert_eq!(s.to_string(), s.id());
        }
        assert!(ArtifactState::read("lost").is_err());
    }
}
