//! The `principal`, `grant` and `app` commands: who may do what, and the two-party approval of applications.

use anyhow::Context as _;
use chrono::NaiveDate;
use serde_json::json;
use zone_store::{
    AppRequest, AppView, Grant, GrantChange, GrantStatus, NewGrant, Principal, Role, Standing, TrustAnchor, Zone, today,
};

use crate::args::{
    AppCommand, AppSubmitArgs, CertCommand, GrantCommand, GrantCreateArgs, OrgCommand, PrincipalCommand,
};
use crate::context::Ctx;
use crate::output::{self, Mode, bytes, inert, short};

pub fn principal(ctx: &Ctx<'_>, command: &PrincipalCommand) -> anyhow::Result<()> {
    let (zone, who) = ctx.open_as()?;
    match command {
        PrincipalCommand::Add(args) => {
            let role = Role::from_name(&args.role).with_context(|| {
                format!("--role `{}` is not one of authority, agency, operator, inspector", args.role)
            })?;
            let new = Principal { name: args.name.clone(), role, org: args.org.clone() };
            // Everything that can be checked is checked before the principal is added: nothing changes on a refusal.
            let anchor = match &args.ca {
                Some(path) => {
                    let org =
                        new.org.as_deref().context("--ca registers a CA for the principal's --org; give --org")?;
                    Some(crate::certs::read_anchor(org, path)?)
                }
                None => None,
            };
            if args.issue_cert {
                // A zone without a development CA refuses here, with nothing changed.
                crate::certs::DevCa::at(&ctx.root()?).require()?;
                if new.org.is_none() {
                    anyhow::bail!(
                        "--issue-cert needs --org: a client certificate carries its principal's organisation (O), and \
                         the server accepts it only from a CA registered for that organisation"
                    );
                }
                if !(1..=825).contains(&args.cert_days) {
                    anyhow::bail!("--cert-days {} is out of range: 1 to 825 days", args.cert_days);
                }
            }
            zone.add_principal(&who, &new)?;
            if let Some(anchor) = &anchor {
                zone.add_trust_anchor(&who, anchor)?;
            }
            let issued = match (args.issue_cert, new.org.as_deref()) {
                (true, Some(org)) => {
                    let root = ctx.root()?;
                    let out = args.cert_out.clone().unwrap_or_else(|| crate::certs::DevCa::at(&root).clients);
                    // The development CA speaks for the organisations it has issued for, and no other.
                    zone.add_trust_anchor(
                        &who,
                        &crate::certs::read_anchor(org, &crate::certs::DevCa::at(&root).ca_cert)?,
                    )?;
                    let issued = crate::certs::issue_client(&root, &out, &new.name, role.name(), org, args.cert_days)?;
                    zone.record_issued_certificate(&who, &issued.sha256, &new.name, &issued.not_after)?;
                    Some(issued)
                }
                _ => None,
            };
            match ctx.mode {
                Mode::Json => output::json(&json!({
                    "name": new.name, "role": new.role, "org": new.org,
                    "certificate": issued.as_ref().map(|i| json!({
                        "cert": i.cert, "key": i.key, "sha256": i.sha256, "not_after": i.not_after,
                    })),
                    "ca": anchor.as_ref().map(|a| json!({ "key_sha256": a.key_sha256, "subject": a.subject })),
                })),
                Mode::Human => {
                    outln!("added {} `{}`{}", role, new.name, org_text(&new));
                    if let Some(a) = &anchor {
                        outln!(
                            "client CA `{}` (key sha256:{}) may speak for {}",
                            a.subject,
                            short(&a.key_sha256),
                            a.org
                        );
                    }
                    if let Some(crate::certs::Issued { cert, key, sha256, not_after }) = &issued {
                        let name = |p: &std::path::Path| match &args.cert_out {
                            // Through a server the files come back into the folder asked for, under their names.
                            Some(_) if ctx.via.is_some() => {
                                p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
                            }
                            _ => p.display().to_string(),
                        };
                        outln!("client certificate {} and key {} (development CA)", name(cert), name(key));
                        outln!("  sha256:{sha256}, valid until {not_after}");
                    }
                    Ok(())
                }
            }
        }
        PrincipalCommand::List => {
            let all = zone.principal_records(&who)?;
            match ctx.mode {
                Mode::Json => output::json(&all),
                Mode::Human => {
                    let mut t = output::table(["name", "role", "organisation", "standing"]);
                    for r in &all {
                        let p = &r.principal;
                        let standing = match &r.reason {
                            Some(why) if r.standing != Standing::Active => format!("{} ({})", r.standing, inert(why)),
                            _ => r.standing.to_string(),
                        };
                        t.add_row(vec![
                            p.name.clone(),
                            p.role.to_string(),
                            p.org.clone().unwrap_or_default(),
                            standing,
                        ]);
                    }
                    outln!("{t}");
                    Ok(())
                }
            }
        }
        PrincipalCommand::Suspend(a) | PrincipalCommand::Resume(a) | PrincipalCommand::Remove(a) => {
            let to = match command {
                PrincipalCommand::Suspend(_) => Standing::Suspended,
                PrincipalCommand::Resume(_) => Standing::Active,
                _ => Standing::Removed,
            };
            let record = zone.set_standing(&who, &a.name, to, &a.reason)?;
            match ctx.mode {
                Mode::Json => output::json(&record),
                Mode::Human => {
                    outln!("principal `{}` is {}", record.principal.name, record.standing);
                    if to != Standing::Active {
                        outln!("every request with any of its certificates is refused from now on");
                    }
                    Ok(())
                }
            }
        }
    }
}

pub fn org(ctx: &Ctx<'_>, command: &OrgCommand) -> anyhow::Result<()> {
    let (zone, who) = ctx.open_as()?;
    match command {
        OrgCommand::Add(args) => {
            let anchor = crate::certs::read_anchor(&args.org, &args.ca)?;
            let added = zone.add_trust_anchor(&who, &anchor)?;
            match ctx.mode {
                Mode::Json => output::json(&json!({
                    "org": anchor.org, "key_sha256": anchor.key_sha256, "subject": anchor.subject, "added": added,
                })),
                Mode::Human => {
                    let what = if added { "may now speak" } else { "already speaks" };
                    outln!(
                        "client CA `{}` (key sha256:{}) {what} for {}",
                        anchor.subject,
                        anchor.key_sha256,
                        anchor.org
                    );
                    Ok(())
                }
            }
        }
        OrgCommand::List => {
            let anchors = zone.list_trust_anchors(&who)?;
            let principals = zone.list_principals(&who)?;
            let mut orgs: std::collections::BTreeMap<String, (Vec<&TrustAnchor>, Vec<&str>)> = Default::default();
            for a in &anchors {
                orgs.entry(a.org.clone()).or_default().0.push(a);
            }
            for p in &principals {
                if let Some(org) = &p.org {
                    orgs.entry(org.clone()).or_default().1.push(&p.name);
                }
            }
            match ctx.mode {
                Mode::Json => output::json(
                    &orgs
                        .iter()
                        .map(|(org, (cas, names))| json!({ "org": org, "cas": cas, "principals": names }))
                        .collect::<Vec<_>>(),
                ),
                Mode::Human => {
                    let mut t = output::table(["organisation", "client CAs (key sha256)", "principals"]);
                    for (org, (cas, names)) in &orgs {
                        let cas: Vec<String> =
                            cas.iter().map(|a| format!("{} {}", short(&a.key_sha256), a.subject)).collect();
                        let cas = if cas.is_empty() {
                            "(none: its certificates are refused)".to_owned()
                        } else {
                            cas.join("\n")
                        };
                        t.add_row(vec![org.clone(), cas, names.join(", ")]);
                    }
                    outln!("{t}");
                    Ok(())
                }
            }
        }
    }
}

pub fn cert(ctx: &Ctx<'_>, command: &CertCommand) -> anyhow::Result<()> {
    let (zone, who) = ctx.open_as()?;
    match command {
        CertCommand::List => {
            let all = zone.certificates(&who)?;
            match ctx.mode {
                Mode::Json => output::json(&all),
                Mode::Human => {
                    let mut t = output::table(["sha256", "principal", "valid until", "revoked"]);
                    for c in &all {
                        let revoked = match (&c.revoked_at, &c.reason) {
                            (Some(at), Some(why)) => format!("{at} ({})", inert(why)),
                            (Some(at), None) => at.clone(),
                            _ => String::new(),
                        };
                        t.add_row(vec![
                            c.sha256.clone(),
                            c.principal.clone().unwrap_or_default(),
                            c.not_after.clone().unwrap_or_default(),
                            revoked,
                        ]);
                    }
                    outln!("{t}");
                    Ok(())
                }
            }
        }
        CertCommand::Revoke(args) => {
            let record = zone.revoke_certificate(&who, &args.fingerprint, &args.reason)?;
            match ctx.mode {
                Mode::Json => output::json(&record),
                Mode::Human => {
                    outln!("certificate {} is revoked: the server refuses it from the next request on", record.sha256);
                    Ok(())
                }
            }
        }
    }
}

fn org_text(p: &Principal) -> String {
    p.org.as_ref().map(|o| format!(" of {o}")).unwrap_or_default()
}

fn date(text: &str, flag: &str) -> anyhow::Result<NaiveDate> {
    text.parse().with_context(|| format!("{flag} `{text}` is not a date (YYYY-MM-DD)"))
}

pub fn grant(ctx: &Ctx<'_>, command: &GrantCommand) -> anyhow::Result<()> {
    let (zone, who) = ctx.open_as()?;
    match command {
        GrantCommand::Create(args) => {
            let grant = create(&zone, &who, args)?;
            match ctx.mode {
                Mode::Json => output::json(&grant_value(&grant)),
                Mode::Human => {
                    outln!(
                        "grant {} for `{}`: {} ({} to {})",
                        grant.id,
                        grant.operator,
                        scope_text(&grant),
                        grant.valid_from,
                        grant.valid_to
                    );
                    Ok(())
                }
            }
        }
        GrantCommand::List => {
            let grants = zone.grants(&who)?;
            match ctx.mode {
                Mode::Json => {
                    let values: Vec<_> = grants.iter().map(grant_value).collect();
                    output::json(&values)
                }
                Mode::Human => {
                    if grants.is_empty() {
                        outln!("no grants you may see");
                        return Ok(());
                    }
                    let mut t = output::table(["id", "operator", "status", "covers", "from", "to", "note"]);
                    for g in &grants {
                        t.add_row(vec![
                            g.id.to_string(),
                            g.operator.clone(),
                            g.status(today()).name().to_owned(),
                            scope_text(g),
                            g.valid_from.to_string(),
                            g.valid_to.to_string(),
                            state_note(g),
                        ]);
                    }
                    outln!("{t}");
                    Ok(())
                }
            }
        }
        GrantCommand::Show { id } => {
            let g = zone.grant(&who, *id)?;
            match ctx.mode {
                Mode::Json => output::json(&grant_value(&g)),
                Mode::Human => {
                    outln!("grant {}  ({})", g.id, g.status(today()).name());
                    outln!("  operator   {}", g.operator);
                    outln!("  covers     {}", scope_text(&g));
                    outln!("  valid      {} to {}", g.valid_from, g.valid_to);
                    if !state_note(&g).is_empty() {
                        outln!("  note       {}", state_note(&g));
                    }
                    if let Some(t) = &g.terms_sha256 {
                        outln!("  terms      sha256:{t}");
                    }
                    outln!("  created    {} by {}", g.created_at, g.created_by);
                    Ok(())
                }
            }
        }
        GrantCommand::Suspend(args) => {
            let change = GrantChange::Suspend {
                reason: args.reason.clone(),
                correct_by: date(&args.correct_by, "--correct-by")?,
            };
            change_grants(ctx, &zone, &who, &args.target, &change, GrantStatus::Active)
        }
        GrantCommand::Resume(args) => {
            let change = GrantChange::Resume { reason: args.reason.clone() };
            change_grants(ctx, &zone, &who, &args.target, &change, GrantStatus::Suspended)
        }
        GrantCommand::Terminate(args) => {
            let change = GrantChange::Terminate { reason: args.reason.clone() };
            change_grants(ctx, &zone, &who, &args.target, &change, GrantStatus::Active)
        }
    }
}

fn create(zone: &Zone, who: &Principal, args: &GrantCreateArgs) -> anyhow::Result<Grant> {
    let new = NewGrant {
        operator: args.operator.clone(),
        datasets: args.datasets.iter().filter(|d| !d.is_empty()).cloned().collect(),
        providers: args.providers.iter().filter(|p| !p.is_empty()).cloned().collect(),
        domains: args.domains.iter().filter(|d| !d.is_empty()).cloned().collect(),
        valid_from: date(&args.from, "--from")?,
        valid_to: date(&args.to, "--to")?,
        terms: args.terms.clone(),
    };
    Ok(zone.create_grant(who, &new)?)
}

/// Changes one grant (a number) or every grant of an operator (a name) that is in `applies_to` (terminate: any
/// grant not yet terminated).
fn change_grants(
    ctx: &Ctx<'_>,
    zone: &Zone,
    who: &Principal,
    target: &str,
    change: &GrantChange,
    applies_to: GrantStatus,
) -> anyhow::Result<()> {
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
                anyhow::bail!("operator `{target}` has no grant that is {}", applies_to.name());
            }
            ids
        }
    };
    let mut changed = Vec::new();
    for id in ids {
        changed.push(zone.change_grant(who, id, change)?);
    }
    match ctx.mode {
        Mode::Json => output::json(&changed.iter().map(grant_value).collect::<Vec<_>>()),
        Mode::Human => {
            for g in &changed {
                outln!("grant {} of `{}` is now {}{}", g.id, g.operator, g.status(today()).name(), {
                    let n = state_note(g);
                    if n.is_empty() { n } else { format!(": {n}") }
                });
            }
            Ok(())
        }
    }
}

fn scope_text(g: &Grant) -> String {
    let mut parts = Vec::new();
    if !g.scope.datasets.is_empty() {
        parts.push(format!("datasets {}", g.scope.datasets.join(", ")));
    }
    if !g.scope.providers.is_empty() {
        parts.push(format!("providers {}", g.scope.providers.join(", ")));
    }
    parts.push(format!("for {}", g.scope.domains.join(", ")));
    parts.join("; ")
}

fn state_note(g: &Grant) -> String {
    match &g.state {
        zone_store::GrantState::Active => String::new(),
        zone_store::GrantState::Suspended { reason, correct_by } => format!("{reason} (correct by {correct_by})"),
        zone_store::GrantState::Terminated { reason } => reason.clone(),
    }
}

fn grant_value(g: &Grant) -> serde_json::Value {
    let mut v = serde_json::to_value(g).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        o.insert("status".into(), json!(g.status(today()).name()));
    }
    v
}

pub fn app(ctx: &Ctx<'_>, command: &AppCommand) -> anyhow::Result<()> {
    let (zone, who) = ctx.open_as()?;
    match command {
        AppCommand::Submit(args) => {
            let view = submit(&zone, &who, args)?;
            match ctx.mode {
                Mode::Json => output::json(&view),
                Mode::Human => {
                    outln!("submitted application {} under grant {}", view.app.id, view.app.grant_id);
                    print_app(&view);
                    Ok(())
                }
            }
        }
        AppCommand::Approve(args) | AppCommand::Reject(args) => {
            let approve = matches!(command, AppCommand::Approve(_));
            let view = zone.decide_app(&who, args.id, approve, &args.reason)?;
            match ctx.mode {
                Mode::Json => output::json(&view),
                Mode::Human => {
                    outln!(
                        "{} application {} as {}; it is now {}",
                        if approve { "approved" } else { "rejected" },
                        view.app.id,
                        who.name,
                        view.status.name()
                    );
                    if !view.missing.is_empty() && approve {
                        outln!("  still needed: {}", view.missing.join(", "));
                    }
                    Ok(())
                }
            }
        }
        AppCommand::List => {
            let apps = zone.apps(&who)?;
            match ctx.mode {
                Mode::Json => output::json(&apps),
                Mode::Human => {
                    if apps.is_empty() {
                        outln!("no applications you may see");
                        return Ok(());
                    }
                    let mut t = output::table([
                        "id",
                        "operator",
                        "status",
                        "datasets",
                        "domain",
                        "mode",
                        "approved by",
                        "missing",
                    ]);
                    for v in &apps {
                        t.add_row(vec![
                            v.app.id.to_string(),
                            v.app.operator.clone(),
                            v.status.name().to_owned(),
                            v.binding
                                .datasets
                                .iter()
                                .map(|d| format!("{}@{}", d.dataset, d.version))
                                .collect::<Vec<_>>()
                                .join(", "),
                            v.app.domain.clone(),
                            v.app.mode.clone(),
                            v.approved_by.iter().map(|d| d.principal.clone()).collect::<Vec<_>>().join(", "),
                            v.missing.join(", "),
                        ]);
                    }
                    outln!("{t}");
                    Ok(())
                }
            }
        }
        AppCommand::Show { id } => {
            let view = zone.app(&who, *id)?;
            match ctx.mode {
                Mode::Json => output::json(&view),
                Mode::Human => {
                    print_app(&view);
                    Ok(())
                }
            }
        }
    }
}

fn print_app(v: &AppView) {
    outln!("application {}  ({})", v.app.id, v.status.name());
    outln!("  operator   {}  (grant {})", v.app.operator, v.app.grant_id);
    outln!("  module     sha256:{}  ({})", v.app.module_sha256, bytes(v.app.module_bytes));
    for d in &v.binding.datasets {
        outln!("  dataset    {}@{}  policy {}", d.dataset, d.version, short(&d.policy_sha256));
    }
    outln!("  domain     {}   mode {}", v.app.domain, v.app.mode);
    // The operator wrote the purpose and the parameters: escaped, so that they cannot rewrite what the reviewer
    // sees.
    outln!("  purpose    {}", inert(&v.app.purpose));
    if !v.app.params.is_empty() {
        let p: Vec<String> = v.app.params.iter().map(|(k, val)| format!("{}={}", inert(k), inert(val))).collect();
        outln!("  params     {}", p.join(" "));
    }
    let run = v.app.run_settings();
    outln!("  run        {} rows per batch, {} partition(s)", run.batch_rows, run.partitions);
    match &v.app.output.reads {
        Some(r) => outln!("  reads      {}", inert(&r.join(", "))),
        None => outln!("  reads      every column the policies show"),
    }
    let cols: Vec<String> = v
        .app
        .output
        .columns
        .iter()
        .map(|c| match (&c.aggregate, c.bounds) {
            (Some(a), Some([lo, hi])) => format!("{} {a}({}) in [{lo}, {hi}]", c.role, inert(&c.name)),
            _ => format!("{} {}", c.role, inert(&c.name)),
        })
        .collect();
    outln!("  output     {}", cols.join(", "));
    outln!("  binding    sha256:{}", v.binding_sha256);
    for party in &v.required {
        match v.approved_by.iter().find(|d| &d.party == party) {
            Some(d) => outln!("  {party:<30} approved by {} at {}: {}", d.principal, d.time, inert(&d.reason)),
            None => outln!("  {party:<30} awaiting approval"),
        }
    }
    if let Some(r) = v.decisions.iter().find(|d| d.decision == "reject") {
        outln!("  rejected by {} ({}) at {}: {}", r.principal, r.party, r.time, inert(&r.reason));
    }
    for d in &v.drift {
        outln!("  changed    {d} (approval needed again)");
    }
}

/// `app submit`: the zone's checks, then the sandbox's (contract, `init` on the application's guest schema),
/// then the declared output against every policy. Every refusal is recorded.
fn submit(zone: &Zone, who: &Principal, args: &AppSubmitArgs) -> anyhow::Result<AppView> {
    let request = AppRequest {
        datasets: args.datasets.clone(),
        domain: args.domain.clone(),
        purpose: args.purpose.clone(),
        mode: args.mode.clone(),
        params: zone_ops::parse_params(&args.params)?,
        security_notes: args.security_notes.clone(),
        batch_rows: args.batch_rows,
        partitions: args.partitions,
    };
    Ok(zone_ops::submit_app(zone, who, &request, &args.module)?)
}
