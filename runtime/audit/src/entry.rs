//! One audit record: who did what to which objects, with which hashes, and how it ended.

use serde::{Deserialize, Serialize};

/// How an action ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Ok,
    Refused,
}

/// An entry of the audit log. Its leaf is the exact JSON bytes written, so fields added later never break the
/// verification of older entries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Entry {
    /// Position in the log, from 0; assigned by the log.
    pub seq: u64,
    /// RFC 3339 UTC.
    pub time: String,
    /// The principal acting, and the role it acted in.
    pub actor: String,
    pub role: String,
    /// A stable action name, e.g. `zone.init`, `dataset.publish`, `app.approve`.
    pub action: String,
    /// Ids of the objects involved (`dataset:enterprise_registry@1`, `app:7`, …).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub objects: Vec<String>,
    /// Content hashes involved (`sha256:…`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hashes: Vec<String>,
    pub outcome: Outcome,
    /// For a refusal: the stable class of the reason (`access.role`, `access.grant`, `policy.refused`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Host-written detail (never guest text, never data values).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// How the actor reached the zone, when not through the local CLI: for the HTTPS API, the client
    /// certificate's subject and SHA-256 fingerprint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<String>,
    /// Written before the catalog change it asserts was committed: the change took effect exactly when the
    /// catalog lists this entry's seq as applied; otherwise a later `audit.not_applied` entry names it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub write_ahead: bool,
}

impl Entry {
    /// A new entry for `action` by `actor` in `role`; the log sets `seq`.
    pub fn new(time: impl Into<String>, actor: &str, role: &str, action: &str, outcome: Outcome) -> Entry {
        Entry {
            seq: 0,
            time: time.into(),
            actor: actor.to_owned(),
            role: role.to_owned(),
            action: action.to_owned(),
            objects: Vec::new(),
            hashes: Vec::new(),
            outcome,
            reason: None,
            detail: None,
            via: None,
            write_ahead: false,
        }
    }

    pub fn object(mut self, id: impl Into<String>) -> Entry {
        self.objects.push(id.into());
        self
    }

    pub fn hash(mut self, hash: impl Into<String>) -> Entry {
        self.hashes.push(hash.into());
        self
    }

    pub fn reason(mut self, class: impl Into<String>) -> Entry {
        self.reason = Some(class.into());
        self
    }

    pub fn detail(mut self, text: impl Into<String>) -> Entry {
        self.detail = Some(text.into());
        self
    }
}
