//! The handshake: a client-certificate verifier over the CAs registered for organisations (reloaded when they
//! change), and the server's TLS configuration.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use zone_store::Zone;

use crate::ServerError;

fn setup(what: impl std::fmt::Display) -> ServerError {
    ServerError::Setup(what.to_string())
}

/// The handshake's client-certificate check: the chain must lead to a CA registered for some organisation (or one
/// of `--client-ca`), re-read from the catalog when that set changes. It grants nothing by itself: which
/// organisation a CA speaks for is checked on every request (`caller::open_as`).
#[derive(Debug)]
pub struct ZoneClientVerifier {
    root: PathBuf,
    extra: Vec<CertificateDer<'static>>,
    provider: Arc<rustls::crypto::CryptoProvider>,
    current: std::sync::RwLock<(Vec<String>, Arc<dyn ClientCertVerifier>)>,
}

impl ZoneClientVerifier {
    pub fn new(
        root: &Path,
        extra: Vec<CertificateDer<'static>>,
        provider: Arc<rustls::crypto::CryptoProvider>,
    ) -> Result<ZoneClientVerifier, ServerError> {
        let built = Self::build(root, &extra, &provider)?;
        Ok(ZoneClientVerifier { root: root.to_path_buf(), extra, provider, current: std::sync::RwLock::new(built) })
    }

    fn build(
        root: &Path,
        extra: &[CertificateDer<'static>],
        provider: &Arc<rustls::crypto::CryptoProvider>,
    ) -> Result<(Vec<String>, Arc<dyn ClientCertVerifier>), ServerError> {
        let anchors = Zone::open(root)?.trust_anchors(None)?;
        let mut roots = rustls::RootCertStore::empty();
        for ca in extra {
            roots.add(ca.clone()).map_err(|e| setup(format!("a --client-ca certificate is not a usable CA: {e}")))?;
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
            return Err(setup(
                "no client CA: register each organisation's CA with `cleanroom org add ORG --ca FILE` (a zone made \
                 with --dev-ca has its development CA registered), or give --client-ca",
            ));
        }
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .map_err(|e| setup(format!("client certificate verifier: {e}")))?;
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
            Err(e) => tracing::error!(error = %e, "the registered client CAs could not be reloaded"),
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

/// Reads PEM certificates.
pub fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, ServerError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| setup(format!("read {}: {e:?}", path.display())))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| setup(format!("{}: not PEM certificates: {e:?}", path.display())))?;
    if certs.is_empty() {
        return Err(setup(format!("{}: no certificate in it", path.display())));
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
) -> Result<rustls::ServerConfig, ServerError> {
    let versions: &[&rustls::SupportedProtocolVersion] =
        if tls12 { &[&rustls::version::TLS13, &rustls::version::TLS12] } else { &[&rustls::version::TLS13] };
    let chain = read_certs(cert)?;
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| setup(format!("{}: not a PEM private key: {e:?}", key.display())))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .map_err(|e| setup(format!("TLS versions: {e}")))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| setup(format!("the server certificate and key do not go together: {e}")))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}
