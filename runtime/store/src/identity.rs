//! Who may speak for whom: a principal's standing (active, suspended, removed), each organisation's client CAs
//! (trust anchors, pinned by the SHA-256 of the CA's public key), and the client certificates the zone knows of
//! (issued by its development CA, or revoked). Every change is the authority's act and is logged write-ahead.

use rusqlite::{OptionalExtension as _, params};
use serde::{Deserialize, Serialize};
use zone_access::{Action, Principal};

use crate::error::StoreError;
use crate::record::check_name;
use crate::record::now;
use crate::zone::Zone;

/// Whether a principal may act.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Standing {
    Active,
    /// Refused until resumed (`principal resume`).
    Suspended,
    /// Refused for good; the name stays taken, so that the history still names who it was.
    Removed,
}

impl Standing {
    pub fn name(self) -> &'static str {
        match self {
            Standing::Active => "active",
            Standing::Suspended => "suspended",
            Standing::Removed => "removed",
        }
    }

    fn from_name(name: &str) -> Option<Standing> {
        [Standing::Active, Standing::Suspended, Standing::Removed].into_iter().find(|s| s.name() == name)
    }
}

impl std::fmt::Display for Standing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A principal with its standing, for listings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PrincipalRecord {
    #[serde(flatten)]
    pub principal: Principal,
    pub standing: Standing,
    /// Why it was suspended or removed, by whom and when.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changed_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changed_at: Option<String>,
}

/// A client CA that may speak for one organisation: a certificate presented for a principal of `org` must chain
/// to one of `org`'s anchors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TrustAnchor {
    pub org: String,
    /// SHA-256 of the CA certificate's SubjectPublicKeyInfo (DER), hex: the pin.
    pub key_sha256: String,
    /// The CA's subject, as text (for people).
    pub subject: String,
    /// The CA certificate, PEM.
    #[serde(skip)]
    pub cert_pem: String,
    pub added_by: String,
    pub added_at: String,
}

/// A client certificate the zone knows of.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CertificateRecord {
    /// SHA-256 of the certificate (DER), hex: what the server checks on every request.
    pub sha256: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_after: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issued_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issued_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

fn is_hex64(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

fn check_reason(reason: &str) -> Result<(), StoreError> {
    let reason = reason.trim();
    if reason.is_empty() || reason.chars().count() > 500 || reason.chars().any(char::is_control) {
        return Err(StoreError::BadInput {
            detail: "--reason must be 1–500 characters of text on one line (it is recorded)".to_owned(),
        });
    }
    Ok(())
}

impl Zone {
    /// The standing of principal `name` (`None`: no such principal).
    pub fn standing(&self, name: &str) -> Result<Option<(Standing, Option<String>)>, StoreError> {
        let row = self
            .catalog()
            .conn
            .query_row("SELECT state, state_reason FROM principals WHERE name = ?1", [name], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(1)?))
            })
            .optional()
            .map_err(StoreError::catalog("read principal standing"))?;
        row.map(|(state, reason)| {
            let standing = Standing::from_name(&state).ok_or_else(|| StoreError::Catalog {
                context: format!("principal `{name}` has an unknown standing `{state}`"),
                source: rusqlite::Error::InvalidQuery,
            })?;
            Ok((standing, reason))
        })
        .transpose()
    }

    /// An error unless `who` may act now (not suspended, not removed).
    pub(crate) fn require_active(&self, who: &Principal) -> Result<(), StoreError> {
        match self.standing(&who.name)? {
            Some((Standing::Active, _)) => Ok(()),
            Some((standing, reason)) => Err(StoreError::PrincipalInactive {
                name: who.name.clone(),
                standing: standing.name(),
                reason: reason.unwrap_or_default(),
            }),
            None => Err(StoreError::UnknownPrincipal { name: who.name.clone(), known: Vec::new() }),
        }
    }

    /// Every principal with its standing, for someone allowed to list them.
    pub fn principal_records(&self, who: &Principal) -> Result<Vec<PrincipalRecord>, StoreError> {
        self.authorize(who, &Action::PrincipalList, &[])?;
        self.records(None)
    }

    /// The records of every principal (or of `name` only), by name, in one read.
    fn records(&self, name: Option<&str>) -> Result<Vec<PrincipalRecord>, StoreError> {
        type Row = (String, String, Option<String>, String, Option<String>, Option<String>, Option<String>);
        let mut stmt = self
            .catalog()
            .conn
            .prepare(
                "SELECT name, role, org, state, state_reason, state_by, state_at FROM principals
                 WHERE ?1 IS NULL OR name = ?1 ORDER BY name",
            )
            .map_err(StoreError::catalog("list principals"))?;
        let rows: Vec<Row> = stmt
            .query_map([name], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?)))
            .map_err(StoreError::catalog("list principals"))?
            .collect::<Result<_, _>>()
            .map_err(StoreError::catalog("list principals"))?;
        rows.into_iter()
            .map(|(name, role, org, state, reason, changed_by, changed_at)| {
                let standing = Standing::from_name(&state).ok_or_else(|| StoreError::Catalog {
                    context: format!("principal `{name}` has an unknown standing `{state}`"),
                    source: rusqlite::Error::InvalidQuery,
                })?;
                let principal = crate::access::principal_from(name, &role, org)?;
                Ok(PrincipalRecord { principal, standing, reason, changed_by, changed_at })
            })
            .collect()
    }

    /// Suspends, resumes or removes principal `name` (the authority's act, `principal.suspend|resume|remove`). A
    /// removed principal stays removed; nobody changes their own standing.
    pub fn set_standing(
        &self,
        who: &Principal,
        name: &str,
        to: Standing,
        reason: &str,
    ) -> Result<PrincipalRecord, StoreError> {
        let action = match to {
            Standing::Active => "principal.resume",
            Standing::Suspended => "principal.suspend",
            Standing::Removed => "principal.remove",
        };
        let objects = [format!("principal:{name}")];
        let change = || {
            self.permit(who, &Action::IdentityManage)?;
            check_reason(reason)?;
            if who.name == name {
                return Err(StoreError::BadInput {
                    detail: format!("{} cannot change its own standing (another authority must)", who.name),
                });
            }
            let target = self.principal(name)?.ok_or_else(|| StoreError::UnknownPrincipal {
                name: name.to_owned(),
                known: self.principals().map(|ps| ps.into_iter().map(|p| p.name).collect()).unwrap_or_default(),
            })?;
            let (current, _) = self.standing(name)?.unwrap_or((Standing::Removed, None));
            if current == Standing::Removed {
                return Err(StoreError::BadInput { detail: format!("principal `{name}` was removed; that is final") });
            }
            if current == to {
                return Err(StoreError::BadInput { detail: format!("principal `{name}` is already {to}") });
            }
            self.catalog()
                .conn
                .execute(
                    "UPDATE principals SET state = ?2, state_reason = ?3, state_by = ?4, state_at = ?5 WHERE name = ?1",
                    params![name, to.name(), reason.trim(), who.name, now()],
                )
                .map_err(StoreError::catalog("change principal standing"))?;
            Ok(target)
        };
        let target = self.logged_change(who, action, &objects, change, |_, e| {
            e.detail(format!("{to}: {}", reason.trim().escape_debug()))
        })?;
        tracing::info!(principal = %name, standing = %to, "principal standing changed");
        self.records(Some(&target.name))?
            .pop()
            .ok_or(StoreError::UnknownPrincipal { name: name.to_owned(), known: Vec::new() })
    }

    /// Registers `anchor` as a CA that may speak for its organisation (the authority's act, `org.trust`). `Ok(false)`
    /// when that key was already pinned for that organisation.
    pub fn add_trust_anchor(&self, who: &Principal, anchor: &TrustAnchor) -> Result<bool, StoreError> {
        let objects = [format!("org:{}", anchor.org)];
        let change = || {
            self.add_trust_anchor_unrecorded(who, anchor)?;
            Ok(())
        };
        let known = self.trust_anchors(Some(&anchor.org))?.iter().any(|a| a.key_sha256 == anchor.key_sha256);
        if known {
            self.permit(who, &Action::IdentityManage)?;
            return Ok(false);
        }
        self.logged_change(who, "org.trust", &objects, change, |_, e| {
            e.hash(format!("ca-key:sha256:{}", anchor.key_sha256)).detail(format!(
                "client CA `{}` may speak for `{}`",
                anchor.subject.escape_debug(),
                anchor.org
            ))
        })?;
        Ok(true)
    }

    /// The anchor's row, inside a caller's transaction (also used by `principal add --ca`).
    pub(crate) fn add_trust_anchor_unrecorded(&self, who: &Principal, anchor: &TrustAnchor) -> Result<(), StoreError> {
        self.permit(who, &Action::IdentityManage)?;
        check_name("organisation", &anchor.org)?;
        if !is_hex64(&anchor.key_sha256) {
            return Err(StoreError::BadInput { detail: "a CA key pin is 64 lowercase hex digits".to_owned() });
        }
        if !anchor.cert_pem.contains("-----BEGIN CERTIFICATE-----") {
            return Err(StoreError::BadInput { detail: "the CA certificate is not PEM".to_owned() });
        }
        self.catalog()
            .conn
            .execute(
                "INSERT OR IGNORE INTO trust_anchors (org, key_sha256, subject, cert_pem, added_by, added_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![anchor.org, anchor.key_sha256, anchor.subject, anchor.cert_pem, who.name, now()],
            )
            .map_err(StoreError::catalog("record trust anchor"))?;
        Ok(())
    }

    /// The CAs that may speak for `org` (every organisation's with `None`), oldest first.
    pub fn trust_anchors(&self, org: Option<&str>) -> Result<Vec<TrustAnchor>, StoreError> {
        let mut stmt = self
            .catalog()
            .conn
            .prepare(
                "SELECT org, key_sha256, subject, cert_pem, added_by, added_at FROM trust_anchors
                 WHERE ?1 IS NULL OR org = ?1 ORDER BY added_at, org, key_sha256",
            )
            .map_err(StoreError::catalog("list trust anchors"))?;
        let rows = stmt
            .query_map([org], |r| {
                Ok(TrustAnchor {
                    org: r.get(0)?,
                    key_sha256: r.get(1)?,
                    subject: r.get(2)?,
                    cert_pem: r.get(3)?,
                    added_by: r.get(4)?,
                    added_at: r.get(5)?,
                })
            })
            .map_err(StoreError::catalog("list trust anchors"))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(StoreError::catalog("list trust anchors"))?;
        Ok(rows)
    }

    /// Every organisation's CAs, for someone who may list principals.
    pub fn list_trust_anchors(&self, who: &Principal) -> Result<Vec<TrustAnchor>, StoreError> {
        self.authorize(who, &Action::PrincipalList, &[])?;
        self.trust_anchors(None)
    }

    /// Records a certificate the zone's development CA issued for `principal` (so that it can be listed and revoked
    /// by name).
    pub fn record_issued_certificate(
        &self,
        who: &Principal,
        sha256: &str,
        principal: &str,
        not_after: &str,
    ) -> Result<(), StoreError> {
        let objects = [format!("principal:{principal}")];
        let change = || {
            self.permit(who, &Action::IdentityManage)?;
            if !is_hex64(sha256) {
                return Err(StoreError::BadInput {
                    detail: "a certificate fingerprint is 64 lowercase hex digits".into(),
                });
            }
            self.catalog()
                .conn
                .execute(
                    "INSERT INTO certificates (sha256, principal, not_after, issued_by, issued_at)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![sha256, principal, not_after, who.name, now()],
                )
                .map_err(StoreError::catalog("record certificate"))?;
            Ok(())
        };
        self.logged_change(who, "cert.issue", &objects, change, |_, e| {
            e.hash(format!("cert:sha256:{sha256}")).detail(format!("development CA, valid until {not_after}"))
        })
    }

    /// Revokes the certificate with fingerprint `sha256` (the authority's act, `cert.revoke`): the server refuses it
    /// from the next request on, whoever it names.
    pub fn revoke_certificate(
        &self,
        who: &Principal,
        sha256: &str,
        reason: &str,
    ) -> Result<CertificateRecord, StoreError> {
        let sha256 = sha256.trim().to_ascii_lowercase();
        let objects = [format!("cert:{sha256}")];
        let change = || {
            self.permit(who, &Action::IdentityManage)?;
            check_reason(reason)?;
            if !is_hex64(&sha256) {
                return Err(StoreError::BadInput {
                    detail: format!(
                        "`{}` is not a certificate fingerprint (the SHA-256 of its DER: 64 hex digits, as `cert \
                         list` and the server's access log show it)",
                        sha256.escape_debug()
                    ),
                });
            }
            if self.certificate(&sha256)?.is_some_and(|c| c.revoked_at.is_some()) {
                return Err(StoreError::BadInput { detail: format!("certificate {sha256} is already revoked") });
            }
            self.catalog()
                .conn
                .execute(
                    "INSERT INTO certificates (sha256, revoked_by, revoked_at, reason) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (sha256) DO UPDATE SET revoked_by = ?2, revoked_at = ?3, reason = ?4",
                    params![sha256, who.name, now(), reason.trim()],
                )
                .map_err(StoreError::catalog("revoke certificate"))?;
            Ok(())
        };
        self.logged_change(who, "cert.revoke", &objects, change, |_, e| {
            e.detail(reason.trim().escape_debug().to_string())
        })?;
        self.certificate(&sha256)?
            .ok_or_else(|| StoreError::BadInput { detail: "the revocation was not recorded".into() })
    }

    /// The record of certificate `sha256`, if the zone has one.
    pub fn certificate(&self, sha256: &str) -> Result<Option<CertificateRecord>, StoreError> {
        self.catalog()
            .conn
            .query_row(
                "SELECT sha256, principal, not_after, issued_by, issued_at, revoked_by, revoked_at, reason
                 FROM certificates WHERE sha256 = ?1",
                [sha256],
                certificate_row,
            )
            .optional()
            .map_err(StoreError::catalog("read certificate"))
    }

    /// Every certificate the zone knows of (issued by its development CA, or revoked), for the authority and the
    /// inspector.
    pub fn certificates(&self, who: &Principal) -> Result<Vec<CertificateRecord>, StoreError> {
        self.authorize(who, &Action::CertificateRead, &[])?;
        let mut stmt = self
            .catalog()
            .conn
            .prepare(
                "SELECT sha256, principal, not_after, issued_by, issued_at, revoked_by, revoked_at, reason
                 FROM certificates ORDER BY coalesce(issued_at, revoked_at), sha256",
            )
            .map_err(StoreError::catalog("list certificates"))?;
        let rows = stmt
            .query_map([], certificate_row)
            .map_err(StoreError::catalog("list certificates"))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(StoreError::catalog("list certificates"))?;
        Ok(rows)
    }
}

fn certificate_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<CertificateRecord> {
    Ok(CertificateRecord {
        sha256: r.get(0)?,
        principal: r.get(1)?,
        not_after: r.get(2)?,
        issued_by: r.get(3)?,
        issued_at: r.get(4)?,
        revoked_by: r.get(5)?,
        revoked_at: r.get(6)?,
        reason: r.get(7)?,
    })
}

#[cfg(test)]
mod tests {
    use zone_access::Role;

    use super::*;

    fn zone() -> (tempfile::TempDir, Zone, Principal) {
        let dir = tempfile::tempdir().expect("tempdir");
        let zone = Zone::init(&dir.path().join("z"), "dsb", Some("data-bureau")).expect("init");
        let dsb = zone.actor("dsb").expect("authority");
        let clerk = Principal { name: "clerk".into(), role: Role::Agency, org: Some("taxation".into()) };
        zone.add_principal(&dsb, &clerk).expect("add");
        (dir, zone, dsb)
    }

    #[test]
    fn a_suspended_principal_cannot_act_until_resumed_and_a_removed_one_never() {
        let (_dir, zone, dsb) = zone();
        zone.set_standing(&dsb, "clerk", Standing::Suspended, "lost laptop").expect("suspend");
        let err = zone.actor("clerk").expect_err("suspended");
        assert_eq!(err.class(), "access.suspended");
        assert!(err.to_string().contains("lost laptop"), "{err}");
        zone.set_standing(&dsb, "clerk", Standing::Active, "laptop found").expect("resume");
        zone.actor("clerk").expect("active again");
        zone.set_standing(&dsb, "clerk", Standing::Removed, "left the agency").expect("remove");
        assert_eq!(zone.actor("clerk").expect_err("removed").class(), "access.removed");
        let again = zone.set_standing(&dsb, "clerk", Standing::Active, "back").expect_err("final");
        assert!(again.to_string().contains("final"), "{again}");
        // Nobody changes their own standing; only the authority changes anyone's.
        assert!(zone.set_standing(&dsb, "dsb", Standing::Suspended, "x").is_err());
        let actions: Vec<String> = zone
            .audit_entries(&dsb)
            .expect("log")
            .into_iter()
            .filter(|e| e.action.starts_with("principal.") || e.action == "zone.access")
            .map(|e| format!("{} {}", e.action, serde_json::to_value(e.outcome).expect("outcome")))
            .collect();
        for expected in [
            "principal.suspend \"ok\"",
            "principal.resume \"ok\"",
            "principal.remove \"ok\"",
            "zone.access \"refused\"",
        ] {
            assert!(actions.iter().any(|a| a == expected), "{expected} not in {actions:?}");
        }
    }

    #[test]
    fn revocations_are_recorded_once_and_fingerprints_are_checked() {
        let (_dir, zone, dsb) = zone();
        let fp = "ab".repeat(32);
        let record = zone.revoke_certificate(&dsb, &fp.to_uppercase(), "key leaked").expect("revoke");
        assert_eq!(record.sha256, fp);
        assert!(record.revoked_at.is_some());
        assert!(zone.revoke_certificate(&dsb, &fp, "again").is_err());
        assert!(zone.revoke_certificate(&dsb, "not-a-fingerprint", "x").is_err());
        let clerk = zone.actor("clerk").expect("clerk");
        assert_eq!(zone.revoke_certificate(&clerk, &"cd".repeat(32), "x").expect_err("role").class(), "access.role");
    }
}
