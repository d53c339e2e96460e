//! The access log: every request and refused handshake, one JSON line each, sealed into the audit log.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::response::Response;
use zone_store::{AccessLogHash, Zone};

use crate::caller::PeerIdentity;
use crate::tls::ZoneClientVerifier;
use crate::workers::Queue;
use crate::{ServerError, ServerState};

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
    pub fn open(path: &Path) -> Result<AccessLog, ServerError> {
        let file = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(ServerError::io(format!("open the access log {}", path.display())))?;
        let hash = AccessLogHash::of_file(path)?;
        // Nothing counts as sealed yet: the first seal (at start) covers whatever an earlier run left unsealed, e.g.
        // the lines before a kill -9.
        let access = AccessFile { path: path.to_path_buf(), file, hash, sealed: 0 };
        Ok(AccessLog { file: Some(Mutex::new(access)) })
    }

    pub fn write(&self, mut line: serde_json::Value) {
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
    fn seal(&self, root: &Path) -> Result<(), ServerError> {
        let Some(file) = &self.file else { return Ok(()) };
        let (bytes, lines, sha256) = {
            let f = file.lock().map_err(|_| ServerError::Setup("the access log's lock is poisoned".into()))?;
            if f.hash.bytes() == f.sealed {
                return Ok(());
            }
            f.file.sync_data().map_err(ServerError::io(format!("fsync {}", f.path.display())))?;
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
pub fn sealer(root: &Path, access: &AccessLog, queue: &Queue, every: Duration, verifier: &ZoneClientVerifier) {
    if let Err(e) = access.seal(root) {
        tracing::error!(error = %e, "the access log could not be sealed at start");
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
                tracing::error!(error = %e, "the access log could not be sealed");
            }
            last = std::time::Instant::now();
        }
    }
    if let Err(e) = access.seal(root) {
        tracing::error!(error = %e, "the access log could not be sealed at stop");
    }
}

/// Writes each request to the access log once it is answered.
pub async fn log_request(
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
