//! `cleanroom serve`: the zone over HTTPS with mutual TLS (tokio, rustls with ring, hyper, axum). A client
//! certificate that chains to a registered organisation CA (or `--client-ca`) is required in the handshake; on every
//! request its subject CN names the principal, its O must be the principal's organisation, it must have been issued
//! by a CA registered for that organisation (`org add`), and neither it nor its principal may be revoked or
//! suspended. Every request is then decided by the same `Zone` methods — so the same authorization layer and audit
//! log — as the local CLI, with the certificate's identity stamped on each audit entry. Uploads belong to the
//! principal that made them, for one command, once. Jobs go through the durable queue of the store and run in a
//! bounded pool of worker threads.

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use axum::Json;
use axum::body::Body;
use axum::extract::{FromRequestParts, Path as UrlPath, Query, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use futures::StreamExt as _;
use hyper_util::rt::TokioIo;
use ring::rand::SecureRandom as _;
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;
use sha2::{Digest as _, Sha256};
use tokio::io::AsyncWriteExt as _;
use tower::ServiceExt as _;
use zone_store::{ACCESS_LOG, AccessLogHash, Claim, Principal, RunFailure, StoreError, Zone};

use crate::args::{ArtifactCommand, Cli, Command, JobCommand, OrgCommand, PrincipalCommand, ServeArgs};
use crate::certs::{CertIdentity, DevCa};
use crate::context::Ctx;
use crate::output::{self, Mode};
use crate::remote::{
    CommandAnswer, Output, OutputFile, PathRole, ProductAnswer, command_name, paths_mut, runs_locally,
};

/// The API description, checked in and served at `/v1/openapi.json`.
pub const OPENAPI: &str = include_str!("../openapi.json");

/// Every route: (method, path as OpenAPI writes it). The router is built from the same list's handlers, and a test
/// checks that `openapi.json` describes exactly these.
#[cfg_attr(not(test), expect(dead_code, reason = "the router's test compares it with openapi.json and the router"))]
pub const ROUTES: &[(&str, &str)] = &[
    ("get", "/v1/openapi.json"),
    ("get", "/v1/whoami"),
    ("get", "/v1/zone"),
    ("get", "/v1/jobs"),
    ("post", "/v1/jobs"),
    ("get", "/v1/jobs/{id}"),
    ("post", "/v1/jobs/{id}/cancel"),
    ("post", "/v1/jobs/{id}/product"),
    ("post", "/v1/artifacts/{id}/output"),
    ("post", "/v1/apps/{id}/approve"),
    ("post", "/v1/apps/{id}/reject"),
    ("put", "/v1/uploads"),
    ("get", "/v1/downloads/{token}/{slot}/{name}"),
    ("post", "/v1/commands"),
];

/// Where the server keeps uploads and prepared downloads, inside the zone.
const SPOOL: &str = "server";
/// Prepared downloads are removed after this long.
const DOWNLOAD_TTL: Duration = Duration::from_secs(3600);
/// Uploads not used within this long are removed.
const UPLOAD_TTL: Duration = Duration::from_secs(24 * 3600);
/// The handshake must be over within this long.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// A request's headers must arrive within this long (also between requests on a kept-alive connection).
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);

/// What every handler shares.
#[derive(Debug)]
pub struct ServerState {
    root: PathBuf,
    queue: Arc<Queue>,
    max_queued: usize,
    max_upload: u64,
    /// Per principal: bytes and files of unused uploads.
    upload_quota: u64,
    max_uploads: usize,
    access: Arc<AccessLog>,
    /// The handshake's verifier, refreshed when organisations' CAs are registered.
    verifier: Option<Arc<ZoneClientVerifier>>,
}

/// The handshake's client-certificate check: the chain must lead to a CA registered for some organisation (or one
/// of `--client-ca`), re-read from the catalog when that set changes. It grants nothing by itself: which
/// organisation a CA speaks for is checked on every request ([`open_as`]).
#[derive(Debug)]
pub struct ZoneClientVerifier {
    root: PathBuf,
    extra: Vec<CertificateDer<'static>>,
    provider: Arc<rustls::crypto::CryptoProvider>,
    current: std::sync::RwLock<(Vec<String>, Arc<dyn ClientCertVerifier>)>,
}

impl ZoneClientVerifier {
    fn new(
        root: &Path,
        extra: Vec<CertificateDer<'static>>,
        provider: Arc<rustls::crypto::CryptoProvider>,
    ) -> anyhow::Result<ZoneClientVerifier> {
        let built = Self::build(root, &extra, &provider)?;
        Ok(ZoneClientVerifier { root: root.to_path_buf(), extra, provider, current: std::sync::RwLock::new(built) })
    }

    fn build(
        root: &Path,
        extra: &[CertificateDer<'static>],
        provider: &Arc<rustls::crypto::CryptoProvider>,
    ) -> anyhow::Result<(Vec<String>, Arc<dyn ClientCertVerifier>)> {
        let anchors = Zone::open(root)?.trust_anchors(None)?;
        let mut roots = rustls::RootCertStore::empty();
        for ca in extra {
            roots.add(ca.clone()).context("a --client-ca certificate is not a usable CA")?;
        }
        let mut keys: Vec<String> = anchors.iter().map(|a| a.key_sha256.clone()).collect();
        for anchor in &anchors {
            for der in CertificateDer::pem_slice_iter(anchor.cert_pem.as_bytes()).flatten() {
                if let Err(e) = roots.add(der) {
                    tracing::warn!(org = %anchor.org, error = %e, "a registered client CA cannot be used");
                }
            }
        }
        keys.sort();
        keys.dedup();
        if roots.is_empty() {
            anyhow::bail!(
                "no client CA: register each organisation's CA with `cleanroom org add ORG --ca FILE` (a zone made \
                 with --dev-ca has its development CA registered), or give --client-ca"
            );
        }
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .context("client certificate verifier")?;
        Ok((keys, verifier))
    }

    /// Re-reads the registered CAs; the new set takes effect for the next handshake.
    pub fn refresh(&self) {
        let changed = match self.current.read() {
            Ok(current) => Zone::open(&self.root)
                .and_then(|z| z.trust_anchors(None))
                .map(|a| {
                    let mut keys: Vec<String> = a.into_iter().map(|a| a.key_sha256).collect();
                    keys.sort();
                    keys.dedup();
                    keys != current.0
                })
                .unwrap_or(false),
            Err(_) => true,
        };
        if !changed {
            return;
        }
        match Self::build(&self.root, &self.extra, &self.provider) {
            Ok(built) => match self.current.write() {
                Ok(mut current) => *current = built,
                Err(poisoned) => *poisoned.into_inner() = built,
            },
            Err(e) => tracing::error!(error = %format!("{e:#}"), "the registered client CAs could not be reloaded"),
        }
    }

    fn inner(&self) -> Arc<dyn ClientCertVerifier> {
        match self.current.read() {
            Ok(c) => c.1.clone(),
            Err(poisoned) => poisoned.into_inner().1.clone(),
        }
    }
}

impl ClientCertVerifier for ZoneClientVerifier {
    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        // No hints: a client presents the one certificate it has, and the set can change while the server runs.
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: rustls_pki_types::UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.inner().verify_client_cert(end_entity, intermediates, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner().verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner().verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner().supported_verify_schemes()
    }
}

/// Every request (with the certificate it came with, the route and the status) and every refused handshake, one JSON
/// line each, in `<zone>/server/access.jsonl`. The audit log records what changed, was refused or read data; this
/// records every request, polls included, without an fsync each. It is **sealed** into the audit log: every
/// `--seal-every` seconds (and when the server stops) the file is fsynced and the SHA-256 of everything in it is
/// recorded as a `server.access_seal` entry, which `zone verify` checks against the file.
#[derive(Debug, Default)]
pub struct AccessLog {
    file: Option<Mutex<AccessFile>>,
}

#[derive(Debug)]
struct AccessFile {
    path: PathBuf,
    file: fs::File,
    hash: AccessLogHash,
    sealed: u64,
}

impl AccessLog {
    fn open(path: &Path) -> anyhow::Result<AccessLog> {
        let file = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("open the access log {}", path.display()))?;
        let hash = AccessLogHash::of_file(path)?;
        // Nothing counts as sealed yet: the first seal (at start) covers whatever an earlier run left unsealed, e.g.
        // the lines before a kill -9.
        let access = AccessFile { path: path.to_path_buf(), file, hash, sealed: 0 };
        Ok(AccessLog { file: Some(Mutex::new(access)) })
    }

    fn write(&self, mut line: serde_json::Value) {
        let Some(file) = &self.file else { return };
        line["time"] = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true).into();
        let mut text = line.to_string();
        text.push('\n');
        // One write per line on an O_APPEND file, under the lock: lines never interleave, and the running hash
        // follows the file byte for byte.
        let Ok(mut f) = file.lock() else { return };
        match std::io::Write::write_all(&mut f.file, text.as_bytes()) {
            Ok(()) => f.hash.update(text.as_bytes()),
            Err(e) => {
                tracing::error!(error = %e, "the access log cannot be written");
                // Part of the line may be in the file: hash what is there, so the next seal is true to it.
                match AccessLogHash::of_file(&f.path) {
                    Ok(hash) => f.hash = hash,
                    Err(e) => tracing::error!(error = %e, "the access log cannot be read back"),
                }
            }
        }
    }

    /// Seals what was written since the last seal: fsync, then a `server.access_seal` entry in the audit log.
    fn seal(&self, root: &Path) -> anyhow::Result<()> {
        let Some(file) = &self.file else { return Ok(()) };
        let (bytes, lines, sha256) = {
            let f = file.lock().map_err(|_| anyhow::anyhow!("the access log's lock is poisoned"))?;
            if f.hash.bytes() == f.sealed {
                return Ok(());
            }
            f.file.sync_data().with_context(|| format!("fsync {}", f.path.display()))?;
            f.hash.snapshot()
        };
        Zone::open(root)?.seal_access_log(bytes, lines, &sha256)?;
        if let Ok(mut f) = file.lock() {
            f.sealed = f.sealed.max(bytes);
        }
        Ok(())
    }
}

/// Seals the access log at once (what an earlier run left), then every `every` until the server stops, then once
/// more.
fn sealer(root: &Path, access: &AccessLog, queue: &Queue, every: Duration, verifier: &ZoneClientVerifier) {
    if let Err(e) = access.seal(root) {
        tracing::error!(error = %format!("{e:#}"), "the access log could not be sealed at start");
    }
    let mut last = std::time::Instant::now();
    let mut refreshed = std::time::Instant::now();
    while !queue.stop.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(100).min(every));
        // CAs registered by a local `org add` while the server runs take effect within two seconds.
        if refreshed.elapsed() >= Duration::from_secs(2) {
            verifier.refresh();
            refreshed = std::time::Instant::now();
        }
        if last.elapsed() >= every {
            if let Err(e) = access.seal(root) {
                tracing::error!(error = %format!("{e:#}"), "the access log could not be sealed");
            }
            last = std::time::Instant::now();
        }
    }
    if let Err(e) = access.seal(root) {
        tracing::error!(error = %format!("{e:#}"), "the access log could not be sealed at stop");
    }
}

/// Writes each request to the access log once it is answered.
async fn log_request(
    State(s): State<Arc<ServerState>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let started = std::time::Instant::now();
    let (method, path) = (req.method().to_string(), req.uri().path().to_owned());
    let (cn, sha256) = match req.extensions().get::<PeerIdentity>().map(|p| p.0.as_ref()) {
        Some(Ok(id)) => (Some(id.common_name.clone()), Some(id.fingerprint.clone())),
        _ => (None, None),
    };
    let response = next.run(req).await;
    s.access.write(serde_json::json!({
        "cn": cn, "sha256": sha256, "method": method, "path": path,
        "status": response.status().as_u16(), "ms": started.elapsed().as_millis() as u64,
    }));
    response
}

impl ServerState {
    fn spool(&self, part: &str) -> PathBuf {
        self.root.join(SPOOL).join(part)
    }
}

/// Wakes the workers when a job is queued; tells them to stop.
#[derive(Debug, Default)]
pub struct Queue {
    pending: Mutex<u64>,
    wake: Condvar,
    stop: AtomicBool,
}

impl Queue {
    fn notify(&self) {
        if let Ok(mut n) = self.pending.lock() {
            *n += 1;
        }
        self.wake.notify_all();
    }

    /// Waits for a notification or `timeout`.
    fn wait(&self, timeout: Duration) {
        if let Ok(mut n) = self.pending.lock() {
            if *n == 0 {
                if let Ok((guard, _)) = self.wake.wait_timeout(n, timeout) {
                    n = guard;
                } else {
                    return;
                }
            }
            *n = n.saturating_sub(1);
        }
    }
}

/// The identity of the connection a request came on (set per connection after the handshake).
#[derive(Debug, Clone)]
struct PeerIdentity(Arc<Result<CertIdentity, String>>);

/// An error answer: HTTP status and the zone's error class.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    class: String,
    message: String,
    causes: Vec<String>,
    rules: Vec<String>,
}

impl ApiError {
    fn new(status: StatusCode, class: &str, message: impl Into<String>) -> ApiError {
        ApiError { status, class: class.to_owned(), message: message.into(), causes: Vec::new(), rules: Vec::new() }
    }
}

/// The HTTP status for a zone error class.
pub fn status_for(class: &str) -> StatusCode {
    let family = class.split('.').next().unwrap_or_default();
    if family == "access" {
        StatusCode::FORBIDDEN
    } else if class.ends_with(".unknown") || class == "input.missing" {
        StatusCode::NOT_FOUND
    } else if class == "queue.full" {
        StatusCode::TOO_MANY_REQUESTS
    } else if matches!(family, "io" | "catalog" | "zone") && class != "zone.exists" {
        StatusCode::INTERNAL_SERVER_ERROR
    } else if matches!(family, "input" | "policy" | "column" | "request") || class == "grant.invalid" {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::CONFLICT
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(error: anyhow::Error) -> ApiError {
        let ops = error.downcast_ref::<zone_ops::OpsError>();
        let store = error.downcast_ref::<StoreError>().or(match ops {
            Some(zone_ops::OpsError::Store(e)) => Some(e),
            _ => None,
        });
        let class = match (store, ops, error.downcast_ref::<crate::jobs::RunEnded>()) {
            (Some(e), _, _) => e.class().to_owned(),
            (None, Some(e), _) => e.class().to_owned(),
            (None, None, Some(e)) => e.class.clone(),
            (None, None, None) => match error.downcast_ref::<zone_sandbox::SandboxError>() {
                Some(e) => e.class.name().to_owned(),
                None => "request.invalid".to_owned(),
            },
        };
        let rules = match store {
            Some(StoreError::PolicyRefused(e)) => e.rules().iter().map(|r| r.to_string()).collect(),
            _ => Vec::new(),
        };
        ApiError {
            status: status_for(&class),
            class,
            message: error.to_string(),
            causes: error.chain().skip(1).map(|c| c.to_string()).collect(),
            rules,
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> ApiError {
        ApiError::from(anyhow::Error::new(error))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": {
            "class": self.class, "message": self.message, "causes": self.causes, "rules": self.rules,
        }});
        (self.status, Json(body)).into_response()
    }
}

type ApiResult<T> = Result<T, ApiError>;

/// The verified certificate of the caller (401 only when a request reached the router without a TLS identity,
/// which the server's own connections never do).
#[derive(Debug, Clone)]
struct Caller(CertIdentity);

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Caller, ApiError> {
        match parts.extensions.get::<PeerIdentity>().map(|p| p.0.as_ref()) {
            Some(Ok(id)) => Ok(Caller(id.clone())),
            Some(Err(why)) => Err(ApiError::new(StatusCode::FORBIDDEN, "access.certificate", why.clone())),
            None => Err(ApiError::new(StatusCode::UNAUTHORIZED, "access.certificate", "no client certificate")),
        }
    }
}

/// Opens the zone for one request, as the caller's principal. The certificate's CN must name a principal that is
/// neither suspended nor removed; its O must be the principal's organisation (a certificate without O is refused);
/// it must have been issued by a CA registered for that organisation, and not be revoked. Every refusal is recorded.
fn open_as(root: &Path, caller: &CertIdentity) -> ApiResult<(Zone, Principal)> {
    let mut zone = Zone::open(root)?;
    zone.set_via(Some(caller.via()));
    // Unknown, suspended and removed principals are refused (and recorded) here.
    let who = zone.actor(&caller.common_name)?;
    let refuse = |class: &str, detail: String| -> ApiError {
        let objects = [format!("principal:{}", who.name), format!("cert:{}", caller.fingerprint)];
        match zone.record_refusal(&who, "zone.access", &objects, class, &detail) {
            Ok(()) => ApiError::new(StatusCode::FORBIDDEN, class, detail),
            Err(e) => ApiError::from(e),
        }
    };
    let Some(cert_org) = &caller.organisation else {
        return Err(refuse(
            "access.certificate",
            "the certificate's subject has no organisation (O): a certificate must name its principal's organisation"
                .to_owned(),
        ));
    };
    let Some(org) = &who.org else {
        return Err(refuse(
            "access.certificate",
            format!("principal `{}` has no organisation, so no CA speaks for it", who.name),
        ));
    };
    if cert_org != org {
        return Err(refuse(
            "access.certificate",
            format!(
                "the certificate's organisation `{}` is not principal `{}`'s (`{org}`)",
                cert_org.escape_debug(),
                who.name
            ),
        ));
    }
    if let Some(revoked) = zone.certificate(&caller.fingerprint)?.filter(|c| c.revoked_at.is_some()) {
        return Err(refuse(
            "access.revoked",
            format!(
                "certificate {} was revoked on {}",
                caller.fingerprint,
                revoked.revoked_at.as_deref().unwrap_or_default()
            ),
        ));
    }
    let anchors: Vec<String> = zone.trust_anchors(Some(org))?.into_iter().map(|a| a.cert_pem).collect();
    if let Err(why) = crate::certs::issued_by_one_of(&caller.chain, &anchors) {
        return Err(refuse("access.certificate", format!("the certificate does not speak for `{org}`: {why}")));
    }
    Ok((zone, who))
}

/// Runs blocking zone work off the async threads.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> ApiResult<T> + Send + 'static) -> ApiResult<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "zone.panic", format!("request failed: {e}")))?
}

fn random_token() -> ApiResult<String> {
    let mut bytes = [0u8; 16];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "zone.random", "no randomness"))?;
    Ok(hex::encode(bytes))
}

fn io_error(what: &str, path: &Path, e: std::io::Error) -> ApiError {
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "io", format!("{what} {}: {e}", path.display()))
}

/// The router: every route of `ROUTES`.
pub fn router(state: Arc<ServerState>) -> axum::Router {
    axum::Router::new()
        .route("/v1/openapi.json", get(openapi))
        .route("/v1/whoami", get(whoami))
        .route("/v1/zone", get(zone_info))
        .route("/v1/jobs", get(list_jobs).post(submit_job))
        .route("/v1/jobs/{id}", get(job_status))
        .route("/v1/jobs/{id}/cancel", post(cancel_job))
        .route("/v1/jobs/{id}/product", post(job_product))
        .route("/v1/artifacts/{id}/output", post(artifact_output))
        .route("/v1/apps/{id}/approve", post(approve_app))
        .route("/v1/apps/{id}/reject", post(reject_app))
        .route("/v1/uploads", put(upload))
        .route("/v1/downloads/{token}/{slot}/{name}", get(download))
        .route("/v1/commands", post(run_command))
        .layer(axum::middleware::from_fn_with_state(state.clone(), log_request))
        .with_state(state)
}

async fn openapi() -> Response {
    ([(axum::http::header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

async fn whoami(State(s): State<Arc<ServerState>>, Caller(c): Caller) -> ApiResult<Json<serde_json::Value>> {
    blocking(move || {
        let (_, who) = open_as(&s.root, &c)?;
        Ok(Json(serde_json::json!({
            "name": who.name, "role": who.role.name(), "org": who.org,
            "certificate": { "subject_cn": c.common_name, "subject_o": c.organisation, "sha256": c.fingerprint },
        })))
    })
    .await
}

async fn zone_info(State(s): State<Arc<ServerState>>, Caller(c): Caller) -> ApiResult<Json<serde_json::Value>> {
    blocking(move || {
        let (zone, _) = open_as(&s.root, &c)?;
        Ok(Json(serde_json::json!({
            "zone_id": zone.info().zone_id,
            "public_key": zone.keys()?.public_key_hex(),
            "server": env!("CARGO_PKG_VERSION"),
        })))
    })
    .await
}

async fn list_jobs(State(s): State<Arc<ServerState>>, Caller(c): Caller) -> ApiResult<Response> {
    blocking(move || {
        let (zone, who) = open_as(&s.root, &c)?;
        Ok(Json(zone.jobs(&who)?).into_response())
    })
    .await
}

async fn job_status(
    State(s): State<Arc<ServerState>>,
    Caller(c): Caller,
    UrlPath(id): UrlPath<u64>,
) -> ApiResult<Response> {
    blocking(move || {
        let (zone, who) = open_as(&s.root, &c)?;
        Ok(Json(zone.job(&who, id)?).into_response())
    })
    .await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SubmitJob {
    app: u64,
    #[serde(default)]
    batch_rows: Option<usize>,
}

async fn submit_job(
    State(s): State<Arc<ServerState>>,
    Caller(c): Caller,
    Json(req): Json<SubmitJob>,
) -> ApiResult<Response> {
    let queue = s.queue.clone();
    blocking(move || {
        let (zone, who) = open_as(&s.root, &c)?;
        if req.batch_rows.is_some_and(|b| b == 0 || b > 1 << 20) {
            return Err(ApiError::new(StatusCode::BAD_REQUEST, "input.invalid", "batch_rows must be 1 to 1048576"));
        }
        let waiting = zone.queued_job_ids()?.len();
        if waiting >= s.max_queued {
            let detail =
                format!("{waiting} jobs are waiting (the server takes at most {}); try again later", s.max_queued);
            zone.record_refusal(&who, "job.run", &[format!("app:{}", req.app)], "queue.full", &detail)?;
            return Err(ApiError::new(StatusCode::TOO_MANY_REQUESTS, "queue.full", detail));
        }
        let record = zone.enqueue_job(&who, req.app, req.batch_rows)?;
        queue.notify();
        Ok((StatusCode::ACCEPTED, Json(record)).into_response())
    })
    .await
}

async fn cancel_job(
    State(s): State<Arc<ServerState>>,
    Caller(c): Caller,
    UrlPath(id): UrlPath<u64>,
) -> ApiResult<Response> {
    blocking(move || {
        let (zone, who) = open_as(&s.root, &c)?;
        // A running job's watch sees the request within 100 ms and stops its sandbox.
        let record = match zone.cancel_job(&who, id)? {
            zone_store::Cancelled::BeforeRun(r) | zone_store::Cancelled::WhileRunning(r) => r,
        };
        Ok(Json(record).into_response())
    })
    .await
}

/// Copies a released product (or artifact) into a fresh download folder through the zone's own `*_output`
/// (authorized and recorded there), and lists its files.
fn prepare_product(
    s: &ServerState,
    c: &CertIdentity,
    id: u64,
    take: impl FnOnce(&Zone, &Principal, &Path) -> Result<Vec<PathBuf>, StoreError>,
) -> ApiResult<ProductAnswer> {
    let (zone, who) = open_as(&s.root, c)?;
    let (token, dir) = new_download(s, &who)?;
    let slot = dir.join("0");
    take(&zone, &who, &slot)?;
    let files = list_files(&slot, &slot)?;
    Ok(ProductAnswer { job: id, download: token, files, public_key: zone.keys()?.public_key_hex() })
}

async fn job_product(
    State(s): State<Arc<ServerState>>,
    Caller(c): Caller,
    UrlPath(id): UrlPath<u64>,
) -> ApiResult<Json<ProductAnswer>> {
    blocking(move || prepare_product(&s, &c, id, |zone, who, out| zone.job_output(who, id, out)).map(Json)).await
}

async fn artifact_output(
    State(s): State<Arc<ServerState>>,
    Caller(c): Caller,
    UrlPath(id): UrlPath<u64>,
) -> ApiResult<Json<ProductAnswer>> {
    blocking(move || prepare_product(&s, &c, id, |zone, who, out| zone.artifact_output(who, id, out)).map(Json)).await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Decision {
    reason: String,
}

async fn decide(s: Arc<ServerState>, c: CertIdentity, id: u64, approve: bool, reason: String) -> ApiResult<Response> {
    blocking(move || {
        let (zone, who) = open_as(&s.root, &c)?;
        Ok(Json(zone.decide_app(&who, id, approve, &reason)?).into_response())
    })
    .await
}

async fn approve_app(
    State(s): State<Arc<ServerState>>,
    Caller(c): Caller,
    UrlPath(id): UrlPath<u64>,
    Json(d): Json<Decision>,
) -> ApiResult<Response> {
    decide(s, c, id, true, d.reason).await
}

async fn reject_app(
    State(s): State<Arc<ServerState>>,
    Caller(c): Caller,
    UrlPath(id): UrlPath<u64>,
    Json(d): Json<Decision>,
) -> ApiResult<Response> {
    decide(s, c, id, false, d.reason).await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UploadQuery {
    /// The command the upload is for, dotted (`dataset.publish`).
    command: String,
}

/// What the server keeps beside an upload: whose it is (its folder), and for which command.
#[derive(Debug, serde::Serialize, Deserialize)]
struct UploadMeta {
    command: String,
    sha256: String,
    bytes: u64,
}

/// The dotted names of the commands that take input files.
fn commands_with_inputs() -> &'static [&'static str] {
    &[
        "dataset.publish",
        "principal.add",
        "org.add",
        "grant.create",
        "app.submit",
        "module.check",
        "audit.verify",
        "complaint.file",
    ]
}

/// The caller's unused uploads: (files, bytes), partial ones included.
fn upload_usage(dir: &Path) -> (usize, u64) {
    let Ok(entries) = fs::read_dir(dir) else { return (0, 0) };
    let mut files = 0;
    let mut bytes = 0;
    for e in entries.flatten() {
        let name = e.file_name();
        if name.to_string_lossy().ends_with(".json") {
            continue;
        }
        files += 1;
        bytes += e.metadata().map(|m| m.len()).unwrap_or(0);
    }
    (files, bytes)
}

/// Streams a request body into the caller's own upload area, hashing as it goes, within the caller's quota. The
/// answer's token is usable by the caller only, once, for the command named.
async fn upload(
    State(s): State<Arc<ServerState>>,
    Caller(c): Caller,
    Query(q): Query<UploadQuery>,
    body: Body,
) -> ApiResult<Response> {
    let who = {
        let (root, c) = (s.root.clone(), c.clone());
        blocking(move || open_as(&root, &c).map(|(_, who)| who)).await?
    };
    if !commands_with_inputs().contains(&q.command.as_str()) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "request.invalid",
            format!(
                "`{}` takes no file: uploads are for {}",
                q.command.escape_debug(),
                commands_with_inputs().join(", ")
            ),
        ));
    }
    // Every principal's folder untouched for the TTL goes (its files are all older), then the caller's old files.
    sweep(&s.spool("uploads"), UPLOAD_TTL);
    let dir = s.spool("uploads").join(&who.name);
    tokio::fs::create_dir_all(&dir).await.map_err(|e| io_error("create", &dir, e))?;
    sweep(&dir, UPLOAD_TTL);
    let (files, used) = upload_usage(&dir);
    if files >= s.max_uploads {
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "upload.quota",
            format!("{} holds {files} unused uploads, the most the server keeps per principal", who.name),
        ));
    }
    let room = s.upload_quota.saturating_sub(used);
    let limit = s.max_upload.min(room);
    let token = random_token()?;
    let partial = dir.join(format!(".partial-{token}"));
    let mut file = tokio::fs::File::create(&partial).await.map_err(|e| io_error("create", &partial, e))?;
    let mut hasher = Sha256::new();
    let mut bytes = 0u64;
    let mut stream = body.into_data_stream();
    let result: ApiResult<()> = async {
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "request.body", e.to_string()))?;
            bytes += chunk.len() as u64;
            if bytes > limit {
                let (class, detail) = if limit == s.max_upload {
                    ("request.too_large", format!("the upload is over the server's limit of {} bytes", s.max_upload))
                } else {
                    ("upload.quota", format!("the upload is over what is left of the principal's quota ({room} bytes)"))
                };
                return Err(ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, class, detail));
            }
            hasher.update(&chunk);
            file.write_all(&chunk).await.map_err(|e| io_error("write", &partial, e))?;
        }
        file.sync_all().await.map_err(|e| io_error("fsync", &partial, e))
    }
    .await;
    if let Err(e) = result {
        let _ = tokio::fs::remove_file(&partial).await;
        return Err(e);
    }
    let sha256 = hex::encode(hasher.finalize());
    let meta = UploadMeta { command: q.command.clone(), sha256: sha256.clone(), bytes };
    let meta_path = dir.join(format!("{token}.json"));
    let written = async {
        let text = serde_json::to_vec(&meta)
            .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "io", e.to_string()))?;
        tokio::fs::write(&meta_path, text).await.map_err(|e| io_error("write", &meta_path, e))?;
        let target = dir.join(&token);
        tokio::fs::rename(&partial, &target).await.map_err(|e| io_error("rename", &target, e))
    }
    .await;
    if let Err(e) = written {
        let _ = tokio::fs::remove_file(&partial).await;
        let _ = tokio::fs::remove_file(&meta_path).await;
        return Err(e);
    }
    let answer = serde_json::json!({ "upload": token, "command": q.command, "sha256": sha256, "bytes": bytes });
    Ok((StatusCode::CREATED, Json(answer)).into_response())
}

/// Takes the caller's upload `token` for command `command` into `dest` (moved: an upload is used once). Another
/// principal's token is not found; a token made for another command is refused (and spent).
fn take_upload(s: &ServerState, who: &Principal, token: &str, command: &str, dest: &Path) -> ApiResult<()> {
    let unknown = || ApiError::new(StatusCode::NOT_FOUND, "upload.unknown", format!("no upload {token} of yours"));
    let dir = s.spool("uploads").join(&who.name);
    let (data, meta_path) = (dir.join(token), dir.join(format!("{token}.json")));
    let meta: UploadMeta =
        fs::read(&meta_path).ok().and_then(|b| serde_json::from_slice(&b).ok()).ok_or_else(unknown)?;
    if !data.is_file() {
        return Err(unknown());
    }
    let _ = fs::remove_file(&meta_path);
    if meta.command != command {
        let _ = fs::remove_file(&data);
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "upload.command",
            format!("upload {token} was made for `{}`, not for `{command}`; upload it again", meta.command),
        ));
    }
    if fs::rename(&data, dest).is_err() {
        fs::copy(&data, dest).map_err(|e| io_error("copy", dest, e))?;
        let _ = fs::remove_file(&data);
    }
    Ok(())
}

/// Removes entries of `dir` older than `ttl` (best effort).
fn sweep(dir: &Path, ttl: Duration) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let old = e
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| SystemTime::now().duration_since(t).ok())
            .is_some_and(|age| age > ttl);
        if old {
            let p = e.path();
            let _ = if p.is_dir() { fs::remove_dir_all(&p) } else { fs::remove_file(&p) };
        }
    }
}

/// A fresh download folder owned by `who`: (token, folder).
fn new_download(s: &ServerState, who: &Principal) -> ApiResult<(String, PathBuf)> {
    let base = s.spool("downloads");
    fs::create_dir_all(&base).map_err(|e| io_error("create", &base, e))?;
    sweep(&base, DOWNLOAD_TTL);
    let token = random_token()?;
    let dir = base.join(&token);
    fs::create_dir(&dir).map_err(|e| io_error("create", &dir, e))?;
    fs::write(dir.join(".owner"), &who.name).map_err(|e| io_error("write", &dir, e))?;
    Ok((token, dir))
}

/// Every file under `dir`, named relative to `base`.
fn list_files(dir: &Path, base: &Path) -> ApiResult<Vec<OutputFile>> {
    let mut out = Vec::new();
    if dir.is_file() {
        let bytes = fs::read(dir).map_err(|e| io_error("read", dir, e))?;
        let name = dir.strip_prefix(base).map(|p| p.to_string_lossy().into_owned()).unwrap_or_default();
        out.push(OutputFile { name, bytes: bytes.len() as u64, sha256: hex::encode(Sha256::digest(&bytes)) });
        return Ok(out);
    }
    let Ok(entries) = fs::read_dir(dir) else { return Ok(out) };
    let mut entries: Vec<_> = entries.flatten().map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        out.extend(list_files(&p, base)?);
    }
    Ok(out)
}

async fn download(
    State(s): State<Arc<ServerState>>,
    Caller(c): Caller,
    UrlPath((token, slot, name)): UrlPath<(String, u32, String)>,
) -> ApiResult<Response> {
    // The same identity checks as every other route: a suspended principal, a revoked certificate or one from a CA
    // that does not speak for the principal's organisation takes nothing out.
    let who = {
        let (root, c) = (s.root.clone(), c.clone());
        blocking(move || open_as(&root, &c).map(|(_, who)| who)).await?
    };
    let not_found = || ApiError::new(StatusCode::NOT_FOUND, "download.unknown", "no such download");
    if token.len() != 32 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(not_found());
    }
    let dir = s.spool("downloads").join(&token);
    let owner = tokio::fs::read_to_string(dir.join(".owner")).await.map_err(|_| not_found())?;
    if owner != who.name {
        return Err(not_found());
    }
    let slot_dir = dir.join(slot.to_string());
    // `-` is the file of a single-file output; otherwise one plain name (subfolders are not used by any command).
    let path = if name == "-" {
        slot_dir.join("file")
    } else if name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)) && !name.starts_with('.') {
        slot_dir.join(&name)
    } else {
        return Err(not_found());
    };
    let file = tokio::fs::File::open(&path).await.map_err(|_| not_found())?;
    let len = file.metadata().await.map_err(|e| io_error("stat", &path, e))?.len();
    // One download per file: the name goes now, the bytes stream from the open file (a private key issued through
    // the server, or a product copy, does not stay behind).
    let _ = tokio::fs::remove_file(&path).await;
    let stream = tokio_util::io::ReaderStream::new(file);
    Ok((
        [
            (axum::http::header::CONTENT_TYPE, "application/octet-stream".to_owned()),
            (axum::http::header::CONTENT_LENGTH, len.to_string()),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CommandRequest {
    command: serde_json::Value,
    #[serde(default)]
    json: bool,
}

async fn run_command(
    State(s): State<Arc<ServerState>>,
    Caller(c): Caller,
    Json(req): Json<CommandRequest>,
) -> ApiResult<Json<CommandAnswer>> {
    blocking(move || command(&s, &c, req).map(Json)).await
}

/// Runs one CLI command for the caller, as the caller's principal, on the zone; paths are the caller's uploads and
/// folders made for this request, never a path of the server's choosing by the client.
fn command(s: &ServerState, c: &CertIdentity, req: CommandRequest) -> ApiResult<CommandAnswer> {
    let bad = |m: String| ApiError::new(StatusCode::BAD_REQUEST, "request.invalid", m);
    let mut command: Command =
        serde_json::from_value(req.command).map_err(|e| bad(format!("not a cleanroom command: {e}")))?;
    if runs_locally(&command) {
        return Err(bad("this command runs on the client (it needs no zone, or makes one)".into()));
    }
    match &command {
        Command::Job(JobCommand::Run(_) | JobCommand::Output(_) | JobCommand::Cancel { .. })
        | Command::Artifact(ArtifactCommand::Output(_)) => {
            return Err(bad("runs, cancellations and downloads go through /v1/jobs and /v1/artifacts".into()));
        }
        _ => {}
    }
    let (zone, who) = open_as(&s.root, c)?;
    drop(zone);
    let (token, dir) = new_download(s, &who)?;
    let name = command_name(&command);
    let mut outputs = Vec::new();
    for (slot, (role, path)) in paths_mut(&mut command).into_iter().enumerate() {
        let text = path.to_string_lossy().into_owned();
        match role {
            PathRole::Input => {
                let (upload, file) = text.strip_prefix("upload:").and_then(|r| r.split_once('/')).ok_or_else(|| {
                    bad(format!("path `{}` is not an upload (upload:TOKEN/NAME)", text.escape_debug()))
                })?;
                let plain = !file.is_empty()
                    && file.len() <= 255
                    && !file.starts_with('.')
                    && file.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
                if upload.len() != 32 || !upload.bytes().all(|b| b.is_ascii_hexdigit()) || !plain {
                    let _ = fs::remove_dir_all(&dir);
                    return Err(bad(format!("`{}` is not an upload name the server accepts", text.escape_debug())));
                }
                let place = dir.join("in").join(slot.to_string());
                fs::create_dir_all(&place).map_err(|e| io_error("create", &place, e))?;
                let taken = place.join(file);
                if let Err(e) = take_upload(s, &who, upload, &name, &taken) {
                    let _ = fs::remove_dir_all(&dir);
                    return Err(e);
                }
                *path = taken;
            }
            PathRole::OutputFile | PathRole::OutputDir => {
                if text != format!("output:{slot}") {
                    return Err(bad(format!("output path `{}` must be `output:{slot}`", text.escape_debug())));
                }
                let place = dir.join(slot.to_string());
                *path = if role == PathRole::OutputFile {
                    fs::create_dir_all(&place).map_err(|e| io_error("create", &place, e))?;
                    place.join("file")
                } else {
                    place
                };
                outputs.push(slot);
            }
        }
    }
    let cli = Cli::acting(s.root.clone(), &who.name, req.json, command);
    let mode = if req.json { Mode::Json } else { Mode::Human };
    let ctx = Ctx { cli: &cli, mode, via: Some(c.via()) };
    let (result, captured) = output::capture(|| crate::dispatch(&ctx));
    let _ = fs::remove_dir_all(dir.join("in"));
    // A CA registered through the server takes effect for the next handshake.
    if matches!(cli.command, Command::Org(OrgCommand::Add(_)) | Command::Principal(PrincipalCommand::Add(_)))
        && let Some(v) = &s.verifier
    {
        v.refresh();
    }
    if let Err(e) = result {
        let _ = fs::remove_dir_all(&dir);
        let mut err = ApiError::from(e);
        if !captured.stderr.is_empty() {
            err.causes.insert(0, captured.stderr.trim_end().to_owned());
        }
        return Err(err);
    }
    let mut listed = Vec::new();
    for slot in outputs {
        let place = dir.join(slot.to_string());
        let files = list_files(&place, &place)?
            .into_iter()
            .map(|mut f| {
                if f.name == "file" {
                    f.name = String::new();
                }
                f
            })
            .collect();
        listed.push(Output { slot, files });
    }
    Ok(CommandAnswer {
        stdout: captured.stdout,
        stderr: captured.stderr,
        download: (!listed.is_empty()).then_some(token),
        outputs: listed,
    })
}

/// Reads PEM certificates.
fn read_certs(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .with_context(|| format!("read {}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("{}: not PEM certificates: {e:?}", path.display()))?;
    if certs.is_empty() {
        anyhow::bail!("{}: no certificate in it", path.display());
    }
    Ok(certs)
}

/// The TLS configuration: TLS 1.3 (and 1.2's AEAD suites with --tls12), client certificates required and verified
/// by `verifier`.
pub fn tls_config(
    cert: &Path,
    key: &Path,
    verifier: Arc<ZoneClientVerifier>,
    provider: Arc<rustls::crypto::CryptoProvider>,
    tls12: bool,
) -> anyhow::Result<rustls::ServerConfig> {
    let versions: &[&rustls::SupportedProtocolVersion] =
        if tls12 { &[&rustls::version::TLS13, &rustls::version::TLS12] } else { &[&rustls::version::TLS13] };
    let chain = read_certs(cert)?;
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| anyhow::anyhow!("{}: not a PEM private key: {e:?}", key.display()))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .context("TLS versions")?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .context("the server certificate and key do not go together")?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// `cleanroom serve`.
pub fn serve(ctx: &Ctx<'_>, args: &ServeArgs) -> anyhow::Result<()> {
    let root = ctx.root()?;
    let zone = Zone::open(&root)?;
    let dev = DevCa::at(&root);
    let pick = |given: &Option<PathBuf>, dev: &Path, flag: &str| -> anyhow::Result<PathBuf> {
        match given {
            Some(p) => Ok(p.clone()),
            None if dev.exists() => Ok(dev.to_path_buf()),
            None => anyhow::bail!("{flag} FILE is needed (this zone has no development CA to default to)"),
        }
    };
    let cert = pick(&args.tls_cert, &dev.server_cert, "--tls-cert")?;
    let key = pick(&args.tls_key, &dev.server_key, "--tls-key")?;
    let extra = match &args.client_ca {
        Some(path) => read_certs(path)?,
        None => Vec::new(),
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(ZoneClientVerifier::new(&root, extra, provider.clone())?);
    let tls = tls_config(&cert, &key, verifier.clone(), provider, args.tls12)?;
    // Organisations whose certificates nothing speaks for are refused on every request: say so at the start.
    let anchored: std::collections::BTreeSet<String> = zone.trust_anchors(None)?.into_iter().map(|a| a.org).collect();
    let unanchored: std::collections::BTreeSet<String> =
        zone.principals()?.into_iter().filter_map(|p| p.org).filter(|o| !anchored.contains(o)).collect();
    if !unanchored.is_empty() {
        tracing::warn!(
            orgs = ?unanchored,
            "no client CA is registered for these organisations: their principals are refused until `org add`"
        );
    }
    if args.workers == 0 || args.workers > 64 {
        anyhow::bail!("--workers must be 1 to 64");
    }
    if args.max_connections == 0 {
        anyhow::bail!("--max-connections must be at least 1");
    }
    if !(1..=86_400).contains(&args.seal_every) {
        anyhow::bail!("--seal-every must be 1 to 86400 seconds");
    }
    // One server per zone: its queue and recovery assume no other.
    fs::create_dir_all(root.join(SPOOL)).with_context(|| format!("create {}", root.join(SPOOL).display()))?;
    let lock_path = root.join(SPOOL).join("lock");
    let lock = fs::File::create(&lock_path).with_context(|| format!("create {}", lock_path.display()))?;
    if lock.try_lock().is_err() {
        anyhow::bail!("another `cleanroom serve` is serving {} (it holds {})", root.display(), lock_path.display());
    }
    let requeued = zone.recover_jobs()?;
    drop(zone);
    if !requeued.is_empty() {
        tracing::warn!(jobs = ?requeued, "runs interrupted by the last stop are queued again");
    }
    let queue = Arc::new(Queue::default());
    let access = Arc::new(AccessLog::open(&root.join(ACCESS_LOG))?);
    let state = Arc::new(ServerState {
        root: root.clone(),
        queue: queue.clone(),
        max_queued: args.max_queued,
        max_upload: args.max_upload_mib.saturating_mul(1024 * 1024),
        upload_quota: args.upload_quota_mib.saturating_mul(1024 * 1024),
        max_uploads: args.max_uploads,
        access: access.clone(),
        verifier: Some(verifier.clone()),
    });
    let workers: Vec<_> = (0..args.workers)
        .map(|i| {
            let (root, queue) = (root.clone(), queue.clone());
            std::thread::Builder::new().name(format!("zone-worker-{i}")).spawn(move || worker(&root, &queue))
        })
        .collect::<Result<_, _>>()
        .context("start the job workers")?;
    let seal_every = Duration::from_secs(args.seal_every);
    let sealing = {
        let (root, access, queue, verifier) = (root.clone(), access.clone(), queue.clone(), verifier.clone());
        std::thread::Builder::new()
            .name("zone-access-seal".into())
            .spawn(move || sealer(&root, &access, &queue, seal_every, &verifier))
            .context("start the access log's sealer")?
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("start the async runtime")?;
    let result =
        runtime.block_on(accept_loop(&args.listen, tls, router(state), ctx.mode, args.max_connections, access));
    queue.stop.store(true, Ordering::SeqCst);
    queue.notify();
    for w in workers {
        let _ = w.join();
    }
    let _ = sealing.join();
    drop(lock);
    result
}

async fn accept_loop(
    listen: &str,
    tls: rustls::ServerConfig,
    app: axum::Router,
    mode: Mode,
    max_connections: usize,
    access: Arc<AccessLog>,
) -> anyhow::Result<()> {
    let connections = Arc::new(tokio::sync::Semaphore::new(max_connections));
    let listener = tokio::net::TcpListener::bind(listen).await.with_context(|| format!("listen on {listen}"))?;
    let addr: SocketAddr = listener.local_addr().context("local address")?;
    match mode {
        Mode::Json => outln!("{}", serde_json::json!({ "listening": format!("https://{addr}") })),
        Mode::Human => outln!("listening on https://{addr} (mutual TLS; stop with Ctrl-C)"),
    }
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
    let shutdown = tokio::signal::ctrl_c();
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    continue;
                }
            },
            _ = &mut shutdown => {
                errln!("stopping: queued jobs stay queued; a run in progress is run again at the next start");
                return Ok(());
            }
        };
        // At most `max_connections` at once: the next one waits in the kernel's backlog.
        let Ok(permit) = connections.clone().acquire_owned().await else { return Ok(()) };
        let (acceptor, app, access) = (acceptor.clone(), app.clone(), access.clone());
        tokio::spawn(async move {
            let _permit = permit;
            let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::info!(%peer, error = %e, "TLS handshake refused");
                    access.write(serde_json::json!({ "peer": peer.to_string(), "handshake": e.to_string() }));
                    return;
                }
                Err(_) => {
                    tracing::info!(%peer, "TLS handshake timed out");
                    access.write(serde_json::json!({ "peer": peer.to_string(), "handshake": "timed out" }));
                    return;
                }
            };
            let identity = match stream.get_ref().1.peer_certificates() {
                Some(chain) if !chain.is_empty() => CertIdentity::from_der(chain[0].as_ref()).map(|mut id| {
                    id.chain = Arc::new(chain.iter().map(|c| c.as_ref().to_vec()).collect());
                    id
                }),
                _ => Err("no client certificate".to_owned()),
            };
            let identity = PeerIdentity(Arc::new(identity));
            let service = hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(identity.clone());
                app.clone().oneshot(req.map(Body::new))
            });
            let mut http = hyper::server::conn::http1::Builder::new();
            // A client that stalls between requests or in its headers does not hold a connection for ever.
            http.timer(hyper_util::rt::TokioTimer::new()).header_read_timeout(HEADER_TIMEOUT);
            if let Err(e) = http.serve_connection(TokioIo::new(stream), service).await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
}

/// One worker: claims queued jobs one at a time and runs them, as their operator.
fn worker(root: &Path, queue: &Queue) {
    let mut zone = None;
    while !queue.stop.load(Ordering::SeqCst) {
        if zone.is_none() {
            match Zone::open(root) {
                Ok(z) => zone = Some(z),
                Err(e) => {
                    tracing::error!(error = %e, "worker cannot open the zone");
                    queue.wait(Duration::from_secs(1));
                    continue;
                }
            }
        }
        let Some(z) = zone.as_mut() else { continue };
        match run_next(z) {
            Ok(true) => {}
            Ok(false) => queue.wait(Duration::from_millis(500)),
            Err(e) => {
                tracing::error!(error = %e, "worker failed; reopening the zone");
                zone = None;
                queue.wait(Duration::from_millis(500));
            }
        }
    }
}

/// Runs the oldest job this worker can claim; `false` when there was none.
fn run_next(zone: &mut Zone) -> anyhow::Result<bool> {
    for id in zone.queued_job_ids()? {
        match zone.claim_job(id)? {
            Claim::Run { ticket, operator, via } => {
                zone.set_via(via);
                let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    zone_ops::run_ticket(zone, &operator, &ticket, zone_ops::RunOptions::default())
                }));
                let outcome = match ran {
                    Ok(r) => r.map(|_| ()).map_err(anyhow::Error::from),
                    Err(_) => {
                        let failure = RunFailure {
                            class: "zone.panic".into(),
                            detail: "the run stopped on an internal error; nothing is released".into(),
                            counts: None,
                            diagnostics: serde_json::Value::Null,
                        };
                        zone.finish_job(&operator, &ticket, Err(failure)).map(|_| ()).map_err(anyhow::Error::from)
                    }
                };
                zone.set_via(None);
                if let Err(e) = outcome {
                    tracing::warn!(job = id, error = %e, "job ended with an error");
                }
                return Ok(true);
            }
            Claim::Refused(record) => {
                tracing::info!(job = record.id, class = ?record.error_class, "queued job refused at its turn");
            }
            Claim::NotQueued => {}
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn openapi_routes() -> Vec<(String, String)> {
        let doc: serde_json::Value = serde_json::from_str(OPENAPI).expect("openapi.json parses");
        let mut routes = Vec::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for method in item.as_object().expect("path item").keys() {
                if ["get", "put", "post", "delete", "patch"].contains(&method.as_str()) {
                    routes.push((method.clone(), path.clone()));
                }
            }
        }
        routes.sort();
        routes
    }

    #[test]
    fn openapi_describes_exactly_the_routes() {
        let mut ours: Vec<(String, String)> = ROUTES.iter().map(|(m, p)| ((*m).to_owned(), (*p).to_owned())).collect();
        ours.sort();
        assert_eq!(openapi_routes(), ours);
        let doc: serde_json::Value = serde_json::from_str(OPENAPI).expect("parses");
        assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")));
    }

    /// Every listed route is served by the router (a request without a TLS identity gets 401 from the route's
    /// handler, not 404/405 from the router), and an unlisted one is not.
    #[tokio::test(flavor = "current_thread")]
    async fn the_router_serves_every_route_in_the_description() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = Arc::new(ServerState {
            root: dir.path().to_path_buf(),
            queue: Arc::new(Queue::default()),
            max_queued: 1,
            max_upload: 1,
            upload_quota: 1,
            max_uploads: 1,
            access: Arc::new(AccessLog::default()),
            verifier: None,
        });
        let app = router(state);
        for (method, path) in ROUTES {
            let uri = path.replace("{id}", "1").replace("{token}", "t").replace("{slot}", "0").replace("{name}", "n");
            let req = axum::http::Request::builder()
                .method(method.to_uppercase().as_str())
                .uri(&uri)
                .header("content-type", "application/json")
                .body(Body::from("{}"))
                .expect("request");
            let status = app.clone().oneshot(req).await.expect("infallible").status();
            let expected = if *path == "/v1/openapi.json" { StatusCode::OK } else { StatusCode::UNAUTHORIZED };
            assert!(
                status == expected || (status == StatusCode::UNPROCESSABLE_ENTITY && *method == "post"),
                "{method} {uri}: {status}"
            );
        }
        let req = axum::http::Request::builder().uri("/v1/nothing").body(Body::empty()).expect("request");
        assert_eq!(app.oneshot(req).await.expect("infallible").status(), StatusCode::NOT_FOUND);
    }

    #[test]
    fn statuses_follow_the_error_class() {
        assert_eq!(status_for("access.role"), StatusCode::FORBIDDEN);
        assert_eq!(status_for("access.unknown_principal"), StatusCode::FORBIDDEN);
        assert_eq!(status_for("job.unknown"), StatusCode::NOT_FOUND);
        assert_eq!(status_for("queue.full"), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(status_for("policy.refused"), StatusCode::BAD_REQUEST);
        assert_eq!(status_for("job.drift"), StatusCode::CONFLICT);
        assert_eq!(status_for("catalog"), StatusCode::INTERNAL_SERVER_ERROR);
    }
}
