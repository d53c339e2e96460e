//! # zone-server — the zone over HTTPS with mutual TLS
//!
//! tokio, rustls with ring, hyper and axum. A client certificate that chains to a registered organisation CA (or
//! `--client-ca`) is required in the handshake; on every request its subject CN names the principal, its O must be
//! the principal's organisation, it must have been issued by a CA registered for that organisation (`org add`), and
//! neither it nor its principal may be revoked or suspended. Every route is a typed request of `zone-api`, answered
//! by the same operation of `zone-ops` as the local CLI runs — so the same authorization layer and audit log — with
//! the certificate's identity stamped on each audit entry. Uploads belong to the principal that made them, for one
//! operation, once. Jobs go through the durable queue of the store and run in a bounded pool of worker threads.
//!
//! Map: [`routes`] (the router), [`caller`] (identity per request, error answers), [`spool`] (uploads and downloads), [`tls`] (the
//! handshake's verifier and configuration), [`access`] (the sealed access log), [`workers`] (the job queue).

pub mod access;
pub mod caller;
pub mod routes;
pub mod spool;
pub mod tls;
pub mod workers;

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::body::Body;
use hyper_util::rt::TokioIo;
use tower::ServiceExt as _;
use zone_ops::pki::{CertIdentity, DevCa};
use zone_store::{ACCESS_LOG, StoreError, Zone};

use crate::access::AccessLog;
use crate::caller::PeerIdentity;
use crate::tls::ZoneClientVerifier;
use crate::workers::Queue;

pub use routes::router;

/// Where the server keeps uploads and prepared downloads, inside the zone.
pub const SPOOL: &str = "server";
/// Prepared downloads are removed after this long.
const DOWNLOAD_TTL: Duration = Duration::from_secs(3600);
/// Uploads not used within this long are removed.
const UPLOAD_TTL: Duration = Duration::from_secs(24 * 3600);
/// The handshake must be over within this long.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// A request's headers must arrive within this long (also between requests on a kept-alive connection).
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);

/// Why the server could not start (or stopped): what, in words a person acts on.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("{0}")]
    Setup(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

impl ServerError {
    fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ServerError {
        let what = what.into();
        move |source| ServerError::Io { what, source }
    }
}

/// How to serve: the `serve` command's options, typed.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub listen: String,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub client_ca: Option<PathBuf>,
    pub tls12: bool,
    pub workers: usize,
    pub max_queued: usize,
    pub max_connections: usize,
    pub max_upload_mib: u64,
    pub upload_quota_mib: u64,
    pub max_uploads: usize,
    pub seal_every: u64,
}

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

impl ServerState {
    /// A state without TLS, workers or access log: for tests of the router.
    pub fn for_tests(root: &Path) -> ServerState {
        ServerState {
            root: root.to_path_buf(),
            queue: Arc::new(Queue::default()),
            max_queued: 1,
            max_upload: 1,
            upload_quota: 1,
            max_uploads: 1,
            access: Arc::new(AccessLog::default()),
            verifier: None,
        }
    }

    fn spool(&self, part: &str) -> PathBuf {
        self.root.join(SPOOL).join(part)
    }
}

/// Serves the zone at `root` until Ctrl-C; `listening` is told the address once the socket is bound.
pub fn serve(root: &Path, args: &ServeOptions, listening: impl FnOnce(SocketAddr)) -> Result<(), ServerError> {
    let root = root.to_path_buf();
    let zone = Zone::open(&root)?;
    let dev = DevCa::at(&root);
    let pick = |given: &Option<PathBuf>, dev: &Path, flag: &str| -> Result<PathBuf, ServerError> {
        match given {
            Some(p) => Ok(p.clone()),
            None if dev.exists() => Ok(dev.to_path_buf()),
            None => Err(ServerError::Setup(format!(
                "{flag} FILE is needed (this zone has no development CA to default to)"
            ))),
        }
    };
    let cert = pick(&args.tls_cert, &dev.server_cert, "--tls-cert")?;
    let key = pick(&args.tls_key, &dev.server_key, "--tls-key")?;
    let extra = match &args.client_ca {
        Some(path) => tls::read_certs(path)?,
        None => Vec::new(),
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(ZoneClientVerifier::new(&root, extra, provider.clone())?);
    let tls = tls::tls_config(&cert, &key, verifier.clone(), provider, args.tls12)?;
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
        return Err(ServerError::Setup("--workers must be 1 to 64".into()));
    }
    if args.max_connections == 0 {
        return Err(ServerError::Setup("--max-connections must be at least 1".into()));
    }
    if !(1..=86_400).contains(&args.seal_every) {
        return Err(ServerError::Setup("--seal-every must be 1 to 86400 seconds".into()));
    }
    // One server per zone: its queue and recovery assume no other.
    fs::create_dir_all(root.join(SPOOL)).map_err(ServerError::io(format!("create {}", root.join(SPOOL).display())))?;
    let lock_path = root.join(SPOOL).join("lock");
    let lock = fs::File::create(&lock_path).map_err(ServerError::io(format!("create {}", lock_path.display())))?;
    if lock.try_lock().is_err() {
        return Err(ServerError::Setup(format!(
            "another `cleanroom serve` is serving {} (it holds {})",
            root.display(),
            lock_path.display()
        )));
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
            std::thread::Builder::new().name(format!("zone-worker-{i}")).spawn(move || workers::worker(&root, &queue))
        })
        .collect::<Result<_, _>>()
        .map_err(ServerError::io("start the job workers"))?;
    let seal_every = Duration::from_secs(args.seal_every);
    let sealing = {
        let (root, access, queue, verifier) = (root.clone(), access.clone(), queue.clone(), verifier.clone());
        std::thread::Builder::new()
            .name("zone-access-seal".into())
            .spawn(move || access::sealer(&root, &access, &queue, seal_every, &verifier))
            .map_err(ServerError::io("start the access log's sealer"))?
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(ServerError::io("start the async runtime"))?;
    let result =
        runtime.block_on(accept_loop(&args.listen, tls, router(state), listening, args.max_connections, access));
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
    listening: impl FnOnce(SocketAddr),
    max_connections: usize,
    access: Arc<AccessLog>,
) -> Result<(), ServerError> {
    let connections = Arc::new(tokio::sync::Semaphore::new(max_connections));
    let listener =
        tokio::net::TcpListener::bind(listen).await.map_err(ServerError::io(format!("listen on {listen}")))?;
    let addr: SocketAddr = listener.local_addr().map_err(ServerError::io("local address"))?;
    listening(addr);
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
                tracing::warn!("stopping: queued jobs stay queued; a run in progress is run again at the next start");
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
