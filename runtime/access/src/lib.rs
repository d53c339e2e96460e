//! # zone-access — the one authorization layer
//!
//! Every interface of a zone (the local CLI today, the HTTPS API later) resolves who is acting to a
//! [`Principal`] and asks [`authorize`] before it does anything. The decision is pure: it sees the principal,
//! the [`Action`] with the facts it needs (whose dataset, whose application), and nothing else. A refusal is a
//! [`Denied`] with a stable class (`access.role`, `access.scope`, `access.self`, `access.grant`) that the caller
//! records in the audit log.
//!
//! The matrix (SEED.md Art. 5–10, 14, 22):
//!
//! | action                          | authority | agency               | operator        | inspector |
//! |---------------------------------|-----------|----------------------|-----------------|-----------|
//! | zone status / verify            | yes       | –                    | –               | yes       |
//! | principal add                   | yes       | –                    | –               | –         |
//! | principal list                  | yes       | yes                  | –               | yes       |
//! | principal suspend/resume/remove, org add, cert revoke | yes | –     | –               | –         |
//! | cert list (fingerprints)        | yes       | –                    | –               | yes       |
//! | dataset publish                 | –         | own provider         | –               | –         |
//! | dataset list / show (no values) | yes       | yes                  | yes             | yes       |
//! | dataset rows                    | –         | own provider         | –               | –         |
//! | module check                    | yes       | yes                  | yes             | –         |
//! | grant create/suspend/resume/end | yes       | –                    | –               | –         |
//! | grant list / show               | yes       | covering its data    | its own         | yes       |
//! | app submit                      | –         | –                    | with a grant    | –         |
//! | app approve / reject            | yes       | its datasets         | –               | –         |
//! | app list / show                 | yes       | its datasets         | its own         | yes       |
//! | audit log / verify / export     | yes       | –                    | –               | yes       |
//! | job run                         | –         | –                    | its own app     | –         |
//! | job status / list               | yes       | jobs on its data     | its own         | yes       |
//! | job output (the product)        | –         | –                    | its own         | –         |
//! | job record in detail (counters) | –         | jobs on its data     | –               | yes       |
//! | job diagnostics (guest text)    | –         | jobs on its data     | –               | size+hash |
//! | artifact list                   | yes       | jobs on its data     | its own         | yes       |
//! | artifact review / release       | –         | jobs on its data     | –               | –         |
//! | artifact output (once released) | –         | –                    | its own         | –         |
//! | complaint file / resolve        | –         | its datasets         | –               | –         |
//! | complaint list                  | yes       | its datasets         | –               | yes       |
//! | incident open / close           | yes       | –                    | –               | –         |
//! | incident list                   | yes       | –                    | –               | yes       |
//! | report usage                    | yes       | its datasets' rows   | –               | yes       |
//!
//! Nobody decides on a request they made, or one made by their own organisation (`access.self`).
//!
//! Where to extend: a new action is a variant of [`Action`] with its name and a row in [`authorize`]; the
//! matrix test at the bottom lists every (role, action) pair and must be updated with it.

mod grant;

pub use grant::{Grant, GrantScope, GrantState, GrantStatus};

use serde::{Deserialize, Serialize};

/// The four roles of public-data authorized operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The authorizing body (the data administration): grants, approves applications, manages principals.
    Authority,
    /// A data-providing agency: publishes its datasets, approves uses of them.
    Agency,
    /// An authorized operator: submits modules and runs approved jobs.
    Operator,
    /// Reviews the audit log; sees no data.
    Inspector,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Authority, Role::Agency, Role::Operator, Role::Inspector];

    pub fn name(self) -> &'static str {
        match self {
            Role::Authority => "authority",
            Role::Agency => "agency",
            Role::Operator => "operator",
            Role::Inspector => "inspector",
        }
    }

    pub fn from_name(name: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.name() == name)
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Someone who acts in a zone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Principal {
    pub name: String,
    pub role: Role,
    /// The organisation: for an agency, the provider name its datasets' policies carry; for an operator, its
    /// company. Used for scope (an agency's own data) and for conflicts of interest.
    pub org: Option<String>,
}

/// What someone wants to do, with the facts the decision needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action<'a> {
    ZoneRead,
    PrincipalAdd,
    PrincipalList,
    /// Suspend, resume or remove a principal; register an organisation's CA; revoke a certificate.
    IdentityManage,
    /// The certificates the zone issued or revoked (fingerprints, holders, dates).
    CertificateRead,
    /// `provider`: the provider the policy names, once the policy is read (`None`: only the role is checked).
    DatasetPublish {
        provider: Option<&'a str>,
    },
    /// Catalog metadata: schemas, classes, counts. Never a value.
    DatasetRead,
    /// The raw rows of a dataset.
    DatasetRows {
        provider: &'a str,
    },
    ModuleCheck,
    GrantManage,
    GrantRead {
        operator: &'a str,
        providers: &'a [String],
    },
    AppSubmit,
    /// Approve or reject an application made by `operator` (of `operator_org`) over `providers`' datasets.
    AppDecide {
        operator: &'a str,
        operator_org: Option<&'a str>,
        providers: &'a [String],
    },
    AppRead {
        operator: &'a str,
        providers: &'a [String],
    },
    AuditRead,
    JobRun {
        operator: &'a str,
    },
    /// A job's status and counts (not its product).
    JobRead {
        operator: &'a str,
        providers: &'a [String],
    },
    /// A released product: the operator who ran the job takes it out of the zone.
    ProductRead {
        operator: &'a str,
    },
    /// What a job's guest wrote (logs, panic and error text): it stays in the zone, with the agencies whose data the
    /// guest saw (a guest can write any value it reads). The inspector sees that it exists, its size and hash.
    GuestTextRead {
        providers: &'a [String],
    },
    /// A job's record in detail: the failure class and detail, every counter (groups, suppressed, dropped, time).
    JobDetailRead {
        providers: &'a [String],
    },
    /// The content of an artifact held for review (it may hold anything the guest saw).
    ArtifactReview {
        providers: &'a [String],
    },
    /// Release or reject an artifact held for review.
    ArtifactDecide {
        providers: &'a [String],
    },
    /// File or resolve a complaint about a dataset of `provider` (Art. 25).
    ComplaintHandle {
        provider: &'a str,
    },
    /// Read complaints about a dataset of `provider` (never the subject's value: only its token is kept).
    ComplaintRead {
        provider: &'a str,
    },
    /// Open or close an incident against an operator (Art. 24).
    IncidentManage,
    /// Read incidents and their evidence.
    IncidentRead,
    /// Usage reports (an agency sees its own datasets' figures only).
    ReportRead,
    /// Ask to drop old audit entries (always refused by the log; the role is checked first).
    AuditCompact,
}

impl Action<'_> {
    /// The name the audit log records for a refusal of this action.
    pub fn name(&self) -> &'static str {
        match self {
            Action::ZoneRead => "zone.read",
            Action::PrincipalAdd => "principal.add",
            Action::PrincipalList => "principal.list",
            Action::IdentityManage => "identity.manage",
            Action::CertificateRead => "cert.read",
            Action::DatasetPublish { .. } => "dataset.publish",
            Action::DatasetRead => "dataset.read",
            Action::DatasetRows { .. } => "dataset.rows",
            Action::ModuleCheck => "module.check",
            Action::GrantManage => "grant.manage",
            Action::GrantRead { .. } => "grant.read",
            Action::AppSubmit => "app.submit",
            Action::AppDecide { .. } => "app.decide",
            Action::AppRead { .. } => "app.read",
            Action::AuditRead => "audit.read",
            Action::JobRun { .. } => "job.run",
            Action::JobRead { .. } => "job.read",
            Action::ProductRead { .. } => "product.read",
            Action::GuestTextRead { .. } => "job.guest_text",
            Action::JobDetailRead { .. } => "job.detail",
            Action::ArtifactReview { .. } => "artifact.review",
            Action::ArtifactDecide { .. } => "artifact.decide",
            Action::ComplaintHandle { .. } => "complaint.handle",
            Action::ComplaintRead { .. } => "complaint.read",
            Action::IncidentManage => "incident.manage",
            Action::IncidentRead => "incident.read",
            Action::ReportRead => "report.read",
            Action::AuditCompact => "audit.compact",
        }
    }
}

/// Why an action was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{who} ({role}) may not {what}: {why} [{class}]")]
pub struct Denied {
    pub who: String,
    pub role: Role,
    /// What was asked, in words.
    pub what: &'static str,
    pub why: String,
    /// `access.role`, `access.scope`, `access.self`, `access.grant`.
    pub class: &'static str,
}

fn words(action: &Action<'_>) -> &'static str {
    match action {
        Action::ZoneRead => "read the zone's status",
        Action::PrincipalAdd => "add principals",
        Action::PrincipalList => "list principals",
        Action::IdentityManage => "suspend or remove principals, register CAs or revoke certificates",
        Action::CertificateRead => "read the zone's certificate records",
        Action::DatasetPublish { .. } => "publish datasets",
        Action::DatasetRead => "read the catalog",
        Action::DatasetRows { .. } => "read a dataset's rows",
        Action::ModuleCheck => "check modules",
        Action::GrantManage => "create or change grants",
        Action::GrantRead { .. } => "read this grant",
        Action::AppSubmit => "submit applications",
        Action::AppDecide { .. } => "approve or reject this application",
        Action::AppRead { .. } => "read this application",
        Action::AuditRead => "read the audit log",
        Action::JobRun { .. } => "run this job",
        Action::JobRead { .. } => "read this job",
        Action::ProductRead { .. } => "take this product out of the zone",
        Action::GuestTextRead { .. } => "read what this job's guest wrote",
        Action::JobDetailRead { .. } => "read this job's record in detail",
        Action::ArtifactReview { .. } => "read this artifact",
        Action::ArtifactDecide { .. } => "release or reject this artifact",
        Action::ComplaintHandle { .. } => "file or resolve complaints about this dataset",
        Action::ComplaintRead { .. } => "read complaints about this dataset",
        Action::IncidentManage => "open or close incidents",
        Action::IncidentRead => "read incidents",
        Action::ReportRead => "read usage reports",
        Action::AuditCompact => "compact the audit log",
    }
}

/// The decision. `Ok(())` means the principal may do it; anything else is refused, with the reason.
pub fn authorize(who: &Principal, action: &Action<'_>) -> Result<(), Denied> {
    use Role::*;
    let deny = |class: &'static str, why: String| Denied {
        who: who.name.clone(),
        role: who.role,
        what: words(action),
        why,
        class,
    };
    let role_only = |allowed: &[Role]| {
        if allowed.contains(&who.role) {
            Ok(())
        } else {
            let names: Vec<&str> = allowed.iter().map(|r| r.name()).collect();
            Err(deny("access.role", format!("only {} may", names.join(" or "))))
        }
    };
    let own_org = |provider: &str| who.org.as_deref() == Some(provider);
    let org_text = || who.org.clone().unwrap_or_else(|| "no organisation".to_owned());
    match *action {
        Action::ZoneRead | Action::AuditRead => role_only(&[Authority, Inspector]),
        Action::PrincipalAdd
        | Action::IdentityManage
        | Action::GrantManage
        | Action::IncidentManage
        | Action::AuditCompact => role_only(&[Authority]),
        Action::CertificateRead => role_only(&[Authority, Inspector]),
        Action::IncidentRead => role_only(&[Authority, Inspector]),
        Action::ReportRead => role_only(&[Authority, Agency, Inspector]),
        Action::PrincipalList => role_only(&[Authority, Agency, Inspector]),
        Action::DatasetRead => Ok(()),
        Action::ModuleCheck => role_only(&[Authority, Agency, Operator]),
        Action::AppSubmit => role_only(&[Operator]),
        Action::DatasetPublish { provider } => {
            role_only(&[Agency])?;
            match provider {
                Some(p) if !own_org(p) => Err(deny(
                    "access.scope",
                    format!("the dataset's provider is `{p}`, and {} acts for {}", who.name, org_text()),
                )),
                _ => Ok(()),
            }
        }
        Action::DatasetRows { provider } => {
            role_only(&[Agency]).map_err(|_| deny("access.role", "only the providing agency sees rows".to_owned()))?;
            if own_org(provider) {
                Ok(())
            } else {
                Err(deny("access.scope", format!("the rows belong to `{provider}`, not to {}", org_text())))
            }
        }
        Action::GrantRead { operator, providers }
        | Action::AppRead { operator, providers }
        | Action::JobRead { operator, providers } => match who.role {
            Authority | Inspector => Ok(()),
            Operator if who.name == operator => Ok(()),
            Operator => Err(deny("access.scope", format!("it belongs to operator `{operator}`"))),
            Agency if providers.iter().any(|p| own_org(p)) => Ok(()),
            Agency => Err(deny("access.scope", format!("none of its data is {}'s", org_text()))),
        },
        Action::AppDecide { operator, operator_org, providers } => {
            // A conflict of interest is refused first, whatever the role: nobody approves their own request.
            if who.name == operator {
                return Err(deny("access.self", "it is their own request".to_owned()));
            }
            if let (Some(mine), Some(theirs)) = (who.org.as_deref(), operator_org)
                && mine == theirs
            {
                return Err(deny("access.self", format!("the request is by their own organisation `{mine}`")));
            }
            match who.role {
                Authority => Ok(()),
                Agency if providers.iter().any(|p| own_org(p)) => Ok(()),
                Agency => Err(deny(
                    "access.scope",
                    format!("the application uses data of {}, not of {}", providers.join(", "), org_text()),
                )),
                Operator | Inspector => Err(deny("access.role", "only the authority or a providing agency may".into())),
            }
        }
        Action::JobDetailRead { providers } => match who.role {
            Inspector => Ok(()),
            Agency if providers.iter().any(|p| own_org(p)) => Ok(()),
            Agency => Err(deny("access.scope", format!("none of its data is {}'s", org_text()))),
            Authority | Operator => {
                Err(deny("access.role", "a job's detail is for the providing agency and the inspector".into()))
            }
        },
        Action::GuestTextRead { providers } => match who.role {
            Agency if providers.iter().any(|p| own_org(p)) => Ok(()),
            Agency => Err(deny("access.scope", format!("none of its data is {}'s", org_text()))),
            Authority | Operator | Inspector => Err(deny(
                "access.role",
                "guest text stays with the agencies whose data the guest saw (the inspector sees its size and hash)"
                    .into(),
            )),
        },
        Action::ArtifactReview { providers } | Action::ArtifactDecide { providers } => match who.role {
            Agency if providers.iter().any(|p| own_org(p)) => Ok(()),
            Agency => Err(deny(
                "access.scope",
                format!("the job used data of {}, not of {}", providers.join(", "), org_text()),
            )),
            Authority | Operator | Inspector => {
                Err(deny("access.role", "only a providing agency reviews what a job made from its data".into()))
            }
        },
        Action::ComplaintHandle { provider } => {
            role_only(&[Agency])?;
            if own_org(provider) {
                Ok(())
            } else {
                Err(deny("access.scope", format!("the dataset belongs to `{provider}`, not to {}", org_text())))
            }
        }
        Action::ComplaintRead { provider } => match who.role {
            Authority | Inspector => Ok(()),
            Agency if own_org(provider) => Ok(()),
            Agency => Err(deny("access.scope", format!("the dataset belongs to `{provider}`, not to {}", org_text()))),
            Operator => {
                Err(deny("access.role", "complaints are for the agency, the authority and the inspector".into()))
            }
        },
        Action::JobRun { operator } | Action::ProductRead { operator } => {
            role_only(&[Operator])?;
            if who.name == operator {
                Ok(())
            } else {
                Err(deny("access.scope", format!("the application belongs to operator `{operator}`")))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(name: &str, role: Role, org: Option<&str>) -> Principal {
        Principal { name: name.into(), role, org: org.map(Into::into) }
    }

    /// Every (principal, action) pair and whether it is allowed; the matrix of the crate documentation.
    #[test]
    fn role_action_matrix() {
        let authority = p("dsb", Role::Authority, Some("data-bureau"));
        let mr = p("mr-clerk", Role::Agency, Some("market-regulation"));
        let tax = p("tax-clerk", Role::Agency, Some("taxation"));
        let op = p("acme", Role::Operator, Some("acme-credit"));
        let other_op = p("zenith", Role::Operator, Some("zenith"));
        let inspector = p("inspector", Role::Inspector, None);
        let everyone = [&authority, &mr, &tax, &op, &other_op, &inspector];
        let mr_only = ["market-regulation".to_owned()];
        let both = ["market-regulation".to_owned(), "taxation".to_owned()];
        let cases: Vec<(Action<'_>, Vec<&Principal>)> = vec![
            (Action::ZoneRead, vec![&authority, &inspector]),
            (Action::PrincipalAdd, vec![&authority]),
            (Action::PrincipalList, vec![&authority, &mr, &tax, &inspector]),
            (Action::IdentityManage, vec![&authority]),
            (Action::CertificateRead, vec![&authority, &inspector]),
            (Action::DatasetPublish { provider: None }, vec![&mr, &tax]),
            (Action::DatasetPublish { provider: Some("market-regulation") }, vec![&mr]),
            (Action::DatasetRead, everyone.to_vec()),
            (Action::DatasetRows { provider: "taxation" }, vec![&tax]),
            (Action::ModuleCheck, vec![&authority, &mr, &tax, &op, &other_op]),
            (Action::GrantManage, vec![&authority]),
            (Action::GrantRead { operator: "acme", providers: &mr_only }, vec![&authority, &mr, &op, &inspector]),
            (Action::AppSubmit, vec![&op, &other_op]),
            (
                Action::AppDecide { operator: "acme", operator_org: Some("acme-credit"), providers: &mr_only },
                vec![&authority, &mr],
            ),
            (Action::AppDecide { operator: "acme", operator_org: None, providers: &both }, vec![&authority, &mr, &tax]),
            (Action::AppRead { operator: "acme", providers: &both }, vec![&authority, &mr, &tax, &op, &inspector]),
            (Action::AuditRead, vec![&authority, &inspector]),
            (Action::JobRun { operator: "acme" }, vec![&op]),
            (Action::JobRead { operator: "acme", providers: &both }, vec![&authority, &mr, &tax, &op, &inspector]),
            (Action::ProductRead { operator: "acme" }, vec![&op]),
            (Action::GuestTextRead { providers: &mr_only }, vec![&mr]),
            (Action::GuestTextRead { providers: &both }, vec![&mr, &tax]),
            (Action::JobDetailRead { providers: &mr_only }, vec![&mr, &inspector]),
            (Action::JobDetailRead { providers: &both }, vec![&mr, &tax, &inspector]),
            (Action::ArtifactReview { providers: &mr_only }, vec![&mr]),
            (Action::ArtifactReview { providers: &both }, vec![&mr, &tax]),
            (Action::ArtifactDecide { providers: &mr_only }, vec![&mr]),
            (Action::ComplaintHandle { provider: "market-regulation" }, vec![&mr]),
            (Action::ComplaintRead { provider: "market-regulation" }, vec![&authority, &mr, &inspector]),
            (Action::IncidentManage, vec![&authority]),
            (Action::IncidentRead, vec![&authority, &inspector]),
            (Action::ReportRead, vec![&authority, &mr, &tax, &inspector]),
            (Action::AuditCompact, vec![&authority]),
        ];
        for (action, allowed) in &cases {
            for who in everyone {
                let decision = authorize(who, action);
                let expected = allowed.iter().any(|a| a.name == who.name);
                assert_eq!(decision.is_ok(), expected, "{} ({}) → {}: {decision:?}", who.name, who.role, action.name());
                if let Err(d) = decision {
                    assert!(d.to_string().contains(&who.name) && d.class.starts_with("access."), "{d}");
                }
            }
        }
    }

    #[test]
    fn nobody_decides_their_own_request() {
        // An authority principal of the same organisation as the operator is in a conflict of interest.
        let authority = p("dsb", Role::Authority, Some("acme-credit"));
        let providers = ["taxation".to_owned()];
        let action = Action::AppDecide { operator: "acme", operator_org: Some("acme-credit"), providers: &providers };
        assert_eq!(authorize(&authority, &action).map_err(|d| d.class), Err("access.self"));
        let op = p("acme", Role::Operator, Some("acme-credit"));
        assert_eq!(authorize(&op, &action).map_err(|d| d.class), Err("access.self"));
    }
}
