//! The CLI as a client of `cleanroom serve`: where the server is and who we are (flags, environment or a profile
//! file), an HTTPS agent with our client certificate (ureq over rustls with ring), JSON calls, streamed uploads
//! and downloads, and the server's errors turned back into the CLI's.

use std::fs;
use std::io::{Read, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use sha2::{Digest as _, Sha256};
use ureq::Agent;
use ureq::tls::{Certificate, ClientCert, PemItem, PrivateKey, RootCerts, TlsConfig, TlsProvider};

use crate::args::Cli;

/// JSON answers larger than this are refused (the server's own limit for command output is lower).
const MAX_JSON: u64 = 512 * 1024 * 1024;

/// An error the server answered with: its HTTP status, the zone's error class and message.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct RemoteError {
    pub status: u16,
    pub class: String,
    pub message: String,
    pub causes: Vec<String>,
    pub rules: Vec<String>,
}

/// The body of an error answer.
#[derive(Debug, Deserialize)]
struct ErrorBody {
    error: ErrorFields,
}

#[derive(Debug, Deserialize)]
struct ErrorFields {
    class: String,
    message: String,
    #[serde(default)]
    causes: Vec<String>,
    #[serde(default)]
    rules: Vec<String>,
}

/// A profile file: the four connection settings, paths relative to the file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Profile {
    server: Option<String>,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    ca: Option<PathBuf>,
}

/// A connection to a zone server.
#[derive(Debug, Clone)]
pub struct Remote {
    base: String,
    agent: Agent,
}

impl Remote {
    /// The server the command line names (flags over environment over profile), or `None` for a local zone.
    pub fn from_cli(cli: &Cli) -> anyhow::Result<Option<Remote>> {
        let profile = match &cli.profile {
            Some(path) => {
                let text = fs::read_to_string(path).with_context(|| format!("read profile {}", path.display()))?;
                let mut p: Profile = toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
                let dir = path.parent().unwrap_or(Path::new("."));
                for f in [&mut p.cert, &mut p.key, &mut p.ca].into_iter().flatten() {
                    if f.is_relative() {
                        *f = dir.join(&*f);
                    }
                }
                p
            }
            None => Profile::default(),
        };
        let Some(server) = cli.server.clone().or(profile.server) else {
            if cli.cert.is_some() || cli.key.is_some() {
                anyhow::bail!("--cert and --key are for --server (or a --profile naming one)");
            }
            return Ok(None);
        };
        if cli.zone.is_some() {
            anyhow::bail!("give either --zone (a local zone) or --server (a zone server), not both");
        }
        if cli.as_.is_some() {
            anyhow::bail!(
                "--as is for a local zone: through --server, your client certificate says who you are (its CN)"
            );
        }
        let need = |v: Option<PathBuf>, flag: &str| {
            v.with_context(|| format!("--server needs {flag} FILE (or a --profile that names it)"))
        };
        let cert = need(cli.cert.clone().or(profile.cert), "--cert")?;
        let key = need(cli.key.clone().or(profile.key), "--key")?;
        let ca = need(cli.ca.clone().or(profile.ca), "--ca")?;
        Remote::connect(&server, &cert, &key, &ca).map(Some)
    }

    /// An agent for `server` presenting `cert`/`key`, trusting only `ca` for the server's certificate.
    pub fn connect(server: &str, cert: &Path, key: &Path, ca: &Path) -> anyhow::Result<Remote> {
        let base = server.trim_end_matches('/').to_owned();
        if !base.starts_with("https://") {
            anyhow::bail!("--server `{server}` must be an https:// URL: the zone API is served over TLS only");
        }
        let certs = read_certs(cert)?;
        let key_pem = fs::read(key).with_context(|| format!("read {}", key.display()))?;
        let key = PrivateKey::from_pem(&key_pem)
            .map_err(|e| anyhow::anyhow!("{}: not a PEM private key: {e}", key.display()))?;
        let roots = read_certs(ca)?;
        let tls = TlsConfig::builder()
            .provider(TlsProvider::Rustls)
            .unversioned_rustls_crypto_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .client_cert(Some(ClientCert::new_with_certs(&certs, key)))
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

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Turns an answer into `T`, or its error body into a `RemoteError`.
    fn answer<T: DeserializeOwned>(&self, what: &str, response: ureq::http::Response<ureq::Body>) -> anyhow::Result<T> {
        let status = response.status().as_u16();
        let mut body = response.into_body();
        let bytes = body
            .with_config()
            .limit(MAX_JSON)
            .read_to_vec()
            .with_context(|| format!("{what}: reading the server's answer"))?;
        if (200..300).contains(&status) {
            return serde_json::from_slice(&bytes)
                .with_context(|| format!("{what}: the server's answer is not the JSON expected (HTTP {status})"));
        }
        match serde_json::from_slice::<ErrorBody>(&bytes) {
            Ok(body) => Err(RemoteError {
                status,
                class: body.error.class,
                message: body.error.message,
                causes: body.error.causes,
                rules: body.error.rules,
            }
            .into()),
            Err(_) => Err(RemoteError {
                status,
                class: "http".into(),
                message: format!("{what}: HTTP {status}: {}", String::from_utf8_lossy(&bytes[..bytes.len().min(300)])),
                causes: Vec::new(),
                rules: Vec::new(),
            }
            .into()),
        }
    }

    fn transport(&self, what: &str, e: ureq::Error) -> anyhow::Error {
        anyhow::Error::new(e).context(format!("{what}: cannot reach the zone server at {}", self.base))
    }

    pub fn get<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        let what = format!("GET {path}");
        let response = self.agent.get(self.url(path)).call().map_err(|e| self.transport(&what, e))?;
        self.answer(&what, response)
    }

    pub fn post<T: DeserializeOwned>(&self, path: &str, body: &serde_json::Value) -> anyhow::Result<T> {
        let what = format!("POST {path}");
        let response = self.agent.post(self.url(path)).send_json(body).map_err(|e| self.transport(&what, e))?;
        self.answer(&what, response)
    }

    /// Streams a local file to the server's upload area; returns its SHA-256 (checked against the server's).
    pub fn upload(&self, path: &Path) -> anyhow::Result<String> {
        let what = format!("upload {}", path.display());
        let mut file = fs::File::open(path).with_context(|| format!("open {}", path.display()))?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = file.read(&mut buf).with_context(|| format!("read {}", path.display()))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        let sha256 = hex::encode(hasher.finalize());
        let file = fs::File::open(path).with_context(|| format!("open {}", path.display()))?;
        let response = self.agent.put(self.url("/v1/uploads")).send(file).map_err(|e| self.transport(&what, e))?;
        let stored: serde_json::Value = self.answer(&what, response)?;
        if stored["sha256"].as_str() != Some(sha256.as_str()) {
            anyhow::bail!("{what}: the server stored different bytes ({}) than were sent ({sha256})", stored["sha256"]);
        }
        Ok(sha256)
    }

    /// Streams a file the server prepared (`/v1/downloads/...`) into `dest`, which must not exist; checks its size
    /// and SHA-256 against what the server announced.
    pub fn download(&self, path: &str, dest: &Path, bytes: u64, sha256: &str) -> anyhow::Result<()> {
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
            .with_context(|| format!("create {} (it must not exist yet)", dest.display()))?;
        let mut hasher = Sha256::new();
        let mut got = 0u64;
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = reader.read(&mut buf).with_context(|| format!("{what}: reading"))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            out.write_all(&buf[..n]).with_context(|| format!("write {}", dest.display()))?;
            got += n as u64;
        }
        out.sync_all().with_context(|| format!("fsync {}", dest.display()))?;
        let digest = hex::encode(hasher.finalize());
        if got != bytes || digest != sha256 {
            let _ = fs::remove_file(dest);
            anyhow::bail!("{what}: got {got} bytes with SHA-256 {digest}, the server announced {bytes} bytes {sha256}");
        }
        Ok(())
    }
}

fn read_certs(path: &Path) -> anyhow::Result<Vec<Certificate<'static>>> {
    let pem = fs::read(path).with_context(|| format!("read {}", path.display()))?;
    let certs: Vec<Certificate<'static>> = ureq::tls::parse_pem(&pem)
        .filter_map(|item| match item {
            Ok(PemItem::Certificate(c)) => Some(c),
            _ => None,
        })
        .collect();
    if certs.is_empty() {
        anyhow::bail!("{}: no PEM certificate in it", path.display());
    }
    Ok(certs)
}
