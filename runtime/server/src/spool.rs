//! The server's spool, inside the zone: uploads (each principal's own, for one operation, used once, within a
//! quota) and prepared downloads (the files an operation wrote, for the principal that asked, taken once).

use std::cell::RefCell;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::Json;
use axum::body::Body;
use axum::extract::{RawPathParams, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use futures::StreamExt as _;
use ring::rand::SecureRandom as _;
use serde::Deserialize;
use sha2::{Digest as _, Sha256};
use tokio::io::AsyncWriteExt as _;
use zone_api::{ErrorClass, FileRef, Outputs, UploadAnswer};
use zone_ops::{Files, OpsError};
use zone_store::Principal;

use crate::caller::{ApiError, ApiResult, Caller, blocking, open_as};
use crate::{DOWNLOAD_TTL, ServerState, UPLOAD_TTL};

fn random_token() -> ApiResult<String> {
    let mut bytes = [0u8; 16];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| ApiError::new(ErrorClass::ZoneRandom, "no randomness"))?;
    Ok(hex::encode(bytes))
}

fn io_error(what: &str, path: &Path, e: std::io::Error) -> ApiError {
    ApiError::new(ErrorClass::Io, format!("{what} {}: {e}", path.display()))
}

/// A request's files on the server: its inputs are the caller's uploads (moved into a folder of the request's,
/// removed after it), its outputs go into a fresh download of the caller's.
pub struct ServerFiles<'a> {
    state: &'a ServerState,
    who: Principal,
    inputs: tempfile::TempDir,
    taken: RefCell<usize>,
    download: RefCell<Option<(String, PathBuf)>>,
}

impl std::fmt::Debug for ServerFiles<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerFiles").field("who", &self.who.name).field("inputs", &self.inputs.path()).finish()
    }
}

impl<'a> ServerFiles<'a> {
    pub fn new(state: &'a ServerState, who: &Principal) -> ApiResult<ServerFiles<'a>> {
        let base = state.spool("requests");
        fs::create_dir_all(&base).map_err(|e| io_error("create", &base, e))?;
        sweep(&base, UPLOAD_TTL);
        let inputs =
            tempfile::Builder::new().prefix("request-").tempdir_in(&base).map_err(|e| io_error("create", &base, e))?;
        Ok(ServerFiles { state, who: who.clone(), inputs, taken: RefCell::new(0), download: RefCell::new(None) })
    }

    /// The answer, or on a failure the error with nothing left behind for the caller to take.
    pub fn finish<T>(self, answer: Result<T, OpsError>) -> ApiResult<T> {
        if answer.is_err()
            && let Some((_, dir)) = self.download.borrow_mut().take()
        {
            let _ = fs::remove_dir_all(dir);
        }
        answer.map_err(ApiError::from)
    }
}

impl Files for ServerFiles<'_> {
    fn input(&self, file: &FileRef, operation: &'static str) -> Result<PathBuf, OpsError> {
        let (token, name) = file.upload().ok_or_else(|| OpsError::Refused {
            class: ErrorClass::RequestInvalid.id(),
            detail: format!("`{}` is not an upload (upload:TOKEN/NAME)", file.0.escape_debug()),
        })?;
        let n = {
            let mut taken = self.taken.borrow_mut();
            *taken += 1;
            *taken
        };
        let place = self.inputs.path().join(n.to_string());
        fs::create_dir_all(&place).map_err(|source| OpsError::Write { path: place.clone(), source })?;
        let dest = place.join(name);
        take_upload(self.state, &self.who, token, operation, &dest)?;
        Ok(dest)
    }

    fn output_dir(&self) -> Result<PathBuf, OpsError> {
        let mut download = self.download.borrow_mut();
        if download.is_none() {
            let made = new_download(self.state, &self.who)
                .map_err(|e| OpsError::Unsupported(format!("no download folder: {:?}", e.class())))?;
            *download = Some(made);
        }
        let dir = download.as_ref().map(|(_, d)| d.join("0")).unwrap_or_default();
        fs::create_dir_all(&dir).map_err(|source| OpsError::Write { path: dir.clone(), source })?;
        Ok(dir)
    }

    fn outputs(&self, dir: &Path) -> Result<Outputs, OpsError> {
        let token = self.download.borrow().as_ref().map(|(t, _)| t.clone());
        Ok(Outputs { download: token, files: zone_ops::service::list_files(dir)? })
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UploadQuery {
    /// The operation the upload is for, dotted (`dataset.publish`).
    command: String,
}

/// What the server keeps beside an upload: whose it is (its folder), and for which command.
#[derive(Debug, serde::Serialize, Deserialize)]
struct UploadMeta {
    command: String,
    sha256: String,
    bytes: u64,
}

/// The operations that read files a client uploads.
pub const OPERATIONS_WITH_FILES: [&str; 7] =
    ["dataset.publish", "principal.add", "org.add", "grant.create", "app.submit", "module.check", "complaint.file"];

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
pub async fn upload(
    State(s): State<Arc<ServerState>>,
    Caller(c): Caller,
    RawQuery(query): RawQuery,
    body: Body,
) -> ApiResult<Response> {
    let q: UploadQuery = serde_urlencoded::from_str(query.as_deref().unwrap_or_default()).map_err(|e| {
        ApiError::new(ErrorClass::RequestInvalid, format!("the query must name the operation (?command=NAME): {e}"))
    })?;
    let who = {
        let (root, c) = (s.root.clone(), c.clone());
        blocking(move || open_as(&root, &c).map(|(_, who)| who)).await?
    };
    if !OPERATIONS_WITH_FILES.contains(&q.command.as_str()) {
        return Err(ApiError::new(
            ErrorClass::RequestInvalid,
            format!(
                "`{}` takes no file: uploads are for {}",
                q.command.escape_debug(),
                OPERATIONS_WITH_FILES.join(", ")
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
            ErrorClass::UploadQuota,
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
            let chunk = chunk.map_err(|e| ApiError::new(ErrorClass::RequestBody, e.to_string()))?;
            bytes += chunk.len() as u64;
            if bytes > limit {
                let (class, detail) = if limit == s.max_upload {
                    (
                        ErrorClass::RequestTooLarge,
                        format!("the upload is over the server's limit of {} bytes", s.max_upload),
                    )
                } else {
                    (
                        ErrorClass::UploadQuota,
                        format!("the upload is over what is left of the principal's quota ({room} bytes)"),
                    )
                };
                return Err(ApiError::new(class, detail));
            }
            hasher.update(&chunk);
            file.write_all(&chunk).await.map_err(|e| io_error("write", &partial, e))?;
        }
        if bytes == 0 {
            return Err(ApiError::new(
                ErrorClass::InputInvalid,
                "the upload is empty: send the file's bytes as the body",
            ));
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
        let text = serde_json::to_vec(&meta).map_err(|e| ApiError::new(ErrorClass::Io, e.to_string()))?;
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
    let answer = UploadAnswer { upload: token, command: q.command, sha256, bytes };
    Ok((StatusCode::CREATED, Json(answer)).into_response())
}

/// Takes the caller's upload `token` for command `command` into `dest` (moved: an upload is used once). Another
/// principal's token is not found; a token made for another command is refused (and spent).
fn take_upload(s: &ServerState, who: &Principal, token: &str, command: &str, dest: &Path) -> Result<(), OpsError> {
    let unknown =
        || OpsError::Refused { class: ErrorClass::UploadUnknown.id(), detail: format!("no upload {token} of yours") };
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
        return Err(OpsError::Refused {
            class: ErrorClass::UploadCommand.id(),
            detail: format!("upload {token} was made for `{}`, not for `{command}`; upload it again", meta.command),
        });
    }
    if fs::rename(&data, dest).is_err() {
        fs::copy(&data, dest).map_err(|source| OpsError::Write { path: dest.to_owned(), source })?;
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

pub async fn download(
    State(s): State<Arc<ServerState>>,
    Caller(c): Caller,
    params: RawPathParams,
) -> ApiResult<Response> {
    let param = |key: &str| params.iter().find(|(k, _)| *k == key).map(|(_, v)| v.to_owned()).unwrap_or_default();
    let (token, slot, name) = (param("token"), param("slot"), param("name"));
    let Ok(slot) = slot.parse::<u32>() else {
        return Err(ApiError::new(
            ErrorClass::RequestInvalid,
            format!("slot `{}` is not a number", slot.escape_debug()),
        ));
    };
    // The same identity checks as every other route: a suspended principal, a revoked certificate or one from a CA
    // that does not speak for the principal's organisation takes nothing out.
    let who = {
        let (root, c) = (s.root.clone(), c.clone());
        blocking(move || open_as(&root, &c).map(|(_, who)| who)).await?
    };
    let not_found = || ApiError::new(ErrorClass::DownloadUnknown, "no such download");
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
