//! # zone-client — a client of the zone server
//!
//! `cleanroom serve` answers HTTPS with mutual TLS. This crate is the client side, shared by the CLI (`cleanroom
//! --server …`), the end-to-end tests and the benchmarks: an agent that presents a principal's client certificate
//! and trusts only the zone's CA (ureq over rustls with *ring*), JSON calls whose error answers become
//! [`RemoteError`] (the zone's error class and HTTP status), uploads whose SHA-256 is checked against what the server
//! stored, downloads checked against the size and SHA-256 the server announced, and profile files.
//!
//! ```no_run
//! use zone_client::Remote;
//! let remote = Remote::connect(
//!     "https://zone.example:8443",
//!     "acme.pem".as_ref(),
//!     "acme.key".as_ref(),
//!     "zone-ca.pem".as_ref(),
//! )?;
//! let me: serde_json::Value = remote.get("/v1/whoami")?;
//! println!("{me}");
//! # Ok::<(), zone_client::ClientError>(())
//! ```

use std::fs;
use std::io::{Read, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use sha2::{Digest as _, Sha256};
use ureq::Agent;
use ureq::tls::{Certificate, ClientCert, PemItem, PrivateKey, RootCerts, TlsConfig, TlsProvider};

/// JSON answers larger than this are refused (the server's own limit for command output is lower).
const MAX_JSON: u64 = 512 * 1024 * 1024;

/// An error the server answered with: its HTTP status, the zone's error class and message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct RemoteError {
    pub status: u16,
    pub class: zone_api::ErrorClass,
    pub message: String,
    pub causes: Vec<String>,
    pub rules: Vec<String>,
}

/// What went wrong talking to a zone server.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with an error.
    #[error(transparent)]
    Server(#[from] RemoteError),
    #[error("{what}: cannot reach the zone server at {base}: {source}")]
    Unreachable {
        what: String,
        base: String,
        #[source]
        source: Box<ureq::Error>,
    },
    #[error("{what}: {detail}")]
    Answer { what: String, detail: String },
    #[error("{path}: {op}: {source}")]
    File {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {detail}")]
    Pem { path: PathBuf, detail: String },
    #[error("{path}: {detail}")]
    Profile { path: PathBuf, detail: String },
    #[error("--server `{server}` must be an https:// URL: the zone API is served over TLS only")]
    NotHttps { server: String },
}

impl ClientError {
    fn file(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> ClientError {
        let path = path.to_path_buf();
        move |source| ClientError::File { op, path, source }
    }

    /// The server's answer, when this is one.
    pub fn remote(&self) -> Option<&RemoteError> {
        match self {
            ClientError::Server(e) => Some(e),
            _ => None,
        }
    }
}

/// A profile file (TOML): where the server is and who we are; paths are relative to the file.
///
/// ```toml
/// server = "https://zone.example:8443"
/// cert = "acme.pem"
/// key = "acme.key"
/// ca = "zone-ca.pem"
/// ```
#[derive(Debug, Default, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub server: Option<String>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub ca: Option<PathBuf>,
}

impl Profile {
    /// Reads a profile; its relative paths are resolved against the file's folder.
    pub fn read(path: &Path) -> Result<Profile, ClientError> {
        let text = fs::read_to_string(path).map_err(ClientError::file("read profile", path))?;
        let mut profile: Profile = toml::from_str(&text)
            .map_err(|e| ClientError::Profile { path: path.to_path_buf(), detail: e.to_string() })?;
        let dir = path.parent().unwrap_or(Path::new("."));
        for f in [&mut profile.cert, &mut profile.key, &mut profile.ca].into_iter().flatten() {
            if f.is_relative() {
                *f = dir.join(&*f);
            }
        }
        Ok(profile)
    }
}

/// A connection to a zone server.
#[derive(Debug, Clone)]
pub struct Remote {
    base: String,
    agent: Agent,
}

impl Remote {
    /// An agent for `server` presenting `cert`/`key`, trusting only `ca` for the server's certificate. Answers with
    /// an error status are answers, not transport errors (the raw [`Remote::agent`] sees them too).
    pub fn connect(server: &str, cert: &Path, key: &Path, ca: &Path) -> Result<Remote, ClientError> {
        let base = server.trim_end_matches('/').to_owned();
        if !base.starts_with("https://") {
            return Err(ClientError::NotHttps { server: server.to_owned() });
        }
        let certs = read_certs(cert)?;
        let key_pem = fs::read(key).map_err(ClientError::file("read", key))?;
        let key_value = PrivateKey::from_pem(&key_pem)
            .map_err(|e| ClientError::Pem { path: key.to_path_buf(), detail: format!("not a PEM private key: {e}") })?;
        let roots = read_certs(ca)?;
        let tls = TlsConfig::builder()
            .provider(TlsProvider::Rustls)
            .unversioned_rustls_crypto_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .client_cert(Some(ClientCert::new_with_certs(&certs, key_value)))
            .root_certs(RootCerts::new_with_certs(&roots))
            .build();
        let agent = Agent::config_builder()
            .tls_config(tls)
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(10)))
            .build()
            .new_agent();
        Ok(Remote { base, agent })
    }

    /// A connection as principal `who` of a zone made with `zone init --dev-ca`: its certificate and key from
    /// `<zone>/dev-ca/clients/<who>.pem|.key`, trusting `<zone>/dev-ca/ca.pem` (tests, benchmarks, demos).
    pub fn with_dev_ca(server: &str, zone: &Path, who: &str) -> Result<Remote, ClientError> {
        let ca = zone.join("dev-ca");
        let clients = ca.join("clients");
        Remote::connect(
            server,
            &clients.join(format!("{who}.pem")),
            &clients.join(format!("{who}.key")),
            &ca.join("ca.pem"),
        )
    }

    /// The server's base URL (`https://host:port`).
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The full URL of an API path (`/v1/...`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The underlying agent (kept-alive connections), for requests the typed calls do not cover.
    pub fn agent(&self) -> &Agent {
        &self.agent
    }

    /// Turns an answer into `T`, or its error body into a [`RemoteError`].
    pub fn answer<T: DeserializeOwned>(
        &self,
        what: &str,
        response: ureq::http::Response<ureq::Body>,
    ) -> Result<T, ClientError> {
        let status = response.status().as_u16();
        let mut body = response.into_body();
        let bytes = body.with_config().limit(MAX_JSON).read_to_vec().map_err(|e| ClientError::Answer {
            what: what.to_owned(),
            detail: format!("reading the server's answer: {e}"),
        })?;
        if (200..300).contains(&status) {
            return serde_json::from_slice(&bytes).map_err(|e| ClientError::Answer {
                what: what.to_owned(),
                detail: format!("the server's answer is not the JSON expected (HTTP {status}): {e}"),
            });
        }
        let remote = match serde_json::from_slice::<zone_api::ErrorBody>(&bytes) {
            Ok(body) => RemoteError {
                status,
                class: body.error.class,
                message: body.error.message,
                causes: body.error.causes,
                rules: body.error.rules,
            },
            Err(_) => RemoteError {
                status,
                class: zone_api::ErrorClass::Http,
                message: format!("{what}: HTTP {status}: {}", String::from_utf8_lossy(&bytes[..bytes.len().min(300)])),
                causes: Vec::new(),
                rules: Vec::new(),
            },
        };
        Err(remote.into())
    }

    fn transport(&self, what: &str, e: ureq::Error) -> ClientError {
        ClientError::Unreachable { what: what.to_owned(), base: self.base.clone(), source: Box::new(e) }
    }

    /// `GET path`, answered with JSON.
    pub fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let what = format!("GET {path}");
        let response = self.agent.get(self.url(path)).call().map_err(|e| self.transport(&what, e))?;
        self.answer(&what, response)
    }

    /// `POST path` with a JSON body, answered with JSON.
    pub fn post<T: DeserializeOwned>(&self, path: &str, body: &serde_json::Value) -> Result<T, ClientError> {
        let what = format!("POST {path}");
        let response = self.agent.post(self.url(path)).send_json(body).map_err(|e| self.transport(&what, e))?;
        self.answer(&what, response)
    }

    /// Calls one route of the API: the request split into path, query and body as its type says, the answer
    /// typed.
    pub fn call<C: zone_api::Call>(&self, request: &C) -> Result<C::Answer, ClientError> {
        let wire = zone_api::split(request)
            .map_err(|e| ClientError::Answer { what: C::NAME.to_owned(), detail: format!("the request: {e}") })?;
        let what = format!("{} {}", C::METHOD.name().to_uppercase(), wire.path);
        let response = match (C::METHOD, wire.body) {
            (zone_api::Method::Get, _) => {
                let mut req = self.agent.get(self.url(&wire.path));
                for (k, v) in &wire.query {
                    req = req.query(k, v);
                }
                req.call()
            }
            (zone_api::Method::Post, body) => {
                self.agent.post(self.url(&wire.path)).send_json(body.unwrap_or_else(|| serde_json::json!({})))
            }
        }
        .map_err(|e| self.transport(&what, e))?;
        self.answer(&what, response)
    }

    /// A local file as a request's file reference: uploaded for operation `C`, named by the upload.
    pub fn file_ref<C: zone_api::Call>(&self, path: &Path) -> Result<zone_api::FileRef, ClientError> {
        let token = self.upload(path, C::NAME)?;
        // The upload's name is the file's own, kept plain (what the server accepts); messages show it.
        let name: String = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || "._-".contains(c) { c } else { '_' })
            .collect();
        let name = match name.trim_start_matches('.') {
            "" => "file".to_owned(),
            n => n.to_owned(),
        };
        Ok(zone_api::FileRef(format!("upload:{token}/{name}")))
    }

    /// Takes every file of `outputs` into the folder `dir` (which must hold none of them yet), each checked against
    /// the size and SHA-256 the server announced; returns their paths. A name that is not a plain file name is
    /// refused.
    pub fn fetch(&self, outputs: &zone_api::Outputs, dir: &Path) -> Result<Vec<PathBuf>, ClientError> {
        let Some(download) = &outputs.download else {
            return Ok(Vec::new());
        };
        fs::create_dir_all(dir).map_err(ClientError::file("create", dir))?;
        let mut written = Vec::new();
        for f in &outputs.files {
            let plain = !f.name.is_empty()
                && !f.name.starts_with('.')
                && f.name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
            if !plain {
                return Err(ClientError::Answer {
                    what: "download".into(),
                    detail: format!("the server named a file `{}`", f.name.escape_debug()),
                });
            }
            let dest = dir.join(&f.name);
            self.download(&format!("/v1/downloads/{download}/0/{}", f.name), &dest, f.bytes, &f.sha256)?;
            written.push(dest);
        }
        Ok(written)
    }

    /// Streams a local file to the server's upload area for `command` (e.g. `dataset.publish`); returns the upload token,
    /// which only this client's principal can use, once, for that command. The SHA-256 is checked against the server's.
    pub fn upload(&self, path: &Path, command: &str) -> Result<String, ClientError> {
        let what = format!("upload {}", path.display());
        let sha256 = hash_file(path)?;
        let file = fs::File::open(path).map_err(ClientError::file("open", path))?;
        let response = self
            .agent
            .put(self.url("/v1/uploads"))
            .query("command", command)
            .send(file)
            .map_err(|e| self.transport(&what, e))?;
        let stored: serde_json::Value = self.answer(&what, response)?;
        if stored["sha256"].as_str() != Some(sha256.as_str()) {
            return Err(ClientError::Answer {
                what,
                detail: format!("the server stored different bytes ({}) than were sent ({sha256})", stored["sha256"]),
            });
        }
        match stored["upload"].as_str() {
            Some(token) if token.len() == 32 && token.bytes().all(|b| b.is_ascii_hexdigit()) => Ok(token.to_owned()),
            _ => Err(ClientError::Answer { what, detail: "the server gave no upload token".to_owned() }),
        }
    }

    /// Streams a file the server prepared (`/v1/downloads/...`) into `dest`, which must not exist; checks its size
    /// and SHA-256 against what the server announced, and removes it when they differ.
    pub fn download(&self, path: &str, dest: &Path, bytes: u64, sha256: &str) -> Result<(), ClientError> {
        let what = format!("GET {path}");
        let response = self.agent.get(self.url(path)).call().map_err(|e| self.transport(&what, e))?;
        if !response.status().is_success() {
            return self.answer::<serde_json::Value>(&what, response).map(|_| ());
        }
        let mut body = response.into_body();
        let mut reader = body.with_config().limit(bytes.saturating_add(1)).reader();
        let mut out = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(dest)
            .map_err(ClientError::file("create (it must not exist yet)", dest))?;
        let mut hasher = Sha256::new();
        let mut got = 0u64;
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = reader
                .read(&mut buf)
                .map_err(|e| ClientError::Answer { what: what.clone(), detail: format!("reading: {e}") })?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            out.write_all(&buf[..n]).map_err(ClientError::file("write", dest))?;
            got += n as u64;
        }
        out.sync_all().map_err(ClientError::file("fsync", dest))?;
        let digest = hex::encode(hasher.finalize());
        if got != bytes || digest != sha256 {
            let _ = fs::remove_file(dest);
            return Err(ClientError::Answer {
                what,
                detail: format!("got {got} bytes with SHA-256 {digest}, the server announced {bytes} bytes {sha256}"),
            });
        }
        Ok(())
    }
}

fn hash_file(path: &Path) -> Result<String, ClientError> {
    let mut file = fs::File::open(path).map_err(ClientError::file("open", path))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf).map_err(ClientError::file("read", path))?;
        if n == 0 {
            return Ok(hex::encode(hasher.finalize()));
        }
        hasher.update(&buf[..n]);
    }
}

fn read_certs(path: &Path) -> Result<Vec<Certificate<'static>>, ClientError> {
    let pem = fs::read(path).map_err(ClientError::file("read", path))?;
    let certs: Vec<Certificate<'static>> = ureq::tls::parse_pem(&pem)
        .filter_map(|item| match item {
            Ok(PemItem::Certificate(c)) => Some(c),
            _ => None,
        })
        .collect();
    if certs.is_empty() {
        return Err(ClientError::Pem { path: path.to_path_buf(), detail: "no PEM certificate in it".into() });
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_resolve_paths_against_their_folder_and_refuse_unknown_keys() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("acme.toml");
        fs::write(&path, "server = \"https://z:8443\"\ncert = \"acme.pem\"\nkey = \"/abs/acme.key\"\n").expect("write");
        let p = Profile::read(&path).expect("profile");
        assert_eq!(p.server.as_deref(), Some("https://z:8443"));
        assert_eq!(p.cert, Some(dir.path().join("acme.pem")));
        assert_eq!(p.key, Some(PathBuf::from("/abs/acme.key")));
        assert_eq!(p.ca, None);
        fs::write(&path, "server = \"https://z\"\npassword = \"x\"\n").expect("write");
        assert!(matches!(Profile::read(&path), Err(ClientError::Profile { .. })));
        assert!(matches!(Profile::read(&dir.path().join("none.toml")), Err(ClientError::File { .. })));
    }

    #[test]
    fn connecting_needs_https_and_real_pem_files() {
        let dir = tempfile::tempdir().expect("tmp");
        let junk = dir.path().join("junk.pem");
        fs::write(&junk, "not a certificate").expect("write");
        let plain = Remote::connect("http://z:8080", &junk, &junk, &junk);
        assert!(matches!(plain, Err(ClientError::NotHttps { .. })), "{plain:?}");
        let err = Remote::connect("https://z:8443", &junk, &junk, &junk).expect_err("junk");
        assert!(matches!(err, ClientError::Pem { .. }), "{err:?}");
        assert!(err.to_string().contains("junk.pem: no PEM certificate"), "{err}");
        let missing = Remote::connect("https://z:8443", &dir.path().join("no.pem"), &junk, &junk).expect_err("missing");
        assert!(missing.to_string().contains("no.pem: read"), "{missing}");
    }
}
