//! The `principal`, `grant` and `app` commands: who may do what, and the two-party approval of applications.

use anyhow::Context as _;
use serde_json::json;
use zone_api::routes::{self as api, GrantChangeRequest, GrantView};
use zone_store::{AppView, Grant, Role, Standing};

use crate::args::{AppCommand, CertCommand, GrantCommand, OrgCommand, PrincipalCommand};
use crate::context::Ctx;
use crate::output::{self, Mode, bytes, inert, short};

pub fn principal(ctx: &Ctx<'_>, command: &PrincipalCommand) -> anyhow::Result<()> {
    match command {
        PrincipalCommand::Add(args) => {
            let role = Role::from_name(&args.role).with_context(|| {
                format!("--role `{}` is not one of authority, agency, operator, inspector", args.role)
            })?;
            let ca = args.ca.as_deref().map(|p| ctx.file::<api::PrincipalAdd>(p)).transpose()?;
            let request = api::PrincipalAdd {
                name: args.name.clone(),
                role,
                org: args.org.clone(),
                ca,
                issue_cert: args.issue_cert,
                cert_days: args.cert_days,
            };
            // Where the certificate and key go: as asked; else the zone's own folder of client certificates
            // (locally) or the current folder (through a server).
            let out = match (&args.cert_out, ctx.is_remote()) {
                (Some(dir), _) => Some(dir.clone()),
                (None, false) if args.issue_cert => Some(zone_ops::pki::DevCa::at(&ctx.root()?).clients),
                (None, true) if args.issue_cert => Some(std::path::PathBuf::from(".")),
                _ => None,
            };
            let added = ctx.call_into(request, out.as_deref())?;
            let written = match &out {
                Some(dir) => ctx.take(&added.output, dir)?,
                None => Vec::new(),
            };
            match ctx.mode {
                Mode::Json => output::json(&json!({
                    "name": added.name, "role": added.role, "org": added.org,
                    "certificate": added.certificate.as_ref().zip(out.as_ref()).map(|(c, dir)| json!({
                        "cert": dir.join(&c.cert), "key": dir.join(&c.key), "sha256": c.sha256, "not_after": c.not_after,
                    })),
                    "ca": added.ca,
                })),
                Mode::Human => {
                    outln!("added {} `{}`{}", added.role, added.name, org_text(added.org.as_deref()));
                    if let Some(a) = &added.ca {
                        outln!(
                            "client CA `{}` (key sha256:{}) may speak for {}",
                            a.subject,
                            short(&a.key_sha256),
                            added.org.as_deref().unwrap_or_default()
                        );
                    }
                    if let (Some(c), Some(dir)) = (&added.certificate, &out) {
                        let _ = &written;
                        outln!(
                            "client certificate {} and key {} (development CA)",
                            dir.join(&c.cert).display(),
                            dir.join(&c.key).display()
                        );
                        outln!("  sha256:{}, valid until {}", c.sha256, c.not_after);
                    }
                    Ok(())
                }
            }
        }
        PrincipalCommand::List => {
            let all = ctx.call(api::PrincipalList {})?;
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
            let (name, reason) = (a.name.clone(), a.reason.clone());
            let record = match command {
                PrincipalCommand::Suspend(_) => ctx.call(api::PrincipalSuspend { name, reason })?,
                PrincipalCommand::Resume(_) => ctx.call(api::PrincipalResume { name, reason })?,
                _ => ctx.call(api::PrincipalRemove { name, reason })?,
            };
            match ctx.mode {
                Mode::Json => output::json(&record),
                Mode::Human => {
                    outln!("principal `{}` is {}", record.principal.name, record.standing);
                    if record.standing != Standing::Active {
                        outln!("every request with any of its certificates is refused from now on");
                    }
                    Ok(())
                }
            }
        }
    }
}

pub fn org(ctx: &Ctx<'_>, command: &OrgCommand) -> anyhow::Result<()> {
    match command {
        OrgCommand::Add(args) => {
            let added = ctx.call(api::OrgAdd { org: args.org.clone(), ca: ctx.file::<api::OrgAdd>(&args.ca)? })?;
            match ctx.mode {
                Mode::Json => output::json(&added),
                Mode::Human => {
                    let what = if added.added { "may now speak" } else { "already speaks" };
                    outln!("client CA `{}` (key sha256:{}) {what} for {}", added.subject, added.key_sha256, added.org);
                    Ok(())
                }
            }
        }
        OrgCommand::List => {
            let orgs = ctx.call(api::OrgList {})?;
            match ctx.mode {
                Mode::Json => output::json(&orgs),
                Mode::Human => {
                    let mut t = output::table(["organisation", "client CAs (key sha256)", "principals"]);
                    for o in &orgs {
                        let cas: Vec<String> =
                            o.cas.iter().map(|a| format!("{} {}", short(&a.key_sha256), a.subject)).collect();
                        let cas = if cas.is_empty() {
                            "(none: its certificates are refused)".to_owned()
                        } else {
                            cas.join("\n")
                        };
                        t.add_row(vec![o.org.clone(), cas, o.principals.join(", ")]);
                    }
                    outln!("{t}");
                    Ok(())
                }
            }
        }
    }
}

pub fn cert(ctx: &Ctx<'_>, command: &CertCommand) -> anyhow::Result<()> {
    match command {
        CertCommand::List => {
            let all = ctx.call(api::CertList {})?;
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
            let record =
                ctx.call(api::CertRevoke { fingerprint: args.fingerprint.clone(), reason: args.reason.clone() })?;
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

fn org_text(org: Option<&str>) -> String {
    org.map(|o| format!(" of {o}")).unwrap_or_default()
}

pub fn grant(ctx: &Ctx<'_>, command: &GrantCommand) -> anyhow::Result<()> {
    match command {
        GrantCommand::Create(args) => {
            let request = api::GrantCreate {
                operator: args.operator.clone(),
                datasets: args.datasets.clone(),
                providers: args.providers.clone(),
                domains: args.domains.clone(),
                from: args.from.clone(),
                to: args.to.clone(),
                terms: args.terms.as_deref().map(|p| ctx.file::<api::GrantCreate>(p)).transpose()?,
            };
            let view = ctx.call(request)?;
            let grant = &view.grant;
            match ctx.mode {
                Mode::Json => output::json(&view),
                Mode::Human => {
                    outln!(
                        "grant {} for `{}`: {} ({} to {})",
                        grant.id,
                        grant.operator,
                        scope_text(grant),
                        grant.valid_from,
                        grant.valid_to
                    );
                    Ok(())
                }
            }
        }
        GrantCommand::List => {
            let grants = ctx.call(api::GrantList {})?;
            match ctx.mode {
                Mode::Json => output::json(&grants),
                Mode::Human => {
                    if grants.is_empty() {
                        outln!("no grants you may see");
                        return Ok(());
                    }
                    let mut t = output::table(["id", "operator", "status", "covers", "from", "to", "note"]);
                    for GrantView { grant: g, status } in &grants {
                        t.add_row(vec![
                            g.id.to_string(),
                            g.operator.clone(),
                            status.name().to_owned(),
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
            let view = ctx.call(api::GrantShow { id: *id })?;
            let g = &view.grant;
            match ctx.mode {
                Mode::Json => output::json(&view),
                Mode::Human => {
                    outln!("grant {}  ({})", g.id, view.status.name());
                    outln!("  operator   {}", g.operator);
                    outln!("  covers     {}", scope_text(g));
                    outln!("  valid      {} to {}", g.valid_from, g.valid_to);
                    if !state_note(g).is_empty() {
                        outln!("  note       {}", state_note(g));
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
            let change = GrantChangeRequest {
                target: args.target.clone(),
                reason: args.reason.clone(),
                correct_by: Some(args.correct_by.clone()),
            };
            print_changed(ctx, &ctx.call(api::GrantSuspend(change))?)
        }
        GrantCommand::Resume(args) => {
            let change =
                GrantChangeRequest { target: args.target.clone(), reason: args.reason.clone(), correct_by: None };
            print_changed(ctx, &ctx.call(api::GrantResume(change))?)
        }
        GrantCommand::Terminate(args) => {
            let change =
                GrantChangeRequest { target: args.target.clone(), reason: args.reason.clone(), correct_by: None };
            print_changed(ctx, &ctx.call(api::GrantTerminate(change))?)
        }
    }
}

fn print_changed(ctx: &Ctx<'_>, changed: &[GrantView]) -> anyhow::Result<()> {
    match ctx.mode {
        Mode::Json => output::json(&changed),
        Mode::Human => {
            for GrantView { grant: g, status } in changed {
                outln!("grant {} of `{}` is now {}{}", g.id, g.operator, status.name(), {
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

pub fn app(ctx: &Ctx<'_>, command: &AppCommand) -> anyhow::Result<()> {
    match command {
        AppCommand::Submit(args) => {
            let request = api::AppSubmit {
                module: ctx.file::<api::AppSubmit>(&args.module)?,
                datasets: args.datasets.clone(),
                domain: args.domain.clone(),
                purpose: args.purpose.clone(),
                mode: args.mode.clone(),
                security_notes: args.security_notes.as_deref().map(|p| ctx.file::<api::AppSubmit>(p)).transpose()?,
                params: args.params.clone(),
                batch_rows: args.batch_rows,
                partitions: args.partitions,
                epsilon: args.epsilon,
                block_subjects: args.block_subjects,
                key_domain: args.key_domain.clone(),
            };
            let view = ctx.call(request)?;
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
            let (id, reason) = (args.id, args.reason.clone());
            let view = if approve {
                ctx.call(api::AppApprove { id, reason })?
            } else {
                ctx.call(api::AppReject { id, reason })?
            };
            match ctx.mode {
                Mode::Json => output::json(&view),
                Mode::Human => {
                    outln!(
                        "{} application {}; it is now {}",
                        if approve { "approved" } else { "rejected" },
                        view.app.id,
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
            let apps = ctx.call(api::AppList {})?;
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
            let view = ctx.call(api::AppShow { id: *id })?;
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
    if let Some(p) = &run.privacy {
        outln!("  privacy    ε = {} per run, blocks of at most {} subjects", p.epsilon, p.block_subjects);
        for d in &p.key_domain {
            outln!("  domain of  {} = {}", inert(&d.key), inert(&d.values.join(", ")));
        }
    }
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
