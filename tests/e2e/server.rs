//! The zone over HTTPS: the handshake refuses clients without a certificate of the zone's CA (or with an expired
//! one), certificates map to principals under the same authorization and audit as the CLI, the CLI works through
//! the server, the queue survives concurrent clients and a kill -9.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rcgen::{CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, Issuer, KeyPair};

use crate::common::{self, BIN, Run, TestZone, grant_acme, s};

const FINANCE: &str = example_guests::FINANCE_CAPITAL.path;
const HOSTILE: &str = example_guests::HOSTILE_RELEASE.path;

/// A running `cleanroom serve` on a free loopback port; killed when dropped.
pub(crate) struct Server {
    child: Child,
    pub(crate) url: String,
    zone: PathBuf,
}

impl Server {
    pub(crate) fn start(zone: &Path, workers: usize) -> Server {
        Server::start_with(zone, workers, &[])
    }

    pub(crate) fn start_with(zone: &Path, workers: usize, extra: &[&str]) -> Server {
        let mut child = Command::new(BIN)
            .args(["--zone", s(zone), "serve", "--listen", "127.0.0.1:0", "--workers", &workers.to_string()])
            .args(extra)
            .env_remove("CLEANROOM_AS")
            .env_remove("CLEANROOM_ZONE")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn serve");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).expect("read the listening line");
        let url = line
            .split_whitespace()
            .find(|w| w.starts_with("https://"))
            .unwrap_or_else(|| panic!("no address in `{line}`"))
            .to_owned();
        Server { child, url, zone: zone.to_path_buf() }
    }

    pub(crate) fn client_files(&self, who: &str) -> (PathBuf, PathBuf, PathBuf) {
        let ca = self.zone.join("dev-ca");
        (
            ca.join("clients").join(format!("{who}.pem")),
            ca.join("clients").join(format!("{who}.key")),
            ca.join("ca.pem"),
        )
    }

    /// `cleanroom --server URL --cert ... ARGS` as principal `who`, from `cwd`.
    pub(crate) fn cli_in(&self, who: &str, cwd: &Path, args: &[&str]) -> Run {
        let (cert, key, ca) = self.client_files(who);
        self.cli_with(&cert, &key, &ca, cwd, args)
    }

    pub(crate) fn cli(&self, who: &str, args: &[&str]) -> Run {
        self.cli_in(who, &std::env::temp_dir(), args)
    }

    pub(crate) fn cli_with(&self, cert: &Path, key: &Path, ca: &Path, cwd: &Path, args: &[&str]) -> Run {
        let output = Command::new(BIN)
            .current_dir(cwd)
            .args(["--server", &self.url, "--cert", s(cert), "--key", s(key), "--ca", s(ca)])
            .args(args)
            .env_remove("CLEANROOM_AS")
            .env_remove("CLEANROOM_ZONE")
            .output()
            .expect("run the client");
        Run {
            status: output.status,
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    fn kill9(mut self) {
        self.child.kill().expect("kill -9");
        self.child.wait().expect("wait");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A zone with a dev CA, the registry published, grant 1 for `acme`.
pub(crate) fn served_registry() -> TestZone {
    let zone = TestZone::with_dev_ca();
    zone.publish_fixture("enterprise_registry");
    grant_acme(&zone, "market-regulation");
    zone
}

/// Writes a key and a certificate for `cn`, signed by `issuer` (or self-signed as its own CA when `None`), valid
/// from `from` to `to` days from now.
fn write_cert(dir: &Path, cn: &str, issuer: Option<&Issuer<'_, KeyPair>>, from: i64, to: i64) -> (PathBuf, PathBuf) {
    let key = KeyPair::generate().expect("key");
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    params.distinguished_name = dn;
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now + time::Duration::days(from);
    params.not_after = now + time::Duration::days(to);
    let cert = match issuer {
        Some(issuer) => params.signed_by(&key, issuer).expect("sign"),
        None => params.self_signed(&key).expect("self-sign"),
    };
    let (c, k) = (dir.join(format!("{cn}-{from}.pem")), dir.join(format!("{cn}-{from}.key")));
    std::fs::write(&c, cert.pem()).expect("write cert");
    std::fs::write(&k, key.serialize_pem()).expect("write key");
    (c, k)
}

/// Connects with TLS but presents no client certificate; returns what the server answered to a request.
fn request_without_certificate(url: &str, ca: &Path) -> Result<String, String> {
    let addr = url.trim_start_matches("https://");
    let mut roots = rustls::RootCertStore::empty();
    let pem = std::fs::read(ca).expect("ca");
    for c in rustls_pki_types::pem::PemObject::pem_slice_iter(&pem) {
        let c: rustls_pki_types::CertificateDer<'static> = c.expect("pem");
        roots.add(c).expect("root");
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls_pki_types::ServerName::try_from("localhost").expect("name");
    let conn = rustls::ClientConnection::new(Arc::new(config), name).expect("client");
    let tcp = std::net::TcpStream::connect(addr).expect("connect");
    tcp.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let request = format!("GET /v1/whoami HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n");
    tls.write_all(request.as_bytes()).map_err(|e| e.to_string())?;
    let mut answer = String::new();
    tls.read_to_string(&mut answer).map_err(|e| e.to_string())?;
    Ok(answer)
}

#[test]
fn the_handshake_refuses_missing_foreign_and_expired_certificates() {
    let zone = TestZone::with_dev_ca();
    let server = Server::start(&zone.zone, 1);
    let (_, _, ca) = server.client_files("acme");
    // A valid certificate works.
    let jobs = server.cli("acme", &["--json", "job", "list"]).ok();
    assert_eq!(jobs.trim(), "[]");

    // No client certificate: no HTTP answer at all.
    match request_without_certificate(&server.url, &ca) {
        Ok(answer) => assert!(!answer.contains("HTTP/1.1"), "answered without a client certificate: {answer}"),
        Err(e) => assert!(!e.is_empty()),
    }

    // A certificate from another CA, for a real principal's name.
    let dir = zone.path("certs");
    std::fs::create_dir_all(&dir).expect("dir");
    let (cert, key) = write_cert(&dir, "acme", None, -1, 30);
    let err = server.cli_with(&cert, &key, &ca, &dir, &["job", "list"]).fails();
    assert!(err.contains("cannot reach the zone server"), "{err}");
    // Refused handshakes are in the server's access log, with the peer (written as the server drops the
    // connection, so give it a moment).
    let logged = || {
        let access = std::fs::read_to_string(zone.zone.join("server/access.jsonl")).unwrap_or_default();
        access.lines().any(|l| l.contains("\"handshake\"") && l.contains("127.0.0.1"))
    };
    let waited = Instant::now();
    while !logged() && waited.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(logged(), "no refused handshake in the access log");

    // An expired certificate from the zone's own CA.
    let ca_pem = std::fs::read_to_string(&ca).expect("ca");
    let ca_key =
        KeyPair::from_pem(&std::fs::read_to_string(zone.zone.join("dev-ca/ca.key")).expect("key")).expect("key");
    let issuer = Issuer::from_ca_cert_pem(&ca_pem, ca_key).expect("issuer");
    let (cert, key) = write_cert(&dir, "acme", Some(&issuer), -30, -1);
    let err = server.cli_with(&cert, &key, &ca, &dir, &["job", "list"]).fails();
    assert!(err.contains("cannot reach the zone server"), "{err}");
    // …and the same CA's certificate for a name that is no principal: through the handshake, then refused (403)
    // and recorded.
    let (cert, key) = write_cert(&dir, "mallory", Some(&issuer), -1, 30);
    let run = server.cli_with(&cert, &key, &ca, &dir, &["--json", "job", "list"]);
    assert!(!run.status.success());
    assert_eq!(run.json()["error"]["status"], 403, "{}", run.stdout);
    let refused = zone.audit().into_iter().any(|e| e["actor"] == "mallory" && e["outcome"] == "refused");
    assert!(refused, "the unknown principal's attempt is not in the audit log");
}

#[test]
fn an_operator_certificate_on_agency_endpoints_gets_403_and_an_audit_entry() {
    let zone = served_registry();
    let app = common::submit_app(&zone, FINANCE, "enterprise_registry", "aggregate", &[]).json()["id"]
        .as_u64()
        .expect("app id")
        .to_string();
    let server = Server::start(&zone.zone, 1);
    // Approving is for the authority and the providing agency: the operator is refused with 403.
    let run = server.cli("acme", &["--json", "app", "approve", &app, "--reason", "I approve myself"]);
    assert!(!run.status.success());
    let error = &run.json()["error"];
    assert_eq!(error["status"], 403, "{}", run.stdout);
    assert!(error["class"].as_str().is_some_and(|c| c.starts_with("access.")), "{error}");
    // So is publishing a dataset (an upload, then the agency's command).
    let policy = common::policy("enterprise_registry");
    let data = common::fixture("enterprise_registry");
    let run = server.cli("acme", &["--json", "dataset", "publish", "--policy", s(&policy), s(&data)]);
    assert_eq!(run.json()["error"]["status"], 403, "{} {}", run.stdout, run.stderr);
    // Each refusal is in the audit log, with the certificate's identity.
    let entries = zone.audit();
    let refusals: Vec<_> = entries
        .iter()
        .filter(|e| e["actor"] == "acme" && e["outcome"] == "refused")
        .filter(|e| e["via"].as_str().is_some_and(|v| v.starts_with("mtls CN=acme sha256:")))
        .collect();
    assert!(refusals.iter().any(|e| e["action"] == "app.approve"), "{entries:#?}");
    assert!(refusals.iter().any(|e| e["action"] == "dataset.publish"), "{entries:#?}");
    // The agency's own certificate approves.
    server.cli("market-regulation", &["app", "approve", &app, "--reason", "reviewed"]).ok();
    let approved = zone.audit().into_iter().any(|e| {
        e["action"] == "app.approve"
            && e["outcome"] == "ok"
            && e["via"].as_str().is_some_and(|v| v.starts_with("mtls CN=market-regulation "))
    });
    assert!(approved);
}

#[test]
fn three_principals_work_through_the_server_from_their_own_certificates() {
    let zone = TestZone::with_dev_ca();
    let server = Server::start(&zone.zone, 1);
    let work = zone.path("work");
    std::fs::create_dir_all(&work).expect("work dir");
    // The agency publishes (files uploaded), the authority grants, the operator submits (module uploaded).
    let policy = common::policy("enterprise_registry");
    let data = common::fixture("enterprise_registry");
    let out = server.cli("market-regulation", &["dataset", "publish", "--policy", s(&policy), s(&data)]).ok();
    assert!(out.contains("enterprise_registry"), "{out}");
    let (from, to) = (common::day(0), common::day(365));
    let grant = ["grant", "create", "--operator", "acme", "--providers=market-regulation", "--domains", "finance"];
    server.cli("dsb", &[&grant[..], &["--from", &from, "--to", &to]].concat()).ok();
    let submit = [
        "--json",
        "app",
        "submit",
        "--module",
        FINANCE,
        "--dataset",
        "enterprise_registry",
        "--domain",
        "finance",
        "--purpose",
        "capital per employee",
        "--mode",
        "aggregate",
    ];
    let app = server.cli("acme", &submit).ok();
    let app: serde_json::Value = serde_json::from_str(&app).expect("json");
    let app = app["id"].as_u64().expect("id").to_string();
    server.cli("dsb", &["app", "approve", &app, "--reason", "purpose is lawful"]).ok();
    server.cli("market-regulation", &["app", "approve", &app, "--reason", "within policy"]).ok();
    // The operator runs it through the queue and takes the product out: streamed, checked against the manifest.
    // As locally, the released table and its signed manifest are printed (fetched and checked against the zone key).
    let ran = server.cli("acme", &["job", "run", &app]).ok();
    assert!(ran.contains("released") && ran.contains("manifest: signed by") && ran.contains("district"), "{ran}");
    let product = zone.path("product");
    let out = server.cli("acme", &["job", "output", "1", "--out", s(&product)]).ok();
    assert!(out.contains("verified"), "{out}");
    assert!(product.join("product.parquet").is_file() && product.join("manifest.json").is_file());
    // The same product as in the zone, byte for byte.
    let inside = std::fs::read(zone.zone.join("products/1/product.parquet")).expect("zone product");
    assert_eq!(std::fs::read(product.join("product.parquet")).expect("downloaded"), inside);
    // Offline verification against the zone key.
    let key = zone.run(&["--json", "zone", "status"]).json()["public_key"].as_str().expect("key").to_owned();
    common::cleanroom(&zone.zone, &["product", "verify", s(&product), "--key", &key]).ok();
    // Another operator is refused the product.
    let run = server.cli("zenith", &["--json", "job", "output", "1", "--out", s(&zone.path("stolen"))]);
    assert_eq!(run.json()["error"]["status"], 403);
    assert!(!zone.path("stolen").join("product.parquet").exists());
    // The inspector reads the log and exports evidence (a file streamed back into the working folder).
    let log = server.cli("inspector", &["audit", "log"]).ok();
    assert!(log.contains("job.release"), "{log}");
    server.cli_in("inspector", &work, &["audit", "export", "--out", "bundle.json"]).ok();
    common::cleanroom(&zone.zone, &["audit", "verify", "--bundle", s(&work.join("bundle.json")), "--key", &key]).ok();
    // Issuing a certificate through the server: the authority gets it back in its own folder.
    server
        .cli_in(
            "dsb",
            &work,
            &["principal", "add", "auditor", "--role", "inspector", "--org", "data-supervision", "--issue-cert"],
        )
        .ok();
    assert!(work.join("auditor.pem").is_file() && work.join("auditor.key").is_file());
    server.cli_in("auditor", &work, &["job", "list"]).fails(); // no job for an inspector to… see
    // Every request is in the access log with its certificate: the operator's polls too.
    let access = std::fs::read_to_string(zone.zone.join("server/access.jsonl")).expect("access log");
    let lines: Vec<serde_json::Value> = access.lines().map(|l| serde_json::from_str(l).expect("json line")).collect();
    assert!(lines.iter().any(|l| l["cn"] == "acme" && l["path"] == "/v1/jobs/1" && l["status"] == 200));
    assert!(lines.iter().any(|l| l["cn"] == "zenith" && l["path"] == "/v1/jobs/1/product" && l["status"] == 403));
    assert!(lines.iter().all(|l| l["sha256"].as_str().is_some_and(|f| f.len() == 64) || l.get("handshake").is_some()));
    // Every state change made through the server names the certificate it came with.
    for e in zone.audit().iter().filter(|e| e["outcome"] == "ok") {
        if ["dataset.publish", "grant.create", "app.submit", "app.approve", "job.queue", "job.release"]
            .contains(&e["action"].as_str().unwrap_or_default())
        {
            assert!(e["via"].as_str().is_some_and(|v| v.starts_with("mtls CN=")), "{e}");
        }
    }
}

/// Job ids of `job.release` entries.
fn released_jobs(zone: &TestZone) -> Vec<String> {
    zone.audit()
        .into_iter()
        .filter(|e| e["action"] == "job.release")
        .flat_map(|e| e["objects"].as_array().cloned().unwrap_or_default())
        .filter_map(|o| o.as_str().and_then(|o| o.strip_prefix("job:")).map(str::to_owned))
        .collect()
}

#[test]
fn dozens_of_concurrent_clients_submit_and_poll_and_every_job_completes_once() {
    const CLIENTS: usize = 24;
    let zone = served_registry();
    let app = common::approved_app(&zone, FINANCE, "enterprise_registry", "aggregate", &[]);
    let server = Arc::new(Server::start(&zone.zone, 2));
    let started = Instant::now();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (server, app) = (server.clone(), app.clone());
            std::thread::spawn(move || {
                let queued = server.cli("acme", &["--json", "job", "run", &app, "--detach"]);
                let id = queued.json()["id"].as_u64().unwrap_or_else(|| panic!("{} {}", queued.stdout, queued.stderr));
                let deadline = Instant::now() + Duration::from_secs(600);
                loop {
                    let status = server.cli("acme", &["--json", "job", "status", &id.to_string()]).json();
                    let state = status["state"].as_str().unwrap_or_default().to_owned();
                    if ["released", "failed", "refused", "cancelled"].contains(&state.as_str()) {
                        return (id, state);
                    }
                    assert!(Instant::now() < deadline, "job {id} never ended");
                    std::thread::sleep(Duration::from_millis(200));
                }
            })
        })
        .collect();
    let results: Vec<(u64, String)> = clients.into_iter().map(|c| c.join().expect("client")).collect();
    eprintln!("{CLIENTS} clients: every job ended in {:?}", started.elapsed());
    let ids: BTreeSet<u64> = results.iter().map(|r| r.0).collect();
    assert_eq!(ids.len(), CLIENTS, "two clients got the same job");
    assert!(results.iter().all(|r| r.1 == "released"), "{results:?}");
    // Nothing lost or doubled: as many jobs, releases and product folders as clients.
    let jobs = server.cli("acme", &["--json", "job", "list"]).json();
    assert_eq!(jobs.as_array().map(Vec::len), Some(CLIENTS));
    let released = released_jobs(&zone);
    assert_eq!(released.len(), CLIENTS);
    assert_eq!(released.iter().collect::<BTreeSet<_>>().len(), CLIENTS);
    let folders = std::fs::read_dir(zone.zone.join("products")).expect("products").flatten().count();
    assert_eq!(folders, CLIENTS);
    assert!(jobs.as_array().expect("jobs").iter().all(|j| j["attempts"] == 1));
}

#[test]
fn a_kill_9_of_the_server_mid_run_keeps_the_queue_and_releases_each_job_once() {
    let zone = served_registry();
    let quick = common::approved_app(&zone, FINANCE, "enterprise_registry", "aggregate", &[]);
    let slow = common::approved_app_with(
        &zone,
        HOSTILE,
        "enterprise_registry",
        "aggregate",
        &["attack=slow", "spin=1000000"],
        &["--batch-rows", "100"],
    );
    let server = Server::start(&zone.zone, 1);
    // One worker: the slow job runs, three quick ones wait behind it.
    let slow_job =
        server.cli("acme", &["--json", "job", "run", &slow, "--detach"]).json()["id"].as_u64().expect("slow job");
    let started = Instant::now();
    loop {
        let state = server.cli("acme", &["--json", "job", "status", &slow_job.to_string()]).json()["state"].clone();
        if state == "running" {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "the slow job never started ({state})");
        std::thread::sleep(Duration::from_millis(100));
    }
    let quick_jobs: Vec<u64> = (0..3)
        .map(|_| server.cli("acme", &["--json", "job", "run", &quick, "--detach"]).json()["id"].as_u64().expect("id"))
        .collect();
    // One more queued job is cancelled before the crash: it must stay cancelled.
    let cancelled =
        server.cli("acme", &["--json", "job", "run", &quick, "--detach"]).json()["id"].as_u64().expect("id");
    let c = server.cli("acme", &["--json", "job", "cancel", &cancelled.to_string()]).json();
    assert_eq!(c["state"], "cancelled");
    std::thread::sleep(Duration::from_millis(500));
    server.kill9();

    // Restart: the interrupted run is queued again (recorded), the queued ones are still queued.
    let server = Server::start(&zone.zone, 1);
    let status = server.cli("acme", &["--json", "job", "status", &slow_job.to_string()]).json();
    assert!(status["state"] == "queued" || status["state"] == "running", "{status}");
    assert!(zone.audit().iter().any(|e| e["action"] == "job.interrupted"
        && e["objects"].as_array().is_some_and(|o| o.contains(&serde_json::json!(format!("job:{slow_job}"))))));
    // Its operator cancels the re-run; the quick jobs then run, each released once.
    server.cli("acme", &["job", "cancel", &slow_job.to_string()]).ok();
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let jobs = server.cli("acme", &["--json", "job", "list"]).json();
        let jobs = jobs.as_array().cloned().unwrap_or_default();
        let state = |id: u64| jobs.iter().find(|j| j["id"] == id).map(|j| j["state"].clone()).unwrap_or_default();
        if quick_jobs.iter().all(|id| state(*id) == "released") && state(slow_job) == "cancelled" {
            assert_eq!(state(cancelled), "cancelled");
            let attempts = jobs.iter().find(|j| j["id"] == slow_job).map(|j| j["attempts"].clone());
            assert!(attempts.is_some_and(|a| a.as_u64() >= Some(1)));
            break;
        }
        assert!(Instant::now() < deadline, "jobs did not end after the restart: {jobs:#?}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let released = released_jobs(&zone);
    let expected: Vec<String> = quick_jobs.iter().map(u64::to_string).collect();
    assert_eq!(released.iter().cloned().collect::<BTreeSet<_>>(), expected.iter().cloned().collect::<BTreeSet<_>>());
    assert_eq!(released.len(), 3, "a job was released twice: {released:?}");
    assert!(!zone.zone.join("products").join(slow_job.to_string()).exists());
    // The log still verifies after the crash.
    zone.run_as("inspector", &["audit", "verify"]).ok();
}

#[test]
fn the_server_opens_no_path_a_client_names_and_answers_hostile_requests_with_errors() {
    let zone = TestZone::with_dev_ca();
    let server = Server::start(&zone.zone, 1);
    // The API alone, as a client other than the CLI would call it.
    let remote = zone_client::Remote::with_dev_ca(&server.url, &zone.zone, "inspector").expect("connect");
    let agent = remote.agent();
    let post = |path: &str, body: serde_json::Value| {
        let mut r = agent.post(remote.url(path)).send_json(&body).expect("request");
        let status = r.status().as_u16();
        (status, r.body_mut().read_json::<serde_json::Value>().unwrap_or_default())
    };
    // An output path of the client's choosing cannot even be said: the export's request has no such field.
    let target = zone.path("escaped.json");
    let (status, body) = post("/v1/audit/export", serde_json::json!({ "out": s(&target) }));
    assert_eq!((status, body["error"]["class"].as_str()), (400, Some("request.invalid")), "{body}");
    assert!(!target.exists());
    // An input path that is not an upload is refused (the server would read its own file).
    let acme = zone_client::Remote::with_dev_ca(&server.url, &zone.zone, "acme").expect("connect");
    let post_as_acme = |path: &str, body: serde_json::Value| {
        let mut r = acme.agent().post(acme.url(path)).send_json(&body).expect("request");
        let status = r.status().as_u16();
        (status, r.body_mut().read_json::<serde_json::Value>().unwrap_or_default())
    };
    let (status, body) = post_as_acme("/v1/modules/check", serde_json::json!({ "module": "/etc/passwd" }));
    assert_eq!(status, 400, "{body}");
    assert!(body["error"]["message"].as_str().is_some_and(|m| m.contains("not an upload")), "{body}");
    // An upload token that climbs out of the upload area is refused too.
    let climbing = format!("upload:{}/../../keys", "0".repeat(32));
    let (status, _) = post_as_acme("/v1/modules/check", serde_json::json!({ "module": climbing }));
    assert_eq!(status, 400);
    // There is no route that makes zones or runs commands; garbage is refused with a class.
    let (status, body) = post("/v1/commands", serde_json::json!({ "command": "rm -rf /" }));
    assert_eq!((status, body["error"]["class"].as_str()), (404, Some("request.route")), "{body}");
    let (status, body) = post("/v1/grants", serde_json::json!({ "operator": 7 }));
    assert_eq!((status, body["error"]["class"].as_str()), (400, Some("request.invalid")), "{body}");
    // A download token of someone else's, or a made-up one, is not found.
    let mut r = agent.get(remote.url(&format!("/v1/downloads/{}/0/x", "ab".repeat(16)))).call().expect("request");
    assert_eq!(r.status().as_u16(), 404);
    let _ = r.body_mut().read_to_string();
    // The description is served and is the checked-in file.
    let mut r = agent.get(remote.url("/v1/openapi.json")).call().expect("request");
    let served: serde_json::Value = r.body_mut().read_json().expect("body");
    let checked_in: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../api/openapi.json")).expect("file"),
    )
    .expect("json");
    assert_eq!(served, checked_in);
    // Whoami names the principal and the certificate.
    let me: serde_json::Value = remote.get("/v1/whoami").expect("whoami");
    assert_eq!(me["name"], "inspector");
    assert_eq!(me["certificate"]["sha256"].as_str().map(str::len), Some(64));
    // The zone still verifies.
    zone.run_as("inspector", &["audit", "verify"]).ok();
}

/// The access log is sealed into the audit log; `zone verify` finds a changed or truncated line before the last seal.
#[test]
fn the_access_log_is_sealed_into_the_audit_log_and_tampering_is_found() {
    let zone = TestZone::with_dev_ca();
    let server = Server::start_with(&zone.zone, 1, &["--seal-every", "1"]);
    for _ in 0..3 {
        server.cli("acme", &["job", "list"]).ok();
    }
    let path = zone.zone.join("server/access.jsonl");
    let size = std::fs::metadata(&path).expect("access log").len();
    // Wait for a seal that covers at least those three requests.
    let waited = Instant::now();
    while !sealed_at_least(&zone, size) {
        assert!(waited.elapsed() < Duration::from_secs(20), "no seal of the access log in the audit log");
        std::thread::sleep(Duration::from_millis(200));
    }
    let ok = zone.run(&["zone", "verify"]).ok();
    assert!(ok.contains("access log intact"), "{ok}");

    // One changed status on the first line.
    let original = std::fs::read(&path).expect("read");
    let text = String::from_utf8(original.clone()).expect("utf-8");
    let first = text.lines().next().expect("a line");
    assert!(first.contains("\"status\":200"), "{first}");
    let forged = text.replacen("\"status\":200", "\"status\":403", 1);
    std::fs::write(&path, &forged).expect("tamper");
    let err = zone.run(&["zone", "verify"]).fails();
    assert!(err.contains("no longer hash to what audit entry"), "{err}");
    // Lines removed from the end of what was sealed.
    std::fs::write(&path, &original[..first.len() + 1]).expect("truncate");
    let err = zone.run(&["zone", "verify"]).fails();
    assert!(err.contains("it was truncated"), "{err}");
    // The original again: intact, and lines after the last seal are simply not covered yet.
    std::fs::write(&path, &original).expect("restore");
    zone.run(&["zone", "verify"]).ok();

    // A kill -9 leaves the last requests unsealed; the next start seals them at once.
    server.cli("acme", &["job", "list"]).ok();
    server.kill9();
    let size = std::fs::metadata(&path).expect("access log").len();
    assert!(!sealed_at_least(&zone, size), "sealed before the restart");
    let _server = Server::start(&zone.zone, 1);
    let waited = Instant::now();
    while !sealed_at_least(&zone, size) {
        assert!(waited.elapsed() < Duration::from_secs(20), "the restart did not seal what the last run left");
        std::thread::sleep(Duration::from_millis(200));
    }
    zone.run(&["zone", "verify"]).ok();
}

/// Whether a `server.access_seal` entry covers at least the access log's first `size` bytes.
fn sealed_at_least(zone: &TestZone, size: u64) -> bool {
    zone.audit().iter().filter(|e| e["action"] == "server.access_seal").any(|e| {
        let objects = e["objects"].as_array().cloned().unwrap_or_default();
        objects.iter().filter_map(|o| o.as_str()?.strip_prefix("access-log@")?.parse::<u64>().ok()).any(|b| b >= size)
    })
}

/// Through the server the operator learns what it learns locally and no more: a refused output's class is
/// `job.failed` with fixed text (no name or count the guest chose), and a release carries no counter the guest
/// controls — in the CLI's output and in the API's own JSON.
#[test]
fn through_the_server_the_operator_gets_no_guest_text_counter_or_failure_class() {
    const CHANNELS: &str = example_guests::HOSTILE_CHANNELS.path;
    const MARKER: &str = "MARKER-zq7x";
    let zone = served_registry();
    let named = common::approved_app(&zone, CHANNELS, "enterprise_registry", "aggregate", &["channel=name"]);
    let rows = common::approved_app(&zone, CHANNELS, "enterprise_registry", "aggregate", &["channel=rows"]);
    let singletons = common::approved_app(&zone, CHANNELS, "enterprise_registry", "aggregate", &["channel=singletons"]);
    let server = Server::start(&zone.zone, 1);
    let mut seen = String::new();
    for app in [&named, &rows] {
        let run = server.cli("acme", &["--json", "job", "run", app]);
        assert!(!run.status.success(), "{}", run.stdout);
        assert_eq!(run.json()["error"]["class"], "job.failed", "{}", run.stdout);
        seen.push_str(&run.stdout);
        seen.push_str(&run.stderr);
    }
    let run = server.cli("acme", &["--json", "job", "run", &singletons]);
    assert_eq!(run.json()["job"]["state"], "released", "{}", run.stdout);
    seen.push_str(&run.stdout);
    for args in
        [&["--json", "job", "list"][..], &["job", "list"], &["job", "status", "1"], &["--json", "job", "status", "3"]]
    {
        let r = server.cli("acme", args);
        seen.push_str(&r.stdout);
        seen.push_str(&r.stderr);
    }
    // The API's JSON, read with the operator's certificate.
    let (cert, key, ca) = server.client_files("acme");
    let remote = zone_client::Remote::connect(&server.url, &cert, &key, &ca).expect("connect");
    for id in 1..=3 {
        let v: serde_json::Value = remote.get(&format!("/v1/jobs/{id}")).expect("job");
        seen.push_str(&v.to_string());
    }
    for needle in [MARKER, "7331", "BadOutput", "groups_suppressed", "contributions_dropped", "elapsed_ms"] {
        assert!(!seen.contains(needle), "`{needle}` reached the operator through the server:\n{seen}");
    }
    // The agency, through the same server, sees the class and the counters.
    let agency = server.cli("market-regulation", &["--json", "job", "status", "1"]).json();
    assert_eq!(agency["error_class"], "BadOutput", "{agency}");
    let agency = server.cli("market-regulation", &["--json", "job", "status", "3"]).json();
    assert!(agency["counts"]["groups_suppressed"].as_u64().is_some_and(|n| n > 1_000), "{agency}");
}
