//! Who may do what: principals, organisations and their CAs, certificates, grants, applications and their
//! two-party approval, and the module check an operator runs before submitting.

use zone_api::routes::{
    AnchorView, AppApprove, AppList, AppReject, AppShow, AppSubmit, CertList, CertRevoke, DeclaredColumn,
    GrantChangeRequest, GrantCreate, GrantList, GrantResume, GrantShow, GrantSuspend, GrantTerminate, GrantView,
    IssuedCertificate, ModuleCheck, ModuleCheckAnswer, OrgAdd, OrgAdded, OrgList, OrgView, PrincipalAdd,
    PrincipalAdded, PrincipalList, PrincipalRemove, PrincipalResume, PrincipalSuspend,
};
use zone_api::{Call as _, Outputs};
use zone_store::{
    Action, AppRequest, AppView, CertificateRecord, Grant, GrantChange, GrantStatus, NewGrant, Principal,
    PrincipalRecord, Standing, Zone, today,
};

use super::{Handle, Session, date};
use crate::error::OpsError;
use crate::pki;

/// The most days a development-CA client certificate is valid.
pub const MAX_CERT_DAYS: u32 = 825;

impl Handle for PrincipalAdd {
    fn handle(self, s: &mut Session<'_>) -> Result<PrincipalAdded, OpsError> {
        let new = Principal { name: self.name.clone(), role: self.role, org: self.org.clone() };
        // Everything that can be checked is checked before the principal is added: nothing changes on a refusal.
        let anchor = match &self.ca {
            Some(file) => {
                let org = new.org.as_deref().ok_or_else(|| {
                    OpsError::Invalid("a CA is registered for the principal's organisation: give its org".into())
                })?;
                Some(pki::read_anchor(org, &s.files.input(file, Self::NAME)?)?)
            }
            None => None,
        };
        let root = s.zone.root().to_owned();
        if self.issue_cert {
            // A zone without a development CA refuses here, with nothing changed.
            pki::DevCa::at(&root).require()?;
            if new.org.is_none() {
                return Err(OpsError::Invalid(
                    "--issue-cert needs --org: a client certificate carries its principal's organisation (O), and \
                     the server accepts it only from a CA registered for that organisation"
                        .into(),
                ));
            }
            if !(1..=MAX_CERT_DAYS).contains(&self.cert_days) {
                return Err(OpsError::Invalid(format!(
                    "--cert-days {} is out of range: 1 to {MAX_CERT_DAYS} days",
                    self.cert_days
                )));
            }
        }
        s.zone.add_principal(&s.who, &new)?;
        if let Some(anchor) = &anchor {
            s.zone.add_trust_anchor(&s.who, anchor)?;
        }
        let mut output = Outputs::default();
        let certificate = match (self.issue_cert, new.org.as_deref()) {
            (true, Some(org)) => {
                let out = s.files.output_dir()?;
                // The development CA speaks for the organisations it has issued for, and no other.
                s.zone.add_trust_anchor(&s.who, &pki::read_anchor(org, &pki::DevCa::at(&root).ca_cert)?)?;
                let issued = pki::issue_client(&root, &out, &new.name, new.role.name(), org, self.cert_days)?;
                s.zone.record_issued_certificate(&s.who, &issued.sha256, &new.name, &issued.not_after)?;
                output = s.files.outputs(&out)?;
                let name =
                    |p: &std::path::Path| p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                Some(IssuedCertificate {
                    cert: name(&issued.cert),
                    key: name(&issued.key),
                    sha256: issued.sha256,
                    not_after: issued.not_after,
                })
            }
            _ => None,
        };
        Ok(PrincipalAdded {
            name: new.name,
            role: new.role,
            org: new.org,
            certificate,
            ca: anchor.map(|a| AnchorView { key_sha256: a.key_sha256, subject: a.subject }),
            output,
        })
    }
}

impl Handle for PrincipalList {
    fn handle(self, s: &mut Session<'_>) -> Result<Vec<PrincipalRecord>, OpsError> {
        Ok(s.zone.principal_records(&s.who)?)
    }
}

fn standing(s: &Session<'_>, name: &str, to: Standing, reason: &str) -> Result<PrincipalRecord, OpsError> {
    Ok(s.zone.set_standing(&s.who, name, to, reason)?)
}

impl Handle for PrincipalSuspend {
    fn handle(self, s: &mut Session<'_>) -> Result<PrincipalRecord, OpsError> {
        standing(s, &self.name, Standing::Suspended, &self.reason)
    }
}

impl Handle for PrincipalResume {
    fn handle(self, s: &mut Session<'_>) -> Result<PrincipalRecord, OpsError> {
        standing(s, &self.name, Standing::Active, &self.reason)
    }
}

impl Handle for PrincipalRemove {
    fn handle(self, s: &mut Session<'_>) -> Result<PrincipalRecord, OpsError> {
        standing(s, &self.name, Standing::Removed, &self.reason)
    }
}

impl Handle for OrgAdd {
    fn handle(self, s: &mut Session<'_>) -> Result<OrgAdded, OpsError> {
        let anchor = pki::read_anchor(&self.org, &s.files.input(&self.ca, Self::NAME)?)?;
        let added = s.zone.add_trust_anchor(&s.who, &anchor)?;
        Ok(OrgAdded { org: anchor.org, key_sha256: anchor.key_sha256, subject: anchor.subject, added })
    }
}

impl Handle for OrgList {
    fn handle(self, s: &mut Session<'_>) -> Result<Vec<OrgView>, OpsError> {
        let anchors = s.zone.list_trust_anchors(&s.who)?;
        let principals = s.zone.list_principals(&s.who)?;
        let mut orgs = std::collections::BTreeMap::<String, OrgView>::new();
        let view = |org: &str| OrgView { org: org.to_owned(), cas: Vec::new(), principals: Vec::new() };
        for a in anchors {
            orgs.entry(a.org.clone()).or_insert_with(|| view(&a.org)).cas.push(a);
        }
        for p in principals {
            if let Some(org) = &p.org {
                orgs.entry(org.clone()).or_insert_with(|| view(org)).principals.push(p.name);
            }
        }
        Ok(orgs.into_values().collect())
    }
}

impl Handle for CertList {
    fn handle(self, s: &mut Session<'_>) -> Result<Vec<CertificateRecord>, OpsError> {
        Ok(s.zone.certificates(&s.who)?)
    }
}

impl Handle for CertRevoke {
    fn handle(self, s: &mut Session<'_>) -> Result<CertificateRecord, OpsError> {
        Ok(s.zone.revoke_certificate(&s.who, &self.fingerprint, &self.reason)?)
    }
}

/// A grant with its status today.
pub fn grant_view(grant: Grant) -> GrantView {
    let status = grant.status(today());
    GrantView { grant, status }
}

impl Handle for GrantCreate {
    fn handle(self, s: &mut Session<'_>) -> Result<GrantView, OpsError> {
        let keep = |v: Vec<String>| v.into_iter().filter(|x| !x.is_empty()).collect::<Vec<_>>();
        let terms = match &self.terms {
            Some(f) => Some(s.files.input(f, Self::NAME)?),
            None => None,
        };
        let new = NewGrant {
            operator: self.operator,
            datasets: keep(self.datasets),
            providers: keep(self.providers),
            domains: keep(self.domains),
            valid_from: date(&self.from, "--from")?,
            valid_to: date(&self.to, "--to")?,
            terms,
        };
        Ok(grant_view(s.zone.create_grant(&s.who, &new)?))
    }
}

impl Handle for GrantList {
    fn handle(self, s: &mut Session<'_>) -> Result<Vec<GrantView>, OpsError> {
        Ok(s.zone.grants(&s.who)?.into_iter().map(grant_view).collect())
    }
}

impl Handle for GrantShow {
    fn handle(self, s: &mut Session<'_>) -> Result<GrantView, OpsError> {
        Ok(grant_view(s.zone.grant(&s.who, self.id)?))
    }
}

/// Changes one grant (a number) or every grant of an operator (a name) that is in `applies_to` (terminate: any
/// grant not yet terminated).
fn change_grants(
    zone: &Zone,
    who: &Principal,
    target: &str,
    change: &GrantChange,
    applies_to: GrantStatus,
) -> Result<Vec<GrantView>, OpsError> {
    let ids: Vec<u64> = match target.parse::<u64>() {
        Ok(id) => vec![id],
        Err(_) => {
            let terminate = matches!(change, GrantChange::Terminate { .. });
            let ids: Vec<u64> = zone
                .grants(who)?
                .iter()
                .filter(|g| g.operator == target)
                .filter(|g| {
                    let s = g.status(today());
                    if terminate { s != GrantStatus::Terminated } else { s == applies_to }
                })
                .map(|g| g.id)
                .collect();
            if ids.is_empty() {
                return Err(OpsError::Refused {
                    class: "grant.state",
                    detail: format!("operator `{target}` has no grant that is {}", applies_to.name()),
                });
            }
            ids
        }
    };
    let mut changed = Vec::new();
    for id in ids {
        changed.push(grant_view(zone.change_grant(who, id, change)?));
    }
    Ok(changed)
}

impl Handle for GrantSuspend {
    fn handle(self, s: &mut Session<'_>) -> Result<Vec<GrantView>, OpsError> {
        let GrantChangeRequest { target, reason, correct_by } = self.0;
        let correct_by = correct_by.ok_or_else(|| OpsError::Invalid("a suspension needs --correct-by".into()))?;
        let change = GrantChange::Suspend { reason, correct_by: date(&correct_by, "--correct-by")? };
        change_grants(&s.zone, &s.who, &target, &change, GrantStatus::Active)
    }
}

impl Handle for GrantResume {
    fn handle(self, s: &mut Session<'_>) -> Result<Vec<GrantView>, OpsError> {
        let GrantChangeRequest { target, reason, .. } = self.0;
        change_grants(&s.zone, &s.who, &target, &GrantChange::Resume { reason }, GrantStatus::Suspended)
    }
}

impl Handle for GrantTerminate {
    fn handle(self, s: &mut Session<'_>) -> Result<Vec<GrantView>, OpsError> {
        let GrantChangeRequest { target, reason, .. } = self.0;
        change_grants(&s.zone, &s.who, &target, &GrantChange::Terminate { reason }, GrantStatus::Active)
    }
}

impl Handle for AppSubmit {
    fn handle(self, s: &mut Session<'_>) -> Result<AppView, OpsError> {
        let module = s.files.input(&self.module, Self::NAME)?;
        let security_notes = match &self.security_notes {
            Some(f) => Some(s.files.input(f, Self::NAME)?),
            None => None,
        };
        let request = AppRequest {
            datasets: self.datasets,
            domain: self.domain,
            purpose: self.purpose,
            mode: self.mode,
            params: crate::parse_params(&self.params)?,
            security_notes,
            batch_rows: self.batch_rows,
            partitions: self.partitions,
            epsilon: self.epsilon,
            block_subjects: self.block_subjects,
            key_domain: self.key_domain,
        };
        crate::submit::submit_app_shown(&s.zone, &s.who, &request, &module, &s.files.shown(&self.module))
    }
}

impl Handle for AppList {
    fn handle(self, s: &mut Session<'_>) -> Result<Vec<AppView>, OpsError> {
        Ok(s.zone.apps(&s.who)?)
    }
}

impl Handle for AppShow {
    fn handle(self, s: &mut Session<'_>) -> Result<AppView, OpsError> {
        Ok(s.zone.app(&s.who, self.id)?)
    }
}

impl Handle for AppApprove {
    fn handle(self, s: &mut Session<'_>) -> Result<AppView, OpsError> {
        Ok(s.zone.decide_app(&s.who, self.id, true, &self.reason)?)
    }
}

impl Handle for AppReject {
    fn handle(self, s: &mut Session<'_>) -> Result<AppView, OpsError> {
        Ok(s.zone.decide_app(&s.who, self.id, false, &self.reason)?)
    }
}

impl Handle for ModuleCheck {
    fn handle(self, s: &mut Session<'_>) -> Result<ModuleCheckAnswer, OpsError> {
        let shown = s.files.shown(&self.module);
        s.zone.authorize(&s.who, &Action::ModuleCheck, &[format!("module:{shown}")])?;
        let path = s.files.input(&self.module, Self::NAME)?;
        let wasm = std::fs::read(&path).map_err(|source| OpsError::Read { path: path.clone(), source })?;
        let params = crate::parse_params(&self.params)?;
        let report =
            crate::check_module(Some(&s.zone), &wasm, std::path::Path::new(&shown), self.dataset.as_deref(), &params)?;
        Ok(module_answer(shown, report))
    }
}

/// What a module check answers, from its report.
pub fn module_answer(module: String, report: crate::ModuleReport) -> ModuleCheckAnswer {
    let declared = report.declared.as_ref().map(|d| {
        let keys = d.keys.iter().map(|k| DeclaredColumn {
            name: k.name().clone(),
            role: "key".into(),
            data_type: k.data_type().to_string(),
            aggregate: None,
            bounds: None,
        });
        let measures = d.measures.iter().map(|m| DeclaredColumn {
            name: m.field.name().clone(),
            role: "measure".into(),
            data_type: m.field.data_type().to_string(),
            aggregate: Some(m.aggregate.name().to_owned()),
            bounds: m.bounds.map(|(lo, hi)| vec![lo, hi]),
        });
        keys.chain(measures).collect()
    });
    ModuleCheckAnswer {
        module,
        sha256: report.sha256,
        imports: report.imports,
        accepted: true,
        declared_output: declared,
        reads: report.declared.map(|d| d.inputs.unwrap_or_else(|| vec!["*".to_owned()])),
    }
}
