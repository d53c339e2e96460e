//! Identity and access through the real server, as a hostile agency, operator or certificate holder would try it:
//! an upload is its uploader's, for one command, once, within a quota; content another provider published cannot
//! be published again as one's own; raw file hashes stay with the provider and the inspector; a CA speaks only for
//! the organisations it is registered for; suspended and removed principals and revoked certificates are refused at
//! once; guest text stays with the agencies whose data the guest saw. And the matrix: every route × every role ×
//! own / other organisation × own / foreign CA × suspended principal.

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
};
use sha2::{Digest as _, Sha256};

use crate::common::{self, TestZone, s};
use crate::server::Server;

const FINANCE: &str = example_guests::FINANCE_CAPITAL.path;

/// A client identity: certificate and key files.
#[derive(Debug, Clone)]
struct Id {
    cert: PathBuf,
    key: PathBuf,
}

/// A CA of an organisation's own PKI, made for the test.
struct OrgCa {
    issuer: Issuer<'static, KeyPair>,
    pem: PathBuf,
}

fn org_ca(dir: &Path, name: &str) -> OrgCa {
    let key = KeyPair::generate().expect("key");
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, format!("{name} CA"));
    dn.push(DnType::OrganizationName, name);
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    let cert = params.self_signed(&key).expect("self-sign");
    let pem = dir.join(format!("{name}-ca.pem"));
    std::fs::write(&pem, cert.pem()).expect("write CA");
    OrgCa { issuer: Issuer::new(params, key), pem }
}

/// The zone's development CA, to issue more certificates from.
fn dev_issuer(zone: &Path) -> Issuer<'static, KeyPair> {
    let pem = std::fs::read_to_string(zone.join("dev-ca/ca.pem")).expect("ca");
    let key = KeyPair::from_pem(&std::fs::read_to_string(zone.join("dev-ca/ca.key")).expect("key")).expect("key");
    Issuer::from_ca_cert_pem(&pem, key).expect("issuer")
}

/// A client certificate for `cn` (with `O = org` when given), signed by `issuer`.
fn issue(dir: &Path, label: &str, issuer: &Issuer<'_, KeyPair>, cn: &str, org: Option<&str>) -> Id {
    let key = KeyPair::generate().expect("key");
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    if let Some(org) = org {
        dn.push(DnType::OrganizationName, org);
    }
    params.distinguished_name = dn;
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let cert = params.signed_by(&key, issuer).expect("sign");
    let id = Id { cert: dir.join(format!("{label}.pem")), key: dir.join(format!("{label}.key")) };
    std::fs::write(&id.cert, cert.pem()).expect("write cert");
    std::fs::write(&id.key, key.serialize_pem()).expect("write key");
    id
}

/// The development-CA identity `TestZone::with_dev_ca` issued for `who`.
fn dev_id(zone: &TestZone, who: &str) -> Id {
    let clients = zone.zone.join("dev-ca/clients");
    Id { cert: clients.join(format!("{who}.pem")), key: clients.join(format!("{who}.key")) }
}

/// One HTTPS request with `id`'s certificate: (status, JSON answer). Status 0: the handshake was refused.
fn call(server: &Server, zone: &Path, id: &Id, method: &str, path: &str, body: &[u8]) -> (u16, serde_json::Value) {
    let addr = server.url.trim_start_matches("https://").to_owned();
    let mut roots = rustls::RootCertStore::empty();
    let ca = std::fs::read(zone.join("dev-ca/ca.pem")).expect("ca");
    for c in rustls_pki_types::pem::PemObject::pem_slice_iter(&ca) {
        let c: rustls_pki_types::CertificateDer<'static> = c.expect("pem");
        roots.add(c).expect("root");
    }
    let chain: Vec<rustls_pki_types::CertificateDer<'static>> =
        rustls_pki_types::pem::PemObject::pem_file_iter(&id.cert).expect("cert").map(|c| c.expect("pem")).collect();
    let key: rustls_pki_types::PrivateKeyDer<'static> =
        rustls_pki_types::pem::PemObject::from_pem_file(&id.key).expect("key");
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .expect("client cert");
    let name = rustls_pki_types::ServerName::try_from("localhost").expect("name");
    let conn = rustls::ClientConnection::new(Arc::new(config), name).expect("client");
    let tcp = std::net::TcpStream::connect(&addr).expect("connect");
    tcp.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let head = format!(
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\ncontent-type: application/json\r\n\
         content-length: {}\r\n\r\n",
        body.len()
    );
    if tls.write_all(head.as_bytes()).and_then(|()| tls.write_all(body)).is_err() {
        return (0, serde_json::Value::Null);
    }
    let mut answer = Vec::new();
    let _ = tls.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer).into_owned();
    let Some(status) = text.strip_prefix("HTTP/1.1 ").and_then(|r| r.get(..3)).and_then(|c| c.parse().ok()) else {
        return (0, serde_json::Value::Null);
    };
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or_default();
    (status, serde_json::from_str(body).unwrap_or(serde_json::Value::Null))
}

fn class(answer: &serde_json::Value) -> &str {
    answer["error"]["class"].as_str().unwrap_or_default()
}

/// `POST /v1/datasets` body for uploads `policy` and `data`.
fn publish_body(policy: &str, data: &str) -> Vec<u8> {
    serde_json::json!({
        "policy": format!("upload:{policy}/policy.toml"), "files": [format!("upload:{data}/data.parquet")],
    })
    .to_string()
    .into_bytes()
}

fn upload(server: &Server, zone: &Path, id: &Id, command: &str, bytes: &[u8]) -> (u16, serde_json::Value) {
    call(server, zone, id, "PUT", &format!("/v1/uploads?command={command}"), bytes)
}

#[test]
fn uploads_belong_to_their_uploader_and_content_to_its_provider() {
    let zone = TestZone::with_dev_ca();
    let server = Server::start_with(&zone.zone, 1, &["--max-uploads", "3"]);
    let (health, tax, acme) = (dev_id(&zone, "health-commission"), dev_id(&zone, "taxation"), dev_id(&zone, "acme"));
    let data = std::fs::read(common::fixture("clinic_visits")).expect("fixture");
    let policy = std::fs::read(common::policy("clinic_visits")).expect("policy");
    let sha = hex::encode(Sha256::digest(&data));

    // The health commission uploads its file: the answer is a token, not the content's hash.
    let (status, up) = upload(&server, &zone.zone, &health, "dataset.publish", &data);
    assert_eq!(status, 201, "{up}");
    let data_token = up["upload"].as_str().expect("token").to_owned();
    assert_eq!(up["sha256"], sha);
    assert_ne!(data_token, sha);
    let (_, up) = upload(&server, &zone.zone, &health, "dataset.publish", &policy);
    let policy_token = up["upload"].as_str().expect("token").to_owned();

    // Another agency cites the token (or the hash, the old way): not found / not an upload name.
    let (status, answer) =
        call(&server, &zone.zone, &tax, "POST", "/v1/datasets", &publish_body(&policy_token, &data_token));
    assert_eq!((status, class(&answer)), (404, "upload.unknown"), "{answer}");
    let (status, answer) = call(&server, &zone.zone, &tax, "POST", "/v1/datasets", &publish_body(&sha, &sha));
    assert_eq!(status, 400, "{answer}");

    // The uploader itself, for another command than it was made for: refused, and the upload is spent.
    let check = serde_json::json!({ "module": format!("upload:{data_token}/m.wasm") });
    let (status, answer) =
        call(&server, &zone.zone, &health, "POST", "/v1/modules/check", check.to_string().as_bytes());
    assert!(status == 409 || status == 400, "{status} {answer}");
    let (status, answer) =
        call(&server, &zone.zone, &health, "POST", "/v1/datasets", &publish_body(&policy_token, &data_token));
    assert_eq!((status, class(&answer)), (404, "upload.unknown"), "spent: {answer}");

    // Uploads take no command that reads no file; the quota counts unused uploads.
    let (status, _) = upload(&server, &zone.zone, &health, "job.list", b"x");
    assert_eq!(status, 400);
    for _ in 0..3 {
        assert_eq!(upload(&server, &zone.zone, &acme, "module.check", b"x").0, 201);
    }
    let (status, answer) = upload(&server, &zone.zone, &acme, "module.check", b"x");
    assert_eq!((status, class(&answer)), (429, "upload.quota"), "{answer}");

    // Published the ordinary way (the CLI uploads and uses its own tokens, once).
    let out = server
        .cli(
            "health-commission",
            &[
                "dataset",
                "publish",
                "--policy",
                s(&common::policy("clinic_visits")),
                s(&common::fixture("clinic_visits")),
            ],
        )
        .ok();
    assert!(out.contains("clinic_visits"), "{out}");
    let spool = zone.zone.join("server/uploads/health-commission");
    let left: Vec<_> = std::fs::read_dir(&spool).expect("spool").flatten().map(|e| e.file_name()).collect();
    assert!(left.is_empty(), "uploads are emptied on use: {left:?}");

    // Taxation holds a copy of the file and republishes it under a policy of its own: refused.
    let work = zone.path("copy");
    std::fs::create_dir_all(&work).expect("dir");
    let own_policy = String::from_utf8(policy.clone())
        .expect("utf-8")
        .replace("name = \"clinic_visits\"", "name = \"clinic_copy\"")
        .replace("provider = \"health-commission\"", "provider = \"taxation\"");
    std::fs::write(work.join("copy.toml"), own_policy).expect("policy");
    std::fs::write(work.join("copy.parquet"), &data).expect("data");
    let run = server.cli(
        "taxation",
        &["--json", "dataset", "publish", "--policy", s(&work.join("copy.toml")), s(&work.join("copy.parquet"))],
    );
    assert_eq!(run.json()["error"]["class"], "dataset.foreign_content", "{} {}", run.stdout, run.stderr);
    // …locally too.
    let err = zone
        .run_as(
            "taxation",
            &["dataset", "publish", "--policy", s(&work.join("copy.toml")), s(&work.join("copy.parquet"))],
        )
        .fails();
    assert!(err.contains("already published by another provider"), "{err}");
    assert!(zone.run(&["--json", "dataset", "list"]).json().as_array().is_some_and(|d| d.len() == 1));
    // The rows stay with their provider.
    let run = server.cli("taxation", &["--json", "dataset", "rows", "clinic_visits"]);
    assert_eq!(run.json()["error"]["status"], 403);

    // Raw file hashes: the provider and the inspector; everyone else sees the keyed commitment.
    for (who, sees) in [("health-commission", true), ("inspector", true), ("taxation", false), ("acme", false)] {
        let shown = server.cli(who, &["--json", "dataset", "show", "clinic_visits"]).ok();
        assert_eq!(shown.contains(&sha), sees, "{who}: {shown}");
        assert!(shown.contains("commitment"), "{who}: {shown}");
    }
    let log = server.cli("dsb", &["audit", "log"]).ok();
    assert!(!log.contains(&sha), "the authority's audit log names the raw hash: {log}");
}

#[test]
fn a_ca_speaks_only_for_the_organisations_it_is_registered_for() {
    let zone = TestZone::with_dev_ca();
    let dir = zone.path("pki");
    std::fs::create_dir_all(&dir).expect("dir");
    // Two organisations run their own PKI; the authority registers each CA for its organisation only.
    let tax_ca = org_ca(&dir, "taxation");
    let acme_ca = org_ca(&dir, "acme-credit");
    zone.run(&["org", "add", "taxation", "--ca", s(&tax_ca.pem)]).ok();
    let server = Server::start(&zone.zone, 1);
    let whoami = |id: &Id| call(&server, &zone.zone, id, "GET", "/v1/whoami", b"");

    // Taxation's CA issues for taxation: accepted.
    let own = issue(&dir, "tax-own", &tax_ca.issuer, "taxation", Some("taxation"));
    let (status, me) = whoami(&own);
    assert_eq!((status, me["name"].as_str()), (200, Some("taxation")), "{me}");

    // …but not for the authority, with or without its organisation, nor for an operator.
    for (label, cn, org) in [
        ("tax-as-dsb", "dsb", Some("data-bureau")),
        ("tax-as-dsb-no-o", "dsb", None),
        ("tax-as-acme", "acme", Some("acme-credit")),
        ("tax-as-inspector", "inspector", Some("data-supervision")),
    ] {
        let forged = issue(&dir, label, &tax_ca.issuer, cn, org);
        let (status, answer) = whoami(&forged);
        assert_eq!((status, class(&answer)), (403, "access.certificate"), "{label}: {answer}");
        // The forged authority cannot add an authority.
        let add = serde_json::json!({ "name": "evil", "role": "authority", "org": "data-bureau" });
        let (status, _) = call(&server, &zone.zone, &forged, "POST", "/v1/principals", add.to_string().as_bytes());
        assert_eq!(status, 403, "{label}");
    }
    let principals = zone.run(&["--json", "principal", "list"]).json();
    assert!(!principals.to_string().contains("evil"), "{principals}");
    // A certificate without O is refused even from the principal's own CA.
    let no_o = issue(&dir, "tax-no-o", &tax_ca.issuer, "taxation", None);
    assert_eq!(class(&whoami(&no_o).1), "access.certificate");
    // An organisation's CA not registered yet: no handshake at all; registered through the server, it speaks for
    // its organisation from the next connection on (and still for no other).
    let acme_own = issue(&dir, "acme-own", &acme_ca.issuer, "acme", Some("acme-credit"));
    assert_eq!(whoami(&acme_own).0, 0, "an unregistered CA got through the handshake");
    server.cli("dsb", &["org", "add", "acme-credit", "--ca", s(&acme_ca.pem)]).ok();
    assert_eq!(whoami(&acme_own).0, 200);
    let acme_as_tax = issue(&dir, "acme-as-tax", &acme_ca.issuer, "taxation", Some("taxation"));
    assert_eq!(class(&whoami(&acme_as_tax).1), "access.certificate");
    // Only the authority registers CAs.
    let run = server.cli("taxation", &["--json", "org", "add", "taxation", "--ca", s(&acme_ca.pem)]);
    assert_eq!(run.json()["error"]["status"], 403);
    let listed = zone.run(&["--json", "org", "list"]).json();
    let tax_cas = listed
        .as_array()
        .and_then(|orgs| orgs.iter().find(|o| o["org"] == "taxation"))
        .map(|o| o["cas"].as_array().map_or(0, Vec::len));
    assert_eq!(tax_cas, Some(2), "the dev CA and taxation's own: {listed}");
    // Every refusal is in the audit log with the certificate it came with.
    let refused: Vec<_> = zone
        .audit()
        .into_iter()
        .filter(|e| e["action"] == "zone.access" && e["reason"] == "access.certificate")
        .collect();
    assert!(refused.iter().any(|e| e["actor"] == "dsb"), "{refused:#?}");
}

#[test]
fn suspended_removed_and_revoked_are_refused_at_once() {
    let zone = TestZone::with_dev_ca();
    let server = Server::start(&zone.zone, 1);
    let acme = dev_id(&zone, "acme");
    let jobs = |id: &Id| call(&server, &zone.zone, id, "GET", "/v1/jobs", b"");
    assert_eq!(jobs(&acme).0, 200);

    server.cli("dsb", &["principal", "suspend", "acme", "--reason", "incident 7: key on a public laptop"]).ok();
    let (status, answer) = jobs(&acme);
    assert_eq!((status, class(&answer)), (403, "access.suspended"), "{answer}");
    let listed = server.cli("dsb", &["principal", "list"]).ok();
    assert!(listed.contains("suspended"), "{listed}");
    // Locally, too: a suspended principal does not act.
    assert!(zone.run_as("acme", &["job", "list"]).fails().contains("suspended"));
    server.cli("dsb", &["principal", "resume", "acme", "--reason", "key rotated"]).ok();
    assert_eq!(jobs(&acme).0, 200);

    // A certificate revoked alone: refused from the next request; another certificate of the same principal works.
    let certs = server.cli("dsb", &["--json", "cert", "list"]).json();
    let fingerprint = certs
        .as_array()
        .and_then(|c| c.iter().find(|c| c["principal"] == "acme"))
        .and_then(|c| c["sha256"].as_str())
        .expect("acme's certificate is listed")
        .to_owned();
    let der = rustls_pki_types::pem::PemObject::pem_file_iter(&acme.cert)
        .expect("cert")
        .next()
        .map(|c: Result<rustls_pki_types::CertificateDer<'static>, _>| c.expect("pem"))
        .expect("one");
    assert_eq!(hex::encode(Sha256::digest(der.as_ref())), fingerprint);
    server.cli("dsb", &["cert", "revoke", &fingerprint, "--reason", "lost"]).ok();
    let (status, answer) = jobs(&acme);
    assert_eq!((status, class(&answer)), (403, "access.revoked"), "{answer}");
    let dir = zone.path("certs");
    std::fs::create_dir_all(&dir).expect("dir");
    let fresh = issue(&dir, "acme-fresh", &dev_issuer(&zone.zone), "acme", Some("acme-credit"));
    assert_eq!(jobs(&fresh).0, 200);
    // Only the authority suspends or revokes.
    let run = server.cli("market-regulation", &["--json", "principal", "suspend", "acme", "--reason", "x"]);
    assert_eq!(run.json()["error"]["status"], 403);

    // Removed: refused for good, whatever certificate it presents.
    server.cli("dsb", &["principal", "remove", "acme", "--reason", "contract ended"]).ok();
    let (status, answer) = jobs(&fresh);
    assert_eq!((status, class(&answer)), (403, "access.removed"), "{answer}");
    server.cli("dsb", &["--json", "principal", "resume", "acme", "--reason", "oops"]).fails();
    let actions: Vec<String> = zone.audit().into_iter().map(|e| format!("{} {}", e["action"], e["outcome"])).collect();
    for a in ["principal.suspend", "principal.resume", "principal.remove", "cert.revoke"] {
        assert!(actions.contains(&format!("\"{a}\" \"ok\"")), "{a} not in {actions:?}");
    }
    // Development-CA certificates are short-lived by default.
    let listed = server.cli("dsb", &["--json", "cert", "list"]).json();
    let until = listed
        .as_array()
        .and_then(|c| c.iter().find(|c| c["principal"] == "zenith"))
        .and_then(|c| c["not_after"].as_str())
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .expect("zenith's certificate");
    let days = (until.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_days();
    assert!((88..=90).contains(&days), "{days} days");
}

#[test]
fn guest_text_stays_with_the_agencies_whose_data_the_guest_saw() {
    let zone = crate::server::served_registry();
    let app = common::approved_app(&zone, FINANCE, "enterprise_registry", "aggregate", &[]);
    zone.run_as("acme", &["job", "run", &app]).ok();
    let server = Server::start(&zone.zone, 1);
    let agency = server.cli("market-regulation", &["--json", "job", "diagnostics", "1"]).ok();
    assert!(!agency.contains("withheld"), "{agency}");
    let inspector = server.cli("inspector", &["--json", "job", "diagnostics", "1"]).ok();
    let v: serde_json::Value = serde_json::from_str(&inspector).expect("json");
    assert!(v["withheld"]["bytes"].as_u64().is_some() && v["withheld"]["sha256"].is_string(), "{inspector}");
    let human = server.cli("inspector", &["job", "diagnostics", "1"]).ok();
    assert!(human.contains("stays with the agencies"), "{human}");
    // The inspector keeps the job's record in detail (counters), the operator does not.
    let detail = server.cli("inspector", &["--json", "job", "status", "1"]).ok();
    assert!(detail.contains("groups_suppressed"), "{detail}");
    let operator = server.cli("acme", &["--json", "job", "status", "1"]).ok();
    assert!(!operator.contains("groups_suppressed") && !operator.contains("guest_messages"), "{operator}");
    assert_eq!(server.cli("acme", &["--json", "job", "diagnostics", "1"]).json()["error"]["status"], 403);
}

/// Every route × every role × own / other organisation, then each principal with a certificate of a foreign CA
/// for its own name and organisation, and suspended: the status every time.
#[test]
fn the_route_role_organisation_ca_and_standing_matrix_through_the_server() {
    let zone = crate::server::served_registry();
    // Job 1 of acme (released), application `app` approved, artifact 1 absent.
    let app = common::approved_app(&zone, FINANCE, "enterprise_registry", "aggregate", &[]);
    zone.run_as("acme", &["job", "run", &app]).ok();
    let pending = common::submit_app(&zone, FINANCE, "enterprise_registry", "aggregate", &[]).json()["id"]
        .as_u64()
        .expect("id")
        .to_string();
    let dir = zone.path("pki");
    std::fs::create_dir_all(&dir).expect("dir");
    let foreign = org_ca(&dir, "elsewhere");
    // The foreign CA gets through the handshake (registered for an organisation nobody here belongs to).
    zone.run(&["org", "add", "elsewhere", "--ca", s(&foreign.pem)]).ok();
    let server = Server::start(&zone.zone, 1);

    let who = ["dsb", "market-regulation", "taxation", "acme", "zenith", "inspector"];
    let orgs = ["data-bureau", "market-regulation", "taxation", "acme-credit", "zenith-data", "data-supervision"];
    // (method, path, body, expected status per principal in `who` order).
    let approve = format!("/v1/apps/{pending}/approve");
    let reject = format!("/v1/apps/{pending}/reject");
    let decision = br#"{"reason":"matrix"}"#.as_slice();
    let routes: Vec<(&str, String, Vec<u8>, [u16; 6])> = vec![
        ("GET", "/v1/whoami".into(), Vec::new(), [200, 200, 200, 200, 200, 200]),
        ("GET", "/v1/zone".into(), Vec::new(), [200, 200, 200, 200, 200, 200]),
        ("GET", "/v1/jobs".into(), Vec::new(), [200, 200, 200, 200, 200, 200]),
        ("GET", "/v1/jobs/1".into(), Vec::new(), [200, 200, 403, 200, 403, 200]),
        ("POST", "/v1/jobs/1/product".into(), b"{}".to_vec(), [403, 403, 403, 200, 403, 403]),
        ("POST", "/v1/jobs/1/cancel".into(), b"{}".to_vec(), [403, 403, 403, 409, 403, 403]),
        ("POST", "/v1/artifacts/1/output".into(), b"{}".to_vec(), [404, 404, 404, 404, 404, 404]),
        ("POST", approve, decision.to_vec(), [200, 200, 403, 403, 403, 403]),
        // The authority may still reject what it approved; the application is then decided.
        ("POST", reject, decision.to_vec(), [200, 409, 403, 403, 403, 403]),
        ("PUT", "/v1/uploads?command=module.check".into(), b"x".to_vec(), [201, 201, 201, 201, 201, 201]),
        (
            "GET",
            "/v1/downloads/00000000000000000000000000000000/0/x".into(),
            Vec::new(),
            [404, 404, 404, 404, 404, 404],
        ),
        ("GET", "/v1/datasets/enterprise_registry/rows?limit=1".into(), Vec::new(), [403, 200, 403, 403, 403, 403]),
        ("GET", "/v1/audit".into(), Vec::new(), [200, 403, 403, 403, 403, 200]),
        ("GET", "/v1/principals".into(), Vec::new(), [200, 200, 200, 403, 403, 200]),
    ];
    let mut mismatches = Vec::new();
    for (method, path, body, expected) in &routes {
        for (i, name) in who.iter().enumerate() {
            let (status, answer) = call(&server, &zone.zone, &dev_id(&zone, name), method, path, body);
            if status != expected[i] {
                mismatches.push(format!("{name} {method} {path}: {status} (expected {}) {answer}", expected[i]));
            }
        }
    }
    // Each principal's own name and organisation, from a CA that does not speak for it: refused on every route.
    for (name, org) in who.iter().zip(orgs) {
        let forged = issue(&dir, &format!("foreign-{name}"), &foreign.issuer, name, Some(org));
        for (method, path, body, _) in &routes {
            let (status, answer) = call(&server, &zone.zone, &forged, method, path, body);
            if (status, class(&answer)) != (403, "access.certificate") {
                mismatches.push(format!("foreign CA as {name} {method} {path}: {status} {answer}"));
            }
        }
    }
    // Suspended: refused on every route, with its own certificate.
    for name in &who[1..] {
        zone.run(&["principal", "suspend", name, "--reason", "matrix"]).ok();
        for (method, path, body, _) in &routes {
            let (status, answer) = call(&server, &zone.zone, &dev_id(&zone, name), method, path, body);
            if (status, class(&answer)) != (403, "access.suspended") {
                mismatches.push(format!("suspended {name} {method} {path}: {status} {answer}"));
            }
        }
        zone.run(&["principal", "resume", name, "--reason", "matrix"]).ok();
    }
    assert!(mismatches.is_empty(), "{} mismatches:\n{}", mismatches.len(), mismatches.join("\n"));
}
